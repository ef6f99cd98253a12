/**
 * The second-boot proof of the UserData method with the real cloud-init (Debian's 22.4.2), run over
 * a twin disk image by local/cloud-init-boot.ts: a NoCloud seed with a fixed instance id, so every
 * boot after the first is a later boot of the same instance, as a stop and start on EC2 is.
 *
 * What it shows, each time from cloud-init itself:
 * - a shell-script part of user data runs once per instance (cc_scripts_user, once-per-instance):
 *   user data changed to another shell script on an existing instance does NOT run;
 * - our #cloud-config bootcmd (cc_bootcmd, frequency always) runs at that later boot, adds the key,
 *   and writes the marker line to the console; at the boot after, it runs again, changes nothing
 *   (the key is there) and writes the marker again;
 * - a run that cannot add the key writes a `failed` marker, with its reason, and changes nothing;
 * - after its marker the boot asks systemd to power off, once per execution (review U5; recorded by
 *   the boot, never executed on this machine);
 * - a home under an /etc/fstab filesystem that is not the one mounted when bootcmd runs is refused
 *   (review U3);
 * - this machine's own users, sshd config, /home, /etc/cloud and /var/lib/cloud are untouched.
 */
import { createHash } from 'crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'fs';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { buildUserData, findMarker, findReason } from '@common/user-data';
import { bootWithCloudInit, type CloudInitBootResult } from '../../local/cloud-init-boot';
import { buildImage, diffImage, snapshotImage } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { deployedScript, onImage, removeDir, scratchDir, systemState } from '../support/disk';

const INSTANCE_ID = 'i-0abc1234def567890';
const EXECUTION = '5d2c6e0a-1b3f-4a7e-9c8d-0e1f2a3b4c5d';

let dir: string;
beforeAll(() => {
  dir = scratchDir('user-data-boot-');
});
afterAll(() => {
  removeDir(dir);
});

/** What of this machine the boots must leave as it was. */
function hostState(): Record<string, string> {
  const hash = (path: string): string => (existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'absent');
  const listing = (path: string): string =>
    existsSync(path)
      ? readdirSync(path)
          .sort()
          .map((name) => {
            const s = statSync(join(path, name));
            return `${name}:${s.mode}:${s.uid}:${s.size}:${s.mtimeMs}`;
          })
          .join(',')
      : 'absent';
  return {
    passwd: hash('/etc/passwd'),
    group: hash('/etc/group'),
    shadow: hash('/etc/shadow'),
    sshdConfig: hash('/etc/ssh/sshd_config'),
    ssh: listing('/etc/ssh'),
    home: listing('/home'),
    cloudCfg: hash('/etc/cloud/cloud.cfg'),
    cloud: listing('/etc/cloud'),
    cloudCfgD: listing('/etc/cloud/cloud.cfg.d'),
    varLibCloud: listing('/var/lib/cloud'),
    runOurs: listing('/run/ec2-reset-access'),
    runCloudInit: listing('/run/cloud-init'),
  };
}

async function boot(image: string, userData: Buffer, name: string): Promise<CloudInitBootResult> {
  const loop = await attachLoop(image);
  try {
    const work = join(dir, name);
    return await bootWithCloudInit({ devices: [loop.device, ...loop.partitions], workDir: work, instanceId: INSTANCE_ID, userData });
  } finally {
    await detachLoop(loop.device);
  }
}

function readOnImage(image: string, path: string): Promise<string> {
  return onImage(image, '', `cat "$m${path}" 2>/dev/null || echo '<absent>'`, 'ro');
}

/** Differences outside cloud-init's own state directory (which records every boot). */
function userVisibleChanges(before: Awaited<ReturnType<typeof snapshotImage>>, after: Awaited<ReturnType<typeof snapshotImage>>): string[] {
  return diffImage(before, after)
    .map((d) => d.key)
    .filter((key) => !key.includes('/var/lib/cloud'));
}

