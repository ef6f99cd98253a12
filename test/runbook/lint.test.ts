/**
 * Lint of every runbook under runbooks/ (reset-access.yaml; inject-key.yaml when present), and
 * proof that the lint catches each mistake it looks for.
 */
import * as fs from 'fs';
import { lintAutomation, lintCommand, loadDoc, loadOutputFields, RUNBOOKS, type Doc, type Step } from './lint';

const files = fs.readdirSync(RUNBOOKS).filter((f) => f.endsWith('.yaml'));
const isAutomation = (f: string): boolean => loadDoc(f).schemaVersion !== '2.2';

describe('runbooks', () => {
  it('include reset-access.yaml', () => {
    expect(files).toContain('reset-access.yaml');
  });
});

describe.each(files.filter(isAutomation))('Automation runbook %s', (file) => {
  it('has no lint problem', async () => {
    // Prepare
    const doc = loadDoc(file);
    const fields = await loadOutputFields(doc);
    // Act
    const problems = lintAutomation(doc, fields);
    // Assess
    expect(problems).toEqual([]);
  });
});

describe.each(files.filter((f) => !isAutomation(f)))('Command document %s', (file) => {
  it('has no lint problem', () => {
    expect(lintCommand(loadDoc(file))).toEqual([]);
  });
});

