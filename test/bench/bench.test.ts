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
import { modelReference, modelReferenceAt, REFERENCE_SEQUENCE, REFERENCE_SLEEP_SECONDS, type ReferenceStep } from '../../bench/reference-sequence';
import { headlineRows, renderConsole, renderMarkdown, volumeSwapBound, windowsSection } from '../../bench/report';
import { evaluateTargets, RESULT_VERSION, shapeProblems, speedupRatios, TARGETS, userHoldsKeyAt, type BenchResult } from '../../bench/result';
import { windowsResult } from '../../bench/windows-result';
import { stepMemoryMb } from '../../lib/functions';
import { ours as windowsOurs, reference as windowsReference, WINDOWS_FIGURES } from '../../bench/windows';
import { bundleSizes, parseArgs, RESULTS_FILE } from '../../bench/run';
import { median } from '../../bench/stats';
import { summarizeCalls } from '../../bench/twin-run';
import { ONLINE_POLL_MS } from '../../lambdas/inject-key/inject-key';
import { lambdaCallSeconds, lambdaCommandPollLateness, lambdaKeyGenSeconds, LATENCY_TABLE, latencyOf, meanPollLateness, setLatencyModel, type LatencyOp } from '../../local/latency';

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

    // Act: double every figure (the poll lateness, half the poll interval, doubles with it)
    const doubled = modelReference(REFERENCE_SEQUENCE, (op: LatencyOp) => 2 * latencyOf(op, 'high'));

    // Assess
    expect([...named].filter((op) => !ops.has(op))).toEqual([]);
    // the sleep is fixed by the document, not a latency figure
    expect(doubled.timeToAccessSeconds).toBeCloseTo(2 * modelReference().timeToAccessSeconds - REFERENCE_SLEEP_SECONDS, 6);
  });

  it('sleeps 10 s after the attach, as the published step list says (not 30 s)', () => {
    const sleeps = REFERENCE_SEQUENCE.flatMap((s) => s.actions.filter((a) => a.kind === 'sleep'));
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toMatchObject({ kind: 'sleep', seconds: 10 });
    expect(REFERENCE_SLEEP_SECONDS).toBe(10);
  });

  it('is modeled at both ends of the table, each wait charged the mean lateness of its polling', () => {
    // Act
    const low = modelReferenceAt('low');
    const high = modelReferenceAt('high');
    const highWithoutLateness = modelReference(REFERENCE_SEQUENCE, (op) => latencyOf(op, 'high'), 0);

    // Assess: each end reads its own figures and its own lateness
    expect(low.timeToAccessSeconds).toBeCloseTo(modelReference(REFERENCE_SEQUENCE, (op) => latencyOf(op, 'low'), meanPollLateness('low')).timeToAccessSeconds, 9);
    expect(low.timeToAccessSeconds).toBeLessThan(high.timeToAccessSeconds);
    expect(meanPollLateness('high')).toBe(latencyOf('WaitPollInterval', 'high') / 2);
    // before access the reference waits (or starts-and-waits) at least ten times, each charged once
    const lateness = high.timeToAccessSeconds - highWithoutLateness.timeToAccessSeconds;
    expect(lateness / meanPollLateness('high')).toBeGreaterThanOrEqual(10);
    expect(Number.isInteger(Math.round(lateness / meanPollLateness('high') * 1e6) / 1e6)).toBe(true);
  });

  it('charges each action as the runner does', () => {
    // Prepare: transition 1, API call 0.5, stop 60, attach 5, detach 0.2, invoke 0.25; poll lateness 2
    const figures: Partial<Record<LatencyOp, number>> = {
      AutomationStepTransition: 1, ApiCall: 0.5, StopInstances: 60, AttachVolume: 5, DetachVolume: 0.2, LambdaWarmInvoke: 0.25,
    };
    const latency = (op: LatencyOp): number => figures[op] ?? 1000;
    const sequence: ReferenceStep[] = [
      { item: 1, name: 'stop', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'callAndWait', op: 'StopInstances' }] },
      { item: 2, name: 'attach', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'api', starts: 'AttachVolume' }, { kind: 'wait' }], access: true },
      { item: 3, name: 'scripts', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'script', count: 2 }, { kind: 'sleep', seconds: 10, why: 'fixed' }] },
      { item: 4, name: 'detach', document: 'AWSSupport-StartEC2RescueWorkflow', what: '', actions: [{ kind: 'api', starts: 'DetachVolume' }, { kind: 'wait' }] },
    ];

    // Act
    const model = modelReference(sequence, latency, 2);

    // Assess: a start-and-wait polls too: the work, then the lateness, then the poll that sees it
    expect(model.steps[0].seconds).toBeCloseTo(1 + 0.5 + 60 + 2 + 0.5);
    // the wait's transition overlaps the attach already under way: 1 + 0.5, then attach done at +5, seen 2 s late, then the poll
    expect(model.steps[1].seconds).toBeCloseTo(1 + 0.5 + 5 + 2 + 0.5);
    expect(model.steps[2].seconds).toBeCloseTo(2 * (1 + 0.25) + 1 + 10);
    // a detach done (0.2 s) before the wait's first poll: no waiting, so no lateness
    expect(model.steps[3].seconds).toBeCloseTo(1 + 0.5 + 1 + 0.5);
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
      timeToAccessSeconds: { low: 100, high: 150 }, referenceTimeToAccessSeconds: { low: 600, high: 900 },
      bundleBytes: { maxBytes: 100_000, largest: 'preflight', perFunction: {}, cdkInternal: {} },
      coldInitMs: cold(100), keygenMs: keygen,
      onlineTimeToAccessSeconds: { low: 10, high: 20 },
    });
    const failing = evaluateTargets({
      timeToAccessSeconds: { low: 185, high: 190 }, referenceTimeToAccessSeconds: { low: 540, high: 1200 },
      bundleBytes: { maxBytes: TARGETS.bundleBytesMax + 1, largest: 'preflight', perFunction: {}, cdkInternal: {} },
      coldInitMs: cold(150), keygenMs: { ...keygen, rsaPath: { ...keygen.rsaPath, native: false } },
      // 185-190 s against 540-1200 s: 2.9× at the low end, under 3×; 23 s is over 20 s; 540 / 22 at the low end is under 25×.
      onlineTimeToAccessSeconds: { low: 22, high: 23 },
    });
    const missing = evaluateTargets({ timeToAccessSeconds: null, referenceTimeToAccessSeconds: { low: 540, high: 900 }, bundleBytes: null, coldInitMs: null, keygenMs: null });

    // Assess
    expect(passing.map((t) => t.pass)).toEqual([true, true, true, true, true, true, true]);
    expect(failing.map((t) => t.pass)).toEqual([false, false, false, false, false, false, false]);
    expect(missing.map((t) => t.pass)).toEqual([null, null, null, null, null, null, null]);
  });

  it('a ratio target is judged on the two same-end ratios, the smaller one; the cross-end ratio is printed, not judged', () => {
    // ours 100-170 s, reference 450-900 s: same-end 4.5× and 5.3× hold; the cross-end 450 / 170 = 2.6× would miss, and is not judged
    const t = evaluateTargets({ timeToAccessSeconds: { low: 100, high: 170 }, referenceTimeToAccessSeconds: { low: 450, high: 900 }, bundleBytes: null, coldInitMs: null, keygenMs: null });
    const vsRef = t.find((x) => x.id === 'access-vs-reference');
    expect(vsRef?.pass).toBe(true);
    expect(vsRef?.measured).toContain('4.50× (both at the low end, the end less favourable to us; at the high end 5.29×)');
    expect(vsRef?.measured).toContain('cross-end 2.65× (reference low / ours high: not judged, mixes two worlds)');
    expect(vsRef?.threshold).toContain('≤ 150.0 s at the low end, ≤ 300.0 s at the high end');
    // one end failing is enough: 100 s at the low end against 450 / 3 holds, 310 s at the high end against 900 / 3 does not
    const oneEnd = evaluateTargets({ timeToAccessSeconds: { low: 100, high: 310 }, referenceTimeToAccessSeconds: { low: 450, high: 900 }, bundleBytes: null, coldInitMs: null, keygenMs: null });
    expect(oneEnd.find((x) => x.id === 'access-vs-reference')?.pass).toBe(false);
    expect(oneEnd.find((x) => x.id === 'access-vs-reference')?.measured).toContain('2.90× (both at the high end');
    // an absolute time target: our high end only
    const slow = evaluateTargets({ timeToAccessSeconds: { low: 120, high: 181 }, referenceTimeToAccessSeconds: { low: 1000, high: 2000 }, bundleBytes: null, coldInitMs: null, keygenMs: null });
    expect(slow.find((x) => x.id === 'access-vs-reference')?.pass).toBe(true);
    expect(slow.find((x) => x.id === 'access-under-180s')?.pass).toBe(false); // 181 at our high end, though 120 at our low
    expect(slow.find((x) => x.id === 'access-under-180s')?.measured).toContain('181.0 s at our high end');
    // the online ratio: 3-20 s against 450-1000 s: same-end 150× and 50×, judged 50×: met, though the cross-end 22.5× is under 25×
    const online = evaluateTargets({
      timeToAccessSeconds: null, referenceTimeToAccessSeconds: { low: 450, high: 1000 }, bundleBytes: null, coldInitMs: null, keygenMs: null,
      onlineTimeToAccessSeconds: { low: 3, high: 20 },
    });
    const ratio = online.find((x) => x.id === 'online-25x-reference');
    expect(ratio?.pass).toBe(true);
    expect(ratio?.measured).toBe('50.0× (both at the high end, the end less favourable to us; at the low end 150.0×); cross-end 22.5× (reference low / ours high: not judged, mixes two worlds)');
    // 20 s at 450 s is 22.5× at the low end: missed whatever the high end says
    const low = evaluateTargets({
      timeToAccessSeconds: null, referenceTimeToAccessSeconds: { low: 450, high: 1000 }, bundleBytes: null, coldInitMs: null, keygenMs: null,
      onlineTimeToAccessSeconds: { low: 20, high: 20 },
    });
    expect(low.find((x) => x.id === 'online-25x-reference')?.pass).toBe(false);
  });

  it('the judged ratio is the smaller same-end ratio; the cross-end one beside it', () => {
    expect(speedupRatios({ low: 300, high: 900 }, { low: 100, high: 450 })).toEqual({ judged: 2, judgedEnd: 'high', atLowEnd: 3, atHighEnd: 2, crossEnd: 0.67 });
    expect(speedupRatios({ low: 300, high: 900 }, { low: 150, high: 100 })).toEqual({ judged: 2, judgedEnd: 'low', atLowEnd: 2, atHighEnd: 9, crossEnd: 3 });
  });

  it('Windows: judged with the boot in both, at the same end, from the model of bench/windows.ts', () => {
    const w = windowsResult();
    const boot = WINDOWS_FIGURES.WindowsBootUntilPassword;
    for (const end of ['low', 'high'] as const) {
      expect(w.oursTimeToAccess[end]).toBeCloseTo(windowsOurs(end).beforeBoot + boot[end], 1);
      expect(w.referenceTimeToAccess[end]).toBeCloseTo(windowsReference(end).beforeBoot + boot[end], 1);
    }
    const judged = Math.min(w.referenceTimeToAccess.low / w.oursTimeToAccess.low, w.referenceTimeToAccess.high / w.oursTimeToAccess.high);
    expect(w.speedup.judged).toBeCloseTo(judged, 2);
    const target = evaluateTargets({ timeToAccessSeconds: null, referenceTimeToAccessSeconds: { low: 1, high: 2 }, bundleBytes: null, coldInitMs: null, keygenMs: null, windows: w })
      .find((x) => x.id === 'windows-2x-reference');
    expect(target?.pass).toBe(judged >= TARGETS.windowsSpeedupMin);
    expect(target?.measured).toContain('not judged, mixes two worlds');
  });

  it('Windows cross-end: the runs differ only before the boot, so the one boot takes one value on both sides (review-s6 Q4)', () => {
    const w = windowsResult();
    const boot = WINDOWS_FIGURES.WindowsBootUntilPassword;
    const oneBoot = (windowsReference('low').beforeBoot + boot.high) / (windowsOurs('high').beforeBoot + boot.high);
    expect(w.speedup.crossEnd).toBeCloseTo(oneBoot, 2);
    // the old figure added the boot at 85 s to the reference and at 900 s to ours: two worlds for one boot
    const twoBoots = (windowsReference('low').beforeBoot + boot.low) / (windowsOurs('high').beforeBoot + boot.high);
    expect(Math.abs(w.speedup.crossEnd - twoBoots)).toBeGreaterThan(0.1);
    const page: string[] = [];
    windowsSection(w, page);
    expect(page.join('\n')).toContain(`cross-end ${w.speedup.crossEnd.toFixed(2)}× (reference low / ours high before the boot, the target's boot at its high end on both sides`);
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
  const low = modelReferenceAt('low');
  const high = modelReferenceAt('high');
  const figures = {
    timeToAccessSeconds: null,
    referenceTimeToAccessSeconds: { low: low.timeToAccessSeconds, high: high.timeToAccessSeconds },
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
    online: null,
    windows: null,
    ...figures,
    referenceTotalSeconds: { low: low.totalSeconds, high: high.totalSeconds },
    speedup: null,
    ours: null,
    reference: { low: low.steps, high: high.steps },
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
    // a modeled time is a range, low ≤ high, never one number
    expect(shapeProblems({ ...result, referenceTimeToAccessSeconds: { low: 300, high: 200 } }).join()).toMatch(/referenceTimeToAccessSeconds: expected a range/);
    expect(shapeProblems({ ...result, referenceTimeToAccessSeconds: 551 }).join()).toMatch(/referenceTimeToAccessSeconds: expected object/);
  });

  it('the committed bench/results/latest.json has the shape', () => {
    if (!fs.existsSync(RESULTS_FILE)) return; // not committed yet
    expect(shapeProblems(JSON.parse(fs.readFileSync(RESULTS_FILE, 'utf8')))).toEqual([]);
  });

  it('the committed run: the volume swap is never faster than the bound of its design, and the online method never stops anything', () => {
    const r = JSON.parse(fs.readFileSync(RESULTS_FILE, 'utf8')) as BenchResult;
    expect(r.timeToAccessSeconds).not.toBeNull();
    for (const end of ['low', 'high'] as const) {
      // The bound: stop+detach overlapped with the helper's boot, attach, command, detach, attach, start.
      expect([end, (r.timeToAccessSeconds?.[end] ?? 0) >= volumeSwapBound(end).seconds]).toEqual([end, true]);
      const online = r.online?.ours[end];
      expect(online?.status).toBe('Success');
      expect((online?.work ?? []).map((w) => w.op).filter((op) => ['StopInstances', 'StartInstances', 'DetachVolume', 'AttachVolume', 'RunInstancesUntilOnline'].includes(op))).toEqual([]);
      expect(online?.work.some((w) => w.op === 'RunCommandOnline')).toBe(true);
      // Review P2 / review-s6 Q9: inside injectKeyOnline the backup and the RSA generation overlap
      // (inject-key.ts: Promise.all of backupRunning and generateRunKey), and SendCommand waits for both.
      // Overlapped: the command starts before CreateSnapshot's answer plus a whole generation (the
      // serial order of d8cda73's run, generation after the backup, fails this); but no earlier than
      // the step's start plus the generation and the key's PutParameter, nor than the snapshot's
      // answer (a run that charged no generation, as 98fae58's, fails this).
      expect(online?.keyType).toBe('rsa');
      const step = online?.steps.find((s) => s.name === 'injectKeyOnline');
      const snapshot = online?.work.find((w) => w.op === 'CreateSnapshot');
      const command = online?.work.find((w) => w.op === 'RunCommandOnline');
      if (!step || !snapshot || !command) throw new Error(`the committed online run at the ${end} end lacks injectKeyOnline, CreateSnapshot or RunCommandOnline`);
      const keygen = latencyOf('LambdaRsa4096KeyGen', end);
      expect([end, command.startedAt < snapshot.completesAt + keygen]).toEqual([end, true]);
      expect([end, command.startedAt + 1e-6 >= Math.max(snapshot.completesAt, step.startSeconds + keygen + latencyOf('ApiCall', end))]).toEqual([end, true]);
      // Review P4: the CLI user holds the key one poll's lateness and three calls after it is in
      // place (bench/result.ts userHoldsKeyAt): a committed figure from another formula fails here.
      const inPlace = r.online?.timeToAccessSeconds?.[end];
      expect(inPlace).toEqual(expect.any(Number));
      expect(r.online?.userHoldsKeySeconds?.[end]).toBeCloseTo(userHoldsKeyAt(inPlace as number, end), 2);
      expect((r.online?.userHoldsKeySeconds?.[end] ?? 0) - (inPlace as number)).toBeGreaterThanOrEqual(3 * latencyOf('ApiCall', end) - 1e-6);
    }
  });

  it("a Lambda handler's work is charged only when the model says so (the twin's tests keep their timings)", () => {
    const previous = setLatencyModel({ end: 'high', lambdaWork: false });
    try {
      expect([lambdaCallSeconds('DescribeInstances'), lambdaKeyGenSeconds('rsa'), lambdaCommandPollLateness()]).toEqual([0, 0, 0]);
      setLatencyModel({ lambdaWork: true });
      expect(lambdaCallSeconds('DescribeInstances')).toBe(latencyOf('ApiCall', 'high'));
      expect(lambdaCallSeconds('CreateSnapshot')).toBe(latencyOf('CreateSnapshot', 'high'));
      expect(lambdaKeyGenSeconds('rsa')).toBe(latencyOf('LambdaRsa4096KeyGen', 'high'));
      expect(lambdaKeyGenSeconds('ed25519')).toBe(0);
      // the worst case of inject-key's own poll: one whole interval
      expect(lambdaCommandPollLateness()).toBe(ONLINE_POLL_MS / 1000);
      // the CLI notices the key in place at its next 3 s poll (GetAutomationExecution,
      // DescribeAutomationStepExecutions), then GetParameter
      expect(userHoldsKeyAt(30, 'high')).toBeCloseTo(30 + 3 + 3 * latencyOf('ApiCall', 'high'), 6);
      expect(userHoldsKeyAt(30, 'low')).toBeCloseTo(30 + 3 * latencyOf('ApiCall', 'low'), 6);
    } finally {
      setLatencyModel(previous);
    }
  });

  it('renders the table and the page, latency table included', () => {
    const result = sampleResult();
    const console = renderConsole(result);
    expect(console).toContain('time to access, reference (modeled), low / high end');
    const r = result.referenceTimeToAccessSeconds;
    expect(console).toContain(`${r.low.toFixed(1)} s / ${r.high.toFixed(1)} s`);
    const page = renderMarkdown(result);
    for (const entry of LATENCY_TABLE) expect(page).toContain(`| \`${entry.op}\` | ${entry.what} | ${entry.low} | ${entry.high} |`);
    for (const step of REFERENCE_SEQUENCE) expect(page).toContain(step.name);
    expect(page).toContain(`access at ${r.low.toFixed(1)} s (low end) to ${r.high.toFixed(1)} s (high end)`);
    // one rule on the page (local/latency.ts): the old cross-end rule is never stated as the judged one (review-s6 Q5)
    expect(page).not.toContain('rests on our high end against');
    expect(page).toContain('A ratio target is judged on the smaller of the two same-end ratios');
  });

  it('prints both ends of our time and of both ratios once the twin has run', () => {
    const result = {
      ...sampleResult(),
      timeToAccessSeconds: { low: 90, high: 240 },
      speedup: { judged: 0.9, judgedEnd: 'high' as const, atLowEnd: 7.5, atHighEnd: 0.9, crossEnd: 0.5 },
    };
    const rows = new Map(headlineRows(result));
    expect(rows.get('time to access, ours (modeled, twin run), low / high end')).toBe('90.0 s / 240.0 s');
    expect(rows.get('speed-up at the low end of the latency table (reference / ours)')).toBe('7.50×');
    expect(rows.get('speed-up at the high end of the latency table (reference / ours)')).toBe('0.90×');
    // a time target that fails at the less favourable end is explained with both ends
    const failing = { ...result, targets: evaluateTargets({ ...result, timeToAccessSeconds: { low: 90, high: 240 } }) };
    expect(failing.targets.find((t) => t.id === 'access-under-180s')?.pass).toBe(false);
    const page = renderMarkdown(failing);
    expect(page).toContain('**Reading the time targets.** At the low end of the latency table ours is 90.0 s');
    expect(page).toContain('at the high end, 240.0 s');
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

describe('the key generation row follows the deployed memory', () => {
  it("LambdaRsa4096KeyGen is the measured CPU time scaled by inject-key's vCPU share (1,769 MB = one vCPU, Lambda's configuration-memory page)", () => {
    const memory = stepMemoryMb('inject-key') ?? 0;
    expect(memory).toBeGreaterThan(0);
    const share = Math.min(memory, 1769) / 1769;
    const entry = LATENCY_TABLE.find((e) => e.op === 'LambdaRsa4096KeyGen');
    expect(entry?.low).toBeCloseTo(1.49 / share, 1);
    expect(entry?.high).toBeCloseTo(2.84 / share, 1);
    expect(entry?.what).toContain(`${memory} MB`);
  });
});
