/**
 * Every Automation document of the synthesized template, checked against references nobody on
 * this project wrote:
 * - AWS's published Automation document schema, the `dist/schema.json` of the npm package
 *   aws-ssm-document-language-service (github.com/aws/amazon-ssm-document-language-service),
 *   validated by vscode-json-languageservice: the JSON Schema validator that AWS's language
 *   service itself runs this schema with (it is that package's dependency);
 * - the botocore service models shipped with the AWS CLI, for the API parameters that
 *   aws:executeAwsApi, aws:waitForAwsResourceProperty and aws:assertAwsResourceProperty pass
 *   through: the operation must exist, every parameter must be a member of its input shape, and
 *   every required member must be given.
 *
 * The schema predates some properties AWS documents; ALLOW_LIST adds each one, with the page
 * that documents it, and nothing else is added. Where the schema leaves an object open that AWS
 * documents as closed (the inputs of an action with a documented input list, a step output), the
 * test closes it, so that a misspelt input fails here rather than at CreateDocument or at run time.
 *
 * The package has no schema for Command documents (schemaVersion 2.2): its schema accepts
 * schemaVersion 0.3 only, which the last test asserts, so the day a Command schema ships this test
 * says so. Command documents are checked by their own tests (SSM Agent parser, Go regexp) and by
 * cfn-lint (test/infra/cfn-lint.test.ts lints the whole synthesized template file).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { Stack } from 'aws-cdk-lib';
import { getLanguageService, TextDocument, type JSONSchema } from 'vscode-json-languageservice';
import { synthesize } from './synth';

const SCHEMA_FILE = path.join(path.dirname(require.resolve('aws-ssm-document-language-service/package.json')), 'dist', 'schema.json');

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface AllowEntry {
  /** Where the property lives, in the document's terms. */
  readonly where: string;
  readonly property: string;
  /** The AWS documentation page that documents it. */
  readonly docs: string;
  /** What AWS documents about it, in short. */
  readonly documented: string;
  /**
   * 'addition': a property the schema lacks; `example` uses it correctly, and AWS's schema rejects
   * it. 'correction': a slip in the schema that leaves something unchecked; `example` is wrong in
   * that respect, and AWS's schema accepts it.
   */
  readonly kind: 'addition' | 'correction';
  /** A minimal Automation document that shows the entry is needed (see kind). */
  readonly example: Json;
  /** Adds the property to (a copy of) the schema. */
  readonly apply: (schema: Json) => void;
}

const paramSchema = (s: Json): Json => s.properties.parameters.patternProperties['^.*$'];
const stepSchema = (s: Json): Json => s.properties.mainSteps.items;
const actionClause = (s: Json, action: string): Json => {
  const clause = (stepSchema(s).allOf as Json[]).find((c) => c.if?.properties?.action?.const === action);
  if (!clause) throw new Error(`the schema has no clause for ${action}`);
  return clause;
};
const minimalDoc = (step: Json, parameters: Json = {}): Json => ({
  schemaVersion: '0.3',
  parameters,
  mainSteps: [{ name: 's', action: 'aws:sleep', inputs: { Duration: 'PT1S' }, ...step }],
});

/** Resource parameter types: https://docs.aws.amazon.com/systems-manager/latest/userguide/populating-input-parameters.html */
const RESOURCE_PARAMETER_TYPES = [
  'AWS::EC2::Instance::Id',
  'List<AWS::EC2::Instance::Id>',
  'AWS::S3::Bucket::Name',
  'List<AWS::S3::Bucket::Name>',
  'AWS::IAM::Role::Arn',
  'List<AWS::IAM::Role::Arn>',
];

/**
 * Every property AWS documents that the package's schema does not have. Nothing else is added.
 * (`interpolationType` is not here: AWS documents it for Command documents, schemaVersion 2.2,
 * not for Automation. `LogType` of aws:invokeLambdaFunction is already in the schema.)
 */
