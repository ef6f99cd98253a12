/**
 * The runbook lint: pure functions that list the problems of a document. lint.test.ts runs them on
 * every runbook under runbooks/ (expecting none) and on broken copies (expecting each problem).
 */
import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'yaml';

export const RUNBOOKS = path.join(__dirname, '..', '..', 'runbooks');
export const LAMBDAS = path.join(__dirname, '..', '..', 'lambdas');

export type Step = Record<string, unknown> & {
  name: string;
  action: string;
  inputs?: Record<string, unknown>;
  outputs?: { Name: string; Selector: string; Type: string }[];
  nextStep?: string;
  isEnd?: boolean;
  onFailure?: string;
  onCancel?: string;
  timeoutSeconds?: number;
  maxAttempts?: number;
};

export type Doc = Record<string, unknown> & {
  schemaVersion?: string;
  description?: string;
  assumeRole?: string;
  parameters?: Record<string, Record<string, unknown>>;
  mainSteps?: Step[];
  outputs?: string[];
};

export const AUTOMATION_ACTIONS = new Set([
  'aws:invokeLambdaFunction',
  'aws:waitForAwsResourceProperty',
  'aws:branch',
  'aws:executeAwsApi',
  // The restore runbook's wait for a cancelled execution's Lambdas to stop (waitForLambdasStopped).
  'aws:sleep',
  // The RevokeKey fleet's fan-out (automation-action-executeAutomation.html).
  'aws:executeAutomation',
]);
export const FUNCTION_PLACEHOLDER = /^%%FunctionArn:([a-z0-9-]+)%%$/;
const PLACEHOLDER = /^%%[A-Za-z]+(:[a-z0-9-]+)?%%$/;
/** Steps exempt from routing to restore: the first, and the failure and cancel paths themselves. */
const RESTORE_PATH = new Set(['restore', 'cleanupAfterRestore', 'startRestore']);
/**
 * Steps after which nothing is locked or changed, so nothing to restore: RevokeKey-Instance's report
 * of an instance preflight answered Unreachable (no lock taken).
 */
const NOTHING_TO_RESTORE = new Set(['reportUnreachable']);
/**
 * The documented outputs of aws:invokeLambdaFunction, none of them selected inside:
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html ("Output").
 */
export const LAMBDA_BUILT_IN_OUTPUTS = ['Payload', 'StatusCode'];

export function loadDoc(file: string): Doc {
  return parse(fs.readFileSync(path.join(RUNBOOKS, file), 'utf8')) as Doc;
}

/** The Lambda folder a step invokes, or undefined. */
export function lambdaFolder(step: Step): string | undefined {
  return FUNCTION_PLACEHOLDER.exec(String(step.inputs?.FunctionName ?? ''))?.[1];
}

/** Every string inside `value`, with its path. */
export function strings(value: unknown, where = '$'): { where: string; text: string }[] {
  if (typeof value === 'string') return [{ where, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${where}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => strings(v, `${where}.${k}`));
  return [];
}

export function variables(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([^}\s]+)\s*\}\}/g)].map((m) => m[1]);
}

function stepTarget(route: string | undefined): string | undefined {
  return route ? /^step:(.+)$/.exec(route)?.[1] : undefined;
}

/** Steps each step can go to next (fall-through, nextStep, branch choices, failure and cancel). */
export function successors(steps: Step[], i: number): string[] {
  const s = steps[i];
  const out: string[] = [];
  if (s.action === 'aws:branch') {
    const inputs = (s.inputs ?? {}) as { Choices?: { NextStep?: string }[]; Default?: string };
    for (const c of inputs.Choices ?? []) if (c.NextStep) out.push(c.NextStep);
    if (inputs.Default) out.push(inputs.Default);
  } else if (s.nextStep) {
    out.push(s.nextStep);
  } else if (!s.isEnd && i + 1 < steps.length) {
    out.push(steps[i + 1].name);
  }
  for (const r of [s.onFailure, s.onCancel]) {
    const t = stepTarget(r);
    if (t) out.push(t);
  }
  return out;
}

/**
 * Every problem of an Automation runbook. `outputFields` gives, per Lambda folder, the handler's
 * OUTPUT_FIELDS.
 */
