/**
 * Least privilege, over the synthesized template (createApp). Each rule fails on the first
 * statement that breaks it, naming the policy, the Sid and the action.
 */
import { iamStatements, render, resourcesOfType, rolesAssumedBy, synthTemplate, type Statement, type Template } from './support/template';
import { STEP_FOLDERS } from '../../lib/constants';

const MANAGED_BY = 'reset-access:managed-by';
const MANAGED_BY_VALUE = 'ec2-reset-access';
const EC2_SAR = 'https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html';
const SSM_SAR = 'https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html';
const ASG_SAR = 'https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html';
const EC2_RLP = 'https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-policies-for-amazon-ec2.html';

/**
 * Actions that may have `Resource: "*"`, because the service offers no resource-level
 * permission for them (the Service Authorization Reference lists no resource type). Every one
 * is a read. A new entry needs its reason and the page that says so.
 */
const UNSCOPABLE: Record<string, { reason: string; docs: string }> = Object.fromEntries([
  ...[
    'DescribeInstances',
    'DescribeVolumes',
    'DescribeInstanceAttribute',
    'DescribeInstanceTypes',
    'DescribeImages',
    'DescribeSnapshots',
    'DescribeSubnets',
    'DescribeVpcs',
    'DescribeSecurityGroups',
    'DescribeSecurityGroupRules',
    'DescribeRouteTables',
    'DescribeInternetGateways',
    'DescribeVpcEndpoints',
    'DescribeAddresses',
    'DescribeSpotInstanceRequests',
    // RevokeKey (issue 14): a key pair's public key (IncludePublicKey).
    'DescribeKeyPairs',
  ].map((a) => [`ec2:${a}`, { reason: 'EC2 Describe* actions do not support resource-level permissions', docs: `${EC2_SAR} ; ${EC2_RLP}` }]),
  ['autoscaling:DescribeAutoScalingInstances', { reason: 'Describe* of Auto Scaling has no resource type', docs: ASG_SAR }],
  ['ssm:DescribeInstanceInformation', { reason: 'lists managed nodes; no resource type', docs: SSM_SAR }],
  ['ssm:GetCommandInvocation', { reason: 'no resource type (the command id is not an ARN)', docs: SSM_SAR }],
  ['ssm:ListCommandInvocations', { reason: 'lists command invocations (a wait step reads their status); no resource type', docs: SSM_SAR }],
  ['ssm:DescribeParameters', { reason: 'lists parameter metadata (never values); no resource type', docs: SSM_SAR }],
  // RevokeKey (issue 14): gather lists the fleet's children; the automation role may resolve a tag target.
  ['ssm:DescribeAutomationExecutions', { reason: 'lists automation executions (gather finds the fleet\'s children); no resource type', docs: SSM_SAR }],
  [
    'tag:GetResources',
    {
      reason: 'lists tagged resources (a fan-out\'s tag target may be resolved with it); no resource type',
      docs: 'https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonresourcegroupstaggingapi.html',
    },
  ],
]);

/**
 * Writes that have no resource type either. Each can only stop or undo, never start or reach
 * data, and is granted to one function only.
 */
const UNSCOPABLE_WRITES: Record<string, { reason: string; docs: string; onlyIn: RegExp }> = {
  'ssm:CancelCommand': {
    reason: 'restore stops a still-running inject command before it moves the volume; a cancel can only stop a command',
    docs: SSM_SAR,
    onlyIn: /Restore/,
  },
};

/** Reads that are sensitive all the same: never on `*`. */
const SENSITIVE_READS = /^(ssm:GetParameter|ssm:GetParameters|ssm:GetParametersByPath|ssm:GetParameterHistory|kms:Decrypt|secretsmanager:GetSecretValue)$/;
const READ = /^[a-z0-9-]+:(Describe|Get|List)/;

/** Destructive actions that must be conditioned on this product's tag. */
const NEEDS_TAG = /^ec2:(TerminateInstances|Delete[A-Za-z]*|Detach[A-Za-z]*InternetGateway|RevokeSecurityGroup[A-Za-z]*|DisassociateRouteTable)$/;

/**
 * Statements of a tag-conditioned action that may go unconditioned, because the resource type
 * cannot carry our tag and the same request also authorizes on a resource that must (IAM
 * evaluates every resource of a request; all must be allowed).
 */
