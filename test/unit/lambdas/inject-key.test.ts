import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { CreateImageCommand, CreateSnapshotCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { waitForImageSnapshots } from '@common/backup';
import { GetCommandInvocationCommand, PutParameterCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { awsError, EXECUTION_ID, HELPER_ID, INSTANCE_ID, makePlan, parameterStore, recordingLogger, ROOT_VOLUME_ID, STEP_EVENT, storedPlan, storePlan } from '../helpers';
import { CONFIRM_MARGIN_MS, injectKey, ONLINE_CONFIRM_MS } from '../../../lambdas/inject-key/inject-key';
import { fingerprintOf } from '@common/keys';
import type { Plan } from '@common/plan';

process.env.KEY_ID = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
process.env.INJECT_DOCUMENT_NAME = 'ResetAccess-InjectKey';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { handler, OUTPUT_FIELDS } = require('../../../lambdas/inject-key/handler') as typeof import('../../../lambdas/inject-key/handler');

const ssmMock = mockClient(SSMClient);
const ec2Mock = mockClient(EC2Client);
let store: ReturnType<typeof parameterStore>;
let printed: string[];
const KEY_NAME = `/ec2rl/openssh/${INSTANCE_ID}/key`;
const USER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host';

function plan(change: (p: Plan) => void = () => undefined): Plan {
  const p = makePlan({ created: { helperInstanceId: HELPER_ID } });
  change(p);
  return p;
}

/** Everything written to the console or stdout/stderr during the test. */
function captureOutput(): void {
  printed = [];
  const keep = (...args: unknown[]): void => {
    printed.push(args.map(String).join(' '));
  };
  for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) jest.spyOn(console, m).mockImplementation(keep);
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => (keep(chunk), true));
  jest.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => (keep(chunk), true));
}

beforeEach(() => {
  ssmMock.reset();
  ec2Mock.reset();
  captureOutput();
  store = parameterStore(ssmMock);
  ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-0123' } });
});
afterEach(() => jest.restoreAllMocks());

function privateKeyWritten(): string {
  const put = ssmMock.commandCalls(PutParameterCommand).find((c) => c.args[0].input.Name === KEY_NAME);
  if (!put) throw new Error('no PutParameter of the key');
  return put.args[0].input.Value as string;
}

describe('inject-key handler, generated key', () => {
  it.each(['ed25519', 'rsa'] as const)('stores a %s private key only as a SecureString and sends only the public key', async (keyType) => {
    // Prepare
    storePlan(store, plan((p) => {
      p.inputs.keyType = keyType;
      p.inputs.users = ['ec2-user', 'admin'];
    }));
    // Act
    const out = await handler(STEP_EVENT);
    // Assess
    const privateKey = privateKeyWritten();
    expect(privateKey).toMatch(/PRIVATE KEY/);
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, {
      Name: KEY_NAME,
      Type: 'SecureString',
      KeyId: process.env.KEY_ID,
      Overwrite: true,
      Description: expect.stringContaining(INSTANCE_ID),
    });
    const send = ssmMock.commandCalls(SendCommandCommand)[0].args[0].input;
    expect(send).toMatchObject({ DocumentName: 'ResetAccess-InjectKey', InstanceIds: [HELPER_ID], TimeoutSeconds: expect.any(Number) });
    expect(send.Comment).toContain(EXECUTION_ID);
    expect(send.Parameters?.VolumeId).toEqual([ROOT_VOLUME_ID]);
    expect(send.Parameters?.Users).toEqual(['ec2-user,admin']);
    expect(send.Parameters?.Root).toEqual(['']);
    const publicKey = send.Parameters?.PublicKey?.[0] ?? '';
    expect(publicKey.startsWith(keyType === 'rsa' ? 'ssh-rsa ' : 'ssh-ed25519 ')).toBe(true);
    expect(out).toEqual({ CommandId: 'cmd-0123', KeyParameterName: KEY_NAME, Fingerprint: fingerprintOf(publicKey), KeyType: keyType, BackupId: 'none', Confirmed: 'false' });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    // The private key is nowhere else: not the output, the plan, the command, any printed line.
    const secretLines = privateKey.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
    const elsewhere = [JSON.stringify(out), store.get(`/reset-access/locks/${INSTANCE_ID}`)?.value ?? '', JSON.stringify(send), ...printed].join('\n');
    for (const line of secretLines) expect(elsewhere).not.toContain(line);
    expect(elsewhere).not.toMatch(/PRIVATE KEY/);
    expect(printed.length).toBeGreaterThan(0); // it did log, just not the key
    // The key's name is in the plan before the command is sent; the command id after.
    expect(storedPlan(store)?.created).toMatchObject({ keyParameterName: KEY_NAME, commandId: 'cmd-0123' });
    expect(storedPlan(store)?.progress.phase).toBe('injection-sent');
  });

  it('records the key parameter before SendCommand, so a failed send leaves it for restore', async () => {
    storePlan(store, plan());
    ssmMock.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances not in a valid state for account'));
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'InvalidInstanceId' });
    expect(storedPlan(store)?.created.keyParameterName).toBe(KEY_NAME);
    expect(storedPlan(store)?.created.commandId).toBeUndefined();
  });

  it('never puts the private key in the error when the write fails', async () => {
    storePlan(store, plan());
    ssmMock.on(PutParameterCommand, { Name: KEY_NAME }).rejects(awsError('AccessDeniedException', 'not authorized to perform kms:Encrypt'));
    const err = (await handler(STEP_EVENT).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`Could not store the private key in ${KEY_NAME}: AccessDeniedException`);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
    // Nothing recorded: an earlier run's key under that name must not be deleted by restore.
    expect(storedPlan(store)?.created.keyParameterName).toBeUndefined();
    expect(printed.join('\n')).not.toMatch(/PRIVATE KEY/);
  });
});

