import { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { STEP_FOLDERS, StepFolder } from '../../lib/constants';
import { loadInjectKeyDocument } from '../../lib/inject-key-document';
import { statementsOf } from './iam';
import { synthesize } from './synth';

// Read together with the synthesis, so both see the same script file.
const injectKeyDocument = loadInjectKeyDocument();
const { stack, template, json } = synthesize({ skipBundling: true });
const id = (e: CfnElement): string => stack.getLogicalId(e);
const fnId = (folder: StepFolder): string => id(stack.functions.byFolder[folder].node.defaultChild as CfnElement);
const automation = json.Resources[id(stack.runbook.document)].Properties;
const command = json.Resources[id(stack.injectDocument.document)].Properties;
const steps: any[] = automation.Content.mainSteps;
const lambdaSteps = steps.filter((s) => s.action === 'aws:invokeLambdaFunction');

/** The step → Lambda folder table of docs/architecture.md. */
const STEP_TO_FOLDER: Record<string, StepFolder> = {
  preflight: 'preflight',
  stopInstance: 'stop-instance',
  launchHelper: 'launch-helper',
  backupAndDetachRoot: 'backup-and-detach',
  attachToHelper: 'attach-to-helper',
  injectKey: 'inject-key',
  releaseFromHelper: 'release-from-helper',
  reattachRoot: 'reattach-root',
  startInstance: 'start-instance',
  cleanup: 'cleanup',
  summarize: 'summarize',
  restore: 'restore',
  cleanupAfterRestore: 'cleanup',
  // The online path (issue 12): the same functions, told the method by the plan record.
  injectKeyOnline: 'inject-key',
  reportOnline: 'release-from-helper',
  cleanupOnline: 'cleanup',
  summarizeOnline: 'summarize',
  saveUserData: 'save-user-data',
  backupUserData: 'backup-and-detach',
  stopForUserData: 'stop-instance',
  setUserData: 'set-user-data',
  confirmUserData: 'confirm-user-data',
  stopAfterUserData: 'stop-instance',
  restoreUserData: 'restore-user-data',
  startAfterUserData: 'start-instance',
  cleanupUserData: 'cleanup',
  summarizeUserData: 'summarize',
  // Windows targets (issue 15).
  resetWindows: 'windows-reset',
  releaseWindows: 'windows-release',
  reattachWindowsRoot: 'reattach-root',
  startWindows: 'windows-start',
  waitForPassword: 'windows-password',
  cleanupWindows: 'cleanup',
};

describe('the Automation document', () => {
  test('named, Automation, new versions on update, schemaVersion 0.3', () => {
    template.hasResourceProperties('AWS::SSM::Document', {
      Name: 'ResetAccess',
      DocumentType: 'Automation',
      UpdateMethod: 'NewVersion',
      Content: Match.objectLike({ schemaVersion: '0.3', assumeRole: '{{ AutomationAssumeRole }}' }),
    });
    expect(typeof automation.Content.description).toBe('string');
    expect(automation.Content.description).toMatch(/What does this document do\?/);
  });

  test('no placeholder is left anywhere in the template', () => {
    // (The Command document's script legitimately holds sshd's `%%` token: look for ours.)
    const left = JSON.stringify(json).match(/%%[A-Za-z]+(:[a-z0-9-]+)?%%/g) ?? [];
    expect(left).toEqual([]);
    expect(JSON.stringify(automation.Content).match(/%%/g) ?? []).toEqual([]);
  });

  test('AutomationAssumeRole defaults to the stack\'s automation role', () => {
    expect(automation.Content.parameters.AutomationAssumeRole.default).toEqual({
      'Fn::GetAtt': [id(stack.automationRole.role.node.defaultChild as CfnElement), 'Arn'],
    });
  });

  test('every Lambda step names its function of the contract by GetAtt, and every function is used', () => {
    expect(lambdaSteps.map((s) => s.name).sort()).toEqual(Object.keys(STEP_TO_FOLDER).sort());
    for (const s of lambdaSteps) {
      expect([s.name, s.inputs.FunctionName]).toEqual([s.name, { 'Fn::GetAtt': [fnId(STEP_TO_FOLDER[s.name]), 'Arn'] }]);
    }
    const used = new Set(lambdaSteps.map((s) => s.inputs.FunctionName['Fn::GetAtt'][0]));
    // RevokeKey's own functions (issue 14) are used by its two runbooks, by GetAtt too.
    const revokeSteps = [stack.revokeRunbook, stack.revokeInstanceRunbook].flatMap(
      (r) => (json.Resources[id(r.document)].Properties.Content.mainSteps as any[]).filter((s) => s.action === 'aws:invokeLambdaFunction'),
    );
    for (const s of revokeSteps) used.add(s.inputs.FunctionName['Fn::GetAtt'][0]);
    expect(used).toEqual(new Set(STEP_FOLDERS.map(fnId)));
  });

  test('each function times out before its step does (step ≤ 300 s)', () => {
    for (const s of lambdaSteps) {
      const fnTimeout = json.Resources[fnId(STEP_TO_FOLDER[s.name])].Properties.Timeout as number;
      expect(s.timeoutSeconds).toBeLessThanOrEqual(300);
      expect([s.name, fnTimeout < s.timeoutSeconds]).toEqual([s.name, true]);
    }
  });
});

describe('document size', () => {
  // Systems Manager refuses a document over 64 KB, and the quota counts the parameter values given
  // at run time too: the Command document leaves room for a PublicKey of 8000 characters and the
  // rest; the runbook for the resolved function ARNs (longer than their GetAtt) and the inputs.
  const LIMIT = 64 * 1024;
  const size = (content: unknown): number => Buffer.byteLength(JSON.stringify(content));

  test('the Command document leaves 10 KB of its 64 KB for the parameters', () => {
    expect(size(command.Content)).toBeLessThan(LIMIT - 10 * 1024);
  });

  test('the Automation document leaves 10 KB of its 64 KB for ARNs and parameters', () => {
    expect(size(automation.Content)).toBeLessThan(LIMIT - 10 * 1024);
  });
});

/** The IAM action of an Automation step's API call (Service ssm, Api GetParameter → ssm:GetParameter). */
const iamActionOf = (s: { inputs: { Service: string; Api: string } }): string => `${s.inputs.Service}:${s.inputs.Api}`;

describe('the restore runbook (the cancel path starts it)', () => {
  const restore = json.Resources[id(stack.restoreRunbook.document)].Properties;

  test('is named <documentName>-Restore, and the cancel path starts exactly it, with this execution\'s id', () => {
    expect(restore).toMatchObject({ Name: 'ResetAccess-Restore', DocumentType: 'Automation', UpdateMethod: 'NewVersion' });
    const start = steps.find((s) => s.name === 'startRestore');
    expect(start.inputs.DocumentName).toEqual({ Ref: id(stack.restoreRunbook.document) });
    expect(start.inputs.Parameters.ExecutionId).toEqual(['{{ automation:EXECUTION_ID }}']);
    expect(Object.keys(start.inputs.Parameters).sort()).toEqual(Object.keys(restore.Content.parameters).sort());
  });

  test('restores and cleans up with the same two functions as the failure path, with no cancel path of its own', () => {
    const lambdas = restore.Content.mainSteps.filter((s: any) => s.action === 'aws:invokeLambdaFunction');
    expect(lambdas.map((s: any) => s.inputs.FunctionName)).toEqual([
      { 'Fn::GetAtt': [fnId('restore'), 'Arn'] },
      { 'Fn::GetAtt': [fnId('cleanup'), 'Arn'] },
    ]);
    for (const s of restore.Content.mainSteps) expect([s.name, s.onCancel]).toEqual([s.name, undefined]);
  });
});

describe('the automation role against the runbooks', () => {
  const restoreSteps: any[] = json.Resources[id(stack.restoreRunbook.document)].Properties.Content.mainSteps;

  test('its actions are exactly the API calls of the wait, read and start steps of both runbooks, and passing itself', () => {
    // The RevokeKey runbooks' own read steps count too (the fleet's readGroup: GetGroupQuery of a resource group).
    const revokeSteps: any[] = [stack.revokeRunbook, stack.revokeInstanceRunbook].flatMap((r) => json.Resources[id(r.document)].Properties.Content.mainSteps);
    const apiSteps = [...steps, ...restoreSteps, ...revokeSteps].filter((s) => s.action === 'aws:waitForAwsResourceProperty' || s.action === 'aws:executeAwsApi');
    expect(apiSteps.length).toBeGreaterThan(0);
    // StartAutomationExecution with an AutomationAssumeRole passes that role (iam:PassRole).
    // RevokeKey's fan-out (aws:executeAutomation, issue 14) starts its per-instance runbook over a
    // tag target: StartAutomationExecution, and tag:GetResources in case the target is resolved
    // with this role (local/README.md, assumptions).
    const fanOut = (json.Resources[id(stack.revokeRunbook.document)].Properties.Content.mainSteps as any[]).filter((s) => s.action === 'aws:executeAutomation');
    expect(fanOut.map((s) => s.inputs.Targets[0].Key)).toEqual(['tag:reset-access:revoke-run']);
    const needed = [...new Set([...apiSteps.map(iamActionOf), 'iam:PassRole', 'ssm:StartAutomationExecution', 'tag:GetResources'])].sort();
    const roleId = id(stack.automationRole.role.node.defaultChild as CfnElement);
    const granted = [...new Set(statementsOf(json, roleId).flatMap((st) => st.actions))].filter((a) => a !== 'lambda:InvokeFunction').sort();
    expect(granted).toEqual(needed);
  });

  test('the runbooks use no action that would need more of the role', () => {
    // aws:sleep only delays the automation and calls no API (automation-action-sleep.html): it needs nothing of the role.
    const known = new Set(['aws:invokeLambdaFunction', 'aws:waitForAwsResourceProperty', 'aws:branch', 'aws:executeAwsApi', 'aws:sleep']);
    expect([...steps, ...restoreSteps].map((s) => s.action).filter((a) => !known.has(a))).toEqual([]);
  });
});

describe('the inject-key Command document', () => {
  test('named <documentName>-InjectKey, Command, new versions on update, the loader\'s content', () => {
    expect(command).toEqual({
      Name: 'ResetAccess-InjectKey',
      DocumentType: 'Command',
      DocumentFormat: 'JSON',
      UpdateMethod: 'NewVersion',
      Content: injectKeyDocument,
    });
    expect(command.Content.schemaVersion).toBe('2.2');
  });
});