const COMPANION_RESOURCES: Array<{ action: RegExp; resourceType: string; companion: string; reason: string; docs: string }> = [
  {
    action: /^ec2:RevokeSecurityGroup(Egress|Ingress)$/,
    resourceType: 'security-group-rule',
    companion: 'security-group',
    reason: 'a rule carries no tag of ours; the request also names its security group, which must carry our tag',
    docs: EC2_SAR,
  },
];

function tagConditioned(s: Statement, key = MANAGED_BY, value = MANAGED_BY_VALUE): boolean {
  const c = s.condition ?? {};
  for (const op of ['StringEquals', 'StringEqualsIgnoreCase']) {
    const m = c[op] ?? {};
    for (const k of [`aws:ResourceTag/${key}`, `ec2:ResourceTag/${key}`, `ssm:resourceTag/${key}`]) {
      const v = m[k];
      if (v === value || (Array.isArray(v) && v.length === 1 && v[0] === value)) return true;
    }
  }
  return false;
}

/** The EC2 resource type of an ARN like `arn:...:ec2:region:acct:instance/*`, or undefined. */
function ec2Type(arn: string): string | undefined {
  return /:ec2:[^:]*:[^:]*:([a-z-]+)\//.exec(arn)?.[1];
}

let t: Template;

beforeAll(() => {
  t = synthTemplate();
}, 300_000);

const where = (s: Statement, action?: string): string => `${s.policy}${s.sid ? `/${s.sid}` : ''}${action ? ` ${action}` : ''}`;
const allowsOf = (tpl: Template): Statement[] => iamStatements(tpl).filter((s) => s.effect === 'Allow');

// ---- the rules: each returns its violations (empty when the template is right) ---------------

function wildcardActions(tpl: Template): string[] {
  const bad: string[] = [];
  for (const s of allowsOf(tpl)) {
    for (const a of s.actions) if (a.includes('*')) bad.push(where(s, a));
    if (s.notActions.length > 0) bad.push(`${where(s)} NotAction`);
    if (s.notResources.length > 0) bad.push(`${where(s)} NotResource`);
  }
  return bad;
}

function starResources(tpl: Template): string[] {
  const bad: string[] = [];
  for (const s of allowsOf(tpl)) {
    if (!s.resources.includes('*')) continue;
    for (const a of s.actions) {
      if (UNSCOPABLE[a]) continue;
      const write = UNSCOPABLE_WRITES[a];
      if (write && write.onlyIn.test(where(s))) continue;
      bad.push(where(s, a));
    }
  }
  return bad;
}

function untaggedDestruction(tpl: Template): string[] {
  const allows = allowsOf(tpl);
  const bad: string[] = [];
  for (const s of allows) {
    for (const a of s.actions.filter((x) => NEEDS_TAG.test(x))) {
      if (tagConditioned(s)) continue;
      // the run's lock tag: removable only by key, only where it is (lockTagRule)
      if (a === 'ec2:DeleteTags' && lockUntagging(s)) continue;
      // RevokeKey's run tag, by gather only, only that key where it is (lockTagRule)
      if (a === 'ec2:DeleteTags' && revokeRunTagging(s, 'Resource', /RevokeGather/)) continue;
      // the key pair the user names to delete (DeleteKeyPair=True): gather only, once every instance
      // launched with it is clean (lambdas/revoke-gather); a key pair carries none of our tags
      if (a === 'ec2:DeleteKeyPair' && s.roles.every((r) => /RevokeGather/.test(r)) && s.resources.every((r) => ec2Type(r) === 'key-pair')) continue;
      // an untaggable companion resource, only where the request's other resource is conditioned
      const types = s.resources.map(ec2Type);
      const excused = COMPANION_RESOURCES.find((c) => c.action.test(a) && types.every((ty) => ty === c.resourceType));
      if (excused) {
        const companionOk = allows.some(
          (o) => o.roles.some((r) => s.roles.includes(r)) && o.actions.includes(a) && tagConditioned(o) && o.resources.some((r) => ec2Type(r) === excused.companion),
        );
        if (companionOk) continue;
      }
      bad.push(`${where(s, a)} on ${s.resources.join(' ')}`);
    }
  }
  return bad;
}

