/** Step `attachToHelper`: attach the target's root volume to the helper at /dev/sdf. */
import { AttachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, findInstance, liveAttachment } from '@common/ec2';
import { PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import { isOursWithRole } from '@common/tags';
import type { StepInput } from '@common/validation';

export const HELPER_DEVICE_NAME = '/dev/sdf';

export interface AttachDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export async function attachToHelper(deps: AttachDeps, input: StepInput): Promise<string> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  const helperId = plan.created.helperInstanceId;
  if (!helperId) throw new PlanError(`The plan of ${input.instanceId} has no helper instance: launchHelper did not complete`);
  // The plan is a parameter others may be able to write: attach the root volume only to an
  // instance that is this execution's helper by its tags, not merely because the plan names it.
  const helper = await findInstance(deps.ec2, helperId);
  if (!helper || !isOursWithRole(helper.Tags, input.executionId, 'helper')) {
    throw new UnexpectedStateError(
      `Refusing to attach: instance ${helperId} named in the plan is not tagged as the helper of execution ${input.executionId}`,
    );
  }
  const volumeId = plan.instance.rootVolumeId;
  const volume = await describeVolume(deps.ec2, volumeId);
  const attachment = liveAttachment(volume);
  if (attachment?.instanceId === helperId) {
    deps.log.info('already attached to the helper', { volumeId, helperId });
  } else if (volume.State === 'available' && !attachment) {
    await deps.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId, Device: HELPER_DEVICE_NAME }));
    deps.log.info('attach requested', { volumeId, helperId });
  } else {
    throw new UnexpectedStateError(
      `Volume ${volumeId} is ${volume.State}${attachment ? ` (${attachment.state} to ${attachment.instanceId})` : ''}; it must be available to attach to helper ${helperId}`,
    );
  }
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    p.progress.phase = 'attached-to-helper';
  });
  return HELPER_DEVICE_NAME;
}
