/**
 * Step `launchHelper`: the network (a temporary VPC, or the chosen subnet, checked for a way to
 * Systems Manager: ./helper-network.ts), a security group with
 * no inbound rule and egress 443 only, and the helper instance. Every id is recorded in the plan
 * right after its create call, so restore and cleanup find it even if a later call fails; on a
 * retry each resource is looked up by the plan and then by its tags before it is created.
 */
import { createHash } from 'crypto';
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
  DescribeVpcsCommand,
  RevokeSecurityGroupEgressCommand,
  RunInstancesCommand,
  type EC2Client,
  type IpPermission,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { isAwsError, RefusedError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan, type Plan, type PlanCreated } from '@common/plan';
import { ownedFilters, tagSpec, type ResourceRole } from '@common/tags';
import type { StepInput } from '@common/validation';
import { assessSubnet, HELPER_NETWORK_NEEDS, type SubnetReach } from './helper-network';

export const TEMP_VPC_CIDR = '10.255.0.0/24';

export interface LaunchConfig {
  readonly instanceProfileArn: string;
  readonly amiParameterPrefix: string;
  /**
   * The public parameter of the helper's AMI for a Windows target (issue 15): a Linux that reads and
   * writes NTFS with what it ships (Amazon Linux 2023 has no NTFS), with `{arch}` standing for the
   * architecture as its publisher spells it (WINDOWS_HELPER_ARCH).
   */
  readonly windowsAmiParameter: string;
}

/** How the Windows helper's publisher spells each architecture in its parameter names (Canonical: amd64, arm64). */
export const WINDOWS_HELPER_ARCH: Record<'x86_64' | 'arm64', string> = { x86_64: 'amd64', arm64: 'arm64' };

/** The public parameter that names the helper's AMI, by the target's platform and the helper's architecture. */
export function helperAmiParameter(config: LaunchConfig, platform: 'linux' | 'windows', arch: 'x86_64' | 'arm64'): string {
  return platform === 'windows' ? config.windowsAmiParameter.replace('{arch}', WINDOWS_HELPER_ARCH[arch]) : `${config.amiParameterPrefix}${arch}`;
}

export interface LaunchDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: LaunchConfig;
}

export interface LaunchResult {
  readonly helperInstanceId: string;
  readonly subnetId: string;
  readonly vpcId: string;
  readonly networkCreated: boolean;
  /** How the helper reaches Systems Manager (and a warning where that is not verified). */
  readonly helperNetwork: string;
}

/** RunInstances' idempotency token: derived from the execution and instance, at most 64 chars. */
export function clientTokenFor(executionId: string, instanceId: string): string {
  return `reset-access-${createHash('sha256').update(`${executionId}/${instanceId}`).digest('hex').slice(0, 48)}`;
}

class Step {
  constructor(
    readonly deps: LaunchDeps,
    readonly input: StepInput,
    public plan: Plan,
  ) {}

  async record(field: keyof PlanCreated, id: string): Promise<void> {
    this.plan = await updatePlan(this.deps.ssm, this.input.instanceId, this.input.executionId, (p) => {
      p.created[field] = id;
    });
    this.deps.log.info('created', { resource: field, id, instanceId: this.input.instanceId });
  }

  spec(resourceType: Parameters<typeof tagSpec>[0], role: ResourceRole) {
    return tagSpec(resourceType, role, this.input.executionId, this.input.instanceId);
  }

  filters(role: ResourceRole) {
    return ownedFilters(role, this.input.executionId);
  }
}

