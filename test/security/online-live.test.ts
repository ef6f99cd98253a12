/**
 * The online method runs the inject script on a live system (issue 12): it must never restart or
 * signal sshd, and never write a file sshd is not going to read. strace (the kernel's record of
 * every program run, every signal sent and every path changed) is the reference, not the script's
 * own report: the script runs with Root=/ in a private mount namespace where a disk image's users,
 * /etc/ssh and /home are bind-mounted over this machine's (as test/script/online.test.ts does).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '@common/keys';
import { buildImage, diffImage, snapshotImage } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { parseInjectReport } from '../../local/disk/run-inject';
import { deployedScript, removeDir, scratchDir, systemState } from '../support/disk';

jest.setTimeout(120_000);

let dir: string;
beforeAll(() => {
  dir = scratchDir('online-live-');
});
afterAll(() => {
  removeDir(dir);
});

/** Syscalls that change a path, and how to read the path (and the open flags) from strace's line. */
const CHANGES = /^\d+\s+(openat|open|creat|rename|renameat2?|unlink|unlinkat|mkdir|mkdirat|rmdir|chmod|fchmodat|chown|lchown|fchownat|setxattr|lsetxattr|removexattr|lremovexattr|link|linkat|symlink|symlinkat|truncate|utimensat)\((.*)\) = (-?\d+)/;
const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/;

function changedPaths(trace: string): string[] {
  const paths: string[] = [];
  for (const line of trace.split('\n')) {
    const m = CHANGES.exec(line);
    if (!m || m[3].startsWith('-')) continue;
    const [, call, args] = m;
    if ((call === 'openat' || call === 'open') && !WRITE_FLAGS.test(args)) continue;
    for (const q of args.match(/"((?:[^"\\]|\\.)*)"/g) ?? []) {
      const p = q.slice(1, -1);
      // A relative path is relative to / (the only directory the script changes to, asserted below).
      paths.push(p.startsWith('/') ? p : `/${p.replace(/^\.\//, '')}`);
    }
  }
  return [...new Set(paths)];
}

it('Root=/ on a live system: no sshd restart or signal, no program that could restart it, and writes only the key file sshd reads (and its .ssh)', async () => {
  // Prepare
  const state = systemState(dir);
  const key = generateKeyPair('ed25519');
  const image = join(dir, 'live.img');
  await buildImage(image, {
    layout: 'ext4-whole',
    cloudInitDefaultUser: 'webadmin',
    users: [{ name: 'webadmin', uid: 1500, gid: 1500, noSsh: true }],
  });
  const before = await snapshotImage(image);
  const scriptFile = join(dir, 'script.sh');
  writeFileSync(scriptFile, deployedScript(), { mode: 0o700 });
  const trace = join(dir, 'trace');
  const tmp = join(dir, 'tmp');
  execFileSync('mkdir', ['-p', tmp]);
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
      // -f: every child; the path-changing calls, every exec, every signal sent.
      'SSM_Root=/ SSM_VolumeId= SSM_Users= SSM_PublicKey="$KEY" TMPDIR="$SCRIPTTMP" strace -f -qq -s 4096 -o "$TRACE" ' +
        '-e trace=chdir,execve,kill,tkill,tgkill,rt_sigqueueinfo,pidfd_send_signal,openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,chmod,fchmodat,chown,lchown,fchownat,setxattr,lsetxattr,removexattr,lremovexattr,link,linkat,symlink,symlinkat,truncate,utimensat ' +
        'bash "$SCRIPT"',
      'exit $?',
    ].join('\n');

    // Act
    stdout = execFileSync('timeout', ['90', 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', setup], {
      env: { PATH: process.env.PATH, WORK: dir, DEVICE: loop.device, KEY: key.publicKey, SCRIPT: scriptFile, TRACE: trace, SCRIPTTMP: tmp, TMPDIR: dir },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    await detachLoop(loop.device);
  }

  // Assess
  expect(parseInjectReport(stdout)).toMatchObject({ status: 'ok', changes: [{ user: 'webadmin', file: '/home/webadmin/.ssh/authorized_keys', action: 'created' }] });
  const text = readFileSync(trace, 'utf8');
  // Programs run: none that starts, stops, reloads or signals a service.
  const programs = [...new Set([...text.matchAll(/execve\("([^"]+)"/g)].map((m) => m[1].split('/').pop() as string))];
  expect(programs.length).toBeGreaterThan(3);
  expect(programs.filter((p) => /^(systemctl|service|invoke-rc\.d|initctl|rc-service|sshd|ssh|kill|pkill|killall|reload|restart|start-stop-daemon)$/.test(p))).toEqual([]);
  // Signals: none sent to any process (the script's own exit does not signal).
  expect(text.split('\n').filter((l) => /\b(kill|tkill|tgkill|rt_sigqueueinfo|pidfd_send_signal)\(/.test(l))).toEqual([]);
  // The script changes directory only to / (Root=/): relative paths in the trace are under /.
  expect([...new Set([...text.matchAll(/chdir\("([^"]*)"\) = 0/g)].map((m) => m[1]))].filter((d) => d !== '/')).toEqual([]);
  // Paths changed: the user's .ssh and its key file (and the script's private temporary files).
  const changed = changedPaths(text).filter((p) => !p.startsWith(`${tmp}/`) && p !== tmp && p !== '/dev/null');
  expect(changed.length).toBeGreaterThan(0);
  expect(changed.filter((p) => !p.startsWith('/home/webadmin/.ssh'))).toEqual([]);
  // And on the disk: only the .ssh directory and the key file differ.
  expect(diffImage(before, await snapshotImage(image)).map((d) => d.key).filter((k) => !/\/home\/webadmin\/\.ssh(\/authorized_keys)?$/.test(k))).toEqual([]);
  expect(systemState(dir)).toEqual(state);
});

it('the documents say what the script may change on a live system, and that a NoReboot image is crash-consistent (review O3, O5)', () => {
  const root = join(__dirname, '..', '..');
  const restoreDoc = readFileSync(join(root, 'runbooks', 'restore.yaml'), 'utf8');
  const restoreCode = readFileSync(join(root, 'lambdas', 'restore', 'restore.ts'), 'utf8');
  // The script appends with tee -a (no rename): nothing may call its write atomic.
  expect(readFileSync(join(root, 'runbooks', 'inject-key.sh'), 'utf8')).toMatch(/tee -a/);
  for (const text of [restoreDoc, restoreCode]) {
    expect(text).not.toMatch(/atomic write/);
    expect(text).toMatch(/append(ed)? in place/);
  }
  const runbook = readFileSync(join(root, 'runbooks', 'reset-access.yaml'), 'utf8');
  expect(runbook).toMatch(/NoReboot, whose snapshots are\s+crash-consistent/);
});
