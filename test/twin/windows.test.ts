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
import { buildWindowsImage, ntfsCat, type WindowsImage } from '../../local/disk/ntfs';
import { REGION, startTwin, type Twin } from '../../local/twin';
import { baseline, expectNothingLost, expectNoKeyMaterial } from './support';

const run = promisify(execFile);
jest.setTimeout(300000);

let twin: Twin;
let dir: string;
let image: WindowsImage;
const RUN_ONCE = 'ProgramData/Amazon/EC2Launch/state/.run-once';

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
  // Before the run the instance has no password data the key pair opens (a boot with .run-once set generates none).
  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId });
  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const names = result.steps.map((s) => s.name);
  expect(names).toEqual(expect.arrayContaining(['branchOnPlatform', 'resetWindows', 'releaseWindows', 'startWindows', 'waitForPassword', 'cleanupWindows']));
  expect(names).not.toContain('injectKey');
  // The helper ran Ubuntu (Canonical's parameter), not Amazon Linux.
  expect(callLog.some((c) => c.service === 'ssm' && c.action === 'GetParameter')).toBe(true);
  // ntfs-3g's ntfscat: .run-once is gone from the volume.
  expect(await ntfsCat(rootOf(instance.imagePath!), RUN_ONCE)).toBeUndefined();
  const out = JSON.parse(String(result.outputs['waitForPassword.Payload'])) as Record<string, string>;
  expect(out).toMatchObject({ Mode: 'EnablePasswordGeneration', PasswordParameterName: 'none', InstanceState: 'running' });
  expect(out.NextStep).toContain(`aws ec2 get-password-data --instance-id ${instance.instanceId} --priv-launch-key`);
  // The AWS CLI, with the key pair's private key, decrypts what GetPasswordData returns.
  const password = await cliPassword(instance.instanceId, instance.keyPairPrivateKeyPem!);
  expect(password).toMatch(/^\S{32}$/);
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
  // The boot played the one-shot task the helper wrote into agent-config.yml (read back with ntfscat).
  const config = (await ntfsCat(rootOf(instance.imagePath!), 'ProgramData/Amazon/EC2Launch/config/agent-config.yml'))!.toString('utf8');
  expect(config).toContain('executeScript');
  expect(twin.agent.windows.boots().filter((b) => b.instanceId === instance.instanceId)).toEqual([
    { instanceId: instance.instanceId, agent: 'EC2Launch v2', passwordGenerated: false, newPasswordTask: true },
  ]);
  expect(createHash('sha256').update(stored!).digest('hex')).toBe(twin.agent.windows.lastPasswordSha256(instance.instanceId));
  const texts = [JSON.stringify(result.outputs), ...twin.lambdaLogs()];
  expect(texts.join('\n')).not.toContain(stored!);
  expectNoKeyMaterial(texts);
});

describe('a failure after each Windows step, and a cancel, leave the instance as it was', () => {
  test.each([
    ['resetWindows', 'before'],
    ['releaseWindows', 'before'],
    ['startWindows', 'before'],
    ['waitForPassword', 'before'],
  ] as const)('a failure at %s (%s it runs)', async (step, when) => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path }, state: 'stopped' });
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId, Mode: 'NewPassword' }, { faults: [{ step, when, message: 'injected by the test' }] });
    expect(result.status).toBe('Failed');
    // restore then cleanup: the root back at /dev/sda1, the instance stopped again, nothing left.
    await expectNothingLost(twin, before);
    // The run key is deleted when no command was sent; after that the volume may carry the boot
    // task, which encrypts the next boot's password to this key only: it is kept (restore.ts).
    // (Compared as kept/deleted: a failure message must never print the key.)
    const runKey = await twin.getParameter(`/reset-access/windows-run-keys/${instance.instanceId}`);
    expect(runKey === undefined ? 'deleted' : 'kept').toBe(step === 'resetWindows' ? 'deleted' : 'kept');
  });

  test('a fault before the script ran leaves the volume byte for byte as it was', async () => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path } });
    const hash = async () => createHash('sha256').update((await run('sha256sum', [instance.imagePath!])).stdout).digest('hex');
    const h0 = await hash();
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId }, { faults: [{ step: 'resetWindows', when: 'before', message: 'injected by the test' }] });
    expect(result.status).toBe('Failed');
    await expectNothingLost(twin, before);
    expect(await hash()).toBe(h0);
  });

  test('a cancel while the windows-reset command runs hands over to -Restore, which puts everything back', async () => {
    const instance = await twin.createLockedOutInstance({ windows: { imagePath: image.path } });
    const before = await baseline(twin, instance, false);
    const { result } = await twin.runReset({ InstanceId: instance.instanceId }, { cancelAt: 'waitForWindowsReset' });
    expect(result.status).toBe('Cancelled');
    await expectNothingLost(twin, before);
  });
});
