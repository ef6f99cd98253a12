/**
 * EC2's account limits that a fleet meets, enforced by the twin's agent when the twin is started
 * with `awsLimits` (local/twin.ts): the Region's VPC quota and EC2's API request-rate token
 * buckets, refilled on the twin's virtual clock.
 *
 * - VPCs per Region: 5, the default VPC included ("Amazon VPC quotas",
 *   https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html). CreateVpc beyond it is
 *   answered `VpcLimitExceeded` ("You've reached the limit on the number of VPCs that you can create
 *   in the Region", EC2 API error codes,
 *   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
 * - Request rate limiting, token buckets per API action ("Request throttling for the Amazon EC2
 *   API", https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html): each request
 *   takes one token from its action's bucket, which refills at a set rate up to its maximum;
 *   a request finding it empty is answered `RequestLimitExceeded`. Sizes and refill rates per
 *   second, from the page's tables: non-mutating actions (Describe*, List*, Search*, Get*) 100 / 20;
 *   the unfiltered and unpaginated ones among DescribeInstances, DescribeInstanceStatus,
 *   DescribeNetworkInterfaces, DescribeSecurityGroups, DescribeSnapshots,
 *   DescribeSpotInstanceRequests, DescribeVolumes 50 / 10; mutating actions 50 / 5;
 *   resource-intensive actions (AuthorizeSecurityGroupIngress, RevokeSecurityGroupIngress,
 *   CreateKeyPair, RequestSpotInstances ...) 50 / 5; uncategorized actions their own (RunInstances
 *   5 / 2, StartInstances 5 / 2, TerminateInstances 100 / 5, CreateTags and DeleteTags 100 / 10,
 *   CreateSnapshot, DeleteSnapshot, CreateVolume, DeleteVolume, DeregisterImage ... 100 / 5).
 * - Resource rate limiting, on the same page: RunInstances 1000 / 2, StartInstances 1000 / 2,
 *   StopInstances 1000 / 20, TerminateInstances 1000 / 20, one token per instance of the request.
 *
 * A bucket starts full. The SDKs retry RequestLimitExceeded by themselves (standard retry mode,
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html); their backoff runs in
 * real time while the virtual clock stands still, so in the twin a retry meets the bucket as the
 * virtual clock left it (local/README.md, assumptions).
 */
import { AwsErrorReply } from './agent';

export interface Bucket {
  readonly capacity: number;
  /** Tokens per second. */
  readonly refill: number;
}

const NON_MUTATING: Bucket = { capacity: 100, refill: 20 };
const UNFILTERED: Bucket = { capacity: 50, refill: 10 };
const MUTATING: Bucket = { capacity: 50, refill: 5 };
const RESOURCE_INTENSIVE: Bucket = { capacity: 50, refill: 5 };

const UNFILTERED_ACTIONS = new Set([
  'DescribeInstances',
  'DescribeInstanceStatus',
  'DescribeNetworkInterfaces',
  'DescribeSecurityGroups',
  'DescribeSnapshots',
  'DescribeSpotInstanceRequests',
  'DescribeVolumes',
]);

const RESOURCE_INTENSIVE_ACTIONS = new Set([
  'AcceptVpcPeeringConnection',
  'AuthorizeSecurityGroupIngress',
  'CancelSpotInstanceRequests',
  'CreateKeyPair',
  'CreateVpcPeeringConnection',
  'DeleteVpcPeeringConnection',
  'RejectVpcPeeringConnection',
  'RevokeSecurityGroupIngress',
  'RequestSpotInstances',
]);

/** The uncategorized actions of the page's table that the product or the twin calls. */
const UNCATEGORIZED: Record<string, Bucket> = {
  AssociateIamInstanceProfile: { capacity: 100, refill: 5 },
  CreateNetworkInterface: { capacity: 100, refill: 5 },
  CreateSnapshot: { capacity: 100, refill: 5 },
  CreateSnapshots: { capacity: 100, refill: 5 },
  CreateTags: { capacity: 100, refill: 10 },
  CreateVolume: { capacity: 100, refill: 5 },
  DeleteNetworkInterface: { capacity: 100, refill: 5 },
  DeleteSnapshot: { capacity: 100, refill: 5 },
  DeleteTags: { capacity: 100, refill: 10 },
  DeleteVolume: { capacity: 100, refill: 5 },
  DeregisterImage: { capacity: 100, refill: 5 },
  DisassociateIamInstanceProfile: { capacity: 100, refill: 5 },
  ModifyImageAttribute: { capacity: 100, refill: 5 },
  ModifyInstanceMetadataOptions: { capacity: 100, refill: 5 },
  ModifyNetworkInterfaceAttribute: { capacity: 100, refill: 5 },
  ModifySnapshotAttribute: { capacity: 100, refill: 5 },
  RunInstances: { capacity: 5, refill: 2 },
  StartInstances: { capacity: 5, refill: 2 },
  TerminateInstances: { capacity: 100, refill: 5 },
};

