/**
 * A whole Windows reset in the twin (issue 15), both modes, with the real windows-reset document
 * on an NTFS image (local/disk/ntfs.ts, mkntfs) and the twin's Windows boot (local/windows-boot.ts,
 * written from AWS's launch-agent documentation): the result is read back with independent tools,
 * the AWS CLI's own decryption of GetPasswordData and ntfs-3g's ntfscat. Then a failure after each
 * Windows step, and a cancel, leave the instance as it was.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildWindowsImage, ntfsCat, ntfsList, readNtfs, type WindowsImage } from '../../local/disk/ntfs';
import { REGION, startTwin, type Twin } from '../../local/twin';
import { baseline, expectNothingLost, expectNoKeyMaterial } from './support';

const run = promisify(execFile);
jest.setTimeout(300000);

let twin: Twin;
let dir: string;
let image: WindowsImage;
const STATE = 'ProgramData/Amazon/EC2Launch/state';
const RUN_ONCE = `${STATE}/.run-once`;
const CONFIG = 'ProgramData/Amazon/EC2Launch/config/agent-config.yml';

beforeAll(async () => {
  // 'settle': the Lambdas see end states at once (same modeled time, no real-time polls).
  twin = await startTwin({ maxLifetimeSeconds: 900, transitions: 'settle' });
  dir = mkdtempSync(join(tmpdir(), 'h5-windows-'));
  image = await buildWindowsImage(join(dir, 'ec2launch-v2.img'), { agents: ['ec2launch-v2'], runOnce: true });
}, 600000);

afterAll(async () => {
  await twin?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The instance's root image, as a WindowsImage for ntfs.ts's readers. */
const rootOf = (path: string): WindowsImage => ({ path, windowsPartition: image.windowsPartition });

/** `aws ec2 get-password-data --priv-launch-key`: the AWS CLI v1 decrypts with the key pair (awscli/customizations/ec2/decryptpassword.py). */
async function cliPassword(instanceId: string, privateKeyPem: string): Promise<string> {
  const keyFile = join(dir, `${instanceId}.pem`);
  writeFileSync(keyFile, privateKeyPem, { mode: 0o600 });
  try {
    const out = await run('aws', ['ec2', 'get-password-data', '--instance-id', instanceId, '--priv-launch-key', keyFile, '--endpoint-url', twin.agent.endpoint, '--region', REGION, '--output', 'json'], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: 'twin', AWS_SECRET_ACCESS_KEY: 'twin', AWS_DEFAULT_REGION: REGION },
    });
    return (JSON.parse(out.stdout) as { PasswordData: string }).PasswordData;
  } finally {
    rmSync(keyFile, { force: true });
  }
}

test('EnablePasswordGeneration: the helper deletes .run-once, the instance boots, and the AWS CLI decrypts the new password with the key pair', async () => {
  const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path } });
  expect(await ntfsCat(rootOf(instance.imagePath!), RUN_ONCE)).toBeDefined();
  // Before the run, GetPasswordData already holds the launch's password data, which the key pair
  // opens (review W1): the run must not take it for the new one.
  const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
  expect(sha(await cliPassword(instance.instanceId, instance.keyPairPrivateKeyPem!))).toBe(twin.agent.windows.launchPasswordSha256(instance.instanceId));
  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId });
  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const names = result.steps.map((s) => s.name);
  expect(names).toEqual(expect.arrayContaining(['branchOnPlatform', 'resetWindows', 'releaseWindows', 'startWindows', 'waitForPassword', 'cleanupWindows']));
  expect(names).not.toContain('injectKey');
  // The helper ran Ubuntu (Canonical's parameter), not Amazon Linux.
  expect(callLog.some((c) => c.service === 'ssm' && c.action === 'GetParameter')).toBe(true);
  // ntfs-3g's ntfscat: .run-once is no longer there (renamed aside in its folder).
  expect(await ntfsCat(rootOf(instance.imagePath!), RUN_ONCE)).toBeUndefined();
  const out = JSON.parse(String(result.outputs['waitForPassword.Payload'])) as Record<string, string>;
  expect(out).toMatchObject({ Mode: 'EnablePasswordGeneration', PasswordParameterName: 'none', InstanceState: 'running' });
  expect(out.NextStep).toContain(`aws ec2 get-password-data --instance-id ${instance.instanceId} --priv-launch-key`);
  // The AWS CLI, with the key pair's private key, decrypts what GetPasswordData returns.
  const password = await cliPassword(instance.instanceId, instance.keyPairPrivateKeyPem!);
  expect(password).toMatch(/^\S{32}$/);
  // It is the password this run's boot made, not the launch's.
  expect(sha(password)).toBe(twin.agent.windows.lastPasswordSha256(instance.instanceId));
  expect(sha(password)).not.toBe(twin.agent.windows.launchPasswordSha256(instance.instanceId));
  expect(twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId)).toEqual([
    { instanceId: instance.instanceId, agent: 'EC2Launch v2', passwordGenerated: true, newPasswordTask: false },
  ]);
  // Nothing of ours is left; no password or key in an output or a Lambda's log.
  expect(await twin.leftovers(instance.instanceId)).toMatchObject({ helpers: [], vpcs: [], locks: [] });
  const texts = [JSON.stringify(result.outputs), ...twin.lambdaLogs()];
  expect(texts.join('\n')).not.toContain(password);
  expectNoKeyMaterial(texts);
});

