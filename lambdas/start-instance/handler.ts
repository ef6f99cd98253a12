/** Step `startInstance`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinOrNone, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { startInstance } from './start-instance';

export interface StartInstanceOutput {
  Started: boolean;
  Warnings: string;
}

export const OUTPUT_FIELDS = outputFields<StartInstanceOutput>()(['Started', 'Warnings']);

const log = createLogger('reset-access-start-instance');

export async function handler(event: unknown): Promise<StartInstanceOutput> {
  const input = validateStepInput(event);
  const r = await startInstance({ ec2, ssm, log }, input);
  return { Started: r.started, Warnings: joinOrNone(r.warnings, ';') };
}
