/** Step `preflight`: validate, describe, refuse, take the lock, write the plan. */
import { autoScaling } from '@common/clients/auto-scaling';
import { ec2 } from '@common/clients/ec2';
import { kms } from '@common/clients/kms';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { InvalidInputError } from '@common/errors';
import { outputFields } from '@common/outputs';
import { lockParameterName, type Plan } from '@common/plan';
import {
  requireObject,
  validateBackupMethod,
  validateFlag,
  validateInstanceType,
  validateKeyType,
  validateMethod,
  validatePublicKey,
  validateStepInput,
  validateSubnetChoice,
  validateUsers,
} from '@common/validation';
import {
  readRevokeSpec,
  resolveRevokeAction,
  revokeInputsOf,
  validateRevokeMethod,
  validateRevokeUsers,
  type RevokeAction,
  type RevokeKeyDeps,
} from '@common/revoke';
import { platformToken, validateMode } from '@common/windows';
import { preflight, preflightOrUnreachable, resolvePublicKey, Unreachable, type PreflightRequest } from './preflight';

export interface PreflightOutput {
  RootVolumeId: string;
  RootDeviceName: string;
  OriginalState: 'running' | 'stopped';
  AvailabilityZone: string;
  LockParameterName: string;
  /** The method that runs: Online, VolumeSwap or UserData. */
  Method: string;
  /** Why (at most METHOD_REASON_CHARS; summarize cuts it further to fit the runbook's output). */
  MethodReason: string;
  /**
   * `|method:<chosen>|`: what branchOnMethod looks for in this Payload (Contains). No character a
   * JSON serializer escapes or spaces; '|' appears nowhere else in the Payload (tokenSafe).
   */
  MethodToken: string;
  /** `|platform:windows|` or `|platform:linux|`: what branchOnPlatform looks for (Contains), as MethodToken. */
  PlatformToken: string;
}

export const OUTPUT_FIELDS = outputFields<PreflightOutput>()([
  'RootVolumeId',
  'RootDeviceName',
  'OriginalState',
  'AvailabilityZone',
  'LockParameterName',
  'Method',
  'MethodReason',
  'MethodToken',
  'PlatformToken',
]);

/** The longest MethodReason in this Payload: with the other fields, far under 512 characters. */
export const METHOD_REASON_CHARS = 160;

/** branchOnMethod's token for a chosen method. */
export function methodToken(chosen: string): string {
  return `|method:${chosen}|`;
}

/**
 * A field of this Payload other than MethodToken, with every '|' replaced by '/': no value that
 * comes from the instance or its agent can then spell a token. (No user parameter allows '|' in the
 * first place: the runbook's allowedPatterns, test/unit/lambdas/preflight.test.ts.)
 */
export function tokenSafe(value: string): string {
  return value.replace(/\|/g, '/');
}

const log = createLogger('reset-access-preflight');

/** PublicKeyParameter as given ('' when absent; checked fully by resolvePublicKey). */
export function parsePublicKeyParameter(event: unknown): string {
  const v = requireObject(event).PublicKeyParameter;
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new InvalidInputError('PublicKeyParameter is not a string');
  return v.trim();
}

/** Every input checked before any AWS call; throws InvalidInputError naming the field. */
export function parseRequest(event: unknown): PreflightRequest {
  const { executionId, instanceId } = validateStepInput(event);
  const o = requireObject(event);
  return {
    executionId,
    instanceId,
    inputs: {
      method: validateMethod(o.Method),
      subnetId: validateSubnetChoice(o.SubnetId),
      helperInstanceType: validateInstanceType(o.HelperInstanceType),
      keyType: validateKeyType(o.KeyType),
      publicKey: validatePublicKey(o.PublicKey).line,
      users: validateUsers(o.Users),
      backupMethod: validateBackupMethod(o.BackupMethod),
      allowEncryptedVolume: validateFlag(o.AllowEncryptedVolume, 'AllowEncryptedVolume'),
      allowEphemeralDataLoss: validateFlag(o.AllowEphemeralDataLoss, 'AllowEphemeralDataLoss'),
      mode: validateMode(o.Mode),
    },
  };
}

/**
 * The request of a revoke run (the RevokeKey-Instance runbook, `Action: Revoke`): the keys as
 * fingerprints, from the fleet's spec (RevokeSpec, written by the fleet's resolve step) or from the
 * runbook's own parameters, never both. The volume swap backs up the root only when it changes
 * something (Revoke: a snapshot; Audit: none).
 */
