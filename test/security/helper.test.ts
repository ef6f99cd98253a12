/**
 * The helper launch: IMDSv2 required, no inbound rule, no key pair, encrypted root, terminate on
 * shutdown, HTTPS-only egress, and no public IP unless CreateNewVPC (a new VPC has no endpoints:
 * the helper reaches Systems Manager through the internet gateway). Asserted on what the
 * launch-helper handler sends (mocked clients), and on the helper's role in the template.
 */
import './support/env';
import {
  CreateInternetGatewayCommand,
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
  DescribeVpcsCommand,
  RunInstancesCommand,
  type IpPermission,
} from '@aws-sdk/client-ec2';
import { join } from 'path';
import { HELPER_AMI_PARAMETER_PREFIX, HELPER_INSTANCE_PROFILE_ARN } from './support/env';
import { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_SUBNET, GOOD_VPC, HELPER_INSTANCE, makePlan } from './support/fixtures';
import { ec2, resetAll, sentCommands, ssm } from './support/mocks';
import { ParamStore } from './support/param-store';
import { REPO } from './support/patterns';
import { iamStatements, render, resourcesOfType, rolesAssumedBy, synthTemplate, type Template } from './support/template';

type Handler = (event: unknown) => Promise<Record<string, unknown>>;
const LOCK = `/reset-access/locks/${GOOD_INSTANCE}`;
const SG = 'sg-0eeeeeeeeeeeeeee5';
const NEW_VPC = 'vpc-0fffffffffffffff6';
const NEW_SUBNET = 'subnet-0fffffffffffffff7';
const DEFAULT_EGRESS: IpPermission[] = [
  { IpProtocol: '-1', IpRanges: [{ CidrIp: '0.0.0.0/0' }] },
  { IpProtocol: '-1', Ipv6Ranges: [{ CidrIpv6: '::/0' }] },
];

function loadHandler(): Handler {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(join(REPO, 'lambdas', 'launch-helper', 'handler')) as { handler: Handler }).handler;
}

/** An EC2 that starts empty: lookups by tag find nothing, creates return ids, the new group has the default egress. */
function mockEmptyAccount(): void {
  ec2.onAnyCommand().resolves({});
  ec2.on(DescribeVpcsCommand).resolves({ Vpcs: [] });
  ec2.on(DescribeSubnetsCommand).callsFake((input: { SubnetIds?: string[] }) => ({
    Subnets: (input.SubnetIds ?? []).map((id) => ({ SubnetId: id, VpcId: GOOD_VPC, AvailabilityZone: 'us-east-1a', MapPublicIpOnLaunch: true })),
  }));
  ec2.on(DescribeInternetGatewaysCommand).callsFake((input: { InternetGatewayIds?: string[] }) => ({
    InternetGateways: (input.InternetGatewayIds ?? []).map((id) => ({ InternetGatewayId: id, Attachments: [] })),
  }));
  ec2.on(DescribeRouteTablesCommand).callsFake((input: { RouteTableIds?: string[] }) => ({
    RouteTables: (input.RouteTableIds ?? []).map((id) => ({ RouteTableId: id, Routes: [], Associations: [] })),
  }));
  ec2.on(DescribeSecurityGroupsCommand).callsFake((input: { GroupIds?: string[] }) => ({
    SecurityGroups: (input.GroupIds ?? []).map((id) => ({ GroupId: id, IpPermissions: [], IpPermissionsEgress: DEFAULT_EGRESS })),
  }));
  ec2.on(CreateVpcCommand).resolves({ Vpc: { VpcId: NEW_VPC } });
  ec2.on(CreateSubnetCommand).resolves({ Subnet: { SubnetId: NEW_SUBNET } });
  ec2.on(CreateInternetGatewayCommand).resolves({ InternetGateway: { InternetGatewayId: 'igw-0aaaaaaaaaaaaaaa8' } });
  ec2.on(CreateRouteTableCommand).resolves({ RouteTable: { RouteTableId: 'rtb-0aaaaaaaaaaaaaaa9' } });
  ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: SG });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2.on(DescribeInstanceTypesCommand).resolves({ InstanceTypes: [{ InstanceType: 't3.small', ProcessorInfo: { SupportedArchitectures: ['x86_64'] } }] });
  ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', RootDeviceName: '/dev/xvda' }] });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: HELPER_INSTANCE }] });
}

const sent = (name: string): Array<Record<string, unknown>> => sentCommands().filter((c) => c.name === name).map((c) => c.input);

function hasOurTags(spec: unknown, role?: string): boolean {
  const tags = ((spec as { Tags?: Array<{ Key: string; Value: string }> }).Tags ?? []) as Array<{ Key: string; Value: string }>;
  const get = (k: string): string | undefined => tags.find((t) => t.Key === k)?.Value;
  return get('reset-access:managed-by') === 'ec2-reset-access' && get('reset-access:execution-id') === GOOD_EXECUTION && (role === undefined || get('reset-access:role') === role);
}

