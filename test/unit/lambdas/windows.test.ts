/**
 * The Windows steps (issue 15): the run's key and the password's decryption against OpenSSL (an
 * independent RSA-OAEP-SHA1 implementation), the console line of the contract, and each step's
 * calls with mocked clients.
 */
import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mockClient } from 'aws-sdk-client-mock';
import {
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  GetConsoleOutputCommand,
  GetPasswordDataCommand,
  StartInstancesCommand,
  type DescribeInstancesCommandOutput,
  type DescribeVolumesCommandOutput,
} from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, PutParameterCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { decryptPassword, findConsoleResult, generatePasswordKey, parseWindowsReport, passwordParameterName, runKeyParameterName } from '../../../lambdas/common/windows';
import { resetWindows } from '../../../lambdas/windows-reset/windows-reset';
import { releaseWindows } from '../../../lambdas/windows-release/windows-release';
import { startWindows } from '../../../lambdas/windows-start/windows-start';
import { nextStep, waitForPassword, PASSWORD_BUDGET_MS, PASSWORD_POLL_MS } from '../../../lambdas/windows-password/windows-password';
import { EXECUTION_ID, HELPER_ID, INSTANCE_ID, makePlan, parameterStore, recordingLogger, ROOT_VOLUME_ID, storedPlan, storePlan, fakeClock, STEP_INPUT } from '../helpers';
import type { Plan } from '../../../lambdas/common/plan';
import { revertWindows } from '../../../lambdas/restore/windows-revert';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const ec2 = new EC2Client({ region: 'us-east-1' });
const ssm = new SSMClient({ region: 'us-east-1' });
/** A run's start time in the tests (the fake clock starts there). */
const START = Date.parse('2026-11-28T15:00:00.000Z');
const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';

/** Encrypts with OpenSSL (RSA-OAEP, SHA-1) to a DER SubjectPublicKeyInfo given as base64: what the boot action does with .NET. */
function opensslEncrypt(publicKeyDerBase64: string, plaintext: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'h5-oaep-'));
  try {
    writeFileSync(join(dir, 'pub.der'), Buffer.from(publicKeyDerBase64, 'base64'));
    writeFileSync(join(dir, 'in'), plaintext);
    execFileSync('openssl', ['pkeyutl', '-encrypt', '-pubin', '-keyform', 'DER', '-inkey', join(dir, 'pub.der'), '-in', join(dir, 'in'), '-out', join(dir, 'out'),
      '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha1']);
    return execFileSync('base64', ['-w0', join(dir, 'out')]).toString().trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function windowsPlan(overrides: Partial<Plan> = {}, mode: 'EnablePasswordGeneration' | 'NewPassword' = 'EnablePasswordGeneration'): Plan {
  const base = makePlan(overrides);
  base.inputs.mode = mode;
  base.instance.platform = 'windows';
  base.instance.keyName = 'my-key';
  base.created.helperInstanceId = HELPER_ID;
  return base;
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
});

describe('the run key and the console line (contract with runbooks/windows-reset.yaml)', () => {
  it('a password OpenSSL encrypts (RSA-OAEP-SHA1) to the run key decrypts with its private half; a wrong key does not', () => {
    const key = generatePasswordKey();
    // base64 of a DER SubjectPublicKeyInfo of RSA 2048: about 392 characters, as the contract says.
    expect(key.publicKeyDerBase64).toMatch(/^[A-Za-z0-9+/]{380,400}={0,2}$/);
    const password = 'p@ss W0rd-ä€';
    const ciphertext = opensslEncrypt(key.publicKeyDerBase64, password);
    expect(decryptPassword(key.privateKeyPem, ciphertext)).toBe(password);
    expect(() => decryptPassword(generatePasswordKey().privateKeyPem, ciphertext)).toThrow(/does not decrypt/);
  });

  it('finds this run\'s last line only: another run\'s is ignored, a later error line wins over a password line', () => {
    const other = 'ec2-reset-access:other-run:password:QUFBQQ==';
    expect(findConsoleResult(`boot\n${other}\n`, EXECUTION_ID)).toBeUndefined();
    const console = `x\r\nec2-reset-access:${EXECUTION_ID}:password:QUJD\r\n`;
    expect(findConsoleResult(console, EXECUTION_ID)).toEqual({ kind: 'password', ciphertext: 'QUJD' });
    expect(findConsoleResult(`${console}ec2-reset-access:${EXECUTION_ID}:error:Administrator is disabled\n`, EXECUTION_ID)).toEqual({ kind: 'error', reason: 'Administrator is disabled' });
  });

  it('reads the JSON report of the windows-reset document from the last line', () => {
    const r = parseWindowsReport('mounting\n{"version":1,"status":"ok","agent":"EC2Launch v2","agentVersion":"2.0.1","mode":"EnablePasswordGeneration","changes":[{"path":"/ProgramData/Amazon/EC2Launch/state/.run-once","action":"deleted"}],"warnings":[]}\n');
    expect(r).toMatchObject({ status: 'ok', agent: 'EC2Launch v2', changes: [{ action: 'deleted' }] });
    expect(parseWindowsReport('no report')).toBeUndefined();
  });
});

