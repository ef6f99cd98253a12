/**
 * `ec2-reset-access status [execution-id|instance-id]`.
 * - an execution id: its state and each step's;
 * - an instance id: its lock record (/reset-access/locks/<id>), the lock tags on it and its root
 *   volume, and the latest executions of the document for it;
 * - nothing: every instance and volume still carrying a `reset-access:lock` tag, and every lock
 *   record, with the state of the execution each names (issue 11).
 */
import { DescribeInstancesCommand, DescribeVolumesCommand, type EC2Client, type Instance, type Volume } from '@aws-sdk/client-ec2';
import {
  DescribeAutomationExecutionsCommand,
  DescribeParametersCommand,
  GetAutomationExecutionCommand,
  GetParameterCommand,
  type AutomationExecutionMetadata,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { LOCK_TAG_KEY } from '../../lambdas/common/tags';
import { LOCK_PATH, lockParameterName } from '../../lambdas/common/names';
import { awsErrorName } from '../aws';
import { judge, readExecution, stepLine } from '../execution';
import { formatDuration, table } from '../format';
import { EXIT, UsageError, type ExitCode } from '../exit-codes';
import type { CommonOptions, Io } from '../io';
import { describeInstance, INSTANCE_ID } from './reset';

export const EXECUTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface StatusOptions extends CommonOptions {
  readonly documentName: string;
}

/** The state of execution `id`, or `unknown (<error>)`. */
async function executionState(ssm: SSMClient, id: string | undefined): Promise<string> {
  if (!id) return 'unknown (no execution id)';
  try {
    const out = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id }));
    return out.AutomationExecution?.AutomationExecutionStatus ?? 'unknown';
  } catch (err) {
    return `unknown (${awsErrorName(err) ?? 'error'})`;
  }
}

interface LockRecord {
  name: string;
  instanceId: string;
  executionId?: string;
  phase?: string;
  createdAt?: string;
}

/** A lock record's public facts (the plan holds no secret: at most a public key line, not shown). */
export function parseLockRecord(name: string, value: string | undefined): LockRecord {
  const instanceId = name.split('/').pop() ?? '?';
  try {
    const p = JSON.parse(value ?? '') as { executionId?: unknown; progress?: { phase?: unknown }; createdAt?: unknown };
    return {
      name,
      instanceId,
      ...(typeof p.executionId === 'string' ? { executionId: p.executionId } : {}),
      ...(typeof p.progress?.phase === 'string' ? { phase: p.progress.phase } : {}),
      ...(typeof p.createdAt === 'string' ? { createdAt: p.createdAt } : {}),
    };
  } catch {
    return { name, instanceId };
  }
}

async function lockRecord(ssm: SSMClient, name: string): Promise<LockRecord | undefined> {
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: name }));
    return parseLockRecord(name, out.Parameter?.Value);
  } catch (err) {
    if (awsErrorName(err) === 'ParameterNotFound') return undefined;
    throw err;
  }
}

async function allLockRecords(ssm: SSMClient): Promise<LockRecord[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    const out = await ssm.send(
      new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Path', Option: 'OneLevel', Values: [`/${LOCK_PATH}`] }], NextToken: token, MaxResults: 50 }),
    );
    names.push(...(out.Parameters ?? []).map((p) => p.Name ?? '').filter(Boolean));
    token = out.NextToken;
  } while (token);
  const records: LockRecord[] = [];
  for (const n of names) {
    const r = await lockRecord(ssm, n);
    if (r) records.push(r);
  }
  return records;
}

async function taggedInstances(ec2: EC2Client): Promise<Instance[]> {
  const all: Instance[] = [];
  let token: string | undefined;
  do {
    const out = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag-key', Values: [LOCK_TAG_KEY] }], NextToken: token }));
    all.push(...(out.Reservations ?? []).flatMap((r) => r.Instances ?? []));
    token = out.NextToken;
  } while (token);
  return all;
}

