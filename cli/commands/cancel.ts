/**
 * `ec2-reset-access cancel <execution-id>`: StopAutomationExecution (Type Cancel), then follow the
 * execution to its end and the restore execution its cancel path started (the output
 * `startRestore.RestoreExecutionId`, runbooks/reset-access.yaml). Exit 0 once restore succeeded
 * (or when nothing needed restoring), 5 when it did not.
 */
import { GetAutomationExecutionCommand, StopAutomationExecutionCommand } from '@aws-sdk/client-ssm';
import { documentStepNames, follow } from '../follow';
import { judge } from '../execution';
import { EXIT, UsageError, type ExitCode } from '../exit-codes';
import type { CommonOptions, Io } from '../io';
import { followRestore, type RestoreResult } from './outcome';
import { EXECUTION_ID } from './status';

export async function cancel(executionId: string, o: CommonOptions, io: Io): Promise<ExitCode> {
  if (!EXECUTION_ID.test(executionId)) throw new UsageError(`"${executionId}" is not an execution id (a UUID)`);
  const { ssm } = io.clients(o);
  const got = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }));
  const doc = got.AutomationExecution?.DocumentName;
  await ssm.send(new StopAutomationExecutionCommand({ AutomationExecutionId: executionId, Type: 'Cancel' }));
  if (!o.json) io.out(`Cancel requested for ${executionId}${doc ? ` (${doc})` : ''}; following it to its end\n`);
  const stepNames = doc ? await documentStepNames(ssm, doc, got.AutomationExecution?.DocumentVersion).catch(() => undefined) : undefined;
  const snap = await follow({ ssm, executionId, stepNames, renderer: o.json ? 'silent' : io.renderer, intervalMs: io.pollMs, now: io.now });
  const outcome = judge(snap);
  let restore: RestoreResult | undefined;
  let code: ExitCode;
  let text: string;
  if (outcome.restoreExecutionId) {
    restore = await followRestore(ssm, outcome.restoreExecutionId, o, io);
    code = restore.status === 'Success' ? EXIT.ok : EXIT.restoreFailed;
    text =
      restore.status === 'Success'
        ? `Cancelled; restore execution ${restore.executionId} put the instance back.`
        : `Cancelled, but restore execution ${restore.executionId} ended ${restore.status}${restore.failedStep ? ` at ${restore.failedStep.name}: ${restore.failedStep.message ?? ''}` : ''}: the instance needs attention.`;
  } else if (outcome.kind === 'cancelled' && !outcome.failedStep && snap.steps.every((s) => s.StepName === 'preflight')) {
    code = EXIT.ok;
    text = 'Cancelled during preflight: nothing had changed.';
  } else {
    code = outcome.kind === 'success' ? EXIT.ok : outcome.kind === 'failed-restored' || outcome.kind === 'refused' ? EXIT.ok : outcome.kind === 'preflight-failed' ? EXIT.error : EXIT.restoreFailed;
    text = `The execution ended ${outcome.status} (${outcome.kind}) without starting a restore execution.`;
  }
  if (o.json) io.out(`${JSON.stringify({ executionId, status: outcome.status, outcome: outcome.kind, restoreExecutionId: outcome.restoreExecutionId, restore, exitCode: code })}\n`);
  else io.out(`${text}\n`);
  return code;
}
