/**
 * Step `gather` of the RevokeKey fleet runbook: every child's report into the fleet report,
 * written to `/reset-access/revoke/<execution id>/report`; the run's tags removed and its spec
 * deleted; with DeleteKeyPair=True, the key pair deleted only when every selected instance is
 * clean or cleaned.
 *
 * The children are found through DescribeAutomationExecutions' ParentExecutionId filter
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_AutomationExecutionFilter.html):
 * the fan-out step's rate-controlled execution names this execution as its parent, and each
 * per-instance execution names that one (local/README.md, assumptions). Whatever is not found
 * that way is reported `failed` (no child found): the report never calls an instance clean
 * without its own child's report, and the key pair is then kept.
 */
import { DeleteKeyPairCommand, DeleteTagsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  DescribeAutomationExecutionsCommand,
  PutParameterCommand,
  type AutomationExecutionMetadata,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { isAwsError } from '@common/errors';
import type { Logger } from '@common/log';
import { INSTANCE_OUTCOMES, readRevokeSpec, revokeReportName, revokeSpecName, type InstanceOutcome, type RevokeSpec } from '@common/revoke';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { REVOKE_RUN_TAG_KEY } from '@common/tags';

/** The child runbook's outputs that carry its report (runbooks/revoke-key-instance.yaml). */
export const CHILD_REPORT_OUTPUTS = ['report.Payload', 'reportUnreachable.Payload'];

/** One instance in the fleet report. */
export interface FleetEntry {
  instanceId: string;
  outcome: InstanceOutcome;
  method?: string;
  found?: number;
  removed?: number;
  added?: number;
  files?: number;
  usersWithoutKey?: string;
  caLines?: number;
  authorizedKeysCommand?: boolean;
  /** The child execution, and where its full report is (the command's output). */
  execution?: string;
  command?: string;
  /** Why it failed or was unreachable (cut). */
  reason?: string;
}

export interface FleetReport {
  version: 1;
  executionId: string;
  mode: string;
  keys: string[];
  selection: string;
  counts: Record<InstanceOutcome, number>;
  instances: FleetEntry[];
  /** Entries left out to fit the parameter (8 KB); the children's own outputs still hold them. */
  truncated: number;
  keyPair: string;
}

/** An advanced parameter holds 8 KB (parameter-store-advanced-parameters.html). */
export const REPORT_MAX_CHARS = 8192;
const REASON_CHARS = 160;

export interface GatherDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface GatherRequest {
  readonly executionId: string;
  readonly deleteKeyPair: boolean;
  readonly keyPairName: string;
}

async function childrenOf(ssm: SSMClient, parentId: string): Promise<AutomationExecutionMetadata[]> {
  const out: AutomationExecutionMetadata[] = [];
  let token: string | undefined;
  do {
    const page = await ssm.send(
      new DescribeAutomationExecutionsCommand({ Filters: [{ Key: 'ParentExecutionId', Values: [parentId] }], NextToken: token, MaxResults: 50 }),
    );
    out.push(...(page.AutomationExecutionMetadataList ?? []));
    token = page.NextToken;
  } while (token);
  return out;
}

const cut = (s: string, n = REASON_CHARS): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The entry of one child execution. */
export function entryOf(instanceId: string, child: AutomationExecutionMetadata | undefined): FleetEntry {
  if (!child) return { instanceId, outcome: 'failed', reason: 'no execution was started for it (over MaxErrors, cancelled, or not found)' };
  const status = child.AutomationExecutionStatus ?? 'unknown';
  const payload = CHILD_REPORT_OUTPUTS.map((k) => child.Outputs?.[k]?.[0]).find((v) => typeof v === 'string' && v !== '');
  if (status !== 'Success' || !payload) {
    return {
      instanceId,
      outcome: 'failed',
      execution: child.AutomationExecutionId,
      reason: cut(`${status}${child.FailureMessage ? `: ${child.FailureMessage}` : payload ? '' : ', no report'}`),
    };
  }
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(payload) as Record<string, unknown>;
  } catch {
    return { instanceId, outcome: 'failed', execution: child.AutomationExecutionId, reason: 'its report is not JSON' };
  }
  const outcome = INSTANCE_OUTCOMES.includes(r.Outcome as InstanceOutcome) && r.InstanceId === instanceId ? (r.Outcome as InstanceOutcome) : 'failed';
  const num = (k: string): number => (typeof r[k] === 'number' ? (r[k] as number) : 0);
  return {
    instanceId,
    outcome,
    method: String(r.Method ?? ''),
    found: num('Found'),
    removed: num('Removed'),
    added: num('Added'),
    files: num('Files'),
    usersWithoutKey: String(r.UsersWithoutKey ?? 'none'),
    caLines: num('CaLines'),
    authorizedKeysCommand: r.AuthorizedKeysCommand === true,
    execution: child.AutomationExecutionId,
    command: r.CommandId && r.CommandId !== 'none' ? `${String(r.CommandId)} on ${String(r.CommandTarget)}` : undefined,
    reason: r.Reason && r.Reason !== 'none' ? cut(String(r.Reason)) : outcome === 'failed' ? 'its report does not say clean' : undefined,
  };
}