describe('resetWindows', () => {
  it('NewPassword: stores the run key as a SecureString under the stack key, sends only the public half', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({}, 'NewPassword'));
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    const log = recordingLogger();
    const r = await resetWindows({ ssm, log, config: { keyId: KEY_ARN, documentName: 'ResetAccess-WindowsReset' } }, STEP_INPUT);
    expect(r).toEqual({ commandId: 'cmd-1', mode: 'NewPassword', runKeyParameterName: runKeyParameterName(INSTANCE_ID) });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: runKeyParameterName(INSTANCE_ID), Type: 'SecureString', KeyId: KEY_ARN });
    const stored = store.get(runKeyParameterName(INSTANCE_ID))?.value ?? '';
    expect(stored).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const sent = ssmMock.commandCalls(SendCommandCommand)[0].args[0].input;
    expect(sent.Parameters?.Mode).toEqual(['NewPassword']);
    expect(sent.Parameters?.RunId).toEqual([EXECUTION_ID]);
    expect(sent.Parameters?.VolumeId).toEqual([ROOT_VOLUME_ID]);
    expect(sent.Parameters?.PasswordKey?.[0]).toMatch(/^[A-Za-z0-9+/]{380,400}={0,2}$/);
    expect(JSON.stringify(sent)).not.toContain('PRIVATE KEY');
    expect(log.lines.join('\n')).not.toContain('PRIVATE KEY');
    expect(storedPlan(store)?.created).toMatchObject({ commandId: 'cmd-1', runKeyParameterName: runKeyParameterName(INSTANCE_ID) });
  });

  it('EnablePasswordGeneration: no key made, PasswordKey empty', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan());
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-2' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Pending' });
    await resetWindows({ ssm, log: recordingLogger(), config: { keyId: KEY_ARN, documentName: 'D' } }, STEP_INPUT);
    expect(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input.Parameters?.PasswordKey).toEqual(['']);
    expect(store.has(runKeyParameterName(INSTANCE_ID))).toBe(false);
  });
});

describe('releaseWindows', () => {
  const attached: DescribeVolumesCommandOutput = { $metadata: {}, Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use' as const, Attachments: [{ InstanceId: HELPER_ID, State: 'attached' as const, Device: '/dev/sdf' }] }] };

  it('a refusal in the report fails the step with its reason and detaches nothing', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ created: { helperInstanceId: HELPER_ID, commandId: 'cmd-1' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StandardOutputContent: '{"version":1,"status":"error","changes":[],"warnings":[],"error":"BitLocker volume: refused"}\n' });
    ec2Mock.on(DescribeVolumesCommand).resolves(attached);
    await expect(releaseWindows({ ec2, ssm, log: recordingLogger(), clock: fakeClock() }, STEP_INPUT)).rejects.toThrow(/BitLocker volume: refused/);
    expect(ec2Mock).not.toHaveReceivedCommand(DetachVolumeCommand);
    expect(storedPlan(store)?.progress.keyInjected).toBe(false);
  });

  it('an ok report marks the change made and detaches from the helper', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ created: { helperInstanceId: HELPER_ID, commandId: 'cmd-1' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '{"version":1,"status":"ok","agent":"EC2Launch v2","changes":[],"warnings":[]}' });
    ec2Mock.on(DescribeVolumesCommand).resolves(attached);
    ec2Mock.on(DetachVolumeCommand).resolves({});
    const r = await releaseWindows({ ec2, ssm, log: recordingLogger(), clock: fakeClock() }, STEP_INPUT);
    expect(r.report.agent).toBe('EC2Launch v2');
    expect(ec2Mock).toHaveReceivedCommandWith(DetachVolumeCommand, { VolumeId: ROOT_VOLUME_ID, InstanceId: HELPER_ID });
    expect(storedPlan(store)?.progress).toMatchObject({ keyInjected: true, phase: 'released-from-helper' });
  });
});

