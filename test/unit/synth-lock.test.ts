/**
 * The twin's synthesis lock (local/synth.ts): two jest workers that need the same synthesis make
 * it once. Exercised with real processes: a live holder is waited for, a dead holder's lock is
 * taken over, a free lock is taken with this process's pid.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { takeLock } from '../../local/synth';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'synth-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a free lock is taken: the file holds this pid, created exclusively', () => {
  const lock = join(dir, 'x.lock');
  expect(takeLock(lock, () => false, () => undefined)).toBe(lock);
  expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
});

test('a lock held by a live process is waited for until its work is done, and never taken', () => {
  const lock = join(dir, 'x.lock');
  const done = join(dir, 'done');
  // The holder: a process that finishes its work after a second (and keeps its lock file).
  const holder = spawn('sh', ['-c', `sleep 1; touch '${done}'; sleep 5`], { stdio: 'ignore' });
  try {
    writeFileSync(lock, String(holder.pid));
    const lines: string[] = [];
    const started = Date.now();
    expect(takeLock(lock, () => existsSync(done), (l) => lines.push(l))).toBe('done');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(readFileSync(lock, 'utf8')).toBe(String(holder.pid));
    expect(lines).toEqual([`waiting for the synthesis another process (pid ${holder.pid}) is making`]);
  } finally {
    holder.kill('SIGKILL');
  }
});

test('a lock left by a process that died is taken over', () => {
  const lock = join(dir, 'x.lock');
  const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
  writeFileSync(lock, dead);
  expect(takeLock(lock, () => false, () => undefined)).toBe(lock);
  expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
});

test('a live holder that never finishes: a clear error after the timeout, the lock left to its holder', () => {
  const lock = join(dir, 'x.lock');
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    writeFileSync(lock, String(holder.pid));
    expect(() => takeLock(lock, () => false, () => undefined, 600)).toThrow(new RegExp(`waited 0.6 s for the synthesis locked by pid ${holder.pid}`));
    expect(readFileSync(lock, 'utf8')).toBe(String(holder.pid));
  } finally {
    holder.kill('SIGKILL');
  }
});
