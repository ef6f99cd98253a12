/**
 * `npm run bench`: what one reset costs, measured. Prints a table, or with `--json` one JSON
 * object (progress goes to stderr). `--write` also writes bench/results/latest.json and
 * docs/benchmarks.md. Each figure is measured on its own: one that cannot be measured is null
 * with its reason in `notMeasured`, and the others still are.
 *
 * Modeled times come from the twin's latency model (local/latency.ts), at both ends of every range:
 * the twin runs the reset twice (low end, high end), the reference is modeled at both; an absolute
 * time target holds only at our high end, and a ratio is judged on the two same-end ratios, the
 * smaller one (local/latency.ts, the rule), the cross-end ratio printed beside it, not judged.
 * The Windows comparison (bench/windows.ts's model, issue 15) is part of the run and the page.
 *
 * Options: --json, --write, --runs N (cold init, default 15), --keygen-runs N (default 9),
 * --key-type rsa|ed25519 (twin runs, default rsa), --skip-twin, --skip-inject.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { lambdaBundles, synthesize, type LambdaBundle } from './bundles';
import { measureColdInit, type ColdInitResult } from './cold-init';
import { waitForQuiet } from './exec';
import { measureInject, type InjectMeasurement } from './inject';
import { measureKeygen, PROJECT_ROOT, type KeygenResult } from './keygen';
import { machineInfo, sourceState } from './machine';
import { modelReferenceAt } from './reference-sequence';
import { withKeptSections } from './doc-sections';
import { renderConsole, renderMarkdown } from './report';
import { windowsResult } from './windows-result';
import { evaluateTargets, RESULT_VERSION, shapeProblems, speedupRatios, userHoldsKeyAt, type BenchResult, type BundleSizes, type Range } from './result';
import { round } from './stats';
import { measureTwin, type TwinMeasurement } from './twin-run';

export const RESULTS_FILE = path.join(PROJECT_ROOT, 'bench', 'results', 'latest.json');
export const DOC_FILE = path.join(PROJECT_ROOT, 'docs', 'benchmarks.md');

interface Options {
  json: boolean;
  write: boolean;
  runs: number;
  keygenRuns: number;
  keyType: 'rsa' | 'ed25519';
  skipTwin: boolean;
  skipInject: boolean;
}

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = { json: false, write: false, runs: 15, keygenRuns: 9, keyType: 'rsa', skipTwin: false, skipInject: false };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      return n;
    };
    if (a === '--json') o.json = true;
    else if (a === '--write') o.write = true;
    else if (a === '--runs') o.runs = Math.max(5, num());
    else if (a === '--keygen-runs') o.keygenRuns = num();
    else if (a === '--key-type') {
      const t = argv[++i];
      if (t !== 'rsa' && t !== 'ed25519') throw new Error('--key-type is rsa or ed25519');
      o.keyType = t;
    } else if (a === '--skip-twin') o.skipTwin = true;
    else if (a === '--skip-inject') o.skipInject = true;
    else throw new Error(`unknown option ${a} (see bench/run.ts)`);
  }
  return o;
}

const progress = (line: string): void => {
  process.stderr.write(`bench: ${line}\n`);
};

/** Run one measurement; on failure record why and return null. */
function attempt<T>(field: string, notMeasured: Array<{ field: string; reason: string }>, fn: () => T): T | null {
  const start = Date.now();
  progress(`${field}...`);
  try {
    const value = fn();
    progress(`${field} done in ${((Date.now() - start) / 1000).toFixed(1)} s`);
    return value;
  } catch (err) {
    const reason = `${(err as Error).name === 'PartMissing' ? '' : `${(err as Error).name}: `}${(err as Error).message}`;
    progress(`${field} not measured: ${reason}`);
    notMeasured.push({ field, reason });
    return null;
  }
}

export function bundleSizes(bundles: readonly LambdaBundle[]): BundleSizes {
  const ours = bundles.filter((b) => b.ours);
  if (ours.length === 0) throw new Error('the synthesized template has no step Lambda with a bundled asset');
  const largest = ours.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  return {
    maxBytes: largest.bytes,
    largest: largest.name,
    perFunction: Object.fromEntries(ours.map((b) => [b.name, b.bytes])),
    cdkInternal: Object.fromEntries(bundles.filter((b) => !b.ours).map((b) => [b.name, b.bytes])),
  };
}