export async function launchHelper(deps: LaunchDeps, input: StepInput): Promise<LaunchResult> {
  const s = new Step(deps, input, await loadOwnPlan(deps.ssm, input.instanceId, input.executionId));
  const choice = s.plan.inputs.subnetId;
  let subnetId: string;
  let vpcId: string;
  let reach: SubnetReach;
  let networkCreated = choice === 'CreateNewVPC';
  // A security group recorded without a VPC of ours: an earlier attempt of this step met the VPC
  // quota and went to the instance's subnet; a retry stays there (its group is in that VPC).
  const quotaFallback = networkCreated && !s.plan.created.vpcId && s.plan.created.securityGroupId !== undefined;
  let created: { subnetId: string; vpcId: string } | undefined;
  if (networkCreated && !quotaFallback) {
    try {
      created = await createNetwork(s);
    } catch (err) {
      // The Region's VPC quota (5 per Region, the default VPC included:
      // https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html) is full, e.g. a
      // fleet at high concurrency: CreateVpc is the first create call, so nothing was made.
      if (!isAwsError(err, 'VpcLimitExceeded')) throw err;
      deps.log.warn('VPC quota reached: trying the instance subnet', { instanceId: input.instanceId });
    }
  }
  if (created) {
    ({ subnetId, vpcId } = created);
    // The temporary VPC has no NAT and no endpoints: the helper reaches Systems Manager only with a
    // public IPv4 address, through the internet gateway and the 0.0.0.0/0 route createNetwork made.
    reach = { associatePublicIp: true, path: `public IPv4 address through the temporary VPC's internet gateway (${vpcId})` };
  } else if (networkCreated) {
    // No VPC slot: the instance's own subnet, as SubnetId=SelectedInstanceSubnet would, but only
    // when its way to Systems Manager is verified (no warning); else the run stops here and restores.
    networkCreated = false;
    ({ subnetId, vpcId, reach } = await instanceSubnetFallback(deps, s.plan.instance.subnetId));
  } else {
    // SelectedInstanceSubnet or a subnet id: the subnet decides the public IP (MapPublicIpOnLaunch),
    // and a subnet that provably cannot reach Systems Manager is refused before anything is created.
    subnetId = choice === 'SelectedInstanceSubnet' ? s.plan.instance.subnetId : choice;
    const subnet = (await deps.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }))).Subnets?.[0];
    if (!subnet?.VpcId) throw new UnexpectedStateError(`Subnet ${subnetId} was not found`);
    vpcId = subnet.VpcId;
    reach = await assessSubnet(deps.ec2, subnet);
  }
  deps.log.info('helper network', { instanceId: input.instanceId, subnetId, path: reach.path, warning: reach.warning, publicIp: reach.associatePublicIp });
  if (reach.warning) deps.log.warn('helper network not verified', { subnetId, warning: reach.warning, needs: HELPER_NETWORK_NEEDS });
  const securityGroupId = await ensureSecurityGroup(s, vpcId);
  const helperInstanceId = await ensureHelper(s, subnetId, securityGroupId, reach.associatePublicIp);
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    p.progress.phase = 'helper-launched';
  });
  return { helperInstanceId, subnetId, vpcId, networkCreated, helperNetwork: describeReach(reach) };
}

/**
 * SubnetId CreateNewVPC when the Region's VPC quota is full: the instance's subnet if assessSubnet
 * verifies its way to Systems Manager (the same checks as SubnetId=SelectedInstanceSubnet), else a
 * refusal naming both reasons (the run restores; nothing was created).
 */
async function instanceSubnetFallback(deps: LaunchDeps, subnetId: string): Promise<{ subnetId: string; vpcId: string; reach: SubnetReach }> {
  const quota = 'The Region\'s VPC quota is reached (VpcLimitExceeded), so no temporary VPC could be created';
  const subnet = (await deps.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }))).Subnets?.[0];
  if (!subnet?.VpcId) throw new RefusedError(`${quota}, and the instance's subnet ${subnetId} was not found. Run again later, or with SubnetId=<a subnet id>.`);
  let reach: SubnetReach;
  try {
    reach = await assessSubnet(deps.ec2, subnet);
  } catch (err) {
    if (err instanceof RefusedError) throw new RefusedError(`${quota}; the instance's subnet is no way out either: ${err.message}`);
    throw err;
  }
  if (reach.warning) {
    throw new RefusedError(`${quota}, and the way of the instance's subnet ${subnetId} to Systems Manager is not verified (${reach.warning}). Run again later, or with SubnetId=${subnetId} to accept it.`);
  }
  return { subnetId, vpcId: subnet.VpcId, reach: { ...reach, path: `VPC quota reached, instance subnet ${subnetId}: ${reach.path}` } };
}

/** The HelperNetwork output: the path, and the warning if any (the handler fits it in the output cap). */
function describeReach(reach: SubnetReach): string {
  return reach.warning ? `${reach.path} (warning: ${reach.warning})` : reach.path;
}

