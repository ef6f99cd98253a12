/**
 * What the self-test creates in the user's account, each piece carrying the tag
 * `ec2-reset-access:selftest=<run id>`, and how it removes them: every delete or terminate first
 * reads the resource's tags back from AWS and acts only when they carry this run's id. Resources
 * the runbook makes for the self-test's instance (its backup snapshot or image) carry the runbook's
 * own tags instead (lambdas/common/tags.ts): they are removed only when their
 * `reset-access:instance-id` names an instance that carries this run's tag.
 */
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteInternetGatewayCommand,
  DeleteRouteTableCommand,
  DeleteSecurityGroupCommand,
  DeleteSnapshotCommand,
  DeleteSubnetCommand,
  DeleteVpcCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  ModifySubnetAttributeCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Filter,
  type ResourceType,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListInstanceProfileTagsCommand,
  RemoveRoleFromInstanceProfileCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { DeleteParameterCommand, GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import * as fs from 'fs';
import { awsErrorName } from '../aws';
import { UsageError } from '../exit-codes';
import { keyParameterName, lockParameterName } from '../../lambdas/common/names';
import { EXECUTION_ID_KEY, INSTANCE_ID_KEY, MANAGED_BY_KEY, MANAGED_BY_VALUE, ROLE_KEY } from '../../lambdas/common/tags';

/** The tag on everything the self-test creates; its value is the run id. */
export const SELFTEST_TAG_KEY = 'ec2-reset-access:selftest';
/** A run id: 12 lowercase hex digits. */
export const RUN_ID = /^[0-9a-f]{12}$/;

export type Kind =
  | 'instance'
  | 'security-group'
  | 'subnet'
  | 'route-table'
  | 'internet-gateway'
  | 'vpc'
  | 'instance-profile'
  | 'role'
  | 'backup-snapshot'
  | 'backup-image'
  | 'key-parameter'
  | 'key-file'
  | 'lock-record';

export interface Made {
  readonly kind: Kind;
  readonly id: string;
}

export interface NotRemoved extends Made {
  readonly why: string;
}

export interface CleanupResult {
  readonly removed: Made[];
  readonly notRemoved: NotRemoved[];
  /** Found with another run's tag or none, so left alone (only when asked to act on an id). */
  readonly refused: NotRemoved[];
}

/** The name of the self-test's IAM role and instance profile for a run. */
export function iamName(runId: string): string {
  return `ec2-reset-access-selftest-${runId}`;
}

export function selftestTags(runId: string): { Key: string; Value: string }[] {
  return [
    { Key: SELFTEST_TAG_KEY, Value: runId },
    { Key: 'Name', Value: `ec2-reset-access-selftest-${runId}` },
  ];
}

function spec(type: ResourceType, runId: string) {
  return [{ ResourceType: type, Tags: selftestTags(runId) }];
}

const tagOf = (tags: { Key?: string; Value?: string }[] | undefined, key: string): string | undefined => tags?.find((t) => t.Key === key)?.Value;
export const carriesRun = (tags: { Key?: string; Value?: string }[] | undefined, runId: string): boolean => tagOf(tags, SELFTEST_TAG_KEY) === runId;
const runFilter = (runId: string): Filter[] => [{ Name: `tag:${SELFTEST_TAG_KEY}`, Values: [runId] }];

/** The ledger of one run: what it made, in order. */
export class Ledger {
  readonly made: Made[] = [];
  add(kind: Kind, id: string): void {
    if (!this.made.some((m) => m.kind === kind && m.id === id)) this.made.push({ kind, id });
  }
  ids(kind: Kind): string[] {
    return this.made.filter((m) => m.kind === kind).map((m) => m.id);
  }
}

export interface Network {
  readonly vpcId: string;
  readonly subnetId: string;
  readonly temporary: boolean;
}

/**
 * A temporary VPC with one public subnet: VPC, subnet (public IPv4 addresses on launch), internet
 * gateway attached, a route table with 0.0.0.0/0 to it, associated with the subnet (what a subnet
 * needs to be public: https://docs.aws.amazon.com/vpc/latest/userguide/VPC_Internet_Gateway.html).
 */
export async function createNetwork(ec2: EC2Client, runId: string, availabilityZone: string, ledger: Ledger): Promise<Network> {
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.254.0.0/16', TagSpecifications: spec('vpc', runId) }));
  const vpcId = vpc.Vpc?.VpcId as string;
  ledger.add('vpc', vpcId);
  const igw = await ec2.send(new CreateInternetGatewayCommand({ TagSpecifications: spec('internet-gateway', runId) }));
  const igwId = igw.InternetGateway?.InternetGatewayId as string;
  ledger.add('internet-gateway', igwId);
  await ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igwId, VpcId: vpcId }));
  const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: '10.254.0.0/24', AvailabilityZone: availabilityZone, TagSpecifications: spec('subnet', runId) }));
  const subnetId = subnet.Subnet?.SubnetId as string;
  ledger.add('subnet', subnetId);
  await ec2.send(new ModifySubnetAttributeCommand({ SubnetId: subnetId, MapPublicIpOnLaunch: { Value: true } }));
  const rtb = await ec2.send(new CreateRouteTableCommand({ VpcId: vpcId, TagSpecifications: spec('route-table', runId) }));
  const rtbId = rtb.RouteTable?.RouteTableId as string;
  ledger.add('route-table', rtbId);
  await ec2.send(new CreateRouteCommand({ RouteTableId: rtbId, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igwId }));
  await ec2.send(new AssociateRouteTableCommand({ RouteTableId: rtbId, SubnetId: subnetId }));
  return { vpcId, subnetId, temporary: true };
}