const ALLOW_LIST: readonly AllowEntry[] = [
  {
    where: 'step (every action)',
    property: 'onCancel',
    docs: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html',
    documented: 'shared property of all actions: the step to go to when a user cancels the automation, Abort (default) or step:<name>',
    kind: 'addition',
    example: minimalDoc({ onCancel: 'Abort' }),
    apply: (s) => {
      stepSchema(s).properties.onCancel = { type: 'string', pattern: '^(Abort|step:[A-Za-z0-9_-]+)$' };
    },
  },
  {
    where: 'parameter',
    property: `type: ${RESOURCE_PARAMETER_TYPES.join(', ')}`,
    docs: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/populating-input-parameters.html',
    documented: 'input parameter types that the console populates with matching resources, each with its documented pattern',
    kind: 'addition',
    example: minimalDoc({}, { InstanceId: { type: 'AWS::EC2::Instance::Id' } }),
    apply: (s) => {
      paramSchema(s).properties.type.enum.push(...RESOURCE_PARAMETER_TYPES);
    },
  },
  {
    where: 'aws:invokeLambdaFunction inputs',
    property: 'InputPayload',
    docs: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html',
    documented: 'a YAML or JSON object (type StringMap) passed to the handler; takes precedence over the legacy Payload',
    kind: 'addition',
    example: minimalDoc({ action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'f', InputPayload: { InstanceId: 'i-0123456789abcdef0' } } }),
    apply: (s) => {
      actionClause(s, 'aws:invokeLambdaFunction').then.properties.inputs.properties.InputPayload = { type: 'object' };
    },
  },
  {
    where: 'aws:executeAutomation inputs',
    property: 'Targets, TargetParameterName, MaxConcurrency, MaxErrors',
    docs: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-executeAutomation.html',
    documented:
      'rate control of the secondary automation, as StartAutomationExecution takes it: Targets (a list of Key/Values), ' +
      'TargetParameterName, MaxConcurrency and MaxErrors (strings); RevokeKey fans out with them',
    kind: 'addition',
    example: minimalDoc({
      action: 'aws:executeAutomation',
      inputs: { DocumentName: 'd', Targets: [{ Key: 'tag:k', Values: ['v'] }], TargetParameterName: 'InstanceId', MaxConcurrency: '5', MaxErrors: '1' },
    }),
    apply: (s) => {
      const props = actionClause(s, 'aws:executeAutomation').then.properties.inputs.properties;
      props.Targets = { type: ['array', 'string'], items: { type: 'object', properties: { Key: { type: 'string' }, Values: { type: 'array', items: { type: 'string' } } }, required: ['Key', 'Values'] } };
      props.TargetParameterName = { type: 'string' };
      props.MaxConcurrency = { type: 'string' };
      props.MaxErrors = { type: 'string' };
    },
  },
  {
    where: 'aws:waitForAwsResourceProperty',
    property: 'the action clause (its required inputs)',
    docs: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-waitForAwsResourceProperty.html',
    documented:
      'Service, Api, PropertySelector and DesiredValues are required. The schema lists the action as ' +
      'aws:waitForAwsResourceProperty but conditions its inputs on "aws:waitForAwsResourceProperties", a name ' +
      'AWS does not document, so they were never checked: the clause is pointed at the documented name',
    kind: 'correction',
    example: minimalDoc({ action: 'aws:waitForAwsResourceProperty', inputs: { Service: 'ec2', Api: 'DescribeInstances' } }),
    apply: (s) => {
      actionClause(s, 'aws:waitForAwsResourceProperties').if.properties.action.const = 'aws:waitForAwsResourceProperty';
    },
  },
];

/**
 * AWS's schema, with the allow-list added and the documented-closed objects closed: the inputs of
 * every action whose clause lists its inputs and leaves the rest open by omission (an action whose
 * inputs are an API's parameters says `additionalProperties: true` and stays open), and each step
 * output (Name, Selector, Type: https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html).
 */
