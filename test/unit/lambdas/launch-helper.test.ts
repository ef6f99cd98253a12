import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  AuthorizeSecurityGroupEgressCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcEndpointsCommand,
  DescribeVpcsCommand,
  EC2Client,
  RevokeSecurityGroupEgressCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { awsError, sentCommands, EXECUTION_ID, HELPER_ID, INSTANCE_ID, makePlan, parameterStore, STEP_EVENT, storedPlan, storePlan } from '../helpers';
import type { Plan } from '@common/plan';
import { egressTarget, HELPER_NETWORK_NEEDS, ROUTE_EGRESS_TARGETS, ROUTE_NON_TARGETS } from '../../../lambdas/launch-helper/helper-network';
import { botocoreModel, documentedFilters } from './botocore';

process.env.HELPER_INSTANCE_PROFILE_ARN = 'arn:aws:iam::123456789012:instance-profile/reset-access-helper';
process.env.HELPER_AMI_PARAMETER_PREFIX = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-';
process.env.WINDOWS_HELPER_AMI_PARAMETER = '/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { fitOutput, handler, OUTPUT_FIELDS } = require('../../../lambdas/launch-helper/handler') as typeof import('../../../lambdas/launch-helper/handler');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { clientTokenFor } = require('../../../lambdas/launch-helper/launch-helper') as typeof import('../../../lambdas/launch-helper/launch-helper');

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;
/** The VPC of each subnet the tests name (the plan's instance subnet is in the instance's VPC). */
const VPC_OF: Record<string, string> = { 'subnet-0123456789abcdef0': 'vpc-0123456789abcdef0' };
/** Extra attributes DescribeSubnets returns for every subnet (MapPublicIpOnLaunch). */
let subnetAttributes: { MapPublicIpOnLaunch?: boolean } = {};

function planWith(subnetId: Plan['inputs']['subnetId'], helperType = 't3.small'): Plan {
  const p = makePlan();
  p.inputs.subnetId = subnetId;
  p.inputs.helperInstanceType = helperType;
  return p;
}

beforeEach(() => {
  subnetAttributes = {};
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  ssmMock.on(GetParameterCommand, { Name: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64' }).resolves({ Parameter: { Value: 'ami-0000000000000x86' } });
  ssmMock.on(GetParameterCommand, { Name: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64' }).resolves({ Parameter: { Value: 'ami-00000000000000arm' } });
  ec2Mock.on(DescribeInstanceTypesCommand).callsFake((input: { InstanceTypes: string[] }) => ({
    InstanceTypes: [{ InstanceType: input.InstanceTypes[0], ProcessorInfo: { SupportedArchitectures: input.InstanceTypes[0].startsWith('t4g') ? ['arm64'] : ['i386', 'x86_64'] } }],
  }));
  ec2Mock.on(DescribeImagesCommand).callsFake((input: { ImageIds: string[] }) => ({ Images: [{ ImageId: input.ImageIds[0], RootDeviceName: '/dev/xvda' }] }));
  ec2Mock.on(DescribeVpcsCommand).resolves({ Vpcs: [] });
  ec2Mock.on(DescribeSubnetsCommand).callsFake((input: { SubnetIds?: string[] }) =>
    input.SubnetIds
      ? { Subnets: input.SubnetIds.map((id) => ({ SubnetId: id, VpcId: VPC_OF[id] ?? 'vpc-0000000000000user', AvailabilityZone: 'us-east-1a', ...subnetAttributes })) }
      : { Subnets: [] },
  );
  ec2Mock.on(DescribeInternetGatewaysCommand).resolves({ InternetGateways: [] });
  ec2Mock.on(DescribeRouteTablesCommand).resolves({ RouteTables: [] });
  ec2Mock.on(DescribeSecurityGroupsCommand).callsFake((input: { GroupIds?: string[] }) =>
    input.GroupIds
      ? { SecurityGroups: [{ GroupId: input.GroupIds[0], IpPermissionsEgress: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] }] }
      : { SecurityGroups: [] },
  );
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2Mock.on(CreateVpcCommand).resolves({ Vpc: { VpcId: 'vpc-00000000000000new' } });
  ec2Mock.on(CreateSubnetCommand).resolves({ Subnet: { SubnetId: 'subnet-000000000000new' } });
  ec2Mock.on(CreateInternetGatewayCommand).resolves({ InternetGateway: { InternetGatewayId: 'igw-00000000000000new' } });
  ec2Mock.on(CreateRouteTableCommand).resolves({ RouteTable: { RouteTableId: 'rtb-00000000000000new' } });
  ec2Mock.on(CreateSecurityGroupCommand).resolves({ GroupId: 'sg-000000000000000new' });
  ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: HELPER_ID }] });
});
afterEach(() => jest.restoreAllMocks());

