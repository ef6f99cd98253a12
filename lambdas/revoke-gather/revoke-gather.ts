/**
 * Step `gather` of the RevokeKey fleet runbook: every child's result into the fleet report, written
 * to `/reset-access/revoke/<execution id>/report`; the run's tags, spec and per-child results
 * removed; with DeleteKeyPair=True, the key pair deleted only when every instance is clean or
 * cleaned.
 *
 * Where the results come from (review P10): each child writes its own result to
 * `/reset-access/revoke/<execution id>/results/<instance id>` (lambdas/revoke-report), the fleet id
 * taken from its explicit RevokeSpec parameter; gather reads that path and compares it with the
 * instances resolve chose. No link between executions is needed for a correct report.
 *
 * An instance without a result is explained from its own execution when one is found: the runbook
 * document's executions (DescribeAutomationExecutions, filter DocumentNamePrefix) whose parameters
 * (GetAutomationExecution, "the key-value map of execution parameters": API_AutomationExecution.html)
 * name this run's spec. Failed or timed out: `failed`; Cancelled: `cancelled`; still running:
 * `unknown`; none found: `failed` (never started: over MaxErrors, the fan-out failed), or
 * `cancelled` when this run itself is being cancelled.
 *
 * Cancel (review P9): no AWS source says that cancelling an execution stops the executions its
 * aws:executeAutomation step started. So gather stops them itself: every execution of the child
 * document still running with this run's spec gets StopAutomationExecution Type Cancel (each child's
 * onCancel path then starts its own restore), and gather waits a bounded time for them to end; one
 * still running then is reported `unknown`, never `failed` or `clean`, and blocks DeleteKeyPair.
 * Deleting the spec at the end makes a child that starts later refuse in its preflight before it
 * locks or changes anything (lambdas/preflight: "RevokeSpec ... does not exist").
 */
import { DeleteKeyPairCommand, DeleteTagsCommand, DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  DeleteParametersCommand,
  DescribeAutomationExecutionsCommand,
  GetAutomationExecutionCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  PutParameterCommand,
  StopAutomationExecutionCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { InvalidInputError, isAwsError } from '@common/errors';
import type { Logger } from '@common/log';
import {
  INSTANCE_OUTCOMES,
  readRevokeSpec,
  revokeReportName,
  revokeResultsPath,
  revokeSpecName,
  type InstanceOutcome,
  type RevokeSpec,
} from '@common/revoke';
import { REVOKE_RUN_TAG_KEY } from '@common/tags';

/** The outcomes a child may claim for itself (cancelled and unknown are gather's own). */
export const CHILD_OUTCOMES: readonly InstanceOutcome[] = ['clean', 'cleaned', 'found', 'incomplete', 'windows', 'unreachable', 'failed'];

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
  /** Why it failed, was cancelled, unknown or unreachable (cut). */
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
/**
 * Gather's time on the cancel path, which Automation ends after two minutes (automation-actions.html,
 * onCancel): it scans for the run's executions for at most SCAN_SECONDS (twice: before and after the
 * stop), waits at most STOP_WAIT_SECONDS for the children it stopped, and then writes the report and
 * removes the run's tags, spec and results: about 80 s with the calls (review Q27).
 */
export const STOP_WAIT_SECONDS = 40;
export const SCAN_SECONDS = 15;
export const STOP_POLL_SECONDS = 3;
/** Bounds of the search for the run's executions (a long history of the child document). */
const MAX_DESCRIBE_PAGES = 20;
const MAX_LOOKUPS = 600;
/** DescribeAutomationExecutions' statuses of an execution that has ended (AutomationExecutionStatus, API reference). */
const ENDED = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Rejected', 'CompletedWithSuccess', 'CompletedWithFailure', 'Exited']);

export interface GatherDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default - a real timer */
  readonly sleep?: (seconds: number) => Promise<void>;
}

export interface GatherRequest {
  readonly executionId: string;
  readonly deleteKeyPair: boolean;
  readonly keyPairName: string;
  /** The per-instance runbook's name (the fleet document passes it). */
  readonly childDocument: string;
}

/** A child's own result, as it wrote it (lambdas/revoke-report writeFleetResult). */
export type ChildResult = Record<string, unknown>;

/** One execution of the child document that names this run's spec. */
export interface ChildRun {
  readonly executionId: string;
  /** Its InstanceId parameter (none: the fan-out's own rate-controlled execution). */
  readonly instanceId?: string;
  status: string;
  failureMessage?: string;
  readonly startTime: number;
}

