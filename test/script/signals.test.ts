/**
 * "Unmounts everything on every exit path": the script is stopped by SIGTERM (as when the
 * command times out) exactly while it has the target mounted, read-only during the search and
 * read-write during the injection. It must report the interruption, leave no mount and no work
 * directory, and leave the key file consistent (immutable flag set again).
 */
import { execFileSync } from 'child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'fs';
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
    '  mapfile -t lines < /proc/self/mounts',
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