describe('launch-helper handler, CreateNewVPC', () => {
  it('builds a tagged VPC with a public subnet in the target AZ, a 443-only group, and a locked-down helper', async () => {
    // Prepare
    storePlan(store, planWith('CreateNewVPC'));
    // Act
    const out = await handler(STEP_EVENT);
    // Assess
    expect(out).toEqual({
      HelperInstanceId: HELPER_ID,
      SubnetId: 'subnet-000000000000new',
      VpcId: 'vpc-00000000000000new',
      NetworkCreated: true,
      HelperNetwork: expect.stringContaining('internet gateway'),
    });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
    const tagged = (role: string, type: string) => [
      expect.objectContaining({ ResourceType: type, Tags: expect.arrayContaining([{ Key: 'reset-access:role', Value: role }, { Key: 'reset-access:execution-id', Value: EXECUTION_ID }, { Key: 'reset-access:managed-by', Value: 'ec2-reset-access' }]) }),
    ];
    expect(ec2Mock).toHaveReceivedCommandWith(CreateVpcCommand, { CidrBlock: '10.255.0.0/24', TagSpecifications: tagged('vpc', 'vpc') });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSubnetCommand, { VpcId: 'vpc-00000000000000new', AvailabilityZone: 'us-east-1a', TagSpecifications: tagged('subnet', 'subnet') });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateInternetGatewayCommand, { TagSpecifications: tagged('internet-gateway', 'internet-gateway') });
    expect(ec2Mock).toHaveReceivedCommandWith(AttachInternetGatewayCommand, { InternetGatewayId: 'igw-00000000000000new', VpcId: 'vpc-00000000000000new' });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateRouteTableCommand, { VpcId: 'vpc-00000000000000new', TagSpecifications: tagged('route-table', 'route-table') });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateRouteCommand, { RouteTableId: 'rtb-00000000000000new', DestinationCidrBlock: '0.0.0.0/0', GatewayId: 'igw-00000000000000new' });
    expect(ec2Mock).toHaveReceivedCommandWith(AssociateRouteTableCommand, { RouteTableId: 'rtb-00000000000000new', SubnetId: 'subnet-000000000000new' });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSecurityGroupCommand, { VpcId: 'vpc-00000000000000new', GroupName: `reset-access-helper-${EXECUTION_ID}`, TagSpecifications: tagged('security-group', 'security-group') });
    expect(ec2Mock).toHaveReceivedCommandWith(RevokeSecurityGroupEgressCommand, { GroupId: 'sg-000000000000000new', IpPermissions: [{ IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] });
    expect(ec2Mock).toHaveReceivedCommandWith(AuthorizeSecurityGroupEgressCommand, {
      GroupId: 'sg-000000000000000new',
      IpPermissions: [expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [expect.objectContaining({ CidrIp: '0.0.0.0/0' })] })],
    });
    const run = ec2Mock.commandCalls(RunInstancesCommand)[0].args[0].input;
    expect(run).toMatchObject({
      ImageId: 'ami-0000000000000x86',
      InstanceType: 't3.small',
      MinCount: 1,
      MaxCount: 1,
      ClientToken: clientTokenFor(EXECUTION_ID, INSTANCE_ID),
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true } }],
      InstanceInitiatedShutdownBehavior: 'terminate',
      IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/reset-access-helper' },
      NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: 'subnet-000000000000new', Groups: ['sg-000000000000000new'], AssociatePublicIpAddress: true }],
    });
    expect(run.KeyName).toBeUndefined();
    expect(run.TagSpecifications?.map((t) => t.ResourceType)).toEqual(['instance', 'volume', 'network-interface']);
    expect(run.ClientToken!.length).toBeLessThanOrEqual(64);
    expect(storedPlan(store)?.created).toEqual({
      vpcId: 'vpc-00000000000000new',
      subnetId: 'subnet-000000000000new',
      internetGatewayId: 'igw-00000000000000new',
      routeTableId: 'rtb-00000000000000new',
      securityGroupId: 'sg-000000000000000new',
      helperInstanceId: HELPER_ID,
    });
    expect(storedPlan(store)?.progress.phase).toBe('helper-launched');
  });

  it('records every network id before RunInstances fails, so restore and cleanup find them', async () => {
    storePlan(store, planWith('CreateNewVPC'));
    ec2Mock.on(RunInstancesCommand).rejects(awsError('InsufficientInstanceCapacity'));
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({ name: 'InsufficientInstanceCapacity' });
    expect(storedPlan(store)?.created).toEqual({
      vpcId: 'vpc-00000000000000new',
      subnetId: 'subnet-000000000000new',
      internetGatewayId: 'igw-00000000000000new',
      routeTableId: 'rtb-00000000000000new',
      securityGroupId: 'sg-000000000000000new',
    });
  });

  it('creates nothing again on retry: uses the plan, then the tags', async () => {
    // Prepare: the plan knows the VPC and subnet; the gateway is found by its tags.
    const p = planWith('CreateNewVPC');
    p.created = { vpcId: 'vpc-00000000000000old', subnetId: 'subnet-000000000000old' };
    storePlan(store, p);
    ec2Mock.on(DescribeInternetGatewaysCommand).resolves({ InternetGateways: [{ InternetGatewayId: 'igw-00000000000000old', Attachments: [{ VpcId: 'vpc-00000000000000old', State: 'attached' }] }] });
    ec2Mock.on(DescribeRouteTablesCommand).resolves({
      RouteTables: [{ RouteTableId: 'rtb-00000000000000old', Routes: [{ DestinationCidrBlock: '0.0.0.0/0', GatewayId: 'igw-00000000000000old' }], Associations: [{ SubnetId: 'subnet-000000000000old' }] }],
    });
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0000000000000old1', State: { Name: 'pending' } }] }] });
    ec2Mock.on(DescribeSecurityGroupsCommand).resolves({
      SecurityGroups: [{ GroupId: 'sg-00000000000000old', IpPermissionsEgress: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] }],
    });
    // Act
    const out = await handler(STEP_EVENT);
    // Assess
    expect(out.HelperInstanceId).toBe('i-0000000000000old1');
    const creates = sentCommands(ec2Mock).filter((n) => /^(Create|Attach|Associate|Run)/.test(n));
    expect(creates).toEqual([]);
    expect(storedPlan(store)?.created).toMatchObject({ internetGatewayId: 'igw-00000000000000old', routeTableId: 'rtb-00000000000000old', securityGroupId: 'sg-00000000000000old', helperInstanceId: 'i-0000000000000old1' });
  });
});

