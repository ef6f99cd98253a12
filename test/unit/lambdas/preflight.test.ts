import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mockClient } from 'aws-sdk-client-mock';
import { AutoScalingClient, DescribeAutoScalingInstancesCommand } from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeAddressesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeSpotInstanceRequestsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  EC2Client,
  type Instance,
  type InstanceTypeInfo,
  type Volume,
} from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  DeleteParameterCommand,
  DescribeInstanceInformationCommand,
  GetAutomationExecutionCommand,
  GetParameterCommand,
  PutParameterCommand,
  SSMClient,
  type InstanceInformation,
} from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/preflight/handler';
import { compareVersions, MIN_ONLINE_AGENT_VERSION } from '../../../lambdas/preflight/method';
import { methodMarker, planJson } from '../../../lambdas/common/plan';
import { METHOD_REASON_CHARS, methodToken, outputOf } from '../../../lambdas/preflight/handler';
import { goRegexpVerdicts } from '../../../local/go-regexp';
import { parse as parseYaml } from 'yaml';
import { awsError, EXECUTION_ID, INSTANCE_ID, LOCK_NAME, makePlan, OTHER_EXECUTION_ID, parameterStore, ROOT_VOLUME_ID, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const kmsMock = mockClient(KMSClient);
const asgMock = mockClient(AutoScalingClient);

const SUBNET = 'subnet-0123456789abcdef0';
const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host';

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ExecutionId: EXECUTION_ID,
    InstanceId: INSTANCE_ID,
    SubnetId: 'CreateNewVPC',
    HelperInstanceType: 't3.small',
    KeyType: 'rsa',
    PublicKey: '',
    Users: '',
    BackupMethod: 'Snapshot',
    AllowEncryptedVolume: 'True',
    AllowEphemeralDataLoss: 'False',
    ...overrides,
  };
}

let instance: Instance;
let volume: Volume;
let types: Record<string, InstanceTypeInfo>;
let attributes: { disableApiStop: boolean; shutdown: string };
/** The instance's user data as DescribeInstanceAttribute gives it (base64; undefined: none). */
let userData: string | undefined;
let store: ReturnType<typeof parameterStore>;
/** What DescribeInstanceInformation lists (nothing: the instance is not a managed node). */
let managed: InstanceInformation[];

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  kmsMock.reset();
  asgMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  instance = {
    InstanceId: INSTANCE_ID,
    InstanceType: 't3.micro',
    State: { Name: 'running', Code: 16 },
    RootDeviceType: 'ebs',
    RootDeviceName: '/dev/xvda',
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: ROOT_VOLUME_ID, DeleteOnTermination: true, Status: 'attached' } }],
    Placement: { AvailabilityZone: 'us-east-1a' },
    Architecture: 'x86_64',
    SubnetId: SUBNET,
    VpcId: 'vpc-0123456789abcdef0',
    PublicIpAddress: '203.0.113.10',
    PlatformDetails: 'Linux/UNIX',
    Tags: [{ Key: 'Name', Value: 'web' }],
  };
  volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Encrypted: false, Attachments: [{ InstanceId: INSTANCE_ID, Device: '/dev/xvda', State: 'attached' }] };
  types = {
    't3.micro': { InstanceType: 't3.micro', Hypervisor: 'nitro', InstanceStorageSupported: false, ProcessorInfo: { SupportedArchitectures: ['x86_64'] } },
    't3.small': { InstanceType: 't3.small', Hypervisor: 'nitro', InstanceStorageSupported: false, ProcessorInfo: { SupportedArchitectures: ['x86_64'] } },
    'm5d.large': { InstanceType: 'm5d.large', Hypervisor: 'nitro', InstanceStorageSupported: true, ProcessorInfo: { SupportedArchitectures: ['x86_64'] } },
    't2.small': { InstanceType: 't2.small', Hypervisor: 'xen', InstanceStorageSupported: false, ProcessorInfo: { SupportedArchitectures: ['x86_64'] } },
  };
  attributes = { disableApiStop: false, shutdown: 'stop' };
  ec2Mock.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [instance] }] }));
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [volume] }));
  userData = undefined;
  ec2Mock.on(DescribeInstanceAttributeCommand).callsFake((input: { Attribute: string }) =>
    input.Attribute === 'userData'
      ? { UserData: userData === undefined ? {} : { Value: userData } }
      : input.Attribute === 'disableApiStop'
        ? { DisableApiStop: { Value: attributes.disableApiStop } }
        : { InstanceInitiatedShutdownBehavior: { Value: attributes.shutdown } },
  );
  ec2Mock.on(DescribeInstanceTypesCommand).callsFake((input: { InstanceTypes: string[] }) => {
    const t = types[input.InstanceTypes[0]];
    if (!t) throw awsError('InvalidInstanceType', 'The following supplied instance types do not exist');
    return { InstanceTypes: [t] };
  });
  ec2Mock.on(DescribeAddressesCommand).resolves({ Addresses: [] });
  ec2Mock.on(DescribeSubnetsCommand).callsFake((input: { SubnetIds: string[] }) => {
    if (input.SubnetIds[0] === 'subnet-00000000000000001') return { Subnets: [{ SubnetId: input.SubnetIds[0], AvailabilityZone: 'us-east-1a', VpcId: 'vpc-1' }] };
    if (input.SubnetIds[0] === 'subnet-00000000000000002') return { Subnets: [{ SubnetId: input.SubnetIds[0], AvailabilityZone: 'us-east-1b', VpcId: 'vpc-1' }] };
    throw awsError('InvalidSubnetID.NotFound');
  });
  asgMock.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [] });
  store = parameterStore(ssmMock);
  managed = [];
  ssmMock.on(DescribeInstanceInformationCommand).callsFake(() => ({ InstanceInformationList: managed }));
});