test('NewPassword, a stopped instance without a key pair: the password ends in the SecureString, the run key is deleted, the instance runs', async () => {
  const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path, keyPair: false }, state: 'stopped' });
  const { result } = await twin.runReset({ InstanceId: instance.instanceId, Mode: 'NewPassword' });
  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const out = JSON.parse(String(result.outputs['waitForPassword.Payload'])) as Record<string, string>;
  const name = `/ec2rl/windows/${instance.instanceId}/password`;
  expect(out).toMatchObject({ Mode: 'NewPassword', PasswordParameterName: name, InstanceState: 'running' });
  const stored = await twin.getParameter(name, true);
  expect(stored).toMatch(/^\S{32}$/);
  // The run's own key does not outlive the run.
  expect(await twin.getParameter(`/reset-access/windows-run-keys/${instance.instanceId}`)).toBeUndefined();
  // The boot played the one-shot task the helper wrote into agent-config.yml.
  expect(twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId)).toEqual([
    { instanceId: instance.instanceId, agent: 'EC2Launch v2', passwordGenerated: false, newPasswordTask: true },
  ]);
  expect(createHash('sha256').update(stored!).digest('hex')).toBe(twin.agent.windows.lastPasswordSha256(instance.instanceId));
  const texts = [JSON.stringify(result.outputs), ...twin.lambdaLogs()];
  expect(texts.join('\n')).not.toContain(stored!);
  expectNoKeyMaterial(texts);
});

/**
 * What the windows-reset script may touch on the volume, read back with ntfs-3g's own tools
 * (ntfscat, ntfsls, ntfsinfo), never mounted: agent-config.yml's bytes, the names in EC2Launch v2's
 * state folder, and .run-once's bytes and MFT record (a rename back keeps the record, and with it
 * the file's security descriptor). The whole image's sha256 is not the measure: a read-write mount
 * (the write, then the revert) updates NTFS's own metadata (directory times, $LogFile), which
 * Windows does at every boot too.
 */
async function touchedFiles(path: string): Promise<Record<string, string | undefined>> {
  const img = rootOf(path);
  const hash = (b: Buffer | undefined): string | undefined => (b ? createHash('sha256').update(b).digest('hex') : undefined);
  const info = (await readNtfs(img, 'ntfsinfo', (device) => ['--force', '--file', RUN_ONCE, device])).toString('utf8');
  return {
    agentConfig: hash(await ntfsCat(img, CONFIG)),
    state: (await ntfsList(img, STATE)).sort().join(' '),
    runOnce: hash(await ntfsCat(img, RUN_ONCE)),
    runOnceRecord: /Dumping Inode (\d+)/.exec(info)?.[1],
  };
}

