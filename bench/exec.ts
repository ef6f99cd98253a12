/** Child processes for the benchmark, with short errors (the last lines of stderr, not a dump). */
import { execFileSync, ExecFileSyncOptions } from 'child_process';
import * as os from 'os';

export class ChildFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChildFailed';
  }
}

/** The tail of a child's stderr that names the problem (skips stack frames and blank lines). */
export function errorTail(stderr: string, lines = 4): string {
  const meaningful = stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !/^\s+at /.test(l) && !/^Node\.js v/.test(l) && !/^\s*\^\s*$/.test(l) && !/triggerUncaughtException|throw err;|^node:internal/.test(l));
  return meaningful.slice(-lines).join(' / ');
}

/** Run a command; stdout as a string. On failure, throws ChildFailed naming the cause briefly. */
/**
 * Nice value for the children that time real work (cold init, key generation): as root, a raised
 * priority, so that other work on a shared machine disturbs the figures less. 0 when not root.
 */
export const TIMING_NICE = process.getuid && process.getuid() === 0 ? -10 : 0;

export function runChild(
  command: string,
  args: readonly string[],
  options: ExecFileSyncOptions & { what: string; nice?: number },
): string {
  const { what: _what, nice, ...execOptions } = options;
  const [cmd, argv] = nice ? ['nice', ['-n', String(nice), command, ...args]] : [command, [...args]];
  try {
    return execFileSync(cmd, argv, { ...execOptions, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }) as string;
  } catch (err) {
    const e = err as { stderr?: Buffer | string; status?: number | null; signal?: string | null; message: string };
    const stderr = e.stderr ? e.stderr.toString() : '';
    const why = errorTail(stderr) || e.message.split('\n')[0];
    throw new ChildFailed(`${options.what} failed (exit ${e.status ?? e.signal ?? '?'}): ${why}`);
  }
}

/** How long the benchmark waited for the machine to go quiet before timing real work. */
export interface QuietWait {
  /** Seconds waited (0 when the machine was already quiet). */
  readonly waitedSeconds: number;
  /** The 1-minute load average when the wait began and when it ended. */
  readonly loadBefore: number;
  readonly loadAfter: number;
  /** False when the time ran out first: the figures were taken on a busy machine. */
  readonly quiet: boolean;
}

/**
 * Before timing real work, wait (up to `timeoutMs`) until the 1-minute load average is below
 * `maxLoad`: the synth that comes first keeps both cores busy, and a figure taken right after it
 * measures the synth's tail as much as the work. The wait and the loads are reported with the figure.
 */
export function waitForQuiet(
  maxLoad = 1.0,
  timeoutMs = 150_000,
  sleep: (ms: number) => void = sleepSync,
  load1: () => number = () => os.loadavg()[0],
  now: () => number = Date.now,
): QuietWait {
  const start = now();
  const loadBefore = load1();
  let load = loadBefore;
  while (load >= maxLoad && now() - start < timeoutMs) {
    sleep(2000);
    load = load1();
  }
  return {
    waitedSeconds: Math.round((now() - start) / 100) / 10,
    loadBefore: Math.round(loadBefore * 100) / 100,
    loadAfter: Math.round(load * 100) / 100,
    quiet: load < maxLoad,
  };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