afterEach(() => jest.restoreAllMocks());

/** Nothing changed: no lock written, and every EC2 call a Describe. */
function expectNothingChanged(): void {
  expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
  const ec2Calls = ec2Mock.calls().map((c) => c.args[0].constructor.name);
  expect(ec2Calls.filter((n) => !n.startsWith('Describe'))).toEqual([]);
  expect(store.has(LOCK_NAME)).toBe(false);
}

describe('preflight handler', () => {
  it('writes the plan and returns the outputs for a running EBS-backed Linux instance', async () => {
    // Act
    const out = await handler(event({ Users: 'ec2-user, admin', PublicKey: PUBLIC_KEY }));
    // Assess
    expect(out).toEqual({
      RootVolumeId: ROOT_VOLUME_ID,
      RootDeviceName: '/dev/xvda',
      OriginalState: 'running',
      AvailabilityZone: 'us-east-1a',
      LockParameterName: LOCK_NAME,
      Method: 'VolumeSwap',
      MethodReason: expect.stringContaining('not a managed node'),
      MethodToken: '|method:VolumeSwap|',
      PlatformToken: '|platform:linux|',
    });
    expect(Object.keys(out).sort()).toEqual([...OUTPUT_FIELDS].sort());
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK_NAME, Overwrite: false, Type: 'String' });
    const plan = storedPlan(store);
    expect(plan).toMatchObject({
      version: 1,
      executionId: EXECUTION_ID,
      instanceId: INSTANCE_ID,
      inputs: { subnetId: 'CreateNewVPC', keyType: 'rsa', users: ['ec2-user', 'admin'], publicKey: PUBLIC_KEY, allowEncryptedVolume: true, allowEphemeralDataLoss: false },
      instance: { originalState: 'running', rootVolumeId: ROOT_VOLUME_ID, deleteOnTermination: true, architecture: 'x86_64', elasticIp: false, publicIpAddress: '203.0.113.10' },
      created: {},
      progress: { keyInjected: false, phase: 'preflight' },
    });
    expectNothingChangedButTheLock();
  });

  /** The lock record, then the lock tag on the instance and its root volume: nothing else changed. */
  function expectNothingChangedButTheLock(): void {
    const ec2Calls = ec2Mock.calls().map((c) => c.args[0].constructor.name);
    expect(ec2Calls.filter((n) => !n.startsWith('Describe'))).toEqual(['CreateTagsCommand']);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: [INSTANCE_ID, ROOT_VOLUME_ID],
      Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }],
    });
    // The tag comes after the lock record was created (the same step, in this order).
    const lock = ssmMock.commandCalls(PutParameterCommand)[0];
    expect(lock && ec2Mock.commandCalls(CreateTagsCommand)[0]?.calledAfter(lock)).toBe(true);
  }

  it('records an Elastic IP and a stopped state', async () => {
    instance.State = { Name: 'stopped' };
    ec2Mock.on(DescribeAddressesCommand).resolves({ Addresses: [{ PublicIp: '198.51.100.1', InstanceId: INSTANCE_ID }] });
    const out = await handler(event());
    expect(out.OriginalState).toBe('stopped');
    expect(storedPlan(store)?.instance.elasticIp).toBe(true);
  });

  it('accepts a subnet in the same Availability Zone', async () => {
    await handler(event({ SubnetId: 'subnet-00000000000000001' }));
    expect(storedPlan(store)?.inputs.subnetId).toBe('subnet-00000000000000001');
  });

  it('accepts an encrypted root whose KMS key is enabled', async () => {
    volume.Encrypted = true;
    volume.KmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/abc';
    kmsMock.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'abc', KeyState: 'Enabled' } });
    await handler(event());
    expect(kmsMock).toHaveReceivedCommandWith(DescribeKeyCommand, { KeyId: volume.KmsKeyId });
  });

  it('accepts instance-store volumes with AllowEphemeralDataLoss=True', async () => {
    instance.InstanceType = 'm5d.large';
    await handler(event({ AllowEphemeralDataLoss: 'True' }));
    expect(storedPlan(store)?.inputs.allowEphemeralDataLoss).toBe(true);
  });

  it('accepts a persistent Spot instance', async () => {
    instance.InstanceLifecycle = 'spot';
    instance.SpotInstanceRequestId = 'sir-1234';
    ec2Mock.on(DescribeSpotInstanceRequestsCommand).resolves({ SpotInstanceRequests: [{ Type: 'persistent' }] });
    await expect(handler(event())).resolves.toBeDefined();
  });
});