const LOCK_KEY = 'reset-access:lock';
/** RevokeKey's run tag (issue 14): resolve adds it, gather removes it; no policy keys on it. */
const REVOKE_RUN_KEY = 'reset-access:revoke-run';
/** Tagging (Request) or untagging (Resource) with the revoke run's key only, by the one step that does it. */
function revokeRunTagging(s: Statement, kind: 'Request' | 'Resource', role: RegExp): boolean {
  const c = (s.condition ?? {}) as Record<string, Record<string, unknown>>;
  return (
    s.roles.every((r) => role.test(r)) &&
    s.resources.every((r) => ec2Type(r) === 'instance') &&
    JSON.stringify(c['ForAllValues:StringEquals']) === JSON.stringify({ 'aws:TagKeys': [REVOKE_RUN_KEY] }) &&
    c.Null?.['aws:TagKeys'] === 'false' &&
    c.Null?.[`aws:${kind}Tag/${REVOKE_RUN_KEY}`] === 'false'
  );
}
/** ec2:DeleteTags of the lock key only (ForAllValues aws:TagKeys, key present), where the resource carries it. */
function lockUntagging(s: Statement): boolean {
  const c = (s.condition ?? {}) as Record<string, Record<string, unknown>>;
  return (
    JSON.stringify(c['ForAllValues:StringEquals']) === JSON.stringify({ 'aws:TagKeys': [LOCK_KEY] }) &&
    c.Null?.['aws:TagKeys'] === 'false' &&
    c.Null?.[`aws:ResourceTag/${LOCK_KEY}`] === 'false'
  );
}

/** Actions that change the customer's instance or its volume (SAR: authorized on instance and volume). */
const CHANGES_TARGET = /^ec2:(StopInstances|StartInstances|ModifyInstanceAttribute|AttachVolume|DetachVolume|CreateSnapshot|CreateImage|RebootInstances|ModifyVolume)$/;

/**
 * Issue 11: every change to an instance or a volume needs this product's tag (the helper) or a run's
 * lock tag (the customer's, named at run time); tagging an instance or volume outside a create
 * call is preflight's lock tag only, and untagging is the lock key only, by preflight, cleanup
 * and restore.
 */
function lockTagRule(tpl: Template): string[] {
  const bad: string[] = [];
  for (const s of allowsOf(tpl)) {
    const c = (s.condition ?? {}) as Record<string, Record<string, unknown>>;
    const onTarget = s.resources.some((r) => ['instance', 'volume'].includes(ec2Type(r) ?? '') || r === '*');
    if (!onTarget) continue;
    for (const a of s.actions.filter((x) => CHANGES_TARGET.test(x))) {
      if (tagConditioned(s) || c.Null?.[`aws:ResourceTag/${LOCK_KEY}`] === 'false') continue;
      bad.push(`${where(s, a)} on ${s.resources.join(' ')}: neither our tag nor the lock tag`);
    }
    if (s.actions.includes('ec2:CreateTags') && !c.StringEquals?.['ec2:CreateAction'] && revokeRunTagging(s, 'Request', /RevokeResolve/)) continue;
    if (s.actions.includes('ec2:DeleteTags') && revokeRunTagging(s, 'Resource', /RevokeGather/)) continue;
    if (s.actions.includes('ec2:CreateTags') && !c.StringEquals?.['ec2:CreateAction']) {
      const ok =
        s.roles.every((r) => /Preflight/.test(r)) &&
        JSON.stringify(c['ForAllValues:StringEquals']) === JSON.stringify({ 'aws:TagKeys': [LOCK_KEY] }) &&
        c.Null?.['aws:TagKeys'] === 'false';
      if (!ok) bad.push(`${where(s, 'ec2:CreateTags')}: tagging outside a create call other than preflight's lock tag`);
    }
    if (s.actions.includes('ec2:DeleteTags') && !(lockUntagging(s) && s.roles.every((r) => /Preflight|Cleanup|Restore/.test(r)))) {
      bad.push(`${where(s, 'ec2:DeleteTags')}: untagging other than the lock key by preflight, cleanup or restore`);
    }
  }
  return bad;
}