export function main(argv: readonly string[]): BenchResult {
  const opts = parseArgs(argv);
  const notMeasured: Array<{ field: string; reason: string }> = [];
  const machine = machineInfo();
  const source = sourceState(PROJECT_ROOT);
  // Both ends of the latency table, waits charged their mean poll lateness (local/latency.ts).
  const reference = { low: modelReferenceAt('low'), high: modelReferenceAt('high') };

  const bundles = attempt('bundleBytes', notMeasured, () => lambdaBundles(synthesize()));
  let sizes: BundleSizes | null = null;
  try {
    sizes = bundles ? bundleSizes(bundles) : null;
  } catch (err) {
    notMeasured.push({ field: 'bundleBytes', reason: (err as Error).message });
  }
  const largest = bundles?.filter((b) => b.ours)[0];
  let coldInit: ColdInitResult | null = null;
  if (largest) {
    coldInit = attempt('coldInitMs', notMeasured, () => {
      progress('coldInitMs: waiting for the 1-minute load average to fall below 1.0 (at most 150 s)');
      const quietWait = waitForQuiet();
      return { ...measureColdInit(largest.entry, largest.environment, opts.runs), quietWait };
    });
  } else {
    notMeasured.push({ field: 'coldInitMs', reason: 'no synthesized bundle to load (see bundleBytes)' });
  }
  const injectBundle = bundles?.find((b) => b.name === 'inject-key')?.entry;
  const keygen: KeygenResult | null = attempt('keygenMs', notMeasured, () => {
    const quietWait = waitForQuiet();
    return { ...measureKeygen(opts.keygenRuns, injectBundle), quietWait };
  });
  let inject: InjectMeasurement | null = null;
  if (opts.skipInject) notMeasured.push({ field: 'injectSeconds', reason: 'skipped (--skip-inject)' });
  else inject = attempt('injectSeconds', notMeasured, () => measureInject());
  const twin: { low: TwinMeasurement | null; high: TwinMeasurement | null } = { low: null, high: null };
  if (opts.skipTwin) notMeasured.push({ field: 'timeToAccessSeconds', reason: 'skipped (--skip-twin)' });
  else {
    for (const end of ['low', 'high'] as const) {
      twin[end] = attempt('timeToAccessSeconds', notMeasured, () => measureTwin(opts.keyType, end));
      const run = twin[end];
      if (run && run.timeToAccessSeconds === null) {
        notMeasured.push({ field: 'timeToAccessSeconds', reason: `the twin run at the ${end} end did not reach access: ${run.ours.status}` });
      }
      if (run && Object.keys(run.leftovers).length > 0) {
        notMeasured.push({ field: 'leftovers', reason: `the twin run at the ${end} end left resources behind: ${JSON.stringify(run.leftovers)}` });
      }
    }
  }
  // The online method (issue 12): a managed target, at both ends.
  const online: { low: TwinMeasurement | null; high: TwinMeasurement | null } = { low: null, high: null };
  if (opts.skipTwin) notMeasured.push({ field: 'online', reason: 'skipped (--skip-twin)' });
  else {
    for (const end of ['low', 'high'] as const) {
      online[end] = attempt('online', notMeasured, () => measureTwin(opts.keyType, end, 'Online'));
      const run = online[end];
      if (run && run.timeToAccessSeconds === null) notMeasured.push({ field: 'online', reason: `the online run at the ${end} end did not reach access: ${run.ours.status}` });
      if (run && Object.keys(run.leftovers).length > 0) {
        notMeasured.push({ field: 'leftovers', reason: `the online run at the ${end} end left resources behind: ${JSON.stringify(run.leftovers)}` });
      }
    }
  }
  const onlineLow = online.low?.timeToAccessSeconds ?? null;
  const onlineHigh = online.high?.timeToAccessSeconds ?? null;
  const onlineAccess: Range | null = onlineLow !== null && onlineHigh !== null ? { low: onlineLow, high: onlineHigh } : null;
  // The user of the CLI holds the key once `reset` sees the step outputs that say the key is in
  // place (review P4): the access step's end, plus the CLI's poll and three calls (bench/result.ts `userHoldsKeyAt`).
  const onlineUserHoldsKey: Range | null =
    onlineAccess && online.low?.ours.status === 'Success' && online.high?.ours.status === 'Success'
      ? { low: userHoldsKeyAt(onlineAccess.low, 'low'), high: userHoldsKeyAt(onlineAccess.high, 'high') }
      : null;
  const windows = attempt('windows', notMeasured, () => windowsResult());
  // The API calls of one reset: the slow-end run (a wait that polls more than once shows there).
  const calls = twin.high ?? twin.low;
  if (!calls) notMeasured.push({ field: 'apiCallsPerReset', reason: 'no twin run (see timeToAccessSeconds)' });
  if (inject && (inject.ext4 === null || inject.xfs === null)) {
    notMeasured.push({ field: 'injectSeconds', reason: `a run failed: ${inject.runs.map((r) => `${r.layout} ${r.status}`).join('; ')}` });
  }

  const lowAccess = twin.low?.timeToAccessSeconds ?? null;
  const highAccess = twin.high?.timeToAccessSeconds ?? null;
  const timeToAccessSeconds: Range | null = lowAccess !== null && highAccess !== null ? { low: lowAccess, high: highAccess } : null;
  const referenceAccess: Range = { low: round(reference.low.timeToAccessSeconds, 2), high: round(reference.high.timeToAccessSeconds, 2) };
  const figures = {
    timeToAccessSeconds,
    referenceTimeToAccessSeconds: referenceAccess,
    bundleBytes: sizes,
    coldInitMs: coldInit,
    keygenMs: keygen,
  };
  const roundSteps = (m: typeof reference.low) =>
    m.steps.map((s) => ({ ...s, startSeconds: round(s.startSeconds, 2), endSeconds: round(s.endSeconds, 2), seconds: round(s.seconds, 2) }));
  const result: BenchResult = {
    version: RESULT_VERSION,
    generatedAt: new Date().toISOString(),
    machine,
    source,
    loadAverageAtEnd: os.loadavg().map((v) => round(v, 2)),
    ...figures,
    referenceTotalSeconds: { low: round(reference.low.totalSeconds, 2), high: round(reference.high.totalSeconds, 2) },
    speedup: timeToAccessSeconds ? speedupRatios(referenceAccess, timeToAccessSeconds) : null,
    ours: twin.low || twin.high ? { low: twin.low?.ours ?? null, high: twin.high?.ours ?? null } : null,
    reference: { low: roundSteps(reference.low), high: roundSteps(reference.high) },
    apiCallsPerReset: calls?.apiCalls ?? null,
    injectSeconds: inject,
    online:
      online.low || online.high
        ? {
            timeToAccessSeconds: onlineAccess,
            speedup: onlineAccess ? speedupRatios(referenceAccess, onlineAccess) : null,
            userHoldsKeySeconds: onlineUserHoldsKey,
            userHoldsKeySpeedup: onlineUserHoldsKey ? speedupRatios(referenceAccess, onlineUserHoldsKey) : null,
            ours: { low: online.low?.ours ?? null, high: online.high?.ours ?? null },
            apiCallsPerReset: (online.high ?? online.low)?.apiCalls ?? null,
          }
        : null,
    windows,
    targets: evaluateTargets({ ...figures, onlineTimeToAccessSeconds: onlineAccess, windows }),
    notMeasured,
  };
  const problems = shapeProblems(result);
  if (problems.length > 0) throw new Error(`the result is malformed: ${problems.join('; ')}`);

  if (opts.write) {
    fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
    fs.writeFileSync(RESULTS_FILE, `${JSON.stringify(result, null, 2)}\n`);
    const old = fs.existsSync(DOC_FILE) ? fs.readFileSync(DOC_FILE, 'utf8') : '';
    fs.writeFileSync(DOC_FILE, withKeptSections(renderMarkdown(result), old));
    progress(`wrote ${path.relative(PROJECT_ROOT, RESULTS_FILE)} and ${path.relative(PROJECT_ROOT, DOC_FILE)}`);
  }
  process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : renderConsole(result));
  return result;
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
}
