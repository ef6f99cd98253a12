/**
 * The revoke-key script (the text deployed in the Command document) on real filesystems on loop
 * devices, with OpenSSH as the oracle of which line holds which key: `ssh-keygen -l -f` reads a key
 * file line by line, options included, and prints each key's SHA256 fingerprint. Each line of each
 * fixture is given to ssh-keygen alone; the lines it attributes to a revoked fingerprint must be
 * exactly the lines removed, and every other line must be kept byte for byte, in order. An Audit run
 * must not change one byte of the disk image.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { loadRevokeKeyDocument, revokeKeyScriptFromDocument } from '../../lib/inject-key-document';
import { diffImage, snapshotImage, type ImageSnapshot } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { runInjectScript, type RunInjectResult } from '../../local/disk/run-inject';
import { sshLogin, startSshd } from '../../local/disk/sshd';
import { scratchImages, sha256File, VOLUME_ID } from '../support/disk';

// --- keys, made by ssh-keygen
const keyDir = mkdtempSync('/var/tmp/revoke-keys-');
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

interface Key {
  readonly type: string;
  readonly base64: string;
  readonly line: string;
  readonly fingerprint: string;
  /** The private half, for the ssh logins (only handed to sshLogin, which never prints it). */
  readonly privateKey: string;
}

