/** Step `restore`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { realClock } from '@common/ec2';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { restore } from './restore';

export interface RestoreOutput {
  Restored: boolean;
  Message: string;
}

export const OUTPUT_FIELDS = outputFields<RestoreOutput>()(['Restored', 'Message']);

const log = createLogger('reset-access-restore');

export async function handler(event: unknown): Promise<RestoreOutput> {
  const input = validateStepInput(event);
  const r = await restore({ ec2, ssm, log, clock: realClock }, input);
  return { Restored: r.restored, Message: r.message };
}
