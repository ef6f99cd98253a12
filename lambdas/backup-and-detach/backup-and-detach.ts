/**
 * Step `backupAndDetachRoot`: start the backup (a snapshot is point-in-time at the call, so no
 * wait for completion), record it, then detach the root volume from the stopped instance.
 */
import { DetachVolumeCommand } from '@aws-sdk/client-ec2';
import { backupRunning, startBackup, type BackupDeps, type BackupResult } from '@common/backup';
import { describeInstance, describeVolume, liveAttachment } from '@common/ec2';
import { UnexpectedStateError } from '@common/errors';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';

export type { BackupDeps, BackupResult };

export async function backupAndDetach(deps: BackupDeps, input: StepInput): Promise<BackupResult> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  // Online and UserData never move the root volume: the backup only (UserData: before its first stop).
  if (plan.method.chosen === 'Online' || plan.method.chosen === 'UserData') return backupRunning(deps, plan, input);
  const instance = await describeInstance(deps.ec2, input.instanceId);
  const state = instance.State?.Name;
  const volumeId = plan.instance.rootVolumeId;
  const volume = await describeVolume(deps.ec2, volumeId);
  const attachment = liveAttachment(volume);
  if (attachment && attachment.instanceId !== input.instanceId) {
    throw new UnexpectedStateError(`Volume ${volumeId} is attached to ${attachment.instanceId}, not to ${input.instanceId}`);
  }
  if (attachment?.state === 'attached' && state !== 'stopped') {
    throw new UnexpectedStateError(`Instance ${input.instanceId} is ${state}; it must be stopped before its root volume is detached`);
  }

  const backupId = await startBackup(deps, plan, input);
  if (backupId !== plan.created.backupId) {
    await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
      p.created.backupId = backupId;
    });
  }

  if (attachment?.state === 'attached' || attachment?.state === 'attaching') {
    // InstanceId is passed too: the detach must fail rather than detach from anything else.
    await deps.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: input.instanceId }));
    deps.log.info('detach requested', { volumeId, instanceId: input.instanceId });
  }
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    p.progress.phase = 'root-detached';
  });
  return { backupId, backupMethod: plan.inputs.backupMethod };
}

