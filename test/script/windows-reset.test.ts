/**
 * The windows-reset script (the text deployed in the Command document) on real NTFS images made by
 * mkntfs, on loop devices, run as the SSM agent runs it on the helper (local/disk/run-inject.ts).
 * What it wrote is read back with ntfs-3g's own readers (ntfscat, ntfsls), never through our code;
 * what it refuses leaves every byte of the image as it was (SHA-256 of the whole image).
 */
import { createHash, generateKeyPairSync } from 'crypto';
import { execFile, execFileSync } from 'child_process';
import { readFileSync, writeFileSync } from 'fs';
import { join } from 'path';
import { promisify } from 'util';
import { parse } from 'yaml';
import { windowsResetScriptFromDocument, loadWindowsResetDocument } from '../../lib/windows-reset-document';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import {
  buildWindowsImage,
  ec2ConfigXml,
  EC2LAUNCH_V2_AGENT_CONFIG,
  ntfsCat,
  ntfsList,
  readNtfs,
  type WindowsImage,
  type WindowsImageOptions,
} from '../../local/disk/ntfs';
import { runInjectScript, type RunInjectResult } from '../../local/disk/run-inject';
import { removeDir, scratchDir, systemState, type SystemState } from '../support/disk';

const run = promisify(execFile);
const VOLUME_ID = 'vol-0c1d2e3f4a5b60718';
const RUN_ID = '3f2a9c4e-1b7d-4e8f-9a0b-5c6d7e8f9a0b';
const script = windowsResetScriptFromDocument(loadWindowsResetDocument());
const V2_CONFIG = 'ProgramData/Amazon/EC2Launch/config/agent-config.yml';
const V2_STATE = '/ProgramData/Amazon/EC2Launch/state';

const dir = scratchDir('windows-reset-test-');
let counter = 0;
let state: SystemState;
beforeEach(() => {
  state = systemState(dir);
});
afterEach(() => {
  expect(systemState(dir)).toEqual(state);
});
afterAll(() => removeDir(dir));

async function image(options: WindowsImageOptions): Promise<WindowsImage> {
  counter += 1;
  return buildWindowsImage(join(dir, `windows-${counter}.img`), options);
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The run's key as the runbook passes it: base64 of the DER SubjectPublicKeyInfo. */
function rsaKey(bits = 2048): { der: string; jwk: { n: string; e: string } } {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
  return { der: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), jwk };
}

async function reset(img: WindowsImage, env: Record<string, string> = {}): Promise<RunInjectResult> {
  const result = await runInjectScript({ script, env: { SSM_VolumeId: VOLUME_ID, ...env }, volumes: { [VOLUME_ID]: img.path } });
  expect(result.leftoverMounts).toEqual([]);
  expect(result.leftoverTmp).toEqual([]);
  return result;
}

/** A refusal: exit 1, the error report naming the problem, and the image's bytes unchanged. */
async function expectRefused(img: WindowsImage, env: Record<string, string>, message: RegExp): Promise<RunInjectResult> {
  const before = sha256(img.path);
  const result = await reset(img, env);
  expect(result.exitCode).toBe(1);
  expect(result.report).toMatchObject({ version: 1, status: 'error', changes: [] });
  expect(result.report?.error).toMatch(message);
  expect(sha256(img.path)).toBe(before);
  return result;
}

/** An MFT record number as ntfsls -i prints it, per name in a directory. */
async function inodes(img: WindowsImage, directory: string): Promise<Record<string, string>> {
  const out = await readNtfs(img, 'ntfsls', (device) => ['--all', '--force', '--inode', '--path', directory, device]);
  return Object.fromEntries(
    out
      .toString('utf8')
      .split('\n')
      .map((line) => /^\s*(\d+)\s+(.+)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[2], m[1]]),
  );
}

const b64url = (s: string): string => Buffer.from(s, 'base64url').toString('base64');
/** One RSA-2048 run key for the cases where any valid key will do. */
const KEY = rsaKey();
const NEW_PASSWORD: Record<string, string> = { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: KEY.der };

/** One untouched EC2Launch v2 image shared by the refusals decided before the volume is opened (each proves it stays unchanged). */
let shared: WindowsImage | undefined;
async function sharedImage(): Promise<WindowsImage> {
  shared ??= await image({});
  return shared;
}