function strictSchema(raw: Json, allow: readonly AllowEntry[] = ALLOW_LIST): Json {
  const s = structuredClone(raw);
  for (const entry of allow) entry.apply(s);
  for (const clause of stepSchema(s).allOf as Json[]) {
    const inputs = clause.then?.properties?.inputs;
    if (inputs?.properties && inputs.additionalProperties === undefined) inputs.additionalProperties = false;
  }
  stepSchema(s).properties.outputs.items.additionalProperties = false;
  return s;
}

const RAW_SCHEMA: Json = JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8'));
const STRICT_SCHEMA = strictSchema(RAW_SCHEMA);

/** Problems the validator finds in a document (empty: valid), each with its JSON path. */
async function validate(doc: Json, schema: Json = STRICT_SCHEMA): Promise<string[]> {
  const service = getLanguageService({});
  const text = JSON.stringify(doc, null, 1);
  const textDocument = TextDocument.create('file:///document.json', 'json', 1, text);
  const jsonDocument = service.parseJSONDocument(textDocument);
  const diagnostics = await service.doValidation(textDocument, jsonDocument, undefined, schema as JSONSchema);
  return diagnostics.map((d) => {
    const at = textDocument.offsetAt(d.range.start);
    return `${d.message} (at ${JSON.stringify(text.slice(at, at + 50))})`;
  });
}

/** CloudFormation intrinsics ({Ref}, {Fn::*}) stand for strings once deployed: an ARN here. */
function resolveIntrinsics(v: Json): Json {
  if (Array.isArray(v)) return v.map(resolveIntrinsics);
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
      return 'arn:aws:lambda:us-east-1:111122223333:function:resolved-at-deploy';
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveIntrinsics(x)]));
  }
  return v;
}

// ---- botocore: the API parameters of the API-calling actions --------------------------------

const BOTOCORE_DATA = (() => {
  const py = spawnSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`botocore (shipped with the AWS CLI) not found: ${py.stderr}`);
  return path.join(py.stdout.trim(), 'data');
})();

const models = new Map<string, Json>();
function serviceModel(service: string): Json {
  const name = service.toLowerCase();
  if (!models.has(name)) {
    const dir = path.join(BOTOCORE_DATA, name);
    if (!fs.existsSync(dir)) throw new Error(`botocore has no service "${service}"`);
    const latest = fs.readdirSync(dir).sort().pop() as string;
    const file = path.join(dir, latest, 'service-2.json');
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : zlib.gunzipSync(fs.readFileSync(`${file}.gz`)).toString('utf8');
    models.set(name, JSON.parse(text));
  }
  return models.get(name);
}

const API_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  // the inputs that belong to the action, not to the API
  'aws:executeAwsApi': ['Service', 'Api'],
  'aws:waitForAwsResourceProperty': ['Service', 'Api', 'PropertySelector', 'DesiredValues'],
  'aws:assertAwsResourceProperty': ['Service', 'Api', 'PropertySelector', 'DesiredValues'],
};

/** Problems with the API parameters of every API-calling step, against botocore's model. */
function apiProblems(doc: Json): string[] {
  const problems: string[] = [];
  for (const step of doc.mainSteps as Json[]) {
    const own = API_ACTIONS[step.action];
    if (!own) continue;
    const { Service, Api } = step.inputs;
    let model: Json;
    try {
      model = serviceModel(String(Service));
    } catch (e) {
      problems.push(`${step.name}: ${(e as Error).message}`);
      continue;
    }
    const operation = model.operations[Api];
    if (!operation) {
      problems.push(`${step.name}: ${Service} has no operation ${Api}`);
      continue;
    }
    const shape = operation.input ? model.shapes[operation.input.shape] : { members: {}, required: [] };
    const given = Object.keys(step.inputs).filter((k) => !own.includes(k));
    for (const k of given) if (!(k in shape.members)) problems.push(`${step.name}: ${Service} ${Api} has no parameter ${k}`);
    for (const k of (shape.required ?? []) as string[]) if (!given.includes(k)) problems.push(`${step.name}: ${Service} ${Api} needs ${k}`);
  }
  return problems;
}

