/**
 * Reading an Automation execution and judging how it ended. The status names are the
 * AutomationExecutionStatus enum of the SSM API model (botocore data/ssm/2014-11-06/service-2.json),
 * which is also the type of StepExecution.StepStatus.
 */
import {
  DescribeAutomationStepExecutionsCommand,
  GetAutomationExecutionCommand,
  type AutomationExecution,
  type SSMClient,
  type StepExecution,
} from '@aws-sdk/client-ssm';

/** Statuses after which an execution or a step changes no more. */
export const TERMINAL = new Set([
  'Success',
  'TimedOut',
  'Cancelled',
  'Failed',
  'CompletedWithSuccess',
  'CompletedWithFailure',
  'Rejected',
  'ChangeCalendarOverrideRejected',
  'Exited',
]);
const FAILED = new Set(['Failed', 'TimedOut', 'Cancelled', 'CompletedWithFailure', 'Rejected', 'Exited']);

export function isTerminal(status: string | undefined): boolean {
  return status !== undefined && TERMINAL.has(status);
}

/** The steps of ResetAccess that undo a failure or a cancel (runbooks/reset-access.yaml). */
export const RESTORE_STEPS = ['restore', 'cleanupAfterRestore'];
export const CANCEL_STEP = 'startRestore';
/** The step whose failure means "refused, nothing changed" (it has no onFailure: the run ends there). */
export const PREFLIGHT_STEP = 'preflight';

export interface Snapshot {
  readonly execution: AutomationExecution;
  readonly steps: StepExecution[];
}

/** GetAutomationExecution and every page of DescribeAutomationStepExecutions. */
export async function readExecution(ssm: SSMClient, id: string): Promise<Snapshot> {
  const got = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id }));
  const steps: StepExecution[] = [];
  let token: string | undefined;
  do {
    const page = await ssm.send(new DescribeAutomationStepExecutionsCommand({ AutomationExecutionId: id, NextToken: token, MaxResults: 50 }));
    steps.push(...(page.StepExecutions ?? []));
    token = page.NextToken;
  } while (token);
  return { execution: got.AutomationExecution ?? {}, steps };
}

/** One output of the execution (Automation gives each output as a list of strings). */
export function outputOf(execution: AutomationExecution, name: string): string | undefined {
  const v = execution.Outputs?.[name]?.[0];
  // What Automation shows for an output no step has set is not settled by a source we hold
  // (local/README.md); callers check the value's shape (an id's pattern, JSON) before using it.
  return v === undefined || v === '' ? undefined : v;
}

export type OutcomeKind = 'success' | 'refused' | 'preflight-failed' | 'failed-restored' | 'restore-failed' | 'cancelled' | 'running';

/** Preflight's refusals and bad-input errors (lambdas/common/errors.ts), by their message or error name. */
export function isRefusal(message: string | undefined): boolean {
  return /\bRefused: |\b(RefusedError|LockHeldError|InvalidInputError|InvalidPublicKeyError)\b/.test(message ?? '');
}

export interface StepLine {
  readonly name: string;
  readonly status: string;
  readonly elapsedMs?: number;
  readonly message?: string;
}

/**
 * What the restore step reported: its `Payload` output, the JSON of what the restore Lambda
 * returned (lambdas/restore/handler.ts RestoreOutput: Restored, Message, ForcedDetach; AWS documents `Payload` as an output of
 * aws:invokeLambdaFunction, "The JSON representation of the object returned by the Lambda
 * function", https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html).
 */
export interface RestoreReport {
  readonly restored?: boolean;
  readonly message?: string;
  readonly forcedDetach?: boolean;
}

export function restoreReportOf(step: StepExecution | undefined): RestoreReport | undefined {
  const text = step?.Outputs?.Payload?.[0];
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    return {
      ...(typeof v.Restored === 'boolean' ? { restored: v.Restored } : {}),
      ...(typeof v.Message === 'string' ? { message: v.Message } : {}),
      ...(typeof v.ForcedDetach === 'boolean' ? { forcedDetach: v.ForcedDetach } : {}),
    };
  } catch {
    return undefined;
  }
}

export interface Outcome {
  readonly kind: OutcomeKind;
  readonly restoreReport?: RestoreReport;
  readonly status: string;
  readonly failedStep?: StepLine;
  readonly restoreSteps: StepLine[];
  readonly restoreExecutionId?: string;
  readonly message?: string;
}

export function stepLine(s: StepExecution): StepLine {
  const start = s.ExecutionStartTime?.getTime();
  const end = s.ExecutionEndTime?.getTime();
  return {
    name: s.StepName ?? '?',
    status: s.StepStatus ?? '?',
    ...(start !== undefined && end !== undefined ? { elapsedMs: Math.max(0, end - start) } : {}),
    ...(s.FailureMessage ? { message: s.FailureMessage } : {}),
  };
}

/**
 * How a ResetAccess execution ended. Automation reports an execution whose critical step failed
 * as Failed even when its onFailure path succeeded (isCritical: "If a step with this designation
 * fails, then Automation reports the final status of the Automation as Failed",
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html), so the
 * restore steps' own statuses say what restore did.
 */
export function judge(snap: Snapshot): Outcome {
  const status = snap.execution.AutomationExecutionStatus ?? 'unknown';
  const byName = (n: string): StepExecution | undefined => [...snap.steps].reverse().find((s) => s.StepName === n);
  const restoreSteps = RESTORE_STEPS.map(byName).filter((s): s is StepExecution => !!s).map(stepLine);
  const failed = snap.steps.find(
    (s) => FAILED.has(s.StepStatus ?? '') && !RESTORE_STEPS.includes(s.StepName ?? '') && s.StepName !== CANCEL_STEP,
  );
  const failedStep = failed ? stepLine(failed) : undefined;
  const report = restoreReportOf(byName('restore'));
  const base = { status, restoreSteps, ...(report ? { restoreReport: report } : {}), ...(failedStep ? { failedStep } : {}), ...(snap.execution.FailureMessage ? { message: snap.execution.FailureMessage } : {}) };
  if (!isTerminal(status)) return { kind: 'running', ...base };
  if (status === 'Cancelled' || byName(CANCEL_STEP)) {
    const rid = outputOf(snap.execution, `${CANCEL_STEP}.RestoreExecutionId`);
    return { kind: 'cancelled', ...base, ...(rid && /^[0-9a-f-]{36}$/.test(rid) ? { restoreExecutionId: rid } : {}) };
  }
  if (status === 'Success' && !failed) return { kind: 'success', ...base };
  // A refusal is preflight's own verdict, its message marked `Refused:` (lambdas/preflight,
  // refuse()) or a bad input; any other preflight failure (a timeout, a throttled call) is not.
  if (failed?.StepName === PREFLIGHT_STEP) return { kind: isRefusal(failed.FailureMessage) ? 'refused' : 'preflight-failed', ...base };
  const restore = byName('restore');
  if (restore?.StepStatus === 'Success') return { kind: 'failed-restored', ...base };
  return { kind: 'restore-failed', ...base };
}