describe('windows-reset script, Mode=EnablePasswordGeneration', () => {
  it('EC2Launch v2 (MBR with a System Reserved partition): state\\.run-once renamed in its folder (same MFT record), nothing else', async () => {
    // Prepare
    const img = await image({ partitioning: 'mbr', agentFileVersion: '2.0.1948.0' });
    const inodesBefore = await inodes(img, V2_STATE);
    expect(Object.keys(inodesBefore).sort()).toEqual(['.', '..', '.run-once', 'state.json']);

    // Act
    const result = await reset(img, { SSM_RunId: RUN_ID });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report).toEqual({
      version: 1,
      status: 'ok',
      agent: 'EC2Launch v2',
      agentVersion: '2.0.1948.0',
      mode: 'EnablePasswordGeneration',
      changes: [
        {
          path: '\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once',
          action: 'renamed',
          to: `\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once.ec2-reset-access-${RUN_ID}`,
        },
      ],
      warnings: ['EC2Launch v2 runs every task with frequency once again at next boot (setAdminAccount among them, and any script set to run once)'],
    });
    expect(await inodes(img, V2_STATE)).toEqual({
      '.': inodesBefore['.'],
      '..': inodesBefore['..'],
      [`.run-once.ec2-reset-access-${RUN_ID}`]: inodesBefore['.run-once'],
      'state.json': inodesBefore['state.json'],
    });
    expect((await ntfsCat(img, V2_CONFIG))?.toString('utf8')).toBe(EC2LAUNCH_V2_AGENT_CONFIG);
  });

  it('EC2Launch v2 without .run-once: succeeds, writes nothing, says so', async () => {
    const img = await image({ partitioning: 'gpt', runOnce: false });
    const before = sha256(img.path);

    const result = await reset(img);

    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({ status: 'ok', agent: 'EC2Launch v2', changes: [] });
    expect(result.report?.warnings).toEqual([expect.stringMatching(/already absent/)]);
    expect(sha256(img.path)).toBe(before);
  });

  it('EC2Config (GPT, the settings file spelled Config.xml): Ec2SetPassword Enabled with the run\'s mark, every other byte kept; Revert gives back the exact file', async () => {
    const img = await image({ partitioning: 'gpt', agents: ['ec2config'], ec2ConfigFileName: 'Config.xml', agentFileVersion: '4.9.4500.0' });
    const file = 'Program Files/Amazon/Ec2ConfigService/Settings/Config.xml';
    const exe = await ntfsCat(img, 'Program Files/Amazon/Ec2ConfigService/Ec2Config.exe');
    const original = (await ntfsCat(img, file)) as Buffer;

    const result = await reset(img, { SSM_RunId: RUN_ID });

    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({
      status: 'ok',
      agent: 'EC2Config',
      agentVersion: '4.9.4500.0',
      changes: [{ path: '\\Program Files\\Amazon\\Ec2ConfigService\\Settings\\Config.xml', action: 'rewritten' }],
      warnings: [],
    });
    // The expected file is the fixture's own text with Enabled (CRLF line ends and all) and, right after
    // the State element, an XML comment holding the run id and the former State.
    const mark = `<!-- ec2-reset-access:${RUN_ID}:${Buffer.from('Disabled').toString('base64')} -->`;
    const written = ((await ntfsCat(img, file)) as Buffer).toString('utf8');
    expect(written).toBe(ec2ConfigXml('Disabled').replace('<State>Disabled</State>', `<State>Enabled</State>${mark}`));
    expect(written).toBe(ec2ConfigXml('Enabled').replace('<State>Enabled</State>', `<State>Enabled</State>${mark}`));
    expect(await ntfsCat(img, 'Program Files/Amazon/Ec2ConfigService/Ec2Config.exe')).toEqual(exe);

    const reverted = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: RUN_ID });
    expect(reverted.exitCode).toBe(0);
    expect(reverted.report?.changes).toEqual([{ path: '\\Program Files\\Amazon\\Ec2ConfigService\\Settings\\Config.xml', action: 'rewritten' }]);
    expect(await ntfsCat(img, file)).toEqual(original);
  });

  it('EC2Config with Ec2SetPassword already Enabled (whole-disk NTFS): succeeds without writing', async () => {
    const img = await image({ partitioning: 'whole', agents: ['ec2config'], ec2ConfigXml: ec2ConfigXml('Enabled') });
    const before = sha256(img.path);

    const result = await reset(img);

    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({ status: 'ok', agent: 'EC2Config', changes: [], warnings: [expect.stringMatching(/already Enabled/)] });
    expect(sha256(img.path)).toBe(before);
  });

  it('a hiberfil.sys whose header was zeroed (Windows resumed and shut down): not refused', async () => {
    const img = await image({ hiberfil: 'zero' });

    const result = await reset(img);

    expect(result.exitCode).toBe(0);
    expect(result.report?.changes).toEqual([
      { path: '\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once', action: 'renamed', to: '\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once.ec2-reset-access' },
    ]);
  });
});

