/**
 * Step `startInstance`: put DeleteOnTermination back as it was, start the instance if it was
 * running, and say what the user should know (warnings).
 */
import { ModifyInstanceAttributeCommand, StartInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, describeVolume, liveAttachment } from '@common/ec2';
import { UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan, type Plan } from '@common/plan';
import type { StepInput } from '@common/validation';

export interface StartDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface StartResult {
  readonly started: boolean;
  readonly warnings: string[];
}

export async function startInstance(deps: StartDeps, input: StepInput): Promise<StartResult> {
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(deps.ssm, instanceId, executionId);
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

  let started = false;
  const state = (await describeInstance(deps.ec2, instanceId)).State?.Name;
  if (plan.instance.originalState === 'running') {
    if (state === 'stopped') {
      await deps.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
      deps.log.info('start requested', { instanceId });
      started = true;
    } else if (state === 'pending' || state === 'running') {
      started = true;
    } else {
      throw new UnexpectedStateError(`Instance ${instanceId} is ${state}; it must be stopped to be started again`);
    }
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'started';
  });
  return { started, warnings: warningsFor(plan) };
}

/** What changed for the user besides the key. No warning may contain ';', the separator. */
export function warningsFor(plan: Plan): string[] {
  const w: string[] = [];
  const i = plan.instance;
  if (i.originalState === 'running' && i.publicIpAddress && !i.elasticIp) {
    w.push(
      `public IP changed (was ${i.publicIpAddress})`,
    );
  }
  if (plan.inputs.allowEphemeralDataLoss) {
    w.push('data on instance-store volumes was lost when the instance stopped');
  }
  // The kept backup is not a warning: BackupId names it, and the description and README say it
  // stays (and is billed) until deleted. Its line would take the room of the lists within 512.
  return w;
}