/** The user's subnet: its VPC and Availability Zone, and whether instances launched in it get a public IPv4 address. */
export async function userSubnet(ec2: EC2Client, subnetId: string): Promise<Network & { publicOnLaunch: boolean; availabilityZone: string }> {
  let s;
  try {
    s = (await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }))).Subnets?.[0];
  } catch (err) {
    if (!notFound(err)) throw err;
  }
  if (!s?.VpcId) throw new UsageError(`subnet ${subnetId} not found in this Region and account (nothing was created)`);
  return { vpcId: s.VpcId, subnetId, temporary: false, publicOnLaunch: !!s.MapPublicIpOnLaunch, availabilityZone: s.AvailabilityZone ?? '' };
}

/**
 * The Availability Zones that offer `instanceType`: instance types are offered per zone
 * (DescribeInstanceTypeOfferings, LocationType availability-zone:
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html).
 */
export async function zonesOffering(ec2: EC2Client, instanceType: string): Promise<string[]> {
  const zones: string[] = [];
  let token: string | undefined;
  do {
    const out = await ec2.send(
      new DescribeInstanceTypeOfferingsCommand({ LocationType: 'availability-zone', Filters: [{ Name: 'instance-type', Values: [instanceType] }], NextToken: token }),
    );
    for (const o of out.InstanceTypeOfferings ?? []) if (o.Location) zones.push(o.Location);
    token = out.NextToken;
  } while (token);
  return zones.sort();
}

/**
 * The instance's security group: no inbound rule but tcp/22 from `callerCidr` (when the ssh check
 * is used); a new group keeps its default outbound rule (all traffic), which the SSM Agent needs
 * to reach Systems Manager (https://docs.aws.amazon.com/vpc/latest/userguide/default-security-group.html,
 * "Security group rules": a new security group has an outbound rule that allows all traffic).
 */
export async function createSecurityGroup(ec2: EC2Client, runId: string, vpcId: string, callerCidr: string | undefined, ledger: Ledger): Promise<string> {
  const sg = await ec2.send(
    new CreateSecurityGroupCommand({
      GroupName: iamName(runId),
      Description: `ec2-reset-access self-test ${runId}`,
      VpcId: vpcId,
      TagSpecifications: spec('security-group', runId),
    }),
  );
  const groupId = sg.GroupId as string;
  ledger.add('security-group', groupId);
  if (callerCidr) {
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: callerCidr, Description: 'ec2-reset-access self-test: ssh from the caller only' }] }],
      }),
    );
  }
  return groupId;
}

/** The partition of a Region, for the AWS managed policy's ARN. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/**
 * A role EC2 can assume with the AWS managed policy AmazonSSMManagedInstanceCore (what an
 * instance needs to be a managed node: https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html),
 * and an instance profile holding it.
 */
