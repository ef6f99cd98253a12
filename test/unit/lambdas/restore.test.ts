import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteTagsCommand,
  AttachVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
  StartInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CancelCommandCommand, DeleteParameterCommand, GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { fitPayload, handler, OUTPUT_FIELDS } from '../../../lambdas/restore/handler';
import { COMMAND_TERMINAL, DEFAULT_BUDGETS, restore } from '../../../lambdas/restore/restore';
import { botocoreModel } from './botocore';
import type { Phase, Plan } from '@common/plan';
import {
  EXECUTION_ID,
  fakeClock,
  HELPER_ID,
  INSTANCE_ID,
  makePlan,
  OTHER_EXECUTION_ID,
  parameterStore,
  recordingLogger,
  ROOT_VOLUME_ID,
  STEP_EVENT,
  STEP_INPUT,
  awsError,
  sentCommands,
  storedPlan,
  storePlan,
} from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const ec2 = new EC2Client({});
const ssm = new SSMClient({});
const KEY_NAME = `/ec2rl/openssh/${INSTANCE_ID}/key`;

/**
 * A small model of the instance and its root volume: detach and attach take `lag` describes to
 * finish, a stop finishes after `lag` describes; a stuck detach only ends when forced.
 */
interface World {
  instanceState: string;
  helperState: string;
  volumeState: 'available' | 'in-use' | 'absent';
  attachedTo?: string;
  attachmentState?: 'attaching' | 'attached' | 'detaching';
  lag: number;
  stuckDetach: boolean;
  pending: number;
}
let world: World;
let store: ReturnType<typeof parameterStore>;

function tick(): void {
  if (world.pending > 0 && --world.pending === 0) {
    if (world.attachmentState === 'detaching' && !world.stuckDetach) {
      world.volumeState = 'available';
      world.attachedTo = undefined;
      world.attachmentState = undefined;
    } else if (world.attachmentState === 'attaching') {
      world.attachmentState = 'attached';
    }
    if (world.instanceState === 'stopping') world.instanceState = 'stopped';
  }
}

/** The run's lock tag, where it still is (preflight put it on the instance and the root volume). */
let locked: Set<string>;
const lockTags = (id: string) => (locked.has(id) ? [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] : []);

function volumeNow() {
  if (world.volumeState === 'absent') {
    const err = new Error('not found') as Error & { $metadata: object };
    err.name = 'InvalidVolume.NotFound';
    err.$metadata = {};
    throw err;
  }
  return {
    Volumes: [
      {
        VolumeId: ROOT_VOLUME_ID,
        State: world.volumeState,
        Attachments: world.attachedTo ? [{ InstanceId: world.attachedTo, State: world.attachmentState, Device: '/dev/xvda' }] : [],
        Tags: lockTags(ROOT_VOLUME_ID),
      },
    ],
  };
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  locked = new Set([INSTANCE_ID, ROOT_VOLUME_ID]);
  ec2Mock.on(DeleteTagsCommand).callsFake((input: { Resources: string[]; Tags: Array<{ Key: string; Value?: string }> }) => {
    if (input.Tags[0]?.Value === EXECUTION_ID) for (const id of input.Resources) locked.delete(id);
    return {};
  });
  world = { instanceState: 'running', helperState: 'running', volumeState: 'in-use', attachedTo: INSTANCE_ID, attachmentState: 'attached', lag: 2, stuckDetach: false, pending: 0 };
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => {
    tick();
    return volumeNow();
  });
  ec2Mock.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
    tick();
    if (input.InstanceIds?.[0] === HELPER_ID) return { Reservations: [{ Instances: [{ InstanceId: HELPER_ID, State: { Name: world.helperState } }] }] };
    return { Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: world.instanceState }, Tags: lockTags(INSTANCE_ID) }] }] };
  });
  ec2Mock.on(DetachVolumeCommand).callsFake((input: { Force?: boolean }) => {
    // A volume still attaching cannot be detached yet (the review's P2-4 case).
    if (world.attachmentState === 'attaching') throw awsError('IncorrectState');
    if (input.Force) world.stuckDetach = false;
    world.attachmentState = 'detaching';
    world.pending = world.lag;
    return {};
  });
  ec2Mock.on(AttachVolumeCommand).callsFake((input: { InstanceId: string }) => {
    world.volumeState = 'in-use';
    world.attachedTo = input.InstanceId;
    world.attachmentState = 'attaching';
    world.pending = world.lag;
    return {};
  });
  ec2Mock.on(StartInstancesCommand).callsFake(() => {
    world.instanceState = 'pending';
    return {};
  });
  ec2Mock.on(ModifyInstanceAttributeCommand).resolves({});
});
afterEach(() => jest.restoreAllMocks());

