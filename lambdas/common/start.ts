/**
 * The start at the end of a volume-swap run, shared by `startInstance` (Linux) and `startWindows`
 * (issue 15): the root volume must be attached to the instance again, DeleteOnTermination goes
 * back as it was, and the instance is started when the caller's rule says so. The plan's phase
 * becomes `started`.
 */
import { ModifyInstanceAttributeCommand, StartInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, describeVolume, liveAttachment, realClock, type Clock } from './ec2';
import { UnexpectedStateError } from './errors';
import type { Logger } from './log';
import { updatePlan, type Plan } from './plan';

export interface StartDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default realClock */
  readonly clock?: Clock;
}

/** What the shared start did: `requested` StartInstances now, found it `already` pending or running, or `left` it stopped. */
export type StartOutcome = 'requested' | 'already' | 'left';

export interface StartRule {
  /** Start the instance (true), or leave it as it is (false: it was stopped before the run). */
  readonly start: boolean;
  /**
   * Record in the plan, before StartInstances, when it was requested (`progress.startRequestedAt`):
   * the Windows password step accepts only password data made after it (review W1).
   */
  readonly recordStartTime?: boolean;
  /** Says why the instance must be stopped for the start, in the error for any other state. */
  readonly notStoppedReason: string;
  /** The log line of the start request. */
  readonly logLine: string;
}

export async function putBackAndStart(deps: StartDeps, plan: Plan, rule: StartRule): Promise<StartOutcome> {
  const { instanceId, executionId } = plan;
  const { rootVolumeId, rootDeviceName } = plan.instance;
  const attachment = liveAttachment(await describeVolume(deps.ec2, rootVolumeId));
  if (attachment?.instanceId !== instanceId || attachment.state !== 'attached') {
    throw new UnexpectedStateError(
      `Volume ${rootVolumeId} is not attached to ${instanceId} (${attachment ? `${attachment.state} to ${attachment.instanceId}` : 'not attached'}); it must be before the instance starts`,
    );
  }
  await deps.ec2.send(
    new ModifyInstanceAttributeCommand({
      InstanceId: instanceId,
      BlockDeviceMappings: [{ DeviceName: rootDeviceName, Ebs: { DeleteOnTermination: plan.instance.deleteOnTermination } }],
    }),
  );
  let outcome: StartOutcome = 'left';
  if (rule.start) {
    const state = (await describeInstance(deps.ec2, instanceId)).State?.Name;
    if (state === 'stopped') {
      if (rule.recordStartTime) {
        // Before the call, so that everything the boot makes is later than this time. A retry of
        // the step records its own request time again: still before its own start.
        const at = new Date((deps.clock ?? realClock).now()).toISOString();
        await updatePlan(deps.ssm, instanceId, executionId, (p) => {
          p.progress.startRequestedAt = at;
        });
      }
      await deps.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
      deps.log.info(rule.logLine, { instanceId });
      outcome = 'requested';
      if (rule.recordStartTime) {
        // Only now may the instance boot with what the helper wrote: restore reverts until then.
        await updatePlan(deps.ssm, instanceId, executionId, (p) => {
          p.progress.startAccepted = true;
        });
      }
    } else if (state === 'pending' || state === 'running') {
      outcome = 'already';
    } else {
      throw new UnexpectedStateError(`Instance ${instanceId} is ${state}; ${rule.notStoppedReason}`);
    }
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'started';
  });
  return outcome;
}
