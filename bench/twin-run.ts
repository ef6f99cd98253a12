/**
 * timeToAccessSeconds and apiCallsPerReset: one real reset through the local twin (in a child
 * process, so its servers, loop devices and logs stay out of the benchmark's own process).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { LatencyEnd } from '../local/latency';
import { runChild } from './exec';
import { PROJECT_ROOT, TSX } from './keygen';
import { PartMissing } from './parts';
import type { ApiCalls, OursRun } from './result';
import { round } from './stats';

export interface TwinMeasurement {
  readonly ours: OursRun;
  readonly timeToAccessSeconds: number | null;
  readonly apiCalls: ApiCalls;
  readonly leftovers: Readonly<Record<string, string[]>>;
  readonly wallSeconds: number;
}

interface ProbeFile {
  instanceRunningSeconds: number | null;
  work: Array<{ op: string; on: string; startedAt: number; completesAt: number }>;
  status: string;
  failureMessage?: string;
  steps: Array<{ name: string; action: string; status: string; startedAt: number; endedAt: number; attempts: number }>;
  modeledSeconds: number;
  timeToAccessSeconds: number | null;
  accessStep: string;
  calls: Record<string, number>;
  leftovers: Record<string, string[]>;
  wallSeconds: number;
  keyType: string;
}

/** Counts by `service:Action` summed into totals and per service. Exported for the test. */
export function summarizeCalls(calls: Readonly<Record<string, number>>): ApiCalls {
  const byAction: Record<string, number> = {};
  const byService: Record<string, number> = {};
  let total = 0;
  for (const [key, n] of Object.entries(calls).sort(([a], [b]) => a.localeCompare(b))) {
    byAction[key] = n;
    const service = key.split(':')[0];
    byService[service] = (byService[service] ?? 0) + n;
    total += n;
  }
  return { total, byAction, byService };
}

/** One twin run at one end of the latency table, waits charged their mean poll lateness. */
export function measureTwin(keyType: 'rsa' | 'ed25519', end: LatencyEnd, method: 'VolumeSwap' | 'Online' = 'VolumeSwap'): TwinMeasurement {
  for (const part of ['local/twin.ts', 'local/runner/runner.ts']) {
    if (!fs.existsSync(path.join(PROJECT_ROOT, part))) throw new PartMissing(`${part} is not in the tree yet`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-twin-'));
  const outFile = path.join(dir, 'twin.json');
  try {
    runChild(TSX, [path.join(__dirname, 'probes', 'twin-probe.ts'), outFile, keyType, end, method], {
      what: `the twin run (${method}, ${end} end)`,
      cwd: PROJECT_ROOT,
      timeout: 15 * 60_000,
    });
    const probe = JSON.parse(fs.readFileSync(outFile, 'utf8')) as ProbeFile;
    const steps = probe.steps.map((s) => ({
      name: s.name,
      startSeconds: round(s.startedAt, 2),
      endSeconds: round(s.endedAt, 2),
      seconds: round(s.endedAt - s.startedAt, 2),
      note: `${s.action.replace(/^aws:/, '')}${s.status === 'Success' ? '' : ` ${s.status}`}${s.attempts > 1 ? `, ${s.attempts} attempts` : ''}`,
    }));
    return {
      ours: {
        steps,
        status: probe.failureMessage ? `${probe.status}: ${probe.failureMessage}` : probe.status,
        accessStep: probe.accessStep,
        totalSeconds: round(probe.modeledSeconds, 2),
        instanceRunningSeconds: probe.instanceRunningSeconds === null ? null : round(probe.instanceRunningSeconds, 2),
        work: probe.work.map((w) => ({ ...w, startedAt: round(w.startedAt, 2), completesAt: round(w.completesAt, 2) })),
        keyType: probe.keyType,
        end,
      },
      timeToAccessSeconds: probe.status === 'Success' && probe.timeToAccessSeconds !== null ? round(probe.timeToAccessSeconds, 2) : null,
      apiCalls: summarizeCalls(probe.calls),
      leftovers: probe.leftovers,
      wallSeconds: round(probe.wallSeconds, 1),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