describe('windows-reset script, Mode=NewPassword (EC2Launch v2)', () => {
  it('adds one executeScript task to postReady carrying the run id, the run key and the original file; agent-config.yml keeps its MFT record; no file is created', async () => {
    // Prepare
    const img = await image({ partitioning: 'mbr' });
    const key = KEY;
    const original = (await ntfsCat(img, V2_CONFIG)) as Buffer;
    const recordBefore = (await inodes(img, '/ProgramData/Amazon/EC2Launch/config'))['agent-config.yml'];

    // Act
    const result = await reset(img, { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: key.der });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report).toEqual({
      version: 1,
      status: 'ok',
      agent: 'EC2Launch v2',
      agentVersion: '',
      mode: 'NewPassword',
      changes: [{ path: '\\ProgramData\\Amazon\\EC2Launch\\config\\agent-config.yml', action: 'rewritten' }],
      warnings: [],
    });
    // Rewritten in place (same MFT record, so the same security descriptor), and nothing created beside it:
    // ntfs-3g gives a file it creates without a user mapping an ACL granting everyone full access
    // (tuxera/ntfs-3g, libntfs-3g/dir.c calling ntfs_sd_add_everyone in security.c).
    expect(await inodes(img, '/ProgramData/Amazon/EC2Launch/config')).toEqual({ '.': expect.any(String), '..': expect.any(String), 'agent-config.yml': recordBefore });
    // Read with an independent YAML parser: the original configuration plus one task.
    const before = parse(original.toString('utf8')) as { config: Array<{ stage: string; tasks: unknown[] }> };
    const after = parse(((await ntfsCat(img, V2_CONFIG)) as Buffer).toString('utf8')) as typeof before;
    const post = after.config.find((s) => s.stage === 'postReady');
    const added = post?.tasks.at(-1) as { task: string; inputs: Array<Record<string, string>> };
    expect(added.task).toBe('executeScript');
    expect(added.inputs).toHaveLength(1);
    expect(added.inputs[0]).toMatchObject({ frequency: 'always', type: 'powershell', runAs: 'localSystem' });
    post?.tasks.pop();
    expect(after).toEqual(before);
    // The boot action holds this run's values: the modulus and exponent are node's own reading of the key.
    const content = added.inputs[0].content;
    expect(content).toContain(`$RunId = '${RUN_ID}'`);
    expect(content).toContain(`$KeyXml = '<RSAKeyValue><Modulus>${b64url(key.jwk.n)}</Modulus><Exponent>${b64url(key.jwk.e)}</Exponent></RSAKeyValue>'`);
    expect(content).toContain(`$OriginalConfig = '${original.toString('base64')}'`);
    expect(content).not.toMatch(/__(RUN_ID|KEY_XML|ORIGINAL_CONFIG_B64)__/);
    // .run-once stays: no other once-task runs again.
    expect((await ntfsList(img, V2_STATE)).sort()).toEqual(['.run-once', 'state.json']);
  });

  it('an RSA-3072 key and a postReady stage that already has an executeScript task: the entry joins that task (a task cannot repeat in a stage)', async () => {
    const config = `${EC2LAUNCH_V2_AGENT_CONFIG}  - task: executeScript\r\n    inputs:\r\n    - frequency: always\r\n      type: powershell\r\n      runAs: admin\r\n      content: Write-Host hello\r\n`;
    const img = await image({ agentConfig: config });
    const key = rsaKey(3072);

    const result = await reset(img, { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: key.der });

    expect(result.exitCode).toBe(0);
    const after = parse(((await ntfsCat(img, V2_CONFIG)) as Buffer).toString('utf8')) as { config: Array<{ stage: string; tasks: Array<{ task: string; inputs: Array<Record<string, string>> }> }> };
    const tasks = after.config.find((s) => s.stage === 'postReady')?.tasks ?? [];
    expect(tasks.map((t) => t.task)).toEqual(['startSsm', 'executeScript']);
    expect(tasks[1].inputs.map((i) => i.runAs)).toEqual(['admin', 'localSystem']);
    expect(tasks[1].inputs[0].content).toBe('Write-Host hello');
    expect(tasks[1].inputs[1].content).toContain(b64url(key.jwk.n));
  });

  it('a second run (either mode) before the instance booted the first one is refused, nothing changed', async () => {
    const img = await image({});
    expect((await reset(img, NEW_PASSWORD)).exitCode).toBe(0);

    await expectRefused(img, { ...NEW_PASSWORD, SSM_RunId: 'another-run' }, /earlier NewPassword run that has not booted yet/);
    await expectRefused(img, {}, /earlier NewPassword run that has not booted yet/);
  });
});

