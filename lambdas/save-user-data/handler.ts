/** Step `saveUserData`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { saveUserData, type SaveUserDataConfig } from './save-user-data';

export interface SaveUserDataOutput {
  UserDataParameter: string;
  OriginalUserDataBytes: number;
  OurUserDataBytes: number;
}

export const OUTPUT_FIELDS = outputFields<SaveUserDataOutput>()(['UserDataParameter', 'OriginalUserDataBytes', 'OurUserDataBytes']);

const config: SaveUserDataConfig = { keyId: requireEnv('KEY_ID'), documentName: requireEnv('INJECT_DOCUMENT_NAME') };
const log = createLogger('reset-access-save-user-data');

export async function handler(event: unknown): Promise<SaveUserDataOutput> {
  const input = validateStepInput(event);
  const out = await saveUserData({ ec2, ssm, log, config }, input);
  return { UserDataParameter: out.parameterName, OriginalUserDataBytes: out.originalBytes, OurUserDataBytes: out.ourBytes };
}
