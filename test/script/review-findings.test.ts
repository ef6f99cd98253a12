/**
 * The inject-key script against the hostile review of issue 10's fix (R1 findings F1-F13), on real
 * filesystems on loop devices. Where a finding is about which file sshd reads or accepts, OpenSSH
 * itself is the oracle: `sshd -T` over the image's own configuration, or a real sshd (StrictModes
 * yes) that authenticates the image's users against the image's files and an `ssh -i` login.
 * (F4, SIGKILL, is in signals.test.ts; F7, F10, F11 and F13's groups also in sshd-match.test.ts.)
 */
import { execFileSync } from 'child_process';
import { generateKeyPair } from '@common/keys';
import { diffImage, snapshotImage, type ImageSpec } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { sshdAuthorizedKeysLines, sshLogin, startSshd, type SshdOptions } from '../../local/disk/sshd';
import { inject, onImage, scratchImages } from '../support/disk';

const pair = generateKeyPair('ed25519');
const other = generateKeyPair('ed25519');
const [keyType, keyBase64] = pair.publicKey.split(' ');

const { image } = scratchImages('review-', 'r');

const alice = { name: 'alice', uid: 1000, gid: 1000 };
const bob = { name: 'bob', uid: 1001, gid: 1001 };

/** A real sshd over a whole-disk ext4 image, one `ssh -i` login as user with the private key. */
async function login(path: string, user: string, privateKey: string, extra: Partial<SshdOptions> = {}): Promise<{ ok: boolean; log: string }> {
  const loop = await attachLoop(path);
  try {
    const sshd = await startSshd({ root: { device: loop.device, fstype: 'ext4' }, timeoutSeconds: 60, ...extra });
    try {
      const result = await sshLogin({ port: sshd.port, user, privateKey });
      return { ok: result.ok && result.stdout === `${user}\n`, log: sshd.log() };
    } finally {
      await sshd.stop();
    }
  } finally {
    await detachLoop(loop.device);
  }
}

async function oracle(path: string, users: string[]): Promise<Record<string, string>> {
  const loop = await attachLoop(path);
  try {
    return await sshdAuthorizedKeysLines({ device: loop.device, fstype: 'ext4' }, users);
  } finally {
    await detachLoop(loop.device);
  }
}

describe('F1: a key file that is not per user is never given to the user', () => {
  it('AuthorizedKeysFile /srv/a/authorized_keys: created root:root 0644 with a warning; sshd accepts it', async () => {
    // Prepare
    const { path, before } = await image({
      layout: 'ext4-whole',
      cloudInitDefaultUser: 'alice',
      users: [alice, bob],
      dirs: [{ path: '/srv/a', mode: 0o755 }],
      sshdConfig: 'AuthorizedKeysFile /srv/a/authorized_keys\n',
    });

    // Act
    const result = await inject(path, { publicKey: pair.publicKey });

    // Assess
    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/srv/a/authorized_keys', action: 'created' }]);
    expect(result.report?.warnings).toEqual([expect.stringMatching(/^the key file \/srv\/a\/authorized_keys is not per user/)]);
    const after = await snapshotImage(path);
    expect(diffImage(before, after).map((d) => d.key)).toEqual(['disk:/srv/a/authorized_keys']);
    // Not alice's: she cannot add keys that would open bob's account.
    expect(after.entries.get('disk:/srv/a/authorized_keys')).toMatch(/^f 644 0:0 /);
    const sshd = { authorizedKeysFile: '/srv/a/authorized_keys', binds: ['/srv'] };
    expect((await login(path, 'alice', pair.privateKey, sshd)).ok).toBe(true);
    expect((await login(path, 'alice', other.privateKey, sshd)).ok).toBe(false);
  });
});