export function lintAutomation(doc: Doc, outputFields: ReadonlyMap<string, readonly string[]>): string[] {
  const problems: string[] = [];
  const steps = doc.mainSteps ?? [];
  const names = steps.map((s) => s.name);
  const parameters = doc.parameters ?? {};
  const outputsOf = new Map(
    steps.map((s) => [s.name, new Set([...(s.outputs ?? []).map((o) => o.Name), ...(s.action === 'aws:invokeLambdaFunction' ? LAMBDA_BUILT_IN_OUTPUTS : [])])]),
  );
  // The restore runbook passes the execution id it restores as a parameter.
  const executionIdValue = Object.prototype.hasOwnProperty.call(parameters, 'ExecutionId') ? '{{ ExecutionId }}' : '{{ automation:EXECUTION_ID }}';

  if (doc.schemaVersion !== '0.3') problems.push(`schemaVersion is ${doc.schemaVersion}, not 0.3`);
  if (doc.assumeRole !== '{{ AutomationAssumeRole }}') problems.push('assumeRole is not {{ AutomationAssumeRole }}');
  for (const heading of ['What does this document do?', 'Input parameters', 'Output parameters']) {
    if (!String(doc.description ?? '').includes(heading)) problems.push(`description lacks '${heading}'`);
  }
  if (steps.length === 0) problems.push('no mainSteps');
  if (new Set(names).size !== names.length) problems.push('duplicate step names');

  // Parameters.
  for (const [name, p] of Object.entries(parameters)) {
    if (!p.type) problems.push(`parameter ${name}: no type`);
    if (!p.description || String(p.description).trim() === '') problems.push(`parameter ${name}: no description`);
    const pattern = p.allowedPattern as string | undefined;
    const values = p.allowedValues as string[] | undefined;
    if (!pattern && !values) problems.push(`parameter ${name}: neither allowedPattern nor allowedValues`);
    if (p.default !== undefined && !(typeof p.default === 'string' && PLACEHOLDER.test(p.default))) {
      const d = String(p.default);
      if (pattern && !new RegExp(pattern).test(d)) problems.push(`parameter ${name}: default '${d}' does not match allowedPattern`);
      if (values && !values.includes(d)) problems.push(`parameter ${name}: default '${d}' is not an allowed value`);
    }
  }

  // Variables.
  const all = [...strings(steps, '$.mainSteps'), { where: '$.assumeRole', text: String(doc.assumeRole ?? '') }];
  for (const { where, text } of all) {
    for (const v of variables(text)) {
      if (v === 'automation:EXECUTION_ID' || Object.prototype.hasOwnProperty.call(parameters, v)) continue;
      const [step, output] = v.split('.');
      if (output && outputsOf.get(step)?.has(output)) continue;
      problems.push(`${where}: {{ ${v} }} resolves to nothing`);
    }
  }
  for (const o of doc.outputs ?? []) {
    const [step, output] = o.split('.');
    if (!outputsOf.get(step)?.has(output)) problems.push(`document output ${o} names no step output`);
  }

  steps.forEach((s, i) => {
    if (!AUTOMATION_ACTIONS.has(s.action)) problems.push(`${s.name}: action ${s.action} is not allowed`);
    const inputs = s.inputs ?? {};
    const folder = lambdaFolder(s);
    if (s.action === 'aws:invokeLambdaFunction') {
      if ('Payload' in inputs) problems.push(`${s.name}: Payload instead of InputPayload`);
      const payload = inputs.InputPayload as Record<string, unknown> | undefined;
      if (!payload) problems.push(`${s.name}: no InputPayload`);
      else {
        if (payload.ExecutionId !== executionIdValue) problems.push(`${s.name}: InputPayload.ExecutionId is not ${executionIdValue}`);
        // A runbook about one instance passes it to every step (a fleet runbook has no InstanceId).
        if (doc.parameters?.InstanceId !== undefined && payload.InstanceId !== '{{ InstanceId }}') problems.push(`${s.name}: InputPayload.InstanceId is not {{ InstanceId }}`);
      }
      if (!folder) problems.push(`${s.name}: FunctionName is not a %%FunctionArn:<folder>%% placeholder`);
      else if (!outputFields.has(folder)) problems.push(`${s.name}: lambdas/${folder} exports no OUTPUT_FIELDS`);
      // LogType: None | Tail (automation-action-lamb.html); set explicitly, never left to a default.
      if (inputs.LogType !== 'None' && inputs.LogType !== 'Tail') problems.push(`${s.name}: LogType is ${String(inputs.LogType)}, not None or Tail`);
      if (typeof s.timeoutSeconds !== 'number' || s.timeoutSeconds > 300) problems.push(`${s.name}: timeoutSeconds ${s.timeoutSeconds} (a Lambda step needs ≤ 300)`);
    }
    if (s.action === 'aws:waitForAwsResourceProperty') {
      if (typeof s.timeoutSeconds !== 'number') problems.push(`${s.name}: a wait without timeoutSeconds`);
      if (!inputs.PropertySelector || !Array.isArray(inputs.DesiredValues)) problems.push(`${s.name}: a wait without PropertySelector/DesiredValues`);
    }
    for (const o of s.outputs ?? []) {
      // No selector inside a Lambda's Payload: AWS documents none for aws:invokeLambdaFunction.
      if (s.action === 'aws:invokeLambdaFunction') problems.push(`${s.name}.${o.Name}: selector ${o.Selector} on a Lambda step (AWS documents none)`);
      else if (s.action !== 'aws:executeAwsApi') problems.push(`${s.name}.${o.Name}: outputs on ${s.action}`);
      else if (!/^\$\.[A-Za-z]/.test(o.Selector)) problems.push(`${s.name}.${o.Name}: selector ${o.Selector} is not a JSONPath into the API response`);
    }
    // A runbook with a cancel path: every step after the first fails into restore (this
    // execution) and cancels into startRestore (a separate restore execution, no 2-minute limit).
    if (i > 0 && !RESTORE_PATH.has(s.name) && !NOTHING_TO_RESTORE.has(s.name) && names.includes('startRestore')) {
      if (s.onFailure !== 'step:restore') problems.push(`${s.name}: onFailure is ${s.onFailure}, not step:restore`);
      if (s.onCancel !== 'step:startRestore') problems.push(`${s.name}: onCancel is ${s.onCancel}, not step:startRestore`);
    }
    for (const r of [s.onFailure, s.onCancel]) {
      if (r && !['Abort', 'Continue'].includes(r) && !stepTarget(r)) problems.push(`${s.name}: route '${r}' is not Abort, Continue or step:<name>`);
    }
    for (const t of successors(steps, i)) if (!names.includes(t)) problems.push(`${s.name}: goes to ${t}, which does not exist`);
  });

  // Reachability from the first step.
  const seen = new Set<string>();
  const queue = names.slice(0, 1);
  while (queue.length > 0) {
    const n = queue.shift() as string;
    if (seen.has(n)) continue;
    seen.add(n);
    const i = names.indexOf(n);
    if (i >= 0) queue.push(...successors(steps, i));
  }
  for (const n of names) if (!seen.has(n)) problems.push(`${n}: unreachable`);
  if (!steps.some((s) => s.isEnd === true)) problems.push('no step has isEnd: true');
  return problems;
}

