/** Step `backupAndDetachRoot`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { backupAndDetach } from './backup-and-detach';

export interface BackupAndDetachOutput {
  BackupId: string;
  BackupMethod: string;
}

export const OUTPUT_FIELDS = outputFields<BackupAndDetachOutput>()(['BackupId', 'BackupMethod']);

const log = createLogger('reset-access-backup-and-detach');

export async function handler(event: unknown): Promise<BackupAndDetachOutput> {
  const input = validateStepInput(event);
  const result = await backupAndDetach({ ec2, ssm, log }, input);
  return { BackupId: result.backupId, BackupMethod: result.backupMethod };
}
