/**
 * Defence in depth: the inject-key script itself (the very text the Command document deploys)
 * refuses hostile SSM_* values on its own, as if no document pattern and no Lambda had checked
 * them, and writes nothing.
 *
 * Each case runs as root in a private mount namespace whose /home, /root and /tmp are fresh
 * tmpfs mounts: a script that accepted a value and went on to write would write there, and the
 * test counts what it left. The offline cases name a volume that is not attached: a script
 * that did not refuse would wait for the device instead (and be stopped by the time limit).
 */
import { spawn } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';
import { GOOD_VOLUME } from './support/ids';
import { GOOD_ED25519, PRIVATE_KEYS, PUBLIC_KEY_ROWS, ROOT_ROWS, USERS_ROWS, VOLUME_ID_ROWS, type Row } from './support/hostile';
import { REPO } from './support/patterns';
import { leaks } from './support/secrets';

/** How long a refusal may take; a script that waits for the device instead runs far longer. */
const REFUSAL_SECONDS = 15;

interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
  report?: { status?: string; error?: string; changes?: unknown[] };
  written: number;
  timedOut: boolean;
}

let dir: string;
let scriptPath: string;

beforeAll(() => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(join(REPO, 'lib', 'inject-key-document')) as {
    loadInjectKeyDocument: () => Record<string, unknown>;
    injectKeyScriptFromDocument: (doc: Record<string, unknown>) => string;
  };
  // Outside /tmp: the sandbox mounts a fresh tmpfs over /tmp.
  dir = mkdtempSync('/var/tmp/sec-inject-');
  scriptPath = join(dir, 'inject-key.sh');
  writeFileSync(scriptPath, mod.injectKeyScriptFromDocument(mod.loadInjectKeyDocument()), { mode: 0o700 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SANDBOX = `
set -u
for d in /home /root /tmp; do mount -t tmpfs -o size=16m,mode=0755 sandbox "$d" || exit 97; done
bash "$1"
rc=$?
n=$(find /home /root /tmp -mindepth 1 2>/dev/null | wc -l)
printf '\\n@@sandbox rc=%s written=%s@@\\n' "$rc" "$n" >&2
`;

function runScript(env: Record<string, string>, timeoutMs = REFUSAL_SECONDS * 1000): Promise<ScriptRun> {
  return new Promise((resolve) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-c', SANDBOX, 'sandbox', scriptPath], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // its own process group, so that a time-out stops the script too, not only the sandbox shell
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const m = /@@sandbox rc=(\d+) written=(\d+)@@/.exec(stderr);
      const lines = stdout.trim().split('\n');
      let report: ScriptRun['report'];
      try {
        report = JSON.parse(lines[lines.length - 1]) as ScriptRun['report'];
      } catch {
        report = undefined;
      }
      resolve({ status: m ? Number(m[1]) : code, stdout, stderr, report, written: m ? Number(m[2]) : -1, timedOut });
    });
  });
}

/** Runs every case up front, a few at a time; the tests then check each result. */
async function runAll(cases: Map<string, Record<string, string>>, parallel = 4): Promise<Map<string, ScriptRun>> {
  const out = new Map<string, ScriptRun>();
  const queue = [...cases.entries()];
  const workers = Array.from({ length: parallel }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) out.set(next[0], await runScript(next[1]));
  });
  await Promise.all(workers);
  return out;
}

function expectRefused(run: ScriptRun, field: string): void {
  // first, so that a failing test never prints a key into the test log
  for (const pk of PRIVATE_KEYS) {
    expect(leaks([{ source: 'stdout', text: run.stdout }, { source: 'stderr', text: run.stderr }], pk)).toEqual([]);
  }
  expect({ timedOut: run.timedOut }).toEqual({ timedOut: false });
  expect(run.status).not.toBe(0);
  expect(run.status).not.toBe(97); // the sandbox itself worked
  expect(run.report?.status).toBe('error');
  expect(run.report?.error ?? '').toContain(field);
  expect(run.report?.changes).toEqual([]);
  expect(run.written).toBe(0);
}

/** A NUL cannot reach a process through its environment (execve strings end at NUL). */
const envSafe = (rows: Row[]): Row[] => rows.filter(([, v]) => !v.includes('\0'));

const OFFLINE = { SSM_VolumeId: GOOD_VOLUME, SSM_PublicKey: GOOD_ED25519, SSM_Users: '', SSM_Root: '' };

// Every row, including those a regex cannot judge: the script decodes the key blob too (inner type,
// fields and sizes, RSA of 2048 to 16384 bits, nothing after the key), and a second key in the
// comment is longer than the 256 characters a comment may have.
const LEXICAL_ONLY = new Set<string>([]);

const CASES: Array<[field: string, label: string, env: Record<string, string>]> = [
  ...envSafe(VOLUME_ID_ROWS).map(([l, v]) => ['VolumeId', l, { ...OFFLINE, SSM_VolumeId: v }] as [string, string, Record<string, string>]),
  ...[...envSafe(PUBLIC_KEY_ROWS).filter(([l]) => !LEXICAL_ONLY.has(l)), ['empty', ''] as Row].map(
    ([l, v]) => ['PublicKey', l, { ...OFFLINE, SSM_PublicKey: v }] as [string, string, Record<string, string>],
  ),
  // the script does not count users (the Lambda limits them to 32); 40 valid names are not hostile to it
  ...envSafe(USERS_ROWS)
    .filter(([l]) => l !== 'too many users')
    .map(([l, v]) => ['Users', l, { ...OFFLINE, SSM_Users: v }] as [string, string, Record<string, string>]),
  ...envSafe(ROOT_ROWS).map(([l, v]) => ['Root', l, { ...OFFLINE, SSM_VolumeId: '', SSM_Root: v }] as [string, string, Record<string, string>]),
  // one method at a time: Root=/ together with a VolumeId
  ['VolumeId', 'given together with Root=/', { ...OFFLINE, SSM_Root: '/' }],
];

describe('the inject-key script refuses hostile SSM_* values by itself and writes nothing', () => {
  let results: Map<string, ScriptRun>;
  beforeAll(async () => {
    results = await runAll(new Map(CASES.map(([f, l, env]) => [`${f}: ${l}`, env])));
  }, 180_000);

  test('positive control: the sandbox works, and a valid offline run gets past the parameters (it waits for the device)', async () => {
    const run = await runScript(OFFLINE, 3000);
    expect(run.timedOut).toBe(true);
    expect(run.stderr).toContain('waiting for');
  });

  test.each(CASES.map(([f, l]) => [f, l]))('%s: %s', (field, label) => {
    const run = results.get(`${field}: ${label}`);
    expect(run).toBeDefined();
    expectRefused(run as ScriptRun, field);
  });
});
