import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeVolumesCommand, DetachVolumeCommand, EC2Client, type Volume } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/release-from-helper/handler';
import { COMMAND_WAIT_MS, parseReport, releaseFromHelper } from '../../../lambdas/release-from-helper/release-from-helper';
import { awsError, fakeClock, HELPER_ID, makePlan, parameterStore, recordingLogger, ROOT_VOLUME_ID, STEP_EVENT, STEP_INPUT, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;
let volume: Volume;

const OK_REPORT = {
  version: 1,
  status: 'ok',
  root: { device: '/dev/nvme1n1p1', fstype: 'xfs' },
  selinux: false,
  changes: [
    { user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'appended' },
    { user: 'admin', uid: 1001, file: '/home/admin/.ssh/authorized_keys', action: 'created' },
    { user: 'ops', uid: 1002, file: '/home/ops/.ssh/authorized_keys', action: 'already-present' },
  ],
  warnings: [],
};

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  storePlan(store, makePlan({ created: { helperInstanceId: HELPER_ID, commandId: 'cmd-1', keyParameterName: '/ec2rl/openssh/x/key' } }));
  volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'attached', Device: '/dev/sdf' }] };
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [volume] }));
});
afterEach(() => jest.restoreAllMocks());

const invocation = (Status: string, stdout: string) =>
  ssmMock.on(GetCommandInvocationCommand).resolves({ Status: Status as never, StandardOutputContent: stdout });

describe('release-from-helper handler', () => {
  it('reads the report, marks the key injected, detaches from the helper', async () => {
    invocation('Success', `mounting…\nfound root\n${JSON.stringify(OK_REPORT)}\n`);
    const out = await handler(STEP_EVENT);
    expect(out).toMatchObject({
      UsersChanged: 'ec2-user,admin',
      FilesChanged: '/home/ec2-user/.ssh/authorized_keys,/home/admin/.ssh/authorized_keys',
    });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(ssmMock).toHaveReceivedCommandWith(GetCommandInvocationCommand, { CommandId: 'cmd-1', InstanceId: HELPER_ID });
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID });
    expect(storedPlan(store)?.progress).toEqual({ keyInjected: true, phase: 'released-from-helper' });
  });

  it('says none when every user had the key already', async () => {
    invocation('Success', JSON.stringify({ ...OK_REPORT, changes: [OK_REPORT.changes[2]] }));
    expect(await handler(STEP_EVENT)).toMatchObject({ UsersChanged: 'none', FilesChanged: 'none' });
  });

  it('throws with the report error when the command failed, and does not detach or mark injected', async () => {
    invocation('Failed', 'x\n{"version":1,"status":"error","error":"two Linux roots found: /dev/nvme1n1p1, /dev/nvme1n1p2","changes":[]}');
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({
      name: 'InjectionFailedError',
      message: expect.stringMatching(/cmd-1 .* ended Failed: two Linux roots found/),
    });
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(storedPlan(store)?.progress.keyInjected).toBe(false);
  });

  it('throws when the command succeeded but the report says error', async () => {
    invocation('Success', '{"version":1,"status":"error","error":"no user","changes":[]}');
    await expect(handler(STEP_EVENT)).rejects.toThrow(/ended Success: no user/);
  });

  it.each(['TimedOut', 'Cancelled'])('throws when the command %s without a report', async (status) => {
    invocation(status, '');
    await expect(handler(STEP_EVENT)).rejects.toThrow(new RegExp(`ended ${status}: no JSON report`));
  });

  it('does not detach again on retry', async () => {
    invocation('Success', JSON.stringify(OK_REPORT));
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'available', Attachments: [] };
    await handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });

  it('throws when the plan has no command', async () => {
    storePlan(store, makePlan({ created: { helperInstanceId: HELPER_ID } }));
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError' });
  });
});

describe('parseReport', () => {
  it('takes the last non-empty line and ignores junk', () => {
    expect(parseReport('a\n{"status":"ok","changes":[]}\n\n')?.status).toBe('ok');
    expect(parseReport('{"status":"ok"}\nnot json')).toBeUndefined();
    expect(parseReport('{"status":"maybe"}')).toBeUndefined();
    expect(parseReport(undefined)).toBeUndefined();
    expect(parseReport('{"status":"ok"}')?.changes).toEqual([]);
  });
});

describe('release-from-helper waits for the command to end (defect 7)', () => {
  const deps = (clock = fakeClock()) => ({ ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger(), clock });

  it('tolerates InvocationDoesNotExist right after SendCommand, waits through InProgress, then releases', async () => {
    let reads = 0;
    ssmMock.on(GetCommandInvocationCommand).callsFake(() => {
      reads += 1;
      if (reads <= 2) throw awsError('InvocationDoesNotExist');
      return reads < 5 ? { Status: 'InProgress' } : { Status: 'Success', StandardOutputContent: JSON.stringify(OK_REPORT) };
    });
    const d = deps();
    const r = await releaseFromHelper(d, STEP_INPUT);
    expect(reads).toBe(5);
    expect(r.usersChanged).toEqual(['ec2-user', 'admin']);
    expect(d.clock.elapsed()).toBeLessThanOrEqual(COMMAND_WAIT_MS);
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID });
  });

  it.each(['Pending', 'InProgress', 'Delayed', 'Cancelling'])('gives up after the bound while the command is %s, leaving the volume on the helper', async (status) => {
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: status as never });
    const d = deps();
    await expect(releaseFromHelper(d, STEP_INPUT)).rejects.toMatchObject({
      name: 'NotReadyError',
      message: expect.stringContaining(`had not ended after ${COMMAND_WAIT_MS / 1000} s (last status: ${status})`),
    });
    expect(d.clock.elapsed()).toBeLessThanOrEqual(COMMAND_WAIT_MS);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(storedPlan(store)?.progress.keyInjected).toBe(false);
  });

  it('an invocation that never appears is bounded too, and named', async () => {
    ssmMock.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist'));
    await expect(releaseFromHelper(deps(), STEP_INPUT)).rejects.toThrow(/last status: not yet visible \(InvocationDoesNotExist\)/);
  });

  it('other errors are not swallowed', async () => {
    ssmMock.on(GetCommandInvocationCommand).rejects(awsError('AccessDeniedException'));
    await expect(releaseFromHelper(deps(), STEP_INPUT)).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });
});