describe('startWindows', () => {
  it('starts an instance that was stopped before the run, and says so', async () => {
    const store = parameterStore(ssmMock);
    const plan = windowsPlan();
    plan.instance.originalState = 'stopped';
    storePlan(store, plan);
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use' as const, Attachments: [{ InstanceId: INSTANCE_ID, State: 'attached' as const, Device: '/dev/xvda' }] }] });
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'stopped' as const } }] }] });
    let recordedAtStart: string | undefined;
    ec2Mock.on(StartInstancesCommand).callsFake(() => {
      recordedAtStart = storedPlan(store)?.progress.startRequestedAt;
      return {};
    });
    const r = await startWindows({ ec2, ssm, log: recordingLogger(), clock: fakeClock(START) }, STEP_INPUT);
    expect(r.started).toBe(true);
    expect(r.warnings.join(' ')).toMatch(/was stopped before the run/);
    // The time of the request is in the plan before StartInstances is sent (review W1).
    expect(recordedAtStart).toBe(new Date(START).toISOString());
  });
});

describe('waitForPassword', () => {
  const running: DescribeInstancesCommandOutput = { $metadata: {}, Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' as const }, PublicIpAddress: '198.51.100.7', KeyName: 'my-key' }] }] };

  it('EnablePasswordGeneration: waits while GetPasswordData is empty, never decrypts, and names the CLI command', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ progress: { keyInjected: true, phase: 'started', startRequestedAt: new Date(START).toISOString() } }));
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    ec2Mock.on(GetPasswordDataCommand).resolvesOnce({ PasswordData: '' }).resolvesOnce({ PasswordData: '\r\n' }).resolves({ PasswordData: 'c2VjcmV0', Timestamp: new Date(START + 60_000) });
    const clock = fakeClock(START);
    const r = await waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock }, STEP_INPUT);
    expect(ec2Mock.commandCalls(GetPasswordDataCommand)).toHaveLength(3);
    expect(r).toMatchObject({ mode: 'EnablePasswordGeneration', passwordParameterName: 'none', address: '198.51.100.7 (public)' });
    expect(nextStep(INSTANCE_ID, r)).toBe(`aws ec2 get-password-data --instance-id ${INSTANCE_ID} --priv-launch-key <private key file of key pair my-key>`);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
  });

  // Review W1: the password data of the instance's launch (Timestamp, GetPasswordDataResult in
  // botocore data/ec2/2016-11-15/service-2.json) must not pass for the new one.
  it('EnablePasswordGeneration: password data older than the run\'s StartInstances is refused until the boot\'s own arrives', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ progress: { keyInjected: true, phase: 'started', startRequestedAt: new Date(START).toISOString() } }));
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    const launch = { PasswordData: 'bGF1bmNoLXRpbWU=', Timestamp: new Date(START - 86_400_000) };
    ec2Mock.on(GetPasswordDataCommand).resolvesOnce(launch).resolvesOnce(launch).resolves({ PasswordData: 'bmV3', Timestamp: new Date(START + 90_000) });
    const clock = fakeClock(START);
    await waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock }, STEP_INPUT);
    expect(ec2Mock.commandCalls(GetPasswordDataCommand)).toHaveLength(3);
    expect(clock.elapsed()).toBe(2 * PASSWORD_POLL_MS);
  });

  it('EnablePasswordGeneration: only launch-time password data within the budget fails the attempt and says why', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ progress: { keyInjected: true, phase: 'started', startRequestedAt: new Date(START).toISOString() } }));
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    // Equal to the start is not later than it: refused too.
    ec2Mock.on(GetPasswordDataCommand).resolvesOnce({ PasswordData: 'b2xk', Timestamp: new Date(START) }).resolves({ PasswordData: 'b2xk', Timestamp: new Date(START - 1) });
    const clock = fakeClock(START);
    await expect(waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock }, STEP_INPUT)).rejects.toThrow(/only password data older than this run's start/);
  });

  it('EnablePasswordGeneration: without a recorded start (not started by startWindows), the instance\'s LaunchTime is the bound', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan());
    ec2Mock.on(DescribeInstancesCommand).resolves({ $metadata: {}, Reservations: [{ Instances: [{ ...running.Reservations![0].Instances![0], LaunchTime: new Date(START) }] }] });
    ec2Mock.on(GetPasswordDataCommand).resolvesOnce({ PasswordData: 'b2xk', Timestamp: new Date(START - 5_000) }).resolves({ PasswordData: 'bmV3', Timestamp: new Date(START + 5_000) });
    const clock = fakeClock(START);
    await waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock }, STEP_INPUT);
    expect(ec2Mock.commandCalls(GetPasswordDataCommand)).toHaveLength(2);
  });

  it('EnablePasswordGeneration: no password within the budget fails the attempt (the runbook retries, then restores)', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ progress: { keyInjected: true, phase: 'started', startRequestedAt: new Date(START).toISOString() } }));
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    ec2Mock.on(GetPasswordDataCommand).resolves({ PasswordData: '' });
    const clock = fakeClock();
    await expect(waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock }, STEP_INPUT)).rejects.toThrow(/no new password yet/);
    expect(clock.elapsed()).toBeLessThanOrEqual(PASSWORD_BUDGET_MS);
  });

  it('NewPassword: decrypts this run\'s console line, stores the password as a SecureString, deletes the run key; the password is in no output or log', async () => {
    const store = parameterStore(ssmMock);
    const key = generatePasswordKey();
    store.set(runKeyParameterName(INSTANCE_ID), { value: key.privateKeyPem, type: 'SecureString', version: 1 });
    storePlan(store, windowsPlan({ created: { helperInstanceId: HELPER_ID, runKeyParameterName: runKeyParameterName(INSTANCE_ID) } }, 'NewPassword'));
    const password = 'Xk3#vQ9!wL2$mN7&';
    const line = `ec2-reset-access:${EXECUTION_ID}:password:${opensslEncrypt(key.publicKeyDerBase64, password)}`;
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    ec2Mock.on(GetConsoleOutputCommand).resolvesOnce({ Output: '' }).resolves({ Output: Buffer.from(`Windows is starting\r\n${line}\r\n`).toString('base64') });
    const log = recordingLogger();
    const r = await waitForPassword({ ec2, ssm, log, config: { keyId: KEY_ARN }, clock: fakeClock() }, STEP_INPUT);
    expect(ec2Mock).toHaveReceivedCommandWith(GetConsoleOutputCommand, { InstanceId: INSTANCE_ID, Latest: true });
    expect(store.get(passwordParameterName(INSTANCE_ID))).toMatchObject({ value: password, type: 'SecureString' });
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: passwordParameterName(INSTANCE_ID), KeyId: KEY_ARN, Type: 'SecureString' });
    expect(store.has(runKeyParameterName(INSTANCE_ID))).toBe(false);
    expect(storedPlan(store)?.created).toMatchObject({ passwordParameterName: passwordParameterName(INSTANCE_ID) });
    expect(storedPlan(store)?.created.runKeyParameterName).toBeUndefined();
    expect(r.passwordParameterName).toBe(passwordParameterName(INSTANCE_ID));
    expect(nextStep(INSTANCE_ID, r)).toContain(`aws ssm get-parameter --with-decryption --name ${passwordParameterName(INSTANCE_ID)}`);
    expect(JSON.stringify(r) + log.lines.join('\n') + JSON.stringify(storedPlan(store))).not.toContain(password);
  });

  it('NewPassword: an error line from the boot action fails the run with its reason', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, windowsPlan({ created: { helperInstanceId: HELPER_ID, runKeyParameterName: runKeyParameterName(INSTANCE_ID) } }, 'NewPassword'));
    ec2Mock.on(DescribeInstancesCommand).resolves(running);
    ec2Mock.on(GetConsoleOutputCommand).resolves({ Output: Buffer.from(`ec2-reset-access:${EXECUTION_ID}:error:Administrator account is disabled\n`).toString('base64') });
    await expect(waitForPassword({ ec2, ssm, log: recordingLogger(), config: { keyId: KEY_ARN }, clock: fakeClock() }, STEP_INPUT)).rejects.toThrow(/Administrator account is disabled/);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
  });
});