export async function createInstanceProfile(iam: IAMClient, runId: string, region: string, ledger: Ledger): Promise<string> {
  const name = iamName(runId);
  const tags = selftestTags(runId);
  await iam.send(
    new CreateRoleCommand({
      RoleName: name,
      Description: `ec2-reset-access self-test ${runId}`,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      }),
      Tags: tags,
    }),
  );
  ledger.add('role', name);
  await iam.send(new AttachRolePolicyCommand({ RoleName: name, PolicyArn: managedPolicyArn(region) }));
  await iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name, Tags: tags }));
  ledger.add('instance-profile', name);
  await iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name }));
  return name;
}

export function managedPolicyArn(region: string): string {
  return `arn:${partitionOf(region)}:iam::aws:policy/AmazonSSMManagedInstanceCore`;
}

export interface CleanupClients {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly iam: IAMClient;
}

export interface CleanupOptions {
  readonly home: string;
  readonly pollMs: number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** How long to wait for the instances to be terminated before deleting the network. @default 10 min */
  readonly terminateTimeoutMs?: number;
  readonly keyFile: (instanceId: string) => string;
}

/** Every resource this run's tag is on, found in AWS (for --cleanup, and to catch what the ledger missed). */
export async function discover(c: CleanupClients, runId: string): Promise<Made[]> {
  const found: Made[] = [];
  const inst = await c.ec2.send(
    new DescribeInstancesCommand({ Filters: [...runFilter(runId), { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'] }] }),
  );
  for (const r of inst.Reservations ?? []) for (const i of r.Instances ?? []) if (i.InstanceId) found.push({ kind: 'instance', id: i.InstanceId });
  for (const g of (await c.ec2.send(new DescribeSecurityGroupsCommand({ Filters: runFilter(runId) }))).SecurityGroups ?? []) if (g.GroupId) found.push({ kind: 'security-group', id: g.GroupId });
  for (const s of (await c.ec2.send(new DescribeSubnetsCommand({ Filters: runFilter(runId) }))).Subnets ?? []) if (s.SubnetId) found.push({ kind: 'subnet', id: s.SubnetId });
  for (const t of (await c.ec2.send(new DescribeRouteTablesCommand({ Filters: runFilter(runId) }))).RouteTables ?? []) if (t.RouteTableId) found.push({ kind: 'route-table', id: t.RouteTableId });
  for (const g of (await c.ec2.send(new DescribeInternetGatewaysCommand({ Filters: runFilter(runId) }))).InternetGateways ?? [])
    if (g.InternetGatewayId) found.push({ kind: 'internet-gateway', id: g.InternetGatewayId });
  for (const v of (await c.ec2.send(new DescribeVpcsCommand({ Filters: runFilter(runId) }))).Vpcs ?? []) if (v.VpcId) found.push({ kind: 'vpc', id: v.VpcId });
  const name = iamName(runId);
  try {
    const p = await c.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }));
    if (p.InstanceProfile) found.push({ kind: 'instance-profile', id: name });
  } catch (err) {
    if (awsErrorName(err) !== 'NoSuchEntity' && awsErrorName(err) !== 'NoSuchEntityException') throw err;
  }
  try {
    const r = await c.iam.send(new GetRoleCommand({ RoleName: name }));
    if (r.Role) found.push({ kind: 'role', id: name });
  } catch (err) {
    if (awsErrorName(err) !== 'NoSuchEntity' && awsErrorName(err) !== 'NoSuchEntityException') throw err;
  }
  return found;
}

const notFound = (err: unknown): boolean => /NotFound|NoSuchEntity|InvalidGroup\.NotFound|ParameterNotFound/.test(awsErrorName(err) ?? '');

/**
 * Removes what the run made: the ledger's entries and whatever else carries the run's tag, in an
 * order AWS accepts (instances terminated before their security group and subnet are deleted:
 * "you must terminate all running instances in the subnet before you can delete the subnet",
 * https://docs.aws.amazon.com/vpc/latest/userguide/create-subnets.html#subnet-deleting; a gateway
 * detached before it is deleted; the VPC last), each one's tags read back first.
 */
export async function cleanup(c: CleanupClients, runId: string, ledger: Ledger, o: CleanupOptions): Promise<CleanupResult> {
  const removed: Made[] = [];
  const notRemoved: NotRemoved[] = [];
  const refused: NotRemoved[] = [];
  let found: Made[] = [];
  try {
    found = await discover(c, runId);
  } catch (err) {
    notRemoved.push({ kind: 'vpc', id: '(discovery)', why: `could not list what carries the tag ${SELFTEST_TAG_KEY}=${runId}: ${describe(err)}; only the resources this run recorded were tried` });
  }
  const all = new Ledger();
  for (const m of [...ledger.made, ...found]) all.add(m.kind, m.id);
  const attempt = async (m: Made, act: () => Promise<'removed' | 'gone' | { refused: string }>): Promise<boolean> => {
    try {
      const r = await act();
      if (r === 'removed') removed.push(m);
      if (r === 'removed' || r === 'gone') return true;
      refused.push({ ...m, why: r.refused });
      return false;
    } catch (err) {
      notRemoved.push({ ...m, why: describe(err) });
      return false;
    }
  };

  // 1. Instances: terminate (after reading back the run's tag), then wait for terminated.
  const instances = all.ids('instance');
  const terminating: string[] = [];
  for (const id of instances) {
    await attempt({ kind: 'instance', id }, async () => {
      const i = (await c.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
      if (!i) return 'gone';
      if (!carriesRun(i.Tags, runId)) return { refused: `it does not carry ${SELFTEST_TAG_KEY}=${runId}` };
      if (i.State?.Name === 'terminated') return 'gone';
      await c.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      terminating.push(id);
      return 'removed';
    });
  }
  const until = o.now() + (o.terminateTimeoutMs ?? 10 * 60 * 1000);
  let left = [...terminating];
  while (left.length > 0) {
    try {
      const out = await c.ec2.send(new DescribeInstancesCommand({ InstanceIds: left }));
      left = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).filter((i) => i.State?.Name !== 'terminated').map((i) => i.InstanceId as string);
    } catch (err) {
      if (!notFound(err)) break;
      left = [];
    }
    if (left.length === 0 || o.now() > until) break;
    await o.sleep(o.pollMs);
  }
  const stillRunning = new Set(left);
  for (const id of left) {
    const i = removed.findIndex((m) => m.kind === 'instance' && m.id === id);
    if (i >= 0) removed.splice(i, 1);
    notRemoved.push({ kind: 'instance', id, why: 'terminated, but not yet terminated when the wait ended; check it with aws ec2 describe-instances' });
  }

  // 2. The runbook's backups of these instances, and their key parameters and key files.
  for (const id of instances) {
    const ours = await instanceCarriesRun(c.ec2, id, runId).catch(() => false);
    if (!ours) continue;
    const backupFilter: Filter[] = [
      { Name: `tag:${MANAGED_BY_KEY}`, Values: [MANAGED_BY_VALUE] },
      { Name: `tag:${ROLE_KEY}`, Values: ['backup'] },
      { Name: `tag:${INSTANCE_ID_KEY}`, Values: [id] },
    ];
    try {
      const images = await c.ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: backupFilter }));
      for (const img of images.Images ?? []) {
        if (!img.ImageId || tagOf(img.Tags, INSTANCE_ID_KEY) !== id) continue;
        if (await attempt({ kind: 'backup-image', id: img.ImageId }, async () => (await c.ec2.send(new DeregisterImageCommand({ ImageId: img.ImageId })), 'removed'))) {
          for (const b of img.BlockDeviceMappings ?? []) all.add('backup-snapshot', b.Ebs?.SnapshotId ?? '');
        }
      }
      const snaps = await c.ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: backupFilter }));
      for (const s of snaps.Snapshots ?? []) if (s.SnapshotId && tagOf(s.Tags, INSTANCE_ID_KEY) === id) all.add('backup-snapshot', s.SnapshotId);
    } catch (err) {
      notRemoved.push({ kind: 'backup-snapshot', id: `(backups of ${id})`, why: `could not list them: ${describe(err)}` });
    }
    const param = keyParameterName(id);
    await attempt({ kind: 'key-parameter', id: param }, async () => {
      try {
        await c.ssm.send(new DeleteParameterCommand({ Name: param }));
        return 'removed';
      } catch (err) {
        if (notFound(err)) return 'gone';
        throw err;
      }
    });
    const file = o.keyFile(id);
    if (fs.existsSync(file)) {
      await attempt({ kind: 'key-file', id: file }, async () => (fs.rmSync(file), 'removed'));
    }
  }
  for (const id of all.ids('backup-snapshot').filter((s) => s !== '')) {
    await attempt({ kind: 'backup-snapshot', id }, async () => {
      try {
        await c.ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
        return 'removed';
      } catch (err) {
        if (notFound(err)) return 'gone';
        throw err;
      }
    });
  }

  // 3. Security group, then the temporary network; skipped with a reason while an instance is not yet terminated.
  const blocked = stillRunning.size > 0 ? `instance ${[...stillRunning].join(', ')} is not yet terminated` : undefined;
  const ec2Delete = async (m: Made, describeTags: () => Promise<Tag[] | undefined | null>, del: () => Promise<unknown>): Promise<void> => {
    if (blocked) {
      notRemoved.push({ ...m, why: blocked });
      return;
    }
    await attempt(m, async () => {
      let tags: Tag[] | undefined | null;
      try {
        tags = await describeTags();
      } catch (err) {
        if (notFound(err)) return 'gone';
        throw err;
      }
      if (tags === null) return 'gone';
      if (!carriesRun(tags ?? undefined, runId)) return { refused: `it does not carry ${SELFTEST_TAG_KEY}=${runId}` };
      await del();
      return 'removed';
    });
  };
  for (const id of all.ids('security-group')) {
    await ec2Delete(
      { kind: 'security-group', id },
      async () => (await c.ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [id] }))).SecurityGroups?.[0]?.Tags ?? null,
      () => retryDependency(() => c.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id })), o),
    );
  }
  for (const id of all.ids('route-table')) {
    await ec2Delete(
      { kind: 'route-table', id },
      async () => (await c.ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [id] }))).RouteTables?.[0]?.Tags ?? null,
      async () => {
        const t = (await c.ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [id] }))).RouteTables?.[0];
        for (const a of t?.Associations ?? []) if (a.RouteTableAssociationId && !a.Main) await c.ec2.send(new DisassociateRouteTableCommand({ AssociationId: a.RouteTableAssociationId }));
        await c.ec2.send(new DeleteRouteTableCommand({ RouteTableId: id }));
      },
    );
  }
  for (const id of all.ids('subnet')) {
    await ec2Delete(
      { kind: 'subnet', id },
      async () => (await c.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [id] }))).Subnets?.[0]?.Tags ?? null,
      () => retryDependency(() => c.ec2.send(new DeleteSubnetCommand({ SubnetId: id })), o),
    );
  }
  for (const id of all.ids('internet-gateway')) {
    await ec2Delete(
      { kind: 'internet-gateway', id },
      async () => (await c.ec2.send(new DescribeInternetGatewaysCommand({ InternetGatewayIds: [id] }))).InternetGateways?.[0]?.Tags ?? null,
      async () => {
        const g = (await c.ec2.send(new DescribeInternetGatewaysCommand({ InternetGatewayIds: [id] }))).InternetGateways?.[0];
        for (const a of g?.Attachments ?? []) if (a.VpcId) await c.ec2.send(new DetachInternetGatewayCommand({ InternetGatewayId: id, VpcId: a.VpcId }));
        await c.ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId: id }));
      },
    );
  }
  for (const id of all.ids('vpc')) {
    await ec2Delete(
      { kind: 'vpc', id },
      async () => (await c.ec2.send(new DescribeVpcsCommand({ VpcIds: [id] }))).Vpcs?.[0]?.Tags ?? null,
      () => retryDependency(() => c.ec2.send(new DeleteVpcCommand({ VpcId: id })), o),
    );
  }

  // 4. IAM: the profile (its role removed first), then the role (its policy detached first).
  const name = iamName(runId);
  if (all.ids('instance-profile').length > 0) {
    await attempt({ kind: 'instance-profile', id: name }, async () => {
      let profile;
      try {
        profile = (await c.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }))).InstanceProfile;
      } catch (err) {
        if (notFound(err)) return 'gone';
        throw err;
      }
      // InstanceProfile.Tags (IAM API model, InstanceProfile data type); ListInstanceProfileTags when absent.
      const tags = profile?.Tags ?? (await c.iam.send(new ListInstanceProfileTagsCommand({ InstanceProfileName: name }))).Tags;
      if (!carriesRun(tags, runId)) return { refused: `it does not carry ${SELFTEST_TAG_KEY}=${runId}` };
      for (const r of profile?.Roles ?? []) await c.iam.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName: name, RoleName: r.RoleName }));
      await c.iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName: name }));
      return 'removed';
    });
  }
  if (all.ids('role').length > 0) {
    await attempt({ kind: 'role', id: name }, async () => {
      let role;
      try {
        role = (await c.iam.send(new GetRoleCommand({ RoleName: name }))).Role;
      } catch (err) {
        if (notFound(err)) return 'gone';
        throw err;
      }
      if (!carriesRun(role?.Tags, runId)) return { refused: `it does not carry ${SELFTEST_TAG_KEY}=${runId}` };
      const attached = await c.iam.send(new ListAttachedRolePoliciesCommand({ RoleName: name }));
      for (const p of attached.AttachedPolicies ?? []) await c.iam.send(new DetachRolePolicyCommand({ RoleName: name, PolicyArn: p.PolicyArn }));
      await c.iam.send(new DeleteRoleCommand({ RoleName: name }));
      return 'removed';
    });
  }
  return { removed, notRemoved, refused };
}