/** Every problem of a Command document (schemaVersion 2.2). */
export function lintCommand(doc: Doc): string[] {
  const problems: string[] = [];
  const parameters = doc.parameters ?? {};
  if (doc.schemaVersion !== '2.2') problems.push(`schemaVersion is ${doc.schemaVersion}, not 2.2`);
  for (const [n, p] of Object.entries(parameters)) {
    if (!p.allowedPattern && !p.allowedValues) problems.push(`parameter ${n}: neither allowedPattern nor allowedValues`);
  }
  for (const { where, text } of strings(doc.mainSteps, '$.mainSteps')) {
    for (const v of variables(text)) {
      if (!Object.prototype.hasOwnProperty.call(parameters, v)) problems.push(`${where}: {{ ${v} }} resolves to nothing`);
    }
  }
  return problems;
}

/** Imports each invoked handler and returns its OUTPUT_FIELDS, by folder. */
export async function loadOutputFields(doc: Doc): Promise<Map<string, readonly string[]>> {
  // Handlers read their environment at load: give them what the stack gives them.
  process.env.HELPER_INSTANCE_PROFILE_ARN ??= 'arn:aws:iam::123456789012:instance-profile/helper';
  process.env.HELPER_AMI_PARAMETER_PREFIX ??= '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-';
  process.env.WINDOWS_HELPER_AMI_PARAMETER ??= '/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id';
  process.env.WINDOWS_DOCUMENT_NAME ??= 'ResetAccess-WindowsReset';
  process.env.KEY_ID ??= 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
  process.env.INJECT_DOCUMENT_NAME ??= 'ResetAccess-InjectKey';
  process.env.AWS_REGION ??= 'us-east-1';
  const fields = new Map<string, readonly string[]>();
  for (const s of doc.mainSteps ?? []) {
    const folder = lambdaFolder(s);
    if (folder && !fields.has(folder)) {
      const mod = (await import(path.join(LAMBDAS, folder, 'handler'))) as { OUTPUT_FIELDS?: readonly string[] };
      if (!mod.OUTPUT_FIELDS) throw new Error(`lambdas/${folder}/handler.ts exports no OUTPUT_FIELDS`);
      fields.set(folder, mod.OUTPUT_FIELDS);
    }
  }
  return fields;
}