function planAt(phase: Phase, change: (p: Plan) => void = () => undefined): Plan {
  const p = makePlan({ created: { helperInstanceId: HELPER_ID, backupId: 'snap-0123456789abcdef0' }, progress: { keyInjected: false, phase } });
  change(p);
  return p;
}

const deps = () => ({ ec2, ssm, log: recordingLogger(), clock: fakeClock() });

function expectBackToNormal(started: boolean): void {
  expect(world).toMatchObject({ volumeState: 'in-use', attachedTo: INSTANCE_ID });
  expect(ec2Mock).toHaveReceivedCommandWith(ModifyInstanceAttributeCommand, {
    InstanceId: INSTANCE_ID,
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true } }],
  });
  if (started) expect(ec2Mock).toHaveReceivedCommandWith(StartInstancesCommand, { InstanceIds: [INSTANCE_ID] });
  else expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
  expect(storedPlan(store)?.progress.phase).toBe('restored');
  // Last: this run's lock tag (by value) from the instance and the root volume, after every other change.
  const changes = ec2Mock.calls().map((c) => c.args[0].constructor.name).filter((n) => !n.startsWith('Describe'));
  expect(changes.slice(-2)).toEqual(['DeleteTagsCommand', 'DeleteTagsCommand']);
  expect(ec2Mock.commandCalls(DeleteTagsCommand).map((c) => c.args[0].input)).toEqual([
    { Resources: [INSTANCE_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] },
    { Resources: [ROOT_VOLUME_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] },
  ]);
}

describe('restore handler', () => {
  it('does nothing without a plan', async () => {
    const out = await handler(STEP_EVENT);
    expect(out).toEqual({ Restored: false, Message: expect.stringMatching(/No plan for/), ForcedDetach: false });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  // P2-4: states a failed or cancelled step leaves behind settle before restore acts on them.
  it('waits for a root volume still detaching from the instance, then attaches it back', async () => {
    storePlan(store, planAt('stop-requested'));
    world = { ...world, instanceState: 'stopped', attachedTo: INSTANCE_ID, attachmentState: 'detaching', pending: 2 };
    const out = await handler(STEP_EVENT);
    expect(out.Restored).toBe(true);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(ec2Mock).toHaveReceivedCommandWith(AttachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: INSTANCE_ID, Device: '/dev/xvda' });
    expectBackToNormal(true);
  });

  it('waits for a root volume still attaching to the helper before it detaches it', async () => {
    storePlan(store, planAt('root-detached'));
    world = { ...world, instanceState: 'stopped', attachedTo: HELPER_ID, attachmentState: 'attaching', pending: 2 };
    const out = await handler(STEP_EVENT);
    expect(out.Restored).toBe(true);
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID });
    expectBackToNormal(true);
  });

  it("fails, touching nothing, on another execution's plan (P1-2: not a success)", async () => {
    storePlan(store, planAt('attached-to-helper', (p) => (p.executionId = OTHER_EXECUTION_ID)));
    world = { ...world, attachedTo: HELPER_ID };
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringContaining(`belongs to execution ${OTHER_EXECUTION_ID}`) });
    expect(ec2Mock.calls()).toHaveLength(0);
    expect(storedPlan(store)?.executionId).toBe(OTHER_EXECUTION_ID);
  });

  it('restores DeleteOnTermination when only preflight and the modify ran', async () => {
    storePlan(store, planAt('stop-requested'));
    const out = await handler(STEP_EVENT);
    expect(out.Restored).toBe(true);
    expectBackToNormal(false);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });
});

describe('restore result as a step output', () => {
  it('fits the JSON of the whole result in 512 characters (AutomationParameterValue), the forced-detach advice first', () => {
    // Prepare: the SSM API model's cap on a step output value
    const max = botocoreModel('ssm').shapes.AutomationParameterValue.max as number;
    const message = `FORCED the detach of ${ROOT_VOLUME_ID}: check it (fsck -n); ${'detached "x" from helper; '.repeat(40)}`;
    // Act
    const out = fitPayload({ Restored: true, Message: message, ForcedDetach: true });
    // Assess
    expect(max).toBe(512);
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(max);
    expect(JSON.stringify(out).length).toBeGreaterThan(max - 10);
    expect(out.Message.startsWith(`FORCED the detach of ${ROOT_VOLUME_ID}: check it (fsck -n)`)).toBe(true);
    expect(out.Message.endsWith('…')).toBe(true);
    expect(fitPayload({ Restored: true, Message: 'short', ForcedDetach: false })).toEqual({ Restored: true, Message: 'short', ForcedDetach: false });
  });
});

