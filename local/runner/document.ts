/**
 * Reading an Automation document (schemaVersion 0.3) before anything runs: its shape, the
 * fields and actions the runner implements, every `{{ }}` reference, and the execution's
 * parameters. Whatever the runner does not implement is refused here, loudly, naming the step
 * and the field, so a twin run never silently differs from Systems Manager.
 */
import { parseSelector, PathSegment, SelectorSyntaxError } from './selector';

export const ACTIONS = [
  'aws:invokeLambdaFunction',
  'aws:waitForAwsResourceProperty',
  'aws:branch',
  'aws:executeAwsApi',
  'aws:sleep',
  'aws:executeAutomation',
] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * Resource parameter types and the patterns Automation documents for them
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/populating-input-parameters.html).
 * They are Strings (List<…>: StringLists) whose values match the pattern; an empty value is
 * accepted, as in the documented example's `AutomationAssumeRole` default of ''.
 */
export const RESOURCE_TYPES: Record<string, { base: 'String' | 'StringList'; pattern: RegExp }> = {
  'AWS::EC2::Instance::Id': { base: 'String', pattern: /^m?i-([a-z0-9]{8}|[a-z0-9]{17})$/ },
  'List<AWS::EC2::Instance::Id>': { base: 'StringList', pattern: /^m?i-([a-z0-9]{8}|[a-z0-9]{17})$/ },
  'AWS::S3::Bucket::Name': { base: 'String', pattern: /^[0-9a-z][a-z0-9\-.]{3,63}$/ },
  'List<AWS::S3::Bucket::Name>': { base: 'StringList', pattern: /^[0-9a-z][a-z0-9\-.]{3,63}$/ },
  'AWS::IAM::Role::Arn': { base: 'String', pattern: /^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):iam::[0-9]{12}:role\/.*$/ },
  'List<AWS::IAM::Role::Arn>': { base: 'StringList', pattern: /^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):iam::[0-9]{12}:role\/.*$/ },
};

export const PARAMETER_TYPES = ['String', 'StringList', 'Boolean', 'Integer', 'MapList', 'StringMap', ...Object.keys(RESOURCE_TYPES)] as const;
export type ParameterType = 'String' | 'StringList' | 'Boolean' | 'Integer' | 'MapList' | 'StringMap' | keyof typeof RESOURCE_TYPES;

/** The value type of a parameter type (a resource type's base). */
export function baseType(t: ParameterType): 'String' | 'StringList' | 'Boolean' | 'Integer' | 'MapList' | 'StringMap' {
  const r = RESOURCE_TYPES[t];
  return r ? r.base : (t as 'String' | 'StringList' | 'Boolean' | 'Integer' | 'MapList' | 'StringMap');
}

