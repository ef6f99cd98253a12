/** Step `summarize`. */
import { ec2 } from '@common/clients/ec2';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { fitOutput, instanceState, parseSummaryInput } from './summarize';

/** The runbook's result (`summarize.Payload`): at most 512 characters as JSON. */
export interface SummarizeOutput {
  KeyParameterName: string;
  BackupId: string;
  UsersChanged: string;
  FilesChanged: string;
  Fingerprint: string;
  Warnings: string;
  InstanceState: string;
  FullReport: string;
  /** Online, VolumeSwap or UserData: the way back in that ran. */
  Method: string;
  /** Why that method (cut to fit; left out when even its cut marker does not fit in 512 characters). */
  MethodReason?: string;
}

export const OUTPUT_FIELDS = outputFields<SummarizeOutput>()([
  'KeyParameterName',
  'BackupId',
  'UsersChanged',
  'FilesChanged',
  'Fingerprint',
  'Warnings',
  'InstanceState',
  'FullReport',
  'Method',
  'MethodReason',
]);

const log = createLogger('reset-access-summarize');

export async function handler(event: unknown): Promise<SummarizeOutput> {
  const s = parseSummaryInput(event);
  return fitOutput({
    KeyParameterName: s.keyParameterName,
    BackupId: s.backupId,
    UsersChanged: s.usersChanged,
    FilesChanged: s.filesChanged,
    Fingerprint: s.fingerprint,
    Warnings: s.warnings,
    InstanceState: await instanceState({ ec2, log }, s.instanceId),
    FullReport: s.fullReport,
    Method: s.method,
    MethodReason: s.methodReason,
  });
}
