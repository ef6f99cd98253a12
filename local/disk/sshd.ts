/**
 * A real OpenSSH sshd that authenticates the users of a disk image against the image's own
 * authorized_keys, and an `ssh -i` login to it.
 *
 * sshd runs in a private mount namespace where the image's root filesystem (and its separate
 * /home) is mounted read-only and its /etc/passwd, /etc/group, /etc/shadow and /home are
 * bind-mounted over this machine's, and /run is a fresh tmpfs (for sshd's privilege-separation
 * directory). It listens on 127.0.0.1 on a free port, with StrictModes yes, public keys only,
 * host keys made in a private temp dir, and runs under `timeout` so that it always stops.
 * UsePAM is no (PAM would need the machine's session services); the images' shadow entries are
 * `*` (no password, not locked), as sshd without PAM refuses `!`-locked accounts.
 */
import { execFile, spawn, type ChildProcess } from 'child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';

const run = promisify(execFile);

export interface SshdFilesystem {
  /** Block device, e.g. /dev/loop3p1. */
  readonly device: string;
  readonly fstype: string;
  /** Extra mount options, e.g. `subvol=root`. */
  readonly options?: string;
}

export interface SshdOptions {
  /** The image's root filesystem. */
  readonly root: SshdFilesystem;
  /** The image's separate /home, when it has one. */
  readonly home?: SshdFilesystem;
  /** The target's AuthorizedKeysFile value. @default .ssh/authorized_keys */
  readonly authorizedKeysFile?: string;
  /** sshd stops by itself after this long. @default 120 */
  readonly timeoutSeconds?: number;
  /**
   * Directories of the image bound over the same path of this machine for sshd (each must exist
   * here, e.g. /srv), for key files outside the homes. @default []
   */
  readonly binds?: readonly string[];
}

export interface RunningSshd {
  readonly port: number;
  /** What sshd logged so far (host keys and users' keys never appear in it). */
  log(): string;
  stop(): Promise<void>;
}