describe('restore from each phase', () => {
  it('stopping: waits for the stop, then starts again', async () => {
    storePlan(store, planAt('helper-launched'));
    world.instanceState = 'stopping';
    world.pending = 3;
    const r = await restore(deps(), STEP_INPUT);
    expect(r.message).toContain(`started ${INSTANCE_ID}`);
    expectBackToNormal(true);
  });

  it('root detached (available): attaches it back at its device name and starts', async () => {
    storePlan(store, planAt('root-detached'));
    Object.assign(world, { instanceState: 'stopped', volumeState: 'available', attachedTo: undefined, attachmentState: undefined });
    const r = await restore(deps(), STEP_INPUT);
    expect(ec2Mock).toHaveReceivedCommandWith(AttachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: INSTANCE_ID, Device: '/dev/xvda' });
    expect(r.message).toMatch(/attached vol-0123456789abcdef0 to i-0123456789abcdef0 at \/dev\/xvda; started/);
    expectBackToNormal(true);
  });

  it('attached to the helper: detaches, attaches back, starts', async () => {
    storePlan(store, planAt('attached-to-helper'));
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID });
    await restore(deps(), STEP_INPUT);
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID });
    expect(ec2Mock).not.toHaveReceivedCommandWith(DetachVolumeCommand, { Force: true });
    expectBackToNormal(true);
  });

  it('injection sent, key never injected: deletes the unused private key', async () => {
    storePlan(store, planAt('injection-sent', (p) => (p.created.keyParameterName = KEY_NAME)));
    store.set(KEY_NAME, { value: 'secret', type: 'SecureString', version: 1 });
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID });
    const r = await restore(deps(), STEP_INPUT);
    expect(ssmMock).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: KEY_NAME });
    expect(store.has(KEY_NAME)).toBe(false);
    expect(r.message).toContain(`deleted the unused private key ${KEY_NAME}`);
    expectBackToNormal(true);
  });

  it('keeps a key parameter whose history holds an earlier run\'s key', async () => {
    storePlan(store, planAt('injection-sent', (p) => (p.created.keyParameterName = KEY_NAME)));
    store.set(KEY_NAME, { value: 'secret', type: 'SecureString', version: 2 });
    const r = await restore(deps(), STEP_INPUT);
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
    expect(r.message).toContain(`kept ${KEY_NAME}`);
  });

  it('released from the helper, key injected: keeps the key and names it', async () => {
    storePlan(store, planAt('released-from-helper', (p) => {
      p.created.keyParameterName = KEY_NAME;
      p.progress.keyInjected = true;
    }));
    store.set(KEY_NAME, { value: 'secret', type: 'SecureString', version: 1 });
    Object.assign(world, { instanceState: 'stopped', volumeState: 'available', attachedTo: undefined, attachmentState: undefined });
    const r = await restore(deps(), STEP_INPUT);
    expect(store.has(KEY_NAME)).toBe(true);
    expect(r.message).toContain(`the key was injected: its private key stays in ${KEY_NAME}`);
    expectBackToNormal(true);
  });

  it('reattach requested (attaching): waits for it, then starts', async () => {
    storePlan(store, planAt('root-reattached'));
    Object.assign(world, { instanceState: 'stopped', attachmentState: 'attaching', pending: 2 });
    await restore(deps(), STEP_INPUT);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
    expectBackToNormal(true);
  });

  it('started already: changes nothing but DeleteOnTermination', async () => {
    storePlan(store, planAt('started'));
    world.instanceState = 'pending';
    await restore(deps(), STEP_INPUT);
    expectBackToNormal(false);
  });

  it('leaves a formerly stopped instance stopped', async () => {
    storePlan(store, planAt('attached-to-helper', (p) => (p.instance.originalState = 'stopped')));
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID });
    await restore(deps(), STEP_INPUT);
    expectBackToNormal(false);
  });
});