describe('preflight refusals change nothing', () => {
  const cases: [string, () => void, Record<string, unknown>, RegExp][] = [
    ['instance not found', () => ec2Mock.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound')), {}, /was not found.*Region/],
    ['instance-store root', () => (instance.RootDeviceType = 'instance-store'), {}, /instance-store root.*Instance Connect/],
    ['instance-store volumes', () => (instance.InstanceType = 'm5d.large'), {}, /instance-store volumes.*AllowEphemeralDataLoss=True/],
    ['Marketplace product codes', () => (instance.ProductCodes = [{ ProductCodeId: 'abc', ProductCodeType: 'marketplace' }]), {}, /Marketplace.*Method=UserData/],
    ['shutdown behaviour terminate', () => (attributes.shutdown = 'terminate'), {}, /shutdown behaviour 'terminate'.*instance-initiated-shutdown-behavior stop/],
    [
      'one-time Spot',
      () => {
        instance.InstanceLifecycle = 'spot';
        instance.SpotInstanceRequestId = 'sir-1234';
        ec2Mock.on(DescribeSpotInstanceRequestsCommand).resolves({ SpotInstanceRequests: [{ Type: 'one-time' }] });
      },
      {},
      /one-time Spot/,
    ],
    ['Auto Scaling member (tag)', () => instance.Tags?.push({ Key: 'aws:autoscaling:groupName', Value: 'web-asg' }), {}, /Auto Scaling group web-asg.*Standby/],
    [
      'Auto Scaling member (API)',
      () => asgMock.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [{ AutoScalingGroupName: 'api-asg', InstanceId: INSTANCE_ID } as never] }),
      {},
      /Auto Scaling group api-asg/,
    ],
    ['stop protection', () => (attributes.disableApiStop = true), {}, /stop protection.*--no-disable-api-stop/],
    // The API returns 'windows' in lower case; the SDK's type says 'Windows'.
    // Windows is reset since issue 15; without a key pair, EnablePasswordGeneration (the default) is refused.
    ['Windows without a key pair (Platform)', () => (instance.Platform = 'windows' as never), {}, /runs Windows and has no key pair/],
    ['Windows without a key pair (PlatformDetails)', () => (instance.PlatformDetails = 'Windows with SQL Server Standard'), {}, /runs Windows and has no key pair/],
    ['a pending instance', () => (instance.State = { Name: 'pending' }), {}, /is pending.*running or stopped/],
    ['a stopping instance', () => (instance.State = { Name: 'stopping' }), {}, /is stopping/],
    ['no root volume attached', () => (instance.BlockDeviceMappings = []), {}, /no EBS volume attached at its root device \/dev\/xvda/],
    ['encrypted root not allowed', () => (volume.Encrypted = true), { AllowEncryptedVolume: 'False' }, /encrypted root volume.*AllowEncryptedVolume=True/],
    [
      'encrypted root with a disabled key',
      () => {
        volume.Encrypted = true;
        volume.KmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/abc';
        kmsMock.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'abc', KeyState: 'Disabled' } });
      },
      {},
      /KMS key .* which is Disabled.*Enable the key/,
    ],
    [
      'encrypted root with a key pending deletion',
      () => {
        volume.Encrypted = true;
        volume.KmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/abc';
        kmsMock.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'abc', KeyState: 'PendingDeletion' } });
      },
      {},
      /PendingDeletion/,
    ],
    [
      'encrypted root with a key it cannot describe',
      () => {
        volume.Encrypted = true;
        volume.KmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/abc';
        kmsMock.on(DescribeKeyCommand).rejects(awsError('AccessDeniedException'));
      },
      {},
      /cannot be described \(AccessDeniedException\).*kms:DescribeKey/,
    ],
    ['a subnet not found', () => undefined, { SubnetId: 'subnet-0000000000000000f' }, /subnet-0000000000000000f: it was not found/],
    ['a subnet in another AZ', () => undefined, { SubnetId: 'subnet-00000000000000002' }, /us-east-1a but subnet subnet-00000000000000002 is in us-east-1b/],
    ['an unknown helper type', () => undefined, { HelperInstanceType: 'x9.huge' }, /helper instance type x9.huge/],
    ['a helper type that is not Nitro (no NVMe serial to find the volume by)', () => undefined, { HelperInstanceType: 't2.small' }, /t2.small: it is not a Nitro instance type/],
  ];

  it.each(cases)('refuses %s', async (_name, prepare, overrides, message) => {
    // Prepare
    prepare();
    // Act
    const run = handler(event(overrides));
    // Assess
    await expect(run).rejects.toMatchObject({ name: 'RefusedError', message: expect.stringMatching(message) });
    expectNothingChanged();
  });
});