function sendCommandScope(tpl: Template): string[] {
  const commandDocs = resourcesOfType(tpl, 'AWS::SSM::Document').filter((id) => tpl.Resources[id].Properties?.DocumentType === 'Command');
  // The inject-key document, RevokeKey's (issue 14) and windows-reset (issue 15): the stack's own Command documents only.
  if (commandDocs.length !== 3) return [`${commandDocs.length} Command documents`];
  const docArn = new RegExp(`:ssm:[^:]*:[^:]*:document/\\$\\{Ref\\.(${commandDocs.join('|')})\\}$`);
  const bad: string[] = [];
  let docGranted = false;
  let instancesGranted = false;
  let lockedGranted = false;
  for (const s of allowsOf(tpl).filter((x) => x.actions.includes('ssm:SendCommand'))) {
    for (const r of s.resources) {
      if (docArn.test(r)) docGranted = true;
      else if (ec2Type(r) === 'instance' && tagConditioned(s, 'reset-access:role', 'helper')) instancesGranted = true;
      // The online method (issue 12): the customer's instance, only while it carries a lock tag.
      else if (ec2Type(r) === 'instance' && JSON.stringify(s.condition ?? {}) === JSON.stringify({ Null: { 'ssm:resourceTag/reset-access:lock': 'false' } })) lockedGranted = true;
      else bad.push(`${where(s, 'ssm:SendCommand')} on ${r}${s.condition ? ' ' + JSON.stringify(s.condition) : ''}`);
    }
  }
  if (!docGranted) bad.push('SendCommand is not granted on the Command document');
  if (!instancesGranted) bad.push('SendCommand is not granted on helper-tagged instances');
  if (!lockedGranted) bad.push('SendCommand is not granted on lock-tagged instances (the online method)');
  return bad;
}

function parameterWrites(tpl: Template): string[] {
  // reset-access/revoke/*/results/*: a RevokeKey fleet child's own result (review P10).
  const ok = /:ssm:[^:]*:[^:]*:parameter\/(ec2rl\/openssh|ec2rl\/windows|reset-access\/locks|reset-access\/user-data|reset-access\/revoke|reset-access\/revoke\/\*\/results|reset-access\/windows-run-keys)\/\*$/;
  const bad: string[] = [];
  for (const s of allowsOf(tpl)) {
    for (const a of s.actions.filter((x) => /^ssm:(PutParameter|DeleteParameter|DeleteParameters|LabelParameterVersion|AddTagsToResource)$/.test(x))) {
      for (const r of s.resources) if (!ok.test(r)) bad.push(`${where(s, a)} on ${r}`);
    }
  }
  return bad;
}

/** The kms:ViaService value of a statement (rendered), or undefined. */
function viaService(s: Statement): string | undefined {
  const v = (s.condition?.StringEquals ?? {})['kms:ViaService'];
  return v === undefined ? undefined : render(v);
}
const VIA_EC2 = 'ec2.${Ref.AWS.Region}.amazonaws.com';
const VIA_SSM = 'ssm.${Ref.AWS.Region}.amazonaws.com';
/**
 * The KMS permissions AWS lists for using EBS encryption ("Permissions for users",
 * https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html): CreateGrant,
 * Decrypt, DescribeKey, GenerateDataKeyWithoutPlainText, ReEncrypt (as its two IAM actions,
 * ReEncryptFrom and ReEncryptTo, Service Authorization Reference for AWS KMS).
 */
const EBS_KMS = ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo'];
/** The EC2 calls after which EC2 uses an encrypted volume's key with the caller's permissions (attach, start, launch, back up). */
const USES_VOLUME_KEYS = /^ec2:(AttachVolume|StartInstances|RunInstances|CreateSnapshot|CreateImage)$/;

/**
 * The statement's role reads SecureStrings (GetParameter) only under /reset-access/user-data/ (the
 * saved user data) or /reset-access/windows-run-keys/ (a Windows run's own key, issue 15), besides
 * the lock path: never a stored private key or password under /ec2rl/.
 */
function readsOnlySavedUserData(tpl: Template, s: Statement): boolean {
  const reads = allowsOf(tpl)
    .filter((x) => x.policy === s.policy && x.actions.some((a) => /^ssm:GetParameters?$/.test(a)))
    .flatMap((x) => x.resources);
  return reads.some((r) => /parameter\/reset-access\/(user-data|windows-run-keys)\/\*$/.test(r)) && reads.every((r) => /parameter\/reset-access\/(user-data|windows-run-keys|locks)\/\*$/.test(r));
}

function keyReadBack(tpl: Template): string[] {
  const bad: string[] = [];
  for (const s of allowsOf(tpl)) {
    for (const a of s.actions) {
      // Decrypt only when EC2 asks for a volume's data key, or through SSM for a role whose only
      // SecureString read is the saved user data (GetParameter never on /ec2rl, checked below).
      if (a === 'kms:Decrypt' && viaService(s) !== VIA_EC2 && !(viaService(s) === VIA_SSM && readsOnlySavedUserData(tpl, s))) bad.push(where(s, a));
      if (/^ssm:GetParameter/.test(a) && s.resources.some((r) => r === '*' || /parameter\/(ec2rl|\*)/.test(r))) bad.push(where(s, a));
    }
  }
  return bad;
}