async function createNetwork(s: Step): Promise<{ subnetId: string; vpcId: string }> {
  const { ec2 } = s.deps;
  const az = s.plan.instance.availabilityZone;

  let vpcId = s.plan.created.vpcId;
  if (!vpcId) {
    const found = await ec2.send(new DescribeVpcsCommand({ Filters: s.filters('vpc') }));
    vpcId = found.Vpcs?.[0]?.VpcId;
    if (!vpcId) {
      const out = await ec2.send(new CreateVpcCommand({ CidrBlock: TEMP_VPC_CIDR, TagSpecifications: [s.spec('vpc', 'vpc')] }));
      vpcId = required(out.Vpc?.VpcId, 'CreateVpc', 'VPC');
    }
    await s.record('vpcId', vpcId);
  }

  let subnetId = s.plan.created.subnetId;
  if (!subnetId) {
    const found = await ec2.send(new DescribeSubnetsCommand({ Filters: s.filters('subnet') }));
    subnetId = found.Subnets?.[0]?.SubnetId;
    if (!subnetId) {
      const out = await ec2.send(
        new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: TEMP_VPC_CIDR, AvailabilityZone: az, TagSpecifications: [s.spec('subnet', 'subnet')] }),
      );
      subnetId = required(out.Subnet?.SubnetId, 'CreateSubnet', 'subnet');
    }
    await s.record('subnetId', subnetId);
  }

  let igwId = s.plan.created.internetGatewayId;
  if (!igwId) {
    const found = await ec2.send(new DescribeInternetGatewaysCommand({ Filters: s.filters('internet-gateway') }));
    igwId = found.InternetGateways?.[0]?.InternetGatewayId;
    if (!igwId) {
      const out = await ec2.send(new CreateInternetGatewayCommand({ TagSpecifications: [s.spec('internet-gateway', 'internet-gateway')] }));
      igwId = required(out.InternetGateway?.InternetGatewayId, 'CreateInternetGateway', 'internet gateway');
    }
    await s.record('internetGatewayId', igwId);
  }
  const igw = await ec2.send(new DescribeInternetGatewaysCommand({ InternetGatewayIds: [igwId] }));
  const attached = igw.InternetGateways?.[0]?.Attachments?.some((a) => a.VpcId === vpcId);
  if (!attached) await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igwId, VpcId: vpcId }));

  let rtbId = s.plan.created.routeTableId;
  if (!rtbId) {
    const found = await ec2.send(new DescribeRouteTablesCommand({ Filters: s.filters('route-table') }));
    rtbId = found.RouteTables?.[0]?.RouteTableId;
    if (!rtbId) {
      const out = await ec2.send(new CreateRouteTableCommand({ VpcId: vpcId, TagSpecifications: [s.spec('route-table', 'route-table')] }));
      rtbId = required(out.RouteTable?.RouteTableId, 'CreateRouteTable', 'route table');
    }
    await s.record('routeTableId', rtbId);
  }
  const rtb = (await ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [rtbId] }))).RouteTables?.[0];
  if (!rtb?.Routes?.some((r) => r.DestinationCidrBlock === '0.0.0.0/0')) {
    await ec2.send(new CreateRouteCommand({ RouteTableId: rtbId, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igwId }));
  }
  if (!rtb?.Associations?.some((a) => a.SubnetId === subnetId)) {
    await ec2.send(new AssociateRouteTableCommand({ RouteTableId: rtbId, SubnetId: subnetId }));
  }
  return { subnetId, vpcId };
}

function isHttpsOnly(p: IpPermission): boolean {
  return p.IpProtocol === 'tcp' && p.FromPort === 443 && p.ToPort === 443;
}

