/**
 * Child-process probe for bench/twin-run.ts: one real reset through the local twin (moto, the
 * agent, the synthesized runbook, the bundled Lambdas, the inject script on a disk image), on the
 * virtual clock. Writes one JSON file: the steps with their virtual times, the status, the time
 * to access and the API calls the agent counted. Never a payload, an output value or a key.
 * The latency model is set first: the end of the table (low or high) given, and every wait
 * charged its mean poll lateness (local/latency.ts).
 * Usage: tsx bench/probes/twin-probe.ts <out.json> <rsa|ed25519> <low|high> [VolumeSwap|Online]
 * (Online: the target is a managed node and the run asks for Method=Online, issue 12.)
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import { writeFileSync } from 'fs';

interface StepResult {
  name: string;
  action: string;
  status: string;
  startedAt: number;
  endedAt: number;
  attempts: number;
  outputs?: Record<string, unknown>;
}
interface ExecutionResult {
  status: string;
  steps: StepResult[];
  modeledSeconds: number;
  failureMessage?: string;
}
interface PendingOp {
  op: string;
  resourceIds: readonly string[];
  startedAt: number;
  completesAt: number;
}
interface TwinModule {
  startTwin(options?: { log?: (line: string) => void }): Promise<{
    clock: { now(): number; history(): readonly PendingOp[] };
    createLockedOutInstance(spec?: Record<string, unknown>): Promise<{ instanceId: string }>;
    runReset(parameters: Record<string, unknown>, options?: { log?: (line: string) => void }): Promise<{ result: ExecutionResult; calls: Record<string, number>; callLog: ReadonlyArray<{ service: string; action: string; at: number }> }>;
    leftovers(): Promise<Record<string, string[]>>;
    stop(): Promise<void>;
  }>;
}
interface LatencyModule {
  setLatencyModel(model: { end?: 'low' | 'high'; pollLateness?: boolean; lambdaWork?: boolean }): unknown;
}
interface RunnerModule {
  timeToAccess(result: ExecutionResult, stepNames: readonly string[]): number | undefined;
}

/** What a piece of slow work acts on, in words: the target, the helper, the root volume. */
function describeTarget(ids: readonly string[], targetId: string): string {
  const instance = ids.includes(targetId) ? 'target' : ids.some((id) => id.startsWith('i-')) ? 'helper' : '';
  const volume = ids.some((id) => id.startsWith('vol-')) ? 'root volume' : '';
  if (volume && instance) return `${volume}, ${instance}`;
  return volume || instance || 'command';
}

/** The steps after which access is back, in order of preference (docs/architecture.md). */
const ACCESS_STEPS = ['waitForInstanceRunning', 'startInstance'];
/**
 * The online method: access is back when the key is in place and the user can fetch it. The
 * private key is stored (PutParameter) before SendCommand and the key is in place when the command
 * has ended; injectKeyOnline reads the command's report in the same step, so its end is the first
 * point at which the run itself knows both (issue 12). reportOnline, if the step's bounded wait ran
 * out, is the fallback. Cleanup and summary come after, shown apart.
 */
const ONLINE_ACCESS_STEPS = ['injectKeyOnline', 'reportOnline'];

/** The online steps that know the key is in place: injectKeyOnline only when its Payload says Confirmed. */
function onlineAccessSteps(result: ExecutionResult): string[] {
  const inject = result.steps.find((s) => s.name === 'injectKeyOnline' && s.status === 'Success');
  const payload = typeof inject?.outputs?.Payload === 'string' ? inject.outputs.Payload : '';
  return payload.includes('"Confirmed":"true"') ? ONLINE_ACCESS_STEPS : ONLINE_ACCESS_STEPS.slice(1);
}

async function main(): Promise<void> {
  const [outFile, keyType = 'rsa', end = 'high', method = 'VolumeSwap'] = process.argv.slice(2);
  if (end !== 'low' && end !== 'high') throw new Error(`the latency end is low or high, got ${end}`);
  if (method !== 'VolumeSwap' && method !== 'Online') throw new Error(`the method is VolumeSwap or Online, got ${method}`);
  const progress = (line: string) => process.stderr.write(`  twin (${end}): ${line}\n`);
  (require('../../local/latency') as LatencyModule).setLatencyModel({ end, pollLateness: true, lambdaWork: true });
  const { startTwin } = require('../../local/twin') as TwinModule;
  const { timeToAccess } = require('../../local/runner/runner') as RunnerModule;
  const wallStart = Date.now();
  const twin = await startTwin({ log: progress });
  try {
    const instance = await twin.createLockedOutInstance({ state: 'running', ...(method === 'Online' ? { managed: {} } : {}) });
    const t0 = twin.clock.now();
    const { result, calls, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: keyType, Method: method }, { log: progress });
    const accessSteps = method === 'Online' ? onlineAccessSteps(result) : ACCESS_STEPS;
    const leftovers = await twin.leftovers();
    // The slow work the run started, on the same clock as its steps (seconds since it began).
    const work = twin.clock
      .history()
      .filter((o) => o.startedAt >= t0)
      .map((o) => ({
        op: o.op,
        on: describeTarget(o.resourceIds, instance.instanceId),
        startedAt: o.startedAt - t0,
        completesAt: o.completesAt - t0,
      }));
    const started = work.filter((w) => w.op === 'StartInstances' && w.on === 'target');
    const instanceRunningSeconds = started.length > 0 ? started[started.length - 1].completesAt : null;
    const accessStep = accessSteps.find((name) => result.steps.some((s) => s.name === name && s.status === 'Success')) ?? '';
    writeFileSync(
      outFile,
      JSON.stringify({
        status: result.status,
        failureMessage: result.status === 'Success' ? undefined : result.failureMessage,
        steps: result.steps.map((s) => ({ name: s.name, action: s.action, status: s.status, startedAt: s.startedAt, endedAt: s.endedAt, attempts: s.attempts })),
        modeledSeconds: result.modeledSeconds,
        timeToAccessSeconds: timeToAccess(result, accessSteps) ?? null,
        method,
        accessStep,
        instanceRunningSeconds,
        work,
        calls,
        leftovers: Object.fromEntries(Object.entries(leftovers).filter(([, v]) => v.length > 0)),
        wallSeconds: (Date.now() - wallStart) / 1000,
        // BENCH_CALL_LOG=1: each call's action and virtual time (no payload), to read where the time goes.
        ...(process.env.BENCH_CALL_LOG === '1' ? { callTimes: callLog.map((c) => `${(c.at - t0).toFixed(2)} ${c.service}:${c.action}`) } : {}),
        keyType,
        end,
      }),
    );
  } finally {
    await twin.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`twin probe: ${(err as Error).name}: ${(err as Error).message}\n`);
  process.exit(1);
});