export interface SshLoginOptions {
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  /** @default 'id -un' */
  readonly command?: string;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function mountOptions(fs: SshdFilesystem): string {
  const base = fs.fstype === 'xfs' ? 'ro,nouuid,norecovery' : fs.fstype.startsWith('ext') ? 'ro,noload' : 'ro';
  return fs.options ? `${base},${fs.options}` : base;
}

/** Start sshd for the image; resolves when it listens. */
export async function startSshd(options: SshdOptions): Promise<RunningSshd> {
  const work = mkdtempSync(join(tmpdir(), 'sshd-'));
  chmodSync(work, 0o700);
  let child: ChildProcess | undefined;
  try {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test-host', '-f', join(work, 'host_ed25519')]);
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(work, 'host_ed25519')}`,
      'PidFile none',
      'StrictModes yes',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      `AuthorizedKeysFile ${options.authorizedKeysFile ?? '.ssh/authorized_keys'}`,
      'LogLevel VERBOSE',
      'MaxStartups 10:30:100',
      '',
    ].join('\n');
    writeFileSync(join(work, 'sshd_config'), config, { mode: 0o600 });
    const root = join(work, 'root');
    const script = [
      'set -eu',
      'mount -t tmpfs -o mode=0755,size=1m sshd-run /run',
      'mkdir -m 0755 /run/sshd',
      `mkdir ${q(root)}`,
      `mount -t ${q(options.root.fstype)} -o ${q(mountOptions(options.root))} ${q(options.root.device)} ${q(root)}`,
      ...(options.home
        ? [`mount -t ${q(options.home.fstype)} -o ${q(mountOptions(options.home))} ${q(options.home.device)} ${q(`${root}/home`)}`]
        : []),
      ...['passwd', 'group', 'shadow'].map((f) => `mount --bind ${q(`${root}/etc/${f}`)} /etc/${f}`),
      `mount --rbind ${q(`${root}/home`)} /home`,
      `mount --bind ${q(`${root}/root`)} /root`,
      ...(options.binds ?? []).map((b) => `mount --bind ${q(`${root}${b}`)} ${q(b)}`),
      `exec /usr/sbin/sshd -D -e -f ${q(join(work, 'sshd_config'))}`,
    ].join('\n');
    const seconds = String(options.timeoutSeconds ?? 120);
    const started = spawn('timeout', ['-k', '5', seconds, 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', script], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = started;
    let log = '';
    started.stderr?.on('data', (d: Buffer) => (log += d.toString('utf8')));
    const exited = new Promise<void>((resolve) => started.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`sshd did not start within 15 s: ${log}`)), 15_000);
      const check = (): void => {
        if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          clearTimeout(deadline);
          resolve();
        }
      };
      started.stderr?.on('data', check);
      started.once('close', (code) => {
        clearTimeout(deadline);
        reject(new Error(`sshd exited (${code}) before listening: ${log}`));
      });
    });
    let stopped = false;
    return {
      port,
      log: () => log,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        started.kill('SIGTERM');
        await exited;
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (child && child.exitCode === null) {
      const closed = new Promise((resolve) => child?.once('close', resolve));
      child.kill('SIGTERM');
      await closed;
    }
    rmSync(work, { recursive: true, force: true });
    throw error;
  }
}

/**
 * `ssh -i` to 127.0.0.1:port as user, running a command; the private key lives in a 0600 file
 * in a 0700 temp dir for the duration of the call only, and never appears in the result.
 */
export async function sshLogin(options: SshLoginOptions): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ssh-login-'));
  try {
    chmodSync(dir, 0o700);
    const keyFile = join(dir, 'id');
    writeFileSync(keyFile, options.privateKey, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
    const args = [
      '30', 'ssh', '-F', '/dev/null', '-i', keyFile,
      '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-o', 'ConnectTimeout=10', '-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no',
      '-p', String(options.port), `${options.user}@127.0.0.1`, options.command ?? 'id -un',
    ];
    try {
      const { stdout, stderr } = await run('timeout', args, { encoding: 'utf8' });
      return { ok: true, stdout, stderr };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What OpenSSH's own sshd reads for each user of an image: `sshd -T -C user=<u>,host=x,addr=1.2.3.4
 * -f /etc/ssh/sshd_config` in a private mount namespace where the image's root is mounted read-only
 * and its /etc/ssh, /etc/passwd and /etc/group are bind-mounted over this machine's (so Include
 * paths and Match Group resolve as on the target). Returns user -> the `authorizedkeysfile`
 * words as sshd -T prints them (tokens unexpanded).
 */
export async function sshdAuthorizedKeysFiles(root: SshdFilesystem, users: readonly string[]): Promise<Record<string, string[]>> {
  const lines = await sshdAuthorizedKeysLines(root, users);
  return Object.fromEntries(Object.entries(lines).map(([u, line]) => [u, line.trim().split(/\s+/)]));
}

/**
 * The same, user -> the `authorizedkeysfile` value exactly as sshd -T prints it (the words joined by
 * one space: a single path holding a space stays whole).
 */
export async function sshdAuthorizedKeysLines(root: SshdFilesystem, users: readonly string[]): Promise<Record<string, string>> {
  const work = mkdtempSync(join(tmpdir(), 'sshd-T-'));
  try {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test-host', '-f', join(work, 'host')]);
    const script = [
      'set -eu',
      'mount -t tmpfs -o mode=0755,size=1m sshd-run /run',
      'mkdir -m 0755 /run/sshd',
      `mkdir ${q(`${work}/root`)}`,
      `mount -t ${q(root.fstype)} -o ${q(mountOptions(root))} ${q(root.device)} ${q(`${work}/root`)}`,
      ...['passwd', 'group'].map((f) => `mount --bind ${q(`${work}/root/etc/${f}`)} /etc/${f}`),
      `mount --bind ${q(`${work}/root/etc/ssh`)} /etc/ssh`,
      'for u in "$@"; do printf "@@%s " "$u"; /usr/sbin/sshd -T -C "user=$u,host=x,addr=1.2.3.4" -f /etc/ssh/sshd_config -h "$HOSTKEY" | grep -i "^authorizedkeysfile " || echo; done',
    ].join('\n');
    const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'sshd-T', ...users], {
      env: { ...process.env, HOSTKEY: join(work, 'host') },
    });
    const out: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const m = /^@@(\S+) authorizedkeysfile (.*)$/i.exec(line);
      if (m) out[m[1]] = m[2];
    }
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