const cut = (s: string, n = REASON_CHARS): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** Every child result under the run's results path (GetParametersByPath, all pages). */
export async function readResults(ssm: SSMClient, executionId: string): Promise<Map<string, { name: string; result: ChildResult | undefined }>> {
  const out = new Map<string, { name: string; result: ChildResult | undefined }>();
  let token: string | undefined;
  do {
    const page = await ssm.send(new GetParametersByPathCommand({ Path: revokeResultsPath(executionId), Recursive: false, NextToken: token, MaxResults: 10 }));
    for (const p of page.Parameters ?? []) {
      const name = p.Name ?? '';
      const instanceId = name.slice(name.lastIndexOf('/') + 1);
      let result: ChildResult | undefined;
      try {
        const v = JSON.parse(p.Value ?? '') as unknown;
        result = v && typeof v === 'object' ? (v as ChildResult) : undefined;
      } catch {
        result = undefined;
      }
      out.set(instanceId, { name, result });
    }
    token = page.NextToken;
  } while (token);
  return out;
}

/**
 * The executions of the child document that name this run's spec: the non-ended ones always (to
 * stop them), every one when `all` (to explain instances without a result).
 */
export async function findRuns(ssm: SSMClient, childDocument: string, specName: string, all: boolean, deadline = Infinity): Promise<ChildRun[]> {
  const runs: ChildRun[] = [];
  let token: string | undefined;
  let pages = 0;
  let lookups = 0;
  do {
    const page = await ssm.send(
      new DescribeAutomationExecutionsCommand({ Filters: [{ Key: 'DocumentNamePrefix', Values: [childDocument] }], NextToken: token, MaxResults: 50 }),
    );
    for (const m of page.AutomationExecutionMetadataList ?? []) {
      if (m.DocumentName !== childDocument || !m.AutomationExecutionId) continue;
      const ended = ENDED.has(m.AutomationExecutionStatus ?? '');
      if (ended && !all) continue;
      // Bounded by count and by time: what is not examined stays without an execution in the report.
      if (++lookups > MAX_LOOKUPS || Date.now() > deadline) return runs;
      let e;
      try {
        e = (await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: m.AutomationExecutionId }))).AutomationExecution;
      } catch (err) {
        if (isAwsError(err, 'AutomationExecutionNotFoundException')) continue;
        throw err;
      }
      if (e?.Parameters?.RevokeSpec?.[0] !== specName) continue;
      runs.push({
        executionId: m.AutomationExecutionId,
        instanceId: e.Parameters?.InstanceId?.[0],
        status: e.AutomationExecutionStatus ?? m.AutomationExecutionStatus ?? 'unknown',
        failureMessage: e.FailureMessage,
        startTime: e.ExecutionStartTime?.getTime() ?? 0,
      });
    }
    token = page.NextToken;
  } while (token && ++pages < MAX_DESCRIBE_PAGES);
  return runs;
}

/** Stops every run still going (Type Cancel) and waits up to `seconds` for them to end. */
async function stopRuns(deps: GatherDeps, runs: ChildRun[], seconds: number): Promise<number> {
  const going = runs.filter((r) => !ENDED.has(r.status));
  for (const r of going) {
    try {
      await deps.ssm.send(new StopAutomationExecutionCommand({ AutomationExecutionId: r.executionId, Type: 'Cancel' }));
    } catch (err) {
      // It ended meanwhile.
      if (!isAwsError(err, 'InvalidAutomationStatusUpdateException', 'AutomationExecutionNotFoundException')) throw err;
    }
  }
  const sleep = deps.sleep ?? ((s: number) => new Promise<void>((r) => setTimeout(r, s * 1000)));
  let waited = 0;
  for (;;) {
    for (const r of going.filter((x) => !ENDED.has(x.status))) {
      const e = (await deps.ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: r.executionId }))).AutomationExecution;
      r.status = e?.AutomationExecutionStatus ?? r.status;
      r.failureMessage = e?.FailureMessage ?? r.failureMessage;
    }
    if (going.every((x) => ENDED.has(x.status)) || waited >= seconds) break;
    await sleep(STOP_POLL_SECONDS);
    waited += STOP_POLL_SECONDS;
  }
  return going.length;
}

/** The entry of one instance: its own result, else what its execution came to. */
export function entryOf(instanceId: string, result: ChildResult | undefined, run: ChildRun | undefined, fleetCancelled: boolean): FleetEntry {
  if (result) {
    const r = result;
    const claimed = r.Outcome as InstanceOutcome;
    const outcome = CHILD_OUTCOMES.includes(claimed) && r.InstanceId === instanceId ? claimed : 'failed';
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
      execution: typeof r.ExecutionId === 'string' ? r.ExecutionId : undefined,
      command: r.CommandId && r.CommandId !== 'none' ? `${String(r.CommandId)} on ${String(r.CommandTarget)}` : undefined,
      reason: r.Reason && r.Reason !== 'none' ? cut(String(r.Reason)) : outcome === 'failed' ? 'its result does not say clean' : undefined,
    };
  }
  if (!run) {
    return fleetCancelled
      ? { instanceId, outcome: 'cancelled', reason: 'not started: the fleet run was cancelled' }
      : { instanceId, outcome: 'failed', reason: 'no result and no execution found for it (not started: over MaxErrors, or the fan-out failed; or not examined in time)' };
  }
  const why = `${run.status}${run.failureMessage ? `: ${run.failureMessage}` : ''}`;
  if (run.status === 'Cancelled') return { instanceId, outcome: 'cancelled', execution: run.executionId, reason: cut(`its run was cancelled (its restore puts the instance back): ${why}`) };
  if (!ENDED.has(run.status)) return { instanceId, outcome: 'unknown', execution: run.executionId, reason: cut(`still ${run.status} when the report was written: see its execution`) };
  return { instanceId, outcome: 'failed', execution: run.executionId, reason: cut(run.status === 'Success' ? 'its run ended Success without writing its result' : why) };
}

