/**
 * The replay's policies and evaluator: the IAM policies of each role as synthesized, their
 * CloudFormation intrinsics resolved to the twin's account, region and names (the same names
 * local/twin.ts gives the resources it deploys into moto), and @cloud-copilot/iam-simulate as
 * the evaluator (identity policies, plus the key policy for KMS actions: a KMS key's policy
 * must allow the account for IAM policies to count,
 * https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam).
 */
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate';
import { resolveIntrinsics, type PhysicalResource } from '../../../local/cfn';
import type { CfnTemplate } from '../../../local/synth';
import type { Authorization, Context } from './request-context';

export interface Role {
  readonly logicalId: string;
  readonly arn: string;
  /** A short name for reports: the Lambda folder, or `automation` / `helper`. */
  readonly label: string;
  readonly policies: Array<{ name: string; policy: Record<string, unknown> }>;
  /** AWS managed policies attached by ARN (not evaluated here: their text is AWS's). */
  readonly managedPolicyArns: string[];
}

export interface Stack {
  readonly roles: Map<string, Role>;
  /** access key id of each caller → role logical id */
  readonly callers: Map<string, string>;
  /** KMS key ARN → its key policy (resolved) */
  readonly keyPolicies: Map<string, Record<string, unknown>>;
  /** instance profile ARN → role ARN */
  readonly profileRoles: Map<string, string>;
  /** Lambda function ARN → logical id */
  readonly functionArns: Map<string, string>;
  /** Lambda function ARN → the name of the log group it writes to */
  readonly functionLogGroups: Map<string, string>;
  readonly automationRole: string;
  /** Every named ARN of the stack (documents, keys, roles, functions). */
  readonly stackArns: Set<string>;
  /** Every Automation document of the template, resolved. */
  readonly automationDocuments: Record<string, unknown>[];
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * The template's roles and policies with every intrinsic resolved as the twin resolves them.
 * `keyArn`: the stack key as the twin created it in moto; `automationAccessKey`: the access key
 * the runner's own calls (aws:executeAwsApi, aws:waitForAwsResourceProperty) are signed with.
 */
export function loadStack(
  template: CfnTemplate,
  opts: { stackName: string; region: string; account: string; keyArn: string; automationRoleArn: string; automationAccessKey: string },
): Stack {
  const { stackName, region, account } = opts;
  const resources = new Map<string, PhysicalResource>();
  const shortName = (id: string) => `${stackName}-${id}`.slice(0, 64);
  for (const [id, r] of Object.entries(template.Resources)) {
    const name = shortName(id);
    const props = r.Properties ?? {};
    switch (r.Type) {
      case 'AWS::Lambda::Function':
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:lambda:${region}:${account}:function:${name}` } });
        break;
      case 'AWS::IAM::Role':
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:iam::${account}:role/${name}` } });
        break;
      case 'AWS::IAM::InstanceProfile':
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:iam::${account}:instance-profile/${name}` } });
        break;
      case 'AWS::KMS::Key': {
        const keyId = opts.keyArn.split('/').pop() as string;
        resources.set(id, { ref: keyId, attributes: { Arn: opts.keyArn, KeyId: keyId } });
        break;
      }
      case 'AWS::SSM::Document':
        resources.set(id, { ref: typeof props.Name === 'string' ? props.Name : name, attributes: {} });
        break;
      case 'AWS::Logs::LogGroup':
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:logs:${region}:${account}:log-group:${name}:*` } });
        break;
      default:
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:twin:${region}:${account}:${id}` } });
    }
  }
  const ctx = { region, accountId: account, stackName, resources };
  const resolve = (v: unknown) => resolveIntrinsics(v, ctx);

  const functions = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
  const roleOfFunction = new Map<string, string>();
  for (const [id, r] of functions) {
    const role = r.Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
    if (role?.['Fn::GetAtt']) roleOfFunction.set(role['Fn::GetAtt'][0], id);
  }

  const roles = new Map<string, Role>();
  const arnToRole = new Map<string, string>();
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Role') continue;
    const arn = resources.get(id)?.attributes.Arn as string;
    arnToRole.set(arn, id);
    const fn = roleOfFunction.get(id);
    const described = fn ? /^ResetAccess ([a-z-]+):/.exec(String(template.Resources[fn]?.Properties?.Description ?? ''))?.[1] : undefined;
    const trusted = JSON.stringify(r.Properties?.AssumeRolePolicyDocument ?? {});
    const label = described ?? fn ?? (arn === opts.automationRoleArn ? 'automation' : trusted.includes('ec2.amazonaws.com') ? 'helper' : id);
    const policies: Role['policies'] = [];
    for (const pol of list(r.Properties?.Policies)) {
      const p = pol as { PolicyName: string; PolicyDocument: unknown };
      policies.push({ name: `${id}/${p.PolicyName}`, policy: resolve(p.PolicyDocument) as Record<string, unknown> });
    }
    roles.set(id, { logicalId: id, arn, label, policies, managedPolicyArns: (resolve(r.Properties?.ManagedPolicyArns ?? []) as string[]) ?? [] });
  }
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    for (const ref of list(r.Properties?.Roles)) {
      const roleId = (ref as { Ref?: string }).Ref;
      const role = roleId ? roles.get(roleId) : undefined;
      if (role) role.policies.push({ name: id, policy: resolve(r.Properties?.PolicyDocument) as Record<string, unknown> });
    }
  }

  const callers = new Map<string, string>();
  for (const [roleId, fnId] of roleOfFunction) callers.set(`twin-${fnId}`, roleId);
  const automationRole = arnToRole.get(opts.automationRoleArn);
  if (!automationRole) throw new Error(`the Automation role ${opts.automationRoleArn} is not a role of the template`);
  callers.set(opts.automationAccessKey, automationRole);

  const keyPolicies = new Map<string, Record<string, unknown>>();
  const profileRoles = new Map<string, string>();
  const functionArns = new Map<string, string>();
  const functionLogGroups = new Map<string, string>();
  const stackArns = new Set<string>();
  for (const [id, r] of Object.entries(template.Resources)) {
    const attrs = resources.get(id)?.attributes ?? {};
    if (r.Type === 'AWS::KMS::Key') keyPolicies.set(attrs.Arn as string, resolve(r.Properties?.KeyPolicy) as Record<string, unknown>);
    if (r.Type === 'AWS::IAM::InstanceProfile') {
      const role = (resolve(r.Properties?.Roles ?? []) as string[])[0] as string;
      profileRoles.set(attrs.Arn as string, `arn:aws:iam::${account}:role/${role}`);
    }
    if (r.Type === 'AWS::Lambda::Function') {
      functionArns.set(attrs.Arn as string, id);
      const group = (r.Properties?.LoggingConfig as { LogGroup?: unknown } | undefined)?.LogGroup;
      functionLogGroups.set(attrs.Arn as string, group === undefined ? `/aws/lambda/${resources.get(id)?.ref}` : String(resolve(group)));
    }
    if (['AWS::KMS::Key', 'AWS::IAM::Role', 'AWS::Lambda::Function'].includes(r.Type)) stackArns.add(attrs.Arn as string);
    if (r.Type === 'AWS::SSM::Document') stackArns.add(`arn:aws:ssm:${region}:${account}:document/${resources.get(id)?.ref as string}`);
  }
  const automationDocuments = Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::SSM::Document' && r.Properties?.DocumentType === 'Automation')
    .map((r) => {
      const content = resolve(r.Properties?.Content);
      return (typeof content === 'string' ? JSON.parse(content) : content) as Record<string, unknown>;
    });
  return { roles, callers, keyPolicies, profileRoles, functionArns, functionLogGroups, automationRole, stackArns, automationDocuments };
}

/** The default key policy of a customer managed key: the account, and through it IAM policies, may use it. */
export function defaultKeyPolicy(account: string): Record<string, unknown> {
  return {
    Version: '2012-10-17',
    Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }],
  };
}

/** `arn:aws:ssm:<region>::parameter/aws/...`: a public parameter, owned by AWS. */
const PUBLIC_PARAMETER = /^arn:aws:ssm:[^:]*::parameter\/aws\//;

export type Verdict = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied' | 'Error';

/** Evaluates one authorization for a role; the resource policy is the key's for KMS actions. */
export async function evaluate(
  stack: Stack,
  roleId: string,
  a: { action: string; resource: string; context: Context },
  account: string,
): Promise<{ verdict: Verdict; detail?: string }> {
  const role = stack.roles.get(roleId);
  if (!role) return { verdict: 'Error', detail: `no role ${roleId}` };
  const roleName = role.arn.split('/').pop() as string;
  const resourcePolicy = a.action.startsWith('kms:') ? (stack.keyPolicies.get(a.resource) ?? defaultKeyPolicy(account)) : undefined;
  const simulation = {
    identityPolicies: role.policies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy } : {}),
    request: {
      action: a.action,
      principal: `arn:aws:sts::${account}:assumed-role/${roleName}/replay`,
      resource: { resource: a.resource, accountId: account },
      contextVariables: { 'aws:PrincipalArn': role.arn, 'aws:PrincipalAccount': account, ...a.context },
    },
  } as Parameters<typeof runSimulation>[0];
  if (PUBLIC_PARAMETER.test(a.resource)) {
    // A public parameter's ARN has no account (it is AWS's); the SAR's parameter ARN pattern has
    // one, so the evaluator's input check refuses it: evaluated without that check.
    return { verdict: runUnsafeSimulation(simulation, {}) };
  }
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') return { verdict: 'Error', detail: JSON.stringify(result.errors) };
  return { verdict: result.overallResult as Verdict };
}

/** One line per authorization for the report: role, action, resource, source. */
export function describe(stack: Stack, a: Authorization): string {
  const role = stack.roles.get(stack.callers.get(a.caller) ?? '')?.label ?? a.caller;
  return `${role} ${a.action} ${a.resource}${a.source === 'the call itself' ? '' : ` [${a.source.replace(/ \(https?:.*$/, '')}]`}`;
}
