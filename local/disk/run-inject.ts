/**
 * Run the inject-key script as the SSM agent would on the helper, against loop devices: as
 * root, in a private mount namespace where /dev/disk/by-id is a fresh tmpfs holding the NVMe
 * links the helper would have (nvme-Amazon_Elastic_Block_Store_vol<hex>, and -partN) pointing
 * at the loop device and its partitions. Parameters reach it as SSM_<Name> environment
 * variables only. Whatever the script leaves mounted dies with the namespace, and is reported.
 */
import { spawn } from 'child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { attachLoop, detachLoop, partitionsOf } from './loop';

/** The JSON report the script prints as its last line of standard output. */
export interface InjectReport {
  readonly version: number;
  readonly status: 'ok' | 'error';
  readonly error?: string;
  readonly root?: { readonly device: string; readonly fstype: string };
  readonly home?: { readonly device: string; readonly fstype: string } | null;
  /** The target's filesystems besides the root that the script mounted (fstab), outermost first. */
  readonly mounts?: ReadonlyArray<{ readonly mountpoint: string; readonly device: string; readonly fstype: string }>;
  readonly selinux?: boolean;
  /** The target's filesystems whose journal was not clean and was replayed before anything was judged. */
  readonly journalReplayed?: readonly string[];
  readonly changes: ReadonlyArray<{
    readonly user: string;
    readonly uid: number;
    readonly file: string;
    readonly action: 'created' | 'appended' | 'already-present';
  }>;
  readonly warnings?: readonly string[];
}

export interface RunInjectOptions {
  /** The script text (take it from the Command document: the text that is deployed). */
  readonly script: string;
  /** Environment of the script: SSM_VolumeId, SSM_PublicKey, SSM_Users, SSM_Root. */
  readonly env: Record<string, string>;
  /** Volume id -> a loop device (/dev/loopN) or a disk image path (attached and detached here). */
  readonly volumes: Record<string, string>;
  /** @default 120000 */
  readonly timeoutMs?: number;
  /**
   * The online method: a disk image (or loop device) that is the instance's live root. In the
   * private namespace its root filesystem is mounted and its /etc/passwd, /etc/group,
   * /etc/shadow, /home and the /etc directories the script reads (ssh, cloud, selinux, default,
   * systemd/system) are bind-mounted over this machine's, as test/script/online.test.ts does, so
   * the script, given Root=/, reads and writes that image and never this machine's own users.
   * A directory the image lacks is hidden behind an empty tmpfs. (The image's /etc/sysconfig
   * cannot be shown where this machine has none: local/README.md, assumptions.)
   */
  readonly liveRoot?: string;
}

export interface RunInjectResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The last stdout line parsed as JSON, when it is one. */
  readonly report: InjectReport | undefined;
  /** Mounts the script left in its namespace when it ended (should be none). */
  readonly leftoverMounts: string[];
  /** What the script left in its temporary directory (TMPDIR, private to this run; should be none). */
  readonly leftoverTmp: string[];
}

