/**
 * Hostile input: every parameter of both documents and every handler input, refused with a
 * clear message naming the field, before any AWS call that changes anything.
 *
 * Three layers are tested on their own, so that each would catch what the one before missed:
 * 1. the documents' allowedPattern / allowedValues (what Systems Manager refuses at start),
 *    checked with the documents' own regexes under JavaScript and Java semantics;
 * 2. the Lambdas' own validation (what reaches them if a document pattern is too loose, or if
 *    someone invokes a function directly);
 * 3. the inject-key script on the helper (test/security/inject-script.test.ts).
 */
import './support/env';
import { execFileSync } from 'child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { STEP_FOLDERS } from '../../lib/constants';
import { join } from 'path';
import { parse as parseYaml } from 'yaml';
import { asText, leaks } from './support/secrets';
import { mockHealthyTarget, mockPlanEcho, setPlanExecutionId, GOOD_EXECUTION, GOOD_INSTANCE, GOOD_SUBNET, GOOD_VOLUME } from './support/fixtures';
import { mutatingCommands, resetAll, sentCommands } from './support/mocks';
import { acceptedByType, javaVerdicts, withinMaxChars, loadDocParameters, REPO, type DocParameter } from './support/patterns';
import {
  BACKUP_ROWS,
  EXECUTION_ID_ROWS,
  FLAG_ROWS,
  GOOD_ED25519,
  GOOD_RSA,
  INSTANCE_ID_ROWS,
  INSTANCE_TYPE_ROWS,
  KEY_TYPE_ROWS,
  PRIVATE_KEYS,
  PUBLIC_KEY_ROWS,
  ROLE_ARN_ROWS,
  ROOT_ROWS,
  shellTricks,
  SUBNET_ROWS,
  USERS_ROWS,
  VOLUME_ID_ROWS,
  type Row,
} from './support/hostile';

/**
 * PublicKey rows a regular expression cannot judge (they need the decoded blob): the
 * Lambda refuses them (handler table below), and the script gets only what the Lambda sent.
 */
const NEEDS_BLOB_PARSING = new Set([
  'type differs from the blob',
  'truncated blob',
  'RSA 1024 (too weak)',
  'OpenSSH private key body behind a public key type',
  // a second key after the first is, to sshd, an inert comment; the Lambda refuses it anyway
  'two keys on one line',
]);

// ---------------------------------------------------------------------------------------------
// 1. The documents' own constraints
// ---------------------------------------------------------------------------------------------

interface DocCase {
  doc: string;
  param: string;
  label: string;
  value: string;
  expectAccepted: boolean;
}