// Review W2: restore's Windows revert, in the cases the twin does not reach (lambdas/restore/windows-revert.ts).
describe('restore: revertWindows', () => {
  const report = (changes: string): string => `{"version":1,"status":"ok","agent":"EC2Launch v2","agentVersion":"","mode":"x","changes":[${changes}],"warnings":[]}`;
  const revertPlan = (): Plan => windowsPlan({ created: { helperInstanceId: HELPER_ID, commandId: 'cmd-reset', runKeyParameterName: runKeyParameterName(INSTANCE_ID) } }, 'NewPassword');
  const onHelper = { Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use' as const, Attachments: [{ InstanceId: HELPER_ID, State: 'attached' as const, Device: '/dev/sdf' }] }] };
  const helper = (state: 'running' | 'terminated') => ({ Reservations: [{ Instances: [{ InstanceId: HELPER_ID, State: { Name: state } }] }] });
  const deps = () => ({ ec2, ssm, log: recordingLogger(), clock: fakeClock(), windowsDocumentName: 'ResetAccess-WindowsReset' });

  it('a command whose report lists no change: nothing is reverted and no command is sent', async () => {
    const store = parameterStore(ssmMock);
    const plan = revertPlan();
    storePlan(store, plan);
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StandardOutputContent: report('').replace('"ok"', '"error"') });
    const done: string[] = [];
    await revertWindows(deps(), plan, done);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
    expect(done).toEqual([]);
  });

  it('the helper is gone: NOT REVERTED, with the way to do it by hand; the plan does not say reverted', async () => {
    const store = parameterStore(ssmMock);
    const plan = revertPlan();
    storePlan(store, plan);
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: report('{"path":"x","action":"rewritten"}') });
    ec2Mock.on(DescribeInstancesCommand).resolves(helper('terminated'));
    const done: string[] = [];
    await revertWindows(deps(), plan, done);
    expect(done.join(' ')).toMatch(/NOT REVERTED .*helper i-0fedcba9876543210 is terminated.*Mode=Revert RunId=/);
    expect(storedPlan(store)?.progress.windowsReverted).toBeUndefined();
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('a Revert command still running fails the attempt; the next attempt waits for the same command, never sends a second, and records the revert', async () => {
    const store = parameterStore(ssmMock);
    storePlan(store, revertPlan());
    ec2Mock.on(DescribeInstancesCommand).resolves(helper('running'));
    ec2Mock.on(DescribeVolumesCommand).resolves(onHelper);
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-revert' } });
    ssmMock.on(GetCommandInvocationCommand, { CommandId: 'cmd-reset' }).resolves({ Status: 'Success', StandardOutputContent: report('{"path":"x","action":"rewritten"}') });
    ssmMock.on(GetCommandInvocationCommand, { CommandId: 'cmd-revert' }).resolves({ Status: 'InProgress' });
    const budgets = { moveMs: 9_000, commandMs: 9_000 };
    await expect(revertWindows(deps(), storedPlan(store)!, [], budgets)).rejects.toThrow(/still InProgress.*restore is retried/);
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, { Parameters: { VolumeId: [ROOT_VOLUME_ID], Mode: ['Revert'], RunId: [EXECUTION_ID], PasswordKey: [''] }, InstanceIds: [HELPER_ID] });
    ssmMock.on(GetCommandInvocationCommand, { CommandId: 'cmd-revert' }).resolves({ Status: 'Success', StandardOutputContent: report('{"path":"ProgramData\\\\Amazon\\\\EC2Launch\\\\config\\\\agent-config.yml","action":"rewritten"}') });
    const done: string[] = [];
    await revertWindows(deps(), storedPlan(store)!, done, budgets);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(done).toEqual([expect.stringMatching(/^reverted what the windows-reset command wrote \(ProgramData.*agent-config.yml\)$/)]);
    expect(storedPlan(store)?.progress).toMatchObject({ revertCommandId: 'cmd-revert', windowsReverted: true });
  });

  it('after the run started the instance, or when the first command never ended: nothing is sent, and the message says why', async () => {
    const started = revertPlan();
    started.progress.startRequestedAt = new Date(START).toISOString();
    started.progress.startAccepted = true;
    const done: string[] = [];
    await revertWindows(deps(), started, done);
    await revertWindows(deps(), revertPlan(), done, undefined, true);
    expect(done).toEqual([expect.stringMatching(/^not reverted: the run started/), expect.stringMatching(/^NOT REVERTED .*never reported an end/)]);
    expect(ssmMock).not.toHaveReceivedCommand(SendCommandCommand);
  });
});
