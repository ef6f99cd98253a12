/** Step `summarize`. */
import { ec2 } from '@common/clients/ec2';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { fitOutput, instanceView, parseSummaryInput } from './summarize';

/** The runbook's result (`summarize.Payload`): at most 512 characters as JSON. */
export interface SummarizeOutput {
  KeyParameterName: string;
  BackupId: string;
  UsersChanged: string;
  FilesChanged: string;
  Fingerprint: string;
  Warnings: string;
  InstanceState: string;
  /** Where to ssh to now: `<public IP> (public)`, `<private IP> (private)` or `none`. */
  Address: string;
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
  'Address',
  'FullReport',
  'Method',
  'MethodReason',
]);

const log = createLogger('reset-access-summarize');

export async function handler(event: unknown): Promise<SummarizeOutput> {
  const s = parseSummaryInput(event);
  const instance = await instanceView({ ec2, log }, s.instanceId);
  return fitOutput({
    KeyParameterName: s.keyParameterName,
    BackupId: s.backupId,
    UsersChanged: s.usersChanged,
    FilesChanged: s.filesChanged,
    Fingerprint: s.fingerprint,
    Warnings: s.warnings,
    InstanceState: instance.state,
    Address: instance.address,
    FullReport: s.fullReport,
    Method: s.method,
    MethodReason: s.methodReason,
  });
}
