/** Step `startWindows` (issue 15). */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinWithin, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { startWindows } from './windows-start';

export interface WindowsStartOutput {
  Started: boolean;
  Warnings: string;
}

export const OUTPUT_FIELDS = outputFields<WindowsStartOutput>()(['Started', 'Warnings']);

const log = createLogger('reset-access-windows-start');

export async function handler(event: unknown): Promise<WindowsStartOutput> {
  const input = validateStepInput(event);
  const r = await startWindows({ ec2, ssm, log }, input);
  return { Started: r.started, Warnings: joinWithin(r.warnings, 400, '; ') };
}
