/**
 * Preflight: describe the instance, refuse what cannot be done safely (changing nothing), then
 * take the lock by writing the plan record.
 */
import { DescribeAutoScalingInstancesCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import {
  DescribeAddressesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstanceTypesCommand,
  DescribeSpotInstanceRequestsCommand,
  DescribeSubnetsCommand,
  type EC2Client,
  type Instance,
  type InstanceTypeInfo,
  type _InstanceType,
  type Volume,
} from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { GetAutomationExecutionCommand, GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { findInstance, findVolume } from '@common/ec2';
import { addLockTag, removeLockTag } from '@common/lock-tag';
import { LOCK_TAG_KEY, lockTagOf } from '@common/tags';
import { awsErrorCode, InvalidInputError, isAwsError, LockHeldError, PlanError, RefusedError } from '@common/errors';
import { PUBLIC_KEY_PATH } from '@common/names';
import { validatePublicKey } from '@common/validation';
import type { Logger } from '@common/log';
import {
  createPlan,
  deleteLockParameter,
  deletePlan,
  lockParameterName,
  PLAN_VERSION,
  readLockHolder,
  readPlan,
  type OriginalState,
  type Plan,
  type PlanInputs,
  type PlanInstance,
  type PlanMethod,
  updatePlan,
} from '@common/plan';
import { chooseMethod, managedInstance, onlineGaps } from './method';
import { checkUserDataFits } from '@common/user-data-store';
import { isWindows } from '@common/windows';

export interface PreflightDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly kms: KMSClient;
  readonly autoScaling: AutoScalingClient;
  readonly log: Logger;
  readonly now: () => Date;
}

export interface PreflightRequest {
  readonly executionId: string;
  readonly instanceId: string;
  readonly inputs: PlanInputs;
}

/** Statuses of an execution that can no longer touch the instance: its lock may be taken over. */
export const FINISHED_EXECUTION_STATUSES = ['Success', 'Failed', 'TimedOut', 'Cancelled', 'CompletedWithFailure'];

function refuse(instanceId: string, cause: string, wayOut: string): never {
  throw new RefusedError(`Refused: instance ${instanceId} ${cause}. ${wayOut}`);
}

/** A PublicKeyParameter name: under /reset-access/public-keys/, as the runbook's allowedPattern says. */
const PUBLIC_KEY_PARAMETER = new RegExp(`^/${PUBLIC_KEY_PATH}/[A-Za-z0-9_.-]{1,128}$`);

/**
 * The public key line to inject: PublicKey itself, or the value of the String parameter named by
 * PublicKeyParameter (for keys over the 512 characters an Automation parameter value may hold).
 * GetParameter returns a String parameter's value as stored
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html); a
 * SecureString's would come back encrypted without WithDecryption, so only String is taken.
 * Every refusal names the parameter, never its value.
 */
export async function resolvePublicKey(ssm: SSMClient, publicKey: string, publicKeyParameter: string): Promise<string> {
  if (publicKeyParameter === '') return publicKey;
  if (publicKey !== '') throw new InvalidInputError('Give PublicKey or PublicKeyParameter, not both');
  if (!PUBLIC_KEY_PARAMETER.test(publicKeyParameter)) {
    throw new InvalidInputError(`PublicKeyParameter must name a parameter under /${PUBLIC_KEY_PATH}/ (letters, digits, "_", "-", ".")`);
  }
  let value: string | undefined;
  let type: string | undefined;
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: publicKeyParameter }));
    value = out.Parameter?.Value;
    type = out.Parameter?.Type;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) throw new InvalidInputError(`PublicKeyParameter ${publicKeyParameter} does not exist`);
    throw err;
  }
  if (type !== 'String') throw new InvalidInputError(`PublicKeyParameter ${publicKeyParameter} is a ${type ?? 'parameter of no type'}; store the key line as a String`);
  // A value stored from a .pub file (file://) ends with the file's newline: one is dropped.
  const line = validatePublicKey(value?.replace(/\r?\n$/, ''), `PublicKeyParameter ${publicKeyParameter}`).line;
  if (line === '') throw new InvalidInputError(`PublicKeyParameter ${publicKeyParameter} is empty`);
  return line;
}