describe('reset-access.yaml follows the contract', () => {
  const doc = loadDoc('reset-access.yaml');
  const steps = doc.mainSteps ?? [];
  const step = (n: string): Step => {
    const s = steps.find((x) => x.name === n);
    if (!s) throw new Error(`no step ${n}`);
    return s;
  };

  it('has the steps of docs/architecture.md in order, with their Lambda folders', () => {
    expect(steps.map((s) => [s.name, s.action.replace('aws:', ''), (String(s.inputs?.FunctionName ?? '').match(/:([a-z-]+)%%$/) ?? [])[1]])).toEqual([
      ['preflight', 'invokeLambdaFunction', 'preflight'],
      ['branchOnMethod', 'branch', undefined],
      ['describeInstance', 'executeAwsApi', undefined],
      ['describeRootVolume', 'executeAwsApi', undefined],
      ['stopInstance', 'invokeLambdaFunction', 'stop-instance'],
      ['launchHelper', 'invokeLambdaFunction', 'launch-helper'],
      ['waitForInstanceStopped', 'waitForAwsResourceProperty', undefined],
      ['backupAndDetachRoot', 'invokeLambdaFunction', 'backup-and-detach'],
      ['waitForRootDetached', 'waitForAwsResourceProperty', undefined],
      ['describeHelper', 'executeAwsApi', undefined],
      ['waitForHelperOnline', 'waitForAwsResourceProperty', undefined],
      ['attachToHelper', 'invokeLambdaFunction', 'attach-to-helper'],
      ['waitForAttachedToHelper', 'waitForAwsResourceProperty', undefined],
      ['branchOnPlatform', 'branch', undefined],
      ['injectKey', 'invokeLambdaFunction', 'inject-key'],
      ['waitForInjection', 'waitForAwsResourceProperty', undefined],
      ['releaseFromHelper', 'invokeLambdaFunction', 'release-from-helper'],
      ['waitForRootReleased', 'waitForAwsResourceProperty', undefined],
      ['reattachRoot', 'invokeLambdaFunction', 'reattach-root'],
      ['waitForRootReattached', 'waitForAwsResourceProperty', undefined],
      ['startInstance', 'invokeLambdaFunction', 'start-instance'],
      ['describeInstanceState', 'executeAwsApi', undefined],
      ['branchOnState', 'branch', undefined],
      ['waitForInstanceRunning', 'waitForAwsResourceProperty', undefined],
      ['cleanup', 'invokeLambdaFunction', 'cleanup'],
      ['summarize', 'invokeLambdaFunction', 'summarize'],
      ['injectKeyOnline', 'invokeLambdaFunction', 'inject-key'],
      ['waitForOnlineInjection', 'waitForAwsResourceProperty', undefined],
      ['reportOnline', 'invokeLambdaFunction', 'release-from-helper'],
      ['cleanupOnline', 'invokeLambdaFunction', 'cleanup'],
      ['summarizeOnline', 'invokeLambdaFunction', 'summarize'],
      ['saveUserData', 'invokeLambdaFunction', 'save-user-data'],
      ['backupUserData', 'invokeLambdaFunction', 'backup-and-detach'],
      ['stopForUserData', 'invokeLambdaFunction', 'stop-instance'],
      ['waitStoppedForUserData', 'waitForAwsResourceProperty', undefined],
      ['setUserData', 'invokeLambdaFunction', 'set-user-data'],
      ['confirmUserData', 'invokeLambdaFunction', 'confirm-user-data'],
      ['stopAfterUserData', 'invokeLambdaFunction', 'stop-instance'],
      ['waitStoppedAfterUserData', 'waitForAwsResourceProperty', undefined],
      ['restoreUserData', 'invokeLambdaFunction', 'restore-user-data'],
      ['startAfterUserData', 'invokeLambdaFunction', 'start-instance'],
      ['describeStateAfterUserData', 'executeAwsApi', undefined],
      ['branchOnStateAfterUserData', 'branch', undefined],
      ['waitRunningAfterUserData', 'waitForAwsResourceProperty', undefined],
      ['cleanupUserData', 'invokeLambdaFunction', 'cleanup'],
      ['summarizeUserData', 'invokeLambdaFunction', 'summarize'],
      ['resetWindows', 'invokeLambdaFunction', 'windows-reset'],
      ['waitForWindowsReset', 'waitForAwsResourceProperty', undefined],
      ['releaseWindows', 'invokeLambdaFunction', 'windows-release'],
      ['waitForWindowsRootReleased', 'waitForAwsResourceProperty', undefined],
      ['reattachWindowsRoot', 'invokeLambdaFunction', 'reattach-root'],
      ['waitForWindowsRootReattached', 'waitForAwsResourceProperty', undefined],
      ['startWindows', 'invokeLambdaFunction', 'windows-start'],
      ['waitForWindowsRunning', 'waitForAwsResourceProperty', undefined],
      ['waitForPassword', 'invokeLambdaFunction', 'windows-password'],
      ['cleanupWindows', 'invokeLambdaFunction', 'cleanup'],
      ['restore', 'invokeLambdaFunction', 'restore'],
      ['cleanupAfterRestore', 'invokeLambdaFunction', 'cleanup'],
      ['startRestore', 'executeAwsApi', undefined],
    ]);
  });

  it('gives cleanup and waitForInjection three attempts, and ends restore with cleanupAfterRestore', () => {
    expect(step('cleanup').maxAttempts).toBe(3);
    expect(step('waitForInjection').maxAttempts).toBe(3);
    expect(step('restore').nextStep).toBe('cleanupAfterRestore');
    expect(step('cleanupAfterRestore').isEnd).toBe(true);
    expect(step('summarize').isEnd).toBe(true);
  });

  it('branches on the state startInstance left: stopped goes straight to cleanup, else waitForInstanceRunning', () => {
    expect(step('branchOnState').inputs).toEqual({
      Choices: [{ NextStep: 'cleanup', Variable: '{{ describeInstanceState.State }}', StringEquals: 'stopped' }],
      Default: 'waitForInstanceRunning',
    });
  });

  it('bounds waitForInjection: at most 3 attempts of 600 s, on a call that answers a list, never InvocationDoesNotExist', () => {
    const w = step('waitForInjection');
    expect([w.timeoutSeconds, w.maxAttempts]).toEqual([600, 3]);
    expect(w.inputs).toMatchObject({ Service: 'ssm', Api: 'ListCommandInvocations', PropertySelector: '$.CommandInvocations[0].Status' });
    expect(String(doc.description)).not.toContain('GetCommandInvocation right after');
  });

  it('reads no field inside a Lambda Payload, sets LogType on every Lambda step, and returns summarize.Payload', () => {
    for (const s of steps.filter((x) => x.action === 'aws:invokeLambdaFunction')) {
      expect([s.name, s.outputs]).toEqual([s.name, undefined]);
      expect([s.name, s.inputs?.LogType]).toEqual([s.name, 'None']);
    }
    expect(doc.outputs).toEqual(['summarize.Payload', 'summarizeOnline.Payload', 'summarizeUserData.Payload', 'waitForPassword.Payload', 'restore.Payload', 'startRestore.RestoreExecutionId']);
  });

  it('cancels into startRestore, which starts the restore runbook and ends; failures restore in this execution', () => {
    for (const s of steps.slice(1).filter((x) => !['restore', 'cleanupAfterRestore', 'startRestore'].includes(x.name))) {
      expect([s.name, s.onCancel, s.onFailure]).toEqual([s.name, 'step:startRestore', 'step:restore']);
    }
    expect(step('preflight').onCancel).toBeUndefined();
    expect(step('startRestore')).toMatchObject({
      action: 'aws:executeAwsApi',
      isEnd: true,
      inputs: {
        Service: 'ssm',
        Api: 'StartAutomationExecution',
        DocumentName: '%%RestoreDocumentName%%',
        Parameters: { InstanceId: ['{{ InstanceId }}'], ExecutionId: ['{{ automation:EXECUTION_ID }}'], AutomationAssumeRole: ['{{ AutomationAssumeRole }}'] },
      },
    });
  });

  it("branches right after preflight on the method token in preflight's Payload", () => {
    expect(step('preflight').nextStep).toBe('branchOnMethod');
    expect(step('branchOnMethod').inputs).toEqual({
      Choices: [
        { NextStep: 'injectKeyOnline', Variable: '{{ preflight.Payload }}', Contains: '|method:Online|' },
        { NextStep: 'saveUserData', Variable: '{{ preflight.Payload }}', Contains: '|method:UserData|' },
      ],
      Default: 'describeInstance',
    });
    // The online path never stops, detaches or launches: only these steps, in this order.
    const path: string[] = [];
    for (let n: string | undefined = 'injectKeyOnline'; n; n = step(n).isEnd ? undefined : step(n).nextStep) path.push(n);
    expect(path).toEqual(['injectKeyOnline', 'waitForOnlineInjection', 'reportOnline', 'cleanupOnline', 'summarizeOnline']);
    expect(step('waitForOnlineInjection').inputs).toMatchObject({ Api: 'ListCommandInvocations', InstanceId: '{{ InstanceId }}' });
  });

  it('the user data path: saved first, the first boot powers itself off after its report, the report read from the console, the original put back before the second start', () => {
    const path: string[] = [];
    for (let n: string | undefined = 'saveUserData'; n; n = step(n).isEnd ? undefined : step(n).nextStep) path.push(n);
    expect(path).toEqual([
      'saveUserData',
      'backupUserData',
      'stopForUserData',
      'waitStoppedForUserData',
      'setUserData',
      'confirmUserData',
      'stopAfterUserData',
      'waitStoppedAfterUserData',
      'restoreUserData',
      'startAfterUserData',
      'describeStateAfterUserData',
      'branchOnStateAfterUserData',
    ]);
    const tail: string[] = [];
    for (let n: string | undefined = 'waitRunningAfterUserData'; n; n = step(n).isEnd ? undefined : step(n).nextStep) tail.push(n);
    expect(tail).toEqual(['waitRunningAfterUserData', 'cleanupUserData', 'summarizeUserData']);
    expect(step('branchOnStateAfterUserData').inputs).toEqual({
      Choices: [{ NextStep: 'cleanupUserData', Variable: '{{ describeStateAfterUserData.State }}', StringEquals: 'stopped' }],
      Default: 'waitRunningAfterUserData',
    });
    // The stated time for the instance's report: 2 attempts of the function's 240 s budget.
    expect(step('confirmUserData').maxAttempts).toBe(2);
    expect(String(doc.description)).toMatch(/the boot powers the instance off, before sshd or any service starts/i);
  });

  it('keeps cleanup off the critical path: it comes after the instance is running again', () => {
    expect(step('startInstance').nextStep).toBe('describeInstanceState');
    expect(step('waitForInstanceRunning').nextStep).toBe('cleanup');
    expect(step('cleanup').nextStep).toBe('summarize');
  });

  it('has the parameters and defaults of issue 2', () => {
    const p = doc.parameters ?? {};
    expect(Object.keys(p).sort()).toEqual(
      ['AllowEncryptedVolume', 'AllowEphemeralDataLoss', 'AutomationAssumeRole', 'BackupMethod', 'HelperInstanceType', 'InstanceId', 'KeyType', 'Method', 'Mode', 'PublicKey', 'PublicKeyParameter', 'SubnetId', 'Users'].sort(),
    );
    // No parameter may declare more characters than StartAutomationExecution accepts (512).
    for (const [name, spec] of Object.entries(p)) if (spec.maxChars !== undefined) expect([name, Number(spec.maxChars) <= 512]).toEqual([name, true]);
    expect(p.PublicKey.maxChars).toBe(512);
    expect(p.InstanceId.default).toBeUndefined();
    expect(p.AutomationAssumeRole.default).toBe('%%AutomationRoleArn%%');
    expect(p.SubnetId.default).toBe('CreateNewVPC');
    expect(p.HelperInstanceType.default).toBe('t3.small');
    expect(p.KeyType).toMatchObject({ default: 'rsa', allowedValues: ['rsa', 'ed25519'] });
    expect(p.BackupMethod).toMatchObject({ default: 'Snapshot', allowedValues: ['Snapshot', 'Image', 'None'] });
    expect(p.Method).toMatchObject({ default: 'Auto', allowedValues: ['Auto', 'Online', 'VolumeSwap', 'UserData'] });
    expect(p.AllowEncryptedVolume).toMatchObject({ default: 'True', allowedValues: ['True', 'False'] });
    expect(p.AllowEphemeralDataLoss).toMatchObject({ default: 'False', allowedValues: ['True', 'False'] });
  });

  it('accepts good parameter values and rejects bad ones', () => {
    const p = doc.parameters ?? {};
    const ok = (name: string, v: string): boolean => new RegExp(String(p[name].allowedPattern)).test(v);
    expect(ok('SubnetId', 'subnet-0123456789abcdef0')).toBe(true);
    expect(ok('SubnetId', 'SelectedInstanceSubnet')).toBe(true);
    expect(ok('SubnetId', 'subnet-xyz')).toBe(false);
    expect(ok('InstanceId', 'i-0123456789abcdef0')).toBe(true);
    expect(ok('InstanceId', 'i-0123; rm -rf /')).toBe(false);
    expect(ok('Users', 'ec2-user,ubuntu')).toBe(true);
    expect(ok('Users', 'ec2-user;id')).toBe(false);
    expect(ok('PublicKey', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host')).toBe(true);
    expect(ok('PublicKey', '-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(false);
    expect(ok('HelperInstanceType', 't4g.small')).toBe(true);
    expect(ok('HelperInstanceType', 't3.small\n')).toBe(false);
    expect(ok('PublicKeyParameter', '/reset-access/public-keys/me')).toBe(true);
    expect(ok('PublicKeyParameter', '')).toBe(true);
    expect(ok('PublicKeyParameter', '/reset-access/locks/i-0123456789abcdef0')).toBe(false);
  });
});

describe('the lint catches', () => {
  let good: Doc;
  let fields: Map<string, readonly string[]>;
  beforeAll(async () => {
    good = loadDoc('reset-access.yaml');
    fields = await loadOutputFields(good);
  });
  const mutate = (change: (d: Doc) => void): string[] => {
    const copy = JSON.parse(JSON.stringify(good)) as Doc;
    change(copy);
    return lintAutomation(copy, fields);
  };
  const stepOf = (d: Doc, n: string): Step => (d.mainSteps ?? []).find((s) => s.name === n) as Step;

  it('a wrong schema version', () => {
    expect(mutate((d) => (d.schemaVersion = '0.2'))).toContain('schemaVersion is 0.2, not 0.3');
  });
  it('aws:executeScript', () => {
    expect(mutate((d) => (stepOf(d, 'waitForRootDetached').action = 'aws:executeScript'))).toContain('waitForRootDetached: action aws:executeScript is not allowed');
  });
  it('an unresolved variable', () => {
    expect(mutate((d) => ((stepOf(d, 'summarize').inputs?.InputPayload as Record<string, string>).BackupResult = '{{ nowhere.Payload }}'))).toEqual([
      '$.mainSteps[25].inputs.InputPayload.BackupResult: {{ nowhere.Payload }} resolves to nothing',
    ]);
  });
  it('a selector inside a Lambda Payload, and a Lambda step without LogType', () => {
    const problems = mutate((d) => {
      stepOf(d, 'injectKey').outputs = [{ Name: 'CommandId', Selector: '$.Payload.CommandId', Type: 'String' }];
      delete stepOf(d, 'cleanup').inputs!.LogType;
    });
    expect(problems).toEqual(['injectKey.CommandId: selector $.Payload.CommandId on a Lambda step (AWS documents none)', 'cleanup: LogType is undefined, not None or Tail']);
  });
  it('a Lambda step over 300 s, and Payload for InputPayload', () => {
    const problems = mutate((d) => {
      const s = stepOf(d, 'preflight');
      s.timeoutSeconds = 600;
      s.inputs!.Payload = s.inputs!.InputPayload;
      delete s.inputs!.InputPayload;
    });
    expect(problems).toEqual(expect.arrayContaining(['preflight: timeoutSeconds 600 (a Lambda step needs ≤ 300)', 'preflight: Payload instead of InputPayload', 'preflight: no InputPayload']));
  });
  it('a parameter without a pattern, and a default outside its values', () => {
    const problems = mutate((d) => {
      delete d.parameters!.Users.allowedPattern;
      d.parameters!.KeyType.default = 'dsa';
    });
    expect(problems).toEqual(expect.arrayContaining(['parameter Users: neither allowedPattern nor allowedValues', "parameter KeyType: default 'dsa' is not an allowed value"]));
  });
  it('a step not routed to restore', () => {
    expect(mutate((d) => (stepOf(d, 'attachToHelper').onCancel = 'step:restore'))).toEqual(['attachToHelper: onCancel is step:restore, not step:startRestore']);
  });
  it('a route to a missing step and an unreachable step', () => {
    const problems = mutate((d) => {
      stepOf(d, 'startInstance').nextStep = 'cleanUp';
    });
    expect(problems).toEqual(expect.arrayContaining(['startInstance: goes to cleanUp, which does not exist', 'cleanup: unreachable']));
  });
});