describe('preflight input validation', () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['a bad instance id', { InstanceId: 'i-123' }, /InstanceId must be an EC2 instance id/],
    ['a newline in the instance id', { InstanceId: 'i-0123456789abcdef0\n' }, /InstanceId contains a line break/],
    ['a missing execution id', { ExecutionId: undefined }, /ExecutionId is missing/],
    ['a NUL in Users', { Users: 'ec2-user\0' }, /Users contains a NUL/],
    ['a bad user', { Users: 'ec2-user,$(id)' }, /Users must be comma-separated.*entry 2 is not one/],
    ['a bad subnet', { SubnetId: 'subnet-xyz' }, /SubnetId must be CreateNewVPC, SelectedInstanceSubnet or a subnet id/],
    ['a bad key type', { KeyType: 'dsa' }, /KeyType must be one of rsa, ed25519/],
    ['a bad backup method', { BackupMethod: 'Tape' }, /BackupMethod must be one of Snapshot, Image, None/],
    ['a bad flag', { AllowEncryptedVolume: 'yes' }, /AllowEncryptedVolume must be True or False/],
    ['an oversized instance type', { HelperInstanceType: 'x'.repeat(300) }, /HelperInstanceType is 300 characters long/],
    ['an invalid public key', { PublicKey: 'ssh-ed25519 not-base64!' }, /PublicKey is not a valid OpenSSH public key/],
    ['two public keys', { PublicKey: `${PUBLIC_KEY}\n${PUBLIC_KEY}` }, /PublicKey contains a line break/],
  ];

  it.each(bad)('rejects %s, naming the field, before any AWS call', async (_name, overrides, message) => {
    await expect(handler(event(overrides))).rejects.toMatchObject({ name: 'InvalidInputError', message: expect.stringMatching(message) });
    expect(ec2Mock.calls()).toHaveLength(0);
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('rejects a pasted private key without echoing it', async () => {
    const secret = '-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ -----END OPENSSH PRIVATE KEY-----';
    const err = (await handler(event({ PublicKey: secret })).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('InvalidInputError');
    expect(err.message).toMatch(/looks like a private key/);
    expect(err.message).not.toContain('b3BlbnNzaC1rZXktdjE');
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('rejects a payload that is not an object', async () => {
    await expect(handler('i-0123456789abcdef0')).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});

describe('preflight lock', () => {
  it('refuses when a run still in progress holds the lock, and leaves its plan alone', async () => {
    // Prepare
    const theirs = makePlan({ executionId: OTHER_EXECUTION_ID });
    storePlan(store, theirs);
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'InProgress' } });
    // Act
    const run = handler(event());
    // Assess
    await expect(run).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringMatching(new RegExp(`locked by execution ${OTHER_EXECUTION_ID} \\(InProgress\\).*stop-automation-execution`)) });
    expect(ssmMock).toHaveReceivedCommandWith(GetAutomationExecutionCommand, { AutomationExecutionId: OTHER_EXECUTION_ID });
    expect(storedPlan(store)?.executionId).toBe(OTHER_EXECUTION_ID);
    expect(ssmMock).toHaveReceivedCommandTimes(PutParameterCommand, 1); // the attempt without overwrite, refused
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Overwrite: false });
  });

  it('refuses when the lock names an execution Systems Manager does not know', async () => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID }));
    ssmMock.on(GetAutomationExecutionCommand).rejects(awsError('AutomationExecutionNotFoundException'));
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringMatching(/unknown to Systems Manager.*delete the parameter/) });
    expect(storedPlan(store)?.executionId).toBe(OTHER_EXECUTION_ID);
  });

  it('refuses when the lock names no execution', async () => {
    store.set(LOCK_NAME, { value: 'garbage', type: 'String', version: 1 });
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringMatching(/names no execution.*delete that parameter/) });
    expect(store.get(LOCK_NAME)?.value).toBe('garbage');
  });

  it('reads the holder of a partial lock record', async () => {
    const partial = JSON.stringify({ version: 1, executionId: OTHER_EXECUTION_ID, instanceId: INSTANCE_ID });
    store.set(LOCK_NAME, { value: partial, type: 'String', version: 1 });
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Waiting' } });
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringContaining(`locked by execution ${OTHER_EXECUTION_ID} (Waiting)`) });
    expect(store.get(LOCK_NAME)?.value).toBe(partial);
  });

  it.each(['Success', 'Failed', 'TimedOut', 'Cancelled', 'CompletedWithFailure'])('takes over the lock of a %s execution that left nothing to restore', async (status) => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID }));
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: status as never } });
    await handler(event());
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
    // Deleted, then created again without overwrite.
    const puts = ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input.Overwrite);
    expect(puts).toEqual([false, false]);
  });

  it.each(['restored', 'cleaned-up'] as const)('takes over the lock of a Cancelled execution whose plan is %s', async (phase) => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID, created: { helperInstanceId: 'i-0feedfeedfeedfeed' }, progress: { keyInjected: false, phase } }));
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Cancelled' } });
    await handler(event());
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
  });

  // P1-2: a cancel hands the instance to the restore runbook, which may not have run yet; a
  // failed run may not have restored. Taking over would delete the plan it restores from.
  it.each([
    ['Cancelled', 'helper-launched', { helperInstanceId: 'i-0feedfeedfeedfeed', vpcId: 'vpc-0feedfeedfeedfeed' }],
    ['Failed', 'attached-to-helper', { helperInstanceId: 'i-0feedfeedfeedfeed' }],
    ['TimedOut', 'stop-requested', {}],
    ['CompletedWithFailure', 'preflight', { vpcId: 'vpc-0feedfeedfeedfeed' }],
  ] as const)('refuses the lock of a %s execution whose plan is %s, and leaves its plan alone', async (status, phase, created) => {
    const theirs = makePlan({ executionId: OTHER_EXECUTION_ID, created: { ...created }, progress: { keyInjected: false, phase } });
    storePlan(store, theirs);
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: status } });
    const err = (await handler(event()).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ name: 'LockHeldError' });
    expect(err.message).toContain(`locked by execution ${OTHER_EXECUTION_ID} (${status})`);
    expect(err.message).toContain(`phase ${phase}`);
    expect(err.message).toContain('-Restore');
    expect(err.message).toContain(`ExecutionId ${OTHER_EXECUTION_ID}`);
    expect(storedPlan(store)).toEqual(theirs);
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
  });

  it('refuses the lock of a Cancelled execution whose plan record cannot be read', async () => {
    const partial = JSON.stringify({ version: 1, executionId: OTHER_EXECUTION_ID, instanceId: INSTANCE_ID });
    store.set(LOCK_NAME, { value: partial, type: 'String', version: 1 });
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Cancelled' } });
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringContaining('cannot be read') });
    expect(store.get(LOCK_NAME)?.value).toBe(partial);
  });

  it('rewrites its own plan when preflight runs again in the same execution', async () => {
    storePlan(store, makePlan());
    await handler(event({ KeyType: 'rsa' }));
    expect(storedPlan(store)?.inputs.keyType).toBe('rsa');
    expect(ssmMock).not.toHaveReceivedCommand(GetAutomationExecutionCommand);
  });
});