describe('windows-reset script, Mode=Revert (the restore path of a NewPassword run)', () => {
  it('writes back, in place, the original agent-config.yml that the pending task of this run carries; another run id changes nothing', async () => {
    // Prepare
    const img = await image({ partitioning: 'gpt' });
    const original = (await ntfsCat(img, V2_CONFIG)) as Buffer;
    const records = await inodes(img, '/ProgramData/Amazon/EC2Launch/config');
    expect((await reset(img, NEW_PASSWORD)).exitCode).toBe(0);
    expect(await ntfsCat(img, V2_CONFIG)).not.toEqual(original);

    // Act: a run id that wrote nothing here, then the run's own
    const before = sha256(img.path);
    const other = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: 'another-run' });
    const after = sha256(img.path);
    const result = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: RUN_ID });

    // Assess
    expect(other.exitCode).toBe(0);
    expect(other.report).toMatchObject({ status: 'ok', changes: [], warnings: [expect.stringMatching(/nothing of run another-run to revert/)] });
    expect(after).toBe(before);
    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({
      status: 'ok',
      agent: 'EC2Launch v2',
      mode: 'Revert',
      changes: [{ path: '\\ProgramData\\Amazon\\EC2Launch\\config\\agent-config.yml', action: 'rewritten' }],
      warnings: [],
    });
    expect(await ntfsCat(img, V2_CONFIG)).toEqual(original);
    expect(await inodes(img, '/ProgramData/Amazon/EC2Launch/config')).toEqual(records);
    // Reverted: a new run is accepted again.
    expect((await reset(img, {})).exitCode).toBe(0);
  });

  it('agent-config.yml written as JSON with a byte-order mark (AWS\'s PowerShell example: ConvertTo-Json | Out-File -encoding UTF8): NewPassword then Revert gives back the exact bytes', async () => {
    // ec2launch-v2-settings.html, "get-agent-config": the file may hold JSON; Windows PowerShell 5.1's UTF8 encoding writes a BOM.
    const json = JSON.stringify(parse(EC2LAUNCH_V2_AGENT_CONFIG), null, 4).replace(/\n/g, '\r\n');
    const img = await image({ agentConfig: `\ufeff${json}\r\n` });
    const original = (await ntfsCat(img, V2_CONFIG)) as Buffer;
    expect(original.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));

    const written = await reset(img, NEW_PASSWORD);
    expect(written.exitCode).toBe(0);
    const after = parse(((await ntfsCat(img, V2_CONFIG)) as Buffer).toString('utf8')) as { config: Array<{ stage: string; tasks: Array<{ task: string }> }> };
    expect(after.config.find((s) => s.stage === 'postReady')?.tasks.map((t) => t.task)).toEqual(['startSsm', 'executeScript']);
    const reverted = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: RUN_ID });

    expect(reverted.exitCode).toBe(0);
    expect(await ntfsCat(img, V2_CONFIG)).toEqual(original);
  });

  it('EnablePasswordGeneration on EC2Launch v2: the saved .run-once goes back under its name (same MFT record); not once the agent has made a new one', async () => {
    // Prepare
    const img = await image({});
    const records = await inodes(img, V2_STATE);
    expect((await reset(img, { SSM_RunId: RUN_ID })).exitCode).toBe(0);

    // Act
    const result = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: RUN_ID });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({
      status: 'ok',
      changes: [{ path: `\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once.ec2-reset-access-${RUN_ID}`, action: 'renamed', to: '\\ProgramData\\Amazon\\EC2Launch\\state\\.run-once' }],
      warnings: [],
    });
    expect(await inodes(img, V2_STATE)).toEqual(records);

    // The instance booted after a second run: EC2Launch v2 made a new .run-once (played here with an ntfs-3g mount).
    expect((await reset(img, { SSM_RunId: 'second-run' })).exitCode).toBe(0);
    const loop = await attachLoop(img.path);
    try {
      const boot = 'set -e; m=$(mktemp -d); ntfs-3g "$1" "$m"; : > "$m/ProgramData/Amazon/EC2Launch/state/.run-once"; umount "$m"; rmdir "$m"';
      await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', boot, 'boot', loop.partitions[1] as string]);
    } finally {
      await detachLoop(loop.device);
    }
    const before = sha256(img.path);
    const late = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: 'second-run' });
    expect(late.exitCode).toBe(0);
    expect(late.report).toMatchObject({ status: 'ok', changes: [], warnings: [expect.stringMatching(/has booted since run second-run/)] });
    expect(sha256(img.path)).toBe(before);
  });

  it('on EC2Config that changed nothing of this run there is nothing to revert; without a RunId it is refused', async () => {
    const img = await image({ agents: ['ec2config'] });
    const before = sha256(img.path);
    const result = await reset(img, { SSM_Mode: 'Revert', SSM_RunId: RUN_ID });
    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({ status: 'ok', agent: 'EC2Config', changes: [], warnings: [expect.stringMatching(/nothing of run .* to revert/)] });
    expect(sha256(img.path)).toBe(before);
    await expectRefused(img, { SSM_Mode: 'Revert' }, /RunId .* is required with Mode=Revert/);
  });
});

