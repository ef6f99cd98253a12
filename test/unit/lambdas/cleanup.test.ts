import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DeleteTagsCommand,
  DeleteInternetGatewayCommand,
  DeleteSecurityGroupCommand,
  DeleteVpcCommand,
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DescribeVolumesCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  EC2Client,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { DeleteParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/cleanup/handler';
import { cleanup } from '../../../lambdas/cleanup/cleanup';
import { tagsFor } from '@common/tags';
import type { Plan } from '@common/plan';
import {
  awsError,
  EXECUTION_ID,
  fakeClock,
  HELPER_ID,
  INSTANCE_ID,
  LOCK_NAME,
  makePlan,
  OTHER_EXECUTION_ID,
  parameterStore,
  recordingLogger,
  ROOT_VOLUME_ID,
  STEP_EVENT,
  STEP_INPUT,
  sentCommands,
  storePlan,
} from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const ec2 = new EC2Client({});
const ssm = new SSMClient({});
let store: ReturnType<typeof parameterStore>;
let helper: Instance;
let describesUntilTerminated: number;

const NETWORK = {
  vpcId: 'vpc-00000000000000new',
  subnetId: 'subnet-000000000000new',
  internetGatewayId: 'igw-00000000000000new',
  routeTableId: 'rtb-00000000000000new',
  securityGroupId: 'sg-000000000000000new',
};

function planWith(created: Plan['created']): Plan {
  return makePlan({ created, progress: { keyInjected: true, phase: 'started' } });
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  helper = { InstanceId: HELPER_ID, State: { Name: 'running' }, Tags: tagsFor('helper', EXECUTION_ID, INSTANCE_ID) };
  describesUntilTerminated = 0;
  ec2Mock.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[]; Filters?: unknown[] }) => {
    if (input.InstanceIds?.[0] === INSTANCE_ID) {
      return { Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' }, Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] }] }] };
    }
    if (input.InstanceIds && helper.State?.Name === 'shutting-down') {
      if (describesUntilTerminated-- <= 0) helper.State = { Name: 'terminated' };
    }
    return { Reservations: [{ Instances: [helper] }] };
  });
  ec2Mock.on(TerminateInstancesCommand).callsFake(() => {
    helper.State = { Name: 'shutting-down' };
    return {};
  });
  ec2Mock.on(DescribeVolumesCommand).resolves({
    Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached' }], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] }],
  });
  ec2Mock.on(DescribeRouteTablesCommand).resolves({
    RouteTables: [{ RouteTableId: NETWORK.routeTableId, Associations: [{ RouteTableAssociationId: 'rtbassoc-1', SubnetId: NETWORK.subnetId, Main: false }] }],
  });
});
afterEach(() => jest.restoreAllMocks());

