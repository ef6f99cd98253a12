/** Step `gather` of the RevokeKey fleet runbook. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { InvalidInputError } from '@common/errors';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateKeyPairName } from '@common/revoke';
import { requireObject, validateExecutionId, validateFlag } from '@common/validation';
import { gather } from './revoke-gather';

/** The fleet's counts and where the full report is (the step's Payload, under 512 characters). */
export interface GatherOutput {
  ReportParameter: string;
  Instances: number;
  Clean: number;
  Cleaned: number;
  Found: number;
  Incomplete: number;
  Windows: number;
  Unreachable: number;
  Failed: number;
  Cancelled: number;
  Unknown: number;
  KeyPair: string;
}

export const OUTPUT_FIELDS = outputFields<GatherOutput>()(['ReportParameter', 'Instances', 'Clean', 'Cleaned', 'Found', 'Incomplete', 'Windows', 'Unreachable', 'Failed', 'Cancelled', 'Unknown', 'KeyPair']);

const log = createLogger('reset-access-revoke-gather');

export async function handler(event: unknown): Promise<GatherOutput> {
  const o = requireObject(event);
  const executionId = validateExecutionId(o.ExecutionId);
  const deleteKeyPair = validateFlag(o.DeleteKeyPair ?? 'False', 'DeleteKeyPair');
  const keyPairName = validateKeyPairName(typeof o.KeyPairName === 'string' ? o.KeyPairName.trim() : '');
  // The per-instance runbook's name, as the fleet document gives it (an SSM document name: model, DocumentARN).
  const childDocument = typeof o.ChildDocument === 'string' ? o.ChildDocument : '';
  if (!/^[a-zA-Z0-9_\-.]{3,128}$/.test(childDocument)) throw new InvalidInputError('ChildDocument must be the name of the per-instance runbook');
  const { report, reportName } = await gather({ ec2, ssm, log }, { executionId, deleteKeyPair, keyPairName, childDocument });
  const c = report.counts;
  return {
    ReportParameter: reportName,
    Instances: report.instances.length,
    Clean: c.clean,
    Cleaned: c.cleaned,
    Found: c.found,
    Incomplete: c.incomplete,
    Windows: c.windows,
    Unreachable: c.unreachable,
    Failed: c.failed,
    Cancelled: c.cancelled,
    Unknown: c.unknown,
    KeyPair: report.keyPair.slice(0, 200),
  };
}
