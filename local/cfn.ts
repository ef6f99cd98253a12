/**
 * The few CloudFormation intrinsics a synthesized template of this app uses, resolved against
 * the resources the twin made (or named) for it: Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select
 * and the pseudo parameters. Anything else is refused by name.
 */
export interface PhysicalResource {
  /** What Ref gives. */
  readonly ref: string;
  /** Fn::GetAtt attributes (Arn, KeyId, ...). */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface ResolveContext {
  readonly region: string;
  readonly accountId: string;
  readonly stackName: string;
  readonly resources: ReadonlyMap<string, PhysicalResource>;
}

export class UnresolvableIntrinsic extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnresolvableIntrinsic';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function pseudo(name: string, ctx: ResolveContext): string | undefined {
  switch (name) {
    case 'AWS::Region':
      return ctx.region;
    case 'AWS::AccountId':
      return ctx.accountId;
    case 'AWS::Partition':
      return 'aws';
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::StackName':
      return ctx.stackName;
    case 'AWS::StackId':
      return `arn:aws:cloudformation:${ctx.region}:${ctx.accountId}:stack/${ctx.stackName}/twin`;
    case 'AWS::NoValue':
      return undefined;
    default:
      return undefined;
  }
}

function ref(name: string, ctx: ResolveContext): string {
  const p = pseudo(name, ctx);
  if (p !== undefined) return p;
  const r = ctx.resources.get(name);
  if (!r) throw new UnresolvableIntrinsic(`Ref ${name}: no such resource in the twin`);
  return r.ref;
}

function getAtt(logicalId: string, attribute: string, ctx: ResolveContext): string {
  const r = ctx.resources.get(logicalId);
  if (!r) throw new UnresolvableIntrinsic(`Fn::GetAtt ${logicalId}.${attribute}: no such resource in the twin`);
  const v = r.attributes[attribute];
  if (v === undefined) throw new UnresolvableIntrinsic(`Fn::GetAtt ${logicalId}.${attribute}: attribute not known to the twin`);
  return v;
}

/** Resolves every intrinsic inside `value` (a deep copy comes back). */
export function resolveIntrinsics(value: unknown, ctx: ResolveContext): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveIntrinsics(v, ctx));
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const k = keys[0] as string;
    const arg = value[k];
    if (k === 'Ref') return ref(String(arg), ctx);
    if (k === 'Fn::GetAtt') {
      const [id, attr] = Array.isArray(arg) ? (arg as string[]) : String(arg).split('.', 2);
      return getAtt(String(id), String(attr), ctx);
    }
    if (k === 'Fn::Join') {
      const [sep, parts] = arg as [string, unknown[]];
      return (resolveIntrinsics(parts, ctx) as unknown[]).map(String).join(sep);
    }
    if (k === 'Fn::Select') {
      const [index, list] = arg as [unknown, unknown];
      const l = resolveIntrinsics(list, ctx) as unknown[];
      return l[Number(resolveIntrinsics(index, ctx))];
    }
    if (k === 'Fn::Sub') {
      const [template, vars] = Array.isArray(arg) ? (arg as [string, Record<string, unknown>]) : [String(arg), {}];
      const resolvedVars = resolveIntrinsics(vars, ctx) as Record<string, unknown>;
      return template.replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
        if (name.startsWith('!')) return `\${${name.slice(1)}}`;
        if (name in resolvedVars) return String(resolvedVars[name]);
        if (name.includes('.') && !name.startsWith('AWS::')) {
          const [id, attr] = name.split('.', 2) as [string, string];
          return getAtt(id, attr, ctx);
        }
        return ref(name, ctx);
      });
    }
    if (k.startsWith('Fn::')) throw new UnresolvableIntrinsic(`${k} is not resolved by the twin`);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveIntrinsics(v, ctx)]));
}