export const OUTPUT_TYPES = ['String', 'Integer', 'Boolean', 'StringList', 'StringMap', 'MapList'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** Variables of the form `{{ namespace:NAME }}` that the runner provides. */
export const SYSTEM_VARIABLES = [
  'automation:EXECUTION_ID',
  'global:ACCOUNT_ID',
  'global:REGION',
  'global:AWS_PARTITION',
  'global:DATE',
  'global:DATE_TIME',
] as const;

/** The documented outputs of aws:invokeLambdaFunction (automation-action-lamb.html, "Output"). */
export const LAMBDA_OUTPUTS = ['StatusCode', 'FunctionError', 'LogResult', 'Payload'];

/**
 * Every Automation parameter value and every step output value is an `AutomationParameterValue`:
 * a string of at most 512 characters (the SSM API model, botocore
 * data/ssm/2014-11-06/service-2.json, shapes AutomationParameterValue and StepExecution.Outputs).
 */
export const MAX_AUTOMATION_VALUE_CHARS = 512;

/** Outputs every step of an action has without declaring them. */
export const BUILT_IN_OUTPUTS: Record<Action, readonly string[]> = {
  'aws:invokeLambdaFunction': ['Payload', 'StatusCode'],
  'aws:waitForAwsResourceProperty': [],
  'aws:branch': [],
  'aws:executeAwsApi': [],
  'aws:sleep': [],
  // "Output": ExecutionId, Status, Output (the secondary automation's outputs):
  // https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-executeAutomation.html
  'aws:executeAutomation': ['ExecutionId', 'Status', 'Output'],
};

/**
 * The inputs of aws:executeAutomation the twin implements (automation-action-executeAutomation.html):
 * DocumentName (required), DocumentVersion, RuntimeParameters, and rate control with Targets,
 * TargetParameterName, MaxConcurrency, MaxErrors. TargetMaps, TargetLocations and Tags are refused.
 */
export const EXECUTE_AUTOMATION_INPUTS = ['DocumentName', 'DocumentVersion', 'RuntimeParameters', 'Targets', 'TargetParameterName', 'MaxConcurrency', 'MaxErrors'];

export interface ParameterSpec {
  type: ParameterType;
  description?: string;
  default?: unknown;
  allowedValues?: unknown[];
  allowedPattern?: string;
  /** StringList and MapList: fewest and most items. */
  minItems?: number;
  maxItems?: number;
  /** String and StringList: most characters per value. */
  maxChars?: number;
  /** Console rendering only (textarea, textfield); no effect on values. */
  displayType?: string;
}

export interface OutputSpec {
  Name: string;
  Selector: string;
  Type: OutputType;
  path: PathSegment[];
}

export interface StepSpec {
  name: string;
  action: Action;
  description?: string;
  inputs: Record<string, unknown>;
  outputs: OutputSpec[];
  nextStep?: string;
  isEnd: boolean;
  onFailure: string;
  onCancel: string;
  maxAttempts: number;
  timeoutSeconds?: number;
  /** As written; undefined means the documented default (true, false when onFailure is Continue). */
  isCritical?: boolean;
}

export interface ParsedDocument {
  description?: string;
  assumeRole?: unknown;
  parameters: Record<string, ParameterSpec>;
  steps: StepSpec[];
  stepIndex: Map<string, number>;
  outputs: string[];
}

/** The document uses something the runner does not implement, or is malformed. */
export class UnsupportedDocument extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedDocument';
  }
}

/** The execution's parameters do not satisfy the document (StartAutomationExecution would refuse). */
export class InvalidAutomationExecutionParameters extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(`Parameter ${parameter}: ${message}`);
    this.name = 'InvalidAutomationExecutionParameters';
  }
}

const DOCUMENT_FIELDS = ['schemaVersion', 'description', 'assumeRole', 'parameters', 'mainSteps', 'outputs'];
const PARAMETER_FIELDS = ['type', 'description', 'default', 'allowedValues', 'allowedPattern', 'minItems', 'maxItems', 'maxChars', 'displayType'];
const STEP_FIELDS = [
  'name',
  'action',
  'description',
  'inputs',
  'outputs',
  'nextStep',
  'isEnd',
  'onFailure',
  'onCancel',
  'maxAttempts',
  'timeoutSeconds',
  'isCritical',
];
const OUTPUT_FIELDS = ['Name', 'Selector', 'Type'];
export const COMPARISON_OPERATORS = [
  'StringEquals',
  'EqualsIgnoreCase',
  'StartsWith',
  'EndsWith',
  'Contains',
  'NumericEquals',
  'NumericGreater',
  'NumericLesser',
  'NumericGreaterOrEquals',
  'NumericLesserOrEquals',
  'BooleanEquals',
];
const LOGICAL_OPERATORS = ['Not', 'And', 'Or'];

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A CloudFormation intrinsic as it appears in a synthesized template ({"Ref": …}, {"Fn::GetAtt": …}). */
export function isIntrinsic(v: unknown): boolean {
  if (!isObject(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'));
}

const VARIABLE = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** Every `{{ … }}` reference in any string inside v (keys excluded). */
export function findReferences(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') {
    for (const m of v.matchAll(VARIABLE)) out.push(m[1]);
  } else if (Array.isArray(v)) {
    for (const x of v) findReferences(x, out);
  } else if (isObject(v)) {
    for (const x of Object.values(v)) findReferences(x, out);
  }
  return out;
}

/** The whole string is one reference: its value keeps its type. */
export function wholeReference(s: string): string | undefined {
  const m = /^\{\{\s*([^{}]*?)\s*\}\}$/.exec(s);
  return m ? m[1] : undefined;
}

export { VARIABLE as VARIABLE_PATTERN };

function refuse(where: string, message: string): never {
  throw new UnsupportedDocument(`${where}: ${message}`);
}

function checkFields(where: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      refuse(where, `field "${k}" is not implemented by the twin's runner (it implements: ${allowed.join(', ')})`);
    }
  }
}