function kmsUse(tpl: Template): string[] {
  const keys = resourcesOfType(tpl, 'AWS::KMS::Key');
  if (keys.length !== 1) return [`${keys.length} KMS keys`];
  const bad: string[] = [];
  if (tpl.Resources[keys[0]].Properties?.EnableKeyRotation !== true) bad.push('key rotation is off');
  for (const s of allowsOf(tpl)) {
    for (const a of s.actions.filter((x) => x.startsWith('kms:'))) {
      if (a === 'kms:Encrypt' || a === 'kms:GenerateDataKey') {
        const ownKey = s.resources.every((r) => r === `\${${keys[0]}.Arn}`);
        if (!ownKey || viaService(s) !== VIA_SSM) bad.push(where(s, a));
      } else if (a === 'kms:CreateGrant') {
        // AWS's recommendation for EBS: grants only for AWS resources, and only through EC2.
        if ((s.condition?.Bool ?? {})['kms:GrantIsForAWSResource'] !== 'true' || viaService(s) !== VIA_EC2) bad.push(where(s, a));
      } else if (a === 'kms:DescribeKey') {
        // a read: directly (preflight checks the key is enabled) or through EC2
      } else if (a === 'kms:Decrypt' && viaService(s) === VIA_SSM) {
        // The saved user data (UserData method): the stack's key, bound to those parameters.
        const ownKey = s.resources.every((r) => r === `\${${keys[0]}.Arn}`);
        if (!ownKey || !readsOnlySavedUserData(tpl, s)) bad.push(where(s, a));
      } else if (EBS_KMS.includes(a)) {
        if (viaService(s) !== VIA_EC2) bad.push(where(s, a));
      } else {
        bad.push(where(s, a));
      }
    }
  }
  return bad;
}

/**
 * The EBS encryption permissions go to exactly the roles that can make a call in which EC2 uses a
 * volume's key on their behalf, all of them, through EC2 only.
 */
function ebsEncryptionRoles(tpl: Template): string[] {
  const allows = allowsOf(tpl);
  const roles = new Set(allows.flatMap((s) => s.roles));
  const bad: string[] = [];
  for (const role of roles) {
    const own = allows.filter((s) => s.roles.includes(role));
    const needs = own.some((s) => s.actions.some((a) => USES_VOLUME_KEYS.test(a)));
    for (const a of EBS_KMS) {
      const viaEc2 = own.some((s) => s.actions.includes(a) && viaService(s) === VIA_EC2);
      if (viaEc2 !== needs) bad.push(`${role} ${a} through EC2: ${viaEc2 ? 'granted without a call that needs it' : 'missing'}`);
    }
  }
  return bad;
}

/**
 * Two passes only: launch-helper passes the helper role to EC2 (the instance profile), and the
 * automation role passes itself to Systems Manager when its cancel path starts the restore
 * runbook (that execution runs as the same role).
 */
function passRole(tpl: Template): string[] {
  const helperRoles = rolesAssumedBy(tpl, 'ec2.amazonaws.com');
  const automation = rolesAssumedBy(tpl, 'ssm.amazonaws.com')[0];
  const bad: string[] = [];
  const grants = allowsOf(tpl).filter((x) => x.actions.includes('iam:PassRole'));
  const passes = (s: Statement, roleId: string, service: string): boolean =>
    s.rawResources.every((r) => JSON.stringify(r) === JSON.stringify({ 'Fn::GetAtt': [roleId, 'Arn'] })) &&
    (s.condition?.StringEquals ?? {})['iam:PassedToService'] === service;
  const toEc2 = grants.filter((s) => passes(s, helperRoles[0], 'ec2.amazonaws.com'));
  const selfToSsm = grants.filter((s) => passes(s, automation, 'ssm.amazonaws.com') && s.roles.every((r) => r === automation));
  if (toEc2.length !== 1) bad.push(`${toEc2.length} statements pass the helper role to EC2`);
  if (selfToSsm.length > 1) bad.push(`${selfToSsm.length} statements pass the automation role to Systems Manager`);
  for (const s of grants) if (!toEc2.includes(s) && !selfToSsm.includes(s)) bad.push(where(s, 'iam:PassRole'));
  return bad;
}

