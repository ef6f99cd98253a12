/**
 * The inject-key script (the text deployed in the Command document) on real filesystems on
 * loop devices, one image per case. Every case proves what changed on the disk with a
 * before/after snapshot of every file (content, mode, owner, xattrs, flags) and of the
 * partition table, and that no mount, loop device or work directory is left behind.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { buildImage, diffImage, snapshotImage, type ImageSnapshot, type ImageSpec } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { deployedScript, inject, hex, scratchImages, sha256File, systemState, treeState, VOLUME_ID, type SystemState } from '../support/disk';

const key = generateKeyPair('ed25519', new Date('2026-01-02T00:00:00Z'));
const [keyType, keyBase64] = key.publicKey.split(' ');
const otherKey = generateKeyPair('ed25519').publicKey.replace(/ \S+$/, ' alice@laptop');
const SSH_HOME_T = 'system_u:object_r:ssh_home_t:s0';

// No mount and no loop device left by a test (the script's own leftovers: see inject()).
const { dir, image } = scratchImages('inject-test-', 'disk');

/** The keys of the entries that differ, with the snapshot description after. */
async function changes(path: string, before: ImageSnapshot): Promise<Record<string, string | undefined>> {
  const after = await snapshotImage(path);
  return Object.fromEntries(diffImage(before, after).map((d) => [d.key, d.after]));
}

/** Read a file from an image (any filesystem, read-only mount in a private namespace). */
async function readFromImage(path: string, partition: string, file: string, options = ''): Promise<string> {
  const loop = await attachLoop(path);
  try {
    const device = partition === 'disk' ? loop.device : `${loop.device}${partition}`;
    const script = `set -e; m=$(mktemp -d); trap 'umount "$m" 2>/dev/null; rmdir "$m"' EXIT; mount -o ro${options} "$1" "$m"; cat "$m$2"`;
    return execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'read', device, file], { encoding: 'utf8' });
  } finally {
    await detachLoop(loop.device);
  }
}