describe('launch-helper handler, existing subnets', () => {
  it('uses the instance subnet, its own public IP setting (none), and an arm64 AMI for a Graviton helper', async () => {
    storePlan(store, planWith('SelectedInstanceSubnet', 't4g.small'));
    const out = await handler(STEP_EVENT);
    expect(out).toMatchObject({ HelperInstanceId: HELPER_ID, SubnetId: 'subnet-0123456789abcdef0', VpcId: 'vpc-0123456789abcdef0', NetworkCreated: false });
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeSubnetsCommand, { SubnetIds: ['subnet-0123456789abcdef0'] });
    expect(ssmMock).toHaveReceivedCommandWith(GetParameterCommand, { Name: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64' });
    expect(ec2Mock).toHaveReceivedCommandWith(RunInstancesCommand, {
      ImageId: 'ami-00000000000000arm',
      NetworkInterfaces: [expect.objectContaining({ SubnetId: 'subnet-0123456789abcdef0', AssociatePublicIpAddress: false })],
    });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSecurityGroupCommand, { VpcId: 'vpc-0123456789abcdef0' });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateVpcCommand);
    expect(storedPlan(store)?.created.vpcId).toBeUndefined();
  });

  it('uses a named subnet in its VPC', async () => {
    storePlan(store, planWith('subnet-00000000000000aa'));
    const out = await handler(STEP_EVENT);
    expect(out).toMatchObject({ SubnetId: 'subnet-00000000000000aa', VpcId: 'vpc-0000000000000user', NetworkCreated: false });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateSecurityGroupCommand, { VpcId: 'vpc-0000000000000user' });
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSubnetCommand);
  });

  it('leaves a 443-only egress alone on retry', async () => {
    const p = planWith('SelectedInstanceSubnet');
    p.created = { securityGroupId: 'sg-0000000000000000a' };
    storePlan(store, p);
    ec2Mock.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: 'sg-0000000000000000a', IpPermissionsEgress: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: '0.0.0.0/0' }] }] }] });
    await handler(STEP_EVENT);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSecurityGroupCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(RevokeSecurityGroupEgressCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(AuthorizeSecurityGroupEgressCommand);
  });
});

