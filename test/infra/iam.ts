/** Reads IAM statements out of a synthesized template, with tokens flattened to strings. */

export interface FlatStatement {
  /** Logical id of the role the policy is attached to. */
  readonly role: string;
  readonly sid?: string;
  readonly effect: string;
  readonly actions: string[];
  readonly resources: string[];
  readonly condition?: Record<string, Record<string, unknown>>;
}

/** Renders a CloudFormation value as a string: Ref → `${Name}`, GetAtt → `${Id.Attr}`, Join joined. */
export function flatten(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('Ref' in v) {
      return `\${${String(v.Ref)}}`;
    }
    if ('Fn::GetAtt' in v) {
      return `\${${(v['Fn::GetAtt'] as string[]).join('.')}}`;
    }
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(sep);
    }
  }
  return JSON.stringify(value);
}

function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function flattenCondition(c: Record<string, Record<string, unknown>> | undefined): FlatStatement['condition'] {
  if (c === undefined) {
    return undefined;
  }
  return Object.fromEntries(
    Object.entries(c).map(([op, keys]) => [
      op,
      Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, Array.isArray(v) ? v.map(flatten) : flatten(v)])),
    ]),
  );
}

/** Every statement of every AWS::IAM::Policy in the template, one entry per role it is attached to. */
export function statements(json: Record<string, any>): FlatStatement[] {
  const out: FlatStatement[] = [];
  for (const res of Object.values<any>(json.Resources)) {
    if (res.Type !== 'AWS::IAM::Policy') {
      continue;
    }
    for (const roleRef of res.Properties.Roles as { Ref: string }[]) {
      for (const st of asArray<any>(res.Properties.PolicyDocument.Statement)) {
        out.push({
          role: roleRef.Ref,
          sid: st.Sid,
          effect: st.Effect,
          actions: asArray<string>(st.Action),
          resources: asArray<unknown>(st.Resource).map(flatten),
          condition: flattenCondition(st.Condition),
        });
      }
    }
  }
  return out;
}

/** The statements of one role. */
export function statementsOf(json: Record<string, any>, roleLogicalId: string): FlatStatement[] {
  return statements(json).filter((s) => s.role === roleLogicalId);
}

/** The ARN of a resource type as the policies spell it, e.g. `ec2Arn('instance')`. */
export function ec2ArnPattern(type: string): string {
  const account = type === 'image' || type === 'snapshot' ? '' : '${AWS::AccountId}';
  return `arn:\${AWS::Partition}:ec2:\${AWS::Region}:${account}:${type}/*`;
}

/**
 * Whether some Allow statement of `stmts` grants `action` on `resource` (exact string or '*'), and
 * what conditions it carries. Returns the matching statements.
 */
export function grants(stmts: FlatStatement[], action: string, resource?: string): FlatStatement[] {
  return stmts.filter(
    (s) =>
      s.effect === 'Allow' &&
      s.actions.includes(action) &&
      (resource === undefined || s.resources.includes(resource) || s.resources.includes('*')),
  );
}
