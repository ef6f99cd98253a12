/** Step `restoreUserData`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { restoreUserData } from './restore-user-data';

export interface RestoreUserDataOutput {
  UserDataRestored: string;
  UserDataBytes: number;
}

export const OUTPUT_FIELDS = outputFields<RestoreUserDataOutput>()(['UserDataRestored', 'UserDataBytes']);

const log = createLogger('reset-access-restore-user-data');

export async function handler(event: unknown): Promise<RestoreUserDataOutput> {
  const input = validateStepInput(event);
  const out = await restoreUserData({ ec2, ssm, log }, input);
  return { UserDataRestored: out.result, UserDataBytes: out.bytes };
}
