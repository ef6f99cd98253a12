/**
 * Can a helper launched in a chosen subnet reach Systems Manager? The helper has no inbound rule
 * and is managed only through the SSM Agent, which must open HTTPS connections to the ssm and
 * ssmmessages endpoints (and ec2messages for agents before 3.3.40.0). Without that it never turns
 * Online and the run waits out waitForHelperOnline before it restores.
 *
 * Sources:
 * - RunInstances `NetworkInterfaces[].AssociatePublicIpAddress` ("whether to assign a public IPv4
 *   address to an instance you launch in a VPC") and `Subnet.MapPublicIpOnLaunch` ("whether
 *   instances launched in this subnet receive a public IPv4 address"): the EC2 API model
 *   (botocore data/ec2/2016-11-15/service-2.json), and
 *   https://docs.aws.amazon.com/vpc/latest/userguide/subnet-public-ip.html (the subnet's attribute
 *   is a default that the launch request can override, so we pass the subnet's own value).
 * - A subnet without an explicit route table association uses the VPC's main route table:
 *   https://docs.aws.amazon.com/vpc/latest/userguide/VPC_Route_Tables.html
 * - The interface endpoints a managed node needs without internet access (ssm, ssmmessages,
 *   ec2messages, with private DNS): https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html
 * - SSM Agent 3.3.40.0 stops using ec2messages once ssmmessages is connected: RELEASENOTES.md of
 *   aws/amazon-ssm-agent, section 3.3.40.0.
 * - Route states (active | blackhole | filtered) and the DescribeRouteTables / DescribeVpcEndpoints
 *   filters: the EC2 API model (botocore).
 */
import {
  DescribeRouteTablesCommand,
  DescribeVpcEndpointsCommand,
  type EC2Client,
  type Route,
  type RouteTable,
  type Subnet,
} from '@aws-sdk/client-ec2';
import { RefusedError } from '@common/errors';

/** What the helper needs from its network, in words the runbook's description can use as they are. */
export const HELPER_NETWORK_NEEDS =
  'The helper is managed only through Systems Manager: it must reach the ssm and ssmmessages endpoints ' +
  '(and ec2messages for SSM Agent before 3.3.40.0) over HTTPS (TCP 443). CreateNewVPC always gives it that ' +
  '(a temporary VPC with an internet gateway, and a public IPv4 address for the helper). A subnet you choose ' +
  'needs one of: it assigns public IPv4 addresses at launch (MapPublicIpOnLaunch) and routes 0.0.0.0/0 to an ' +
  'internet gateway; a 0.0.0.0/0 route to a NAT gateway or another egress (transit gateway, firewall, NAT ' +
  'instance); or interface VPC endpoints for ssm and ssmmessages (and ec2messages) with private DNS enabled in ' +
  'its VPC, whose security groups admit HTTPS from the subnet. The helper gets a public IPv4 address only when ' +
  'the subnet assigns one. A subnet with none of these is refused before the helper is launched.';

/** The endpoints the agent talks to; ec2messages only for agents before 3.3.40.0. */
const REQUIRED_ENDPOINTS = ['ssm', 'ssmmessages'] as const;
const LEGACY_ENDPOINT = 'ec2messages';

export interface SubnetReach {
  /** The value for RunInstances' AssociatePublicIpAddress: the subnet's own MapPublicIpOnLaunch. */
  readonly associatePublicIp: boolean;
  /** How the helper reaches Systems Manager, in words (the step's HelperNetwork output). */
  readonly path: string;
  /** Set when the path cannot be verified from this VPC alone, or is incomplete for old agents (short: it goes into an output). */
  readonly warning?: string;
}

function isActive(r: Route): boolean {
  return r.State === undefined || r.State === 'active';
}

/**
 * Route members (EC2 API model, shape Route) that name a next hop able to carry traffic out of the
 * VPC, with how to say it. GatewayId is judged apart (local, igw- or another gateway); the others
 * are destinations, metadata, or the IPv6-only egress-only gateway.
 */
export const ROUTE_EGRESS_TARGETS: Readonly<Record<string, string>> = {
  NatGatewayId: 'NAT gateway',
  TransitGatewayId: 'transit gateway',
  NetworkInterfaceId: 'network interface',
  InstanceId: 'NAT instance',
  VpcPeeringConnectionId: 'VPC peering connection',
  CoreNetworkArn: 'core network',
  OdbNetworkArn: 'ODB network',
  LocalGatewayId: 'local gateway',
  CarrierGatewayId: 'carrier gateway',
  IpAddress: 'route server next hop',
};
/** Route members that are no next hop for IPv4 traffic to Systems Manager. */
export const ROUTE_NON_TARGETS = [
  'DestinationCidrBlock',
  'DestinationIpv6CidrBlock',
  'DestinationPrefixListId',
  'EgressOnlyInternetGatewayId',
  'InstanceOwnerId',
  'Origin',
  'State',
  'GatewayId',
] as const;

/** The target of a route that can carry traffic out of the VPC, other than an internet gateway. */
export function egressTarget(r: Route): string | undefined {
  for (const [field, label] of Object.entries(ROUTE_EGRESS_TARGETS)) {
    const v = (r as Record<string, unknown>)[field];
    if (typeof v === 'string' && v !== '') return `${label} ${v}`;
  }
  // A virtual private gateway (vgw-) or a Gateway Load Balancer endpoint (vpce-) as GatewayId.
  if (r.GatewayId && r.GatewayId !== 'local' && !r.GatewayId.startsWith('igw-')) return `gateway ${r.GatewayId}`;
  return undefined;
}