async function ensureSecurityGroup(s: Step, vpcId: string): Promise<string> {
  const { ec2 } = s.deps;
  let sgId = s.plan.created.securityGroupId;
  if (!sgId) {
    const found = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [...s.filters('security-group'), { Name: 'vpc-id', Values: [vpcId] }] }));
    sgId = found.SecurityGroups?.[0]?.GroupId;
    if (!sgId) {
      const out = await ec2.send(
        new CreateSecurityGroupCommand({
          // Group names are unique per VPC: the execution id keeps fleet runs apart.
          GroupName: `reset-access-helper-${s.input.executionId}`,
          Description: `ec2-reset-access helper for ${s.input.instanceId}: no inbound, HTTPS out only`,
          VpcId: vpcId,
          TagSpecifications: [s.spec('security-group', 'security-group')],
        }),
      );
      sgId = required(out.GroupId, 'CreateSecurityGroup', 'security group');
    }
    await s.record('securityGroupId', sgId);
  }
  const group = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [sgId] }))).SecurityGroups?.[0];
  const egress = group?.IpPermissionsEgress ?? [];
  const others = egress.filter((p) => !isHttpsOnly(p));
  if (others.length > 0) {
    // The default allow-all egress (and an IPv6 one in a dual-stack VPC) goes.
    await ec2.send(new RevokeSecurityGroupEgressCommand({ GroupId: sgId, IpPermissions: others }));
  }
  if (!egress.some((p) => isHttpsOnly(p) && p.IpRanges?.some((r) => r.CidrIp === '0.0.0.0/0'))) {
    await ec2.send(
      new AuthorizeSecurityGroupEgressCommand({
        GroupId: sgId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: '0.0.0.0/0', Description: 'Systems Manager over HTTPS' }] }],
      }),
    );
  }
  return sgId;
}

async function helperImage(s: Step): Promise<{ imageId: string; rootDeviceName: string }> {
  const { ec2, ssm, config } = s.deps;
  const type = s.plan.inputs.helperInstanceType;
  const info = (await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: [type as _InstanceType] }))).InstanceTypes?.[0];
  const archs = info?.ProcessorInfo?.SupportedArchitectures ?? [];
  const arch = archs.includes('arm64') && !archs.includes('x86_64') ? 'arm64' : 'x86_64';
  const name = helperAmiParameter(config, s.plan.instance.platform === 'windows' ? 'windows' : 'linux', arch);
  const imageId = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  if (!imageId) throw new UnexpectedStateError(`The public parameter ${name} has no AMI id`);
  const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
  if (!image?.RootDeviceName) throw new UnexpectedStateError(`The helper image ${imageId} (from ${name}) was not found`);
  return { imageId, rootDeviceName: image.RootDeviceName };
}

/**
 * `publicIp` is given explicitly, never left out: true for the temporary VPC, else the subnet's own
 * MapPublicIpOnLaunch, so the request means the same whatever the default (RunInstances documents
 * `true` as the default only for a default subnet).
 */
async function ensureHelper(s: Step, subnetId: string, securityGroupId: string, publicIp: boolean): Promise<string> {
  const { ec2, config } = s.deps;
  if (s.plan.created.helperInstanceId) return s.plan.created.helperInstanceId;
  const found = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [...s.filters('helper'), { Name: 'instance-state-name', Values: ['pending', 'running'] }],
    }),
  );
  let helperId = found.Reservations?.flatMap((r) => r.Instances ?? [])[0]?.InstanceId;
  if (!helperId) {
    const { imageId, rootDeviceName } = await helperImage(s);
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        InstanceType: s.plan.inputs.helperInstanceType as _InstanceType,
        MinCount: 1,
        MaxCount: 1,
        ClientToken: clientTokenFor(s.input.executionId, s.input.instanceId),
        MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
        BlockDeviceMappings: [{ DeviceName: rootDeviceName, Ebs: { Encrypted: true, DeleteOnTermination: true, VolumeType: 'gp3' } }],
        InstanceInitiatedShutdownBehavior: 'terminate',
        IamInstanceProfile: { Arn: config.instanceProfileArn },
        NetworkInterfaces: [
          { DeviceIndex: 0, SubnetId: subnetId, Groups: [securityGroupId], AssociatePublicIpAddress: publicIp, DeleteOnTermination: true },
        ],
        TagSpecifications: [s.spec('instance', 'helper'), s.spec('volume', 'helper'), s.spec('network-interface', 'helper')],
      }),
    );
    helperId = required(out.Instances?.[0]?.InstanceId, 'RunInstances', 'instance');
  }
  await s.record('helperInstanceId', helperId);
  return helperId;
}

function required(id: string | undefined, call: string, what: string): string {
  if (!id) throw new UnexpectedStateError(`${call} returned no ${what} id`);
  return id;
}