/**
 * Parses and checks a document. Throws UnsupportedDocument naming the step and field for
 * anything not implemented or inconsistent (unknown step targets, unresolvable references).
 */
export function parseDocument(doc: unknown): ParsedDocument {
  if (!isObject(doc)) refuse('document', 'must be an object (the parsed Content of AWS::SSM::Document)');
  checkFields('document', doc, DOCUMENT_FIELDS);
  if (doc.schemaVersion !== '0.3') refuse('document', `schemaVersion must be "0.3", got ${JSON.stringify(doc.schemaVersion)}`);
  if (!Array.isArray(doc.mainSteps) || doc.mainSteps.length === 0) refuse('document', 'mainSteps must be a non-empty list');

  const parameters: Record<string, ParameterSpec> = {};
  if (doc.parameters !== undefined) {
    if (!isObject(doc.parameters)) refuse('document', 'parameters must be a map');
    for (const [name, spec] of Object.entries(doc.parameters)) {
      const where = `parameter ${name}`;
      if (!isObject(spec)) refuse(where, 'must be a map');
      checkFields(where, spec, PARAMETER_FIELDS);
      if (!PARAMETER_TYPES.includes(spec.type as ParameterType)) {
        refuse(where, `type ${JSON.stringify(spec.type)} is not one of ${PARAMETER_TYPES.join(', ')}`);
      }
      if (spec.allowedValues !== undefined && !Array.isArray(spec.allowedValues)) refuse(where, 'allowedValues must be a list');
      if (spec.allowedPattern !== undefined) {
        if (typeof spec.allowedPattern !== 'string') refuse(where, 'allowedPattern must be a string');
        try {
          new RegExp(spec.allowedPattern);
        } catch (e) {
          refuse(where, `allowedPattern is not a valid regular expression: ${(e as Error).message}`);
        }
      }
      for (const f of ['minItems', 'maxItems', 'maxChars'] as const) {
        if (spec[f] !== undefined && !(Number.isInteger(spec[f]) && (spec[f] as number) >= 0)) refuse(where, `${f} must be an integer ≥ 0`);
      }
      const base = baseType(spec.type as ParameterType);
      if ((spec.minItems !== undefined || spec.maxItems !== undefined) && !['StringList', 'MapList'].includes(base)) {
        refuse(where, 'minItems and maxItems apply to StringList and MapList only');
      }
      if (spec.maxChars !== undefined && !['String', 'StringList'].includes(base)) refuse(where, 'maxChars applies to String and StringList only');
      if (spec.displayType !== undefined && !['textarea', 'textfield'].includes(spec.displayType as string)) {
        refuse(where, `displayType ${JSON.stringify(spec.displayType)} is not textarea or textfield`);
      }
      parameters[name] = spec as unknown as ParameterSpec;
    }
  }

  const stepIndex = new Map<string, number>();
  doc.mainSteps.forEach((s: unknown, i: number) => {
    if (!isObject(s) || typeof s.name !== 'string' || s.name === '') refuse(`mainSteps[${i}]`, 'needs a name');
    if (stepIndex.has(s.name)) refuse(`step ${s.name}`, 'the name is used twice');
    stepIndex.set(s.name, i);
  });

  const steps = (doc.mainSteps as Record<string, unknown>[]).map((s) => parseStep(s, stepIndex));

  const outputs: string[] = [];
  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs)) refuse('document', 'outputs must be a list of "step.Output"');
    for (const o of doc.outputs) {
      if (typeof o !== 'string') refuse('document outputs', `${JSON.stringify(o)} is not a string`);
      outputs.push(o);
    }
  }

  const parsed: ParsedDocument = {
    description: typeof doc.description === 'string' ? doc.description : undefined,
    assumeRole: doc.assumeRole,
    parameters,
    steps,
    stepIndex,
    outputs,
  };

  // Every reference must name a parameter, a step output or a known variable.
  for (const step of steps) {
    for (const ref of findReferences(step.inputs)) checkReference(parsed, `step ${step.name}`, ref);
  }
  for (const ref of findReferences(doc.assumeRole)) checkReference(parsed, 'assumeRole', ref);
  for (const o of outputs) checkReference(parsed, 'document outputs', o.replace(/^\{\{\s*|\s*\}\}$/g, ''));
  return parsed;
}

