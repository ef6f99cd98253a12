/**
 * The self-test's report: what it did, how long each ResetAccess step took on AWS
 * (DescribeAutomationStepExecutions' ExecutionStartTime and ExecutionEndTime), the time to access
 * it measured, its own API calls that failed or were retried, and what it cleaned up. `--json`
 * prints it as one object whose `run` has the shape of one method's run in
 * bench/results/latest.json (bench/result.ts OursRun), so that real figures sit beside the
 * modeled ones (docs/benchmarks.md, "Real figures from the self-test").
 */
import type { StepExecution } from '@aws-sdk/client-ssm';
import type { ApiCalls, TimelineStep } from '../../bench/result';
import { formatDuration } from '../format';
import type { OperationCount } from './metrics';
import type { CleanupResult, Made } from './resources';

/** The self-test's own phases, in order. */
export const PHASES = ['network', 'security-group', 'instance-profile', 'launch', 'wait-running', 'wait-online', 'reset', 'access', 'cleanup'] as const;
export type Phase = (typeof PHASES)[number];

export interface PhaseRecord {
  readonly phase: Phase;
  readonly seconds: number;
  readonly status: 'ok' | 'failed' | 'skipped';
  readonly note?: string;
}

/** One method's run as bench/result.ts OursRun has it, with measured (not modeled) times. */
export interface MeasuredRun {
  readonly steps: readonly TimelineStep[];
  readonly status: string;
  readonly accessStep: string;
  readonly totalSeconds: number | null;
  readonly keyType: string;
  /** Where the figures come from: measured on AWS (`measured`), not an end of the latency table. */
  readonly end: 'measured';
  readonly instanceRunningSeconds: number | null;
  readonly work: readonly never[];
}

export interface SelftestReport {
  readonly kind: 'ec2-reset-access selftest';
  readonly version: 1;
  readonly runId: string;
  readonly region: string;
  readonly generatedAt: string;
  readonly methodAsked: string;
  readonly methodChosen: string | null;
  readonly instanceId: string | null;
  readonly instanceType: string;
  readonly architecture: string;
  readonly executionId: string | null;
  readonly ok: boolean;
  readonly failure: { readonly phase: Phase; readonly message: string } | null;
  readonly phases: readonly PhaseRecord[];
  /** The runbook's run, its steps timed by Automation itself. */
  readonly run: MeasuredRun | null;
  /** From the start of the ResetAccess execution to the first successful access check. */
  readonly timeToAccessSeconds: number | null;
  readonly accessCheck: { readonly kind: 'ssh' | 'run-command' | 'none'; readonly why: string; readonly ok: boolean; readonly attempts: number };
  /** The self-test's own API calls (not the runbook's), bench/result.ts ApiCalls. */
  readonly apiCalls: ApiCalls;
  readonly failedOrRetried: Readonly<Record<string, OperationCount>>;
  readonly cleanup: { readonly kept: boolean; readonly removed: readonly Made[]; readonly notRemoved: CleanupResult['notRemoved']; readonly refused: CleanupResult['refused']; readonly howToRemove?: string };
  readonly notMeasured: ReadonlyArray<{ readonly field: string; readonly reason: string }>;
}

/** The step that ends with access back, per method (runbooks/reset-access.yaml). */
export const ACCESS_STEP: Record<string, string> = {
  VolumeSwap: 'waitForInstanceRunning',
  Online: 'waitForOnlineInjection',
  UserData: 'waitRunningAfterUserData',
};

const round = (n: number): number => Math.round(n * 100) / 100;

/** Automation's own step times, relative to the execution's start. */
export function timeline(steps: readonly StepExecution[], executionStart: Date | undefined): TimelineStep[] {
  const t0 = executionStart?.getTime() ?? Math.min(...steps.map((s) => s.ExecutionStartTime?.getTime() ?? Infinity));
  return steps
    .filter((s) => s.ExecutionStartTime)
    .map((s) => {
      const start = (s.ExecutionStartTime as Date).getTime();
      const end = s.ExecutionEndTime?.getTime() ?? start;
      return {
        name: s.StepName ?? '?',
        startSeconds: round((start - t0) / 1000),
        endSeconds: round((end - t0) / 1000),
        seconds: round((end - start) / 1000),
        note: `${s.Action ?? ''} ${s.StepStatus ?? ''}`.trim(),
      };
    });
}

