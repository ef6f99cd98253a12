/** How a failed, refused or cancelled run is reported, and its exit code. */
import { GetAutomationExecutionCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { documentStepNames, follow } from '../follow';
import { stepLine, type Outcome, type StepLine } from '../execution';
import { formatDuration } from '../format';
import { EXIT, type ExitCode } from '../exit-codes';
import type { CommonOptions, Io } from '../io';

/** The end of a restore execution (ResetAccess-Restore, started by a cancel). */
export interface RestoreResult {
  readonly executionId: string;
  readonly status: string;
  readonly failedStep?: StepLine;
  readonly message?: string;
}

/** Follows a restore execution to its end, with its own document's steps. */
export async function followRestore(ssm: SSMClient, executionId: string, o: CommonOptions, io: Io): Promise<RestoreResult> {
  const got = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }));
  const doc = got.AutomationExecution?.DocumentName;
  if (!o.json) io.out(`Following the restore execution ${executionId}${doc ? ` (${doc})` : ''}\n`);
  const stepNames = doc ? await documentStepNames(ssm, doc, got.AutomationExecution?.DocumentVersion).catch(() => undefined) : undefined;
  const snap = await follow({ ssm, executionId, stepNames, renderer: o.json ? 'silent' : io.renderer, intervalMs: io.pollMs, now: io.now });
  const failed = snap.steps.find((s) => ['Failed', 'TimedOut', 'Cancelled'].includes(s.StepStatus ?? ''));
  return {
    executionId,
    status: snap.execution.AutomationExecutionStatus ?? 'unknown',
    ...(failed ? { failedStep: stepLine(failed) } : {}),
    ...(snap.execution.FailureMessage ? { message: snap.execution.FailureMessage } : {}),
  };
}

export function exitCodeOf(outcome: Outcome, restore?: RestoreResult): ExitCode {
  switch (outcome.kind) {
    case 'success':
      return EXIT.ok;
    case 'refused':
      return EXIT.refused;
    case 'preflight-failed':
      return EXIT.error;
    case 'failed-restored':
      return EXIT.failedRestored;
    case 'restore-failed':
      return EXIT.restoreFailed;
    case 'cancelled':
      return restore?.status === 'Success' ? EXIT.failedRestored : EXIT.restoreFailed;
    case 'running':
      return EXIT.error;
  }
}

function stepText(s: StepLine): string {
  return `${s.name} ${s.status}${s.elapsedMs !== undefined ? ` after ${formatDuration(s.elapsedMs)}` : ''}${s.message ? `: ${s.message}` : ''}`;
}

/** The lines a person reads after a run that did not succeed. */
export function describeOutcome(outcome: Outcome, restore: RestoreResult | undefined, instanceId: string): string {
  const lines: string[] = [];
  if (outcome.kind === 'refused') {
    lines.push(`Refused, nothing changed: ${outcome.failedStep?.message ?? outcome.message ?? 'preflight failed'}`);
    return `${lines.join('\n')}\n`;
  }
  if (outcome.kind === 'preflight-failed') {
    lines.push(
      `Preflight failed (not a refusal): ${outcome.failedStep?.message ?? outcome.message ?? 'no message'}. It stopped before the instance was stopped or detached; see ec2-reset-access status ${instanceId} for a lock left behind.`,
    );
    return `${lines.join('\n')}\n`;
  }
  if (outcome.kind === 'cancelled') {
    lines.push(`The run was cancelled (${outcome.status}).`);
    if (!outcome.restoreExecutionId) {
      lines.push(
        `No restore execution was started: restore the instance with`,
        `  aws ssm start-automation-execution --document-name ResetAccess-Restore --parameters InstanceId=${instanceId},ExecutionId=<execution id>`,
      );
    } else if (restore) {
      lines.push(
        restore.status === 'Success'
          ? `Restore execution ${restore.executionId}: Success, the instance is back as it was.`
          : `Restore execution ${restore.executionId}: ${restore.status}${restore.failedStep ? `, ${stepText(restore.failedStep)}` : ''}${restore.message ? ` (${restore.message})` : ''}. The instance needs attention.`,
      );
    }
    return `${lines.join('\n')}\n`;
  }
  lines.push(`The run failed${outcome.failedStep ? ` at ${stepText(outcome.failedStep)}` : `: ${outcome.message ?? outcome.status}`}`);
  if (outcome.restoreSteps.length === 0) lines.push('Restore did not run.');
  for (const s of outcome.restoreSteps) lines.push(`  ${stepText(s)}`);
  if (outcome.restoreReport?.message) lines.push(`Restore reported: ${outcome.restoreReport.message}`);
  if (outcome.restoreReport?.forcedDetach) lines.push('The root volume was detached from the helper with Force: check its filesystem.');
  lines.push(
    outcome.kind === 'failed-restored'
      ? 'Restore put the root volume back and the instance in its original state.'
      : 'Restore did not finish: the instance needs attention (see the restore step above; ec2-reset-access status ' + instanceId + ').',
  );
  return `${lines.join('\n')}\n`;
}
