/** Step `setUserData`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { setUserData, type SetUserDataConfig } from './set-user-data';

export interface SetUserDataOutput {
  Fingerprint: string;
  KeyParameterName: string;
  UserDataBytes: number;
}

export const OUTPUT_FIELDS = outputFields<SetUserDataOutput>()(['Fingerprint', 'KeyParameterName', 'UserDataBytes']);

const config: SetUserDataConfig = { keyId: requireEnv('KEY_ID'), documentName: requireEnv('INJECT_DOCUMENT_NAME') };
const log = createLogger('reset-access-set-user-data');

export async function handler(event: unknown): Promise<SetUserDataOutput> {
  const input = validateStepInput(event);
  const out = await setUserData({ ec2, ssm, log, config }, input);
  return { Fingerprint: out.fingerprint, KeyParameterName: out.keyParameterName, UserDataBytes: out.bytes };
}
