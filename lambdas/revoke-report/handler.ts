/** Steps `report` and `reportUnreachable` of the RevokeKey-Instance runbook. */
import { ssm } from '@common/clients/ssm';
import { InvalidInputError } from '@common/errors';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { readRevokeSpec } from '@common/revoke';
import { requireObject, validateStepInput } from '@common/validation';
import { instanceReport, unreachableReport, writeFleetResult, type InstanceReport } from './revoke-report';

export const OUTPUT_FIELDS = outputFields<InstanceReport>()([
  'InstanceId',
  'Outcome',
  'Mode',
  'Method',
  'Found',
  'Removed',
  'Added',
  'Files',
  'UsersWithoutKey',
  'CaLines',
  'AuthorizedKeysCommand',
  'Verified',
  'Warnings',
  'CommandId',
  'CommandTarget',
  'Reason',
]);

const log = createLogger('reset-access-revoke-report');

/**
 * With `Unreachable: True` the instance was not reached (preflight's Payload, given as
 * PreflightResult, says why); otherwise the revoke command's report of this execution.
 */
export async function handler(event: unknown): Promise<InstanceReport> {
  const input = validateStepInput(event);
  const o = requireObject(event);
  if (o.Unreachable === 'True') {
    let reason = '';
    let windows = false;
    try {
      const pre = JSON.parse(String(o.PreflightResult ?? '')) as { MethodReason?: unknown; Method?: unknown };
      reason = typeof pre.MethodReason === 'string' ? pre.MethodReason : '';
      windows = pre.Method === 'Windows';
    } catch {
      throw new InvalidInputError('PreflightResult is not the JSON Payload of preflight');
    }
    // A fleet's child carries the mode in the fleet's spec, a run of its own in Mode.
    const specName = typeof o.RevokeSpec === 'string' ? o.RevokeSpec.trim() : '';
    const mode = specName !== '' ? (await readRevokeSpec(ssm, specName)).action.mode : o.Mode === 'Revoke' ? 'Revoke' : 'Audit';
    log.info('unreachable', { instanceId: input.instanceId, executionId: input.executionId });
    const report = unreachableReport(input.instanceId, mode, reason, windows ? 'windows' : 'unreachable');
    await toFleet(specName, report, input.executionId);
    return report;
  }
  const report = await instanceReport({ ssm }, input);
  log.info('instance report', { instanceId: input.instanceId, executionId: input.executionId, outcome: report.Outcome, removed: report.Removed });
  await toFleet(typeof o.RevokeSpec === 'string' ? o.RevokeSpec.trim() : '', report, input.executionId);
  return report;
}

/** A fleet child (RevokeSpec given) also writes its result where the fleet's gather reads it. */
async function toFleet(specName: string, report: InstanceReport, executionId: string): Promise<void> {
  if (specName === '') return;
  const name = await writeFleetResult({ ssm }, specName, report, executionId);
  log.info(name ? 'fleet result written' : 'fleet already gathered: result left in this execution\'s outputs', { instanceId: report.InstanceId, executionId });
}