describe('F2: a default ACL on the home', () => {
  it('u::rwx,g::rwx,o::---: .ssh and the key file still 0700 and 0600, and sshd (StrictModes) accepts the login', async () => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [{ ...alice, noSsh: true }] });
    // system.posix_acl_default, version 2: USER_OBJ rwx, GROUP_OBJ rwx, OTHER --- (linux/posix_acl_xattr.h).
    const acl = '0x02000000' + '01000700ffffffff' + '04000700ffffffff' + '20000000ffffffff';
    await onImage(path, '', `setfattr -n system.posix_acl_default -v ${acl} "$m/home/alice"`);
    // The case is real: a file made there by a umask-077 writer is group-writable.
    expect((await onImage(path, '', 'touch "$m/home/alice/probe"; stat -c %a "$m/home/alice/probe"; rm "$m/home/alice/probe"')).trim()).toBe('660');
    const before = await snapshotImage(path);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.status).toBe('ok');
    const after = await snapshotImage(path);
    expect(diffImage(before, after).map((d) => d.key)).toEqual(['disk:/home/alice/.ssh', 'disk:/home/alice/.ssh/authorized_keys']);
    expect(after.entries.get('disk:/home/alice/.ssh')).toMatch(/^d 700 1000:1000 /);
    expect(after.entries.get('disk:/home/alice/.ssh/authorized_keys')).toMatch(/^f 600 1000:1000 /);
    const { ok, log } = await login(path, 'alice', pair.privateKey);
    expect({ ok, badModes: /bad (modes|ownership)/i.test(log) }).toEqual({ ok: true, badModes: false });
  });
});

describe('F2, the other way: a set-group-id home is no reason to refuse', () => {
  it('home 2700: the new .ssh inherits the bit (2700), the run succeeds and sshd accepts the login', async () => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [{ ...alice, noSsh: true }] });
    await onImage(path, '', 'chmod 2700 "$m/home/alice"');
    const before = await snapshotImage(path);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.status).toBe('ok');
    const after = await snapshotImage(path);
    expect(diffImage(before, after).map((d) => d.key)).toEqual(['disk:/home/alice/.ssh', 'disk:/home/alice/.ssh/authorized_keys']);
    expect(after.entries.get('disk:/home/alice/.ssh')).toMatch(/^d 2700 1000:1000 /);
    expect((await login(path, 'alice', pair.privateKey)).ok).toBe(true);
  });
});

describe('F3: a user-made /etc on another filesystem is not a second root', () => {
  it("a separate world-writable /tmp partition holding a uid 1000 etc/passwd and etc/ssh: the real root is used", async () => {
    const { path } = await image({ layout: 'two-roots', cloudInitDefaultUser: 'alice', users: [alice] });
    // p2 becomes the target's /tmp: its top 1777, and what a user made there is the user's.
    await onImage(path, 'p2', 'chmod 1777 "$m"; find "$m" -mindepth 1 -maxdepth 1 ! -name etc -exec rm -rf {} +; chown -R 1000:1000 "$m/etc"; chmod -R go-w "$m/etc"');
    const before = await snapshotImage(path);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.status).toBe('ok');
    expect(result.report?.root?.device).toMatch(/p1$/);
    expect(diffImage(before, await snapshotImage(path)).map((d) => d.key)).toEqual(['p1:/home/alice/.ssh/authorized_keys']);
  });
});

describe('F3: among several roots, one that a root mounts elsewhere is not the root', () => {
  it("p2 a root-owned copy of a root that p1's /etc/fstab mounts at /backup: p1 is used (two roots that each mount themselves at / are still refused: inject-key.test.ts)", async () => {
    const { path } = await image({ layout: 'two-roots', cloudInitDefaultUser: 'alice', users: [alice] });
    const uuid = (await onImage(path, 'p2', 'blkid -p -s UUID -o value "$1"', 'ro')).trim();
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    await onImage(path, 'p1', `printf 'UUID=%s\\t/backup\\text4\\tdefaults\\t0 0\\n' ${uuid} >> "$m/etc/fstab"`);
    const before = await snapshotImage(path);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.status).toBe('ok');
    expect(result.report?.root?.device).toMatch(/p1$/);
    expect(diffImage(before, await snapshotImage(path)).map((d) => d.key)).toEqual(['p1:/home/alice/.ssh/authorized_keys']);
  });
});

