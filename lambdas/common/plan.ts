/**
 * The plan record, which is also the lock: one SSM String parameter per instance
 * (`/reset-access/locks/<instance-id>`), JSON, created by preflight without overwrite and rewritten
 * by every later step after it checked that the plan is its execution's. This file is the one
 * definition of its shape (docs/architecture.md, "The plan record (and lock)").
 */
import {
  DeleteParameterCommand,
  GetParameterCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { isAwsError, LockHeldError, PlanError } from './errors';
import type { BackupMethod, Method, SubnetChoice } from './validation';
import type { KeyType } from '@common/keys';
import type { RevokeAction } from '@common/revoke';
import { lockParameterName } from '@common/names';
import type { WindowsMode } from '@common/windows';

export const PLAN_VERSION = 1;
/** The lock parameter's name for `instanceId` (defined in @common/names, with the IAM paths). */
export { lockParameterName };

export interface PlanInputs {
  /** The Method the user asked for (Auto, Online, VolumeSwap, UserData). */
  method: Method;
  subnetId: SubnetChoice;
  helperInstanceType: string;
  keyType: KeyType;
  /** The user's public key line, or '' when the Lambda makes the key pair. */
  publicKey: string;
  users: string[];
  backupMethod: BackupMethod;
  allowEncryptedVolume: boolean;
  allowEphemeralDataLoss: boolean;
  /**
   * What the command does (issue 14). Absent: add the run's key (ResetAccess). A revoke (the
   * RevokeKey runbooks): the keys to take out, the mode and the replacement; injectKey sends the
   * revoke Command document instead of the inject-key one, and no key pair is made.
   */
  action?: RevokeAction;
  /** Windows only (issue 15): EnablePasswordGeneration or NewPassword. Absent in older plans. */
  mode?: WindowsMode;
}

export type OriginalState = 'running' | 'stopped';

/** The ways back in that actually run (Auto is a request, never a choice). */
export type ChosenMethod = 'Online' | 'VolumeSwap' | 'UserData';

/**
 * What runs and why. The runbook's branchOnMethod reads it from preflight's Payload (MethodToken,
 * lambdas/preflight/handler.ts). The plan JSON carries it too (planJson: `chosen` first, so that
 * methodMarker finds it), where JSON.stringify escapes every `"` inside a string value, so no
 * user value can forge the marker there.
 */
export interface PlanMethod {
  chosen: ChosenMethod;
  /** Short, for the outputs (summarize cuts it to fit 512 characters). */
  reason: string;
}

/** The text that marks the plan's method in the plan JSON (planJson), per chosen method. */
export function methodMarker(chosen: ChosenMethod): string {
  return `"method":{"chosen":"${chosen}"`;
}

export interface PlanInstance {
  originalState: OriginalState;
  rootVolumeId: string;
  rootDeviceName: string;
  deleteOnTermination: boolean;
  availabilityZone: string;
  architecture: string;
  subnetId: string;
  vpcId: string;
  publicIpAddress: string;
  elasticIp: boolean;
  /** `windows` for a Windows target (issue 15); absent (Linux) in older plans. */
  platform?: 'linux' | 'windows';
  /** The instance's key pair name ('' when it has none): EnablePasswordGeneration needs one. */
  keyName?: string;
}

/** Every resource this execution created, recorded right after its create call. */
export interface PlanCreated {
  helperInstanceId?: string;
  vpcId?: string;
  subnetId?: string;
  internetGatewayId?: string;
  routeTableId?: string;
  securityGroupId?: string;
  backupId?: string;
  keyParameterName?: string;
  commandId?: string;
  /** Windows, Mode=NewPassword: the run's private key SecureString (deleted once the password is stored). */
  runKeyParameterName?: string;
  /** Windows, Mode=NewPassword: the SecureString with the new password. */
  passwordParameterName?: string;
}

export type Phase =
  | 'preflight'
  /** Online: the backup is started (the instance runs on). */
  | 'backup-started'
  /** Online: the inject command ended with the key in place. */
  | 'key-injected'
  | 'stop-requested'
  | 'helper-launched'
  | 'root-detached'
  | 'attached-to-helper'
  | 'injection-sent'
  | 'released-from-helper'
  | 'root-reattached'
  | 'started'
  | 'restored'
  | 'cleaned-up';

export interface PlanProgress {
  keyInjected: boolean;
  phase: Phase;
  /**
   * Restore attempts that waited out their budget for the inject command to end (restore.ts): the
   * first one makes the attempt fail (Automation retries it), a later one forces the detach.
   */
  commandWaitsExhausted?: number;
  /** Restore detached the root volume from the helper with Force (its result asks for a filesystem check). */
  forcedDetach?: boolean;
  /** Windows (issue 15): when startWindows requested the start (ISO 8601), kept before its StartInstances (review W1). */
  startRequestedAt?: string;
  /** Windows: StartInstances returned without an error (the boot with the trigger may have begun). */
  startAccepted?: boolean;
  /** Windows: the windows-reset command restore sent with Mode=Revert (review W2), and whether it undid the run's writes. */
  revertCommandId?: string;
  windowsReverted?: boolean;
}

export interface Plan {
  version: typeof PLAN_VERSION;
  executionId: string;
  instanceId: string;
  createdAt: string;
  inputs: PlanInputs;
  /** Written by preflight right after `inputs` (key order fixed: see PlanMethod). */
  method: PlanMethod;
  instance: PlanInstance;
  created: PlanCreated;
  progress: PlanProgress;
}

function parsePlan(text: string | undefined, name: string): Plan {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    throw new PlanError(`The plan record ${name} is not JSON; delete the parameter if no run is going on this instance`);
  }
  const p = value as Partial<Plan> | null;
  if (
    !p ||
    typeof p !== 'object' ||
    p.version !== PLAN_VERSION ||
    typeof p.executionId !== 'string' ||
    typeof p.instanceId !== 'string' ||
    !p.inputs ||
    (p.method !== undefined && (typeof p.method !== 'object' || p.method === null || typeof p.method.chosen !== 'string')) ||
    !p.instance ||
    !p.created ||
    !p.progress
  ) {
    throw new PlanError(
      `The plan record ${name} is not a version ${PLAN_VERSION} plan; delete the parameter if no run is going on this instance`,
    );
  }
  // A plan written before the Method parameter existed is a volume swap's.
  if (p.method === undefined) p.method = { chosen: 'VolumeSwap', reason: 'plan written before methods existed' };
  if (p.inputs.method === undefined) p.inputs.method = 'VolumeSwap';
  return p as Plan;
}