describe('inject-key script on loop-device images', () => {
  it('whole-disk ext4: appends to the default user key file after the existing line, nothing else changes', async () => {
    // Prepare
    const { path, before } = await image({ layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }] });

    // Act
    const result = await inject(path, { publicKey: key.publicKey });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.leftoverMounts).toEqual([]);
    expect(result.report).toEqual({
      version: 1,
      status: 'ok',
      root: { device: expect.stringMatching(/^\/dev\/loop\d+$/), fstype: 'ext4' },
      home: null,
      mounts: [],
      selinux: false,
      journalReplayed: [],
      changes: [{ user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'appended' }],
      warnings: [],
    });
    expect(Object.keys(await changes(path, before))).toEqual(['disk:/home/ec2-user/.ssh/authorized_keys']);
    expect(await readFromImage(path, 'disk', '/home/ec2-user/.ssh/authorized_keys', ',noload')).toBe(`${otherKey}\n${key.publicKey}\n`);
  });

  describe('xfs root whose UUID duplicates an xfs mounted on the helper', () => {
    let helperImage: string;
    let helperMount: string;
    let helperLoop: string;
    const uuid = '3f0e4a42-8a4b-4c0e-9a61-0d1c2b3a4f5e';

    beforeAll(async () => {
      // The helper's own root: an xfs with the same UUID, mounted (Amazon Linux helper and target
      // from the same AMI have the same xfs UUID).
      helperImage = join(dir, 'helper-root.img');
      execFileSync('truncate', ['-s', '320M', helperImage]);
      execFileSync('mkfs.xfs', ['-q', '-f', '-m', `uuid=${uuid}`, helperImage]);
      helperLoop = (await attachLoop(helperImage)).device;
      helperMount = mkdtempSync(join(dir, 'helper-mnt-'));
      execFileSync('mount', ['-t', 'xfs', helperLoop, helperMount]);
    });
    afterAll(async () => {
      try {
        execFileSync('umount', [helperMount]);
        rmSync(helperMount, { recursive: true, force: true });
      } finally {
        await detachLoop(helperLoop);
      }
    });

    it('GPT with a BIOS boot partition: mounts with nouuid and creates .ssh for a user without one', async () => {
      // Prepare
      const { path, before } = await image({
        layout: 'gpt-xfs',
        xfsUuid: uuid,
        users: [{ name: 'ec2-user', uid: 1000, gid: 1000, noSsh: true }],
      });
      // The case is real: without nouuid the kernel refuses the duplicate UUID.
      const loop = await attachLoop(path);
      try {
        expect(() =>
          execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', 'm=$(mktemp -d); trap "rmdir $m" EXIT; mount -t xfs -o ro,norecovery "$1" "$m"', 'x', `${loop.device}p1`], { stdio: 'pipe' }),
        ).toThrow();
      } finally {
        await detachLoop(loop.device);
      }

      // Act
      const result = await inject(path, { publicKey: key.publicKey });

      // Assess
      expect(result.exitCode).toBe(0);
      expect(result.report?.root).toEqual({ device: expect.stringMatching(/^\/dev\/loop\d+p1$/), fstype: 'xfs' });
      expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'created' }]);
      const changed = await changes(path, before);
      expect(Object.keys(changed).sort()).toEqual(['p1:/home/ec2-user/.ssh', 'p1:/home/ec2-user/.ssh/authorized_keys']);
      expect(changed['p1:/home/ec2-user/.ssh']).toMatch(/^d 700 1000:1000 /);
      expect(changed['p1:/home/ec2-user/.ssh/authorized_keys']).toMatch(/^f 600 1000:1000 /);
      expect(changed['p1:/home/ec2-user/.ssh/authorized_keys']).not.toContain('security.selinux');
      expect(await readFromImage(path, 'p1', '/home/ec2-user/.ssh/authorized_keys', ',nouuid,norecovery')).toBe(`${key.publicKey}\n`);
    });
  });

  it('separate /home partition from fstab (UUID=): writes on the home filesystem only', async () => {
    const { path, before } = await image({ layout: 'gpt-xfs-home', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: null }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.home).toEqual({ device: expect.stringMatching(/p3$/), fstype: 'ext4' });
    expect(result.report?.mounts).toEqual([{ mountpoint: '/home', device: expect.stringMatching(/p3$/), fstype: 'ext4' }]);
    expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'created' }]);
    // The root filesystem (p1) is untouched: its /home is only a mount point.
    expect(Object.keys(await changes(path, before))).toEqual(['p3:/ec2-user/.ssh/authorized_keys']);
  });

  it('homes in /var/home on a separate /var, /home a symbolic link to var/home (Fedora CoreOS): writes on /var only', async () => {
    const { path, before } = await image({
      layout: 'gpt-var',
      cloudInitDefaultUser: 'core',
      users: [{ name: 'core', uid: 1000, gid: 1000, home: '/var/home/core', authorizedKeys: `${otherKey}\n` }],
    });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.leftoverMounts).toEqual([]);
    expect(result.report?.root).toEqual({ device: expect.stringMatching(/p2$/), fstype: 'ext4' });
    expect(result.report?.mounts).toEqual([{ mountpoint: '/var', device: expect.stringMatching(/p3$/), fstype: 'xfs' }]);
    expect(result.report?.home).toEqual({ device: expect.stringMatching(/p3$/), fstype: 'xfs' });
    expect(result.report?.changes).toEqual([{ user: 'core', uid: 1000, file: '/var/home/core/.ssh/authorized_keys', action: 'appended' }]);
    // The root's /var is only a mount point and its /home a link: nothing changes on p2.
    expect(Object.keys(await changes(path, before))).toEqual(['p3:/home/core/.ssh/authorized_keys']);
    expect(await readFromImage(path, 'p3', '/home/core/.ssh/authorized_keys', ',nouuid,norecovery')).toBe(`${otherKey}\n${key.publicKey}\n`);
  });

  it('a passwd home under /home, a link to var/home (Silverblue): followed to the separate /var', async () => {
    const { path, before } = await image({
      layout: 'gpt-var',
      cloudInitDefaultUser: 'core',
      users: [{ name: 'core', uid: 1000, gid: 1000, home: '/home/core', authorizedKeys: null }],
    });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.mounts).toEqual([{ mountpoint: '/var', device: expect.stringMatching(/p3$/), fstype: 'xfs' }]);
    expect(result.report?.changes).toEqual([{ user: 'core', uid: 1000, file: '/var/home/core/.ssh/authorized_keys', action: 'created' }]);
    expect(Object.keys(await changes(path, before))).toEqual(['p3:/home/core/.ssh/authorized_keys']);
  });

  it('a key file on a separate filesystem that is not on this volume is refused, the disk unchanged', async () => {
    const { path, before } = await image({
      layout: 'gpt-var',
      cloudInitDefaultUser: 'core',
      users: [{ name: 'core', uid: 1000, gid: 1000, home: '/var/home/core', authorizedKeys: null }],
      extraFiles: { '/etc/fstab': 'UUID=11111111-2222-3333-4444-555555555555\t/\text4\tdefaults\t0 0\nfs-0123.efs.us-east-1.amazonaws.com:/\t/var/home\tnfs4\tdefaults\t0 0\n' },
    });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(1);
    expect(result.report?.error).toBe(
      `the target's /etc/fstab mounts /var/home from fs-0123.efs.us-east-1.amazonaws.com:/, which is not on volume ${VOLUME_ID}: the keys would be hidden under it`,
    );
    expect(result.leftoverMounts).toEqual([]);
    expect(await changes(path, before)).toEqual({});
  });

  it('btrfs root in a subvolume with /home in another (Fedora layout)', async () => {
    const { path, before } = await image({ layout: 'btrfs', cloudInitDefaultUser: 'fedora', users: [{ name: 'fedora', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.root?.fstype).toBe('btrfs');
    expect(result.report?.home?.fstype).toBe('btrfs');
    expect(result.report?.changes).toEqual([{ user: 'fedora', uid: 1000, file: '/home/fedora/.ssh/authorized_keys', action: 'appended' }]);
    expect(Object.keys(await changes(path, before))).toEqual(['p2:/home/fedora/.ssh/authorized_keys']);
    expect(await readFromImage(path, 'p2', '/fedora/.ssh/authorized_keys', ',subvol=home')).toBe(`${otherKey}\n${key.publicKey}\n`);
  });

  it('AuthorizedKeysFile from a relative sshd_config.d Include with %h, %u and %%; a Match block for another user does not apply', async () => {
    const { path, before } = await image({
      layout: 'ext4-whole',
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: null }],
      sshdConfig: 'Include sshd_config.d/*.conf\nPasswordAuthentication no\nAuthorizedKeysFile .ssh/not-this-one\n',
      sshdConfigD: {
        '10-match.conf': 'Match User nobody\n  AuthorizedKeysFile /etc/wrong/%u\n',
        '50-keys.conf': '# keys per user\nAuthorizedKeysFile   %h/.config/ssh/%u_100%%.keys .ssh/authorized_keys\n',
      },
    });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    const file = '/home/ec2-user/.config/ssh/ec2-user_100%.keys';
    expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file, action: 'created' }]);
    const changed = await changes(path, before);
    expect(Object.keys(changed).sort()).toEqual([`disk:/home/ec2-user/.config`, 'disk:/home/ec2-user/.config/ssh', `disk:${file}`]);
    expect(changed['disk:/home/ec2-user/.config']).toMatch(/^d 700 1000:1000 /);
    expect(changed[`disk:${file}`]).toMatch(/^f 600 1000:1000 /);
  });

  it('a key file without a final newline: the key goes on its own line, the old line kept byte for byte', async () => {
    const old = `# my keys\n${otherKey}`;
    const { path } = await image({ layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: old }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.changes[0]?.action).toBe('appended');
    expect(await readFromImage(path, 'disk', '/home/ec2-user/.ssh/authorized_keys', ',noload')).toBe(`${old}\n${key.publicKey}\n`);
  });

  it('an immutable key file: appended, and immutable again afterwards', async () => {
    const { path, before } = await image({
      layout: 'ext4-whole',
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }],
      immutableKeyFileOf: 'ec2-user',
    });
    expect(before.entries.get('disk:/home/ec2-user/.ssh/authorized_keys')).toMatch(/flags=----i/);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.changes[0]?.action).toBe('appended');
    const changed = await changes(path, before);
    expect(Object.keys(changed)).toEqual(['disk:/home/ec2-user/.ssh/authorized_keys']);
    expect(changed['disk:/home/ec2-user/.ssh/authorized_keys']).toMatch(/flags=----i/);
    expect(await readFromImage(path, 'disk', '/home/ec2-user/.ssh/authorized_keys', ',noload')).toBe(`${otherKey}\n${key.publicKey}\n`);
  });

  it('a key file that is a symlink to an absolute path: written in the target, the helper file of that path untouched', async () => {
    // Prepare: the same absolute path exists on the helper (this machine) and in the target.
    // (Not under /tmp: the target's /tmp is world-writable, where sshd's StrictModes trusts nothing.)
    const hostDir = mkdtempSync('/var/tmp/reset-access-symlink-');
    const hostFile = join(hostDir, 'authorized_keys');
    writeFileSync(hostFile, 'helper-own-content\n', { mode: 0o600 });
    const hostHash = sha256File(hostFile);
    try {
      const { path, before } = await image({
        layout: 'ext4-whole',
        users: [{ name: 'ec2-user', uid: 1000, gid: 1000 }],
        symlinkKeyFile: { user: 'ec2-user', target: hostFile, content: `${otherKey}\n` },
      });

      // Act
      const result = await inject(path, { publicKey: key.publicKey });

      // Assess
      expect(result.exitCode).toBe(0);
      expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: hostFile, action: 'appended' }]);
      expect(sha256File(hostFile)).toBe(hostHash);
      expect(readdirSync(hostDir)).toEqual(['authorized_keys']);
      const changed = await changes(path, before);
      expect(Object.keys(changed)).toEqual([`disk:${hostFile}`]);
      expect(await readFromImage(path, 'disk', hostFile, ',noload')).toBe(`${otherKey}\n${key.publicKey}\n`);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it('a symlink escaping with ../.. stays inside the target root', async () => {
    const { path, before } = await image({
      layout: 'ext4-whole',
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000, noSsh: true }],
      extraFiles: { '/etc/keys/ec2-user': `${otherKey}\n` },
      sshdConfig: 'AuthorizedKeysFile /srv/link/%u\n',
    });
    // /srv/link -> ../../../../../../etc/keys: resolved inside the target it is /etc/keys.
    const loop = await attachLoop(path);
    try {
      execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', 'set -e; m=$(mktemp -d); trap \'umount "$m"; rmdir "$m"\' EXIT; mount "$1" "$m"; mkdir -p "$m/srv"; ln -s ../../../../../../etc/keys "$m/srv/link"', 'x', loop.device]);
    } finally {
      await detachLoop(loop.device);
    }
    const mid = await snapshotImage(path);
    expect(diffImage(before, mid).length).toBeGreaterThan(0);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: '/etc/keys/ec2-user', action: 'appended' }]);
    expect(Object.keys(await changes(path, mid))).toEqual(['disk:/etc/keys/ec2-user']);
  });

  it('an SELinux target: new .ssh and key file carry ssh_home_t, the report says selinux', async () => {
    const { path, before } = await image({ layout: 'ext4-whole', selinux: 'enforcing', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, noSsh: true }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.selinux).toBe(true);
    const changed = await changes(path, before);
    expect(Object.keys(changed).sort()).toEqual(['disk:/home/ec2-user/.ssh', 'disk:/home/ec2-user/.ssh/authorized_keys']);
    for (const entry of Object.values(changed)) {
      expect(entry).toContain(`security.selinux=0x${hex(SSH_HOME_T)}`);
    }
  });

  it('a second run adds nothing: already-present, the disk byte-identical to after the first run', async () => {
    const { path } = await image({ layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }] });
    const first = await inject(path, { publicKey: key.publicKey });
    expect(first.report?.changes[0]?.action).toBe('appended');
    const afterFirst = await snapshotImage(path);

    // Same key, another comment: still the same key.
    const second = await inject(path, { publicKey: `${keyType} ${keyBase64} other-comment` });

    expect(second.exitCode).toBe(0);
    expect(second.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'already-present' }]);
    expect(diffImage(afterFirst, await snapshotImage(path))).toEqual([]);
    const content = await readFromImage(path, 'disk', '/home/ec2-user/.ssh/authorized_keys', ',noload');
    expect(content.split(keyBase64).length - 1).toBe(1);
  });

  it('a key present only behind an options prefix is not the unrestricted key: appended once more, with a warning, the old line kept', async () => {
    // (Review R1, F6: options such as from= or command= can stop the login the run is for; see
    // review-findings.test.ts for sshd's own verdict.)
    const line = `no-port-forwarding,command="echo 'use ec2-user'" ${keyType} ${keyBase64} x`;
    const { path, before } = await image({ layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${line}\n` }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.changes[0]?.action).toBe('appended');
    expect(result.report?.warnings).toEqual([expect.stringContaining('only behind options')]);
    expect(Object.keys(await changes(path, before))).toEqual(['disk:/home/ec2-user/.ssh/authorized_keys']);
    expect(await readFromImage(path, 'disk', '/home/ec2-user/.ssh/authorized_keys', ',noload')).toBe(`${line}\n${key.publicKey}\n`);
    // A second run finds the unrestricted line: nothing more.
    const afterFirst = await snapshotImage(path);
    expect((await inject(path, { publicKey: key.publicKey })).report?.changes[0]?.action).toBe('already-present');
    expect(diffImage(afterFirst, await snapshotImage(path))).toEqual([]);
  });

  it('without cloud-init: every user with uid >= 1000 and a login shell; named users, root only when named', async () => {
    const users = [
      { name: 'alice', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` },
      { name: 'bob', uid: 1001, gid: 1001 },
      { name: 'svc', uid: 1002, gid: 1002, shell: '/sbin/nologin' },
      { name: 'daemon2', uid: 999, gid: 999 },
    ];
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: null, users });

    const all = await inject(path, { publicKey: key.publicKey });
    expect(all.report?.changes.map((c) => [c.user, c.action])).toEqual([['alice', 'appended'], ['bob', 'created']]);

    const named = await inject(path, { publicKey: key.publicKey, users: 'root,bob' });
    expect(named.exitCode).toBe(0);
    expect(named.report?.changes).toEqual([
      { user: 'root', uid: 0, file: '/root/.ssh/authorized_keys', action: 'created' },
      { user: 'bob', uid: 1001, file: '/home/bob/.ssh/authorized_keys', action: 'already-present' },
    ]);
  });

  it('a cloud-init default user missing from passwd: one warning, then the uid >= 1000 login users', async () => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'ubuntu', users: [{ name: 'ec2-user', uid: 1000, gid: 1000 }] });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.warnings).toEqual(["the cloud-init default user ubuntu is not in the target's /etc/passwd"]);
    expect(result.report?.changes.map((c) => c.user)).toEqual(['ec2-user']);
  });

  it('the cloud-init default user from cloud.cfg.d overrides cloud.cfg', async () => {
    const { path } = await image({
      layout: 'ext4-whole',
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000 }, { name: 'admin', uid: 1001, gid: 1001 }],
      cloudCfgD: { '99-user.cfg': 'system_info:\n  default_user:\n    name: "admin"\n' },
    });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.changes.map((c) => c.user)).toEqual(['admin']);
  });

  describe('refusals: a clear error, the disk unchanged', () => {
    it.each([
      ['a disk with no Linux root', { layout: 'no-root' } as ImageSpec, /no Linux root .* found: .*no filesystem.*ext4/],
      ['a disk with two roots', { layout: 'two-roots' } as ImageSpec, /more than one Linux root on \/dev\/loop\d+: \/dev\/loop\d+p1, \/dev\/loop\d+p2; refusing to guess/],
    ])('%s', async (_name, spec, message) => {
      const { path, before } = await image(spec);

      const result = await inject(path, { publicKey: key.publicKey });

      expect(result.exitCode).not.toBe(0);
      expect(result.report).toEqual({ version: 1, status: 'error', error: expect.stringMatching(message), changes: [], warnings: [] });
      expect(result.leftoverMounts).toEqual([]);
      expect(diffImage(before, await snapshotImage(path))).toEqual([]);
    });

    it('LVM: the physical volume is recognised, its volume group named, the failed activation reported', async () => {
      // What this machine allows: the image has a real LVM2 PV (p3) with the VG rootvg and the LV
      // root whose extents hold a real ext4 Linux root, next to an ext4 /boot (p2). This kernel has
      // no device-mapper, so `vgchange -ay` cannot activate the LV: the script must recognise the
      // PV, try to activate it, and refuse with an error naming the VG and the reason (on a helper
      // with device-mapper and lvm2 the same code path mounts /dev/rootvg/root as a candidate).
      // The whole of /etc/lvm (or its absence: lvm2 may never have run on this machine).
      const lvmState = treeState('/etc/lvm');
      const { path, before } = await image({ layout: 'lvm' });
      expect(before.entries.get('p3:<raw>')).toMatch(/^LVM2_member /);

      const result = await inject(path, { publicKey: key.publicKey });

      expect(result.exitCode).not.toBe(0);
      expect(result.report?.status).toBe('error');
      expect(result.report?.error).toMatch(/no Linux root/);
      expect(result.report?.error).toMatch(/p3: LVM physical volume of volume group rootvg, which could not be activated/);
      expect(diffImage(before, await snapshotImage(path))).toEqual([]);
      // No LVM metadata backup or archive of the target was written on the helper.
      expect(treeState('/etc/lvm')).toEqual(lvmState);
    });

    it.each([
      [
        'a key file outside the home whose directory is missing',
        { layout: 'ext4-whole', sshdConfig: 'AuthorizedKeysFile /etc/ssh/keys/%u\n' } as ImageSpec,
        /no AuthorizedKeysFile of user ec2-user can be written: the directory of \/etc\/ssh\/keys\/ec2-user does not exist in the target/,
      ],
      [
        'a user whose home does not exist',
        { layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, home: '/home/ec2-user' }, { name: 'ghost', uid: 1001, gid: 1001, home: '/nonexistent/ghost', noHome: true }] } as ImageSpec,
        /the home directory \/nonexistent\/ghost of user ghost does not exist in the target/,
      ],
      [
        'AuthorizedKeysFile none',
        { layout: 'ext4-whole', sshdConfigD: { '00-none.conf': 'AuthorizedKeysFile none\n' } } as ImageSpec,
        /AuthorizedKeysFile none/,
      ],
    ])('%s', async (_name, spec, message) => {
      const { path, before } = await image(spec);

      const result = await inject(path, { publicKey: key.publicKey, users: spec.users ? 'ec2-user,ghost' : '' });

      expect(result.exitCode).toBe(1);
      expect(result.report?.error).toMatch(message);
      expect(result.report?.changes).toEqual([]);
      expect(diffImage(before, await snapshotImage(path))).toEqual([]);
    });

    let shared: { path: string; before: ImageSnapshot } | undefined;
    it.each([
      ['a user not in the target passwd', { users: 'ec2-user,mallory' }, /user mallory is not in the target's \/etc\/passwd/],
      ['a private key', { publicKey: '-----BEGIN OPENSSH PRIVATE KEY-----' }, /private key; paste the \.pub line/],
      ['an options prefix', { publicKey: `command="sh" ${keyType} ${keyBase64}` }, /not one OpenSSH public key line/],
      ['a newline in the key', { publicKey: `${keyType} ${keyBase64}\n${keyType} ${keyBase64}` }, /not one OpenSSH public key line/],
      ['a bad volume id', { volumeId: 'vol-XYZ' }, /VolumeId is not a volume id/],
      ['bad users', { users: 'Root;reboot' }, /Users must be comma-separated user names/],
      ['both VolumeId and Root', { root: '/' }, /either VolumeId .* or Root=\/ .*not both/],
      ['a bad Root', { root: '/mnt' }, /Root must be empty/],
    ])('%s', async (_name, options, message) => {
      // One image for these (each refusal must leave it byte-identical, so it can be shared).
      shared ??= await image({ layout: 'ext4-whole' });
      const { path, before } = shared;

      const result = await inject(path, { publicKey: key.publicKey, ...options });

      expect(result.exitCode).toBe(1);
      expect(result.report?.status).toBe('error');
      expect(result.report?.error).toMatch(message);
      expect(result.stdout.trim().split('\n')).toHaveLength(1);
      expect(diffImage(before, await snapshotImage(path))).toEqual([]);
    });
  });

  it('the report escapes strings from the target properly (a home path with quotes and a backslash)', async () => {
    const { path } = await image({ layout: 'ext4-whole', users: [{ name: 'odd', uid: 1000, gid: 1000, home: '/home/o"d\\d', noSsh: true }], cloudInitDefaultUser: 'odd' });

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(0);
    expect(result.report?.changes[0]?.file).toBe('/home/o"d\\d/.ssh/authorized_keys');
  });
});

