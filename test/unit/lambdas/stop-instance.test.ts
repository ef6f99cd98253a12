import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeInstancesCommand, EC2Client, ModifyInstanceAttributeCommand, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/stop-instance/handler';
import { INSTANCE_ID, makePlan, OTHER_EXECUTION_ID, parameterStore, STEP_EVENT, storedPlan, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  storePlan(store, makePlan());
});
afterEach(() => jest.restoreAllMocks());

const withState = (Name: 'running' | 'stopped' | 'stopping') =>
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name } }] }] });

describe('stop-instance handler', () => {
  it('keeps the root volume on termination, then stops a running instance', async () => {
    withState('running');
    const out = await handler(STEP_EVENT);
    expect(out).toEqual({ PreviousState: 'running' });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(ec2Mock).toHaveReceivedCommandWith(ModifyInstanceAttributeCommand, {
      InstanceId: INSTANCE_ID,
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: false } }],
    });
    expect(ec2Mock).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [INSTANCE_ID] });
    expect(storedPlan(store)?.progress.phase).toBe('stop-requested');
  });

  it.each(['stopped', 'stopping'] as const)('does not stop an instance that is %s', async (state) => {
    withState(state);
    expect(await handler(STEP_EVENT)).toEqual({ PreviousState: state });
    expect(ec2Mock).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(ec2Mock).toHaveReceivedCommand(ModifyInstanceAttributeCommand);
  });

  it('touches nothing when the plan is another execution\'s', async () => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID }));
    withState('running');
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError' });
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(StopInstancesCommand);
  });

  it('touches nothing when there is no plan', async () => {
    store.clear();
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringMatching(/No plan record/) });
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it('rejects a bad payload', async () => {
    await expect(handler({ ExecutionId: 'x', InstanceId: 'vol-1' })).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});