describe('inject-key handler, volume swap with BackupMethod=Image (review-s6 Q19)', () => {
  const IMAGE = 'ami-0123456789abcdef0';
  const swapPlan = (revoke = false): Plan => plan((p) => {
    p.inputs.publicKey = USER_KEY;
    p.inputs.backupMethod = 'Image';
    p.created = { helperInstanceId: HELPER_ID, backupId: IMAGE };
    if (revoke) p.inputs.action = { kind: 'revoke', fingerprints: [fingerprintOf(USER_KEY)], replacementKey: '', mode: 'remove' } as unknown as Plan['inputs']['action'];
  });

  it.each([false, true])('writes (SendCommand to the helper) only once the image made before the detach shows its snapshots (revoke: %s)', async (revoke) => {
    storePlan(store, swapPlan(revoke));
    const order: string[] = [];
    let polls = 0;
    ec2Mock.on(DescribeImagesCommand, { ImageIds: [IMAGE] }).callsFake(() => {
      polls += 1;
      order.push(polls === 1 ? 'image pending' : 'image with snapshots');
      return { Images: [{ ImageId: IMAGE, State: 'pending', BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: polls === 1 ? {} : { SnapshotId: 'snap-0aaa' } }] }] };
    });
    ec2Mock.on(DescribeSnapshotsCommand, { SnapshotIds: ['snap-0aaa'] }).callsFake(() => (order.push('snapshots'), { Snapshots: [{ SnapshotId: 'snap-0aaa', State: 'pending' }] }));
    ssmMock.on(SendCommandCommand).callsFake(() => (order.push('SendCommand'), { Command: { CommandId: 'cmd-0123' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const r = await injectKey(
      { ssm: new SSMClient({ region: 'us-east-1' }), ec2: new EC2Client({ region: 'us-east-1' }), log: recordingLogger(), config: { keyId: 'k', documentName: 'ResetAccess-InjectKey', revokeDocumentName: 'ResetAccess-RevokeKey' } },
      { executionId: EXECUTION_ID, instanceId: INSTANCE_ID },
    );
    expect(order).toEqual(['image pending', 'image with snapshots', 'snapshots', 'SendCommand']);
    expect(r.commandId).toBe('cmd-0123');
  });

  it('refuses on a failed image: nothing sent, nothing stored', async () => {
    storePlan(store, plan((p) => {
      p.inputs.backupMethod = 'Image';
      p.created = { helperInstanceId: HELPER_ID, backupId: IMAGE };
    }));
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE, State: 'failed' }] });
    await expect(handler(STEP_EVENT)).rejects.toThrow(/is failed: nothing was written/);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
    expect(store.has(KEY_NAME)).toBe(false);
  });

  it('BackupMethod=Snapshot: no image read before the write', async () => {
    storePlan(store, plan((p) => {
      p.inputs.publicKey = USER_KEY;
      p.created = { helperInstanceId: HELPER_ID, backupId: 'snap-0123456789abcdef0' };
    }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    await handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(DescribeImagesCommand);
    expect(ssmMock).toHaveReceivedCommand(SendCommandCommand);
  });
});

describe('inject-key handler, user public key', () => {
  it('stores nothing and sends the given key', async () => {
    storePlan(store, plan((p) => (p.inputs.publicKey = USER_KEY)));
    const out = await handler(STEP_EVENT);
    expect(out).toEqual({ CommandId: 'cmd-0123', KeyParameterName: 'none', Fingerprint: fingerprintOf(USER_KEY), KeyType: 'ed25519', BackupId: 'none', Confirmed: 'false' });
    expect(ssmMock).not.toHaveReceivedCommandWith(PutParameterCommand, { Name: KEY_NAME });
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { Parameters: expect.objectContaining({ PublicKey: [USER_KEY], Users: [''] }) });
    expect(storedPlan(store)?.created.keyParameterName).toBeUndefined();
  });
});