function invokeScope(tpl: Template): string[] {
  const automation = rolesAssumedBy(tpl, 'ssm.amazonaws.com')[0];
  const functions = new Set(resourcesOfType(tpl, 'AWS::Lambda::Function'));
  const invoked = new Set<string>();
  const bad: string[] = [];
  for (const s of allowsOf(tpl).filter((x) => x.actions.includes('lambda:InvokeFunction'))) {
    if (!s.roles.every((r) => r === automation)) bad.push(`${where(s)} (not the automation role)`);
    for (const raw of s.rawResources) {
      // \${Fn::GetAtt [fn, Arn]} or that ARN with ":*" (its versions)
      const text = render(raw);
      const m = /^\$\{([A-Za-z0-9]+)\.Arn\}(:\*)?$/.exec(text);
      if (m && functions.has(m[1])) invoked.add(m[1]);
      else bad.push(`${where(s, 'lambda:InvokeFunction')} on ${text}`);
    }
  }
  for (const fn of functions) if (!invoked.has(fn)) bad.push(`${fn} cannot be invoked by the automation role`);
  return bad;
}

const RULES: Array<[string, (tpl: Template) => string[]]> = [
  ['no Action "*", no service wildcard, no wildcard in any action; no NotAction or NotResource', wildcardActions],
  ['Resource "*" only for actions that cannot be scoped (the allowlist, each with its reason and docs page)', starResources],
  ["terminate, delete, detach-gateway and revoke actions are conditioned on this product's tag", untaggedDestruction],
  ["the customer's instance and volume change only under a run's lock tag; only preflight tags them (the lock key), only preflight, cleanup and restore untag (that key)", lockTagRule],
  ["ssm:SendCommand only with the product's Command document, and on instances only when tagged as helpers or carrying a run's lock tag", sendCommandScope],
  ['ssm:PutParameter and ssm:DeleteParameter only under /ec2rl/openssh/*, /ec2rl/windows/*, /reset-access/locks/*, /reset-access/user-data/* and /reset-access/windows-run-keys/*', parameterWrites],
  ['no product role can read a stored private key or password back (no GetParameter on /ec2rl; kms:Decrypt through EC2, or through SSM for roles that read only the saved user data or a Windows run key)', keyReadBack],
  ["KMS use is limited to the stack's key through Systems Manager, and EBS encryption through EC2 (grants for AWS resources only); rotation on", kmsUse],
  ['the EBS encryption permissions AWS lists go, through EC2, to exactly the roles that attach, start, launch or back up volumes', ebsEncryptionRoles],
  ['iam:PassRole only for the helper role to EC2, and the automation role to Systems Manager by itself', passRole],
  ["the automation role can invoke only the product's functions, and every one of them", invokeScope],
];

test('the template has the roles and policies this suite reasons about', () => {
  expect(resourcesOfType(t, 'AWS::Lambda::Function')).toHaveLength(STEP_FOLDERS.length);
  expect(rolesAssumedBy(t, 'ssm.amazonaws.com')).toHaveLength(1);
  expect(rolesAssumedBy(t, 'ec2.amazonaws.com')).toHaveLength(1);
  expect(allowsOf(t).length).toBeGreaterThan(20);
});

test.each(RULES)('%s', (_name, rule) => {
  expect(rule(t)).toEqual([]);
});