/**
 * A revoke run's decision for a running instance that only the volume swap could reach, with
 * AllowStop=False: it is reported unreachable and never stopped. Nothing is locked or changed.
 */
export class Unreachable {
  /** `Windows`: a Windows instance of a revoke run (no authorized_keys to clean; review F1). */
  public constructor(
    public readonly reason: string,
    public readonly kind: 'Unreachable' | 'Windows' = 'Unreachable',
  ) {}
}

/** Runs every check, then writes the plan. Returns the plan written. */
export async function preflight(deps: PreflightDeps, req: PreflightRequest): Promise<Plan> {
  const result = await preflightOrUnreachable(deps, req);
  if (result instanceof Unreachable) throw new RefusedError(`Refused: instance ${req.instanceId}: ${result.reason}`);
  return result;
}

/**
 * As preflight, for a revoke run too (`inputs.action`): an instance the run may not stop and cannot
 * reach online is answered Unreachable before any change, lock included.
 */
export async function preflightOrUnreachable(deps: PreflightDeps, req: PreflightRequest): Promise<Plan | Unreachable> {
  const inspected = await inspect(deps, req);
  if (inspected instanceof Unreachable) {
    deps.log.info('unreachable without a stop: not locked, not changed', { instanceId: req.instanceId, executionId: req.executionId });
    return inspected;
  }
  const { instance, method } = inspected;
  const plan: Plan = {
    version: PLAN_VERSION,
    executionId: req.executionId,
    instanceId: req.instanceId,
    createdAt: deps.now().toISOString(),
    inputs: req.inputs,
    // Right after inputs, `chosen` first: the runbook's branchOnMethod reads it (plan.ts, PlanMethod).
    method,
    instance,
    created: {},
    progress: { keyInjected: false, phase: 'preflight' },
  };
  await takeLock(deps, plan);
  await tagLocked(deps, plan);
  deps.log.info('plan written', { instanceId: req.instanceId, executionId: req.executionId, method: method.chosen, reason: method.reason });
  return plan;
}

/**
 * All the describes and refusals, and the choice of method; no call here changes anything. The
 * refusals that exist only because the volume swap stops the instance and moves its root (Spot,
 * Auto Scaling, stop protection, shutdown behaviour, instance-store data, Marketplace codes, the
 * helper's subnet and type) do not apply to the online method, which does neither. The user data
 * method stops the instance but never moves its root: the stop refusals apply, Marketplace codes
 * and the helper's checks do not; its user data must fit the SecureString that keeps it.
 */