describe('cleanup handler', () => {
  it('terminates the helper, waits, deletes the network in order, and releases the lock', async () => {
    // Prepare
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    // Act
    const out = await handler(STEP_EVENT);
    // Assess
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    expect(out.Removed.split(',')).toEqual([HELPER_ID, NETWORK.securityGroupId, NETWORK.routeTableId, NETWORK.internetGatewayId, NETWORK.subnetId, NETWORK.vpcId]);
    expect(ec2Mock).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [HELPER_ID] });
    expect(ec2Mock).toHaveReceivedCommandWith(DisassociateRouteTableCommand, { AssociationId: 'rtbassoc-1' });
    expect(ec2Mock).toHaveReceivedCommandWith(DetachInternetGatewayCommand, { InternetGatewayId: NETWORK.internetGatewayId, VpcId: NETWORK.vpcId });
    const order = ec2Mock.calls().map((c) => c.args[0].constructor.name).filter((n) => !n.startsWith('Describe'));
    expect(order).toEqual([
      'TerminateInstancesCommand',
      'DeleteSecurityGroupCommand',
      'DisassociateRouteTableCommand',
      'DeleteRouteTableCommand',
      'DetachInternetGatewayCommand',
      'DeleteInternetGatewayCommand',
      'DeleteSubnetCommand',
      'DeleteVpcCommand',
      // Last: this run's lock tag, by value, from the instance and the root volume.
      'DeleteTagsCommand',
      'DeleteTagsCommand',
    ]);
    const untagged = ec2Mock.commandCalls(DeleteTagsCommand).map((c) => c.args[0].input);
    expect(untagged).toEqual([
      { Resources: [INSTANCE_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] },
      { Resources: [ROOT_VOLUME_ID], Tags: [{ Key: 'reset-access:lock', Value: EXECUTION_ID }] },
    ]);
    // ... while the lock record still refuses another run.
    const released = ssmMock.commandCalls(DeleteParameterCommand)[0];
    expect(released && ec2Mock.commandCalls(DeleteTagsCommand)[1]?.calledBefore(released)).toBe(true);
    expect(ssmMock).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: LOCK_NAME });
    expect(store.has(LOCK_NAME)).toBe(false);
  });

  it('deletes only the security group when the helper ran in an existing subnet', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, securityGroupId: NETWORK.securityGroupId }));
    const out = await handler(STEP_EVENT);
    expect(out.Removed).toBe(`${HELPER_ID},${NETWORK.securityGroupId}`);
    expect(sentCommands(ec2Mock)).not.toEqual(expect.arrayContaining([expect.stringMatching(/^Delete(Vpc|Subnet|InternetGateway|RouteTable)Command$/)]));
  });

  it('is idempotent: a second run finds nothing to do', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    await handler(STEP_EVENT);
    ec2Mock.resetHistory();
    expect(await handler(STEP_EVENT)).toEqual({ Removed: 'none' });
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it('skips what is already gone (a retry after a partial run)', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    helper.State = { Name: 'terminated' };
    ec2Mock.on(DeleteSecurityGroupCommand).rejects(awsError('InvalidGroup.NotFound'));
    ec2Mock.on(DescribeRouteTablesCommand).rejects(awsError('InvalidRouteTableID.NotFound'));
    ec2Mock.on(DetachInternetGatewayCommand).rejects(awsError('Gateway.NotAttached'));
    ec2Mock.on(DeleteInternetGatewayCommand).rejects(awsError('InvalidInternetGatewayID.NotFound'));
    const out = await handler(STEP_EVENT);
    expect(out.Removed).toBe(`${NETWORK.subnetId},${NETWORK.vpcId}`);
    expect(ec2Mock).not.toHaveReceivedCommand(TerminateInstancesCommand);
    expect(store.has(LOCK_NAME)).toBe(false);
  });

  it('does nothing without a plan', async () => {
    expect(await handler(STEP_EVENT)).toEqual({ Removed: 'none' });
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it("fails on another execution's plan (P1-2: not a success), leaving its plan and resources alone", async () => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID, created: { helperInstanceId: HELPER_ID, ...NETWORK } }));
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringContaining(`belongs to execution ${OTHER_EXECUTION_ID}`) });
    expect(ec2Mock.calls()).toHaveLength(0);
    expect(store.has(LOCK_NAME)).toBe(true);
  });

  it('does not terminate an instance that is not tagged as our helper', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID }));
    helper.Tags = [{ Key: 'Name', Value: 'someone-else' }];
    const out = await handler(STEP_EVENT);
    expect(out.Removed).toBe('none');
    expect(ec2Mock).not.toHaveReceivedCommand(TerminateInstancesCommand);
  });

  it('finds by its tags a helper whose id never reached the plan', async () => {
    storePlan(store, planWith({ securityGroupId: NETWORK.securityGroupId }));
    await handler(STEP_EVENT);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, { Filters: expect.arrayContaining([{ Name: 'tag:reset-access:execution-id', Values: [EXECUTION_ID] }]) });
    expect(ec2Mock).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [HELPER_ID] });
  });

  it('refuses to terminate a helper that still holds the root volume', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'attached' }] }] });
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'RefusedError', message: expect.stringContaining(`Volume ${ROOT_VOLUME_ID} is attached to helper ${HELPER_ID}`) });
    expect(ec2Mock).not.toHaveReceivedCommand(TerminateInstancesCommand);
    expect(store.has(LOCK_NAME)).toBe(true);
  });
});

describe('cleanup waiting for the helper', () => {
  it('polls until terminated', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID }));
    describesUntilTerminated = 5;
    const clock = fakeClock();
    const removed = await cleanup({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT);
    expect(removed).toEqual([HELPER_ID]);
    expect(clock.elapsed()).toBe(25_000);
  });

  it('throws after its budget so that the step retries, keeping the lock and the network', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    describesUntilTerminated = 1_000;
    const clock = fakeClock();
    await expect(cleanup({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT)).rejects.toMatchObject({ name: 'NotReadyError', message: expect.stringMatching(/Timed out after 180 s/) });
    expect(clock.elapsed()).toBeLessThanOrEqual(200_000);
    expect(clock.elapsed()).toBeGreaterThanOrEqual(175_000);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteVpcCommand);
    expect(store.has(LOCK_NAME)).toBe(true);
  });
});

describe('cleanup and lingering dependencies', () => {
  it('retries a delete that fails with DependencyViolation until the network interface is gone', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    let attempts = 0;
    ec2Mock.on(DeleteSecurityGroupCommand).callsFake(() => {
      attempts += 1;
      if (attempts < 3) throw awsError('DependencyViolation', 'resource sg has a dependent object');
      return {};
    });
    const clock = fakeClock();
    const removed = await cleanup({ ec2, ssm, log: recordingLogger(), clock }, STEP_INPUT);
    expect(attempts).toBe(3);
    expect(removed).toContain(NETWORK.securityGroupId);
    expect(clock.elapsed()).toBe(10_000);
  });

  it('throws after its budget, keeping the lock so the step can retry', async () => {
    storePlan(store, planWith({ helperInstanceId: HELPER_ID, ...NETWORK }));
    ec2Mock.on(DeleteSecurityGroupCommand).rejects(awsError('DependencyViolation'));
    await expect(cleanup({ ec2, ssm, log: recordingLogger(), clock: fakeClock() }, STEP_INPUT)).rejects.toMatchObject({
      name: 'NotReadyError',
      message: expect.stringContaining(`${NETWORK.securityGroupId} to be free of dependencies`),
    });
    expect(store.has(LOCK_NAME)).toBe(true);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteVpcCommand);
  });
});
