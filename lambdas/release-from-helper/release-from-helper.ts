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
import type { SSMClient } from '@aws-sdk/client-ssm';
import { changesOf, COMMAND_WAIT_MS, endedInvocation, okReport } from '@common/command-wait';
import { describeVolume, liveAttachment, type Clock } from '@common/ec2';
import { PlanError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import { parseReport, type InjectReport } from '@common/report';
import type { StepInput } from '@common/validation';

export { parseReport, COMMAND_WAIT_MS };

export interface ReleaseDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default - the real clock */
  readonly clock?: Clock;
  /** @default COMMAND_WAIT_MS */
  readonly commandWaitMs?: number;
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
  const report = okReport(inv, commandId, helperId, 'The root volume goes back unchanged by this step.');
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.keyInjected = true;
    if (online) p.progress.phase = 'key-injected';
  });
  const result = { ...changesOf(report), report };
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