async function inspect(deps: PreflightDeps, req: PreflightRequest): Promise<{ instance: PlanInstance; method: PlanMethod } | Unreachable> {
  const { ec2 } = deps;
  const id = req.instanceId;
  const instance = await findInstance(ec2, id);
  if (!instance) {
    refuse(id, 'was not found in this account and Region', 'Check the InstanceId and run the runbook in the Region of the instance.');
  }

  await checkLockTag(deps, req, id, lockTagOf(instance.Tags));
  // Reads that need only the instance, started together with the rest of the inspection (the
  // agent's registration below) instead of one after the other; each is awaited where it was
  // read before, so a refusal comes in the same order. Nothing here changes anything.
  const rootIdSeen = instance.BlockDeviceMappings?.find((m) => m.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
  const volumeRead = rootIdSeen ? findVolume(ec2, rootIdSeen) : undefined;
  const elasticIpRead = hasElasticIp(ec2, id);
  volumeRead?.catch(() => undefined);
  elasticIpRead.catch(() => undefined);
  // A revoke run reaches Windows instances through a key pair selection: there is no authorized_keys
  // to clean, and the key pair's real exposure there is the launch password (GetPasswordData is
  // "encrypted using the key pair that you specified when you launched the instance":
  // https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetPasswordData.html). Reported, not
  // touched: no stop, no helper, no lock.
  if (req.inputs.action && isWindows(instance)) {
    return new Unreachable(
      'runs Windows: no authorized_keys to revoke, but the leaked private key decrypts its launch password (GetPasswordData): reset its Administrator password',
      'Windows',
    );
  }
  const windows = checkPlatform(instance, id, req.inputs);
  const state = instance.State?.Name ?? 'unknown';
  if (state !== 'running' && state !== 'stopped') {
    refuse(id, `is ${state}`, 'Wait until it is running or stopped, then run again.');
  }
  // Systems Manager is asked only when the online method could run (Auto or Online on a running Linux instance).
  const asksOnline = !windows && (req.inputs.method === 'Auto' || req.inputs.method === 'Online');
  const info = asksOnline && state === 'running' ? await managedInstance(deps.ssm, id) : undefined;
  const method = windows ? windowsMethod(id, req.inputs) : chooseMethod(id, req.inputs.method, state, info);
  if (windows && req.inputs.mode === 'EnablePasswordGeneration' && !instance.KeyName) {
    refuse(id, 'runs Windows and has no key pair, so the password EC2 generates (GetPasswordData) could be decrypted by nobody', 'Run again with Mode=NewPassword: the new password is then stored as a SecureString.');
  }
  // A revoke never stops a running instance unless asked (AllowStop=True): one that only the volume
  // swap could reach is reported unreachable, before any refusal that exists because of a stop.
  if (req.inputs.action && method.chosen === 'VolumeSwap' && state === 'running' && !req.inputs.action.allowStop) {
    const gaps = onlineGaps(state, info);
    return new Unreachable(
      `running and ${gaps.length > 0 ? gaps.join('; ') : 'Method=VolumeSwap asked for'}; AllowStop=False, so it is not stopped for the volume swap`,
    );
  }
  const swap = method.chosen === 'VolumeSwap';
  const instanceStoreRoot = instance.RootDeviceType === 'instance-store';
  // The online method neither stops the instance nor moves its root: an instance-store root is no
  // obstacle, but it has no EBS volume to snapshot or image (CreateImage makes EBS-backed images).
  if (instanceStoreRoot && swap) {
    refuse(id, 'has an instance-store root volume, which cannot be detached or survive a stop', 'Use Method=Online if its SSM Agent is Online, or EC2 Instance Connect or Session Manager to add a key instead.');
  }
  if (instanceStoreRoot && req.inputs.backupMethod !== 'None') {
    refuse(id, 'has an instance-store root volume, which no snapshot or image can back up', 'Run again with BackupMethod=None (the online method changes only authorized_keys).');
  }
  if (swap && instance.ProductCodes?.some((p) => p.ProductCodeType === 'marketplace')) {
    refuse(id, 'has AWS Marketplace product codes on its root volume, which may not be attached to another instance', 'Run with Method=UserData (the key is added at boot, the root volume never moves), or use Method=Online if its SSM Agent is Online.');
  }
  // The user data method stops the instance too (twice), without moving its root.
  const stops = swap || method.chosen === 'UserData';
  if (method.chosen === 'UserData') {
    // cloud-init reads user data from the instance metadata service: with its endpoint disabled
    // ("If the value is disabled, you cannot access your instance metadata", EC2 API model,
    // InstanceMetadataOptionsResponse.HttpEndpoint) ours would never arrive (review U11).
    if (instance.MetadataOptions?.HttpEndpoint === 'disabled') {
      refuse(id, 'has its instance metadata service disabled, so cloud-init cannot read user data', `Enable it (aws ec2 modify-instance-metadata-options --instance-id ${id} --http-endpoint enabled), or use Method=VolumeSwap.`);
    }
    // Its original user data must fit the SecureString that keeps it (8 KB), before any change.
    await checkUserDataFits(ec2, id);
  }
  if (stops) {
    await checkSpot(ec2, instance, id);
    await checkAutoScaling(deps, instance, id);
    await checkAttributes(ec2, id);
    const targetType = await describeInstanceType(ec2, instance.InstanceType ?? '');
    // The instance's report is read with GetConsoleOutput Latest, "supported on instance types that
    // use the Nitro hypervisor" (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html);
    // elsewhere only a buffer posted at state transitions is given, which may never show it (review U4).
    // Mode=NewPassword reads the boot action's line the same way (windows-password).
    if (windows && req.inputs.mode === 'NewPassword' && targetType && targetType.Hypervisor !== 'nitro') {
      refuse(id, `is of type ${instance.InstanceType} (${targetType.Hypervisor ?? 'unknown'} hypervisor), whose latest console output cannot be read, so the run could not read the new password`, 'Run with Mode=EnablePasswordGeneration (GetPasswordData and the key pair), or change the instance type to a Nitro type first.');
    }
    if (method.chosen === 'UserData' && targetType && targetType.Hypervisor !== 'nitro') {
      refuse(id, `is of type ${instance.InstanceType} (${targetType.Hypervisor ?? 'unknown'} hypervisor), whose latest console output cannot be read, so the run could not learn that the key is in place`, 'Use Method=VolumeSwap, or Method=Online if its SSM Agent is Online.');
    }
    if (targetType?.InstanceStorageSupported && !req.inputs.allowEphemeralDataLoss) {
      refuse(id, `is of type ${instance.InstanceType}, which has instance-store volumes whose data is lost when it stops`, 'Copy that data away and run again with AllowEphemeralDataLoss=True.');
    }
  }

  const rootDeviceName = instance.RootDeviceName ?? '';
  const mapping = instance.BlockDeviceMappings?.find((m) => m.DeviceName === rootDeviceName);
  const rootVolumeId = mapping?.Ebs?.VolumeId;
  if (!rootVolumeId && !instanceStoreRoot) {
    refuse(id, `has no EBS volume attached at its root device ${rootDeviceName || '(none)'}`, 'Attach the root volume back at its device name (a failed earlier run names it), then run again.');
  }
  // The root volume's own lock tag, and for the volume swap its encryption (the helper must attach
  // it): the online method never attaches it anywhere, and EBS snapshots an encrypted volume with
  // its own key, so a KMS key the automation cannot describe is no reason to refuse it.
  if (rootVolumeId) await checkRootVolume(deps, req, rootVolumeId, swap, rootVolumeId === rootIdSeen ? volumeRead : undefined);

  const availabilityZone = instance.Placement?.AvailabilityZone ?? '';
  if (swap) {
    await checkSubnet(ec2, req.inputs.subnetId, instance, availabilityZone);
    await checkHelperType(ec2, req.inputs.helperInstanceType, id);
  }

  const elasticIp = await elasticIpRead;
  return { method, instance: {
    originalState: state as OriginalState,
    rootVolumeId: rootVolumeId ?? '',
    rootDeviceName,
    deleteOnTermination: mapping?.Ebs?.DeleteOnTermination ?? false,
    availabilityZone,
    architecture: instance.Architecture ?? '',
    subnetId: instance.SubnetId ?? '',
    vpcId: instance.VpcId ?? '',
    publicIpAddress: instance.PublicIpAddress ?? '',
    elasticIp,
    platform: windows ? 'windows' : 'linux',
    keyName: instance.KeyName ?? '',
  } };
}

/**
 * Windows (issue 15) from DescribeInstances: Platform `windows`, or PlatformDetails naming Windows
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html). A Windows target is
 * reset with the volume swap (Mode picks how the new password reaches the user); the Linux-only
 * inputs are refused rather than ignored, so nobody believes a key was put anywhere. KeyType has a
 * default and cannot tell an explicit rsa: it is ignored (the description says so). A Linux target
 * refuses Mode=NewPassword, which means nothing there.
 */
function checkPlatform(instance: Instance, id: string, inputs: PlanInputs): boolean {
  const windows = isWindows(instance);
  if (!windows) {
    if (inputs.mode === 'NewPassword') refuse(id, 'runs Linux; Mode=NewPassword is for Windows instances', 'Run again without Mode (the new SSH key pair is stored as a SecureString).');
    return false;
  }
  const linuxOnly = [
    ...(inputs.publicKey !== '' ? ['PublicKey or PublicKeyParameter'] : []),
    ...(inputs.users.length > 0 ? ['Users'] : []),
  ];
  if (linuxOnly.length > 0) {
    refuse(id, `runs Windows, where ${linuxOnly.join(' and ')} (SSH, Linux only) mean nothing`, 'Run again without them: Mode=EnablePasswordGeneration (default) or Mode=NewPassword resets the Administrator password.');
  }
  return true;
}

/** The method of a Windows target: the volume swap with a Linux helper; Online and UserData are Linux only. */
function windowsMethod(id: string, inputs: PlanInputs): PlanMethod {
  if (inputs.method === 'Online' || inputs.method === 'UserData') {
    refuse(id, `runs Windows; Method=${inputs.method} is for Linux instances`, 'Run again with Method=Auto or Method=VolumeSwap (the root volume is repaired on a Linux helper).');
  }
  const mode = inputs.mode ?? 'EnablePasswordGeneration';
  return { chosen: 'VolumeSwap', reason: `Windows (Mode=${mode}): the root volume is repaired on a Linux helper, then the instance starts` };
}

async function checkSpot(ec2: EC2Client, instance: Instance, id: string): Promise<void> {
  if (instance.InstanceLifecycle !== 'spot') return;
  let type: string | undefined;
  if (instance.SpotInstanceRequestId) {
    const out = await ec2.send(
      new DescribeSpotInstanceRequestsCommand({ SpotInstanceRequestIds: [instance.SpotInstanceRequestId] }),
    );
    type = out.SpotInstanceRequests?.[0]?.Type;
  }
  // A Spot instance whose request is gone or unknown is treated as one-time: it cannot be stopped.
  if (type !== 'persistent') {
    refuse(id, 'is a one-time Spot instance, which cannot be stopped and started', 'Use EC2 Instance Connect or Session Manager, or relaunch it from a snapshot of its root volume.');
  }
}

async function checkAutoScaling(deps: PreflightDeps, instance: Instance, id: string): Promise<void> {
  const tagged = instance.Tags?.find((t) => t.Key === 'aws:autoscaling:groupName')?.Value;
  let group = tagged;
  if (!group) {
    const out = await deps.autoScaling.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [id] }));
    group = out.AutoScalingInstances?.[0]?.AutoScalingGroupName;
  }
  if (group) {
    refuse(id, `is a member of Auto Scaling group ${group}, which would replace it when it stops`, 'Detach it from the group (or put it in Standby), run again, then attach it back.');
  }
}