it('a later boot of the same instance: a new shell script does not run, our bootcmd adds the key once and reports each time', async () => {
  // Prepare: the instance's first boot, with its original user data (a shell script).
  const host = hostState();
  const mounts = systemState(dir);
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'instance.img');
  await buildImage(image, { layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, noSsh: true }] });
  const original = Buffer.from('#!/bin/sh\necho original >> /var/lib/cloud/original-ran\n');
  const first = await boot(image, original, 'boot-1');
  expect(first.exitCode).toBe(0);
  expect(first.poweroff).toBe(false);
  expect(await readOnImage(image, '/var/lib/cloud/original-ran')).toBe('original\n');

  // Act 1: what a naive method would set (a shell script), then a start of the same instance.
  const naive = Buffer.from('#!/bin/sh\necho naive >> /var/lib/cloud/naive-ran\n');
  const second = await boot(image, naive, 'boot-2');

  // Assess 1: cloud-init did not run it (once per instance), nor the original again.
  expect(second.exitCode).toBe(0);
  expect(second.output).toMatch(/config-scripts_user already ran|Skipping modules.*scripts_user|already ran/);
  expect(await readOnImage(image, '/var/lib/cloud/naive-ran')).toBe('<absent>\n');
  expect(await readOnImage(image, '/var/lib/cloud/original-ran')).toBe('original\n');

  // Act 2: our user data, a start of the same instance.
  const ours = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: [], executionId: EXECUTION });
  const beforeOurs = await snapshotImage(image);
  const third = await boot(image, ours.bytes, 'boot-3');

  // Assess 2: the key is in the default user's file, made as sshd wants it; the marker says ok.
  expect(third.output).toContain("Running module bootcmd");
  expect(findMarker(third.console, EXECUTION)).toEqual({ result: 'ok', fingerprint: key.fingerprint, users: 'ec2-user', files: '/home/ec2-user/.ssh/authorized_keys' });
  expect(third.console).not.toContain(key.publicKey.split(' ')[1]);
  expect(third.exitCode).toBe(0);
  expect(third.output).not.toMatch(/Invalid cloud-config|schema errors/);
  // Review U5: it asked systemd to power off after its marker (recorded here, never executed).
  expect(second.poweroff).toBe(false);
  expect(third.poweroff).toBe(true);
  const keys = await onImage(
    image,
    '',
    'cat "$m/home/ec2-user/.ssh/authorized_keys"; stat -c "%a %u:%g" "$m/home/ec2-user/.ssh" "$m/home/ec2-user/.ssh/authorized_keys"',
    'ro',
  );
  expect(keys).toBe(`${key.publicKey}\n700 1000:1000\n600 1000:1000\n`);
  const afterOurs = await snapshotImage(image);
  expect(userVisibleChanges(beforeOurs, afterOurs).sort()).toEqual(
    expect.arrayContaining([expect.stringContaining('/home/ec2-user/.ssh'), expect.stringContaining('/home/ec2-user/.ssh/authorized_keys')]),
  );
  expect(userVisibleChanges(beforeOurs, afterOurs).every((k) => k.includes('/home/ec2-user/.ssh'))).toBe(true);

  // Act 3: the next start with our user data still set (before it is put back).
  const fourth = await boot(image, ours.bytes, 'boot-4');

  // Assess 3: it ran again (bootcmd: always), changed nothing, and reported again; it powers off
  // once per execution only (a restore that failed to put the original back leaves a bootable instance).
  expect(fourth.output).toContain("Running module bootcmd");
  expect(fourth.poweroff).toBe(false);
  expect(findMarker(fourth.console, EXECUTION)).toEqual({ result: 'ok', fingerprint: key.fingerprint, users: 'ec2-user', files: '/home/ec2-user/.ssh/authorized_keys' });
  expect(userVisibleChanges(afterOurs, await snapshotImage(image))).toEqual([]);
  expect(await readOnImage(image, '/var/lib/cloud/original-ran')).toBe('original\n');

  // This machine: untouched.
  expect(hostState()).toEqual(host);
  expect(systemState(dir)).toEqual(mounts);
});

it('a boot whose user data cannot add the key writes a failed marker and changes nothing', async () => {
  // Prepare: an instance that booted once; Users names a user the image does not have.
  const host = hostState();
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'refuse.img');
  await buildImage(image, { layout: 'ext4-whole' });
  await boot(image, Buffer.alloc(0), 'refuse-1');
  const ours = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: ['nosuchuser'], executionId: EXECUTION });
  const before = await snapshotImage(image);

  // Act
  const result = await boot(image, ours.bytes, 'refuse-2');

  // Assess
  expect(findMarker(result.console, EXECUTION)).toEqual({ result: 'failed', fingerprint: key.fingerprint, users: '', files: '' });
  expect(findReason(result.console, EXECUTION)).toMatch(/nosuchuser/);
  expect(result.poweroff).toBe(true);
  expect(userVisibleChanges(before, await snapshotImage(image))).toEqual([]);
  expect(hostState()).toEqual(host);
});

it('review U3: a home under an fstab filesystem that is not the one mounted at bootcmd time is refused, nothing written', async () => {
  // Prepare: Amazon Linux's layout with /home on its own partition (fstab names it by UUID). This
  // boot mounts only the root, so /home is the root's directory underneath, as it is on EC2 when
  // bootcmd runs before home.mount (or before a network /home).
  const host = hostState();
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'home.img');
  await buildImage(image, { layout: 'gpt-xfs-home' });
  await boot(image, Buffer.alloc(0), 'home-1');
  const ours = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: [], executionId: EXECUTION });
  const before = await snapshotImage(image);

  // Act
  const result = await boot(image, ours.bytes, 'home-2');

  // Assess
  expect(findMarker(result.console, EXECUTION)).toMatchObject({ result: 'failed', users: '', files: '' });
  expect(findReason(result.console, EXECUTION)).toMatch(/^\/home \(home \/home\/\S+\) is in \/etc\/fstab but not mounted when cloud-init runs bootcmd/);
  expect(result.poweroff).toBe(true);
  expect(userVisibleChanges(before, await snapshotImage(image))).toEqual([]);
  expect(hostState()).toEqual(host);
});
