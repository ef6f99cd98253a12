/**
 * Step `releaseFromHelper`: wait (bounded) for the inject-key command to reach a terminal status,
 * read its JSON report (the last line of its standard output), throw if it failed, mark the key
 * injected, detach the volume from the helper.
 *
 * The wait makes the step safe right after SendCommand, whatever the runbook waited before it: Run
 * Command is eventually consistent (GetCommandInvocation in the SSM API model, botocore
 * data/ssm/2014-11-06), so the invocation may not exist yet (InvocationDoesNotExist) or still be
 * Pending, InProgress, Delayed or Cancelling. The bound is COMMAND_WAIT_MS per invocation of the
 * step, within the function's timeout (lib/functions.ts).
 */
import { DetachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, liveAttachment, pollUntil, realClock, type Clock } from '@common/ec2';
import { InjectionFailedError, isAwsError, NotReadyError, PlanError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import { parseReport, type InjectReport } from '@common/report';
import type { StepInput } from '@common/validation';

export { parseReport };

export interface ReleaseDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
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
const POLL_MS = 5_000;
/** GetCommandInvocation statuses after which the command no longer runs (the SSM API model's CommandInvocationStatus; Cancelling is not one). */
const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];

type Invocation = { Status?: string; StandardOutputContent?: string };

/** The invocation once it has ended; throws NotReadyError naming the last status after the bound. */
async function endedInvocation(deps: ReleaseDeps, commandId: string, helperId: string): Promise<Invocation> {
  const budget = deps.commandWaitMs ?? COMMAND_WAIT_MS;
  let last = 'not yet visible (InvocationDoesNotExist)';
  try {
    return await pollUntil(deps.clock ?? realClock, `the inject-key command ${commandId} to end`, budget, POLL_MS, async () => {
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
        'the root volume stays on the helper',
    );
  }
}

export interface ReleaseResult {
  readonly usersChanged: string[];
  readonly filesChanged: string[];
  readonly report: InjectReport;
}

export async function releaseFromHelper(deps: ReleaseDeps, input: StepInput): Promise<ReleaseResult> {
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(deps.ssm, instanceId, executionId);
  // Online (step reportOnline): the command ran on the instance itself, and nothing is detached.
  const online = plan.method.chosen === 'Online';
  const helperId = online ? instanceId : plan.created.helperInstanceId;
  const commandId = plan.created.commandId;
  if (!helperId || !commandId) throw new PlanError(`The plan of ${instanceId} has no helper or no command: injectKey did not complete`);

  const inv = await endedInvocation(deps, commandId, helperId);
  const report = parseReport(inv.StandardOutputContent);
  if (inv.Status !== 'Success' || report?.status !== 'ok') {
    const why = report?.error ?? (report ? 'the report says error' : 'no JSON report on its standard output');
    throw new InjectionFailedError(
      `The inject-key command ${commandId} on helper ${helperId} ended ${inv.Status ?? 'with no status'}: ${why}. The root volume goes back unchanged by this step.`,
    );
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.keyInjected = true;
    if (online) p.progress.phase = 'key-injected';
  });
  const changed = report.changes.filter((c) => c.action !== 'already-present');
  const result = {
    usersChanged: [...new Set(changed.map((c) => c.user))],
    filesChanged: [...new Set(changed.map((c) => c.file))],
    report,
  };
  if (online) return result;

  const volumeId = plan.instance.rootVolumeId;
  const attachment = liveAttachment(await describeVolume(deps.ec2, volumeId));
  if (attachment?.instanceId === helperId && attachment.state !== 'detaching') {
    await deps.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId }));
    deps.log.info('detach from helper requested', { volumeId, helperId });
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'released-from-helper';
  });
  return result;
}
