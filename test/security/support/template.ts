/**
 * The synthesized CloudFormation template (createApp, as `cdk synth` makes it) and a flat view
 * of its IAM statements.
 *
 * Asset bundling is skipped (context `aws:cdk:bundling-stacks: []`, what `cdk ls` uses): IAM,
 * documents and function settings do not depend on the bundles, and bundling 12 functions
 * would take a minute. The template is cached per content of lib/ and runbooks/, so the two
 * test files that need it synthesize once.
 */
import { createHash } from 'crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { REPO } from './patterns';

export type Json = Record<string, unknown>;
export interface Template {
  Resources: Record<string, { Type: string; Properties?: Json; Metadata?: Json }>;
  Outputs?: Json;
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

export function synthTemplate(): Template {
  const h = createHash('sha256');
  for (const f of [...filesUnder(join(REPO, 'lib')), ...filesUnder(join(REPO, 'runbooks')), join(REPO, 'package-lock.json')].sort()) {
    h.update(f).update(readFileSync(f));
  }
  h.update(readdirSync(join(REPO, 'lambdas')).sort().join(','));
  const cache = join(tmpdir(), `reset-access-security-template-${h.digest('hex').slice(0, 16)}.json`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8')) as Template;

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createApp } = require(join(REPO, 'lib', 'app')) as {
    createApp: (p: { outdir?: string; context?: Record<string, unknown> }) => { app: unknown; stack: import('aws-cdk-lib').Stack };
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Template: CdkTemplate } = require('aws-cdk-lib/assertions') as typeof import('aws-cdk-lib/assertions');
  const outdir = mkdtempSync(join(tmpdir(), 'sec-synth-'));
  try {
    const { stack } = createApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
    const template = CdkTemplate.fromStack(stack).toJSON() as Template;
    writeFileSync(cache, JSON.stringify(template));
    return template;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** A token-free rendering of an intrinsic (no colons inside tokens): `${Ref.X}`, `${X.Arn}`, joins flattened. */
export function render(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(render).join(',');
  if (v && typeof v === 'object') {
    const o = v as Json;
    if ('Ref' in o) return `\${Ref.${String(o.Ref).replace(/::/g, '.')}}`; // AWS::Region -> ${Ref.AWS.Region}: no colons
    if ('Fn::GetAtt' in o) {
      const [id, attr] = o['Fn::GetAtt'] as [string, string];
      return `\${${id}.${attr}}`;
    }
    if ('Fn::Join' in o) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(sep);
    }
    if ('Fn::Sub' in o) return render((o['Fn::Sub'] as unknown[] | string) instanceof Array ? (o['Fn::Sub'] as unknown[])[0] : o['Fn::Sub']);
    return JSON.stringify(o);
  }
  return String(v);
}

export interface Statement {
  /** logical ids of the roles the statement applies to */
  roles: string[];
  /** where it came from: the policy's logical id */
  policy: string;
  sid?: string;
  effect: string;
  actions: string[];
  notActions: string[];
  resources: string[];
  /** the resource values as in the template (for Ref / GetAtt checks) */
  rawResources: unknown[];
  notResources: string[];
  condition?: Record<string, Record<string, unknown>>;
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function statementsOf(doc: unknown, roles: string[], policy: string): Statement[] {
  return list((doc as Json | undefined)?.Statement).map((s) => {
    const st = s as Json;
    return {
      roles,
      policy,
      sid: st.Sid as string | undefined,
      effect: String(st.Effect),
      actions: list(st.Action).map(render),
      notActions: list(st.NotAction).map(render),
      resources: list(st.Resource).map(render),
      rawResources: list(st.Resource),
      notResources: list(st.NotResource).map(render),
      condition: st.Condition as Statement['condition'],
    };
  });
}

/** Every identity-policy statement in the template (AWS::IAM::Policy, ManagedPolicy, Role inline policies). */
export function iamStatements(t: Template): Statement[] {
  const out: Statement[] = [];
  for (const [id, r] of Object.entries(t.Resources)) {
    const p = r.Properties ?? {};
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      const roles = list(p.Roles).map((x) => String((x as Json).Ref ?? render(x)));
      out.push(...statementsOf(p.PolicyDocument, roles, id));
    }
    if (r.Type === 'AWS::IAM::Role') {
      for (const pol of list(p.Policies)) out.push(...statementsOf((pol as Json).PolicyDocument, [id], `${id}/inline`));
    }
  }
  return out;
}

export function resourcesOfType(t: Template, type: string): string[] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id]) => id);
}

/** Logical id of the role a service assumes, e.g. `ssm.amazonaws.com`. */
export function rolesAssumedBy(t: Template, service: string): string[] {
  return resourcesOfType(t, 'AWS::IAM::Role').filter((id) => {
    const doc = t.Resources[id].Properties?.AssumeRolePolicyDocument as Json | undefined;
    return list(doc?.Statement).some((s) => list(((s as Json).Principal as Json | undefined)?.Service).map(render).includes(service));
  });
}