async function checkAttributes(ec2: EC2Client, id: string): Promise<void> {
  const stop = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'disableApiStop' }));
  if (stop.DisableApiStop?.Value === true) {
    refuse(id, 'has stop protection on', `Turn it off (aws ec2 modify-instance-attribute --instance-id ${id} --no-disable-api-stop) and run again.`);
  }
  const shutdown = await ec2.send(
    new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'instanceInitiatedShutdownBehavior' }),
  );
  if (shutdown.InstanceInitiatedShutdownBehavior?.Value === 'terminate') {
    refuse(id, "has shutdown behaviour 'terminate'", `Set it to stop (aws ec2 modify-instance-attribute --instance-id ${id} --instance-initiated-shutdown-behavior stop) and run again.`);
  }
}

async function describeInstanceType(ec2: EC2Client, type: string): Promise<InstanceTypeInfo | undefined> {
  try {
    const out = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: [type as _InstanceType] }));
    return out.InstanceTypes?.[0];
  } catch (err) {
    if (isAwsError(err, 'InvalidInstanceType', 'InvalidParameterValue')) return undefined;
    throw err;
  }
}

async function checkRootVolume(deps: PreflightDeps, req: PreflightRequest, volumeId: string, moves: boolean, read?: Promise<Volume | undefined>): Promise<void> {
  const id = req.instanceId;
  const volume = await (read ?? findVolume(deps.ec2, volumeId));
  if (!volume) refuse(id, `has root volume ${volumeId}, which was not found`, 'Check the instance and run again.');
  await checkLockTag(deps, req, volumeId, lockTagOf(volume.Tags));
  if (!volume.Encrypted || !moves) return;
  if (!req.inputs.allowEncryptedVolume) {
    refuse(id, `has an encrypted root volume ${volumeId} and AllowEncryptedVolume is False`, 'Run again with AllowEncryptedVolume=True (the helper uses the same KMS key through EBS).');
  }
  if (!volume.KmsKeyId) return;
  let keyState: string | undefined;
  try {
    const out = await deps.kms.send(new DescribeKeyCommand({ KeyId: volume.KmsKeyId }));
    keyState = out.KeyMetadata?.KeyState;
  } catch (err) {
    refuse(id, `has root volume ${volumeId} encrypted with KMS key ${volume.KmsKeyId}, which cannot be described (${awsErrorCode(err) || 'error'})`, 'Give the automation role kms:DescribeKey and kms:CreateGrant on that key, then run again.');
  }
  if (keyState !== 'Enabled') {
    refuse(id, `has root volume ${volumeId} encrypted with KMS key ${volume.KmsKeyId}, which is ${keyState ?? 'in an unknown state'}`, 'Enable the key (or cancel its deletion), then run again.');
  }
}