describe('F6: the key behind options or in a comment is not the key sshd accepts', () => {
  it.each([
    ['behind from= for another address', `from="10.9.9.9" ${keyType} ${keyBase64} old\n`, true],
    ['in a comment line', `# disabled ${keyType} ${keyBase64}\n`, false],
  ])('%s: an unrestricted line is appended, the old line kept, and sshd accepts the login', async (_name, content, warned) => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [{ ...alice, authorizedKeys: content }] });
    // The case is real: sshd refuses the key as the file is.
    expect((await login(path, 'alice', pair.privateKey)).ok).toBe(false);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/home/alice/.ssh/authorized_keys', action: 'appended' }]);
    expect(result.report?.warnings).toEqual(warned ? [expect.stringContaining('only behind options')] : []);
    expect(await onImage(path, '', 'cat "$m/home/alice/.ssh/authorized_keys"', 'ro')).toBe(`${content}${pair.publicKey}\n`);
    expect((await login(path, 'alice', pair.privateKey)).ok).toBe(true);
  });
});

describe('F8: a key file the user cannot open', () => {
  it('AuthorizedKeysFile /srv/a/%u with /srv/a root 0700: refused, nothing changed; sshd indeed refuses such a file', async () => {
    const spec: ImageSpec = { layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], dirs: [{ path: '/srv/a', mode: 0o700 }], sshdConfig: 'AuthorizedKeysFile /srv/a/%u\n' };
    // The oracle: with the key put there by hand as alice's own 0600 file, sshd cannot read it.
    const control = await image(spec);
    await onImage(control.path, '', `printf '%s\\n' '${pair.publicKey}' > "$m/srv/a/alice"; chown 1000:1000 "$m/srv/a/alice"; chmod 600 "$m/srv/a/alice"`);
    expect((await login(control.path, 'alice', pair.privateKey, { authorizedKeysFile: '/srv/a/%u', binds: ['/srv'] })).ok).toBe(false);
    const { path, before } = await image(spec);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.exitCode).toBe(1);
    expect(result.report?.error).toMatch(/^user alice cannot open \/srv\/a\/alice as sshd does, with the user's uid and groups \(Permission denied\): refusing; nothing was changed$/);
    expect(result.report?.changes).toEqual([]);
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('F7: ~ in AuthorizedKeysFile is expanded as sshd does (root for ~, the named user for ~name)', () => {
  it('~/.ssh/authorized_keys is root\'s file, which alice cannot open: refused; ~alice/... is her own', async () => {
    const config = 'Match User alice\n  AuthorizedKeysFile ~/.ssh/authorized_keys\nMatch User bob\n  AuthorizedKeysFile ~bob/.ssh/bob_keys\n';
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: null, users: [alice, bob], sshdConfig: config });
    const seen = await oracle(path, ['alice', 'bob']);
    expect(seen).toEqual({ alice: '/root/.ssh/authorized_keys', bob: '/home/bob/.ssh/bob_keys' });

    const refused = await inject(path, { publicKey: pair.publicKey, users: 'alice' });
    expect(refused.report?.error).toBe(`user alice cannot open ${seen.alice} as sshd does, with the user's uid and groups (Permission denied): refusing; nothing was changed`);
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);

    const result = await inject(path, { publicKey: pair.publicKey, users: 'bob' });
    expect(result.report?.changes).toEqual([{ user: 'bob', uid: 1001, file: seen.bob, action: 'created' }]);
    expect(diffImage(before, await snapshotImage(path)).map((d) => d.key)).toEqual([`disk:${seen.bob}`]);
  });
});