/** Resource token buckets: one token per instance the request names or launches. */
const RESOURCE_BUCKETS: Record<string, Bucket> = {
  RunInstances: { capacity: 1000, refill: 2 },
  StartInstances: { capacity: 1000, refill: 2 },
  StopInstances: { capacity: 1000, refill: 20 },
  TerminateInstances: { capacity: 1000, refill: 20 },
};

/** The Region's VPC quota, the default VPC included. */
export const VPCS_PER_REGION = 5;

/** The request bucket of an EC2 query request (the action and its form). */
export function requestBucket(action: string, form: URLSearchParams): { key: string; bucket: Bucket } {
  if (UNCATEGORIZED[action]) return { key: action, bucket: UNCATEGORIZED[action] };
  if (RESOURCE_INTENSIVE_ACTIONS.has(action)) return { key: action, bucket: RESOURCE_INTENSIVE };
  if (/^(Describe|List|Search|Get)/.test(action)) {
    if (UNFILTERED_ACTIONS.has(action)) {
      const keys = [...form.keys()];
      // "when requested without specifying either pagination or a filter": no Filter.N, no
      // MaxResults/NextToken. Ids (InstanceId.N, VolumeId.N ...) are neither (the strict reading).
      const filtered = keys.some((k) => /^Filter\.\d+\./.test(k));
      const paginated = keys.includes('MaxResults') || keys.includes('NextToken');
      if (!filtered && !paginated) return { key: `${action}:unfiltered`, bucket: UNFILTERED };
    }
    return { key: action, bucket: NON_MUTATING };
  }
  return { key: action, bucket: MUTATING };
}

/** How many instances a request uses resource tokens for. */
function resourceCount(action: string, form: URLSearchParams): number {
  if (action === 'RunInstances') return Math.max(1, Number(form.get('MaxCount') ?? form.get('MinCount') ?? 1));
  let n = 0;
  for (const k of form.keys()) if (/^InstanceId\.\d+$/.test(k)) n++;
  return Math.max(1, n);
}

export interface Ec2LimitsOptions {
  /** Virtual seconds now (the twin's clock). */
  readonly now: () => number;
  /** VPCs in the Region now (moto). */
  readonly countVpcs: () => Promise<number>;
}

export interface Ec2Limits {
  /** Throws AwsErrorReply (RequestLimitExceeded, VpcLimitExceeded) when the request is over a limit. */
  admit(action: string, form: URLSearchParams): Promise<void>;
  /** Requests refused so far, by code and action. */
  refusals(): Readonly<Record<string, number>>;
  /** Tokens left in a bucket now (for tests and reports). */
  tokens(key: string): number;
}

export function createEc2Limits(options: Ec2LimitsOptions): Ec2Limits {
  const state = new Map<string, { tokens: number; at: number; bucket: Bucket }>();
  const refused = new Map<string, number>();
  const level = (key: string, bucket: Bucket) => {
    const now = options.now();
    let s = state.get(key);
    if (!s) {
      s = { tokens: bucket.capacity, at: now, bucket };
      state.set(key, s);
    }
    s.tokens = Math.min(bucket.capacity, s.tokens + (now - s.at) * bucket.refill);
    s.at = now;
    return s;
  };
  const refuse = (code: string, action: string, message: string, status: number): never => {
    refused.set(`${code}:${action}`, (refused.get(`${code}:${action}`) ?? 0) + 1);
    throw new AwsErrorReply(code, message, status);
  };
  return {
    async admit(action, form) {
      const { key, bucket } = requestBucket(action, form);
      const request = level(key, bucket);
      const resource = RESOURCE_BUCKETS[action] ? level(`${action}:resources`, RESOURCE_BUCKETS[action]) : undefined;
      const count = resource ? resourceCount(action, form) : 0;
      // EC2 answers throttling with HTTP 503 (assumption, local/README.md); the SDKs retry
      // RequestLimitExceeded by its code whatever the status.
      if (request.tokens < 1) refuse('RequestLimitExceeded', action, 'Request limit exceeded.', 503);
      if (resource && resource.tokens < count) refuse('RequestLimitExceeded', action, 'Request limit exceeded (resource rate).', 503);
      if (action === 'CreateVpc' && (await options.countVpcs()) >= VPCS_PER_REGION) {
        refuse('VpcLimitExceeded', action, 'The maximum number of VPCs has been reached.', 400);
      }
      request.tokens -= 1;
      if (resource) resource.tokens -= count;
    },
    refusals: () => Object.fromEntries(refused),
    tokens(key) {
      const s = state.get(key);
      if (!s) return NaN;
      return level(key, s.bucket).tokens;
    },
  };
}