/** The group's egress after the run: the default rules, minus what was revoked, plus what was authorized. */
function effectiveEgress(): string[] {
  const key = (p: IpPermission): string[] => [
    ...(p.IpRanges ?? []).map((r) => `${p.IpProtocol}:${p.FromPort ?? '*'}-${p.ToPort ?? '*'}:${r.CidrIp}`),
    ...(p.Ipv6Ranges ?? []).map((r) => `${p.IpProtocol}:${p.FromPort ?? '*'}-${p.ToPort ?? '*'}:${r.CidrIpv6}`),
    ...(p.UserIdGroupPairs ?? []).map((g) => `${p.IpProtocol}:${p.FromPort ?? '*'}-${p.ToPort ?? '*'}:${g.GroupId}`),
    ...(p.PrefixListIds ?? []).map((g) => `${p.IpProtocol}:${p.FromPort ?? '*'}-${p.ToPort ?? '*'}:${g.PrefixListId}`),
  ];
  const rules = new Set(DEFAULT_EGRESS.flatMap(key));
  for (const r of sent('RevokeSecurityGroupEgress')) for (const p of (r.IpPermissions as IpPermission[]) ?? []) for (const k of key(p)) rules.delete(k);
  for (const a of sent('AuthorizeSecurityGroupEgress')) for (const p of (a.IpPermissions as IpPermission[]) ?? []) for (const k of key(p)) rules.add(k);
  return [...rules].sort();
}

let store: ParamStore;
beforeEach(() => {
  resetAll();
  mockEmptyAccount();
  ssm.onAnyCommand().resolves({});
  store = new ParamStore().install();
  store.params.set(`${HELPER_AMI_PARAMETER_PREFIX}x86_64`, { name: `${HELPER_AMI_PARAMETER_PREFIX}x86_64`, type: 'String', value: 'ami-0123456789abcdef0', version: 1 });
});

