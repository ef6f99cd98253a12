/**
 * Step `releaseWindows` (issue 15): wait (bounded) for the windows-reset command to end, read its
 * JSON report (the last line of its standard output), throw if it failed (the runbook restores: the
 * script writes nothing when it refuses), mark the change made, detach the volume from the helper.
 * The wait is the same as releaseFromHelper's: Run Command is eventually consistent, so the
 * invocation may not exist yet (InvocationDoesNotExist) or still be Pending/InProgress/Delayed/
 * Cancelling (GetCommandInvocation, botocore data/ssm/2014-11-06/service-2.json).
 */
import { DetachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, liveAttachment, pollUntil, realClock, type Clock } from '@common/ec2';
import { InjectionFailedError, isAwsError, NotReadyError, PlanError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';
import { parseWindowsReport, type WindowsReport } from '@common/windows';

export interface WindowsReleaseDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default realClock */
  readonly clock?: Clock;
  /** @default COMMAND_WAIT_MS */
  readonly commandWaitMs?: number;
}

/** The longest this step waits for the command, per invocation (inside the function's 240 s timeout). */
export const COMMAND_WAIT_MS = 180_000;
const POLL_MS = 5_000;
/** CommandInvocationStatus values after which the command no longer runs (Cancelling is not one). */
const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];

export interface WindowsReleaseResult {
  readonly report: WindowsReport;
  readonly commandId: string;
  readonly helperId: string;
}

export async function releaseWindows(deps: WindowsReleaseDeps, input: StepInput): Promise<WindowsReleaseResult> {
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(deps.ssm, instanceId, executionId);
  const helperId = plan.created.helperInstanceId;
  const commandId = plan.created.commandId;
  if (!helperId || !commandId) throw new PlanError(`The plan of ${instanceId} has no helper or no command: resetWindows did not complete`);

  let last = 'not yet visible (InvocationDoesNotExist)';
  const budget = deps.commandWaitMs ?? COMMAND_WAIT_MS;
  let inv: { Status?: string; StandardOutputContent?: string };
  try {
    inv = await pollUntil(deps.clock ?? realClock, `the windows-reset command ${commandId} to end`, budget, POLL_MS, async () => {
      try {
        const got = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
        last = got.Status ?? 'no status';
        return TERMINAL.includes(got.Status ?? '') ? got : undefined;
      } catch (err) {
        if (isAwsError(err, 'InvocationDoesNotExist')) return undefined;
        throw err;
      }
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    throw new NotReadyError(`The windows-reset command ${commandId} on helper ${helperId} had not ended after ${Math.round(budget / 1000)} s (last status: ${last}); the root volume stays on the helper`);
  }
  const report = parseWindowsReport(inv.StandardOutputContent);
  if (inv.Status !== 'Success' || report?.status !== 'ok') {
    const why = report?.error ?? (report ? 'the report says error' : 'no JSON report on its standard output');
    throw new InjectionFailedError(`The windows-reset command ${commandId} on helper ${helperId} ended ${inv.Status ?? 'with no status'}: ${why}. The root volume goes back to the instance`);
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.keyInjected = true;
  });
  deps.log.info('windows-reset report', { instanceId, agent: report.agent, agentVersion: report.agentVersion, changes: report.changes.length });

  const volumeId = plan.instance.rootVolumeId;
  const attachment = liveAttachment(await describeVolume(deps.ec2, volumeId));
  if (attachment?.instanceId === helperId && attachment.state !== 'detaching') {
    await deps.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId }));
    deps.log.info('detach from helper requested', { volumeId, helperId });
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'released-from-helper';
  });
  return { report, commandId, helperId };
}
