/**
 * The cheap parts of the benchmark, so that they cannot rot: the reference model, the target
 * verdicts, the result's JSON shape, the RSA path checks, the call and bundle bookkeeping and
 * the renderers. No timing is asserted here: timings belong to `npm run bench`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { folderNameOf } from '../../bench/bundles';
import { sdkRequiresOf } from '../../bench/cold-init';
import { waitForQuiet } from '../../bench/exec';
import { checkBundleText, checkKeysSource } from '../../bench/keygen';
import { modelReference, REFERENCE_SEQUENCE, type ReferenceStep } from '../../bench/reference-sequence';
import { renderConsole, renderMarkdown } from '../../bench/report';
import { evaluateTargets, RESULT_VERSION, shapeProblems, TARGETS, type BenchResult } from '../../bench/result';
import { bundleSizes, parseArgs, RESULTS_FILE } from '../../bench/run';
import { median } from '../../bench/stats';
import { summarizeCalls } from '../../bench/twin-run';
import { LATENCY_TABLE, latencyOf, type LatencyOp } from '../../local/latency';

const ROOT = path.resolve(__dirname, '..', '..');

describe('the reference model', () => {
  it('runs strictly in sequence, and access is the end of the start-and-wait step', () => {
    // Act
    const model = modelReference();

    // Assess
    expect(model.steps).toHaveLength(REFERENCE_SEQUENCE.length);
    model.steps.forEach((step, i) => {
      expect(step.startSeconds).toBe(i === 0 ? 0 : model.steps[i - 1].endSeconds);
      expect(step.endSeconds).toBeGreaterThan(step.startSeconds);
    });
    const access = model.steps.find((s) => s.name === 'startInstanceAndWait');
    expect(model.timeToAccessSeconds).toBe(access?.endSeconds);
    expect(model.totalSeconds).toBe(model.steps[model.steps.length - 1].endSeconds);
  });

  it('charges only entries of the latency table, and moves with it', () => {
    // Prepare: every op the sequence names must exist in the table
    const named = new Set<string>();
    for (const step of REFERENCE_SEQUENCE) {
      for (const a of step.actions) {
        if (a.kind === 'api' && a.starts) named.add(a.starts);
        if (a.kind === 'callAndWait') {
          named.add(a.op);
          if (a.thenStarts) named.add(a.thenStarts);
        }
      }
    }
    const ops = new Set(LATENCY_TABLE.map((e) => e.op as string));

    // Act: double every figure
    const doubled = modelReference(REFERENCE_SEQUENCE, (op: LatencyOp) => 2 * latencyOf(op));

    // Assess
    expect([...named].filter((op) => !ops.has(op))).toEqual([]);
    expect(doubled.timeToAccessSeconds).toBeCloseTo(2 * modelReference().timeToAccessSeconds - 30, 6); // the 30 s sleep is fixed
  });

  it('charges each action as the runner does', () => {
    // Prepare: transition 1, API call 0.5, stop 60, attach 5, invoke 0.25
    const figures: Partial<Record<LatencyOp, number>> = {
      AutomationStepTransition: 1, ApiCall: 0.5, StopInstances: 60, AttachVolume: 5, LambdaWarmInvoke: 0.25,
    };
    const latency = (op: LatencyOp): number => figures[op] ?? 1000;
    const sequence: ReferenceStep[] = [
      { item: 1, name: 'stop', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'callAndWait', op: 'StopInstances' }] },
      { item: 2, name: 'attach', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'api', starts: 'AttachVolume' }, { kind: 'wait' }], access: true },
      { item: 3, name: 'scripts', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'script', count: 2 }, { kind: 'sleep', seconds: 30, why: 'fixed' }] },
    ];

    // Act
    const model = modelReference(sequence, latency);

    // Assess
    expect(model.steps[0].seconds).toBeCloseTo(1 + 0.5 + 60 + 0.5);
    // the wait's transition overlaps the attach already under way: 1 + 0.5, then attach done at +5, then the poll
    expect(model.steps[1].seconds).toBeCloseTo(1 + 0.5 + 5 + 0.5);
    expect(model.steps[2].seconds).toBeCloseTo(2 * (1 + 0.25) + 1 + 30);
    expect(model.timeToAccessSeconds).toBeCloseTo(model.steps[1].endSeconds);
  });

  it('refuses a sequence without exactly one access step', () => {
    expect(() => modelReference(REFERENCE_SEQUENCE.map((s) => ({ ...s, access: undefined })))).toThrow(/exactly one access step/);
  });
});

describe('targets', () => {
  const keygen = {
    rsa: { medianMs: 900, runsMs: [900], cpuMedianMs: 900, generatorCalls: {} },
    ed25519: { medianMs: 1, runsMs: [1], cpuMedianMs: 1, generatorCalls: {} },
    rsaPath: { native: true, runtime: '', source: '', bundle: '' },
  };
  const cold = (medianMs: number) => ({
    medianMs, runsMs: [medianMs], firstRunMs: medianMs, cpuMedianMs: medianMs, loadAverage: [0, 0] as [number, number],
    bundle: 'x', sdkPackages: [], sdkOnlyMedianMs: null, sdkOnlyCpuMedianMs: null,
  });

  it('pass, fail, and null when a figure is missing', () => {
    // Act
    const passing = evaluateTargets({
      timeToAccessSeconds: 150, referenceTimeToAccessSeconds: 600,
      bundleBytes: { maxBytes: 100_000, largest: 'preflight', perFunction: {}, cdkInternal: {} },
      coldInitMs: cold(100), keygenMs: keygen,
    });
    const failing = evaluateTargets({
      timeToAccessSeconds: 185, referenceTimeToAccessSeconds: 540,
      bundleBytes: { maxBytes: TARGETS.bundleBytesMax + 1, largest: 'preflight', perFunction: {}, cdkInternal: {} },
      coldInitMs: cold(150), keygenMs: { ...keygen, rsaPath: { ...keygen.rsaPath, native: false } },
    });
    const missing = evaluateTargets({ timeToAccessSeconds: null, referenceTimeToAccessSeconds: 540, bundleBytes: null, coldInitMs: null, keygenMs: null });

    // Assess
    expect(passing.map((t) => t.pass)).toEqual([true, true, true, true, true]);
    expect(failing.map((t) => t.pass)).toEqual([false, false, false, false, false]);
    expect(missing.map((t) => t.pass)).toEqual([null, null, null, null, null]);
  });
});

describe('RSA path checks', () => {
  it('accepts keys.ts as it is: native generateKeyPairSync, no node-forge generator', () => {
    const source = fs.readFileSync(path.join(ROOT, 'lambdas', 'common', 'keys.ts'), 'utf8');
    expect(checkKeysSource(source).ok).toBe(true);
  });

  it('rejects a source that generates RSA with node-forge', () => {
    const bad = "const kp = forge.pki.rsa.generateKeyPair({ bits: 4096 });\n";
    expect(checkKeysSource(bad).ok).toBe(false);
  });

  it('reads a bundle: native call present, forge prime search absent', () => {
    expect(checkBundleText('a.generateKeyPairSync("rsa",{modulusLength:4096})').ok).toBe(true);
    expect(checkBundleText('a.generateKeyPairSync("rsa");b.prime.generateProbablePrime(1)').ok).toBe(false);
  });
});

describe('bookkeeping', () => {
  it('sums API calls by action and by service', () => {
    const calls = summarizeCalls({ 'ec2:DescribeVolumes': 4, 'ssm:PutParameter': 2, 'ec2:StopInstances': 1 });
    expect(calls).toEqual({
      total: 7,
      byAction: { 'ec2:DescribeVolumes': 4, 'ec2:StopInstances': 1, 'ssm:PutParameter': 2 },
      byService: { ec2: 5, ssm: 2 },
    });
  });

  it('names functions after their Lambda folder and keeps CDK helpers apart', () => {
    expect(folderNameOf('StepsInjectKeyCF01F90E', '')).toBe('inject-key');
    expect(folderNameOf('StepsCleanupE5EAB635', 'ResetAccessStack/Steps/Cleanup/Resource')).toBe('cleanup');
    const sizes = bundleSizes([
      { logicalId: 'A', name: 'preflight', ours: true, entry: '', bytes: 90, assetBytes: 0, environment: {}, handler: '' },
      { logicalId: 'B', name: 'stop-instance', ours: true, entry: '', bytes: 80, assetBytes: 0, environment: {}, handler: '' },
      { logicalId: 'C', name: 'LogRetention', ours: false, entry: '', bytes: 900, assetBytes: 0, environment: {}, handler: '' },
    ]);
    expect(sizes).toEqual({ maxBytes: 90, largest: 'preflight', perFunction: { preflight: 90, 'stop-instance': 80 }, cdkInternal: { LogRetention: 900 } });
  });

  it('finds the external SDK packages a bundle requires', () => {
    expect(sdkRequiresOf('var a=require("@aws-sdk/client-ec2"),b=require("@aws-sdk/client-ssm");require("@aws-sdk/client-ec2")')).toEqual([
      '@aws-sdk/client-ec2',
      '@aws-sdk/client-ssm',
    ]);
  });

  it('medians and options', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(parseArgs(['--json', '--runs', '3']).runs).toBe(5); // never fewer than 5 cold-init runs
    expect(() => parseArgs(['--bogus'])).toThrow(/unknown option/);
  });
});

function sampleResult(): BenchResult {
  const reference = modelReference();
  const figures = {
    timeToAccessSeconds: null,
    referenceTimeToAccessSeconds: reference.timeToAccessSeconds,
    bundleBytes: null,
    coldInitMs: null,
    keygenMs: null,
  };
  return {
    version: RESULT_VERSION,
    generatedAt: '2026-01-01T00:00:00.000Z',
    machine: { nproc: 2, memory: '1Gi total', cpuModel: 'cpu', node: 'v20', kernel: 'k', platform: 'linux x64', loadAverageAtStart: [0, 0, 0] },
    loadAverageAtEnd: [0, 0, 0],
    source: { commit: '0123456789abcdef', uncommitted: [] },
    ...figures,
    referenceTotalSeconds: reference.totalSeconds,
    speedup: null,
    ours: null,
    reference: reference.steps,
    apiCallsPerReset: null,
    injectSeconds: null,
    targets: evaluateTargets(figures),
    notMeasured: ['timeToAccessSeconds', 'apiCallsPerReset', 'bundleBytes', 'coldInitMs', 'keygenMs', 'injectSeconds'].map((field) => ({ field, reason: 'test' })),
  };
}

describe('the result', () => {
  it('has the JSON shape, and a null figure must say why', () => {
    const result = sampleResult();
    expect(shapeProblems(JSON.parse(JSON.stringify(result)))).toEqual([]);
    expect(shapeProblems({ ...result, notMeasured: [] })).toContain('bundleBytes is null without a reason in notMeasured');
  });

  it('the committed bench/results/latest.json has the shape', () => {
    if (!fs.existsSync(RESULTS_FILE)) return; // not committed yet
    expect(shapeProblems(JSON.parse(fs.readFileSync(RESULTS_FILE, 'utf8')))).toEqual([]);
  });

  it('renders the table and the page, latency table included', () => {
    const result = sampleResult();
    expect(renderConsole(result)).toContain('time to access, reference (modeled)');
    const page = renderMarkdown(result);
    for (const entry of LATENCY_TABLE) expect(page).toContain(`\`${entry.op}\``);
    for (const step of REFERENCE_SEQUENCE) expect(page).toContain(step.name);
  });
});

describe('waitForQuiet', () => {
  /** A fake clock that the fake sleep advances. */
  const clock = (): { now: () => number; sleep: (ms: number) => void; slept: number[] } => {
    let t = 0;
    const slept: number[] = [];
    return { now: () => t, sleep: (ms) => { slept.push(ms); t += ms; }, slept };
  };

  it('returns at once on a quiet machine', () => {
    const c = clock();
    const w = waitForQuiet(1.0, 150_000, c.sleep, () => 0.4, c.now);
    expect(w).toEqual({ waitedSeconds: 0, loadBefore: 0.4, loadAfter: 0.4, quiet: true });
    expect(c.slept).toEqual([]);
  });

  it('waits until the load falls below the bound, and says how long', () => {
    const c = clock();
    const loads = [2.3, 1.8, 1.2, 0.9];
    const w = waitForQuiet(1.0, 150_000, c.sleep, () => loads.shift() as number, c.now);
    expect(w).toEqual({ waitedSeconds: 6, loadBefore: 2.3, loadAfter: 0.9, quiet: true });
  });

  it('gives up at the time limit and reports a busy machine', () => {
    const c = clock();
    const w = waitForQuiet(1.0, 10_000, c.sleep, () => 3, c.now);
    expect(w.quiet).toBe(false);
    expect(w.waitedSeconds).toBe(10);
  });
});