/** The plan of `instanceId`, or undefined when there is none. */
export async function readPlan(ssm: SSMClient, instanceId: string): Promise<Plan | undefined> {
  const name = lockParameterName(instanceId);
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: name }));
    return parsePlan(out.Parameter?.Value, name);
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) return undefined;
    throw err;
  }
}

/**
 * Who holds the lock of `instanceId`: undefined when there is no lock, `{ executionId: undefined }`
 * when the record names no execution. Only `executionId` is read, so that a partial or older
 * record still names its holder.
 */
export async function readLockHolder(ssm: SSMClient, instanceId: string): Promise<{ executionId?: string } | undefined> {
  let text: string | undefined;
  try {
    text = (await ssm.send(new GetParameterCommand({ Name: lockParameterName(instanceId) }))).Parameter?.Value;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) return undefined;
    throw err;
  }
  try {
    const value = JSON.parse(text ?? '') as { executionId?: unknown } | null;
    const id = value && typeof value === 'object' ? value.executionId : undefined;
    return { executionId: typeof id === 'string' && id !== '' ? id : undefined };
  } catch {
    return { executionId: undefined };
  }
}

/** The plan of `instanceId` if it belongs to `executionId`; throws PlanError otherwise. */
export async function loadOwnPlan(ssm: SSMClient, instanceId: string, executionId: string): Promise<Plan> {
  const plan = await readPlan(ssm, instanceId);
  if (!plan) {
    throw new PlanError(`No plan record ${lockParameterName(instanceId)}: preflight did not run for execution ${executionId}`);
  }
  if (plan.executionId !== executionId) {
    throw new PlanError(
      `The plan record ${lockParameterName(instanceId)} belongs to execution ${plan.executionId}, not ${executionId}; not touching it`,
    );
  }
  return plan;
}

/**
 * The plan as stored: JSON.stringify of the record with `method` written as `{ chosen, reason }`
 * in that order whatever order the object in memory has, so that methodMarker(chosen) appears
 * exactly once, where the plan's method is.
 */
export function planJson(plan: Plan): string {
  const { method, ...rest } = plan;
  const ordered: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) {
    ordered[k] = v;
    if (k === 'inputs') ordered.method = { chosen: method.chosen, reason: method.reason };
  }
  if (!('method' in ordered)) ordered.method = { chosen: method.chosen, reason: method.reason };
  return JSON.stringify(ordered);
}

function putRequest(plan: Plan, overwrite: boolean): PutParameterCommand {
  return new PutParameterCommand({
    Name: lockParameterName(plan.instanceId),
    Value: planJson(plan),
    Type: 'String',
    Overwrite: overwrite,
    // Intelligent-Tiering stays Standard (free) under 4 KB and moves to Advanced only for a plan
    // holding a very long user public key.
    Tier: 'Intelligent-Tiering',
    Description: `ec2-reset-access plan and lock of execution ${plan.executionId}`,
  });
}

/**
 * Creates the plan without overwrite: the lock. Throws LockHeldError when a plan exists already
 * (the caller decides whether to take it over).
 */
export async function createPlan(ssm: SSMClient, plan: Plan): Promise<void> {
  try {
    await ssm.send(putRequest(plan, false));
  } catch (err) {
    if (isAwsError(err, 'ParameterAlreadyExists')) {
      throw new LockHeldError(`Instance ${plan.instanceId} is locked: ${lockParameterName(plan.instanceId)} exists`);
    }
    throw err;
  }
}

/**
 * Reads the plan, checks it is `executionId`'s, applies `change`, writes it back (overwrite) and
 * returns it. The read-check-write is not atomic: SSM has no compare-and-set on a parameter; the
 * lock makes a concurrent writer of another execution unlikely, and the check refuses a stale one.
 */
export async function updatePlan(
  ssm: SSMClient,
  instanceId: string,
  executionId: string,
  change: (plan: Plan) => void,
): Promise<Plan> {
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  change(plan);
  if (plan.executionId !== executionId || plan.instanceId !== instanceId) {
    throw new PlanError('A plan update may not change the execution id or the instance id');
  }
  await ssm.send(putRequest(plan, true));
  return plan;
}

/**
 * Deletes the plan (releases the lock) when it is `executionId`'s. Returns true when deleted,
 * false when there was none or it is another execution's (left untouched).
 */
export async function deletePlan(ssm: SSMClient, instanceId: string, executionId: string): Promise<boolean> {
  const plan = await readPlan(ssm, instanceId);
  if (!plan || plan.executionId !== executionId) return false;
  return deleteLockParameter(ssm, instanceId);
}

/** Deletes the lock parameter unconditionally (preflight's take-over of a finished run). */
export async function deleteLockParameter(ssm: SSMClient, instanceId: string): Promise<boolean> {
  try {
    await ssm.send(new DeleteParameterCommand({ Name: lockParameterName(instanceId) }));
    return true;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) return false;
    throw err;
  }
}