describe('preflight PublicKeyParameter (a key line longer than an Automation parameter value)', () => {
  const NAME = '/reset-access/public-keys/me';
  // A real RSA 4096 public key line, made by OpenSSH's ssh-keygen (the reference for its length).
  const dir = mkdtempSync(join(tmpdir(), 'preflight-rsa-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '4096', '-N', '', '-C', 'me@host', '-f', join(dir, 'k')]);
  const RSA4096 = readFileSync(join(dir, 'k.pub'), 'utf8').trim();
  rmSync(dir, { recursive: true, force: true });

  it('reads the String parameter and writes its key line into the plan', async () => {
    expect(RSA4096.length).toBeGreaterThan(512);
    store.set(NAME, { value: `${RSA4096}\n`, type: 'String', version: 1 });
    await handler(event({ PublicKeyParameter: NAME }));
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: NAME });
    expect(storedPlan(store)?.inputs.publicKey).toBe(RSA4096);
  });

  it.each([
    ['both given', { PublicKey: PUBLIC_KEY, PublicKeyParameter: NAME }, 'Give PublicKey or PublicKeyParameter, not both'],
    ['a name outside its path', { PublicKeyParameter: LOCK_NAME }, 'PublicKeyParameter must name a parameter under /reset-access/public-keys/'],
    ['a parameter that does not exist', { PublicKeyParameter: '/reset-access/public-keys/nobody' }, 'PublicKeyParameter /reset-access/public-keys/nobody does not exist'],
  ])('refuses %s, changing nothing', async (_title, overrides, message) => {
    await expect(handler(event(overrides))).rejects.toMatchObject({ name: 'InvalidInputError', message: expect.stringContaining(message) });
    expect(storedPlan(store)).toBeUndefined();
  });

  it('refuses a SecureString and a value that is not one public key line, never echoing it', async () => {
    store.set(NAME, { value: 'AQICAHh-ciphertext', type: 'SecureString', version: 1 });
    await expect(handler(event({ PublicKeyParameter: NAME }))).rejects.toThrow(`PublicKeyParameter ${NAME} is a SecureString; store the key line as a String`);
    const secret = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';
    store.set(NAME, { value: secret, type: 'String', version: 1 });
    const err = (await handler(event({ PublicKeyParameter: NAME })).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('looks like a private key');
    expect(err.message).not.toContain('b3BlbnNzaC1rZXktdjEAAAAA');
    expect(storedPlan(store)).toBeUndefined();
  });
});

describe('preflight lock tag (issue 11)', () => {
  const tagged = (value: string) => [{ Key: 'Name', Value: 'web' }, { Key: 'reset-access:lock', Value: value }];

  it('refuses, changing nothing, when the instance carries the lock tag of a run still going', async () => {
    instance.Tags = tagged(OTHER_EXECUTION_ID);
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'InProgress' } });
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringContaining(`reset-access:lock=${OTHER_EXECUTION_ID}`) });
    expectNothingChanged();
  });

  it('refuses when the root volume carries the lock tag of an execution Systems Manager does not know', async () => {
    volume.Tags = [{ Key: 'reset-access:lock', Value: OTHER_EXECUTION_ID }];
    ssmMock.on(GetAutomationExecutionCommand).rejects(awsError('AutomationExecutionNotFoundException'));
    await expect(handler(event())).rejects.toMatchObject({ name: 'LockHeldError', message: expect.stringMatching(/unknown to Systems Manager.*delete-tags/) });
    expectNothingChanged();
  });

  it('takes over the lock tag of a finished execution: the tag is rewritten with this execution id', async () => {
    instance.Tags = tagged(OTHER_EXECUTION_ID);
    ssmMock.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Failed' } });
    await handler(event());
    expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, { Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] });
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
  });

  it('when tagging is refused, releases the lock and removes nothing (no tag of this run is there)', async () => {
    ec2Mock.on(CreateTagsCommand).rejects(awsError('UnauthorizedOperation'));
    await expect(handler(event())).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteTagsCommand);
    expect(store.has(LOCK_NAME)).toBe(false);
  });

  it('keeps going over its own tag (a retried preflight)', async () => {
    instance.Tags = tagged(EXECUTION_ID);
    await handler(event());
    expect(ssmMock).not.toHaveReceivedCommand(GetAutomationExecutionCommand);
  });

  it('when tagging fails, removes its tag and releases the lock: the refused run leaves nothing', async () => {
    // The tags land, then the call fails (a timeout, say): both resources carry this run's tag.
    ec2Mock.on(CreateTagsCommand).callsFake(() => {
      instance.Tags = tagged(EXECUTION_ID);
      volume.Tags = [{ Key: 'reset-access:lock', Value: EXECUTION_ID }];
      throw awsError('UnauthorizedOperation');
    });
    await expect(handler(event())).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: [INSTANCE_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] });
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: [ROOT_VOLUME_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] });
    expect(ssmMock).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: LOCK_NAME });
    expect(store.has(LOCK_NAME)).toBe(false);
  });
});

/** A managed node as DescribeInstanceInformation lists it (InstanceInformation, botocore ssm model). */
function agent(over: Partial<InstanceInformation> = {}): InstanceInformation {
  return { InstanceId: INSTANCE_ID, PingStatus: 'Online', PlatformType: 'Linux', AgentVersion: '3.3.2746.0', ...over };
}