export function checkReference(doc: ParsedDocument, where: string, ref: string): void {
  if (ref.includes(':')) {
    if (!(SYSTEM_VARIABLES as readonly string[]).includes(ref)) {
      refuse(where, `variable {{ ${ref} }} is not implemented (known: ${SYSTEM_VARIABLES.join(', ')})`);
    }
    return;
  }
  if (ref.includes('.')) {
    const [stepName, outputName, ...rest] = ref.split('.');
    const i = doc.stepIndex.get(stepName);
    if (i === undefined || rest.length > 0) refuse(where, `{{ ${ref} }} names no step output (no step "${stepName}")`);
    const step = doc.steps[i];
    const names = [...BUILT_IN_OUTPUTS[step.action], ...step.outputs.map((o) => o.Name)];
    if (!names.includes(outputName)) {
      refuse(where, `{{ ${ref} }}: step ${stepName} has no output "${outputName}" (it has: ${names.join(', ') || 'none'})`);
    }
    return;
  }
  if (!(ref in doc.parameters)) refuse(where, `{{ ${ref} }} is neither a parameter, a step output nor a variable`);
}

function stepTarget(where: string, field: string, value: unknown, stepIndex: Map<string, number>): string {
  if (typeof value !== 'string' || !stepIndex.has(value)) {
    refuse(where, `${field} ${JSON.stringify(value)} is not a step of this document`);
  }
  return value;
}

function routing(where: string, field: string, value: unknown, allowed: string[], stepIndex: Map<string, number>): string {
  if (value === undefined) return 'Abort';
  if (typeof value === 'string' && allowed.includes(value)) return value;
  if (typeof value === 'string' && value.startsWith('step:')) {
    stepTarget(where, field, value.slice(5), stepIndex);
    return value;
  }
  return refuse(where, `${field} must be ${allowed.join(', ')} or step:<name>, got ${JSON.stringify(value)}`);
}