async function instanceCarriesRun(ec2: EC2Client, id: string, runId: string): Promise<boolean> {
  const i = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
  return carriesRun(i?.Tags, runId);
}

/**
 * A security group, subnet or VPC can be refused with DependencyViolation for a while after its
 * instance is terminated (its network interface goes later): retried, bounded.
 */
async function retryDependency<T>(call: () => Promise<T>, o: CleanupOptions): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (awsErrorName(err) !== 'DependencyViolation' || i >= 20) throw err;
      await o.sleep(o.pollMs);
    }
  }
}

export function describe(err: unknown): string {
  const e = err as Error;
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}

/**
 * What a ResetAccess execution left that its own restore and cleanup should have removed: its
 * helper instances, temporary network and security group (tagged reset-access:execution-id with the
 * execution's id, lambdas/common/tags.ts) and its lock record. The self-test did not create them
 * and does not delete them (they do not carry its tag); it reports them, with the way to see them.
 */
export async function runbookLeftovers(c: CleanupClients, executionId: string, instanceId: string | null): Promise<NotRemoved[]> {
  const f: Filter[] = [
    { Name: `tag:${MANAGED_BY_KEY}`, Values: [MANAGED_BY_VALUE] },
    { Name: `tag:${EXECUTION_ID_KEY}`, Values: [executionId] },
  ];
  const why = `left by ResetAccess execution ${executionId} (tagged ${EXECUTION_ID_KEY}=${executionId}, not the self-test's): see ec2-reset-access status ${executionId}`;
  const left: NotRemoved[] = [];
  const inst = await c.ec2.send(new DescribeInstancesCommand({ Filters: [...f, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }));
  for (const r of inst.Reservations ?? []) for (const i of r.Instances ?? []) if (i.InstanceId) left.push({ kind: 'instance', id: i.InstanceId, why });
  for (const g of (await c.ec2.send(new DescribeSecurityGroupsCommand({ Filters: f }))).SecurityGroups ?? []) if (g.GroupId) left.push({ kind: 'security-group', id: g.GroupId, why });
  for (const x of (await c.ec2.send(new DescribeSubnetsCommand({ Filters: f }))).Subnets ?? []) if (x.SubnetId) left.push({ kind: 'subnet', id: x.SubnetId, why });
  for (const t of (await c.ec2.send(new DescribeRouteTablesCommand({ Filters: f }))).RouteTables ?? []) if (t.RouteTableId) left.push({ kind: 'route-table', id: t.RouteTableId, why });
  for (const g of (await c.ec2.send(new DescribeInternetGatewaysCommand({ Filters: f }))).InternetGateways ?? [])
    if (g.InternetGatewayId) left.push({ kind: 'internet-gateway', id: g.InternetGatewayId, why });
  for (const v of (await c.ec2.send(new DescribeVpcsCommand({ Filters: f }))).Vpcs ?? []) if (v.VpcId) left.push({ kind: 'vpc', id: v.VpcId, why });
  if (instanceId) {
    try {
      await c.ssm.send(new GetParameterCommand({ Name: lockParameterName(instanceId) }));
      left.push({ kind: 'lock-record', id: lockParameterName(instanceId), why });
    } catch (err) {
      if (!notFound(err)) throw err;
    }
  }
  return left;
}