async function checkSubnet(ec2: EC2Client, choice: string, instance: Instance, az: string): Promise<void> {
  const id = instance.InstanceId ?? '';
  if (choice === 'SelectedInstanceSubnet') {
    if (!instance.SubnetId) refuse(id, 'is not in a VPC subnet', 'Run again with SubnetId=CreateNewVPC.');
    return;
  }
  if (!choice.startsWith('subnet-')) return;
  let subnetAz: string | undefined;
  try {
    const out = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [choice] }));
    subnetAz = out.Subnets?.[0]?.AvailabilityZone;
  } catch (err) {
    if (!isAwsError(err, 'InvalidSubnetID.NotFound')) throw err;
  }
  if (!subnetAz) refuse(id, `cannot use subnet ${choice}: it was not found`, 'Give a subnet of this account and Region, or SubnetId=CreateNewVPC.');
  if (subnetAz !== az) {
    refuse(id, `is in ${az} but subnet ${choice} is in ${subnetAz}; a volume attaches only within its Availability Zone`, `Give a subnet in ${az}, SelectedInstanceSubnet, or CreateNewVPC.`);
  }
}

async function checkHelperType(ec2: EC2Client, type: string, id: string): Promise<void> {
  const info = await describeInstanceType(ec2, type);
  const archs = info?.ProcessorInfo?.SupportedArchitectures ?? [];
  if (!info || !archs.some((a) => a === 'x86_64' || a === 'arm64')) {
    refuse(id, `cannot use helper instance type ${type}: it is not an x86_64 or arm64 type offered in this Region`, 'Give another HelperInstanceType, for example t3.small or t4g.small.');
  }
  // The inject script finds the volume by its NVMe serial (/dev/disk/by-id/nvme-Amazon_Elastic_
  // Block_Store_vol...), which only Nitro instances expose. A Xen type (t2, m4, ...) would attach
  // the volume as /dev/xvdf and the script would wait for a device that never appears.
  if (info?.Hypervisor !== 'nitro') {
    refuse(id, `cannot use helper instance type ${type}: it is not a Nitro instance type, and the helper finds the volume by its NVMe serial`, 'Give a Nitro instance type, for example t3.small or t4g.small.');
  }
}

