/**
 * coldInitMs: the time a fresh Node process takes to load a Lambda bundle, as the runtime does
 * at a cold start (the module's top level: the bundled SDK clients built, the environment read).
 * Each run spawns `node -e` that reads process.hrtime around require(bundle) and prints the
 * difference, with the environment the function gets from the template.
 *
 * The bundles carry the SDK (lib/bundling). Should one require `@aws-sdk/*` from node_modules
 * instead, the same is measured for those packages alone, to show what they cost.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runChild, TIMING_NICE, type QuietWait } from './exec';
import { median, round } from './stats';

export interface ColdInitResult {
  /** Median over `runsMs` (the warm-up run is reported apart and not in the median). */
  readonly medianMs: number;
  readonly runsMs: readonly number[];
  /** The first run, before the page cache holds the files; not in the median. */
  readonly firstRunMs: number;
  /** Median CPU time (user + system) of the same require: less sensitive to a busy machine. */
  readonly cpuMedianMs: number;
  /** The 1-minute load average before and after the runs (this machine has `nproc` cores). */
  readonly loadAverage: readonly [number, number];
  /** The bundle measured (the largest). */
  readonly bundle: string;
  /** The `@aws-sdk/*` packages the bundle requires, and the median time to load only them. */
  readonly sdkPackages: readonly string[];
  readonly sdkOnlyMedianMs: number | null;
  readonly sdkOnlyCpuMedianMs: number | null;
  /** The wait for a quiet machine before the runs (bench/run.ts). */
  readonly quietWait?: QuietWait;
  /**
   * The median with the process pinned to each core in turn (`taskset -c N`), to show how much
   * the core a run gets decides its figure; null when taskset is missing.
   */
  readonly perCpuMedianMs?: Record<string, number> | null;
}

/** The external `@aws-sdk/*` packages a bundle requires. Exported for the test. */
export function sdkRequiresOf(bundleText: string): string[] {
  const found = new Set<string>();
  for (const m of bundleText.matchAll(/require\(\s*["'](@aws-sdk\/[a-z0-9-]+)["']\s*\)/g)) found.add(m[1]);
  for (const m of bundleText.matchAll(/from\s*["'](@aws-sdk\/[a-z0-9-]+)["']/g)) found.add(m[1]);
  return [...found].sort();
}

interface Timing {
  wallMs: number;
  cpuMs: number;
}

function timeRequire(targets: readonly string[], cwd: string, env: Record<string, string>, cpu?: number): Timing {
  const code = [
    'const cpu0 = process.cpuUsage();',
    'const start = process.hrtime.bigint();',
    `for (const t of ${JSON.stringify(targets)}) require(t);`,
    'const end = process.hrtime.bigint();',
    'const cpu = process.cpuUsage(cpu0);',
    'process.stdout.write(JSON.stringify({ wallMs: Number(end - start) / 1e6, cpuMs: (cpu.user + cpu.system) / 1000 }));',
  ].join('\n');
  const [command, args] =
    cpu === undefined ? [process.execPath, ['-e', code]] : ['taskset', ['-c', String(cpu), process.execPath, '-e', code]];
  const out = runChild(command, args, {
    what: `loading ${targets.join(', ')} in a fresh node`,
    nice: TIMING_NICE,
    cwd,
    timeout: 60_000,
    // A Lambda-like environment: only what the function is given, plus the region and PATH.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_REGION: 'us-east-1', ...env },
  });
  return JSON.parse(out.trim()) as Timing;
}

export function measureColdInit(bundleEntry: string, environment: Readonly<Record<string, string>>, runs: number): ColdInitResult {
  bundleEntry = path.resolve(bundleEntry);
  const dir = path.dirname(bundleEntry);
  const env = { ...environment };
  const firstRunMs = timeRequire([bundleEntry], dir, env).wallMs;
  const runsMs: number[] = [];
  const cpuMs: number[] = [];
  const loadBefore = os.loadavg()[0];
  for (let i = 0; i < runs; i += 1) {
    const t = timeRequire([bundleEntry], dir, env);
    runsMs.push(t.wallMs);
    cpuMs.push(t.cpuMs);
  }
  const loadAfter = os.loadavg()[0];

  const sdkPackages = sdkRequiresOf(fs.readFileSync(bundleEntry, 'utf8'));
  let sdkOnlyMedianMs: number | null = null;
  let sdkOnlyCpuMedianMs: number | null = null;
  if (sdkPackages.length > 0) {
    // Resolve from the bundle's folder, exactly as the bundle's own require() calls do.
    const resolved = sdkPackages.map((p) => require.resolve(p, { paths: [dir] }));
    const sdkRuns: Timing[] = [];
    for (let i = 0; i < runs; i += 1) sdkRuns.push(timeRequire(resolved, dir, env));
    sdkOnlyMedianMs = round(median(sdkRuns.map((t) => t.wallMs)), 1);
    sdkOnlyCpuMedianMs = round(median(sdkRuns.map((t) => t.cpuMs)), 1);
  }
  let perCpuMedianMs: Record<string, number> | null = null;
  try {
    perCpuMedianMs = {};
    for (let cpu = 0; cpu < Math.min(os.cpus().length, 4); cpu += 1) {
      const pinned: number[] = [];
      for (let i = 0; i < Math.max(5, Math.ceil(runs / 2)); i += 1) pinned.push(timeRequire([bundleEntry], dir, env, cpu).wallMs);
      perCpuMedianMs[`cpu${cpu}`] = round(median(pinned), 1);
    }
  } catch {
    perCpuMedianMs = null;
  }
  return {
    medianMs: round(median(runsMs), 1),
    runsMs: runsMs.map((v) => round(v, 1)),
    firstRunMs: round(firstRunMs, 1),
    cpuMedianMs: round(median(cpuMs), 1),
    loadAverage: [round(loadBefore, 2), round(loadAfter, 2)],
    bundle: path.relative(path.resolve(__dirname, '..'), bundleEntry),
    sdkPackages,
    sdkOnlyMedianMs,
    sdkOnlyCpuMedianMs,
    perCpuMedianMs,
  };
}