async function taggedVolumes(ec2: EC2Client, volumeIds?: string[]): Promise<Volume[]> {
  const all: Volume[] = [];
  let token: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeVolumesCommand(volumeIds ? { VolumeIds: volumeIds } : { Filters: [{ Name: 'tag-key', Values: [LOCK_TAG_KEY] }], NextToken: token }),
    );
    all.push(...(out.Volumes ?? []));
    token = volumeIds ? undefined : out.NextToken;
  } while (token);
  return all;
}

const lockOf = (tags: { Key?: string; Value?: string }[] | undefined): string | undefined => tags?.find((t) => t.Key === LOCK_TAG_KEY)?.Value;

/** The latest executions of `documentName` (and its -Restore) whose InstanceId is `instanceId`. */
async function executionsFor(ssm: SSMClient, documentName: string, instanceId: string, limit: number): Promise<AutomationExecutionMetadata[]> {
  const metas: AutomationExecutionMetadata[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const out = await ssm.send(
      new DescribeAutomationExecutionsCommand({ Filters: [{ Key: 'DocumentNamePrefix', Values: [documentName] }], NextToken: token, MaxResults: 50 }),
    );
    metas.push(...(out.AutomationExecutionMetadataList ?? []));
    token = out.NextToken;
  } while (token && ++pages < 4);
  metas.sort((a, b) => (b.ExecutionStartTime?.getTime() ?? 0) - (a.ExecutionStartTime?.getTime() ?? 0));
  // The metadata carries no parameters: GetAutomationExecution tells which instance each is for.
  const mine: AutomationExecutionMetadata[] = [];
  for (const m of metas.slice(0, 25)) {
    if (mine.length >= limit) break;
    const got = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: m.AutomationExecutionId }));
    if (got.AutomationExecution?.Parameters?.InstanceId?.[0] === instanceId) mine.push(m);
  }
  return mine;
}

export async function status(target: string | undefined, o: StatusOptions, io: Io): Promise<ExitCode> {
  const { ssm, ec2 } = io.clients(o);
  if (target === undefined) return statusAll(ssm, ec2, o, io);
  if (EXECUTION_ID.test(target)) return statusExecution(ssm, target, o, io);
  if (INSTANCE_ID.test(target)) return statusInstance(ssm, ec2, target, o, io);
  throw new UsageError(`"${target}" is neither an execution id (a UUID) nor an instance id (i-...)`);
}

