/** Step `stopInstance`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { stopInstance } from './stop-instance';

export interface StopInstanceOutput {
  PreviousState: string;
}

export const OUTPUT_FIELDS = outputFields<StopInstanceOutput>()(['PreviousState']);

const log = createLogger('reset-access-stop-instance');

export async function handler(event: unknown): Promise<StopInstanceOutput> {
  const input = validateStepInput(event);
  return { PreviousState: await stopInstance({ ec2, ssm, log }, input) };
}