// ---- the synthesized documents ------------------------------------------------------------

interface SynthDocument {
  readonly logicalId: string;
  readonly type: string;
  readonly content: Json;
}

let documents: SynthDocument[];
let automation: SynthDocument[];
let stacksInApp: number;
let nestedStacks: string[];

beforeAll(() => {
  const { json, stack } = synthesize({ skipBundling: true });
  stacksInApp = stack.node.root.node.findAll().filter((c) => Stack.isStack(c)).length;
  nestedStacks = Object.entries<Json>(json.Resources).filter(([, r]) => r.Type === 'AWS::CloudFormation::Stack').map(([id]) => id);
  documents = Object.entries<Json>(json.Resources)
    .filter(([, r]) => r.Type === 'AWS::SSM::Document')
    .map(([logicalId, r]) => ({ logicalId, type: r.Properties.DocumentType, content: resolveIntrinsics(r.Properties.Content) }));
  automation = documents.filter((d) => d.type === 'Automation');
});

describe('the synthesized Automation documents against AWS\'s schema', () => {
  it('finds the documents: the runbook and every other Automation document of the stack', () => {
    expect(automation.length).toBeGreaterThanOrEqual(1);
    // ResetAccess is the one with the restore step every state-changing step falls back to.
    expect(automation.some((d) => (d.content.mainSteps as Json[]).some((s) => s.name === 'restore'))).toBe(true);
    for (const d of automation) expect(d.content.schemaVersion).toBe('0.3');
  });

  it('every Automation document validates, with only the allow-listed additions', async () => {
    const problems: Record<string, string[]> = {};
    for (const d of automation) {
      const found = await validate(d.content);
      if (found.length > 0) problems[d.logicalId] = found;
    }
    expect(problems).toEqual({});
  });

  it('every API call a step makes names an operation and parameters of botocore\'s service model', () => {
    const problems = automation.flatMap((d) => apiProblems(d.content).map((p) => `${d.logicalId}: ${p}`));
    expect(problems).toEqual([]);
    // the check has something to check: the runbook waits on EC2 and SSM APIs
    const calls = automation.flatMap((d) => (d.content.mainSteps as Json[]).filter((s) => API_ACTIONS[s.action]));
    expect(calls.length).toBeGreaterThan(0);
  });

  it('cfn-lint sees everything: the app is one stack with no nested stack, so its one template file is the whole template', () => {
    // test/infra/cfn-lint.test.ts lints the stack's template file; a second stack or a nested one would escape it
    expect(stacksInApp).toBe(1);
    expect(nestedStacks).toEqual([]);
  });
});

