/** Steps `cleanup` and `cleanupAfterRestore` (one function). */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { realClock } from '@common/ec2';
import { createLogger } from '@common/log';
import { joinOrNone, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { cleanup } from './cleanup';

export interface CleanupOutput {
  Removed: string;
}

export const OUTPUT_FIELDS = outputFields<CleanupOutput>()(['Removed']);

const log = createLogger('reset-access-cleanup');

export async function handler(event: unknown): Promise<CleanupOutput> {
  const input = validateStepInput(event);
  return { Removed: joinOrNone(await cleanup({ ec2, ssm, log, clock: realClock }, input)) };
}