describe('preflight Method (issue 12)', () => {
  it('Auto takes Online for a running instance whose agent is Online on Linux at 3.3.2746.0, and writes the branch marker', async () => {
    managed = [agent()];
    const out = await handler(event());
    expect(out).toMatchObject({ Method: 'Online', MethodReason: expect.stringContaining('3.3.2746.0') });
    expect(ssmMock).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, { Filters: [{ Key: 'InstanceIds', Values: [INSTANCE_ID] }] });
    const text = store.get(LOCK_NAME)?.value ?? '';
    expect(text).toContain('"method":{"chosen":"Online"');
    expect(JSON.parse(text)).toMatchObject({ inputs: { method: 'Auto' }, method: { chosen: 'Online' } });
    // branchOnMethod looks for the token in this Payload (Contains).
    expect(out.MethodToken).toBe('|method:Online|');
  });

  const fallbacks: [string, () => void, RegExp][] = [
    ['an agent older than 3.3.2746.0 (3.3.987.0: newer as a string, older as a version)', () => (managed = [agent({ AgentVersion: '3.3.987.0' })]), /3\.3\.987\.0 is older than 3\.3\.2746\.0/],
    ['an unmanaged instance', () => (managed = []), /not a managed node/],
    ['an agent ConnectionLost', () => (managed = [agent({ PingStatus: 'ConnectionLost' })]), /SSM Agent ConnectionLost, not Online/],
    ['a stopped instance', () => { managed = [agent()]; instance.State = { Name: 'stopped', Code: 80 }; }, /stopped, not running/],
  ];
  it.each(fallbacks)('Auto falls back to VolumeSwap for %s, saying why', async (_name, arrange, why) => {
    arrange();
    const out = await handler(event());
    expect(out.Method).toBe('VolumeSwap');
    expect(out.MethodReason).toMatch(why);
    expect(store.get(LOCK_NAME)?.value).toContain('"method":{"chosen":"VolumeSwap"');
    expect(out.MethodToken).toBe('|method:VolumeSwap|');
    expect(JSON.stringify(out)).not.toContain('|method:Online|');
  });

  it('explicit Online on an unmanaged instance is refused, naming what is missing, and changes nothing', async () => {
    await expect(handler(event({ Method: 'Online' }))).rejects.toThrow(/cannot use Method=Online: .*not a managed node/);
    expectNothingChanged();
  });

  it('explicit Online on a Windows-platform agent with an old version names both gaps', async () => {
    managed = [agent({ PlatformType: 'Windows', AgentVersion: '3.2.2222.0' })];
    await expect(handler(event({ Method: 'Online' }))).rejects.toThrow(/platform Windows, not Linux; .*3\.2\.2222\.0 is older/);
    expectNothingChanged();
  });

  it('explicit VolumeSwap does not ask Systems Manager and swaps even when Online would do', async () => {
    managed = [agent()];
    const out = await handler(event({ Method: 'VolumeSwap' }));
    expect(out.Method).toBe('VolumeSwap');
    expect(ssmMock).not.toHaveReceivedCommand(DescribeInstanceInformationCommand);
  });

  it('UserData is taken when asked for: Marketplace codes do not stop it (the root never moves), its reason says two stop/start cycles', async () => {
    instance.ProductCodes = [{ ProductCodeId: 'abc', ProductCodeType: 'marketplace' }];
    userData = Buffer.from('#!/bin/sh\necho hello\n').toString('base64');
    const out = await handler(event({ Method: 'UserData' }));
    expect(out.Method).toBe('UserData');
    expect(out.MethodReason).toMatch(/two stop\/start cycles/);
    expect(ssmMock).not.toHaveReceivedCommand(DescribeInstanceInformationCommand);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstanceAttributeCommand, { InstanceId: INSTANCE_ID, Attribute: 'userData' });
  });

  it('UserData larger than the saved copy can hold (8 KB) is refused before any change', async () => {
    userData = Buffer.alloc(6139, 1).toString('base64');
    await expect(handler(event({ Method: 'UserData' }))).rejects.toThrow(/6139 bytes of user data.*Method=VolumeSwap/);
    expectNothingChanged();
    userData = Buffer.alloc(6138, 1).toString('base64');
    await expect(handler(event({ Method: 'UserData' }))).resolves.toMatchObject({ Method: 'UserData' });
  });

  it('review U11: UserData on an instance whose metadata service is disabled is refused (cloud-init could not read user data)', async () => {
    instance.MetadataOptions = { HttpEndpoint: 'disabled' };
    await expect(handler(event({ Method: 'UserData' }))).rejects.toThrow(/metadata service disabled.*--http-endpoint enabled/);
    expectNothingChanged();
  });

  it('review U4: UserData on a Xen instance type is refused (GetConsoleOutput Latest is Nitro only)', async () => {
    instance.InstanceType = 't2.small';
    await expect(handler(event({ Method: 'UserData' }))).rejects.toThrow(/t2\.small \(xen hypervisor\).*latest console output/);
    expectNothingChanged();
  });

  it('UserData stops the instance, so the stop refusals apply (stop protection)', async () => {
    attributes.disableApiStop = true;
    await expect(handler(event({ Method: 'UserData' }))).rejects.toThrow(/stop protection|DisableApiStop|stop/i);
    expectNothingChanged();
  });

  it('rejects an unknown Method before any AWS call', async () => {
    await expect(handler(event({ Method: 'Teleport' }))).rejects.toThrow(/Method must be one of Auto, Online, VolumeSwap, UserData/);
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it('Online does not refuse an encrypted root for its KMS key (it never attaches the volume anywhere): review O2', async () => {
    managed = [agent()];
    volume.Encrypted = true;
    volume.KmsKeyId = 'arn:aws:kms:us-east-1:123456789012:key/abc';
    kmsMock.on(DescribeKeyCommand).rejects(awsError('AccessDeniedException'));
    expect((await handler(event())).Method).toBe('Online');
    expect(kmsMock).not.toHaveReceivedCommand(DescribeKeyCommand);
    expect((await handler(event({ ExecutionId: OTHER_EXECUTION_ID, Method: 'VolumeSwap' })).catch((e: Error) => e.message))).toMatch(/cannot be described.*kms:DescribeKey/);
  });

  it('Online runs on an instance-store root with BackupMethod=None (nothing stops), tagging the instance only; with a backup it is refused naming BackupMethod=None: review O2', async () => {
    managed = [agent()];
    instance.RootDeviceType = 'instance-store';
    instance.BlockDeviceMappings = [];
    await expect(handler(event())).rejects.toThrow(/instance-store root volume, which no snapshot or image can back up.*BackupMethod=None/);
    expectNothingChanged();
    const out = await handler(event({ BackupMethod: 'None' }));
    expect(out).toMatchObject({ Method: 'Online', RootVolumeId: '' });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, { Resources: [INSTANCE_ID] });
  });

  it('Online skips the refusals that exist only because the volume swap stops and moves the root (Marketplace, stop protection, Auto Scaling)', async () => {
    managed = [agent()];
    instance.ProductCodes = [{ ProductCodeId: 'abc', ProductCodeType: 'marketplace' }];
    attributes.disableApiStop = true;
    instance.Tags?.push({ Key: 'aws:autoscaling:groupName', Value: 'web-asg' });
    const out = await handler(event());
    expect(out.Method).toBe('Online');
  });
});

