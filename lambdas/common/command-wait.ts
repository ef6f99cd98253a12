/**
 * Waiting for the inject-key command to end and reading its report: shared by releaseFromHelper
 * and reportOnline (lambdas/release-from-helper) and by injectKeyOnline (lambdas/inject-key),
 * which confirms the key on the instance itself before its step ends.
 *
 * Run Command is eventually consistent (GetCommandInvocation in the SSM API model, botocore
 * data/ssm/2014-11-06): the invocation may not exist yet (InvocationDoesNotExist) or still be
 * Pending, InProgress, Delayed or Cancelling.
 */
import { GetCommandInvocationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { pollUntil, realClock, type Clock } from '@common/ec2';
import { InjectionFailedError, isAwsError, NotReadyError } from '@common/errors';
import { parseReport, type InjectReport } from '@common/report';

export interface CommandWaitDeps {
  readonly ssm: SSMClient;
  /** @default - the real clock */
  readonly clock?: Clock;
  /** @default COMMAND_WAIT_MS */
  readonly commandWaitMs?: number;
}

/**
 * The longest this step waits for the command to end, per invocation: 180 s, polled every 5 s,
 * inside the function's 240 s timeout (under the 300 s of an aws:invokeLambdaFunction step).
 */
export const COMMAND_WAIT_MS = 180_000;
export const POLL_MS = 5_000;
/** GetCommandInvocation statuses after which the command no longer runs (the SSM API model's CommandInvocationStatus; Cancelling is not one). */
const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];

export type Invocation = { Status?: string; StandardOutputContent?: string };

export interface EndedOptions {
  /** How often to ask (default POLL_MS). */
  readonly pollMs?: number;
  /** What stays as it is when the bound passes, for the error message. */
  readonly afterTimeout?: string;
}

/** The invocation once it has ended; throws NotReadyError naming the last status after the bound. */
export async function endedInvocation(deps: CommandWaitDeps, commandId: string, helperId: string, options: EndedOptions = {}): Promise<Invocation> {
  const budget = deps.commandWaitMs ?? COMMAND_WAIT_MS;
  let last = 'not yet visible (InvocationDoesNotExist)';
  try {
    return await pollUntil(deps.clock ?? realClock, `the inject-key command ${commandId} to end`, budget, options.pollMs ?? POLL_MS, async () => {
      try {
        const inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
        last = inv.Status ?? 'no status';
        return TERMINAL.includes(inv.Status ?? '') ? inv : undefined;
      } catch (err) {
        if (isAwsError(err, 'InvocationDoesNotExist')) return undefined;
        throw err;
      }
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    throw new NotReadyError(
      `The inject-key command ${commandId} on helper ${helperId} had not ended after ${Math.round(budget / 1000)} s (last status: ${last}); ` +
        (options.afterTimeout ?? 'the root volume stays on the helper'),
    );
  }
}

/** The report of an ended invocation; throws InjectionFailedError unless the command succeeded and its report says ok. */
export function okReport(inv: Invocation, commandId: string, targetId: string, where: string): InjectReport {
  const report = parseReport(inv.StandardOutputContent);
  if (inv.Status !== 'Success' || report?.status !== 'ok') {
    const why = report?.error ?? (report ? 'the report says error' : 'no JSON report on its standard output');
    throw new InjectionFailedError(`The inject-key command ${commandId} on helper ${targetId} ended ${inv.Status ?? 'with no status'}: ${why}. ${where}`);
  }
  return report;
}

/** The users and files the report says were changed (an already present key changes nothing). */
export function changesOf(report: InjectReport): { usersChanged: string[]; filesChanged: string[] } {
  const changed = report.changes.filter((c) => c.action !== 'already-present');
  return { usersChanged: [...new Set(changed.map((c) => c.user))], filesChanged: [...new Set(changed.map((c) => c.file))] };
}