describe('the volume device', () => {
  let before: SystemState;
  beforeEach(() => {
    before = systemState(dir);
  });
  afterEach(() => {
    expect(systemState(dir)).toEqual(before);
  });

  it('is found through the by-id link even when it appears late (polled, no fixed sleep)', async () => {
    const path = join(dir, 'late.img');
    await buildImage(path, { layout: 'ext4-whole' });
    const loop = await attachLoop(path);
    try {
      // Start the script with the link missing, add it 3 s later in the same namespace.
      const script = [
        'set -e',
        'mkdir -p /dev/disk; mount -t tmpfs -o size=1m late /dev/disk; mkdir /dev/disk/by-id',
        `(sleep 3; ln -s ../../${loop.device.slice(5)} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}) &`,
        'bash "$1"',
      ].join('\n');
      const scriptFile = join(dir, 'deployed.sh');
      writeFileSync(scriptFile, deployedScript());
      const started = Date.now();
      const out = execFileSync('timeout', ['60', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', script, 'late', scriptFile], {
        env: { PATH: process.env.PATH, SSM_VolumeId: VOLUME_ID, SSM_PublicKey: key.publicKey, SSM_Users: '', SSM_Root: '' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
      expect(JSON.parse(out.trim().split('\n').pop() as string).status).toBe('ok');
    } finally {
      await detachLoop(loop.device);
    }
  });
});