describe('agent versions compare numerically, as GNU sort -V orders them', () => {
  // Real agent versions: the release notes of aws/amazon-ssm-agent (the mirror on this machine),
  // the documented minimum for ENV_VAR, and release 3.3.3572.0
  // (https://github.com/aws/amazon-ssm-agent/releases/tag/3.3.3572.0).
  const notes = execFileSync('git', ['-C', '/work/.mirror/aws+amazon-ssm-agent/repo', 'show', 'HEAD:RELEASENOTES.md'], { encoding: 'utf8' });
  const released = [...new Set(notes.match(/^\d+\.\d+\.\d+\.\d+/gm) ?? [])];
  const versions = [...released, MIN_ONLINE_AGENT_VERSION, '3.3.3572.0', '3.3.2745.0', '3.4.0.0', '3.3.10000.0'];

  it('reads more than 100 released versions', () => {
    expect(released.length).toBeGreaterThan(100);
  });

  it('orders every version as sort -V does, and accepts exactly those at or above 3.3.2746.0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'versions-'));
    try {
      const reference = execFileSync('sort', ['-V'], { input: `${versions.join('\n')}\n`, encoding: 'utf8' }).trim().split('\n');
      const ours = [...versions].sort((a, b) => compareVersions(a, b) ?? 0);
      expect(ours).toEqual(reference);
      const at = reference.indexOf(MIN_ONLINE_AGENT_VERSION);
      const accepted = versions.filter((v) => (compareVersions(v, MIN_ONLINE_AGENT_VERSION) ?? -1) >= 0).sort();
      expect(accepted).toEqual(reference.slice(at).sort());
      expect(accepted).toContain('3.3.3572.0');
      expect(accepted).not.toContain('3.3.987.0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to compare what is not a dotted version', () => {
    expect(compareVersions('3.3.x', MIN_ONLINE_AGENT_VERSION)).toBeUndefined();
    expect(compareVersions('', MIN_ONLINE_AGENT_VERSION)).toBeUndefined();
  });
});

describe('the plan JSON and branchOnMethod\'s marker', () => {
  // Hostile strings in every user-controlled field of the plan: the marker itself, quotes,
  // backslashes, and JSON fragments. JSON.parse is the reference: the marker is in the text if and
  // only if the parsed plan's method.chosen is that method.
  const hostile = [
    '"method":{"chosen":"Online"',
    '\\"method\\":{\\"chosen\\":\\"Online\\"',
    '","method":{"chosen":"Online","reason":"x"},"z":"',
    '\\","method":{"chosen":"Online"',
    '\u0022method\u0022:{\u0022chosen\u0022:\u0022Online\u0022',
  ];
  it.each(['VolumeSwap', 'UserData', 'Online'] as const)('a %s plan holding hostile user values carries the marker of its own method only', (chosen) => {
    for (const h of hostile) {
      const plan = makePlan({
        inputs: { ...makePlan().inputs, publicKey: h, users: [h, `${h}\\`] },
        method: { chosen, reason: h },
        created: { keyParameterName: h, commandId: h },
      });
      const text = planJson(plan);
      const parsed = JSON.parse(text) as { method: { chosen: string } };
      for (const m of ['Online', 'VolumeSwap', 'UserData'] as const) {
        expect([h, m, text.includes(methodMarker(m))]).toEqual([h, m, parsed.method.chosen === m]);
      }
    }
  });

  it('writes chosen before reason whatever order the object in memory has', () => {
    const plan = makePlan({ method: { reason: 'r', chosen: 'Online' } as never });
    expect(planJson(plan)).toContain('"method":{"chosen":"Online","reason":"r"}');
  });
});

describe("branchOnMethod's token in preflight's Payload", () => {
  const runbook = parseYaml(readFileSync(join(__dirname, '..', '..', '..', 'runbooks', 'reset-access.yaml'), 'utf8')) as {
    parameters: Record<string, { allowedPattern?: string; allowedValues?: string[] }>;
  };

  it('no user parameter can hold a "|": every allowedPattern refuses it (Go regexp, as SSM), no allowedValue has one', () => {
    const hostile = ['|method:Online|', 'ec2-user|method:Online|', 'ssh-ed25519 AAAA |method:Online|', 'subnet-0123456789abcdef0|method:Online|'];
    const pairs: Array<[string, string]> = [];
    for (const [name, spec] of Object.entries(runbook.parameters)) {
      if (spec.allowedPattern) for (const h of hostile) pairs.push([spec.allowedPattern, h]);
      else expect([name, (spec.allowedValues ?? []).filter((v) => v.includes('|'))]).toEqual([name, []]);
      expect([name, spec.allowedPattern !== undefined || spec.allowedValues !== undefined]).toEqual([name, true]);
    }
    expect(pairs.length).toBeGreaterThan(20);
    const verdicts = goRegexpVerdicts(pairs);
    expect(pairs.filter((_, i) => verdicts[i]?.match !== false)).toEqual([]);
  });

  it('whatever the instance and its agent report, the Payload holds "|method:" once, in MethodToken, and stays under 512 characters', () => {
    const hostile = '|method:Online|'.repeat(40);
    for (const chosen of ['VolumeSwap', 'Online', 'UserData'] as const) {
      const plan = makePlan({
        instanceId: 'i-0123456789abcdef0',
        method: { chosen, reason: `Auto: ${hostile}` },
        instance: { ...makePlan().instance, rootVolumeId: `vol-0123456789abcdef0${hostile}`.slice(0, 21), rootDeviceName: `/dev/xvda${hostile}`.slice(0, 32), availabilityZone: `us-east-1a${hostile}`.slice(0, 32) },
      });
      const text = JSON.stringify(outputOf(plan));
      expect(text.split('|method:').length - 1).toBe(1);
      expect(text.includes(methodToken(chosen))).toBe(true);
      expect(text.length).toBeLessThan(512);
      expect(outputOf(plan).MethodReason.length).toBeLessThanOrEqual(METHOD_REASON_CHARS);
    }
  });

  it("an agent's self-reported version or status never reaches the reason as it is", async () => {
    managed = [agent({ AgentVersion: '3.3.9999.0|method:Online|', PingStatus: 'Online|method:Online|' as never })];
    const out = await handler(event());
    expect(out.Method).toBe('VolumeSwap');
    expect(out.MethodReason).toContain('(not a version)');
    expect(JSON.stringify(out).split('|method:').length - 1).toBe(1);
  });
});

describe('preflight of a Windows instance (issue 15)', () => {
  beforeEach(() => {
    instance.Platform = 'windows' as never;
    instance.PlatformDetails = 'Windows';
    instance.KeyName = 'my-key';
  });

  it('takes the volume swap, records the platform and the key pair, and gives branchOnPlatform its token', async () => {
    const out = await handler(event());
    expect(out.Method).toBe('VolumeSwap');
    expect(out.PlatformToken).toBe('|platform:windows|');
    // Only the token spells '|platform:': nothing else in the Payload could steer branchOnPlatform.
    expect(JSON.stringify(out).split('|platform:').length).toBe(2);
    const plan = storedPlan(store);
    expect(plan?.instance).toMatchObject({ platform: 'windows', keyName: 'my-key' });
    expect(plan?.inputs.mode).toBe('EnablePasswordGeneration');
    // Systems Manager is not asked: the online method is Linux only.
    expect(ssmMock).not.toHaveReceivedCommand(DescribeInstanceInformationCommand);
  });

  it('knows Windows by PlatformDetails alone', async () => {
    delete instance.Platform;
    instance.PlatformDetails = 'Windows with SQL Server Standard';
    expect((await handler(event())).PlatformToken).toBe('|platform:windows|');
  });

  it.each([
    [{ Users: 'admin' }, /Users/],
    [{ PublicKey: PUBLIC_KEY }, /PublicKey/],
    [{ Method: 'Online' }, /Method=Online is for Linux/],
    [{ Method: 'UserData' }, /Method=UserData is for Linux/],
  ])('refuses the Linux-only input %j with nothing changed', async (overrides, message) => {
    await expect(handler(event(overrides))).rejects.toThrow(message);
    expectNothingChanged();
  });

  it('refuses EnablePasswordGeneration without a key pair, naming NewPassword as the way out', async () => {
    delete instance.KeyName;
    await expect(handler(event({ Mode: 'EnablePasswordGeneration' }))).rejects.toThrow(/no key pair.*Mode=NewPassword/);
    expectNothingChanged();
  });

  it('takes NewPassword without a key pair', async () => {
    delete instance.KeyName;
    await handler(event({ Mode: 'NewPassword' }));
    expect(storedPlan(store)?.inputs.mode).toBe('NewPassword');
  });

  it('refuses NewPassword on a type whose latest console output cannot be read (not Nitro)', async () => {
    instance.InstanceType = 't2.small';
    await expect(handler(event({ Mode: 'NewPassword' }))).rejects.toThrow(/console output/);
    expectNothingChanged();
  });

  it('refuses Mode=NewPassword on Linux, and a Mode outside its values', async () => {
    delete instance.Platform;
    instance.PlatformDetails = 'Linux/UNIX';
    await expect(handler(event({ Mode: 'NewPassword' }))).rejects.toThrow(/runs Linux; Mode=NewPassword is for Windows/);
    await expect(handler(event({ Mode: 'Reset' }))).rejects.toThrow(/Mode must be one of EnablePasswordGeneration, NewPassword/);
    expectNothingChanged();
  });
});