test('the allowlist of unscopable actions holds reads only, each with a reason and an AWS docs page', () => {
  for (const [a, why] of Object.entries(UNSCOPABLE)) {
    expect({ a, read: READ.test(a) && !SENSITIVE_READS.test(a) }).toEqual({ a, read: true });
    expect(why.reason.length).toBeGreaterThan(10);
    expect(why.docs).toMatch(/^https:\/\/docs\.aws\.amazon\.com\//);
  }
  // the writes without a resource type: each stops something, each with its reason and page
  for (const [a, why] of Object.entries(UNSCOPABLE_WRITES)) {
    expect({ a, stops: /^[a-z0-9-]+:(Cancel|Stop)/.test(a) }).toEqual({ a, stops: true });
    expect(why.reason.length).toBeGreaterThan(10);
    expect(why.docs).toMatch(/^https:\/\/docs\.aws\.amazon\.com\//);
  }
});

// ---- the rules can fail: each catches a broken copy of the real template ---------------------

type Mutation = (tpl: Template) => void;
function policyStatements(tpl: Template, policyIdPart: string): Array<Record<string, unknown>> {
  const id = Object.keys(tpl.Resources).find((k) => tpl.Resources[k].Type === 'AWS::IAM::Policy' && k.includes(policyIdPart));
  if (!id) throw new Error(`no policy ${policyIdPart}`);
  return ((tpl.Resources[id].Properties as Record<string, { Statement: Array<Record<string, unknown>> }>).PolicyDocument.Statement);
}
function addStatement(part: string, st: Record<string, unknown>): Mutation {
  return (tpl) => {
    policyStatements(tpl, part).push(st);
  };
}
function editSid(part: string, sid: string, edit: (st: Record<string, unknown>) => void): Mutation {
  return (tpl) => {
    const st = policyStatements(tpl, part).find((x) => x.Sid === sid);
    if (!st) throw new Error(`no statement ${sid} in ${part}`);
    edit(st);
  };
}

const MUTATIONS: Array<[string, (tpl: Template) => string[], Mutation]> = [
  ['ec2:* on a step role', wildcardActions, addStatement('Cleanup', { Effect: 'Allow', Action: 'ec2:*', Resource: 'arn:aws:ec2:*:*:instance/*' })],
  ['StopInstances on "*"', starResources, addStatement('StopInstance', { Effect: 'Allow', Action: 'ec2:StopInstances', Resource: '*' })],
  ['CancelCommand on "*" outside restore', starResources, addStatement('InjectKey', { Effect: 'Allow', Action: 'ssm:CancelCommand', Resource: '*' })],
  ['TerminateInstances without the tag condition', untaggedDestruction, editSid('Cleanup', 'TerminateHelper', (st) => delete st.Condition)],
  ['SendCommand on any document', sendCommandScope, editSid('InjectKey', 'SendInjectCommand', (st) => (st.Resource = 'arn:aws:ssm:*:*:document/*'))],
  ['SendCommand on any instance', sendCommandScope, editSid('InjectKey', 'SendToHelperOnly', (st) => delete st.Condition)],
  ['PutParameter on every parameter', parameterWrites, editSid('InjectKey', 'KeyParameter', (st) => (st.Resource = 'arn:aws:ssm:us-east-1:123456789012:parameter/*'))],
  ['kms:Decrypt for inject-key', keyReadBack, addStatement('InjectKey', { Effect: 'Allow', Action: 'kms:Decrypt', Resource: 'arn:aws:kms:us-east-1:123456789012:key/x' })],
  [
    'kms:Decrypt through Systems Manager',
    keyReadBack,
    addStatement('Restore', { Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*', Condition: { StringEquals: { 'kms:ViaService': 'ssm.us-east-1.amazonaws.com' } } }),
  ],
  ['EBS key use without kms:ViaService', kmsUse, editSid('StartInstance', 'EbsEncryptionKeyUse', (st) => delete st.Condition)],
  ['kms:CreateGrant not limited to EC2', kmsUse, editSid('AttachToHelper', 'EbsEncryptionGrant', (st) => delete (st.Condition as Record<string, unknown>).StringEquals)],
  ['EBS encryption missing for launch-helper', ebsEncryptionRoles, editSid('LaunchHelper', 'EbsEncryptionKeyUse', (st) => (st.Action = ['kms:Decrypt']))],
  [
    'EBS encryption for cleanup, which attaches and starts nothing',
    ebsEncryptionRoles,
    addStatement('Cleanup', { Effect: 'Allow', Action: 'kms:ReEncryptTo', Resource: '*', Condition: { StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['ec2.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } } } }),
  ],
  ['PassRole on any role', passRole, addStatement('LaunchHelper', { Effect: 'Allow', Action: 'iam:PassRole', Resource: '*' })],
  ['the automation role passing itself to another service', passRole, editSid('Automation', 'PassSelfToRestore', (st) => (st.Condition = { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } }))],
  ['InvokeFunction on any function', invokeScope, addStatement('Automation', { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: 'arn:aws:lambda:*:*:function:*' })],
];

test.each(MUTATIONS)('the rule catches: %s', (_name, rule, mutate) => {
  const broken = JSON.parse(JSON.stringify(t)) as Template;
  mutate(broken);
  expect(rule(broken).length).toBeGreaterThan(0);
});

test('the automation role is assumable only by Systems Manager of this account, and its only writes start the restore runbook', () => {
  const automation = rolesAssumedBy(t, 'ssm.amazonaws.com')[0];
  const trust = JSON.stringify(t.Resources[automation].Properties?.AssumeRolePolicyDocument);
  expect(trust).toContain('aws:SourceAccount');
  expect(trust).toContain('automation-execution/*');
  // The restore runbook: the Automation document other than the main one (named by its Name).
  const automationDocs = resourcesOfType(t, 'AWS::SSM::Document').filter((id) => t.Resources[id].Properties?.DocumentType === 'Automation');
  const names = automationDocs.map((id) => render(t.Resources[id].Properties?.Name));
  const own = allowsOf(t).filter((s) => s.roles.includes(automation));
  const writes = own.flatMap((s) => s.actions.filter((a) => !READ.test(a) && a !== 'lambda:InvokeFunction').map((a) => ({ a, s })));
  for (const { a, s } of writes) {
    if (a === 'ssm:StartAutomationExecution') {
      // one document only, and not the main runbook (a run cannot start another reset): its
      // document and automation-definition, and automation-execution/* (AWS's example policy)
      const docs = s.resources.filter((r) => !/:automation-execution\/\*$/.test(r));
      expect(docs).toHaveLength(s.resources.length - 1);
      for (const r of docs) {
        const m = /:ssm:[^:]*:[^:]*:(?:automation-definition\/([^:]+):\*|document\/([^:/]+))$/.exec(r);
        const name = m?.[1] ?? m?.[2];
        expect(names).toContain(name);
        expect(name).not.toBe(names.find((n) => !n.endsWith('-Restore')));
        // the restore runbook, or RevokeKey's per-instance runbook (its fan-out, issue 14)
        expect(name).toMatch(/-Restore$|-Instance$/);
      }
    } else {
      // the only other write: passing itself to Systems Manager (the passRole rule above)
      expect({ a, sid: s.sid, condition: s.condition }).toEqual({ a: 'iam:PassRole', sid: s.sid, condition: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } } });
    }
  }
});

test('every step function has its own role, with no managed policy', () => {
  const roles = resourcesOfType(t, 'AWS::Lambda::Function').map((id) => JSON.stringify(t.Resources[id].Properties?.Role));
  expect(new Set(roles).size).toBe(roles.length);
  for (const id of resourcesOfType(t, 'AWS::IAM::Role')) {
    const p = t.Resources[id].Properties ?? {};
    if (JSON.stringify(p.AssumeRolePolicyDocument).includes('lambda.amazonaws.com')) {
      expect({ id, managed: p.ManagedPolicyArns ?? [] }).toEqual({ id, managed: [] });
    }
  }
});

test('no function carries a secret in its environment: only the documented variables, each an ARN, a name or a path', () => {
  const allowed: Record<string, RegExp> = {
    NODE_OPTIONS: /^--enable-source-maps$/,
    KEY_ID: /^\$\{[A-Za-z0-9]+\.Arn\}$/,
    INJECT_DOCUMENT_NAME: /^\$\{Ref\.[A-Za-z0-9]+\}$/,
    REVOKE_DOCUMENT_NAME: /^\$\{Ref\.[A-Za-z0-9]+\}$/,
    HELPER_INSTANCE_PROFILE_ARN: /^\$\{[A-Za-z0-9]+\.Arn\}$/,
    HELPER_AMI_PARAMETER_PREFIX: /^\/aws\/service\/ami-amazon-linux-latest\/[a-z0-9-]+$/,
    WINDOWS_HELPER_AMI_PARAMETER: /^\/aws\/service\/canonical\/ubuntu\/server\/[0-9.]+\/stable\/current\/\{arch\}\/hvm\/ebs-gp3\/ami-id$/,
    WINDOWS_DOCUMENT_NAME: /^\$\{Ref\.[A-Za-z0-9]+\}$/,
    AWS_NODEJS_CONNECTION_REUSE_ENABLED: /^1$/,
  };
  const bad: string[] = [];
  for (const id of resourcesOfType(t, 'AWS::Lambda::Function')) {
    const vars = ((t.Resources[id].Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(vars)) {
      const ok = allowed[k];
      if (!ok || !ok.test(render(v))) bad.push(`${id} ${k}=${render(v)}`);
    }
  }
  expect(bad).toEqual([]);
});
