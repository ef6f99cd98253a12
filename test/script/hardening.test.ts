/**
 * The inject-key script on hostile or unusual targets (issue 10, defects 9, 11, 12 and 13), on real
 * filesystems on loop devices: a user's own links cannot steer the root-run write; a full
 * filesystem leaves the target as found; users who cannot log in (home /, nologin, false) are not
 * given keys; a key blob that is not a public key is refused; a dirty journal is judged on the
 * state the instance sees at its next boot (after replay).
 */
import { execFileSync } from 'child_process';
import { rmSync } from 'fs';
import { generateKeyPair } from '@common/keys';
import { diffImage, snapshotImage, type ImageSnapshot, type ImageSpec } from '../../local/disk/images';
import { inject, onImage, scratchImages } from '../support/disk';
import { KEYS } from '../security/support/hostile';

const key = generateKeyPair('ed25519');
const otherKey = generateKeyPair('ed25519').publicKey;
const [edType, edBody] = key.publicKey.split(' ');

const { image } = scratchImages('hardening-', 'h');

const alice = { name: 'alice', uid: 1000, gid: 1000 };

describe("defect 9: a user's own links never steer the write", () => {
  it.each([
    ['~/.ssh, an absolute link to /root/.ssh', { links: [{ path: '/home/alice/.ssh', target: '/root/.ssh', uid: 1000, gid: 1000 }] }, '/root/.ssh/authorized_keys'],
    ['authorized_keys, a relative link to root\'s key file', { links: [{ path: '/home/alice/.ssh/authorized_keys', target: '../../../root/.ssh/authorized_keys', uid: 1000, gid: 1000 }] }, '/root/.ssh/authorized_keys'],
    ['~/.ssh, a link to a root-owned directory', { links: [{ path: '/home/alice/.ssh', target: '/etc/ssh', uid: 1000, gid: 1000 }] }, '/etc/ssh/authorized_keys'],
    ['authorized_keys, a link to a system file', { links: [{ path: '/home/alice/.ssh/authorized_keys', target: '/etc/passwd', uid: 1000, gid: 1000 }] }, '/etc/passwd'],
    ['~/.ssh, a link to a world-writable directory', { links: [{ path: '/home/alice/.ssh', target: '/tmp', uid: 1000, gid: 1000 }] }, '/tmp'],
  ])('%s: refused, naming the path, nothing changed', async (_name, extra, named) => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], ...extra } as ImageSpec);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(1);
    expect(result.report?.status).toBe('error');
    expect(result.report?.error).toContain(named);
    expect(result.report?.changes).toEqual([]);
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });

  it("positive control: the user's own link inside the home is followed and the file is the user's", async () => {
    const { path, before } = await image({
      layout: 'ext4-whole',
      cloudInitDefaultUser: 'alice',
      users: [alice],
      dirs: [{ path: '/home/alice/dotfiles/ssh', mode: 0o700, uid: 1000, gid: 1000 }],
      links: [{ path: '/home/alice/.ssh', target: 'dotfiles/ssh', uid: 1000, gid: 1000 }],
    } as ImageSpec);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: '/home/alice/dotfiles/ssh/authorized_keys', action: 'created' }]);
    const after = await snapshotImage(path);
    expect(diffImage(before, after).map((d) => d.key)).toEqual(['disk:/home/alice/dotfiles/ssh/authorized_keys']);
    expect(after.entries.get('disk:/home/alice/dotfiles/ssh/authorized_keys')).toMatch(/^f 600 1000:1000 /);
  });

  it('a key file sshd would not read (group-writable) is refused, naming it', async () => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [alice], dirs: [{ path: '/home/alice/.ssh', mode: 0o770, uid: 1000, gid: 1000 }] } as ImageSpec);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.error).toMatch(/^refusing \/home\/alice\/\.ssh for user alice: owned by uid 1000 with mode 770, sshd \(StrictModes\) would not read/);
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('defect 11: a full filesystem', () => {
  it.each([
    ['a new key file', { ...alice, authorizedKeys: null }],
    ['a new .ssh directory', { ...alice, noSsh: true }],
  ])('%s: "no space left on the target\'s filesystem", the target exactly as found', async (_name, user) => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [user], fill: true } as ImageSpec);
    // The case is real: on a copy of the image, even root cannot write one more block.
    execFileSync('cp', ['--sparse=always', path, `${path}.probe`]);
    const probe = await onImage(`${path}.probe`, '', 'if head -c 4096 /dev/zero > "$m/probe" 2>/dev/null && sync -f "$m"; then echo wrote; else echo full; fi');
    rmSync(`${path}.probe`);
    expect(probe.trim()).toBe('full');

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.exitCode).toBe(1);
    expect(result.report?.error).toMatch(/^no space left on the target's filesystem \(writing \/home\/alice\/\.ssh(\/authorized_keys)? for user alice\); nothing was changed$/);
    expect(result.report?.changes).toEqual([]);
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  });
});