function parseStep(s: Record<string, unknown>, stepIndex: Map<string, number>): StepSpec {
  const name = s.name as string;
  const where = `step ${name}`;
  checkFields(where, s, STEP_FIELDS);
  if (!ACTIONS.includes(s.action as Action)) {
    refuse(where, `action ${JSON.stringify(s.action)} is not implemented by the twin's runner (it implements: ${ACTIONS.join(', ')})`);
  }
  const action = s.action as Action;
  const inputs = s.inputs ?? {};
  if (!isObject(inputs)) refuse(where, 'inputs must be a map');
  checkInputs(where, action, inputs, stepIndex);

  const outputs: OutputSpec[] = [];
  if (s.outputs !== undefined) {
    if (!Array.isArray(s.outputs)) refuse(where, 'outputs must be a list');
    if (action !== 'aws:invokeLambdaFunction' && action !== 'aws:executeAwsApi') {
      refuse(where, `outputs with a Selector are not available for ${action}`);
    }
    for (const o of s.outputs) {
      if (!isObject(o)) refuse(where, 'each output must be a map');
      checkFields(`${where} output`, o, OUTPUT_FIELDS);
      if (typeof o.Name !== 'string' || o.Name === '') refuse(where, 'an output needs a Name');
      if (typeof o.Selector !== 'string') refuse(where, `output ${o.Name} needs a Selector`);
      const type = (o.Type ?? 'String') as OutputType;
      if (!OUTPUT_TYPES.includes(type)) refuse(where, `output ${o.Name} Type ${JSON.stringify(o.Type)} is not one of ${OUTPUT_TYPES.join(', ')}`);
      let path: PathSegment[];
      try {
        path = parseSelector(o.Selector);
      } catch (e) {
        if (e instanceof SelectorSyntaxError) refuse(where, `output ${o.Name}: ${e.message}`);
        throw e;
      }
      if (outputs.some((x) => x.Name === o.Name)) refuse(where, `output ${o.Name} is declared twice`);
      // AWS documents the outputs of aws:invokeLambdaFunction as StatusCode, FunctionError,
      // LogResult and Payload ("the JSON representation of the object returned by the Lambda
      // function"), and shows no selector into Payload for this action (only for
      // aws:executeScript): https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html
      // A selector such as $.Payload.Field is therefore refused, not guessed.
      if (action === 'aws:invokeLambdaFunction' && (path.length !== 1 || !LAMBDA_OUTPUTS.includes(String(path[0])))) {
        refuse(
          where,
          `output ${o.Name}: Selector ${o.Selector} is not documented for aws:invokeLambdaFunction ` +
            `(its documented outputs: ${LAMBDA_OUTPUTS.map((x) => `$.${x}`).join(', ')}; none selects inside Payload)`,
        );
      }
      outputs.push({ Name: o.Name, Selector: o.Selector, Type: type, path });
    }
  }

  if (s.nextStep !== undefined) stepTarget(where, 'nextStep', s.nextStep, stepIndex);
  for (const f of ['isEnd', 'isCritical'] as const) {
    if (s[f] !== undefined && typeof s[f] !== 'boolean') refuse(where, `${f} must be true or false`);
  }
  if (s.maxAttempts !== undefined && !(Number.isInteger(s.maxAttempts) && (s.maxAttempts as number) >= 1)) {
    refuse(where, 'maxAttempts must be an integer ≥ 1');
  }
  if (s.timeoutSeconds !== undefined && !(typeof s.timeoutSeconds === 'number' && s.timeoutSeconds > 0)) {
    refuse(where, 'timeoutSeconds must be a number > 0');
  }
  if (s.description !== undefined && typeof s.description !== 'string') refuse(where, 'description must be a string');

  return {
    name,
    action,
    description: s.description as string | undefined,
    inputs,
    outputs,
    nextStep: s.nextStep as string | undefined,
    isEnd: (s.isEnd as boolean | undefined) ?? false,
    onFailure: routing(where, 'onFailure', s.onFailure, ['Abort', 'Continue'], stepIndex),
    onCancel: routing(where, 'onCancel', s.onCancel, ['Abort'], stepIndex),
    maxAttempts: (s.maxAttempts as number | undefined) ?? 1,
    timeoutSeconds: s.timeoutSeconds as number | undefined,
    isCritical: s.isCritical as boolean | undefined,
  };
}

function requireInput(where: string, inputs: Record<string, unknown>, name: string): void {
  if (inputs[name] === undefined) refuse(where, `inputs.${name} is required`);
}

