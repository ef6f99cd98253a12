import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, ModifyInstanceAttributeCommand, StartInstancesCommand, type Volume } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/start-instance/handler';
import type { Plan } from '@common/plan';
import { HELPER_ID, INSTANCE_ID, makePlan, parameterStore, ROOT_VOLUME_ID, STEP_EVENT, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;
let volume: Volume;
let state: string;

function plan(change: (p: Plan) => void = () => undefined): Plan {
  const p = makePlan({ created: { backupId: 'snap-0123456789abcdef0' } });
  change(p);
  return p;
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  state = 'stopped';
  volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached', Device: '/dev/xvda' }] };
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [volume] }));
  ec2Mock.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: state } }] }] }));
});
afterEach(() => jest.restoreAllMocks());

describe('start-instance handler', () => {
  it('restores DeleteOnTermination, starts a formerly running instance, warns about the public IP and the backup', async () => {
    storePlan(store, plan());
    const out = await handler(STEP_EVENT);
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(out.Started).toBe(true);
    expect(out.Warnings.split(';')).toEqual([expect.stringMatching(/public IP changed \(was 203.0.113.10\)/)]);
    expect(ec2Mock).toHaveReceivedCommandWith(ModifyInstanceAttributeCommand, {
      InstanceId: INSTANCE_ID,
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true } }],
    });
    expect(ec2Mock).toHaveReceivedCommandWith(StartInstancesCommand, { InstanceIds: [INSTANCE_ID] });
    expect(storedPlan(store)?.progress.phase).toBe('started');
  });

  it('leaves a formerly stopped instance stopped, with no public IP warning', async () => {
    storePlan(store, plan((p) => {
      p.instance.originalState = 'stopped';
      p.instance.deleteOnTermination = false;
      p.created = {};
    }));
    expect(await handler(STEP_EVENT)).toEqual({ Started: false, Warnings: 'none' });
    expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
    expect(ec2Mock).toHaveReceivedCommandWith(ModifyInstanceAttributeCommand, { BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: false } }] });
  });

  it('does not warn about the IP of an Elastic IP, and does not start twice', async () => {
    storePlan(store, plan((p) => (p.instance.elasticIp = true)));
    state = 'pending';
    const out = await handler(STEP_EVENT);
    expect(out.Started).toBe(true);
    expect(out.Warnings).not.toMatch(/public IP/);
    expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
  });

  it('warns that instance-store data was lost', async () => {
    storePlan(store, plan((p) => (p.inputs.allowEphemeralDataLoss = true)));
    expect((await handler(STEP_EVENT)).Warnings).toMatch(/instance-store volumes was lost/);
  });

  it('refuses to start while the root volume is not attached', async () => {
    storePlan(store, plan());
    volume = { VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'attached' }] };
    await expect(handler(STEP_EVENT)).rejects.toThrow(new RegExp(`Volume ${ROOT_VOLUME_ID} is not attached to ${INSTANCE_ID}`));
    expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
  });
});
