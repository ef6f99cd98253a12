/** Step `injectKey`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { injectKey, type InjectConfig } from './inject-key';

export interface InjectKeyOutput {
  CommandId: string;
  KeyParameterName: string;
  Fingerprint: string;
  KeyType: string;
  /** The run's backup (snapshot or image id), or `none`. */
  BackupId: string;
  /** Online: `true` when this step read the command's report saying the key is in place. */
  Confirmed: string;
}

export const OUTPUT_FIELDS = outputFields<InjectKeyOutput>()(['CommandId', 'KeyParameterName', 'Fingerprint', 'KeyType', 'BackupId', 'Confirmed']);

const config: InjectConfig = {
  keyId: requireEnv('KEY_ID'),
  documentName: requireEnv('INJECT_DOCUMENT_NAME'),
  // Optional: a stack without RevokeKey (or an older test environment) leaves it out; a revoke plan
  // then fails the step naming it (inject-key.ts, sendRevoke).
  revokeDocumentName: process.env.REVOKE_DOCUMENT_NAME ?? '',
};
const log = createLogger('reset-access-inject-key');

/** The part of Lambda's context object used here (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html). */
export interface TimeLeft {
  getRemainingTimeInMillis(): number;
}

export async function handler(event: unknown, context?: TimeLeft): Promise<InjectKeyOutput> {
  const input = validateStepInput(event);
  const remainingMs = context && typeof context.getRemainingTimeInMillis === 'function' ? () => context.getRemainingTimeInMillis() : undefined;
  const r = await injectKey({ ssm, ec2, log, config, remainingMs }, input);
  return {
    CommandId: r.commandId,
    KeyParameterName: r.keyParameterName,
    Fingerprint: r.fingerprint,
    KeyType: r.keyType,
    BackupId: r.backupId,
    Confirmed: String(r.confirmed),
  };
}