describe('windows-reset script refuses, before any write', () => {
  it('a hibernated volume (hiberfil.sys "HIBR"), which ntfs-3g itself will not mount read-write', async () => {
    const img = await image({ hiberfil: 'HIBR' });
    // The fixture is hibernated by ntfs-3g's own judgement: a read-write mount falls back to read-only.
    const loop = await attachLoop(img.path);
    try {
      const probe = 'set -e; m=$(mktemp -d); ntfs-3g -o rw "$1" "$m" 2>/dev/null || { echo refused; exit 0; }; findmnt -n -o OPTIONS --mountpoint "$m" | cut -d, -f1; umount "$m"; rmdir "$m"';
      const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', probe, 'probe', loop.partitions[1] as string]);
      expect(['ro', 'refused']).toContain(stdout.trim());
    } finally {
      await detachLoop(loop.device);
    }

    await expectRefused(img, {}, /hibernated or was shut down with Fast Startup/);
  });

  it('Fast Startup / hibernation with the lower-case "hibr" header, in NewPassword too', async () => {
    const img = await image({ hiberfil: 'hibr', partitioning: 'gpt' });
    await expectRefused(img, { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: KEY.der }, /hibernated or was shut down with Fast Startup/);
  });

  it('a BitLocker volume (libblkid: TYPE=BitLocker)', async () => {
    const img = await image({ partitioning: 'whole', bitlocker: true });
    const { stdout } = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', img.path]);
    expect(stdout.trim()).toBe('BitLocker');
    await expectRefused(img, {}, /BitLocker/);
  });

  it.each([
    ['mbr-dynamic', /dynamic disk/],
    ['gpt-ldm', /dynamic disk/],
    ['gpt-storage-spaces', /Storage Spaces/],
  ] as const)('partitioning %s', async (partitioning, message) => {
    const img = await image({ partitioning });
    await expectRefused(img, {}, message);
  });

  it('no launch agent', async () => {
    await expectRefused(await image({ agents: ['none'] }), {}, /no known launch agent/);
  });

  it('two launch agents (EC2Launch v2 and EC2Config): cannot tell which one runs', async () => {
    await expectRefused(await image({ agents: ['ec2launch-v2', 'ec2config'] }), {}, /more than one launch agent is installed \(EC2Launch v2,EC2Config\)/);
  });

  it('EC2Launch v1 (no documented offline method), in both modes', async () => {
    const img = await image({ agents: ['ec2launch-v1'] });
    for (const env of [{ SSM_Mode: 'EnablePasswordGeneration' }, NEW_PASSWORD]) {
      const result = await expectRefused(img, env, /EC2Launch v1 has no documented way/);
      expect((result.report as unknown as { agent: string }).agent).toBe('EC2Launch v1');
    }
  });

  it('NewPassword on EC2Config', async () => {
    await expectRefused(await image({ agents: ['ec2config'] }), { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: KEY.der }, /needs EC2Launch v2/);
  });

  it('EnablePasswordGeneration when agent-config.yml sets no random password', async () => {
    const config = EC2LAUNCH_V2_AGENT_CONFIG.replace('        type: random', '        type: doNothing');
    await expectRefused(await image({ agentConfig: config }), {}, /no setAdminAccount task with password type random/);
  });

  it('NewPassword on a full volume (the task would grow agent-config.yml): refused before the read-write mount', async () => {
    const img = await image({ fill: true });
    const { stdout } = await readNtfs(img, 'ntfsinfo', (device) => ['--force', '--mft', device]).then((b) => ({ stdout: b.toString('utf8') }));
    // ntfs-3g's own reader confirms the fixture is (nearly) full.
    const free = Number(/Free Clusters:\s+(\d+)/.exec(stdout)?.[1]);
    expect(free).toBeLessThan(256);
    await expectRefused(img, NEW_PASSWORD, /too few to write \d+ more bytes safely/);
  });

  it('an NTFS volume without Windows', async () => {
    await expectRefused(await image({ noWindows: true }), {}, /no Windows installation/);
  });

  it.each([
    [{ SSM_Mode: 'Reset' }, /Mode must be EnablePasswordGeneration, NewPassword or Revert/],
    [{ SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID }, /PasswordKey must be the run's RSA public key/],
    [{ SSM_Mode: 'NewPassword', SSM_PasswordKey: 'A'.repeat(392) }, /RunId .* is required with Mode=NewPassword/],
    [{ SSM_PasswordKey: 'A'.repeat(392) }, /PasswordKey is only for Mode=NewPassword/],
    [{ SSM_Mode: 'NewPassword', SSM_RunId: "x';Remove-Item C:\\", SSM_PasswordKey: 'A'.repeat(392) }, /RunId/],
  ])('bad parameters %o', async (env, message) => {
    await expectRefused(await sharedImage(), env as Record<string, string>, message);
  });

  it.each([
    ['an RSASSA-PSS key (not rsaEncryption)', () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64')],
    ['an Ed25519 key (too short for the pattern)', () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64')],
    ['an RSA-1024 key', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64')],
    ['an RSA key with trailing bytes', () => Buffer.concat([Buffer.from(KEY.der, 'base64'), Buffer.from([0])]).toString('base64')],
  ])('PasswordKey that is %s', async (_name, makeKey) => {
    const keyText = makeKey();
    const result = await expectRefused(await sharedImage(), { SSM_Mode: 'NewPassword', SSM_RunId: RUN_ID, SSM_PasswordKey: keyText }, /PasswordKey/);
    expect(result.stdout + result.stderr).not.toContain('PRIVATE');
  });
});

describe('windows-reset script stopped with SIGKILL (how the SSM Agent cancels: its whole process group)', () => {
  it('while ntfs-3g has the Windows volume mounted: no ntfs-3g process and no mount outlive the script; the volume is unchanged', async () => {
    // Prepare: the script in its own process group (as the agent starts it), in a private namespace
    // with the by-id links; the wrapper kills the group once the script's namespace shows a FUSE mount.
    const img = await image({ partitioning: 'mbr' });
    const before = sha256(img.path);
    const scriptPath = join(dir, 'deployed-windows-reset.sh');
    writeFileSync(scriptPath, script, { mode: 0o700 });
    const loop = await attachLoop(img.path);
    let out = '';
    try {
      const serial = `nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}`;
      const wrapper = [
        'set -u',
        'mkdir -p /dev/disk; mount -t tmpfs -o size=1m sig /dev/disk; mkdir /dev/disk/by-id',
        `ln -s ../..${loop.device.slice(4)} /dev/disk/by-id/${serial}`,
        ...loop.partitions.map((p, i) => `ln -s ../..${p.slice(4)} /dev/disk/by-id/${serial}-part${i + 1}`),
        'setsid bash "$SCRIPT" >/dev/null 2>&1 & pid=$!',
        'found=0',
        'for ((i = 0; i < 2000000 && !found; i++)); do',
        '  mapfile -t lines < /proc/$pid/mounts 2>/dev/null || lines=()',
        '  for line in "${lines[@]}"; do',
        '    read -r _ mp type _ <<<"$line"',
        '    if [[ $type == fuseblk && $mp == "$TMPDIR"/windows-reset.* ]]; then found=1; break; fi',
        '  done',
        '  kill -0 $pid 2>/dev/null || break',
        'done',
        'kill -KILL -- -$pid 2>/dev/null',
        'wait $pid 2>/dev/null',
        'echo "found=$found"',
        // Every process of the script's group must end (a zombie has ended); one stuck in the kernel would not.
        'alive() { local n=0 f; for f in /proc/[0-9]*/stat; do read -r -a st < "$f" 2>/dev/null || continue; [[ ${st[4]} == "$pid" && ${st[2]} != Z ]] && n=$((n + 1)); done; echo $n; }',
        'for ((i = 0; i < 100; i++)); do [[ $(alive) == 0 ]] && break; sleep 0.05; done',
        'echo "alive=$(alive)"',
      ].join('\n');
      const tmp = join(dir, 'kill-tmp');
      execFileSync('mkdir', ['-p', tmp]);
      out = execFileSync('timeout', ['60', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', wrapper], {
        env: { PATH: process.env.PATH, SCRIPT: scriptPath, TMPDIR: tmp, SSM_VolumeId: VOLUME_ID },
        encoding: 'utf8',
      });
      // Act done; give the kernel a moment to reap, bounded, then look for any process still serving the device.
      const servers = (): string[] =>
        execFileSync('bash', ['-c', 'for c in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$c" 2>/dev/null; echo; done'], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.startsWith('ntfs-3g') && loop.partitions.some((p) => l.includes(`${p} `)));
      for (let i = 0; i < 100 && servers().length > 0; i++) await new Promise((r) => setTimeout(r, 50));

      // Assess
      expect(out).toContain('found=1');
      expect(out).toContain('alive=0');
      expect(servers()).toEqual([]);
      expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(loop.partitions[1] as string);
    } finally {
      await detachLoop(loop.device);
    }
    // Killed while only inspecting or before the write: every byte as it was; the volume still reads.
    expect(sha256(img.path)).toBe(before);
    expect((await ntfsList(img, V2_STATE)).sort()).toEqual(['.run-once', 'state.json']);
  });
});

describe('windows-reset script without ntfs-3g on the helper (review W3)', () => {
  it('uses the kernel ntfs3 driver when the kernel has it, else refuses naming the missing driver, before touching the volume', async () => {
    // Prepare: ntfs-3g and apt-get hidden (a non-executable file bound over each) in a private namespace.
    const img = await image({});
    const before = sha256(img.path);
    const scriptPath = join(dir, 'deployed-no-ntfs-3g.sh');
    writeFileSync(scriptPath, script, { mode: 0o700 });
    const loop = await attachLoop(img.path);
    let out = '';
    try {
      const serial = `nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}`;
      const wrapper = [
        'set -u',
        'mkdir -p /dev/disk; mount -t tmpfs -o size=1m nodrv /dev/disk; mkdir /dev/disk/by-id',
        `ln -s ../..${loop.device.slice(4)} /dev/disk/by-id/${serial}`,
        ...loop.partitions.map((p, i) => `ln -s ../..${p.slice(4)} /dev/disk/by-id/${serial}-part${i + 1}`),
        'for tool in ntfs-3g apt-get; do p=$(command -v "$tool") && mount --bind /dev/null "$p"; done',
        '[[ -f /usr/bin/ntfs-3g || -f /usr/bin/apt-get ]] && { echo "still visible"; exit 97; }',
        'bash "$SCRIPT" 2>/dev/null',
        'echo "exit=$?"',
      ].join('\n');
      out = execFileSync('timeout', ['120', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', wrapper], {
        env: { PATH: process.env.PATH, SCRIPT: scriptPath, SSM_VolumeId: VOLUME_ID, SSM_RunId: RUN_ID },
        encoding: 'utf8',
      });
    } finally {
      await detachLoop(loop.device);
    }

    // Assess: which branch is this kernel's (here: no ntfs3 in /proc/filesystems, no modprobe)
    const kernelHasNtfs3 = /\bntfs3\b/.test(readFileSync('/proc/filesystems', 'utf8'));
    const report = JSON.parse(out.trim().split('\n').at(-2) as string) as { status: string; error?: string; changes: unknown[] };
    if (kernelHasNtfs3) {
      expect(out).toContain('exit=0');
      expect(report.status).toBe('ok');
      expect((await ntfsList(img, V2_STATE)).sort()).toEqual([`.run-once.ec2-reset-access-${RUN_ID}`, 'state.json']);
    } else {
      expect(out).toContain('exit=1');
      expect(report).toMatchObject({ status: 'error', changes: [] });
      expect(report.error).toMatch(/neither with ntfs-3g nor with the kernel's ntfs3 driver, and ntfs-3g could not be installed .*nothing was changed/);
      expect(sha256(img.path)).toBe(before);
    }
  });
});

describe('windows-reset script stopped with SIGKILL while the volume is mounted read-write (NewPassword, during the write)', () => {
  it('no process or mount outlives it; the volume still reads, and agent-config.yml is whole: the original or the new one', async () => {
    // Prepare: a cmp on the script's PATH (/usr/local/sbin comes first) that marks the moment the new
    // agent-config.yml has been written and waits; the wrapper then kills the script's process group.
    const img = await image({});
    const original = (await ntfsCat(img, V2_CONFIG)) as Buffer;
    const scriptPath = join(dir, 'deployed-rw-kill.sh');
    writeFileSync(scriptPath, script, { mode: 0o700 });
    const bin = join(dir, 'rw-kill-bin');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'cmp'), '#!/bin/bash\n: > "$MARK"\nsleep 30\nexec /usr/bin/cmp "$@"\n', { mode: 0o755 });
    const mark = join(dir, 'rw-kill-mark');
    const loop = await attachLoop(img.path);
    let out = '';
    try {
      const serial = `nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}`;
      const wrapper = [
        'set -u',
        'mkdir -p /dev/disk; mount -t tmpfs -o size=1m rwkill /dev/disk; mkdir /dev/disk/by-id',
        `ln -s ../..${loop.device.slice(4)} /dev/disk/by-id/${serial}`,
        ...loop.partitions.map((p, i) => `ln -s ../..${p.slice(4)} /dev/disk/by-id/${serial}-part${i + 1}`),
        'mount --bind "$BIN" /usr/local/sbin',
        'rm -f "$MARK"',
        'setsid bash "$SCRIPT" >/dev/null 2>&1 & pid=$!',
        'for ((i = 0; i < 1200; i++)); do [[ -e $MARK ]] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done',
        'echo "marked=$([[ -e $MARK ]] && echo 1 || echo 0)"',
        'kill -KILL -- -$pid 2>/dev/null',
        'wait $pid 2>/dev/null',
        'alive() { local n=0 f; for f in /proc/[0-9]*/stat; do read -r -a st < "$f" 2>/dev/null || continue; [[ ${st[4]} == "$pid" && ${st[2]} != Z ]] && n=$((n + 1)); done; echo $n; }',
        'for ((i = 0; i < 100; i++)); do [[ $(alive) == 0 ]] && break; sleep 0.05; done',
        'echo "alive=$(alive)"',
      ].join('\n');
      out = execFileSync('timeout', ['90', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', wrapper], {
        env: { PATH: process.env.PATH, SCRIPT: scriptPath, BIN: bin, MARK: mark, ...NEW_PASSWORD, SSM_VolumeId: VOLUME_ID },
        encoding: 'utf8',
      });
      // Assess (processes and mounts)
      expect(out).toContain('marked=1');
      expect(out).toContain('alive=0');
      expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(loop.partitions[1] as string);
    } finally {
      await detachLoop(loop.device);
    }
    // Assess (the volume, read with ntfs-3g's own readers)
    expect((await ntfsList(img, V2_STATE)).sort()).toEqual(['.run-once', 'state.json']);
    const now = (await ntfsCat(img, V2_CONFIG)) as Buffer;
    if (!now.equals(original)) {
      const parsed = parse(now.toString('utf8')) as { config: Array<{ stage: string; tasks: Array<{ task: string; inputs?: Array<{ content?: string }> }> }> };
      const post = parsed.config.find((s) => s.stage === 'postReady');
      expect(post?.tasks.map((t) => t.task)).toEqual(['startSsm', 'executeScript']);
      expect(post?.tasks[1].inputs?.[0].content).toContain(`$OriginalConfig = '${original.toString('base64')}'`);
    }
  });
});