function checkInputs(where: string, action: Action, inputs: Record<string, unknown>, stepIndex: Map<string, number>): void {
  switch (action) {
    case 'aws:invokeLambdaFunction': {
      checkFields(`${where} inputs`, inputs, ['FunctionName', 'InputPayload', 'Payload', 'InvocationType', 'LogType']);
      requireInput(where, inputs, 'FunctionName');
      if (inputs.InvocationType !== undefined && inputs.InvocationType !== 'RequestResponse') {
        refuse(where, `InvocationType ${JSON.stringify(inputs.InvocationType)} is not implemented (only RequestResponse)`);
      }
      // LogType: valid values None | Tail (automation-action-lamb.html). The twin has no
      // CloudWatch tail to return, so only None runs here; the runbook sets it explicitly.
      if (inputs.LogType !== undefined && inputs.LogType !== 'None') {
        refuse(where, `LogType ${JSON.stringify(inputs.LogType)} is not implemented (only None; AWS documents None | Tail)`);
      }
      if (inputs.InputPayload !== undefined && inputs.Payload !== undefined) refuse(where, 'give InputPayload or Payload, not both');
      if (inputs.InputPayload !== undefined && !isObject(inputs.InputPayload)) refuse(where, 'inputs.InputPayload must be a map');
      if (inputs.Payload !== undefined && typeof inputs.Payload !== 'string') refuse(where, 'inputs.Payload must be a JSON string');
      return;
    }
    case 'aws:executeAwsApi':
    case 'aws:waitForAwsResourceProperty': {
      requireInput(where, inputs, 'Service');
      requireInput(where, inputs, 'Api');
      if (typeof inputs.Service !== 'string' || typeof inputs.Api !== 'string') refuse(where, 'Service and Api must be strings');
      if (action === 'aws:waitForAwsResourceProperty') {
        requireInput(where, inputs, 'PropertySelector');
        requireInput(where, inputs, 'DesiredValues');
        if (typeof inputs.PropertySelector !== 'string') refuse(where, 'PropertySelector must be a string');
        try {
          parseSelector(inputs.PropertySelector);
        } catch (e) {
          refuse(where, `PropertySelector: ${(e as Error).message}`);
        }
        if (!Array.isArray(inputs.DesiredValues) || inputs.DesiredValues.length === 0) refuse(where, 'DesiredValues must be a non-empty list');
      }
      return;
    }
    case 'aws:branch': {
      checkFields(`${where} inputs`, inputs, ['Choices', 'Default']);
      if (!Array.isArray(inputs.Choices) || inputs.Choices.length === 0) refuse(where, 'inputs.Choices must be a non-empty list');
      inputs.Choices.forEach((c: unknown, i: number) => {
        if (!isObject(c)) refuse(where, `Choices[${i}] must be a map`);
        stepTarget(`${where} Choices[${i}]`, 'NextStep', c.NextStep, stepIndex);
        const { NextStep: _next, ...condition } = c;
        checkCondition(`${where} Choices[${i}]`, condition);
      });
      if (inputs.Default !== undefined) stepTarget(where, 'Default', inputs.Default, stepIndex);
      return;
    }
    case 'aws:executeAutomation': {
      checkFields(`${where} inputs`, inputs, EXECUTE_AUTOMATION_INPUTS);
      requireInput(where, inputs, 'DocumentName');
      if (typeof inputs.DocumentName !== 'string') refuse(where, 'DocumentName must be a string');
      if (inputs.RuntimeParameters !== undefined && !isObject(inputs.RuntimeParameters)) refuse(where, 'RuntimeParameters must be a map');
      if ((inputs.Targets === undefined) !== (inputs.TargetParameterName === undefined)) {
        // As StartAutomationExecution: "Required if you specify targets" / "Required if you specify TargetParameterName".
        refuse(where, 'Targets and TargetParameterName go together');
      }
      if (inputs.Targets !== undefined && !Array.isArray(inputs.Targets)) refuse(where, 'Targets must be a list');
      return;
    }
    case 'aws:sleep': {
      checkFields(`${where} inputs`, inputs, ['Duration']);
      requireInput(where, inputs, 'Duration');
      if (typeof inputs.Duration !== 'string') refuse(where, 'Duration must be an ISO 8601 duration string');
      if (!inputs.Duration.includes('{{')) parseDuration(where, inputs.Duration);
      return;
    }
  }
}