async function hasElasticIp(ec2: EC2Client, id: string): Promise<boolean> {
  const out = await ec2.send(new DescribeAddressesCommand({ Filters: [{ Name: 'instance-id', Values: [id] }] }));
  return (out.Addresses?.length ?? 0) > 0;
}

/**
 * A lock tag of another execution on the instance or its root volume is treated as a lock record
 * is (takeLock): an execution that has finished can no longer act, and its tag is taken over
 * (CreateTags overwrites the value); one still going, or unknown to Systems Manager, refuses the
 * run with nothing changed.
 */
async function checkLockTag(deps: PreflightDeps, req: PreflightRequest, resourceId: string, holder: string | undefined): Promise<void> {
  if (holder === undefined || holder === req.executionId) return;
  const status = holder ? await executionStatus(deps.ssm, holder) : undefined;
  if (status && FINISHED_EXECUTION_STATUSES.includes(status)) {
    deps.log.info('taking over the lock tag of a finished execution', { resourceId, previousExecutionId: holder, previousStatus: status });
    return;
  }
  throw new LockHeldError(
    `Refused: ${resourceId} carries the lock tag ${LOCK_TAG_KEY}=${holder} of execution ${holder || '(none)'} (${status ?? 'unknown to Systems Manager'}). ` +
      (status
        ? `Wait for it to finish, or stop it (aws ssm stop-automation-execution --automation-execution-id ${holder}), then run again.`
        : `If no run is going on this instance, remove the tag (aws ec2 delete-tags --resources ${resourceId} --tags Key=${LOCK_TAG_KEY}) and run again.`),
  );
}

/**
 * Puts this run's lock tag on the instance and its root volume, in the step that took the lock:
 * every later step may change them only while they carry it (IAM, lib/functions.ts). If tagging
 * fails, what was tagged is untagged and the lock released, so a refused run leaves nothing.
 */