describe('restore is safe to run twice', () => {
  it('converges once, then changes nothing', async () => {
    storePlan(store, planAt('injection-sent', (p) => (p.created.keyParameterName = KEY_NAME)));
    store.set(KEY_NAME, { value: 'secret', type: 'SecureString', version: 1 });
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID });
    await restore(deps(), STEP_INPUT);
    world.instanceState = 'running';
    ec2Mock.resetHistory();
    ssmMock.resetHistory();
    const again = await restore(deps(), STEP_INPUT);
    expect(again.restored).toBe(true);
    expect(sentCommands(ec2Mock).filter((n) => ['AttachVolumeCommand', 'DetachVolumeCommand', 'StartInstancesCommand'].includes(n))).toEqual([]);
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
    expect(world).toMatchObject({ volumeState: 'in-use', attachedTo: INSTANCE_ID, instanceState: 'running' });
  });
});

describe('restore failures name the volume', () => {
  it('forces a detach that does not finish, then puts the volume back', async () => {
    storePlan(store, planAt('attached-to-helper'));
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID, stuckDetach: true });
    const log = recordingLogger();
    const r = await restore({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT);
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID, Force: true });
    expect(log.lines.join('\n')).toMatch(/forcing/);
    expect(r.forcedDetach).toBe(true);
    expect(r.message).toMatch(/^FORCED the detach of vol-0123456789abcdef0 from helper .* \(a normal detach did not finish in 60 s\).*fsck/);
    expectBackToNormal(true);
  });

  it('a forced detach is still reported when a later step of restore fails, and by the retry', async () => {
    storePlan(store, planAt('attached-to-helper'));
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID, stuckDetach: true });
    ec2Mock.on(AttachVolumeCommand).rejectsOnce(awsError('IncorrectState'));
    // Act: the attach after the forced detach fails
    await expect(restore(deps(), STEP_INPUT)).rejects.toMatchObject({ name: 'RestoreError', message: expect.stringMatching(/failed \(IncorrectState\).*fsck -n/) });
    expect(storedPlan(store)?.progress.forcedDetach).toBe(true);
    // Act: Automation's retry puts the volume back and still says it was forced
    ec2Mock.on(AttachVolumeCommand).callsFake((input: { InstanceId: string }) => {
      Object.assign(world, { volumeState: 'in-use', attachedTo: input.InstanceId, attachmentState: 'attaching', pending: world.lag });
      return {};
    });
    const r = await restore(deps(), STEP_INPUT);
    expect(r.forcedDetach).toBe(true);
    expect(r.message).toMatch(/^FORCED the detach of vol-0123456789abcdef0 from the helper in an earlier attempt\..*fsck -n/);
    expectBackToNormal(true);
  });

  it('throws naming the volume when it is attached to another instance, touching nothing', async () => {
    storePlan(store, planAt('attached-to-helper'));
    Object.assign(world, { instanceState: 'stopped', attachedTo: 'i-0aaaaaaaaaaaaaaaa' });
    await expect(restore(deps(), STEP_INPUT)).rejects.toMatchObject({
      name: 'RestoreError',
      message: expect.stringContaining(`volume ${ROOT_VOLUME_ID} is in-use (attached to i-0aaaaaaaaaaaaaaaa)`),
    });
    expect(sentCommands(ec2Mock).filter((n) => ['AttachVolumeCommand', 'DetachVolumeCommand', 'StartInstancesCommand'].includes(n))).toEqual([]);
    // The volume is not back: the lock tag stays, so a retry may still act on it.
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteTagsCommand);
  });

  it('throws naming the volume when it is gone', async () => {
    storePlan(store, planAt('root-detached'));
    world.volumeState = 'absent';
    await expect(restore(deps(), STEP_INPUT)).rejects.toThrow(`the root volume ${ROOT_VOLUME_ID} was not found`);
  });

  it('leaves the volume available and names it when the attach is refused', async () => {
    storePlan(store, planAt('root-detached'));
    Object.assign(world, { instanceState: 'stopped', volumeState: 'available', attachedTo: undefined, attachmentState: undefined });
    const err = new Error('in use') as Error & { $metadata: object };
    err.name = 'InvalidParameterValue';
    err.$metadata = {};
    ec2Mock.on(AttachVolumeCommand).rejects(err);
    await expect(restore(deps(), STEP_INPUT)).rejects.toMatchObject({
      name: 'RestoreError',
      message: expect.stringMatching(/attaching vol-0123456789abcdef0 \(available\) to i-0123456789abcdef0 at \/dev\/xvda failed \(InvalidParameterValue\)/),
    });
    expect(world.volumeState).toBe('available');
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
  });
});