async function statusExecution(ssm: SSMClient, id: string, o: StatusOptions, io: Io): Promise<ExitCode> {
  const snap = await readExecution(ssm, id);
  const outcome = judge(snap);
  const steps = snap.steps.map(stepLine);
  const e = snap.execution;
  if (o.json) {
    io.out(`${JSON.stringify({ executionId: id, documentName: e.DocumentName, status: e.AutomationExecutionStatus, instanceId: e.Parameters?.InstanceId?.[0], outcome: outcome.kind, failedStep: outcome.failedStep, restoreExecutionId: outcome.restoreExecutionId, steps, outputs: e.Outputs })}\n`);
    return EXIT.ok;
  }
  const lines = [
    `Execution ${id} of ${e.DocumentName ?? '?'} for ${e.Parameters?.InstanceId?.[0] ?? '?'}: ${e.AutomationExecutionStatus ?? '?'} (${outcome.kind})`,
    table([['step', 'status', 'elapsed', 'message'], ...steps.map((s) => [s.name, s.status, s.elapsedMs !== undefined ? formatDuration(s.elapsedMs) : '', s.message ?? ''])]),
  ];
  if (outcome.restoreExecutionId) lines.push(`Restore execution: ${outcome.restoreExecutionId}`);
  io.out(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

async function statusInstance(ssm: SSMClient, ec2: EC2Client, instanceId: string, o: StatusOptions, io: Io): Promise<ExitCode> {
  const instance = await describeInstance(ec2, instanceId);
  const rootId = instance.BlockDeviceMappings?.find((b) => b.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
  const volume = rootId ? (await taggedVolumes(ec2, [rootId]))[0] : undefined;
  const lock = await lockRecord(ssm, lockParameterName(instanceId));
  const lockState = lock ? await executionState(ssm, lock.executionId) : undefined;
  const instanceLock = lockOf(instance.Tags);
  const volumeLock = lockOf(volume?.Tags);
  const executions = await executionsFor(ssm, o.documentName, instanceId, 5);
  const result = {
    instanceId,
    state: instance.State?.Name,
    lockRecord: lock ? { ...lock, executionState: lockState } : null,
    lockTags: {
      instance: instanceLock ? { executionId: instanceLock, executionState: await executionState(ssm, instanceLock) } : null,
      rootVolume: volumeLock ? { volumeId: rootId, executionId: volumeLock, executionState: await executionState(ssm, volumeLock) } : null,
    },
    executions: executions.map((m) => ({ executionId: m.AutomationExecutionId, documentName: m.DocumentName, status: m.AutomationExecutionStatus, startTime: m.ExecutionStartTime?.toISOString() })),
  };
  if (o.json) {
    io.out(`${JSON.stringify(result)}\n`);
    return EXIT.ok;
  }
  const lines = [`Instance ${instanceId}: ${result.state ?? '?'}`];
  lines.push(lock ? `  lock record ${lock.name}: execution ${lock.executionId ?? '?'} (${lockState}), phase ${lock.phase ?? '?'}` : '  no lock record');
  lines.push(result.lockTags.instance ? `  lock tag on the instance: ${instanceLock} (${result.lockTags.instance.executionState})` : '  no lock tag on the instance');
  lines.push(result.lockTags.rootVolume ? `  lock tag on root volume ${rootId}: ${volumeLock} (${result.lockTags.rootVolume.executionState})` : '  no lock tag on the root volume');
  if (executions.length === 0) lines.push(`  no recent execution of ${o.documentName}* for it`);
  else lines.push('  latest executions:', ...result.executions.map((e) => `    ${e.executionId}  ${e.documentName}  ${e.status}  ${e.startTime ?? ''}`));
  io.out(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

async function statusAll(ssm: SSMClient, ec2: EC2Client, o: StatusOptions, io: Io): Promise<ExitCode> {
  const instances = await taggedInstances(ec2);
  const volumes = await taggedVolumes(ec2);
  const locks = await allLockRecords(ssm);
  const states = new Map<string, string>();
  const stateOf = async (id: string | undefined): Promise<string> => {
    if (!id) return 'unknown (no execution id)';
    if (!states.has(id)) states.set(id, await executionState(ssm, id));
    return states.get(id) as string;
  };
  const rows: { kind: string; id: string; executionId?: string; executionState: string }[] = [];
  for (const i of instances) rows.push({ kind: 'instance tag', id: i.InstanceId ?? '?', executionId: lockOf(i.Tags), executionState: await stateOf(lockOf(i.Tags)) });
  for (const v of volumes) rows.push({ kind: 'volume tag', id: v.VolumeId ?? '?', executionId: lockOf(v.Tags), executionState: await stateOf(lockOf(v.Tags)) });
  for (const l of locks) rows.push({ kind: 'lock record', id: l.instanceId, executionId: l.executionId, executionState: await stateOf(l.executionId) });
  if (o.json) {
    io.out(`${JSON.stringify({ locks: rows })}\n`);
    return EXIT.ok;
  }
  if (rows.length === 0) io.out('No instance or volume carries a reset-access:lock tag, and no lock record exists.\n');
  else io.out(`${table([['what', 'id', 'execution', 'state'], ...rows.map((r) => [r.kind, r.id, r.executionId ?? '?', r.executionState])])}\n`);
  return EXIT.ok;
}