function makeKey(name: string, type: 'ed25519' | 'rsa' | 'ecdsa'): Key {
  const file = join(keyDir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', name, '-f', file]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim();
  const privateKey = readFileSync(file, 'utf8');
  rmSync(file);
  const [keyType, base64] = line.split(' ');
  const fingerprint = fingerprintOf(line);
  if (fingerprint === null) throw new Error(`ssh-keygen reads no key in ${name}.pub`);
  return { type: keyType, base64, line, fingerprint, privateKey };
}

/** ssh-keygen's fingerprint of one line of an authorized keys file, or null when it reads no key there. */
function fingerprintOf(line: string): string | null {
  const file = join(keyDir, 'line');
  writeFileSync(file, `${line}\n`);
  try {
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /\b(SHA256:[A-Za-z0-9+/]{43})\b/.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

const leaked = makeKey('leaked', 'ed25519');
const leakedRsa = makeKey('leaked-rsa', 'rsa');
const keep = makeKey('keep', 'ed25519');
const keepRsa = makeKey('keep-rsa', 'rsa');
const other = makeKey('other-type', 'ecdsa');
const ca = makeKey('ca', 'ed25519');
const replacement = makeKey('replacement', 'ed25519');
const revoked = [leaked.fingerprint, leakedRsa.fingerprint];

/** Lines of a fixture with their own line ends; cert-authority lines marked (the report names them). */
interface FixtureLine {
  readonly text: string;
  readonly end: '\n' | '\r\n' | '';
  readonly ca?: boolean;
}
const join_ = (lines: readonly FixtureLine[]): string => lines.map((l) => l.text + l.end).join('');

/** What the oracle says the file must be after a Revoke: every line ssh-keygen attributes to a revoked key left out. */
function expectedAfter(lines: readonly FixtureLine[], added?: string): string {
  const kept = lines.filter((l) => l.ca || !revoked.includes(fingerprintOf(l.text.replace(/\r$/, '')) ?? ''));
  let text = join_(kept);
  if (added !== undefined) text += `${text === '' || text.endsWith('\n') ? '' : '\n'}${added}\n`;
  return text;
}

// ec2-user: every shape of line. The leaked key with options (quoted spaces and commas), a comment,
// CRLF, twice; a near miss (the leaked blob under another type's name, which sshd refuses); keys of
// other types; a cert-authority line holding the leaked key (reported, never edited); comments.
const ec2UserLines: FixtureLine[] = [
  { text: '# keys of the ops team', end: '\n' },
  { text: leaked.line, end: '\n' },
  { text: `from="10.0.0.1,192.168.0.0/16",command="echo \\"hi, there\\"",no-pty ${leaked.type} ${leaked.base64} leaked with options`, end: '\n' },
  { text: keep.line, end: '\n' },
  { text: `${leakedRsa.type} ${leakedRsa.base64} rsa from windows\r`, end: '\n' },
  { text: `no-agent-forwarding ${keepRsa.line}\r`, end: '\n' },
  { text: '', end: '\n' },
  { text: `   ${leaked.type} ${leaked.base64}`, end: '\n' },
  { text: `ssh-rsa ${leaked.base64} near miss: the leaked blob named as another type`, end: '\n' },
  { text: other.line, end: '\n' },
  { text: `cert-authority,principals="ops,admin" ${leaked.type} ${leaked.base64} a CA line`, end: '\n', ca: true },
  { text: `cert-authority ${ca.line}`, end: '\n', ca: true },
  { text: `#${leaked.line}`, end: '\n' },
  { text: `${leaked.line} duplicate`, end: '' },
];
// alice: a Match block gives her /etc/ssh/keys/%u; her ~/.ssh/authorized_keys is not read by sshd.
const aliceLines: FixtureLine[] = [
  { text: keep.line, end: '\n' },
  { text: `${leaked.type} ${leaked.base64} alice too`, end: '\n' },
];
const aliceUnread = `${leaked.line} not read by sshd for alice\n`;
// carol: only the leaked key (left without a key unless replaced); root: the leaked RSA key.
const carolLines: FixtureLine[] = [{ text: `${leaked.line} carol`, end: '\n' }];
const rootLines: FixtureLine[] = [{ text: `${leakedRsa.line}`, end: '\n' }, { text: keepRsa.line, end: '\n' }];
// bob: no revoked key at all; his file must not be touched.
const bobLines: FixtureLine[] = [{ text: keep.line, end: '\n' }, { text: other.line, end: '' }];

const { image } = scratchImages('revoke-test-', 'disk');

function spec(layout: 'ext4-whole' | 'gpt-xfs') {
  return {
    layout,
    users: [
      { name: 'root', uid: 0, gid: 0, home: '/root', authorizedKeys: join_(rootLines) },
      { name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: join_(ec2UserLines) },
      { name: 'alice', uid: 1001, gid: 1001, authorizedKeys: aliceUnread },
      { name: 'bob', uid: 1002, gid: 1002, authorizedKeys: join_(bobLines) },
      { name: 'carol', uid: 1003, gid: 1003, authorizedKeys: join_(carolLines) },
      { name: 'mallory', uid: 1004, gid: 1004 },
      { name: 'mallet', uid: 1005, gid: 1005 },
    ],
    sshdConfigD: {
      '40-sss.conf': 'AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u\nAuthorizedKeysCommandUser nobody\n',
      '50-alice.conf': 'Match User alice\n    AuthorizedKeysFile /etc/ssh/keys/%u\n',
    },
    extraFiles: { '/etc/ssh/keys/alice': join_(aliceLines) },
    // Hostile users' links: mallory's key file is alice's (sshd follows the link: alice's keys open
    // mallory's account too); mallet's leads to /etc/shadow, which sshd, as mallet, cannot open.
    links: [
      { path: '/home/mallory/.ssh/authorized_keys', target: '/etc/ssh/keys/alice', uid: 1004, gid: 1004 },
      { path: '/home/mallet/.ssh/authorized_keys', target: '/etc/shadow', uid: 1005, gid: 1005 },
    ],
  } as const;
}

const deployed = revokeKeyScriptFromDocument(loadRevokeKeyDocument());

interface RevokeOptions {
  readonly mode: 'Audit' | 'Revoke';
  readonly fingerprints?: readonly string[];
  readonly replacementKey?: string;
  readonly users?: string;
}

/** Run the deployed script: offline on the image attached as VOLUME_ID (no volume at all for ''), or online with the image as the live root (Root=/). */
async function revoke(path: string, options: RevokeOptions & { readonly online?: boolean }): Promise<RunInjectResult & { report: any }> {
  const result = await runInjectScript({
    script: deployed,
    env: {
      SSM_VolumeId: options.online ? '' : VOLUME_ID,
      SSM_Root: options.online ? '/' : '',
      SSM_Fingerprints: (options.fingerprints ?? revoked).join(','),
      SSM_ReplacementKey: options.replacementKey ?? '',
      SSM_Users: options.users ?? '',
      SSM_Mode: options.mode,
    },
    volumes: options.online || path === '' ? {} : { [VOLUME_ID]: path },
    ...(options.online ? { liveRoot: path } : {}),
    timeoutMs: 90_000,
  });
  if (result.leftoverMounts.length > 0 || result.leftoverTmp.length > 0) {
    throw new Error(`the script left mounts ${JSON.stringify(result.leftoverMounts)} and files ${JSON.stringify(result.leftoverTmp)}`);
  }
  return result as RunInjectResult & { report: any };
}

/** Files of an image's filesystem (partition suffix, or '' for the whole disk), read-only. */
async function readFiles(path: string, partition: string, files: readonly string[], options: string): Promise<Record<string, string>> {
  const loop = await attachLoop(path);
  try {
    const script = 'set -e; m=$(mktemp -d); trap \'umount "$m" 2>/dev/null; rmdir "$m"\' EXIT; mount -o "ro$2" "$1" "$m"; shift 2; for f; do base64 -w0 "$m$f"; echo; done';
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'read', `${loop.device}${partition}`, options, ...files], { encoding: 'utf8' });
    const lines = out.split('\n');
    return Object.fromEntries(files.map((f, i) => [f, Buffer.from(lines[i], 'base64').toString('utf8')]));
  } finally {
    await detachLoop(loop.device);
  }
}

async function changed(path: string, before: ImageSnapshot): Promise<Record<string, string | undefined>> {
  return Object.fromEntries(diffImage(before, await snapshotImage(path)).map((d) => [d.key, d.after]));
}

const KEY_FILES = ['/root/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys', '/etc/ssh/keys/alice', '/home/alice/.ssh/authorized_keys', '/home/bob/.ssh/authorized_keys', '/home/carol/.ssh/authorized_keys'];

describe('the fixtures mean what the tests say, by ssh-keygen', () => {
  test('each leaked line is one ssh-keygen reads as a revoked key; the near miss and the comments are no key', () => {
    expect(ec2UserLines.map((l) => fingerprintOf(l.text.replace(/\r$/, '')))).toEqual([
      null, leaked.fingerprint, leaked.fingerprint, keep.fingerprint, leakedRsa.fingerprint, keepRsa.fingerprint, null,
      leaked.fingerprint, null, other.fingerprint, leaked.fingerprint, ca.fingerprint, null, leaked.fingerprint,
    ]);
    // CRLF lines as they are in the file: ssh-keygen reads the same key
    expect(fingerprintOf(`${leakedRsa.type} ${leakedRsa.base64} rsa from windows\r`)).toBe(leakedRsa.fingerprint);
  });
});

/** The entries of a snapshot diff, with the partition prefix taken off. */
function changedPaths(diff: Record<string, string | undefined>, prefix: string): string[] {
  return Object.keys(diff).map((k) => k.slice(prefix.length)).sort();
}

describe.each([
  ['ext4-whole', '', ',noload', 'disk:'],
  ['gpt-xfs', 'p1', ',nouuid,norecovery', 'p1:'],
] as const)('revoke-key on a %s image', (layout, partition, mountOptions, prefix) => {
  let path: string;
  let before: ImageSnapshot;

  beforeAll(async () => {
    ({ path, before } = await image(spec(layout)));
  }, 120_000);

  test('Audit: reports every file and line that holds a revoked key, and not one byte of the disk changes', async () => {
    // Prepare
    const checksum = sha256File(path);

    // Act
    const result = await revoke(path, { mode: 'Audit', replacementKey: replacement.line, users: 'bob' });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(sha256File(path)).toBe(checksum);
    const r = result.report;
    expect(r).toMatchObject({ version: 1, status: 'ok', mode: 'Audit', verified: false, removed: 0, added: 0 });
    // sshd also asks a program for keys: reported as the directive, never run or edited
    expect(r.authorizedKeysCommand).toBe('AuthorizedKeysCommand /usr/bin/sss_ssh_authorizedkeys %u');
    const byPath = Object.fromEntries((r.files as any[]).map((f) => [f.path, f]));
    expect(byPath['/home/ec2-user/.ssh/authorized_keys']).toEqual({ path: '/home/ec2-user/.ssh/authorized_keys', users: ['ec2-user'], matches: 5, removed: 0, added: 0, kept: 4 });
    // alice's file, once, for alice (her Match block) and for mallory (whose link leads there)
    expect(byPath['/etc/ssh/keys/alice']).toEqual({ path: '/etc/ssh/keys/alice', users: ['alice', 'mallory'], matches: 1, removed: 0, added: 0, kept: 1 });
    expect(byPath['/root/.ssh/authorized_keys']).toMatchObject({ users: ['root'], matches: 1, kept: 1 });
    expect(byPath['/home/bob/.ssh/authorized_keys']).toMatchObject({ matches: 0, kept: 2 });
    expect(byPath['/home/carol/.ssh/authorized_keys']).toMatchObject({ matches: 1, kept: 0 });
    // sshd does not read alice's ~/.ssh/authorized_keys (her Match block names another file), nor,
    // as mallet, /etc/shadow
    expect(Object.keys(byPath).sort()).toEqual(['/etc/ssh/keys/alice', '/home/bob/.ssh/authorized_keys', '/home/carol/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys', '/root/.ssh/authorized_keys']);
    expect(r.warnings.join('\n')).toContain('user mallet cannot open /etc/shadow');
    expect(r.found).toBe(8);
    // with the replacement, nobody would be left without a key
    expect(r.usersWithoutKey).toEqual([]);
    // both cert-authority lines are reported, the one with the leaked key too (never edited)
    expect(r.caLines).toEqual([{ path: '/home/ec2-user/.ssh/authorized_keys', line: 11 }, { path: '/home/ec2-user/.ssh/authorized_keys', line: 12 }]);
    expect(r.warnings.join('\n')).toContain('line 11 of /home/ec2-user/.ssh/authorized_keys is a cert-authority line with a revoked key');
    expect(Buffer.byteLength(result.stdout.trim().split('\n').pop() as string)).toBeLessThan(24_000);
  }, 120_000);

  if (layout === 'ext4-whole') {
    test('Users naming a user sshd reads no key file for (mallet): refused, naming him, before the volume is mounted read-write', async () => {
      const checksum = sha256File(path);
      const result = await revoke(path, { mode: 'Revoke', replacementKey: replacement.line, users: 'mallet' });
      expect(result.exitCode).not.toBe(0);
      expect(result.report).toMatchObject({ status: 'error', mode: 'Revoke', error: expect.stringContaining('user mallet has no key file sshd reads') });
      expect(sha256File(path)).toBe(checksum);
    }, 120_000);

    test('Revoke without a replacement: exactly the lines ssh-keygen attributes to a revoked key are gone, the rest byte for byte; carol is left without a key', async () => {
      // Act
      const result = await revoke(path, { mode: 'Revoke' });

      // Assess
      expect(result.exitCode).toBe(0);
      expect(result.report).toMatchObject({ status: 'ok', mode: 'Revoke', verified: true, found: 8, removed: 8, added: 0, usersWithoutKey: ['carol'] });
      const files = await readFiles(path, partition, KEY_FILES, mountOptions);
      expect(files['/home/ec2-user/.ssh/authorized_keys']).toBe(expectedAfter(ec2UserLines));
      expect(files['/etc/ssh/keys/alice']).toBe(expectedAfter(aliceLines));
      expect(files['/root/.ssh/authorized_keys']).toBe(expectedAfter(rootLines));
      expect(files['/home/carol/.ssh/authorized_keys']).toBe('');
      expect(files['/home/bob/.ssh/authorized_keys']).toBe(join_(bobLines));
      expect(files['/home/alice/.ssh/authorized_keys']).toBe(aliceUnread);
      // Only the four files changed, each with its owner and mode; the hostile links are as they were
      const diff = await changed(path, before);
      expect(changedPaths(diff, prefix)).toEqual(['/etc/ssh/keys/alice', '/home/carol/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys', '/root/.ssh/authorized_keys']);
      expect(diff[`${prefix}/home/ec2-user/.ssh/authorized_keys`]).toMatch(/^f 600 1000:1000 /);
      expect(diff[`${prefix}/root/.ssh/authorized_keys`]).toMatch(/^f 600 0:0 /);
      expect(diff[`${prefix}/etc/ssh/keys/alice`]).toMatch(/^f 644 0:0 /);
    }, 120_000);

    test('a second Revoke finds nothing and does not even mount the volume read-write: not one byte changes', async () => {
      const checksum = sha256File(path);
      const result = await revoke(path, { mode: 'Revoke' });
      expect(result.exitCode).toBe(0);
      expect(result.report).toMatchObject({ status: 'ok', found: 0, removed: 0, added: 0, usersWithoutKey: [], verified: true });
      expect(sha256File(path)).toBe(checksum);
    }, 120_000);
  } else {
    test('Revoke with a replacement and Users=bob: the oracle\'s lines gone, the replacement where a key was and for bob', async () => {
      // Act
      const result = await revoke(path, { mode: 'Revoke', replacementKey: replacement.line, users: 'bob' });

      // Assess
      expect(result.exitCode).toBe(0);
      expect(result.report).toMatchObject({ status: 'ok', mode: 'Revoke', verified: true, found: 8, removed: 8, added: 5, usersWithoutKey: [] });
      const files = await readFiles(path, partition, KEY_FILES, mountOptions);
      expect(files['/home/ec2-user/.ssh/authorized_keys']).toBe(expectedAfter(ec2UserLines, replacement.line));
      expect(files['/etc/ssh/keys/alice']).toBe(expectedAfter(aliceLines, replacement.line));
      expect(files['/root/.ssh/authorized_keys']).toBe(expectedAfter(rootLines, replacement.line));
      expect(files['/home/carol/.ssh/authorized_keys']).toBe(expectedAfter(carolLines, replacement.line));
      expect(files['/home/bob/.ssh/authorized_keys']).toBe(`${join_(bobLines)}\n${replacement.line}\n`);
      expect(files['/home/alice/.ssh/authorized_keys']).toBe(aliceUnread);
      // The oracle over the whole result: no line of any file sshd reads holds a revoked key (but the CA line)
      for (const f of ['/home/ec2-user/.ssh/authorized_keys', '/etc/ssh/keys/alice', '/root/.ssh/authorized_keys', '/home/carol/.ssh/authorized_keys']) {
        const left = files[f].split('\n').filter((l) => !l.startsWith('cert-authority')).map((l) => fingerprintOf(l.replace(/\r$/, '')));
        expect(left.filter((fp) => fp !== null && revoked.includes(fp))).toEqual([]);
        expect(left).toContain(replacement.fingerprint);
      }
      const diff = await changed(path, before);
      expect(changedPaths(diff, prefix)).toEqual(['/etc/ssh/keys/alice', '/home/bob/.ssh/authorized_keys', '/home/carol/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys', '/root/.ssh/authorized_keys']);
      expect(diff[`${prefix}/home/bob/.ssh/authorized_keys`]).toMatch(/^f 600 1002:1002 /);
    }, 120_000);

    test('OpenSSH\'s sshd on the revoked disk: the leaked keys no longer log in, the kept and replacement keys do', async () => {
      // Prepare
      const loop = await attachLoop(path);
      try {
        const sshd = await startSshd({ root: { device: `${loop.device}p1`, fstype: 'xfs' }, timeoutSeconds: 60 });
        try {
          // Act
          const login = async (user: string, key: Key): Promise<boolean> => (await sshLogin({ port: sshd.port, user, privateKey: key.privateKey })).ok;
          const verdicts = {
            ec2UserLeaked: await login('ec2-user', leaked),
            ec2UserLeakedRsa: await login('ec2-user', leakedRsa),
            carolLeaked: await login('carol', leaked),
            ec2UserKept: await login('ec2-user', keep),
            ec2UserReplacement: await login('ec2-user', replacement),
            carolReplacement: await login('carol', replacement),
            bobReplacement: await login('bob', replacement),
          };

          // Assess
          expect(verdicts).toEqual({
            ec2UserLeaked: false, ec2UserLeakedRsa: false, carolLeaked: false,
            ec2UserKept: true, ec2UserReplacement: true, carolReplacement: true, bobReplacement: true,
          });
        } finally {
          await sshd.stop();
        }
      } finally {
        await detachLoop(loop.device);
      }
    }, 120_000);
  }
});

/** Run a shell script as root with an image's filesystem mounted read-write at $m, in a private mount namespace. */
async function onImage(path: string, partition: string, script: string): Promise<void> {
  const loop = await attachLoop(path);
  try {
    const wrapper = `set -e; m=$(mktemp -d); trap 'umount "$m" 2>/dev/null; rmdir "$m"' EXIT; mount "$1" "$m"; ${script}`;
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', wrapper, 'x', `${loop.device}${partition}`]);
  } finally {
    await detachLoop(loop.device);
  }
}

describe('the file keeps its immutable flag and SELinux label; a failed write undoes every other', () => {
  const LABEL = 'system_u:object_r:ssh_home_t:s0';
  let path: string;

  beforeAll(async () => {
    ({ path } = await image({
      layout: 'ext4-whole',
      selinux: 'enforcing',
      immutableKeyFileOf: 'ec2-user',
      users: [
        { name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${leaked.line}\n${keep.line}\n` },
        { name: 'carol', uid: 1003, gid: 1003, authorizedKeys: `${keep.line}\n${leaked.line}\n` },
      ],
      // carol's .ssh: hers and readable, so sshd reads her keys, but she cannot write in it
      dirs: [{ path: '/home/carol/.ssh', mode: 0o500, uid: 1003, gid: 1003 }],
    }));
    // Prepare: ec2-user's file carries a label, as on an SELinux system (set with the flag off, then on again)
    const file = '"$m/home/ec2-user/.ssh/authorized_keys"';
    await onImage(path, '', `chattr -i ${file}; setfattr -h -n security.selinux -v ${LABEL} ${file}; chattr +i ${file}`);
  }, 120_000);

  test('carol\'s directory refuses the write: an error naming it, and ec2-user\'s file (rewritten first) is put back as it was', async () => {
    // Prepare
    const before = await snapshotImage(path);
    const entry = before.entries.get('disk:/home/ec2-user/.ssh/authorized_keys') as string;
    expect(entry).toMatch(/flags=----i/);
    expect(entry).toContain(`security.selinux=0x${Buffer.from(LABEL).toString('hex')}`);

    // Act
    const result = await revoke(path, { mode: 'Revoke' });

    // Assess
    expect(result.exitCode).not.toBe(0);
    expect(result.report).toMatchObject({ status: 'error', mode: 'Revoke' });
    expect(result.report.error).toContain('/home/carol/.ssh');
    // (ec2-user's file had been replaced before carol's failed: the undo is what put it back)
    expect(result.stderr).toContain('/home/ec2-user/.ssh/authorized_keys: removed 1 line(s)');
    expect(diffImage(before, await snapshotImage(path))).toEqual([]);
  }, 120_000);

  test('once carol can write: both files revoked, ec2-user\'s keeps owner, mode, label and immutable flag', async () => {
    // Prepare
    await onImage(path, '', 'chmod 700 "$m/home/carol/.ssh"');
    const before = await snapshotImage(path);

    // Act
    const result = await revoke(path, { mode: 'Revoke' });

    // Assess
    expect(result.exitCode).toBe(0);
    expect(result.report).toMatchObject({ status: 'ok', removed: 2, verified: true, usersWithoutKey: [] });
    const diff = await changed(path, before);
    expect(Object.keys(diff).sort()).toEqual(['disk:/home/carol/.ssh/authorized_keys', 'disk:/home/ec2-user/.ssh/authorized_keys']);
    const entry = diff['disk:/home/ec2-user/.ssh/authorized_keys'] as string;
    expect(entry).toMatch(/^f 600 1000:1000 /);
    expect(entry).toMatch(/flags=----i/);
    expect(entry).toContain(`security.selinux=0x${Buffer.from(LABEL).toString('hex')}`);
    expect(diff['disk:/home/carol/.ssh/authorized_keys']).toMatch(/^f 600 1003:1003 /);
    const files = await readFiles(path, '', ['/home/ec2-user/.ssh/authorized_keys', '/home/carol/.ssh/authorized_keys'], ',noload');
    expect(files).toEqual({ '/home/ec2-user/.ssh/authorized_keys': `${keep.line}\n`, '/home/carol/.ssh/authorized_keys': `${keep.line}\n` });
  }, 120_000);
});

describe('the online method (Root=/): the image is the running system', () => {
  test('Revoke with a replacement: the same lines gone as offline, by the same oracle; nothing else on the disk changes', async () => {
    // Prepare
    const { path, before } = await image(spec('ext4-whole'));

    // Act
    const result = await revoke(path, { mode: 'Revoke', replacementKey: replacement.line, online: true });

    // Assess
    expect(result.exitCode).toBe(0);
    // (root's home is this machine's /root, not the image's: only the image's users are checked)
    const byPath = Object.fromEntries((result.report.files as any[]).map((f) => [f.path, f]));
    expect(byPath['/home/ec2-user/.ssh/authorized_keys']).toEqual({ path: '/home/ec2-user/.ssh/authorized_keys', users: ['ec2-user'], matches: 5, removed: 5, added: 1, kept: 4 });
    expect(byPath['/etc/ssh/keys/alice']).toMatchObject({ users: ['alice', 'mallory'], removed: 1, added: 1 });
    expect(result.report).toMatchObject({ status: 'ok', mode: 'Revoke', verified: true });
    const files = await readFiles(path, '', KEY_FILES, ',noload');
    expect(files['/home/ec2-user/.ssh/authorized_keys']).toBe(expectedAfter(ec2UserLines, replacement.line));
    expect(files['/etc/ssh/keys/alice']).toBe(expectedAfter(aliceLines, replacement.line));
    expect(files['/home/carol/.ssh/authorized_keys']).toBe(expectedAfter(carolLines, replacement.line));
    expect(files['/home/bob/.ssh/authorized_keys']).toBe(join_(bobLines));
    expect(files['/root/.ssh/authorized_keys']).toBe(join_(rootLines));
    expect(changedPaths(await changed(path, before), 'disk:')).toEqual(['/etc/ssh/keys/alice', '/home/carol/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys']);
  }, 120_000);
});

describe('bad input: a clear error naming the parameter, before anything is read or written', () => {
  test.each([
    ['Fingerprints empty', { fingerprints: [] as string[] }, /Fingerprints must be 1 to 20/],
    ['an MD5 fingerprint', { fingerprints: ['MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48'] }, /Fingerprints must be/],
    ['21 fingerprints', { fingerprints: Array.from({ length: 21 }, () => leaked.fingerprint) }, /Fingerprints must be/],
    ['a private key as the replacement', { replacementKey: '-----BEGIN OPENSSH PRIVATE KEY-----' }, /ReplacementKey is a private key/],
    ['the revoked key as the replacement', { replacementKey: leaked.line }, /ReplacementKey is one of the keys to revoke/],
    ['a key line with options as the replacement', { replacementKey: `no-pty ${keep.line}` }, /ReplacementKey is not one OpenSSH public key line/],
    ['Users without a replacement', { users: 'bob' }, /Users is given without ReplacementKey/],
    ['Mode in lower case', { mode: 'revoke' }, /Mode must be Audit or Revoke/],
  ] as const)('%s', async (_label, options, message) => {
    const result = await revoke('', { mode: 'Revoke', ...options } as RevokeOptions);
    expect(result.exitCode).not.toBe(0);
    expect(result.report).toMatchObject({ version: 1, status: 'error', error: expect.stringMatching(message) });
    expect(result.stdout + result.stderr).not.toContain('BEGIN OPENSSH');
  });
});