/** The fleet report of the spec's instances from the children's results and runs. */
export function fleetReport(
  spec: RevokeSpec,
  results: Map<string, { result: ChildResult | undefined }>,
  runs: ChildRun[],
  keyPair: string,
  fleetCancelled = false,
): FleetReport {
  // The newest run of each instance counts (a retried target has several).
  const byInstance = new Map<string, ChildRun>();
  for (const r of runs) {
    if (!r.instanceId) continue;
    const known = byInstance.get(r.instanceId);
    if (!known || r.startTime > known.startTime) byInstance.set(r.instanceId, r);
  }
  const instances = spec.instanceIds.map((id) => entryOf(id, results.get(id)?.result, byInstance.get(id), fleetCancelled));
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

/** The spec of a run that chose nothing (for the report of a run that failed before resolve wrote one). */
function emptySpec(executionId: string): RevokeSpec {
  return {
    version: 1,
    parentExecutionId: executionId,
    action: { kind: 'revoke', mode: 'Audit', fingerprints: [], sources: [], replacementKey: '', allowStop: false },
    users: [],
    method: 'Auto',
    subnetId: 'CreateNewVPC',
    helperInstanceType: 't3.small',
    instanceIds: [],
    selection: 'none: the run failed before its instances were chosen',
  };
}

/** True when this execution is being cancelled (its own status, GetAutomationExecution: Cancelling). */
async function beingCancelled(ssm: SSMClient, executionId: string): Promise<boolean> {
  try {
    const e = (await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }))).AutomationExecution;
    return e?.AutomationExecutionStatus === 'Cancelling' || e?.AutomationExecutionStatus === 'Cancelled';
  } catch (err) {
    if (isAwsError(err, 'AutomationExecutionNotFoundException')) return false;
    throw err;
  }
}

/** The report a previous attempt wrote, or undefined. */
async function writtenReport(ssm: SSMClient, name: string): Promise<FleetReport | undefined> {
  try {
    const text = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
    return text ? (JSON.parse(text) as FleetReport) : undefined;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) return undefined;
    throw err;
  }
}

export async function gather(deps: GatherDeps, req: GatherRequest): Promise<GatherResult> {
  const specName = revokeSpecName(req.executionId);
  const reportName = revokeReportName(req.executionId);
  let spec: RevokeSpec;
  try {
    spec = await readRevokeSpec(deps.ssm, specName);
  } catch (err) {
    if (!(err instanceof InvalidInputError && /does not exist/.test(err.message))) throw err;
    // No spec: a retry of this step after it had finished (its report stands), or a run that
    // failed before resolve wrote one (nothing was chosen, tagged or started: nothing to gather).
    const done = await writtenReport(deps.ssm, reportName);
    if (done) return { report: done, reportName };
    deps.log.info('nothing to gather: no spec was written', { executionId: req.executionId });
    return { report: fleetReport(emptySpec(req.executionId), new Map(), [], 'not deleted: no instance was chosen'), reportName: 'none' };
  }
  let results = await readResults(deps.ssm, req.executionId);
  const missing = (): boolean => spec.instanceIds.some((id) => !results.get(id)?.result);
  // Stop what still runs (only on a cancel or a fan-out that failed early can anything run here).
  let runs = await findRuns(deps.ssm, req.childDocument, specName, missing(), Date.now() + SCAN_SECONDS * 1000);
  const stopped = await stopRuns(deps, runs, STOP_WAIT_SECONDS);
  if (stopped > 0) {
    deps.log.info('fleet children stopped', { executionId: req.executionId, stopped });
    results = await readResults(deps.ssm, req.executionId);
    if (missing()) runs = await findRuns(deps.ssm, req.childDocument, specName, true, Date.now() + SCAN_SECONDS * 1000);
  }
  const fleetCancelled = stopped > 0 || (missing() && (await beingCancelled(deps.ssm, req.executionId)));
  const report = fleetReport(spec, results, runs, 'not asked (DeleteKeyPair=False)', fleetCancelled);
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
    await deps.ssm.send(new DeleteParameterCommand({ Name: specName }));
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
  // The children's results are in the report now (and each in its own execution's outputs):
  // DeleteParameters takes at most 10 names (API_DeleteParameters.html, Names: 1-10 items).
  const names = [...results.values()].map((r) => r.name);
  for (let i = 0; i < names.length; i += 10) await deps.ssm.send(new DeleteParametersCommand({ Names: names.slice(i, i + 10) }));
  deps.log.info('fleet gathered', { executionId: req.executionId, ...report.counts });
  return { report, reportName };
}