const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;
const LOOP_DEVICE = /^\/dev\/loop\d+$/;

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Parse the last non-empty stdout line as the report. */
export function parseInjectReport(stdout: string): InjectReport | undefined {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return undefined;
  try {
    const parsed = JSON.parse(lines[lines.length - 1]) as InjectReport;
    return typeof parsed === 'object' && parsed !== null && parsed.version === 1 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Run the script in a private mount namespace with the volumes' by-id links. */
export async function runInjectScript(options: RunInjectOptions): Promise<RunInjectResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const attachedHere: string[] = [];
  const work = mkdtempSync(join(tmpdir(), 'run-inject-'));
  try {
    const links: Array<{ name: string; device: string }> = [];
    for (const [volumeId, target] of Object.entries(options.volumes)) {
      if (!VOLUME_ID.test(volumeId)) throw new Error(`not a volume id: ${volumeId}`);
      let device = target;
      if (!LOOP_DEVICE.test(target)) {
        if (!existsSync(target) || !statSync(target).isFile()) {
          throw new Error(`volume ${volumeId}: ${target} is neither a loop device nor an image file`);
        }
        device = (await attachLoop(target)).device;
        attachedHere.push(device);
      }
      const serial = `nvme-Amazon_Elastic_Block_Store_vol${volumeId.slice('vol-'.length)}`;
      links.push({ name: serial, device });
      partitionsOf(device).forEach((partition) => {
        const number = /p(\d+)$/.exec(partition)?.[1] as string;
        links.push({ name: `${serial}-part${number}`, device: partition });
      });
    }
    let live: string[] = [];
    if (options.liveRoot !== undefined) {
      let device = options.liveRoot;
      if (!LOOP_DEVICE.test(device)) {
        if (!existsSync(device) || !statSync(device).isFile()) throw new Error(`live root ${device} is neither a loop device nor an image file`);
        device = (await attachLoop(device)).device;
        attachedHere.push(device);
      }
      const candidates = partitionsOf(device);
      const rootMount = join(work, 'live-root');
      mkdirSync(rootMount, { mode: 0o700 });
      live = [
        // The first candidate (the disk, then its partitions) that holds /etc/passwd is the root.
        `for dev in ${[device, ...candidates].map(shellQuote).join(' ')}; do`,
        `  if mount -o nouuid "$dev" ${shellQuote(rootMount)} 2>/dev/null || mount "$dev" ${shellQuote(rootMount)} 2>/dev/null; then`,
        `    [ -f ${shellQuote(`${rootMount}/etc/passwd`)} ] && break`,
        `    umount ${shellQuote(rootMount)}`,
        '  fi',
        'done',
        `[ -f ${shellQuote(`${rootMount}/etc/passwd`)} ] || { echo "twin: no root filesystem with /etc/passwd on the live root" >&2; exit 97; }`,
        `for f in passwd group shadow; do [ -e ${shellQuote(rootMount)}/etc/$f ] && mount --bind ${shellQuote(rootMount)}/etc/$f /etc/$f; done`,
        `for d in ssh cloud selinux default systemd/system; do`,
        `  [ -d /etc/$d ] || continue`,
        `  if [ -d ${shellQuote(rootMount)}/etc/$d ]; then mount --bind ${shellQuote(rootMount)}/etc/$d /etc/$d; else mount -t tmpfs -o size=1m,mode=0755 twin-empty /etc/$d; fi`,
        'done',
        `if [ -d ${shellQuote(rootMount)}/home ]; then mount --bind ${shellQuote(rootMount)}/home /home; else mount -t tmpfs -o size=1m,mode=0755 twin-empty /home; fi`,
      ];
    }
    const scriptPath = join(work, '_script.sh');
    writeFileSync(scriptPath, options.script, { mode: 0o700 });
    const leftoverPath = join(work, 'leftover-mounts');
    // The script's mktemp goes to a TMPDIR private to this run, so what it leaves is attributable.
    const scriptTmp = join(work, 'tmp');
    mkdirSync(scriptTmp, { mode: 0o700 });
    // udev's links are relative (../../nvme1n1); so are these.
    const setup = [
      'set -eu',
      '[ -d /dev/disk ] || mkdir -p /dev/disk',
      'mount -t tmpfs -o mode=0755,size=1m reset-access-by-id /dev/disk',
      'mkdir /dev/disk/by-id',
      ...links.map((l) => `ln -s ${shellQuote(`../..${l.device.slice('/dev'.length)}`)} ${shellQuote(`/dev/disk/by-id/${l.name}`)}`),
      ...live,
      'before=$(cut -d" " -f2 /proc/self/mounts | sort)',
      'set +e',
      `/bin/bash ${shellQuote(scriptPath)}`,
      'status=$?',
      `after=$(cut -d" " -f2 /proc/self/mounts | sort)`,
      `comm -13 <(printf "%s\\n" "$before") <(printf "%s\\n" "$after") > ${shellQuote(leftoverPath)}`,
      'exit $status',
    ].join('\n');
    const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', TMPDIR: scriptTmp };
    for (const [name, value] of Object.entries(options.env)) {
      if (!/^SSM_[A-Za-z]+$/.test(name)) throw new Error(`only SSM_<Name> variables reach the script: ${name}`);
      env[name] = value;
    }
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const result = await new Promise<{ exitCode: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('timeout', ['-k', '5', String(seconds), 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', setup], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ exitCode: code ?? (signal ? 128 : 1), stdout, stderr }));
    });
    const leftoverMounts = existsSync(leftoverPath)
      ? readFileSync(leftoverPath, 'utf8').split('\n').filter((l) => l !== '')
      : [];
    const leftoverTmp = readdirSync(scriptTmp);
    return { ...result, report: parseInjectReport(result.stdout), leftoverMounts, leftoverTmp };
  } finally {
    rmSync(work, { recursive: true, force: true });
    for (const device of attachedHere) {
      await detachLoop(device);
    }
  }
}