function checkCondition(where: string, c: Record<string, unknown>): void {
  const ops = Object.keys(c).filter((k) => k !== 'Variable');
  if (ops.length !== 1) refuse(where, `a condition needs exactly one operator, got ${ops.join(', ') || 'none'}`);
  const op = ops[0];
  if (COMPARISON_OPERATORS.includes(op)) {
    if (typeof c.Variable !== 'string') refuse(where, `${op} needs a Variable`);
    return;
  }
  if (!LOGICAL_OPERATORS.includes(op)) {
    refuse(where, `choice operator ${op} is not implemented (it implements: ${[...COMPARISON_OPERATORS, ...LOGICAL_OPERATORS].join(', ')})`);
  }
  if (c.Variable !== undefined) refuse(where, `${op} takes no Variable`);
  if (op === 'Not') {
    if (!isObject(c.Not)) refuse(where, 'Not takes one condition');
    checkCondition(`${where} Not`, c.Not);
  } else {
    const list = c[op];
    if (!Array.isArray(list) || list.length === 0) refuse(where, `${op} takes a non-empty list of conditions`);
    list.forEach((x: unknown, i: number) => {
      if (!isObject(x)) refuse(where, `${op}[${i}] must be a map`);
      checkCondition(`${where} ${op}[${i}]`, x);
    });
  }
}

/** ISO 8601 duration (PnDTnHnMnS) in seconds. */
export function parseDuration(where: string, s: string): number {
  const m = /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(s);
  if (!m || s === 'P' || s.endsWith('T')) refuse(where, `Duration ${JSON.stringify(s)} is not an ISO 8601 duration such as PT30S`);
  const [d, h, min, sec] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
  return d * 86400 + h * 3600 + min * 60 + sec;
}