describe('restore and a running inject command', () => {
  const OK = JSON.stringify({ version: 1, status: 'ok', changes: [{ user: 'ec2-user', file: '/home/ec2-user/.ssh/authorized_keys', action: 'appended' }] });
  const sent = (): Plan =>
    planAt('injection-sent', (p) => {
      p.created.keyParameterName = KEY_NAME;
      p.created.commandId = 'cmd-1';
    });

  beforeEach(() => {
    store.set(KEY_NAME, { value: 'secret', type: 'SecureString', version: 1 });
    Object.assign(world, { instanceState: 'stopped', attachedTo: HELPER_ID });
  });

  it('keeps the private key of a command that added the key, though release never ran', async () => {
    storePlan(store, sent());
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: `log\n${OK}\n` });
    const r = await restore(deps(), STEP_INPUT);
    expect(store.has(KEY_NAME)).toBe(true);
    expect(storedPlan(store)?.progress.keyInjected).toBe(true);
    expect(r.message).toContain('the inject command cmd-1 had added the key');
    expect(r.message).toContain(`its private key stays in ${KEY_NAME}`);
    expectBackToNormal(true);
  });

  it('waits for a running command to end before it moves the volume', async () => {
    storePlan(store, sent());
    let reads = 0;
    ssmMock.on(GetCommandInvocationCommand).callsFake(() => {
      reads += 1;
      if (reads === 1) throw awsError('InvocationDoesNotExist');
      return reads < 4 ? { Status: 'InProgress' } : { Status: 'Success', StandardOutputContent: OK };
    });
    ec2Mock.on(DetachVolumeCommand).callsFake(() => {
      // The volume may only leave the helper once the command has ended.
      expect(reads).toBeGreaterThanOrEqual(4);
      world.attachmentState = 'detaching';
      world.pending = world.lag;
      return {};
    });
    await restore(deps(), STEP_INPUT);
    expect(store.has(KEY_NAME)).toBe(true);
    expectBackToNormal(true);
  });

  it('cancels a command still running after its budget, and does not move the volume before it has ended', async () => {
    storePlan(store, sent());
    let cancelled = false;
    let readsAfterCancel = 0;
    ssmMock.on(GetCommandInvocationCommand).callsFake(() => {
      if (!cancelled) return { Status: 'InProgress' };
      readsAfterCancel += 1;
      // Cancelling is not terminal: the command may still write.
      return readsAfterCancel < 3 ? { Status: 'Cancelling' } : { Status: 'Cancelled' };
    });
    ssmMock.on(CancelCommandCommand).callsFake(() => {
      cancelled = true;
      return {};
    });
    ec2Mock.on(DetachVolumeCommand).callsFake((input: { Force?: boolean }) => {
      expect({ readsAfterCancel, force: input.Force }).toEqual({ readsAfterCancel: 3, force: undefined });
      world.attachmentState = 'detaching';
      world.pending = world.lag;
      return {};
    });
    const r = await restore(deps(), STEP_INPUT);
    expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-1', InstanceIds: [HELPER_ID] });
    expect(r.message).toMatch(/cancelled the inject command cmd-1, still InProgress after 45 s/);
    expect(r.message).toMatch(/ended Cancelled/);
    expect(r.forcedDetach).toBe(false);
    expect(store.has(KEY_NAME)).toBe(false);
    expectBackToNormal(true);
  });

  it('a command that never ends: the first attempt fails and leaves the volume on the helper; the next one forces and says to check the filesystem', async () => {
    storePlan(store, sent());
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Cancelling' });
    ssmMock.on(CancelCommandCommand).resolves({});
    const clock = fakeClock();
    // Act: attempt 1
    await expect(restore({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT)).rejects.toMatchObject({
      name: 'NotReadyError',
      message: expect.stringMatching(/cmd-1 .* is still Cancelling 75 s after .*Restore is retried/),
    });
    // Assess: bounded by the two budgets, nothing moved, the wait is recorded
    expect(clock.elapsed()).toBeLessThanOrEqual(DEFAULT_BUDGETS.commandMs + DEFAULT_BUDGETS.cancelMs);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(world).toMatchObject({ attachedTo: HELPER_ID });
    expect(storedPlan(store)?.progress.commandWaitsExhausted).toBe(1);
    // Act: attempt 2 (Automation's retry)
    const r = await restore({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT);
    // Assess: forced at once (no normal detach of a volume that may be written), and said so first
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID, Force: true });
    expect(ec2Mock.commandCalls(DetachVolumeCommand).map((c) => c.args[0].input.Force)).toEqual([true]);
    expect(r.forcedDetach).toBe(true);
    expect(r.message).toMatch(/^FORCED the detach of vol-0123456789abcdef0 from helper i-\w+ \(the inject command never reported an end\).*fsck -n/);
    // the command may have added the key: its private half is kept
    expect(store.has(KEY_NAME)).toBe(true);
    expect(r.message).toContain(`the inject command's outcome is unknown: its private key stays in ${KEY_NAME}`);
    expectBackToNormal(true);
  });

  it('a command still running on a helper that is stopped: nothing runs there, the volume moves normally', async () => {
    storePlan(store, sent());
    world.helperState = 'stopped';
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    ssmMock.on(CancelCommandCommand).resolves({});
    const r = await restore(deps(), STEP_INPUT);
    expect(r.message).toContain(`helper ${HELPER_ID} is stopped: nothing runs on it`);
    expect(ec2Mock).not.toHaveReceivedCommandWith(DetachVolumeCommand, { Force: true });
    expect(r.forcedDetach).toBe(false);
    expectBackToNormal(true);
  });

  it('deletes the key of a command that failed', async () => {
    storePlan(store, sent());
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StandardOutputContent: '{"version":1,"status":"error","error":"no root","changes":[]}' });
    await restore(deps(), STEP_INPUT);
    expect(store.has(KEY_NAME)).toBe(false);
    expect(storedPlan(store)?.progress.keyInjected).toBe(false);
  });

  it('a command it cannot read is not known to have ended: it is waited for and cancelled like a running one', async () => {
    storePlan(store, sent());
    ssmMock.on(GetCommandInvocationCommand).rejects(awsError('AccessDeniedException'));
    ssmMock.on(CancelCommandCommand).resolves({});
    await expect(restore(deps(), STEP_INPUT)).rejects.toThrow(/still unreadable \(AccessDeniedException\)/);
    expect(ssmMock).toHaveReceivedCommandWith(CancelCommandCommand, { CommandId: 'cmd-1', InstanceIds: [HELPER_ID] });
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });

  it('does not wait for a command when the volume has already left the helper', async () => {
    storePlan(store, sent());
    Object.assign(world, { volumeState: 'available', attachedTo: undefined, attachmentState: undefined });
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const clock = fakeClock();
    const r = await restore({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT);
    expect(clock.elapsed()).toBeLessThan(DEFAULT_BUDGETS.commandMs);
    expect(ssmMock).not.toHaveReceivedCommand(CancelCommandCommand);
    expect(r.message).toContain('the root volume is no longer on the helper');
    expectBackToNormal(true);
  });
});