describe('defect 12: users who cannot log in, and key blobs that are not public keys', () => {
  const users = [
    { name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: null },
    { name: 'slash', uid: 1001, gid: 1001, home: '/', noHome: true },
    { name: 'svc', uid: 1002, gid: 1002, shell: '/sbin/nologin', authorizedKeys: null },
    { name: 'off', uid: 1003, gid: 1003, shell: '/bin/false', authorizedKeys: null },
  ];

  it('the default selection skips home / and nologin/false shells; a cloud-init default user that cannot log in is skipped with a warning', async () => {
    const { path, before } = await image({ layout: 'ext4-whole', cloudInitDefaultUser: 'svc', users } as ImageSpec);

    const result = await inject(path, { publicKey: key.publicKey });

    expect(result.report?.changes).toEqual([{ user: 'ec2-user', uid: 1000, file: '/home/ec2-user/.ssh/authorized_keys', action: 'created' }]);
    expect(result.report?.warnings).toEqual(['the cloud-init default user svc has the shell /sbin/nologin, which allows no login: skipped']);
    expect(diffImage(before, await snapshotImage(path)).map((d) => d.key)).toEqual(['disk:/home/ec2-user/.ssh/authorized_keys']);
  });

  let shared: { path: string; before: ImageSnapshot } | undefined;
  it.each([
    ['home /', { users: 'ec2-user,slash' }, "user slash has the home directory /, the top of the target: refusing to give it a key"],
    ['nologin', { users: 'svc' }, 'user svc has the shell /sbin/nologin, which allows no login: refusing to give it a key'],
    ['false', { users: 'ec2-user,off' }, 'user off has the shell /bin/false, which allows no login: refusing to give it a key'],
    ['an Ed25519 blob behind ssh-rsa', { publicKey: `ssh-rsa ${edBody} x` }, 'PublicKey is not a valid ssh-rsa public key: the key data does not begin with its type'],
    ['a truncated blob', { publicKey: `${edType} ${edBody.slice(0, 40)}` }, 'PublicKey is not a valid ssh-ed25519 public key: not a 32-byte Ed25519 key'],
    ['a blob with trailing bytes', { publicKey: `${edType} ${Buffer.concat([Buffer.from(edBody, 'base64'), Buffer.from([0, 0, 0, 0])]).toString('base64')}` }, 'PublicKey is not a valid ssh-ed25519 public key: trailing bytes after the key'],
    ['an OpenSSH private key blob given a type prefix', { publicKey: `${edType} ${KEYS.opensshPrivate.split('\n').filter((l) => l && !l.startsWith('-----')).join('')}` }, 'PublicKey is not a valid ssh-ed25519 public key'],
  ])('%s: refused before anything changes', async (_name, options, message) => {
    shared ??= await image({ layout: 'ext4-whole', cloudInitDefaultUser: null, users } as ImageSpec);

    const result = await inject(shared.path, { publicKey: key.publicKey, ...options });

    expect(result.exitCode).toBe(1);
    expect(result.report?.error).toContain(message);
    expect(result.report?.changes).toEqual([]);
    expect(diffImage(shared.before, await snapshotImage(shared.path))).toEqual([]);
    for (const secret of [KEYS.opensshPrivate, KEYS.ed25519Pem]) {
      const body = secret.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      expect(result.stdout.includes(body.slice(20, 60)) || result.stderr.includes(body.slice(20, 60))).toBe(false);
    }
  });
});

describe('defect 13: a root filesystem with a dirty journal', () => {
  it.each([
    ['ext4', 'ext4-whole', '', 'ro,noload'],
    ['xfs', 'gpt-xfs', 'p1', 'ro,nouuid,norecovery'],
  ])('%s: a user added just before a forced stop is found after the replay, and the report says so', async (_fs, layout, partition, noReplay) => {
    const { path } = await image({
      layout,
      cloudInitDefaultUser: null,
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }],
      userInJournalOnly: { name: 'newadmin', uid: 1001, gid: 1001 },
    } as ImageSpec);
    // The case is real: without replaying the journal the user does not exist.
    expect(await onImage(path, partition, 'cat "$m/etc/passwd"', noReplay)).not.toContain('newadmin:');

    const result = await inject(path, { publicKey: key.publicKey, users: 'newadmin' });

    expect(result.report?.status).toBe('ok');
    expect(result.report?.changes).toEqual([{ user: 'newadmin', uid: 1001, file: '/home/newadmin/.ssh/authorized_keys', action: 'created' }]);
    const device = result.report?.root?.device as string;
    expect(result.report?.journalReplayed).toEqual([device]);
    expect(result.report?.warnings).toEqual([expect.stringContaining(`the journal of ${device} (${_fs}) was not clean: it was replayed`)]);
    expect(await onImage(path, partition, 'cat "$m/etc/passwd" "$m/home/newadmin/.ssh/authorized_keys"', noReplay)).toContain(key.publicKey);
  });
});