describe('launch-helper: a chosen subnet must reach Systems Manager (defect 3)', () => {
  const SUBNET = 'subnet-00000000000000aa';
  const USER_VPC = 'vpc-0000000000000user';
  const local = { DestinationCidrBlock: '10.0.0.0/16', GatewayId: 'local', State: 'active' };
  /** The subnet's own route table (explicit association), or only the VPC's main one. */
  function routes(routesOfTable: object[], explicit = true): void {
    ec2Mock.on(DescribeRouteTablesCommand).callsFake((input: { Filters?: Array<{ Name: string; Values: string[] }> }) => {
      const names = (input.Filters ?? []).map((f) => f.Name);
      const table = { RouteTableId: 'rtb-0000000000000user', VpcId: USER_VPC, Routes: [local, ...routesOfTable] };
      if (names.includes('association.subnet-id')) return { RouteTables: explicit ? [{ ...table, Associations: [{ SubnetId: SUBNET }] }] : [] };
      if (names.includes('association.main')) return { RouteTables: [{ ...table, Associations: [{ Main: true }] }] };
      return { RouteTables: [] };
    });
  }
  function endpoints(...list: Array<{ service: string; state?: string; privateDns?: boolean }>): void {
    ec2Mock.on(DescribeVpcEndpointsCommand).resolves({
      VpcEndpoints: list.map((e) => ({
        VpcEndpointId: `vpce-${e.service}`,
        VpcEndpointType: 'Interface',
        VpcId: USER_VPC,
        ServiceName: `com.amazonaws.us-east-1.${e.service}`,
        State: (e.state ?? 'available') as never,
        PrivateDnsEnabled: e.privateDns ?? true,
      })),
    });
  }
  const publicIpOf = () => ec2Mock.commandCalls(RunInstancesCommand)[0].args[0].input.NetworkInterfaces?.[0].AssociatePublicIpAddress;

  beforeEach(() => {
    storePlan(store, planWith(SUBNET));
    endpoints();
  });

  it('a public subnet (maps public IPs, 0.0.0.0/0 to an internet gateway): the helper gets the public IP the subnet gives', async () => {
    subnetAttributes = { MapPublicIpOnLaunch: true };
    routes([{ DestinationCidrBlock: '0.0.0.0/0', GatewayId: 'igw-0000000000000user', State: 'active' }]);
    const out = await handler(STEP_EVENT);
    expect(publicIpOf()).toBe(true);
    expect(out.HelperNetwork).toMatch(/public IPv4 address .*internet gateway igw-0000000000000user/);
  });

  it('a private subnet behind a NAT gateway: no public IP (the subnet maps none), the NAT route is the way', async () => {
    subnetAttributes = { MapPublicIpOnLaunch: false };
    routes([{ DestinationCidrBlock: '0.0.0.0/0', NatGatewayId: 'nat-0000000000000user', State: 'active' }]);
    const out = await handler(STEP_EVENT);
    expect(publicIpOf()).toBe(false);
    expect(out.HelperNetwork).toBe('route 0.0.0.0/0 of rtb-0000000000000user to NAT gateway nat-0000000000000user');
  });

  it('a subnet with no association of its own is judged by the main route table', async () => {
    routes([{ DestinationCidrBlock: '0.0.0.0/0', NatGatewayId: 'nat-0000000000000main', State: 'active' }], false);
    const out = await handler(STEP_EVENT);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeRouteTablesCommand, {
      Filters: [{ Name: 'vpc-id', Values: [USER_VPC] }, { Name: 'association.main', Values: ['true'] }],
    });
    expect(out.HelperNetwork).toContain('nat-0000000000000main');
  });

  it('an isolated subnet with the three Systems Manager endpoints (private DNS) in its VPC goes ahead', async () => {
    routes([]);
    endpoints({ service: 'ssm' }, { service: 'ssmmessages' }, { service: 'ec2messages' });
    const out = await handler(STEP_EVENT);
    expect(publicIpOf()).toBe(false);
    expect(out.HelperNetwork).toBe(`interface endpoints ec2messages, ssm, ssmmessages (private DNS) in ${USER_VPC}`);
  });

  it('without ec2messages: goes ahead, and says older agents need it', async () => {
    routes([]);
    endpoints({ service: 'ssm' }, { service: 'ssmmessages' });
    const out = await handler(STEP_EVENT);
    expect(out.HelperNetwork).toMatch(/warning: no ec2messages endpoint: enough for SSM Agent 3\.3\.40\.0 and later/);
  });

  it('the whole result fits the 512-character output cap (AutomationParameterValue), however long the network text', async () => {
    routes([{ DestinationCidrBlock: '0.0.0.0/0', TransitGatewayId: 'tgw-0000000000000user', State: 'active' }]);
    const out = await handler(STEP_EVENT);
    const max = botocoreModel('ssm').shapes.AutomationParameterValue.max as number;
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(max);
    const long = fitOutput({ ...out, HelperNetwork: `route "x" ${'y'.repeat(900)}` });
    expect(JSON.stringify(long).length).toBeLessThanOrEqual(max);
    expect(JSON.stringify(long).length).toBeGreaterThan(max - 4);
    expect(long.HelperNetwork.startsWith('route "x" yyy')).toBe(true);
  });

  it('a default route to a transit gateway goes ahead with a warning (it cannot be inspected from here)', async () => {
    routes([{ DestinationCidrBlock: '0.0.0.0/0', TransitGatewayId: 'tgw-0000000000000user', State: 'active' }]);
    const out = await handler(STEP_EVENT);
    expect(out.HelperNetwork).toMatch(/transit gateway tgw-0000000000000user \(warning: .*not inspected/);
    expect(ec2Mock).toHaveReceivedCommand(RunInstancesCommand);
  });

  it.each([
    ['only local routes, no endpoints', false, [], []],
    ['maps public IPs but has no route to an internet gateway', true, [], []],
    ['a blackholed NAT route', false, [{ DestinationCidrBlock: '0.0.0.0/0', NatGatewayId: 'nat-0000000000000gone', State: 'blackhole' }], []],
    ['an internet gateway route but no public IP', false, [{ DestinationCidrBlock: '0.0.0.0/0', GatewayId: 'igw-0000000000000user', State: 'active' }], []],
    ['endpoints still pending, or without private DNS', false, [], [{ service: 'ssm', state: 'pending' }, { service: 'ssmmessages', privateDns: false }]],
  ])('refuses a subnet that cannot reach Systems Manager (%s) before it creates anything', async (_case, mapsPublic, routeList, endpointList) => {
    subnetAttributes = { MapPublicIpOnLaunch: mapsPublic as boolean };
    routes(routeList as object[]);
    endpoints(...(endpointList as Array<{ service: string }>));
    await expect(handler(STEP_EVENT)).rejects.toMatchObject({
      name: 'RefusedError',
      message: expect.stringContaining(`Subnet ${SUBNET} cannot reach Systems Manager`),
    });
    await expect(handler(STEP_EVENT)).rejects.toThrow(HELPER_NETWORK_NEEDS);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateSecurityGroupCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(RunInstancesCommand);
    expect(storedPlan(store)?.created).toEqual({});
  });
});