describe('the terminal command statuses, against the SSM API model (botocore)', () => {
  const model = botocoreModel('ssm');
  const statuses: string[] = model.shapes.CommandInvocationStatus.enum;
  /** The StatusDetails values the model documents as "a terminal state". */
  const terminalDetails = [...String(model.shapes.GetCommandInvocationResult.members.StatusDetails.documentation).matchAll(/<p>([A-Za-z ]+): (.*?)<\/p>/g)]
    .filter((m) => m[2].includes('This is a terminal state'))
    .map((m) => m[1]);

  it('every terminal status restore accepts is a Status value the model documents as terminal (the timeouts as TimedOut)', () => {
    expect(terminalDetails).toEqual(expect.arrayContaining(['Success', 'Failed', 'Cancelled', 'Delivery Timed Out', 'Execution Timed Out']));
    for (const s of COMMAND_TERMINAL) {
      expect(statuses).toContain(s);
      expect({ s, terminal: terminalDetails.includes(s) || (s === 'TimedOut' && terminalDetails.some((d) => d.endsWith('Timed Out'))) }).toEqual({ s, terminal: true });
    }
  });

  it('every other Status value (Pending, InProgress, Delayed, Cancelling) is waited for', () => {
    const waited = statuses.filter((s) => !COMMAND_TERMINAL.includes(s)).sort();
    expect(waited).toEqual(['Cancelling', 'Delayed', 'InProgress', 'Pending']);
    for (const s of waited) expect(terminalDetails).not.toContain(s);
  });

  it('InvocationDoesNotExist is an error GetCommandInvocation documents (Run Command is eventually consistent)', () => {
    expect(model.operations.GetCommandInvocation.errors.map((e: { shape: string }) => e.shape)).toContain('InvocationDoesNotExist');
    expect(model.operations.GetCommandInvocation.documentation).toMatch(/eventual consistency/);
  });
});