describe('the check fails where it must', () => {
  const runbook = (): Json => structuredClone(automation.find((d) => (d.content.mainSteps as Json[]).some((s) => s.name === 'restore'))!.content);
  const firstOf = (doc: Json, action: string): Json => (doc.mainSteps as Json[]).find((s) => s.action === action);

  it.each<[string, (doc: Json) => void, RegExp]>([
    ['an unknown top-level property', (d) => { d.assumeRoles = 'x'; }, /assumeRoles is not allowed/],
    ['an unknown parameter property', (d) => { d.parameters.InstanceId.allowedPatern = '^i-'; }, /allowedPatern is not allowed/],
    ['interpolationType on an Automation parameter (a Command document property)', (d) => { d.parameters.InstanceId.interpolationType = 'ENV_VAR'; }, /interpolationType is not allowed/],
    ['an unknown step property', (d) => { d.mainSteps[1].onCancle = 'step:restore'; }, /onCancle is not allowed/],
    ['a misspelt Lambda input', (d) => { const s = firstOf(d, 'aws:invokeLambdaFunction'); s.inputs.InputPayloads = s.inputs.InputPayload; delete s.inputs.InputPayload; }, /InputPayloads is not allowed/],
    ['an unknown step output property', (d) => { firstOf(d, 'aws:invokeLambdaFunction').outputs = [{ Name: 'Out', Selector: '$.Payload', Type: 'String', Selectors: '$.Payload' }]; }, /Selectors is not allowed/],
    ['a step output of an unknown Type', (d) => { firstOf(d, 'aws:invokeLambdaFunction').outputs = [{ Name: 'Out', Selector: '$.Payload', Type: 'Json' }]; }, /Value is not accepted/],
    ['maxAttempts as a string', (d) => { d.mainSteps[0].maxAttempts = '3'; }, /Incorrect type/],
    ['an unknown parameter type', (d) => { d.parameters.InstanceId.type = 'Str'; }, /Value is not accepted/],
    ['a parameter type of a number', (d) => { d.parameters.InstanceId.type = 5; }, /Incorrect type|Value is not accepted/],
    ['an onCancel that is neither Abort nor step:<name>', (d) => { d.mainSteps[1].onCancel = 'Restore'; }, /pattern/i],
    ['a Lambda InputPayload that is a string', (d) => { firstOf(d, 'aws:invokeLambdaFunction').inputs.InputPayload = '{"a":1}'; }, /Incorrect type/],
    ['a wait without DesiredValues', (d) => { delete firstOf(d, 'aws:waitForAwsResourceProperty').inputs.DesiredValues; }, /Missing property "DesiredValues"/],
    ['an unknown action', (d) => { d.mainSteps[0].action = 'aws:invokeLambda'; }, /Value is not accepted/],
  ])('rejects %s', async (_what, mutate, message) => {
    const doc = runbook();
    mutate(doc);
    const problems = await validate(doc);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toMatch(message);
  });

  it('rejects API parameters botocore does not know, a missing required one, and an unknown operation', () => {
    const misspelt = runbook();
    const wait = firstOf(misspelt, 'aws:waitForAwsResourceProperty');
    const key = Object.keys(wait.inputs).find((k) => !API_ACTIONS['aws:waitForAwsResourceProperty'].includes(k)) as string;
    wait.inputs[key.toUpperCase()] = wait.inputs[key];
    delete wait.inputs[key];
    expect(apiProblems(misspelt).join('\n')).toMatch(new RegExp(`has no parameter ${key.toUpperCase()}`));

    const missing = minimalDoc({ action: 'aws:executeAwsApi', inputs: { Service: 'ssm', Api: 'GetParameter' } });
    expect(apiProblems(missing)).toEqual(['s: ssm GetParameter needs Name']);

    const unknown = minimalDoc({ action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'DescribeInstance' } });
    expect(apiProblems(unknown)).toEqual(['s: ec2 has no operation DescribeInstance']);
  });
});

describe('the allow-list', () => {
  it('names the AWS page for every entry', () => {
    for (const e of ALLOW_LIST) {
      expect(e.docs).toMatch(/^https:\/\/docs\.aws\.amazon\.com\/systems-manager\/latest\/userguide\/[A-Za-z-]+\.html$/);
      expect(e.documented.length).toBeGreaterThan(30);
    }
  });

  it.each(ALLOW_LIST.map((e) => [`${e.where}: ${e.property}`, e] as const))('%s: needed, and enough', async (_name, entry) => {
    // AWS's schema as published (inputs closed as above, nothing added) and with this one entry
    const published = await validate(entry.example, strictSchema(RAW_SCHEMA, []));
    const patched = await validate(entry.example, strictSchema(RAW_SCHEMA, [entry]));
    if (entry.kind === 'addition') {
      expect(published).not.toEqual([]);
      expect(patched).toEqual([]);
    } else {
      expect(published).toEqual([]);
      expect(patched).not.toEqual([]);
    }
  });

  it('the package still has no Command document schema (schemaVersion 2.2): when it has one, validate Command documents too', () => {
    expect(RAW_SCHEMA.properties.schemaVersion.enum).toEqual(['0.3']);
    // the stack does have Command documents; cfn-lint and their own tests check them
    expect(documents.some((d) => d.type === 'Command')).toBe(true);
  });
});