describe('F9: quoted and escaped AuthorizedKeysFile values are split as sshd splits them', () => {
  it.each([
    ['double quotes', 'AuthorizedKeysFile "/etc/ssh/key dir/%u"\n'],
    ['a backslash-escaped blank', 'AuthorizedKeysFile /etc/ssh/key\\ dir/%u\n'],
    ['single quotes around a part', "AuthorizedKeysFile '/etc/ssh/key dir'/%u\n"],
  ])('%s: the file is the one sshd -T names', async (_name, sshdConfig) => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], dirs: [{ path: '/etc/ssh/key dir', mode: 0o755 }], sshdConfig });
    const seen = await oracle(path, ['alice']);
    expect(seen.alice).toBe('/etc/ssh/key dir/%u');

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/etc/ssh/key dir/alice', action: 'created' }]);
    expect(diffImage(before, await snapshotImage(path)).map((d) => d.key)).toEqual(['disk:/etc/ssh/key dir/alice']);
  });

  it('an unterminated quote (sshd would not start): refused, nothing changed', async () => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], sshdConfig: 'AuthorizedKeysFile "/etc/ssh/x\n' });
    expect(await oracle(path, ['alice'])).toEqual({});

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.error).toBe('/etc/ssh/sshd_config has an unterminated quote in authorizedkeysfile: sshd would not start');
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('F5: a huge key file', () => {
  it('a link to a 40 MiB root file of key-like lines: refused within seconds (the former line-by-line read took about 27 s for it here), nothing changed', async () => {
    const { path } = await image({ layout: 'ext4-whole', sizeMiB: 96, cloudInitDefaultUser: 'alice', users: [alice], links: [{ path: '/home/alice/.ssh/authorized_keys', target: '/bigfile', uid: 1000, gid: 1000 }] });
    await onImage(path, '', `yes '${other.publicKey}' | head -c 40M > "$m/bigfile"; chmod 600 "$m/bigfile"`);
    const before = await snapshotImage(path);
    const started = Date.now();

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.report?.error).toBe('the key file /bigfile of user alice has 41943040 bytes, more than 1 MiB: refusing');
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('F13: a filesystem that cannot be written', () => {
  it('ext4 with the read-only feature: refused for what it is, not blamed on a link of the user', async () => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice] });
    const loop = await attachLoop(path);
    try {
      execFileSync('tune2fs', ['-O', 'read-only', loop.device], { stdio: 'pipe' });
    } finally {
      await detachLoop(loop.device);
    }
    const before = await snapshotImage(path);

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.exitCode).toBe(1);
    expect(result.report?.error).toMatch(/^cannot mount the root \/dev\/loop\d+ \(rw\): /);
    expect(result.report?.error).not.toContain('link');
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('what the review could not reproduce, warned about when present', () => {
  it.each([
    ['/etc/sysconfig/sshd', 'OPTIONS="-o AuthorizedKeysFile=/etc/ssh/keys/%u"\n', true],
    ['/etc/systemd/system/sshd.service.d/10-f.conf', '[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D -f /etc/ssh/other_config\n', true],
    ['/etc/sysconfig/sshd', '# Configuration file for the sshd service (adjust sshd.service options)\n# OPTIONS="-o x"\nSSH_USE_STRONG_RNG=0\n', false],
  ])('sshd options on its command line (%s): a warning, the key still written', async (file, content, warned) => {
    const { path } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], extraFiles: { [file]: content } });

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/home/alice/.ssh/authorized_keys', action: 'created' }]);
    expect(result.report?.warnings).toEqual(warned ? [`${file} may give sshd options on its command line (-o, -f), which are not read here: the file written is the one /etc/ssh/sshd_config names`] : []);
  });

  it('a home filesystem mounted noauto: a warning, the key written there', async () => {
    const { path } = await image({ layout: 'gpt-xfs-home', cloudInitDefaultUser: 'alice', users: [alice] });
    expect(await onImage(path, 'p1', 'sed -i "s#\\(/home.*\\)defaults,nofail#\\1defaults,noauto#" "$m/etc/fstab"; grep -c noauto "$m/etc/fstab"', 'rw,nouuid')).toBe('1\n');

    const result = await inject(path, { publicKey: pair.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/home/alice/.ssh/authorized_keys', action: 'created' }]);
    expect(result.report?.warnings).toEqual(["the target's /etc/fstab mounts /home with noauto: what is written there is seen only when something mounts it"]);
  });
});