describe('a failure after each Windows step, and a cancel, leave the volume as it was (Mode=Revert, review W2)', () => {
  // Both modes; the instance stopped or running before the run; the volume on the helper, on its
  // way back, or back on the instance when the fault hits.
  test.each([
    ['resetWindows', 'before', 'NewPassword', 'stopped'],
    ['resetWindows', 'after', 'EnablePasswordGeneration', 'stopped'],
    ['releaseWindows', 'before', 'NewPassword', 'running'],
    ['releaseWindows', 'after', 'EnablePasswordGeneration', 'stopped'],
    ['waitForWindowsRootReleased', 'after', 'NewPassword', 'running'],
    ['reattachWindowsRoot', 'after', 'NewPassword', 'stopped'],
    ['startWindows', 'before', 'EnablePasswordGeneration', 'running'],
  ] as const)('a failure at %s (%s it runs), Mode=%s, instance %s', async (step, when, mode, state) => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path }, state });
    const files = await touchedFiles(instance.imagePath!);
    expect(files.runOnceRecord).toMatch(/^\d+$/);
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId, Mode: mode }, { faults: [{ step, when, message: 'injected by the test' }] });
    expect(result.status).toBe('Failed');
    // restore then cleanup: the root back at /dev/sda1, the instance in its state, nothing left.
    await expectNothingLost(twin, before);
    // Every file the script touched is as it was (the revert ran before the volume went back).
    expect(await touchedFiles(instance.imagePath!)).toEqual(files);
    const message = String(JSON.parse(String(result.outputs['restore.Payload'])).Message);
    expect(message).toMatch(step === 'resetWindows' && when === 'before' ? /^(?!.*revert)/i : /reverted what the windows-reset command wrote/);
    // Nothing is armed any more: the run's key does not outlive the run.
    expect(await twin.getParameter(`/reset-access/windows-run-keys/${instance.instanceId}`)).toBeUndefined();
    // An instance that was running is started again by restore: its boot finds no trigger.
    const boots = twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId);
    expect(boots.every((b) => !b.passwordGenerated && !b.newPasswordTask)).toBe(true);
    expect(boots).toHaveLength(state === 'running' ? 1 : 0);
  });

  test('a StartInstances that EC2 refuses (the instance never booted) is reverted like any earlier failure (review Q1)', async () => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path }, state: 'stopped' });
    const files = await touchedFiles(instance.imagePath!);
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset(
      { InstanceId: instance.instanceId, Mode: 'NewPassword' },
      { awsFaults: [{ service: 'ec2', action: 'StartInstances', code: 'InsufficientInstanceCapacity', message: 'injected by the test' }] },
    );
    expect(result.status).toBe('Failed');
    await expectNothingLost(twin, before);
    expect(await touchedFiles(instance.imagePath!)).toEqual(files);
    expect(String(JSON.parse(String(result.outputs['restore.Payload'])).Message)).toMatch(/reverted what the windows-reset command wrote/);
    expect(await twin.getParameter(`/reset-access/windows-run-keys/${instance.instanceId}`)).toBeUndefined();
    expect(twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId)).toEqual([]);
  });

  test('a failure after the run started the instance reverts nothing: its boot ran the trigger, and restore says so', async () => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path }, state: 'stopped' });
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId, Mode: 'NewPassword' }, { faults: [{ step: 'waitForPassword', when: 'before', message: 'injected by the test' }] });
    expect(result.status).toBe('Failed');
    await expectNothingLost(twin, before);
    const message = String(JSON.parse(String(result.outputs['restore.Payload'])).Message);
    expect(message).toMatch(/not reverted: the run started/);
    expect(twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId)).toEqual([
      { instanceId: instance.instanceId, agent: 'EC2Launch v2', passwordGenerated: false, newPasswordTask: true },
    ]);
    // The boot's password went to the console encrypted to the run's key: the key is kept, not deleted.
    expect((await twin.getParameter(`/reset-access/windows-run-keys/${instance.instanceId}`)) === undefined ? 'deleted' : 'kept').toBe('kept');
  });

  test('a cancel while the windows-reset command runs hands over to -Restore, which reverts and puts everything back', async () => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path } });
    const files = await touchedFiles(instance.imagePath!);
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId }, { cancelAt: 'waitForWindowsReset' });
    expect(result.status).toBe('Cancelled');
    await expectNothingLost(twin, before);
    expect(await touchedFiles(instance.imagePath!)).toEqual(files);
  });
});
