/**
 * Step `startWindows` (issue 15): put DeleteOnTermination back as it was and start the instance,
 * also one that was stopped before the run: the launch agent sets the new Administrator password
 * only at a boot (the runbook's description says so). A stopped instance is stopped again only if
 * the run fails (restore); after a success it runs, and the output says it was stopped before.
 */
import { ModifyInstanceAttributeCommand, StartInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, describeVolume, liveAttachment } from '@common/ec2';
import { PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan, type Plan } from '@common/plan';
import type { StepInput } from '@common/validation';

export interface WindowsStartDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface WindowsStartResult {
  readonly started: boolean;
  readonly warnings: string[];
}

export async function startWindows(deps: WindowsStartDeps, input: StepInput): Promise<WindowsStartResult> {
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(deps.ssm, instanceId, executionId);
  if (plan.instance.platform !== 'windows') throw new PlanError(`The plan of ${instanceId} is not a Windows target's: startWindows does not run for it`);
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
  const state = (await describeInstance(deps.ec2, instanceId)).State?.Name;
  let started = false;
  if (state === 'stopped') {
    await deps.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    deps.log.info('start requested (Windows: the new password is set at this boot)', { instanceId });
    started = true;
  } else if (state !== 'pending' && state !== 'running') {
    throw new UnexpectedStateError(`Instance ${instanceId} is ${state}; it must be stopped to be started`);
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'started';
  });
  return { started, warnings: windowsWarnings(plan) };
}

/** What changed for the user besides the password. No warning contains ';', the separator. */
export function windowsWarnings(plan: Plan): string[] {
  const w: string[] = [];
  const i = plan.instance;
  if (i.originalState === 'stopped') w.push('the instance was stopped before the run and now runs (the password is set at boot): stop it when done')
  else if (i.publicIpAddress && !i.elasticIp) w.push(`public IP changed (was ${i.publicIpAddress})`);
  if (plan.inputs.allowEphemeralDataLoss) w.push('data on instance-store volumes was lost when the instance stopped');
  return w;
}
