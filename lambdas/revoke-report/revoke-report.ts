/**
 * Step `report` of the RevokeKey-Instance runbook: the per-instance report, read from the revoke
 * command's own JSON report (GetCommandInvocation) before cleanup releases the plan; and
 * `reportUnreachable` for an instance preflight answered Unreachable (no plan, nothing changed).
 */
import { GetCommandInvocationCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError, PlanError, UnexpectedStateError } from '@common/errors';
import { joinWithin } from '@common/outputs';
import { loadOwnPlan } from '@common/plan';
import { outcomeOf, parentOfSpecName, parseRevokeReport, readRevokeSpec, revokeResultName, type InstanceOutcome, type RevokeCommandReport } from '@common/revoke';
import type { StepInput } from '@common/validation';

/**
 * The per-instance report (the step's Payload, at most 512 characters: every list is cut). The
 * full report is the command's output, `aws ssm get-command-invocation --command-id <CommandId>
 * --instance-id <CommandTarget>` (the helper's id for the volume swap, the instance's own online).
 */
export interface InstanceReport {
  InstanceId: string;
  Outcome: InstanceOutcome;
  Mode: string;
  Method: string;
  /** Lines holding a revoked key (before), removed, and replacement lines added. */
  Found: number;
  Removed: number;
  Added: number;
  /** Files that held a revoked key. */
  Files: number;
  /** Users left with no key and no replacement (comma-separated, cut), or `none`. */
  UsersWithoutKey: string;
  /** `cert-authority` lines found (reported, never edited). */
  CaLines: number;
  /** True when sshd also takes keys from an AuthorizedKeysCommand (not read: check it yourself). */
  AuthorizedKeysCommand: boolean;
  Verified: boolean;
  Warnings: number;
  CommandId: string;
  CommandTarget: string;
  /** Why, for unreachable (and `none` otherwise). */
  Reason: string;
}

export const USERS_WITHOUT_KEY_CHARS = 120;
export const REASON_CHARS = 160;

/** The report of an instance the run could not reach without a stop. */
export function unreachableReport(instanceId: string, mode: string, reason: string, outcome: 'unreachable' | 'windows' = 'unreachable'): InstanceReport {
  return {
    InstanceId: instanceId,
    Outcome: outcome,
    Mode: mode,
    Method: 'none',
    Found: 0,
    Removed: 0,
    Added: 0,
    Files: 0,
    UsersWithoutKey: 'none',
    CaLines: 0,
    AuthorizedKeysCommand: false,
    Verified: false,
    Warnings: 0,
    CommandId: 'none',
    CommandTarget: 'none',
    Reason: reason.length > REASON_CHARS ? `${reason.slice(0, REASON_CHARS - 1)}…` : reason || 'none',
  };
}

/** The report of one command report, as InstanceReport. */
export function reportOf(instanceId: string, method: string, mode: 'Audit' | 'Revoke', report: RevokeCommandReport, commandId: string, target: string): InstanceReport {
  const files = (report.files ?? []).filter((f) => (f.matches ?? 0) > 0);
  return {
    InstanceId: instanceId,
    Outcome: outcomeOf(report, mode),
    Mode: mode,
    Method: method,
    Found: report.found ?? 0,
    Removed: report.removed ?? 0,
    Added: report.added ?? 0,
    Files: files.length,
    UsersWithoutKey: joinWithin(report.usersWithoutKey ?? [], USERS_WITHOUT_KEY_CHARS),
    CaLines: (report.caLines ?? []).length,
    AuthorizedKeysCommand: (report.authorizedKeysCommand ?? '') !== '',
    Verified: report.verified === true,
    Warnings: (report.warnings ?? []).length,
    CommandId: commandId,
    CommandTarget: target,
    Reason: 'none',
  };
}

export interface RevokeReportDeps {
  readonly ssm: SSMClient;
}

/** The report of this execution's revoke command, from the plan (before cleanup deletes it). */
export async function instanceReport(deps: RevokeReportDeps, input: StepInput): Promise<InstanceReport> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  const action = plan.inputs.action;
  if (action?.kind !== 'revoke') throw new PlanError(`The plan of ${input.instanceId} is not a revoke`);
  const online = plan.method.chosen === 'Online';
  const target = online ? input.instanceId : plan.created.helperInstanceId;
  const commandId = plan.created.commandId;
  if (!target || !commandId) throw new PlanError(`The plan of ${input.instanceId} has no revoke command: injectKey did not complete`);
  const inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: target }));
  const report = parseRevokeReport(inv.StandardOutputContent);
  if (!report) throw new UnexpectedStateError(`The revoke command ${commandId} on ${target} printed no JSON report`);
  return reportOf(input.instanceId, plan.method.chosen, action.mode, report, commandId, target);
}

/**
 * A fleet child's own result, written where the fleet's gather step reads it (review P10):
 * `/reset-access/revoke/<fleet execution id>/results/<instance id>`, the fleet id taken from the
 * child's explicit RevokeSpec parameter (`/reset-access/revoke/<fleet execution id>/spec`), never
 * from a parent link between executions. Written only while the fleet's spec exists: once gather
 * has deleted it the fleet report is written, and a late child's result stays in its own execution's
 * outputs (report.Payload) rather than as a parameter nobody would delete. Returns the name written,
 * or undefined.
 */
export async function writeFleetResult(deps: RevokeReportDeps, specName: string, report: InstanceReport, executionId: string): Promise<string | undefined> {
  const parent = parentOfSpecName(specName);
  if (!parent) throw new InvalidInputError('RevokeSpec must be /reset-access/revoke/<execution id>/spec');
  try {
    const spec = await readRevokeSpec(deps.ssm, specName);
    if (!spec.instanceIds.includes(report.InstanceId)) throw new InvalidInputError(`${report.InstanceId} is not one of the instances of the fleet run ${parent}`);
  } catch (err) {
    if (err instanceof InvalidInputError && /does not exist/.test(err.message)) return undefined;
    throw err;
  }
  const name = revokeResultName(parent, report.InstanceId);
  await deps.ssm.send(
    new PutParameterCommand({
      Name: name,
      Value: JSON.stringify({ ...report, ExecutionId: executionId }),
      Type: 'String',
      // A retried step writes the same execution's result again.
      Overwrite: true,
      Description: `ec2-reset-access RevokeKey result of ${report.InstanceId} in fleet run ${parent}`,
    }),
  );
  return name;
}
