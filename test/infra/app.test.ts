import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Duration, Stack } from 'aws-cdk-lib';
import { createApp } from '../../lib/app';
import { loadRunbookYaml, replacePlaceholders, Runbook, UnknownPlaceholderError } from '../../lib/runbook';
import { StepFunction } from '../../lib/step-function';

// These tests build constructs without synthesizing (bundling skipped): they are about names and
// the placeholder rules, and stay fast.
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

describe('createApp', () => {
  test('defaults: ResetAccessStack, ResetAccess, ResetAccess-InjectKey, environment-agnostic', () => {
    const { stack } = createApp({ context: NO_BUNDLING });
    expect(stack.stackName).toBe('ResetAccessStack');
    expect(stack.runbook.document.name).toBe('ResetAccess');
    expect(stack.runbook.document.documentType).toBe('Automation');
    expect(stack.runbook.document.updateMethod).toBe('NewVersion');
    expect(stack.injectDocument.document.name).toBe('ResetAccess-InjectKey');
    expect(stack.injectDocument.document.documentType).toBe('Command');
    expect(stack.injectDocument.document.updateMethod).toBe('NewVersion');
    expect(stack.environment).toBe('aws://unknown-account/unknown-region');
  });

  test('context overrides the stack name and the document names', () => {
    const { app, stack } = createApp({ context: { ...NO_BUNDLING, stackName: 'ResetAccessTest', documentName: 'Team-ResetAccess' } });
    expect(stack.stackName).toBe('ResetAccessTest');
    expect(app.node.tryFindChild('ResetAccessTest')).toBe(stack);
    expect(stack.runbook.document.name).toBe('Team-ResetAccess');
    expect(stack.injectDocument.document.name).toBe('Team-ResetAccess-InjectKey');
  });

  test('a document name SSM would refuse fails at synth, naming the rule', () => {
    expect(() => createApp({ context: { ...NO_BUNDLING, documentName: 'AWS-ResetAccess' } })).toThrow(/not starting with aws/);
    expect(() => createApp({ context: { ...NO_BUNDLING, documentName: 'has space' } })).toThrow(/Invalid document name "has space"/);
    expect(() => createApp({ context: { ...NO_BUNDLING, documentName: 42 } })).toThrow(/Context documentName must be a string/);
  });

  test('synthesizes with no AWS credentials and no network', () => {
    const saved = { ...process.env };
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'reset-access-synth-'));
    try {
      for (const k of Object.keys(process.env).filter((key) => key.startsWith('AWS_'))) {
        delete process.env[k];
      }
      process.env.AWS_CONFIG_FILE = '/nonexistent/config';
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
      const { app } = createApp({ outdir, context: NO_BUNDLING });
      const assembly = app.synth();
      const artifact = assembly.getStackByName('ResetAccessStack');
      expect(artifact.environment.account).toBe('unknown-account');
      expect(artifact.template.Resources).toBeDefined();
      // No lookups: nothing was missing from the context.
      expect(assembly.manifest.missing ?? []).toEqual([]);
    } finally {
      process.env = saved;
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('runbook placeholders', () => {
  const tokens = {
    functionArns: { preflight: 'ARN-preflight', 'stop-instance': 'ARN-stop' },
    automationRoleArn: 'ROLE',
    injectDocumentName: 'DOC',
  };

  test('each kind is replaced wherever it is a whole value', () => {
    const out = replacePlaceholders(
      {
        parameters: { AutomationAssumeRole: { default: '%%AutomationRoleArn%%' } },
        mainSteps: [
          { inputs: { FunctionName: '%%FunctionArn:preflight%%' } },
          { inputs: { FunctionName: '%%FunctionArn:stop-instance%%', Doc: '%%InjectDocumentName%%', n: 3, b: true } },
        ],
      },
      tokens,
    );
    expect(out).toEqual({
      parameters: { AutomationAssumeRole: { default: 'ROLE' } },
      mainSteps: [
        { inputs: { FunctionName: 'ARN-preflight' } },
        { inputs: { FunctionName: 'ARN-stop', Doc: 'DOC', n: 3, b: true } },
      ],
    });
  });

  test.each([
    ['%%FunctionArn:no-such-step%%'],
    ['%%FunctionArn%%'],
    ['%%AutomationRoleArn:preflight%%'],
    ['%%Unknown%%'],
    ['prefix %%InjectDocumentName%%'],
  ])('%s fails, naming the placeholder and where it is', (value) => {
    expect(() => replacePlaceholders({ mainSteps: [{ inputs: { X: value } }] }, tokens)).toThrow(UnknownPlaceholderError);
    expect(() => replacePlaceholders({ mainSteps: [{ inputs: { X: value } }] }, tokens)).toThrow(/at \$\.mainSteps\[0\]\.inputs\.X/);
  });

  test('a runbook file with an unknown placeholder fails the synth', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reset-access-runbook-'));
    try {
      const file = path.join(dir, 'bad.yaml');
      fs.writeFileSync(file, "schemaVersion: '0.3'\nmainSteps:\n  - name: a\n    inputs:\n      FunctionName: '%%FunctionArn:nope%%'\n");
      expect(loadRunbookYaml(file).schemaVersion).toBe('0.3');
      expect(() => new Runbook(new Stack(), 'R', { documentName: 'X-Doc', runbookFile: file, ...tokens })).toThrow(
        /Unknown placeholder %%FunctionArn:nope%%/,
      );
      fs.writeFileSync(file, '- just\n- a list\n');
      expect(() => loadRunbookYaml(file)).toThrow(/not a YAML mapping/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('StepFunction', () => {
  test('refuses a timeout that would not end before its runbook step (over 290 s)', () => {
    expect(
      () => new StepFunction(new Stack(), 'TooSlow', { folder: 'preflight', description: 'x', timeout: Duration.seconds(300) }),
    ).toThrow(/timeout 300 s is over 290 s/);
  });
});