async function tagLocked(deps: PreflightDeps, plan: Plan): Promise<void> {
  // An instance-store root (online method only) has no volume to tag.
  const ids = [plan.instanceId, plan.instance.rootVolumeId].filter((x) => x !== '');
  try {
    await addLockTag(deps.ec2, ids, plan.executionId);
  } catch (err) {
    deps.log.warn('could not tag the instance with the lock: releasing the lock', { instanceId: plan.instanceId });
    await removeLockTag(deps.ec2, plan.instanceId, plan.instance.rootVolumeId, plan.executionId);
    await deletePlan(deps.ssm, plan.instanceId, plan.executionId);
    throw err;
  }
}

/** Creates the plan without overwrite; takes over the lock of a finished execution. */
async function takeLock(deps: PreflightDeps, plan: Plan): Promise<void> {
  const name = lockParameterName(plan.instanceId);
  try {
    await createPlan(deps.ssm, plan);
    return;
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err;
  }
  const lock = await readLockHolder(deps.ssm, plan.instanceId);
  if (!lock) {
    // Deleted between our two calls: try once more.
    await createPlan(deps.ssm, plan);
    return;
  }
  const holder = lock.executionId;
  if (!holder) {
    throw new LockHeldError(`Refused: instance ${plan.instanceId} is locked by ${name}, which names no execution. If no run is going on this instance, delete that parameter and run again.`);
  }
  if (holder === plan.executionId) {
    // This same execution wrote it (a retried preflight, before any later step ran): rewrite it.
    await updatePlan(deps.ssm, plan.instanceId, plan.executionId, (p) => Object.assign(p, plan));
    return;
  }
  const status = await executionStatus(deps.ssm, holder);
  if (!status || !FINISHED_EXECUTION_STATUSES.includes(status)) {
    throw new LockHeldError(
      `Refused: instance ${plan.instanceId} is locked by execution ${holder} (${status ?? 'unknown to Systems Manager'}). ` +
        (status
          ? `Wait for it to finish, or stop it (aws ssm stop-automation-execution --automation-execution-id ${holder}), then run again.`
          : `If no run is going on this instance, delete the parameter ${name} and run again.`),
    );
  }
  if (status !== 'Success') {
    // A cancelled or failed run may have left the instance half done, and a cancel hands it to
    // the restore runbook, which may not have run yet: its plan must show nothing left to restore.
    const left = await leftToRestore(deps.ssm, plan.instanceId);
    if (left) {
      throw new LockHeldError(
        `Refused: instance ${plan.instanceId} is locked by execution ${holder} (${status}), whose plan shows the instance is not restored (${left}). ` +
          `Its restore runbook (<ResetAccess document>-Restore) may still be running: wait for it to end. If it failed or never ran, run it with ExecutionId ${holder} and InstanceId ${plan.instanceId}, then run again.`,
      );
    }
  }
  deps.log.info('taking over the lock of a finished execution', { instanceId: plan.instanceId, previousExecutionId: holder, previousStatus: status });
  await deleteLockParameter(deps.ssm, plan.instanceId);
  await createPlan(deps.ssm, plan);
}

/**
 * Why the plan of a finished execution still needs its restore, or undefined when nothing is left:
 * phase restored or cleaned-up, or preflight with nothing created yet.
 */
async function leftToRestore(ssm: SSMClient, instanceId: string): Promise<string | undefined> {
  let held: Plan | undefined;
  try {
    held = await readPlan(ssm, instanceId);
  } catch (err) {
    if (err instanceof PlanError) return 'its plan record cannot be read';
    throw err;
  }
  if (!held) return undefined;
  const { phase } = held.progress;
  if (phase === 'restored' || phase === 'cleaned-up') return undefined;
  const created = Object.entries(held.created).filter(([, v]) => v !== undefined && v !== '').map(([k]) => k);
  if (phase === 'preflight' && created.length === 0) return undefined;
  return `phase ${phase}${created.length > 0 ? `, created ${created.join(', ')}` : ''}`;
}

async function executionStatus(ssm: SSMClient, executionId: string): Promise<string | undefined> {
  try {
    const out = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }));
    return out.AutomationExecution?.AutomationExecutionStatus;
  } catch (err) {
    if (isAwsError(err, 'AutomationExecutionNotFoundException')) return undefined;
    throw err;
  }
}