// The mocked subnets map public IPs on launch (MapPublicIpOnLaunch: true): a chosen subnet's own
// setting decides (issue 10, defect 3), the temporary VPC always gives one.
describe.each([
  ['CreateNewVPC', true],
  ['SelectedInstanceSubnet', true],
  [GOOD_SUBNET, true],
])('launch-helper with SubnetId=%s', (subnetChoice, publicIpExpected) => {
  let result: Record<string, unknown>;
  let run: Record<string, unknown>;
  beforeEach(async () => {
    store.putJson(LOCK, makePlan({ subnetId: subnetChoice, phase: 'stop-requested' }));
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    result = await loadHandler()({ ExecutionId: GOOD_EXECUTION, InstanceId: GOOD_INSTANCE });
    jest.restoreAllMocks();
    const runs = sent('RunInstances');
    expect(runs).toHaveLength(1);
    run = runs[0];
  });

  test('IMDSv2 required (tokens, hop limit 1)', () => {
    expect(run.MetadataOptions).toMatchObject({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
  });

  test('no key pair, no user data', () => {
    expect(run.KeyName).toBeUndefined();
    expect(run.UserData).toBeUndefined();
  });

  test('encrypted root (every block device mapping encrypted, the image root among them)', () => {
    const mappings = (run.BlockDeviceMappings ?? []) as Array<{ DeviceName: string; Ebs?: { Encrypted?: boolean } }>;
    expect(mappings.map((m) => m.DeviceName)).toContain('/dev/xvda');
    for (const m of mappings) expect({ device: m.DeviceName, encrypted: m.Ebs?.Encrypted }).toEqual({ device: m.DeviceName, encrypted: true });
  });

  test('terminates on shutdown; the helper instance profile (SSM agent only)', () => {
    expect(run.InstanceInitiatedShutdownBehavior).toBe('terminate');
    expect(run.IamInstanceProfile).toEqual({ Arn: HELPER_INSTANCE_PROFILE_ARN });
  });

  test('public IP given explicitly: always in the new VPC (it has no endpoints), else as the chosen subnet maps it', () => {
    const nics = (run.NetworkInterfaces ?? []) as Array<{ DeviceIndex: number; AssociatePublicIpAddress?: boolean; Groups?: string[]; SubnetId?: string }>;
    expect(nics).toHaveLength(1);
    expect(nics[0].AssociatePublicIpAddress).toBe(publicIpExpected);
    expect(result.NetworkCreated).toBe(subnetChoice === 'CreateNewVPC');
  });

  test('only our own new security group: no default group, no inbound rule, HTTPS-only egress', () => {
    const nics = (run.NetworkInterfaces ?? []) as Array<{ Groups?: string[] }>;
    expect(nics[0].Groups).toEqual([SG]);
    expect(run.SecurityGroupIds).toBeUndefined();
    expect(run.SecurityGroups).toBeUndefined();
    const created = sent('CreateSecurityGroup');
    expect(created).toHaveLength(1);
    expect(hasOurTags((created[0].TagSpecifications as unknown[])[0])).toBe(true);
    expect(sent('AuthorizeSecurityGroupIngress')).toEqual([]);
    expect(effectiveEgress()).toEqual(['tcp:443-443:0.0.0.0/0']);
  });

  test('everything created is tagged in its create call, never afterwards', () => {
    expect(sent('CreateTags')).toEqual([]);
    const specs = (run.TagSpecifications ?? []) as Array<{ ResourceType: string }>;
    expect(hasOurTags(specs.find((s) => s.ResourceType === 'instance'), 'helper')).toBe(true);
    expect(hasOurTags(specs.find((s) => s.ResourceType === 'volume'))).toBe(true);
    for (const name of ['CreateVpc', 'CreateSubnet', 'CreateInternetGateway', 'CreateRouteTable', 'CreateSecurityGroup']) {
      for (const input of sent(name)) expect({ name, tagged: hasOurTags((input.TagSpecifications as unknown[])[0]) }).toEqual({ name, tagged: true });
    }
    expect(typeof run.ClientToken).toBe('string');
  });
});

describe('the helper role in the template', () => {
  let t: Template;
  beforeAll(() => {
    t = synthTemplate();
  }, 300_000);

  test('AmazonSSMManagedInstanceCore and nothing else: no inline policy, no attached policy', () => {
    const helper = rolesAssumedBy(t, 'ec2.amazonaws.com');
    expect(helper).toHaveLength(1);
    const p = t.Resources[helper[0]].Properties ?? {};
    expect(((p.ManagedPolicyArns as unknown[]) ?? []).map(render)).toEqual(['arn:${Ref.AWS.Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore']);
    expect(p.Policies).toBeUndefined();
    expect(iamStatements(t).filter((s) => s.roles.includes(helper[0]))).toEqual([]);
    expect(p.PermissionsBoundary).toBeUndefined();
  });

  test('the instance profile holds only the helper role, and launch-helper passes that profile', () => {
    const helper = rolesAssumedBy(t, 'ec2.amazonaws.com')[0];
    const profiles = resourcesOfType(t, 'AWS::IAM::InstanceProfile');
    expect(profiles).toHaveLength(1);
    expect(t.Resources[profiles[0]].Properties?.Roles).toEqual([{ Ref: helper }]);
    const launch = resourcesOfType(t, 'AWS::Lambda::Function').find((id) => id.includes('LaunchHelper')) as string;
    const env = (t.Resources[launch].Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.HELPER_INSTANCE_PROFILE_ARN).toEqual({ 'Fn::GetAtt': [profiles[0], 'Arn'] });
  });

  test('the helper image comes from a public parameter (Amazon Linux 2023; Canonical\'s Ubuntu 24.04 for a Windows target), and IAM allows only Amazon\'s and Canonical\'s images', () => {
    const launch = resourcesOfType(t, 'AWS::Lambda::Function').find((id) => id.includes('LaunchHelper')) as string;
    const env = (t.Resources[launch].Properties?.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.HELPER_AMI_PARAMETER_PREFIX).toBe('/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-');
    expect(env.WINDOWS_HELPER_AMI_PARAMETER).toMatch(/^\/aws\/service\/canonical\/ubuntu\/server\/24\.04\/stable\/current\//);
    const images = iamStatements(t).filter((s) => s.actions.includes('ec2:RunInstances') && s.resources.some((r) => /:image\/\*$/.test(r)));
    expect(images.length).toBeGreaterThan(0);
    // 'amazon' is the owner alias of Amazon's public images; 099720109477 is Canonical's account (lib/constants.ts).
    for (const s of images) expect([(s.condition?.StringEquals ?? {})['ec2:Owner']].flat().sort()).toEqual(['099720109477', 'amazon']);
  });

  test('IAM itself enforces the helper launch: IMDSv2, the helper profile and the helper tags are conditions of RunInstances', () => {
    const launchRole = JSON.stringify(
      resourcesOfType(t, 'AWS::Lambda::Function')
        .filter((id) => id.includes('LaunchHelper'))
        .map((id) => t.Resources[id].Properties?.Role),
    );
    const runs = iamStatements(t).filter((s) => s.actions.includes('ec2:RunInstances') && launchRole.includes(s.roles[0]));
    const onInstance = runs.filter((s) => s.resources.some((r) => /:instance\/\*$/.test(r)));
    expect(onInstance.length).toBeGreaterThan(0);
    for (const s of onInstance) {
      const c = JSON.stringify(s.condition ?? {});
      expect(c).toContain('"ec2:MetadataHttpTokens":"required"');
      expect(c).toContain('ec2:InstanceProfile');
      expect(c).toContain('aws:RequestTag/reset-access:role');
    }
  });
});