/** The subnet's route table: its explicit association, else the VPC's main route table. */
async function routeTableOf(ec2: EC2Client, subnet: Subnet): Promise<RouteTable | undefined> {
  const own = await ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: 'association.subnet-id', Values: [subnet.SubnetId ?? ''] }] }));
  if (own.RouteTables?.[0]) return own.RouteTables[0];
  const main = await ec2.send(
    new DescribeRouteTablesCommand({ Filters: [{ Name: 'vpc-id', Values: [subnet.VpcId ?? ''] }, { Name: 'association.main', Values: ['true'] }] }),
  );
  return main.RouteTables?.[0];
}

/** The Systems Manager interface endpoints of the VPC that are available and have private DNS. */
async function ssmEndpoints(ec2: EC2Client, vpcId: string): Promise<Set<string>> {
  const out = await ec2.send(new DescribeVpcEndpointsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }] }));
  const found = new Set<string>();
  for (const e of out.VpcEndpoints ?? []) {
    // The API model spells states capitalized (Available), the filter documentation lower case.
    if (String(e.State ?? '').toLowerCase() !== 'available' || e.PrivateDnsEnabled !== true) continue;
    const service = /\.(ssm|ssmmessages|ec2messages)$/.exec(e.ServiceName ?? '')?.[1];
    if (service) found.add(service);
  }
  return found;
}

/**
 * How a helper in `subnet` reaches Systems Manager, and whether it gets a public IP (the subnet's
 * own setting). Throws RefusedError when the subnet provably cannot reach it: no public IP path,
 * no route out of the VPC, and no interface endpoints for ssm and ssmmessages. Where a path exists
 * but cannot be verified from here (a route to a transit gateway, for example), it goes on with a
 * warning.
 */
export async function assessSubnet(ec2: EC2Client, subnet: Subnet): Promise<SubnetReach> {
  const subnetId = subnet.SubnetId ?? '';
  const vpcId = subnet.VpcId ?? '';
  const associatePublicIp = subnet.MapPublicIpOnLaunch === true;
  const table = await routeTableOf(ec2, subnet);
  if (!table) {
    // Every VPC has a main route table; not seeing one means we cannot judge, not that it is isolated.
    return {
      associatePublicIp,
      path: `unverified: no route table of ${subnetId} was visible`,
      warning: `could not read the route table of ${subnetId}: if the helper cannot reach Systems Manager the run waits for it, then restores`,
    };
  }
  const routes = (table.Routes ?? []).filter(isActive);
  const defaults = routes.filter((r) => r.DestinationCidrBlock === '0.0.0.0/0');

  const igw = defaults.find((r) => r.GatewayId?.startsWith('igw-'))?.GatewayId;
  if (associatePublicIp && igw) {
    return { associatePublicIp, path: `public IPv4 address (${subnetId} assigns one at launch) through internet gateway ${igw}` };
  }
  const egress = defaults.map(egressTarget).find((t) => t !== undefined);
  if (egress) {
    const verified = egress.startsWith('NAT gateway');
    return {
      associatePublicIp,
      path: `route 0.0.0.0/0 of ${table.RouteTableId} to ${egress}`,
      ...(verified ? {} : { warning: `${egress} is not inspected by this run: it must let HTTPS to Systems Manager through` }),
    };
  }
  const endpoints = await ssmEndpoints(ec2, vpcId);
  if (REQUIRED_ENDPOINTS.every((e) => endpoints.has(e))) {
    return {
      associatePublicIp,
      path: `interface endpoints ${[...endpoints].sort().join(', ')} (private DNS) in ${vpcId}`,
      ...(endpoints.has(LEGACY_ENDPOINT)
        ? {}
        : { warning: `no ${LEGACY_ENDPOINT} endpoint: enough for SSM Agent 3.3.40.0 and later (the helper runs the latest Amazon Linux 2023), not for older agents` }),
    };
  }
  const other = routes.map(egressTarget).find((t) => t !== undefined);
  if (other) {
    return {
      associatePublicIp,
      path: `unverified: no default route and no Systems Manager endpoints in ${vpcId}; routes to ${other} only`,
      warning: `${subnetId} has no 0.0.0.0/0 route out and ${vpcId} has no Systems Manager endpoints: the helper reaches Systems Manager only if ${other} leads to endpoints shared from another network`,
    };
  }
  const missing = REQUIRED_ENDPOINTS.filter((e) => !endpoints.has(e));
  const why = [
    associatePublicIp ? `it assigns public IPv4 addresses but ${table.RouteTableId} has no 0.0.0.0/0 route to an internet gateway` : 'it assigns no public IPv4 address',
    'it has no route out of the VPC (NAT gateway or other egress)',
    `${vpcId} has no available interface endpoint with private DNS for ${missing.join(' and ')}`,
  ].join('; ');
  throw new RefusedError(
    `Subnet ${subnetId} cannot reach Systems Manager: ${why}. Run again with SubnetId=CreateNewVPC, or a subnet that has one of these. ${HELPER_NETWORK_NEEDS}`,
  );
}
