/**
 * "Unmounts everything on every exit path": the script is stopped by SIGTERM (as when the
 * command times out) exactly while it has the target mounted, read-only during the search and
 * read-write during the injection. It must report the interruption, leave no mount and no work
 * directory, and leave the key file consistent (immutable flag set again).
 */
import { execFileSync, spawnSync } from 'child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { buildImage, diffImage, snapshotImage } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { parseInjectReport } from '../../local/disk/run-inject';
import { deployedScript, removeDir, scratchDir, systemState, VOLUME_ID } from '../support/disk';

let dir: string;
beforeAll(() => {
  dir = scratchDir('signal-test-');
});
afterAll(() => {
  removeDir(dir);
});

const key = generateKeyPair('ed25519');
const otherKey = generateKeyPair('ed25519').publicKey;

/**
 * Run the deployed script in a private mount namespace with the by-id link, wait (without
 * spawning, so no delay) until a mount of the script's work directory whose options start with
 * `mode` appears, then send SIGTERM to the script. Prints the leftover mounts after it ended.
 */
function runAndKill(device: string, mode: 'ro' | 'rw', tmp: string): { stdout: string; leftovers: string[] } {
  const script = join(dir, 'deployed.sh');
  writeFileSync(script, deployedScript(), { mode: 0o700 });
  const wrapper = [
    'set -u',
    'mkdir -p /dev/disk; mount -t tmpfs -o size=1m sig /dev/disk; mkdir /dev/disk/by-id',
    `ln -s ../..${device.slice(4)} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}`,
    'bash "$SCRIPT" & pid=$!',
    'found=0',
    'for ((i = 0; i < 2000000 && !found; i++)); do',
    // The script mounts in a private mount namespace of its own (same pid after its re-exec).
    '  mapfile -t lines < /proc/$pid/mounts 2>/dev/null || lines=()',
    '  for line in "${lines[@]}"; do',
    '    read -r _ mp _ opts _ <<<"$line"',
    '    if [[ $mp == "$TMPDIR"/inject-key.* && $opts == "$MODE",* ]]; then found=1; break; fi',
    '  done',
    '  kill -0 $pid 2>/dev/null || break',
    'done',
    'kill -TERM $pid 2>/dev/null',
    'wait $pid; status=$?',
    'echo "found=$found" >&2',
    'grep " $TMPDIR" /proc/self/mounts | sed "s/^/LEFTOVER /" >&2 || true',
    'exit $status',
  ].join('\n');
  let stdout = '';
  let stderr = '';
  try {
    stdout = execFileSync('timeout', ['60', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', wrapper], {
      env: { PATH: process.env.PATH, SCRIPT: script, MODE: mode, TMPDIR: tmp, SSM_VolumeId: VOLUME_ID, SSM_PublicKey: key.publicKey, SSM_Users: '', SSM_Root: '' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    stdout = e.stdout ?? '';
    stderr = e.stderr ?? '';
  }
  expect(stderr).toContain('found=1');
  const leftovers = stderr.split('\n').filter((l) => l.startsWith('LEFTOVER '));
  return { stdout, leftovers };
}

describe.each(['ro', 'rw'] as const)('SIGTERM while the target is mounted %s', (mode) => {
  it('reports the interruption and leaves no mount, no work directory, a consistent key file', async () => {
    // Prepare
    const state = systemState(dir);
    const image = join(dir, `${mode}.img`);
    await buildImage(image, {
      layout: 'gpt-xfs-home',
      users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }],
      immutableKeyFileOf: 'ec2-user',
    });
    const before = await snapshotImage(image);
    const tmp = join(dir, `tmp-${mode}`);
    mkdirSync(tmp, { mode: 0o700 });
    const loop = await attachLoop(image);
    let outcome: { stdout: string; leftovers: string[] };
    try {
      // Act
      outcome = runAndKill(loop.device, mode, tmp);
    } finally {
      await detachLoop(loop.device);
    }

    // Assess
    expect(outcome.leftovers).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    const report = parseInjectReport(outcome.stdout);
    const diff = diffImage(before, await snapshotImage(image));
    if (mode === 'ro') {
      expect(report).toMatchObject({ status: 'error', error: 'interrupted by a signal', changes: [] });
      expect(diff).toEqual([]);
    } else {
      // Stopped somewhere between the read-write mount and the end: either nothing written, or
      // the key appended once; in both cases the file is immutable again.
      expect(report?.status).toMatch(/^(error|ok)$/);
      expect(diff.map((d) => d.key).filter((k) => k !== 'p3:/ec2-user/.ssh/authorized_keys')).toEqual([]);
      for (const d of diff) expect(d.after).toMatch(/flags=----i/);
    }
    expect(systemState(dir)).toEqual(state);
  });
});

/**
 * Run the deployed script as the SSM Agent does (its own process group) in a private mount
 * namespace with the by-id link, with optional wrapper commands placed first on the script's PATH
 * (/usr/local/sbin, a directory of this test bound there). When `trigger` says so (a marker file a wrapper made, or a
 * read-write mount of the target in the script's namespace), send `signal` to the script (SIGKILL:
 * to its whole process group, as the agent does). Then report what any process on this machine
 * still has mounted from the image's loop device.
 */
function runAndSignal(device: string, tmp: string, options: { wrappers?: Record<string, string>; trigger: 'marker' | 'rw-mount'; signal: 'TERM' | 'KILL'; users?: string }): { stdout: string; stderr: string } {
  const script = join(dir, 'deployed.sh');
  writeFileSync(script, deployedScript(), { mode: 0o700 });
  const wrapDir = mkdtempSync(join(dir, 'wrap-'));
  chmodSync(wrapDir, 0o755);
  mkdirSync(join(wrapDir, 'm'));
  chmodSync(join(wrapDir, 'm'), 0o1777);
  for (const [name, body] of Object.entries(options.wrappers ?? {})) {
    writeFileSync(join(wrapDir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }
  const wrapper = [
    'set -u',
    'mkdir -p /dev/disk; mount -t tmpfs -o size=1m sig /dev/disk; mkdir /dev/disk/by-id',
    `ln -s ../..${device.slice(4)} /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol${VOLUME_ID.slice(4)}`,
    'mount --bind "$WRAP" /usr/local/sbin',
    // job control: the script leads its own process group, as the agent makes it (Setpgid)
    'set -m',
    'bash "$SCRIPT" & pid=$!',
    'set +m',
    'found=0',
    'for ((i = 0; i < 2000000 && !found; i++)); do',
    '  if [[ $TRIGGER == marker ]]; then [[ -e /usr/local/sbin/m/hit ]] && found=1',
    '  else',
    '    mapfile -t lines < /proc/$pid/mounts 2>/dev/null || lines=()',
    '    for line in "${lines[@]}"; do',
    '      read -r _ mp _ opts _ <<<"$line"',
    '      if [[ $mp == "$TMPDIR"/inject-key.* && $opts == rw,* ]]; then found=1; break; fi',
    '    done',
    '  fi',
    '  kill -0 $pid 2>/dev/null || break',
    'done',
    'if [[ $SIG == KILL ]]; then kill -KILL -- -$pid; else kill -TERM $pid; fi',
    'wait $pid; status=$?',
    'echo "found=$found status=$status" >&2',
    // Whatever still holds the device, in this namespace or any other on the machine.
    'for ((i = 0; i < 50; i++)); do held=$(grep -ls "^$DEVICE[p ]" /proc/[0-9]*/mounts); [[ -z $held ]] && break; sleep 0.1; done',
    'for f in $held; do echo "HELD $f" >&2; done',
    'exit 0',
  ].join('\n');
  const result = spawnSync('timeout', ['90', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', wrapper], {
    env: { PATH: process.env.PATH, WRAP: wrapDir, SCRIPT: script, TRIGGER: options.trigger, SIG: options.signal, DEVICE: device, TMPDIR: tmp, SSM_VolumeId: VOLUME_ID, SSM_PublicKey: key.publicKey, SSM_Users: options.users ?? '', SSM_Root: '' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  rmSync(wrapDir, { recursive: true, force: true });
  return { stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

describe('SIGKILL to the process group, as the SSM Agent stops a command on cancel and on timeout', () => {
  // aws/amazon-ssm-agent, agent/executers/executers_unix.go: prepareProcess makes the shell the leader
  // of its own process group (Setpgid) and killProcess sends syscall.Kill(-pid, syscall.SIGKILL); no trap runs.
  it('while the target is mounted read-write: nothing stays mounted anywhere, the filesystems are clean', async () => {
    const state = systemState(dir);
    const image = join(dir, 'kill.img');
    await buildImage(image, { layout: 'gpt-xfs-home', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }] });
    const before = await snapshotImage(image);
    const tmp = join(dir, 'tmp-kill');
    mkdirSync(tmp, { mode: 0o700 });
    const loop = await attachLoop(image);
    let outcome: { stdout: string; stderr: string };
    let fsck: string;
    try {
      outcome = runAndSignal(loop.device, tmp, { trigger: 'rw-mount', signal: 'KILL' });
      // The kernel unmounted the filesystems when the namespace died: both check clean.
      fsck = execFileSync('bash', ['-c', 'xfs_repair -n "$1p1" >/dev/null 2>&1 && echo p1-clean; e2fsck -fn "$1p3" >/dev/null 2>&1 && echo p3-clean', 'x', loop.device], { encoding: 'utf8' });
    } finally {
      await detachLoop(loop.device);
    }
    expect(outcome.stderr).toMatch(/found=1 status=137/);
    expect(outcome.stderr.split('\n').filter((l) => l.startsWith('HELD '))).toEqual([]);
    expect(fsck).toBe('p1-clean\np3-clean\n');
    // A SIGKILL leaves no report and no cleanup of the work directory (its mount points are empty
    // directories in the helper's /tmp); the key file was either not touched or appended once.
    const diff = diffImage(before, await snapshotImage(image));
    expect(diff.map((d) => d.key).filter((k) => k !== 'p3:/ec2-user/.ssh/authorized_keys')).toEqual([]);
    rmSync(tmp, { recursive: true, force: true });
    expect(systemState(dir)).toEqual(state);
  });
});

describe('SIGTERM while a step runs with its output redirected (review R1, F12)', () => {
  const find = 'for d in /usr/bin /bin /usr/sbin /sbin; do [ -x "$d/NAME" ] && exec "$d/NAME" "$@"; done; exit 127';
  it.each([
    ['mkdir of a new .ssh', 'mkdir', 'case "$*" in *.ssh*) touch /usr/local/sbin/m/hit; sleep 2 ;; esac', { name: 'alice', uid: 1000, gid: 1000, noSsh: true }, false],
    ['chattr -i of an immutable key file', 'chattr', 'case "$1" in -i) touch /usr/local/sbin/m/hit; sleep 2 ;; esac', { name: 'alice', uid: 1000, gid: 1000, authorizedKeys: `${otherKey}\n` }, true],
  ])('%s: the report says so, and the target is exactly as found (undo recorded first, the flag set again)', async (_name, command, hook, user, immutable) => {
    const state = systemState(dir);
    const image = join(dir, `term-${command}.img`);
    await buildImage(image, { layout: 'ext4-whole', cloudInitDefaultUser: 'alice', users: [user], ...(immutable ? { immutableKeyFileOf: 'alice' } : {}) });
    const before = await snapshotImage(image);
    const tmp = join(dir, `tmp-term-${command}`);
    mkdirSync(tmp, { mode: 0o700 });
    const loop = await attachLoop(image);
    let outcome: { stdout: string; stderr: string };
    try {
      outcome = runAndSignal(loop.device, tmp, { wrappers: { [command]: `${hook}\n${find.replace(/NAME/g, command)}` }, trigger: 'marker', signal: 'TERM' });
    } finally {
      await detachLoop(loop.device);
    }
    expect(outcome.stderr).toMatch(/found=1 status=1/);
    expect(outcome.stderr.split('\n').filter((l) => l.startsWith('HELD '))).toEqual([]);
    expect(parseInjectReport(outcome.stdout)).toMatchObject({ status: 'error', error: 'interrupted by a signal', changes: [] });
    expect(readdirSync(tmp)).toEqual([]);
    expect(diffImage(before, await snapshotImage(image))).toEqual([]);
    expect(systemState(dir)).toEqual(state);
  });
});