export function apiCallsOf(counts: Record<string, OperationCount>): ApiCalls {
  const byAction: Record<string, number> = {};
  const byService: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of Object.entries(counts)) {
    byAction[k] = v.calls;
    const service = k.split(':')[0] as string;
    byService[service] = (byService[service] ?? 0) + v.calls;
    total += v.calls;
  }
  return { total, byAction, byService };
}

export function failedOrRetried(counts: Record<string, OperationCount>): Record<string, OperationCount> {
  return Object.fromEntries(Object.entries(counts).filter(([, v]) => v.failed > 0 || v.attempts > v.calls || v.errors.length > 0));
}

/** The report as a person reads it. */
export function reportLines(r: SelftestReport): string[] {
  const out: string[] = [];
  out.push(`Self-test ${r.runId} in ${r.region}: ${r.ok ? 'PASSED' : 'FAILED'}${r.failure ? ` at ${r.failure.phase}: ${r.failure.message}` : ''}`);
  out.push(`  instance ${r.instanceId ?? '(none launched)'} (${r.instanceType}, ${r.architecture}); method asked ${r.methodAsked}${r.methodChosen ? `, chosen ${r.methodChosen}` : ''}`);
  out.push('  self-test phases:');
  for (const p of r.phases) out.push(`    ${p.phase.padEnd(17)} ${p.status.padEnd(7)} ${formatDuration(p.seconds * 1000)}${p.note ? `  ${p.note}` : ''}`);
  if (r.run) {
    out.push(`  ResetAccess ${r.executionId} (${r.run.status}), each step as Automation timed it:`);
    for (const s of r.run.steps) out.push(`    ${s.name.padEnd(28)} ${String(s.seconds.toFixed(1)).padStart(7)} s  ${s.note}${s.name === r.run.accessStep ? '  (access)' : ''}`);
  }
  out.push(`  access check: ${r.accessCheck.kind} (${r.accessCheck.why}): ${r.accessCheck.ok ? 'ok' : 'not proven'}${r.accessCheck.attempts > 1 ? ` after ${r.accessCheck.attempts} attempts` : ''}`);
  out.push(`  time to access (execution start to the first successful check): ${r.timeToAccessSeconds === null ? 'not measured' : `${r.timeToAccessSeconds.toFixed(1)} s`}`);
  const bad = Object.entries(r.failedOrRetried);
  out.push(`  API calls of the self-test: ${r.apiCalls.total}; failed or retried: ${bad.length === 0 ? 'none' : ''}`);
  for (const [k, v] of bad) out.push(`    ${k}: ${v.calls} calls, ${v.attempts} attempts, ${v.failed} failed${v.errors.length ? ` (${v.errors.join(', ')})` : ''}`);
  if (r.cleanup.kept) {
    out.push(`  kept for inspection (--keep): ${r.cleanup.howToRemove ?? ''}`);
  } else {
    out.push(`  cleaned up: ${r.cleanup.removed.length === 0 ? 'nothing to remove' : r.cleanup.removed.map((m) => `${m.kind} ${m.id}`).join(', ')}`);
    for (const n of r.cleanup.notRemoved) out.push(`  NOT REMOVED: ${n.kind} ${n.id}: ${n.why}`);
    for (const n of r.cleanup.refused) out.push(`  left alone (not this run's): ${n.kind} ${n.id}: ${n.why}`);
    if (r.cleanup.notRemoved.length > 0) out.push(`  retry the removal with: ec2-reset-access selftest --cleanup ${r.runId} --yes --region ${r.region}`);
  }
  for (const n of r.notMeasured) out.push(`  not measured: ${n.field}: ${n.reason}`);
  return out;
}
