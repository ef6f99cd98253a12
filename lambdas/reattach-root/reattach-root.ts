/** Step `reattachRoot`: attach the root volume back to the original instance at its device name. */
import { AttachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, liveAttachment } from '@common/ec2';
import { UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';

export interface ReattachDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

/** Returns the device name the volume is attached at. */
export async function reattachRoot(deps: ReattachDeps, input: StepInput): Promise<string> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  const { rootVolumeId: volumeId, rootDeviceName: device } = plan.instance;
  const volume = await describeVolume(deps.ec2, volumeId);
  const attachment = liveAttachment(volume);
  if (attachment?.instanceId === input.instanceId) {
    deps.log.info('already attached to the instance', { volumeId, instanceId: input.instanceId });
  } else if (volume.State === 'available' && !attachment) {
    await deps.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: input.instanceId, Device: device }));
    deps.log.info('attach requested', { volumeId, instanceId: input.instanceId, device });
  } else {
    throw new UnexpectedStateError(
      `Volume ${volumeId} is ${volume.State}${attachment ? ` (${attachment.state} to ${attachment.instanceId})` : ''}; it must be available to attach back to ${input.instanceId}`,
    );
  }
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    p.progress.phase = 'root-reattached';
  });
  return device;
}
