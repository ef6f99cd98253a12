import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { AttachVolumeCommand, DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, type Tag, type Volume } from '@aws-sdk/client-ec2';
import { tagsFor } from '@common/tags';
import { SSMClient } from '@aws-sdk/client-ssm';
import * as attach from '../../../lambdas/attach-to-helper/handler';
import * as reattach from '../../../lambdas/reattach-root/handler';
import { EXECUTION_ID, HELPER_ID, INSTANCE_ID, makePlan, OTHER_EXECUTION_ID, parameterStore, ROOT_VOLUME_ID, STEP_EVENT, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;
let volume: Volume;

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  storePlan(store, makePlan({ created: { helperInstanceId: HELPER_ID } }));
  volume = { VolumeId: ROOT_VOLUME_ID, State: 'available', Attachments: [] };
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [volume] }));
  helperTags = tagsFor('helper', EXECUTION_ID, INSTANCE_ID);
  ec2Mock.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [{ InstanceId: HELPER_ID, State: { Name: 'running' }, Tags: helperTags }] }] }));
});
let helperTags: Tag[];
afterEach(() => jest.restoreAllMocks());

describe('attach-to-helper handler', () => {
  it('attaches the available root volume to the helper at /dev/sdf', async () => {
    const out = await attach.handler(STEP_EVENT);
    expect(out).toEqual({ HelperDeviceName: '/dev/sdf' });
    expect(Object.keys(out)).toEqual([...attach.OUTPUT_FIELDS]);
    expect(ec2Mock).toHaveReceivedCommandWith(AttachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID, Device: '/dev/sdf' });
    expect(storedPlan(store)?.progress.phase).toBe('attached-to-helper');
  });

  it('is a no-op on retry when already attached to the helper', async () => {
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'attached', Device: '/dev/sdf' }] };
    await attach.handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
  });

  it('throws naming the volume when it is still on the instance', async () => {
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached' }] };
    await expect(attach.handler(STEP_EVENT)).rejects.toMatchObject({ name: 'UnexpectedStateError', message: expect.stringContaining(`Volume ${ROOT_VOLUME_ID} is in-use (attached to ${INSTANCE_ID})`) });
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
  });

  it.each([
    ['the helper of another execution', () => tagsFor('helper', OTHER_EXECUTION_ID, INSTANCE_ID)],
    ['an instance of ours that is not a helper', () => tagsFor('vpc', EXECUTION_ID, INSTANCE_ID)],
    ['an instance without our tags', () => [{ Key: 'Name', Value: 'prod-db' }]],
  ])('refuses a plan whose helper is %s, attaching nothing', async (_name, tags) => {
    helperTags = tags();
    await expect(attach.handler(STEP_EVENT)).rejects.toThrow(`instance ${HELPER_ID} named in the plan is not tagged as the helper of execution ${EXECUTION_ID}`);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
  });

  it('throws when the plan has no helper', async () => {
    storePlan(store, makePlan());
    await expect(attach.handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringMatching(/no helper/) });
  });
});

describe('reattach-root handler', () => {
  it('attaches the root volume back at the original device name', async () => {
    const out = await reattach.handler(STEP_EVENT);
    expect(out).toEqual({ DeviceName: '/dev/xvda' });
    expect(Object.keys(out)).toEqual([...reattach.OUTPUT_FIELDS]);
    expect(ec2Mock).toHaveReceivedCommandWith(AttachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: INSTANCE_ID, Device: '/dev/xvda' });
    expect(storedPlan(store)?.progress.phase).toBe('root-reattached');
  });

  it('is a no-op when already back', async () => {
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached' }] };
    await reattach.handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
  });

  it('throws when the volume is still on the helper', async () => {
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'detaching' }] };
    await expect(reattach.handler(STEP_EVENT)).rejects.toThrow(`detaching to ${HELPER_ID}`);
    expect(ec2Mock).not.toHaveReceivedCommand(AttachVolumeCommand);
  });
});