describe('inject-key handler errors', () => {
  it('throws when the plan has no helper', async () => {
    storePlan(store, makePlan());
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError' });
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });
});

describe('inject-key handler, online (issue 12: backup, command and report in one step)', () => {
  const REPORT = JSON.stringify({ version: 1, status: 'ok', changes: [{ user: 'ec2-user', file: '/home/ec2-user/.ssh/authorized_keys', action: 'appended' }] });
  beforeEach(() => {
    storePlan(store, plan((p) => {
      p.method = { chosen: 'Online', reason: 'test' };
      p.inputs.publicKey = USER_KEY;
      p.created = {};
    }));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached' }] }] });
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2Mock.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0' });
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] }] }] });
  });

  it("refuses to send when the instance's lock tag is not this execution's (another run's, or none), read right before SendCommand (review P6)", async () => {
    for (const tags of [[{ Key: 'reset-access:lock', Value: 'other-execution' }], []]) {
      ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, Tags: tags }] }] });
      await expect(handler(STEP_EVENT)).rejects.toThrow(tags.length ? /carries the lock tag of another execution \(other-execution\), not this execution's .*nothing was sent/ : /carries no lock tag/);
    }
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('Image (NoReboot): sends only once DescribeImages shows the snapshot ids and DescribeSnapshots shows the snapshots (review P5)', async () => {
    storePlan(store, plan((p) => {
      p.method = { chosen: 'Online', reason: 'test' };
      p.inputs.publicKey = USER_KEY;
      p.inputs.backupMethod = 'Image';
      p.created = {};
    }));
    const order: string[] = [];
    let polls = 0;
    ec2Mock.on(DescribeImagesCommand).callsFake((input: { ImageIds?: string[] }) => {
      // The backup's own lookup by its tags finds no earlier image; then the image by id.
      if (!input.ImageIds) return { Images: [] };
      polls += 1;
      order.push(polls === 1 ? 'image pending' : 'image with snapshots');
      return { Images: [{ ImageId: 'ami-0123456789abcdef0', State: 'pending', BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: polls === 1 ? {} : { SnapshotId: 'snap-0aaa' } }] }] };
    });
    ec2Mock.on(DescribeSnapshotsCommand, { SnapshotIds: ['snap-0aaa'] }).callsFake(() => (order.push('snapshots'), { Snapshots: [{ SnapshotId: 'snap-0aaa', State: 'pending' }] }));
    ec2Mock.on(CreateImageCommand).callsFake((input: { NoReboot?: boolean }) => (order.push(`CreateImage NoReboot=${input.NoReboot}`), { ImageId: 'ami-0123456789abcdef0' }));
    ssmMock.on(SendCommandCommand).callsFake(() => (order.push('SendCommand'), { Command: { CommandId: 'cmd-0123' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: REPORT });
    const out = await handler(STEP_EVENT);
    expect(order).toEqual(['CreateImage NoReboot=true', 'image pending', 'image with snapshots', 'snapshots', 'SendCommand']);
    expect(out).toMatchObject({ BackupId: 'ami-0123456789abcdef0', Confirmed: 'true' });
  });

  it("Image: refuses once the bound has passed without the image's snapshots, or on a failed image", async () => {
    let t = 0;
    const clock = { now: () => t, sleep: async (ms: number) => void (t += ms) };
    const ec2 = new EC2Client({ region: 'us-east-1' });
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', State: 'pending', BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: {} }] }] });
    await expect(waitForImageSnapshots(ec2, 'ami-0123456789abcdef0', clock, 5_000)).rejects.toThrow(/did not appear within 5 s.*nothing was written to the instance/);
    expect(t).toBeLessThanOrEqual(5_000);
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', State: 'failed' }] });
    await expect(waitForImageSnapshots(ec2, 'ami-0123456789abcdef0', clock, 5_000)).rejects.toThrow(/is failed: nothing was written/);
  });

  it('starts the snapshot before SendCommand, then reads the report and marks the key injected', async () => {
    const order: string[] = [];
    ec2Mock.on(CreateSnapshotCommand).callsFake(() => (order.push('CreateSnapshot'), { SnapshotId: 'snap-0123456789abcdef0' }));
    ssmMock.on(SendCommandCommand).callsFake(() => (order.push('SendCommand'), { Command: { CommandId: 'cmd-0123' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: `done\n${REPORT}\n` });
    const out = await handler(STEP_EVENT);
    expect(order).toEqual(['CreateSnapshot', 'SendCommand']);
    // the earlier-backup lookup is made once (with the volume's read), not again before the create
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeSnapshotsCommand, 1);
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: [INSTANCE_ID] });
    expect(out).toMatchObject({ BackupId: 'snap-0123456789abcdef0', Confirmed: 'true' });
    expect(storedPlan(store)?.progress).toMatchObject({ keyInjected: true, phase: 'key-injected' });
    expect(storedPlan(store)?.created.backupId).toBe('snap-0123456789abcdef0');
  });

  it('fails the step when the command failed, and never marks the key injected', async () => {
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StandardOutputContent: JSON.stringify({ version: 1, status: 'error', error: 'no such user', changes: [] }) });
    await expect(handler(STEP_EVENT)).rejects.toThrow(/ended Failed: no such user/);
    expect(storedPlan(store)?.progress.keyInjected).toBe(false);
  });

  it('Image: a failed image wait is thrown only once the key store and its plan record have settled: no PutParameter in flight past the handler (review-s6 Q8)', async () => {
    storePlan(store, plan((p) => {
      p.method = { chosen: 'Online', reason: 'test' };
      p.inputs.publicKey = '';
      p.inputs.keyType = 'ed25519';
      p.inputs.backupMethod = 'Image';
      p.created = {};
    }));
    ec2Mock.on(CreateImageCommand).resolves({ ImageId: 'ami-0123456789abcdef0' });
    // the backup's own lookup by tags finds nothing; the image by id has failed at the first poll
    ec2Mock.on(DescribeImagesCommand).callsFake((input: { ImageIds?: string[] }) => (input.ImageIds ? { Images: [{ ImageId: 'ami-0123456789abcdef0', State: 'failed' }] } : { Images: [] }));
    // every PutParameter (the key, then the plan's record of it) answers late: 30 ms each
    let inFlight = 0;
    ssmMock.on(PutParameterCommand).callsFake(async (input: { Name: string; Value: string; Type?: string }) => {
      inFlight += 1;
      await new Promise((r) => setTimeout(r, 30));
      const version = (store.get(input.Name)?.version ?? 0) + 1;
      store.set(input.Name, { value: input.Value, type: input.Type ?? 'String', version });
      inFlight -= 1;
      return { Version: version };
    });
    let inFlightAtRejection = -1;
    await expect(handler(STEP_EVENT).catch((err: unknown) => { inFlightAtRejection = inFlight; throw err; })).rejects.toThrow(/is failed: nothing was written/);
    expect(inFlightAtRejection).toBe(0);
    // the key that was stored is recorded in the plan, for restore to delete
    expect(store.has(KEY_NAME)).toBe(true);
    expect(storedPlan(store)?.created.keyParameterName).toBe(KEY_NAME);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it("bounds the confirm wait by the Lambda's remaining time less CONFIRM_MARGIN_MS, then returns unconfirmed (review-s6 Q7)", async () => {
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    let t = 0;
    const clock = { now: () => t, sleep: async (ms: number) => void (t += ms) };
    const deps = { ssm: new SSMClient({ region: 'us-east-1' }), ec2: new EC2Client({ region: 'us-east-1' }), log: recordingLogger(), clock, config: { keyId: 'k', documentName: 'ResetAccess-InjectKey' } };
    // 40 s left when the wait starts: it may use 25 s of them, not ONLINE_CONFIRM_MS (120 s)
    const left = 40_000;
    const r = await injectKey({ ...deps, remainingMs: () => left - t }, { executionId: EXECUTION_ID, instanceId: INSTANCE_ID });
    expect(r.confirmed).toBe(false);
    expect(r.commandId).toBe('cmd-0123');
    expect(t).toBeGreaterThan(0);
    expect(t).toBeLessThanOrEqual(left - CONFIRM_MARGIN_MS);
    expect(ONLINE_CONFIRM_MS).toBeGreaterThan(left - CONFIRM_MARGIN_MS);
    // less than the margin left: no wait at all, the step returns unconfirmed at once (the handler reads the context)
    ssmMock.resetHistory();
    const out = await handler(STEP_EVENT, { getRemainingTimeInMillis: () => CONFIRM_MARGIN_MS - 1 });
    expect(out).toMatchObject({ CommandId: 'cmd-0123', Confirmed: 'false' });
    expect(ssmMock).toHaveReceivedCommand(SendCommandCommand);
    expect(ssmMock).not.toHaveReceivedCommand(GetCommandInvocationCommand);
  });

  it('with BackupMethod=None makes no backup call', async () => {
    storePlan(store, plan((p) => {
      p.method = { chosen: 'Online', reason: 'test' };
      p.inputs.publicKey = USER_KEY;
      p.inputs.backupMethod = 'None';
      p.created = {};
    }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: REPORT });
    const out = await handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(out).toMatchObject({ BackupId: 'none', Confirmed: 'true' });
  });
});