export async function parseRevokeRequest(deps: RevokeKeyDeps, event: unknown): Promise<PreflightRequest> {
  const { executionId, instanceId } = validateStepInput(event);
  const o = requireObject(event);
  const specName = typeof o.RevokeSpec === 'string' ? o.RevokeSpec.trim() : '';
  let action: RevokeAction;
  let users: string[];
  let method: ReturnType<typeof validateRevokeMethod>;
  let subnetId = validateSubnetChoice(o.SubnetId ?? 'CreateNewVPC');
  let helperInstanceType = validateInstanceType(o.HelperInstanceType ?? 't3.small');
  if (specName !== '') {
    const given = revokeInputsOf(o);
    if (given.fingerprints || given.keyPairName || given.publicKeyParameter || given.replacementPublicKey) {
      throw new InvalidInputError('Give RevokeSpec (a fleet run) or the keys to revoke, not both');
    }
    const spec = await readRevokeSpec(deps.ssm, specName);
    if (!spec.instanceIds.includes(instanceId)) throw new InvalidInputError(`Instance ${instanceId} is not one the fleet run ${spec.parentExecutionId} selected`);
    action = spec.action;
    users = spec.users;
    method = spec.method;
    subnetId = validateSubnetChoice(spec.subnetId);
    helperInstanceType = validateInstanceType(spec.helperInstanceType);
  } else {
    action = await resolveRevokeAction(deps, revokeInputsOf(o));
    users = validateRevokeUsers(o.Users);
    method = validateRevokeMethod(o.Method);
  }
  return {
    executionId,
    instanceId,
    inputs: {
      method,
      subnetId,
      helperInstanceType,
      keyType: 'ed25519',
      publicKey: '',
      users,
      backupMethod: action.mode === 'Revoke' ? 'Snapshot' : 'None',
      allowEncryptedVolume: true,
      allowEphemeralDataLoss: false,
      action,
    },
  };
}

/** The Payload of an unreachable instance (revoke only): no lock, no plan, nothing changed. */
export function unreachableOutput(reason: string, kind: 'Unreachable' | 'Windows' = 'Unreachable'): PreflightOutput {
  const cut = reason.length > METHOD_REASON_CHARS ? `${reason.slice(0, METHOD_REASON_CHARS - 1)}…` : reason;
  return {
    RootVolumeId: 'none',
    RootDeviceName: 'none',
    OriginalState: 'running',
    AvailabilityZone: 'none',
    LockParameterName: 'none',
    // The branch token is the same for both (nothing to run); Method tells the report which.
    Method: kind,
    MethodReason: tokenSafe(cut),
    MethodToken: methodToken('Unreachable'),
    // RevokeKey-Instance has no platform branch; a Windows instance is reported before any step runs.
    PlatformToken: platformToken(kind === 'Windows' ? 'windows' : 'linux'),
  };
}

export async function handler(event: unknown): Promise<PreflightOutput> {
  if (requireObject(event).Action === 'Revoke') {
    const request = await parseRevokeRequest({ ec2, ssm }, event);
    const result = await preflightOrUnreachable({ ec2, ssm, kms, autoScaling, log, now: () => new Date() }, request);
    return result instanceof Unreachable ? unreachableOutput(result.reason, result.kind) : outputOf(result);
  }
  const request = parseRequest(event);
  request.inputs.publicKey = await resolvePublicKey(ssm, request.inputs.publicKey, parsePublicKeyParameter(event));
  const plan = await preflight({ ec2, ssm, kms, autoScaling, log, now: () => new Date() }, request);
  return outputOf(plan);
}

/** The Payload of a plan (exported for the test of its token). */
export function outputOf(plan: Plan): PreflightOutput {
  const reason = plan.method.reason.length > METHOD_REASON_CHARS ? `${plan.method.reason.slice(0, METHOD_REASON_CHARS - 1)}…` : plan.method.reason;
  return {
    RootVolumeId: tokenSafe(plan.instance.rootVolumeId),
    RootDeviceName: tokenSafe(plan.instance.rootDeviceName),
    OriginalState: plan.instance.originalState,
    AvailabilityZone: tokenSafe(plan.instance.availabilityZone),
    LockParameterName: tokenSafe(lockParameterName(plan.instanceId)),
    Method: plan.method.chosen,
    MethodReason: tokenSafe(reason),
    MethodToken: methodToken(plan.method.chosen),
    PlatformToken: platformToken(plan.instance.platform === 'windows' ? 'windows' : 'linux'),
  };
}