/** An RSA 2048 public key line made by OpenSSH's own ssh-keygen: it fits Automation's 512 characters. */
function sshKeygenRsa2048(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostile-rsa-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-C', 'ops@example', '-f', join(dir, 'k')]);
    return readFileSync(join(dir, 'k.pub'), 'utf8').trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const GOOD_RSA_2048 = sshKeygenRsa2048();

const RESET_ACCESS_TABLE: Record<string, { good: string[]; hostile: Row[] }> = {
  InstanceId: { good: [GOOD_INSTANCE], hostile: INSTANCE_ID_ROWS },
  AutomationAssumeRole: { good: ['arn:aws:iam::123456789012:role/ResetAccessAutomation'], hostile: ROLE_ARN_ROWS },
  SubnetId: { good: ['CreateNewVPC', 'SelectedInstanceSubnet', GOOD_SUBNET], hostile: SUBNET_ROWS },
  HelperInstanceType: { good: ['t3.small', 'm7i-flex.large', 't4g.small'], hostile: INSTANCE_TYPE_ROWS },
  KeyType: { good: ['rsa', 'ed25519'], hostile: KEY_TYPE_ROWS },
  // Every Automation parameter value is at most 512 characters (botocore ssm service-2.json,
  // AutomationParameterValue): an RSA 4096 line (about 725) comes in through PublicKeyParameter.
  PublicKey: {
    good: ['', GOOD_ED25519, GOOD_RSA_2048],
    hostile: [
      ...PUBLIC_KEY_ROWS.filter(([l]) => !NEEDS_BLOB_PARSING.has(l)),
      ['an RSA 4096 line, over the 512 characters of an Automation parameter value', GOOD_RSA],
    ],
  },
  Users: { good: ['', 'ec2-user', 'ec2-user,ubuntu', 'root', 'svc_deploy.2'], hostile: USERS_ROWS },
  BackupMethod: { good: ['Snapshot', 'Image', 'None'], hostile: BACKUP_ROWS },
  AllowEncryptedVolume: { good: [], hostile: FLAG_ROWS },
  AllowEphemeralDataLoss: { good: [], hostile: FLAG_ROWS },
};

const INJECT_KEY_TABLE: Record<string, { good: string[]; hostile: Row[] }> = {
  VolumeId: { good: [GOOD_VOLUME, ''], hostile: VOLUME_ID_ROWS },
  // An empty PublicKey passes the pattern (the parameter has a default); the script refuses it.
  PublicKey: { good: [GOOD_ED25519, GOOD_RSA], hostile: PUBLIC_KEY_ROWS.filter(([l]) => !NEEDS_BLOB_PARSING.has(l)) },
  // A regex does not count list entries; the Lambda limits Users to 32 names.
  Users: { good: ['', 'ec2-user', 'ec2-user,ubuntu', 'root'], hostile: USERS_ROWS.filter(([l]) => l !== 'too many users') },
  Root: { good: ['', '/'], hostile: ROOT_ROWS },
};

// The revoke-key document (issue 14): the target and key parameters as inject-key's, and its own.
const GOOD_FINGERPRINT = `SHA256:${'Ab9+/'.repeat(8)}abc`;
const FINGERPRINT_ROWS: Row[] = [
  ...shellTricks(GOOD_FINGERPRINT),
  ['lower-case sha256 prefix', GOOD_FINGERPRINT.replace('SHA256', 'sha256')],
  ['base64 padding', `${GOOD_FINGERPRINT}=`],
  ['42 characters', GOOD_FINGERPRINT.slice(0, -1)],
  ['44 characters', `${GOOD_FINGERPRINT}A`],
  ['an MD5 fingerprint', 'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48'],
  ['a public key line instead', GOOD_ED25519],
  ['blank after a comma', `${GOOD_FINGERPRINT}, ${GOOD_FINGERPRINT}`],
  ['empty item', `${GOOD_FINGERPRINT},,${GOOD_FINGERPRINT}`],
  ['21 fingerprints', Array.from({ length: 21 }, () => GOOD_FINGERPRINT).join(',')],
];
const MODE_ROWS: Row[] = [
  ...shellTricks('Revoke'),
  ['empty', ''],
  ['lower case', 'revoke'],
  ['another verb', 'Delete'],
];
const REVOKE_KEY_TABLE: Record<string, { good: string[]; hostile: Row[] }> = {
  VolumeId: INJECT_KEY_TABLE.VolumeId,
  Root: INJECT_KEY_TABLE.Root,
  ReplacementKey: { good: ['', GOOD_ED25519, GOOD_RSA], hostile: PUBLIC_KEY_ROWS.filter(([l]) => !NEEDS_BLOB_PARSING.has(l)) },
  Users: { good: ['', 'ec2-user', 'ec2-user,ubuntu', 'root'], hostile: USERS_ROWS.filter(([l]) => l !== 'too many users') },
  Fingerprints: { good: [GOOD_FINGERPRINT, `${GOOD_FINGERPRINT},${GOOD_FINGERPRINT}`, Array.from({ length: 20 }, () => GOOD_FINGERPRINT).join(',')], hostile: FINGERPRINT_ROWS },
  Mode: { good: ['Audit', 'Revoke'], hostile: MODE_ROWS },
};

function docCases(doc: string, params: Record<string, DocParameter>, table: Record<string, { good: string[]; hostile: Row[] }>): DocCase[] {
  const cases: DocCase[] = [];
  for (const [param, { good, hostile }] of Object.entries(table)) {
    if (!params[param]) continue; // reported by the "declares" test
    for (const v of good) cases.push({ doc, param, label: 'good value', value: v, expectAccepted: true });
    for (const [label, value] of hostile) cases.push({ doc, param, label, value, expectAccepted: false });
  }
  return cases;
}

function loadOrEmpty(file: string): Record<string, DocParameter> {
  return existsSync(join(REPO, 'runbooks', file)) ? loadDocParameters(file) : {};
}

const resetParams = loadOrEmpty('reset-access.yaml');
const injectParams = loadOrEmpty('inject-key.yaml');
const revokeParams = loadOrEmpty('revoke-key.yaml');
const DOC_CASES = [
  ...docCases('reset-access.yaml', resetParams, RESET_ACCESS_TABLE),
  ...docCases('inject-key.yaml', injectParams, INJECT_KEY_TABLE),
  ...docCases('revoke-key.yaml', revokeParams, REVOKE_KEY_TABLE),
];

describe('document parameters refuse hostile values with their own patterns', () => {
  // Java's verdicts for every (pattern, value) in one JVM start.
  const verdicts = new Map<DocCase, { matches: boolean; find: boolean }>();
  beforeAll(() => {
    const withPattern = DOC_CASES.filter((c) => paramOf(c).allowedPattern !== undefined && acceptedByType(paramOf(c), c.value) === undefined);
    const answers = javaVerdicts(withPattern.map((c) => [paramOf(c).allowedPattern as string, c.value]));
    withPattern.forEach((c, i) => verdicts.set(c, answers[i]));
  });

  function paramOf(c: DocCase): DocParameter {
    return (c.doc === 'reset-access.yaml' ? resetParams : c.doc === 'revoke-key.yaml' ? revokeParams : injectParams)[c.param];
  }

  test.each([
    ['reset-access.yaml', resetParams, RESET_ACCESS_TABLE] as const,
    ['inject-key.yaml', injectParams, INJECT_KEY_TABLE] as const,
    ['revoke-key.yaml', revokeParams, REVOKE_KEY_TABLE] as const,
  ])('%s declares every parameter of the table, each constrained', (_doc, params, table) => {
    expect(Object.keys(params).sort()).toEqual(expect.arrayContaining(Object.keys(table).sort()));
    for (const name of Object.keys(table)) {
      const p = params[name];
      const constrained = p.allowedPattern !== undefined || p.allowedValues !== undefined || p.type === 'Boolean';
      expect({ name, constrained }).toEqual({ name, constrained: true });
      if (p.allowedPattern !== undefined) {
        // anchored at both ends, or the pattern accepts anything around a good value
        expect({ name, anchored: /^\^/.test(p.allowedPattern) && /\$$/.test(p.allowedPattern) }).toEqual({ name, anchored: true });
      }
    }
  });

  test.each([
    ['inject-key.yaml', 'loadInjectKeyDocument', injectParams],
    ['revoke-key.yaml', 'loadRevokeKeyDocument', revokeParams],
  ] as const)('%s passes every parameter as an environment variable, never into the script text', (_file, loader, params) => {
    type Loaded = { mainSteps: Array<{ action: string; inputs: { interpolationType?: string; runCommand: string[] } }> };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaders = require(join(REPO, 'lib', 'inject-key-document')) as Record<string, () => Loaded>;
    expect(Object.keys(params).length).toBeGreaterThan(3);
    const doc = loaders[loader]();
    expect(doc.mainSteps.length).toBeGreaterThan(0);
    for (const step of doc.mainSteps) {
      // ENV_VAR is a property of each parameter (AWS, sysman-doc-syntax.html); in the inputs it does nothing
      expect(step.inputs.interpolationType).toBeUndefined();
      for (const name of Object.keys(params)) expect([name, params[name].interpolationType]).toEqual([name, 'ENV_VAR']);
      // no {{ Parameter }} anywhere in the deployed script: a value is never pasted into code
      const script = step.inputs.runCommand.join('\n');
      expect(script).not.toMatch(/\{\{\s*[A-Za-z]/);
      for (const name of Object.keys(params)) expect(script).toContain(`SSM_${name}`);
    }
  });

  const rows = DOC_CASES.map((c) => [c.doc, c.param, c.expectAccepted ? 'accepts' : 'refuses', c.label, c] as const);
  test.each(rows)('%s %s %s: %s', (_d, _p, _verb, _l, c) => {
    const p = paramOf(c);
    const byType = acceptedByType(p, c.value);
    let verdict: Record<string, boolean>;
    if (byType !== undefined) {
      verdict = { allowedValuesOrType: byType };
    } else {
      const java = verdicts.get(c);
      const fits = withinMaxChars(p, c.value);
      verdict = {
        javascript: fits && new RegExp(p.allowedPattern as string).test(c.value),
        javaMatches: fits && (java?.matches ?? true),
      };
      // A search (Matcher.find) lets a '$'-anchored pattern accept one trailing line terminator.
      // That gap, and only that one, is tolerated here: the next layer refuses those values (the
      // handler table below; the script, test/security/inject-script.test.ts).
      if (!c.expectAccepted && fits && (java?.find ?? true)) {
        expect({ searchOnlyGap: c.label, endsWithLineTerminator: /[\r\n\u0085\u2028\u2029]$/.test(c.value) }).toEqual({
          searchOnlyGap: c.label,
          endsWithLineTerminator: true,
        });
      }
    }
    const expected = Object.fromEntries(Object.keys(verdict).map((k) => [k, c.expectAccepted]));
    expect(verdict).toEqual(expected);
  });
});

describe('the runbook never pastes a parameter into code', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parse } = require('yaml') as typeof import('yaml');
  const file = join(REPO, 'runbooks', 'reset-access.yaml');
  const doc = existsSync(file) ? (parse(require('fs').readFileSync(file, 'utf8')) as { mainSteps?: Array<Record<string, unknown>> }) : {};

  test('only actions that take values as data: Lambda payloads, API calls and waits, branches', () => {
    const actions = new Set((doc.mainSteps ?? []).map((st) => String(st.action)));
    expect(actions.size).toBeGreaterThan(0);
    // no aws:executeScript, aws:runCommand or aws:runShellScript: no step whose input is code.
    // aws:executeAwsApi passes its inputs as the API's request parameters (automation-action-executeAwsApi.html).
    const asData = ['aws:invokeLambdaFunction', 'aws:executeAwsApi', 'aws:waitForAwsResourceProperty', 'aws:branch'];
    expect([...actions].filter((a) => !asData.includes(a))).toEqual([]);
  });

  test('every {{ }} reference is a whole value, never spliced into a longer string', () => {
    const spliced: string[] = [];
    let seen = 0;
    const walk = (v: unknown, path: string): void => {
      if (typeof v === 'string') {
        if (v.includes('{{')) {
          seen += 1;
          if (!/^\{\{ ?[A-Za-z0-9_.:]+ ?\}\}$/.test(v)) spliced.push(`${path}: ${v}`);
        }
      } else if (Array.isArray(v)) {
        v.forEach((x, i) => walk(x, `${path}[${i}]`));
      } else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
      }
    };
    walk(doc.mainSteps, 'mainSteps');
    expect(seen).toBeGreaterThan(10);
    expect(spliced).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The Lambdas' own validation
// ---------------------------------------------------------------------------------------------

type Handler = (event: unknown) => Promise<unknown>;

/** Every step Lambda, from the one list the CDK app builds its functions from. */
export const HANDLER_FOLDERS: readonly string[] = STEP_FOLDERS;

function loadHandler(folder: string): Handler {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(join(REPO, 'lambdas', folder, 'handler')) as { handler: Handler };
  return mod.handler;
}

function handlerExists(folder: string): boolean {
  return existsSync(join(REPO, 'lambdas', folder, 'handler.ts'));
}

const VALID_PREFLIGHT: Record<string, string> = {
  ExecutionId: GOOD_EXECUTION,
  InstanceId: GOOD_INSTANCE,
  SubnetId: 'CreateNewVPC',
  HelperInstanceType: 't3.small',
  KeyType: 'rsa',
  PublicKey: '',
  Users: '',
  BackupMethod: 'Snapshot',
  AllowEncryptedVolume: 'True',
  AllowEphemeralDataLoss: 'False',
};

const PREFLIGHT_TABLE: Record<string, Row[]> = {
  ExecutionId: EXECUTION_ID_ROWS,
  InstanceId: INSTANCE_ID_ROWS,
  SubnetId: SUBNET_ROWS,
  HelperInstanceType: INSTANCE_TYPE_ROWS,
  KeyType: KEY_TYPE_ROWS,
  PublicKey: PUBLIC_KEY_ROWS,
  Users: USERS_ROWS,
  BackupMethod: BACKUP_ROWS,
  AllowEncryptedVolume: FLAG_ROWS,
  AllowEphemeralDataLoss: FLAG_ROWS,
};

/** Non-string shapes for a field (the runbook sends strings; a direct invoke may not). */
const WRONG_TYPES: Array<[string, unknown]> = [
  ['missing', undefined],
  ['null', null],
  ['a number', 42],
  ['an array', ['ec2-user']],
  ['an object', { $: 'x' }],
];

interface Outcome {
  error?: unknown;
  console: string[];
}

async function runCapturing(handler: Handler, event: unknown): Promise<Outcome> {
  const lines: string[] = [];
  const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
    jest.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(asText).join(' '));
    }),
  );
  try {
    await handler(event);
    return { console: lines };
  } catch (error) {
    return { error, console: lines };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

/** The checks every refusal must pass. */
function expectRefusedNamingField(outcome: Outcome, field: string): void {
  expect(outcome.error).toBeInstanceOf(Error);
  const err = outcome.error as Error;
  // first: no private key in the message or in anything logged (checked before any assertion
  // that would print the message, so a failing test never puts a key into the test log)
  for (const pk of PRIVATE_KEYS) {
    expect(leaks([{ source: 'error', text: asText(err) }, ...outcome.console.map((t, i) => ({ source: `console #${i}`, text: t }))], pk)).toEqual([]);
  }
  // a clear message naming the field, not a TypeError from deep inside
  expect(err.name).not.toBe('TypeError');
  expect(err.message.toLowerCase()).toContain(field.toLowerCase());
  // nothing that changes anything was sent
  expect(mutatingCommands().map((c) => `${c.service}:${c.name}`)).toEqual([]);
}

describe('preflight refuses every hostile input, naming the field, before any change', () => {
  const present = handlerExists('preflight');
  let handler: Handler;
  beforeAll(() => {
    expect(present).toBe(true);
    handler = loadHandler('preflight');
  });
  beforeEach(() => {
    resetAll();
    mockHealthyTarget();
  });

  test('positive control: the valid payload passes and takes the lock (so the mocks reach the mutating calls)', async () => {
    const outcome = await runCapturing(handler, { ...VALID_PREFLIGHT });
    expect(outcome.error).toBeUndefined();
    expect(mutatingCommands().map((c) => c.name)).toContain('PutParameter');
  });

  test.each([[''], ['x'], [42], [null], [[]], [['a']]])('a payload that is not an object (%p) is refused before any call', async (event) => {
    const outcome = await runCapturing(handler, event);
    expect(outcome.error).toBeInstanceOf(Error);
    expect(sentCommands()).toEqual([]);
  });

  const rows: Array<[string, string, string]> = [];
  for (const [field, table] of Object.entries(PREFLIGHT_TABLE)) {
    for (const [label, value] of table) rows.push([field, label, value]);
  }
  test.each(rows)('%s: %s', async (field, _label, value) => {
    const outcome = await runCapturing(handler, { ...VALID_PREFLIGHT, [field]: value });
    expectRefusedNamingField(outcome, field);
    // validation comes first: not even a read was sent
    expect(sentCommands().map((c) => c.name)).toEqual([]);
  });

  const typeRows: Array<[string, string, unknown]> = [];
  for (const field of Object.keys(PREFLIGHT_TABLE)) {
    for (const [label, value] of WRONG_TYPES) typeRows.push([field, label, value]);
  }
  test.each(typeRows)('%s %s', async (field, _label, value) => {
    const event: Record<string, unknown> = { ...VALID_PREFLIGHT, [field]: value };
    if (value === undefined) delete event[field];
    const outcome = await runCapturing(handler, event);
    expectRefusedNamingField(outcome, field);
  });
});

/**
 * Which of InstanceId and ExecutionId the runbooks send each Lambda (its steps' InputPayload in
 * runbooks/*.yaml): the RevokeKey fleet's own steps run once per fleet and get no InstanceId.
 */
function idFieldsSentTo(folder: string): string[] {
  const sent = new Set<string>();
  for (const file of readdirSync(join(REPO, 'runbooks')).filter((f) => f.endsWith('.yaml'))) {
    const doc = parseYaml(readFileSync(join(REPO, 'runbooks', file), 'utf8')) as { mainSteps?: Array<{ action?: string; inputs?: { FunctionName?: string; InputPayload?: Record<string, unknown> } }> };
    for (const step of doc.mainSteps ?? []) {
      if (step.action !== 'aws:invokeLambdaFunction' || step.inputs?.FunctionName !== `%%FunctionArn:${folder}%%`) continue;
      for (const key of Object.keys(step.inputs.InputPayload ?? {})) if (key === 'InstanceId' || key === 'ExecutionId') sent.add(key);
    }
  }
  return [...sent].sort();
}

describe.each(HANDLER_FOLDERS.filter((f) => f !== 'preflight'))('%s refuses a hostile InstanceId or ExecutionId before any change', (folder) => {
  const fields = idFieldsSentTo(folder);
  let handler: Handler;
  beforeAll(() => {
    expect(handlerExists(folder)).toBe(true);
    handler = loadHandler(folder);
  });
  beforeEach(() => {
    resetAll();
    mockHealthyTarget();
    // The plan record answers for any instance id with the execution id asked about, so only
    // the handler's own validation can stop a hostile id.
    mockPlanEcho({ phase: 'attached-to-helper' });
  });

  test('the runbooks send it its ExecutionId (and its InstanceId unless it is a fleet step)', () => {
    expect(fields).toEqual(folder.startsWith('revoke-') && folder !== 'revoke-report' ? ['ExecutionId'] : ['ExecutionId', 'InstanceId']);
  });

  const rows: Array<[string, string, string]> = [
    ...(fields.includes('InstanceId') ? INSTANCE_ID_ROWS.map(([l, v]): [string, string, string] => ['InstanceId', l, v]) : []),
    ...EXECUTION_ID_ROWS.map(([l, v]): [string, string, string] => ['ExecutionId', l, v]),
  ];
  test.each(rows)('%s: %s', async (field, _label, value) => {
    const event = { ExecutionId: GOOD_EXECUTION, InstanceId: GOOD_INSTANCE, [field]: value };
    setPlanExecutionId(event.ExecutionId);
    const outcome = await runCapturing(handler, event);
    expectRefusedNamingField(outcome, field);
  });

  test.each(fields)('%s missing', async (field) => {
    const event: Record<string, unknown> = { ExecutionId: GOOD_EXECUTION, InstanceId: GOOD_INSTANCE };
    delete event[field];
    const outcome = await runCapturing(handler, event);
    expectRefusedNamingField(outcome, field);
  });
});