describe('helper-network against the EC2 API model (botocore)', () => {
  const model = botocoreModel('ec2');

  it('every filter it sends is one DescribeRouteTables / DescribeVpcEndpoints documents', () => {
    expect(documentedFilters(model, 'DescribeRouteTables')).toEqual(expect.arrayContaining(['association.subnet-id', 'association.main', 'vpc-id']));
    expect(documentedFilters(model, 'DescribeVpcEndpoints')).toEqual(expect.arrayContaining(['vpc-id']));
  });

  it('classifies every member of a Route: a next hop out of the VPC, or not one', () => {
    const members = Object.keys(model.shapes.Route.members).sort();
    expect(members).toEqual([...Object.keys(ROUTE_EGRESS_TARGETS), ...ROUTE_NON_TARGETS].sort());
    for (const field of Object.keys(ROUTE_EGRESS_TARGETS)) {
      expect({ field, target: egressTarget({ [field]: 'x-1' }) !== undefined }).toEqual({ field, target: true });
    }
  });

  it('reads the route states and the public IP attribute the model defines', () => {
    expect(model.shapes.RouteState.enum).toEqual(expect.arrayContaining(['active', 'blackhole']));
    expect(model.shapes.Subnet.members.MapPublicIpOnLaunch.shape).toBe('Boolean');
    expect(model.shapes.InstanceNetworkInterfaceSpecification.members.AssociatePublicIpAddress.shape).toBe('Boolean');
    expect(model.shapes.State.enum.map((x: string) => x.toLowerCase())).toContain('available');
  });
});

describe('clientTokenFor', () => {
  it('is stable per execution and instance, distinct across them, at most 64 characters', () => {
    const long = 'x'.repeat(64);
    expect(clientTokenFor(EXECUTION_ID, INSTANCE_ID)).toBe(clientTokenFor(EXECUTION_ID, INSTANCE_ID));
    expect(clientTokenFor(EXECUTION_ID, INSTANCE_ID)).not.toBe(clientTokenFor(long, INSTANCE_ID));
    expect(clientTokenFor(long, INSTANCE_ID).length).toBeLessThanOrEqual(64);
  });
});

describe('launch-helper module', () => {
  it('throws at load when an environment variable is missing', () => {
    jest.isolateModules(() => {
      const saved = process.env.HELPER_AMI_PARAMETER_PREFIX;
      delete process.env.HELPER_AMI_PARAMETER_PREFIX;
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        expect(() => require('../../../lambdas/launch-helper/handler')).toThrow(/HELPER_AMI_PARAMETER_PREFIX/);
      } finally {
        process.env.HELPER_AMI_PARAMETER_PREFIX = saved;
      }
    });
  });
});
