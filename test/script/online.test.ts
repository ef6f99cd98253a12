/**
 * The online method (Root=/): the same script on the running system, nothing found or mounted.
 * "The running system" is a private mount namespace in which a disk image's /etc/passwd,
 * /etc/group, /etc/shadow, /etc/ssh and /home are bind-mounted over this machine's, so the
 * script reads and writes the image, never this machine's own users.
 */
import { execFileSync } from 'child_process';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { buildImage, diffImage, snapshotImage } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { parseInjectReport } from '../../local/disk/run-inject';
import { deployedScript, removeDir, scratchDir, systemState } from '../support/disk';

let dir: string;
beforeAll(() => {
  dir = scratchDir('online-test-');
});
afterAll(() => {
  removeDir(dir);
});

it('Root=/ injects into the running system: users and sshd_config of /, no device needed', async () => {
  // Prepare
  const state = systemState(dir);
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'online.img');
  await buildImage(image, {
    layout: 'ext4-whole',
    users: [{ name: 'webadmin', uid: 1500, gid: 1500, noSsh: true }, { name: 'svc', uid: 1501, gid: 1501, shell: '/usr/sbin/nologin' }],
    sshdConfigD: { '60-keys.conf': 'AuthorizedKeysFile .ssh/authorized_keys_%u\n' },
  });
  const scriptFile = join(dir, 'script.sh');
  writeFileSync(scriptFile, deployedScript(), { mode: 0o700 });
  const loop = await attachLoop(image);
  try {
    const setup = [
      'set -eu',
      'm=$(mktemp -d -p "$WORK")',
      'mount "$DEVICE" "$m"',
      'for f in passwd group shadow; do mount --bind "$m/etc/$f" "/etc/$f"; done',
      'mount --bind "$m/etc/ssh" /etc/ssh',
      'mount --bind "$m/home" /home',
      'set +e',
      'SSM_Root=/ SSM_VolumeId= SSM_Users= SSM_PublicKey="$KEY" bash "$SCRIPT"',
      'status=$?',
      'exit $status',
    ].join('\n');

    // Act
    let stdout = '';
    try {
      stdout = execFileSync('timeout', ['60', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', setup], {
        env: { PATH: process.env.PATH, WORK: dir, DEVICE: loop.device, KEY: key.publicKey, SCRIPT: scriptFile, TMPDIR: dir },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      throw new Error(`online run failed: ${(error as { stderr?: string }).stderr}`);
    }

    // Assess
    const report = parseInjectReport(stdout);
    expect(report?.status).toBe('ok');
    expect(report?.root?.device).toBeTruthy();
    // The home is on the image's filesystem, bind-mounted at /home: reported as where it lives.
    expect(report?.home).toEqual({ device: expect.stringContaining(loop.device), fstype: 'ext4' });
    expect(report?.mounts).toEqual([]);
    expect(report?.changes).toEqual([{ user: 'webadmin', uid: 1500, file: '/home/webadmin/.ssh/authorized_keys_webadmin', action: 'created' }]);
    const check = execFileSync(
      'unshare',
      ['--mount', '--propagation', 'private', 'bash', '-c', 'set -e; m=$(mktemp -d); trap \'umount "$m"; rmdir "$m"\' EXIT; mount -o ro "$1" "$m"; cat "$m/home/webadmin/.ssh/authorized_keys_webadmin"; stat -c "%a %u:%g" "$m/home/webadmin/.ssh" "$m/home/webadmin/.ssh/authorized_keys_webadmin"', 'x', loop.device],
      { encoding: 'utf8' },
    );
    expect(check).toBe(`${key.publicKey}\n700 1500:1500\n600 1500:1500\n`);
  } finally {
    await detachLoop(loop.device);
  }
  expect(systemState(dir)).toEqual(state);
});

it("Root=/: a user's link to a root-owned directory is refused, naming the path; the running system unchanged", async () => {
  // Prepare: webadmin's ~/.ssh is a link to /etc/ssh (the image's, bind-mounted over this machine's).
  const state = systemState(dir);
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'online-link.img');
  await buildImage(image, {
    layout: 'ext4-whole',
    cloudInitDefaultUser: 'webadmin',
    users: [{ name: 'webadmin', uid: 1500, gid: 1500, noSsh: true }],
    links: [{ path: '/home/webadmin/.ssh', target: '/etc/ssh', uid: 1500, gid: 1500 }],
  });
  const before = await snapshotImage(image);
  const scriptFile = join(dir, 'script-link.sh');
  writeFileSync(scriptFile, deployedScript(), { mode: 0o700 });
  const loop = await attachLoop(image);
  let stdout = '';
  try {
    const setup = [
      'set -eu',
      'm=$(mktemp -d -p "$WORK")',
      'mount "$DEVICE" "$m"',
      'for f in passwd group shadow; do mount --bind "$m/etc/$f" "/etc/$f"; done',
      'mount --bind "$m/etc/ssh" /etc/ssh',
      'mount --bind "$m/home" /home',
      'set +e',
      'SSM_Root=/ SSM_VolumeId= SSM_Users= SSM_PublicKey="$KEY" bash "$SCRIPT"',
      'exit 0',
    ].join('\n');

    // Act
    stdout = execFileSync('timeout', ['60', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', setup], {
      env: { PATH: process.env.PATH, WORK: dir, DEVICE: loop.device, KEY: key.publicKey, SCRIPT: scriptFile, TMPDIR: dir },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    await detachLoop(loop.device);
  }

  // Assess
  const report = parseInjectReport(stdout);
  expect(report?.status).toBe('error');
  expect(report?.error).toContain('/etc/ssh/authorized_keys');
  expect(report?.changes).toEqual([]);
  expect(diffImage(before, await snapshotImage(image))).toEqual([]);
  expect(systemState(dir)).toEqual(state);
});