function describe(v: unknown): string {
  return Array.isArray(v) ? 'a list' : v === null ? 'null' : typeof v === 'object' ? 'a map' : typeof v === 'string' ? `a string ${valueShape(v)}` : `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * A rejected value is described by its length, never repeated: a parameter such as PublicKey
 * may hold a private key pasted by mistake, and error messages end up in logs and outputs.
 */
function valueShape(v: unknown): string {
  return `of ${String(v).length} characters`;
}

function coerceParameter(name: string, spec: ParameterSpec, raw: unknown): unknown {
  let v = raw;
  // StartAutomationExecution passes every value as a list of strings; accept that shape too.
  const type = baseType(spec.type);
  if (Array.isArray(v) && v.length === 1 && !['StringList', 'MapList'].includes(type)) v = v[0];
  switch (type) {
    case 'String':
      if (typeof v !== 'string') throw new InvalidAutomationExecutionParameters(name, `expected a String, got ${describe(v)}`);
      return v;
    case 'StringList':
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
        throw new InvalidAutomationExecutionParameters(name, `expected a StringList, got ${describe(v)}`);
      }
      return v;
    case 'Boolean':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
      throw new InvalidAutomationExecutionParameters(name, `expected a Boolean (true or false), got ${describe(v)}`);
    case 'Integer':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
      throw new InvalidAutomationExecutionParameters(name, `expected an Integer, got ${describe(v)}`);
    case 'MapList': {
      let list = v;
      if (typeof list === 'string') {
        try {
          list = JSON.parse(list);
        } catch {
          throw new InvalidAutomationExecutionParameters(name, 'expected a MapList (a JSON list of maps)');
        }
      }
      if (!Array.isArray(list) || !list.every(isObject)) throw new InvalidAutomationExecutionParameters(name, `expected a MapList, got ${describe(v)}`);
      return list;
    }
    case 'StringMap': {
      let map = v;
      if (typeof map === 'string') {
        try {
          map = JSON.parse(map);
        } catch {
          throw new InvalidAutomationExecutionParameters(name, 'expected a StringMap (a JSON map)');
        }
      }
      if (!isObject(map)) throw new InvalidAutomationExecutionParameters(name, `expected a StringMap, got ${describe(v)}`);
      return map;
    }
  }
}

/**
 * The execution's parameter values: given ones checked, defaults filled in, every value checked
 * against type, allowedValues and allowedPattern. Throws InvalidAutomationExecutionParameters
 * naming the parameter. `resolveIntrinsic` resolves a default that is a CloudFormation token.
 */
export function resolveParameters(
  doc: ParsedDocument,
  given: Record<string, unknown>,
  resolveIntrinsic?: (v: unknown) => unknown,
): Record<string, unknown> {
  for (const name of Object.keys(given)) {
    if (!(name in doc.parameters)) {
      throw new InvalidAutomationExecutionParameters(name, `is not a parameter of this document (it has: ${Object.keys(doc.parameters).join(', ')})`);
    }
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(doc.parameters)) {
    let raw: unknown;
    if (given[name] !== undefined) {
      raw = given[name];
    } else if (spec.default !== undefined) {
      raw = spec.default;
      if (isIntrinsic(raw)) {
        if (!resolveIntrinsic) {
          throw new InvalidAutomationExecutionParameters(
            name,
            `its default is a CloudFormation token (${JSON.stringify(raw)}); give the parameter or a resolveIntrinsic`,
          );
        }
        raw = resolveIntrinsic(raw);
      }
    } else {
      throw new InvalidAutomationExecutionParameters(name, 'is required and has no default');
    }
    if (given[name] !== undefined) {
      // StartAutomationExecution's own validation (botocore ssm service-2.json,
      // AutomationParameterValue: max 512): a longer given value never reaches the document.
      for (const item of Array.isArray(raw) ? raw : [raw]) {
        if (typeof item === 'string' && item.length > MAX_AUTOMATION_VALUE_CHARS) {
          throw new InvalidAutomationExecutionParameters(
            name,
            `a value is ${item.length} characters; StartAutomationExecution takes at most ${MAX_AUTOMATION_VALUE_CHARS} per value (AutomationParameterValue)`,
          );
        }
      }
    }
    const v = coerceParameter(name, spec, raw);
    if (Array.isArray(v)) {
      if (spec.minItems !== undefined && v.length < spec.minItems) throw new InvalidAutomationExecutionParameters(name, `has ${v.length} items, fewer than minItems ${spec.minItems}`);
      if (spec.maxItems !== undefined && v.length > spec.maxItems) throw new InvalidAutomationExecutionParameters(name, `has ${v.length} items, more than maxItems ${spec.maxItems}`);
    }
    const base = baseType(spec.type);
    const items = base === 'StringList' ? (v as string[]) : [v];
    const resource = RESOURCE_TYPES[spec.type];
    if (resource) {
      for (const item of items as string[]) {
        if (item !== '' && !resource.pattern.test(item)) {
          throw new InvalidAutomationExecutionParameters(name, `a value ${valueShape(item)} is not a valid ${spec.type} (${resource.pattern.source})`);
        }
      }
    }
    if (spec.maxChars !== undefined) {
      for (const item of items) {
        if ((item as string).length > spec.maxChars) throw new InvalidAutomationExecutionParameters(name, `a value is ${(item as string).length} characters, over maxChars ${spec.maxChars}`);
      }
    }
    for (const item of items) {
      if (spec.allowedValues && !spec.allowedValues.map(String).includes(String(item))) {
        throw new InvalidAutomationExecutionParameters(
          name,
          `a value ${valueShape(item)} is not one of the allowed values ${JSON.stringify(spec.allowedValues)}`,
        );
      }
      if (spec.allowedPattern !== undefined && (base === 'String' || base === 'StringList')) {
        if (!new RegExp(spec.allowedPattern).test(item as string)) {
          throw new InvalidAutomationExecutionParameters(name, `a value ${valueShape(item)} does not match the allowed pattern ${spec.allowedPattern}`);
        }
      }
    }
    values[name] = v;
  }
  return values;
}