/** The fleet report of the spec's instances and the children found. */
export function fleetReport(spec: RevokeSpec, children: AutomationExecutionMetadata[], keyPair: string): FleetReport {
  // The newest execution of each target counts (a retried target has several).
  const byTarget = new Map<string, AutomationExecutionMetadata>();
  for (const c of children) {
    const target = c.Target ?? '';
    const known = byTarget.get(target);
    if (!known || (c.ExecutionStartTime?.getTime() ?? 0) > (known.ExecutionStartTime?.getTime() ?? 0)) byTarget.set(target, c);
  }
  const instances = spec.instanceIds.map((id) => entryOf(id, byTarget.get(id)));
  const counts = Object.fromEntries(INSTANCE_OUTCOMES.map((o) => [o, 0])) as Record<InstanceOutcome, number>;
  for (const e of instances) counts[e.outcome]++;
  return {
    version: 1,
    executionId: spec.parentExecutionId,
    mode: spec.action.mode,
    keys: spec.action.fingerprints,
    selection: spec.selection,
    counts,
    instances,
    truncated: 0,
    keyPair,
  };
}

/** The report as JSON within `max` characters: entries are dropped from the end, and counted. */
export function reportText(report: FleetReport, max = REPORT_MAX_CHARS): string {
  let r = report;
  let text = JSON.stringify(r);
  while (text.length > max && r.instances.length > 0) {
    const drop = Math.max(1, Math.ceil(((text.length - max) / text.length) * r.instances.length));
    r = { ...r, instances: r.instances.slice(0, r.instances.length - drop), truncated: r.truncated + drop };
    text = JSON.stringify(r);
  }
  return text;
}

/** Why the key pair may not be deleted, or undefined when every instance is clean or cleaned. */
export function keepKeyPairReason(report: FleetReport): string | undefined {
  const blocking = report.instances.filter((e) => e.outcome !== 'clean' && e.outcome !== 'cleaned');
  if (blocking.length === 0 && report.instances.length > 0 && report.truncated === 0) return undefined;
  const c = report.counts;
  const parts = INSTANCE_OUTCOMES.filter((o) => o !== 'clean' && o !== 'cleaned' && c[o] > 0).map((o) => `${c[o]} ${o}`);
  return `kept: ${parts.join(', ') || `${report.truncated} not in the report`} (every instance must be clean or cleaned)`;
}

/**
 * Instances launched with the key pair that the run did not cover (review F4): the rule "every
 * instance clean or cleaned" is about every instance the key pair can open, not only the selection.
 * DescribeInstances filter key-name, every state but terminated (shutting-down included).
 */
async function uncoveredKeyPairInstances(ec2: EC2Client, keyPairName: string, report: FleetReport): Promise<string[]> {
  const covered = new Set(report.instances.filter((e) => e.outcome === 'clean' || e.outcome === 'cleaned').map((e) => e.instanceId));
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'key-name', Values: [keyPairName] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'] },
        ],
        NextToken: token,
      }),
    );
    for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) if (i.InstanceId && !covered.has(i.InstanceId)) out.push(i.InstanceId);
    token = page.NextToken;
  } while (token);
  return out;
}

export interface GatherResult {
  readonly report: FleetReport;
  readonly reportName: string;
}

export async function gather(deps: GatherDeps, req: GatherRequest): Promise<GatherResult> {
  const spec = await readRevokeSpec(deps.ssm, revokeSpecName(req.executionId));
  const fanOuts = await childrenOf(deps.ssm, req.executionId);
  const children: AutomationExecutionMetadata[] = [];
  for (const f of fanOuts) {
    if (f.AutomationExecutionId) children.push(...(await childrenOf(deps.ssm, f.AutomationExecutionId)));
  }
  const report = fleetReport(spec, children, 'not asked (DeleteKeyPair=False)');
  if (req.deleteKeyPair) {
    const keep = keepKeyPairReason(report);
    let uncovered: string[] = [];
    if (!req.keyPairName) report.keyPair = 'not deleted: no KeyPairName given';
    else if (spec.action.mode !== 'Revoke') report.keyPair = `${req.keyPairName} kept: an audit changes nothing (DeleteKeyPair needs Mode=Revoke)`;
    else if (keep) report.keyPair = `${req.keyPairName} ${keep}`;
    else if ((uncovered = await uncoveredKeyPairInstances(deps.ec2, req.keyPairName, report)).length > 0) {
      report.keyPair = `${req.keyPairName} kept: launched with it but not clean in this run: ${uncovered.slice(0, 5).join(', ')}${uncovered.length > 5 ? ` (+${uncovered.length - 5} more)` : ''}`;
    } else {
      await deps.ec2.send(new DeleteKeyPairCommand({ KeyName: req.keyPairName }));
      report.keyPair = `${req.keyPairName} deleted`;
      deps.log.info('key pair deleted', { executionId: req.executionId, keyPairName: req.keyPairName });
    }
  }
  const reportName = revokeReportName(req.executionId);
  const text = reportText(report);
  await deps.ssm.send(
    new PutParameterCommand({
      Name: reportName,
      Value: text,
      Type: 'String',
      Overwrite: true,
      Tier: text.length > 4096 ? 'Advanced' : 'Standard',
      Description: `ec2-reset-access RevokeKey fleet report of ${req.executionId}`,
    }),
  );
  // The run's tag, by its value (DeleteTags removes a tag given with a value only when it matches:
  // https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteTags.html).
  for (let i = 0; i < spec.instanceIds.length; i += 100) {
    await deps.ec2.send(
      new DeleteTagsCommand({ Resources: spec.instanceIds.slice(i, i + 100), Tags: [{ Key: REVOKE_RUN_TAG_KEY, Value: req.executionId }] }),
    );
  }
  try {
    await deps.ssm.send(new DeleteParameterCommand({ Name: revokeSpecName(req.executionId) }));
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
  deps.log.info('fleet gathered', { executionId: req.executionId, ...report.counts });
  return { report, reportName };
}
