import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CreateImageCommand,
  CreateSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  type Volume,
} from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/backup-and-detach/handler';
import type { Plan } from '@common/plan';
import { EXECUTION_ID, INSTANCE_ID, makePlan, parameterStore, ROOT_VOLUME_ID, STEP_EVENT, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;
let volume: Volume;
let state: string;

function planWith(method: Plan['inputs']['backupMethod']): Plan {
  const p = makePlan();
  p.inputs.backupMethod = method;
  return p;
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  state = 'stopped';
  volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached', Device: '/dev/xvda' }] };
  ec2Mock.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: state } }] }] }));
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [volume] }));
  ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2Mock.on(DescribeImagesCommand).resolves({ Images: [] });
  ec2Mock.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0' });
  ec2Mock.on(CreateImageCommand).resolves({ ImageId: 'ami-0123456789abcdef0' });
});
afterEach(() => jest.restoreAllMocks());

describe('backup-and-detach handler', () => {
  it('snapshots (tagged, no wait), records the id before the detach, detaches with the instance id', async () => {
    storePlan(store, planWith('Snapshot'));
    const out = await handler(STEP_EVENT);
    expect(out).toEqual({ BackupId: 'snap-0123456789abcdef0', BackupMethod: 'Snapshot' });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSnapshotCommand, {
      VolumeId: ROOT_VOLUME_ID,
      Description: expect.stringContaining(EXECUTION_ID),
      TagSpecifications: [
        expect.objectContaining({ ResourceType: 'snapshot', Tags: expect.arrayContaining([{ Key: 'reset-access:role', Value: 'backup' }, { Key: 'reset-access:execution-id', Value: EXECUTION_ID }]) }),
      ],
    });
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: INSTANCE_ID });
    // The backup id reached the plan before the detach.
    const order = ec2Mock.calls().map((c) => c.args[0].constructor.name);
    expect(order.indexOf('CreateSnapshotCommand')).toBeLessThan(order.indexOf('DetachVolumeCommand'));
    expect(storedPlan(store)?.created.backupId).toBe('snap-0123456789abcdef0');
    expect(storedPlan(store)?.progress.phase).toBe('root-detached');
  });

  it('makes an image without reboot when asked', async () => {
    storePlan(store, planWith('Image'));
    expect(await handler(STEP_EVENT)).toEqual({ BackupId: 'ami-0123456789abcdef0', BackupMethod: 'Image' });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateImageCommand, { InstanceId: INSTANCE_ID, NoReboot: true, Name: `reset-access-${INSTANCE_ID}-${EXECUTION_ID}` });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
  });

  it('makes no backup with None', async () => {
    storePlan(store, planWith('None'));
    expect(await handler(STEP_EVENT)).toEqual({ BackupId: 'none', BackupMethod: 'None' });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateImageCommand);
    expect(ec2Mock).toHaveReceivedCommand(DetachVolumeCommand);
  });

  it('reuses the snapshot of a retried attempt and does not detach twice', async () => {
    const p = planWith('Snapshot');
    p.created.backupId = 'snap-0000000000000000a';
    storePlan(store, p);
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'available', Attachments: [] };
    expect(await handler(STEP_EVENT)).toEqual({ BackupId: 'snap-0000000000000000a', BackupMethod: 'Snapshot' });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });

  it('finds a snapshot by its tags when the plan missed it', async () => {
    storePlan(store, planWith('Snapshot'));
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-0000000000000000b', VolumeId: ROOT_VOLUME_ID }] });
    expect((await handler(STEP_EVENT)).BackupId).toBe('snap-0000000000000000b');
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
  });

  it('refuses to detach from a running instance', async () => {
    storePlan(store, planWith('Snapshot'));
    state = 'running';
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'UnexpectedStateError', message: expect.stringMatching(/is running; it must be stopped/) });
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSnapshotCommand);
  });

  it('refuses when the volume is attached elsewhere', async () => {
    storePlan(store, planWith('Snapshot'));
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: 'i-0aaaaaaaaaaaaaaaa', State: 'attached' }] };
    await expect(handler(STEP_EVENT)).rejects.toThrow(/attached to i-0aaaaaaaaaaaaaaaa/);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });
});

describe('backupOnline (the online method, issue 12)', () => {
  function onlinePlan(method: Plan['inputs']['backupMethod'], rootVolumeId = ROOT_VOLUME_ID): Plan {
    const p = planWith(method);
    p.method = { chosen: 'Online', reason: 'test' };
    p.instance.rootVolumeId = rootVolumeId;
    return p;
  }

  it('snapshots the running root and detaches nothing', async () => {
    state = 'running';
    storePlan(store, onlinePlan('Snapshot'));
    ec2Mock.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0' });
    const out = await handler(STEP_EVENT);
    expect(out).toEqual({ BackupId: 'snap-0123456789abcdef0', BackupMethod: 'Snapshot' });
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(storedPlan(store)?.progress.phase).toBe('backup-started');
  });

  it('an image of the running instance is made with NoReboot (no stop, no reboot)', async () => {
    state = 'running';
    storePlan(store, onlinePlan('Image'));
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2Mock.on(CreateImageCommand).resolves({ ImageId: 'ami-0123456789abcdef0' });
    await handler(STEP_EVENT);
    expect(ec2Mock).toHaveReceivedCommandWith(CreateImageCommand, { InstanceId: INSTANCE_ID, NoReboot: true });
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
  });

  it('BackupMethod=None on an instance-store root (no volume): no EC2 call at all', async () => {
    state = 'running';
    storePlan(store, onlinePlan('None', ''));
    expect(await handler(STEP_EVENT)).toEqual({ BackupId: 'none', BackupMethod: 'None' });
    expect(ec2Mock.calls()).toHaveLength(0);
  });
});
