/**
 * The backup of a running instance, shared by the online method (taken inside step
 * injectKeyOnline, before the command is sent: lambdas/inject-key) and the user data method
 * (step backupUserData, lambdas/backup-and-detach), and the backup call itself, also used by
 * backupAndDetachRoot on a stopped instance.
 */
import {
  CreateImageCommand,
  CreateSnapshotCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, liveAttachment, pollUntil, realClock, type Clock } from '@common/ec2';
import { NotReadyError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { updatePlan, type Plan } from '@common/plan';
import { ownedFilters, tagSpec } from '@common/tags';
import type { StepInput } from '@common/validation';

export interface BackupDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface BackupResult {
  readonly backupId: string;
  readonly backupMethod: string;
}

/**
 * The online method's backup (inside step injectKeyOnline, before SendCommand), also the user data
 * method's (step backupUserData, before its first stop): the same snapshot or image, taken while the instance
 * runs, and nothing detached. A snapshot of a volume in use is taken at the call
 * ("Snapshots occur asynchronously; the point-in-time snapshot is created immediately",
 * https://docs.aws.amazon.com/ebs/latest/userguide/ebs-creating-snapshot.html); the image uses
 * NoReboot (startBackup), so the instance is never rebooted: this method promises no stop.
 */
export async function backupRunning(deps: BackupDeps, plan: Plan, input: StepInput): Promise<BackupResult> {
  const volumeId = plan.instance.rootVolumeId;
  if (plan.inputs.backupMethod === 'None') {
    // Nothing to back up (also the only choice for an instance-store root: preflight).
    await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
      p.progress.phase = 'backup-started';
    });
    return { backupId: 'none', backupMethod: 'None' };
  }
  // Two reads that do not depend on each other, made together: the volume's attachment and this
  // run's earlier backup, if any (a retried step). Nothing is created before both are known.
  const earlier = findBackup(deps, plan, input);
  earlier.catch(() => undefined);
  const attachment = liveAttachment(await describeVolume(deps.ec2, volumeId));
  if (attachment?.instanceId !== input.instanceId) {
    throw new UnexpectedStateError(`Volume ${volumeId} is not attached to ${input.instanceId}; the ${plan.method.chosen} method changes nothing of it`);
  }
  const backupId = await startBackup(deps, plan, input, { found: await earlier });
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    if (backupId !== 'none') p.created.backupId = backupId;
    p.progress.phase = 'backup-started';
  });
  return { backupId, backupMethod: plan.inputs.backupMethod };
}

/** This run's backup made by an earlier attempt of the step (found by its tags), if any. */
export async function findBackup(deps: BackupDeps, plan: Plan, input: StepInput): Promise<string | undefined> {
  const { ec2 } = deps;
  const { executionId } = input;
  if (plan.inputs.backupMethod === 'None' || plan.created.backupId) return undefined;
  if (plan.inputs.backupMethod === 'Snapshot') {
    const existing = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: ownedFilters('backup', executionId) }));
    return existing.Snapshots?.find((s) => s.VolumeId === plan.instance.rootVolumeId)?.SnapshotId;
  }
  const existing = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: ownedFilters('backup', executionId) }));
  return existing.Images?.[0]?.ImageId;
}

/**
 * Starts this run's backup (or returns the one it already has). `earlier`: what findBackup
 * returned, when the caller has already looked (absent: not looked yet).
 */
export async function startBackup(deps: BackupDeps, plan: Plan, input: StepInput, earlier?: { readonly found: string | undefined }): Promise<string> {
  const { ec2 } = deps;
  const { executionId, instanceId } = input;
  const volumeId = plan.instance.rootVolumeId;
  if (plan.inputs.backupMethod === 'None') return 'none';
  if (plan.created.backupId) return plan.created.backupId;
  const found = earlier ? earlier.found : await findBackup(deps, plan, input);
  if (found) return found;

  if (plan.inputs.backupMethod === 'Snapshot') {
    const out = await ec2.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        Description: `ec2-reset-access backup of ${volumeId} (root of ${instanceId}) before execution ${executionId}`,
        TagSpecifications: [tagSpec('snapshot', 'backup', executionId, instanceId)],
      }),
    );
    if (!out.SnapshotId) throw new UnexpectedStateError(`CreateSnapshot of ${volumeId} returned no snapshot id`);
    deps.log.info('snapshot started', { volumeId, snapshotId: out.SnapshotId });
    return out.SnapshotId;
  }

  // An image's point in time is each of its snapshots' creation (CreateImage, NoReboot:
  // https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html), not this call.
  // So no write may reach the volume before the image's snapshots exist (waitForImageSnapshots):
  // Online waits in inject-key before its command; the volume swap (inject and revoke) waits in
  // inject-key before the command to the helper (review-s6 Q19). Not yet waited for: Windows
  // (lambdas/windows-reset writes the NTFS volume on the helper) and UserData (the instance's own
  // first boot writes it): there the helper's boot or the stop and start usually give EC2 tens of
  // seconds, which no source says is enough (open: review-s6 Q19). Snapshot is the safer choice:
  // its point in time is the call itself.
  const out = await ec2.send(
    new CreateImageCommand({
      InstanceId: instanceId,
      // Image names are unique per account and Region: the execution id makes it so.
      Name: `reset-access-${instanceId}-${executionId}`,
      Description: `ec2-reset-access backup of ${instanceId} before execution ${executionId}`,
      NoReboot: true,
      TagSpecifications: [
        tagSpec('image', 'backup', executionId, instanceId),
        tagSpec('snapshot', 'backup', executionId, instanceId),
      ],
    }),
  );
  if (!out.ImageId) throw new UnexpectedStateError(`CreateImage of ${instanceId} returned no image id`);
  deps.log.info('image started', { instanceId, imageId: out.ImageId });
  return out.ImageId;
}

/** Online + BackupMethod=Image: how long the run waits for the image's snapshots before it refuses. */
export const IMAGE_SNAPSHOTS_BUDGET_MS = 60_000;
const IMAGE_SNAPSHOTS_POLL_MS = 1_000;

/**
 * Online + BackupMethod=Image (review P5): an image taken with NoReboot holds "only the data that
 * has been written to the volumes at the time the snapshots are created"
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html, NoReboot): the
 * point in time is each snapshot's creation, not the CreateImage call. A snapshot, once created,
 * is point-in-time even while pending ("the point-in-time snapshot is created immediately, but the
 * status of the snapshot is pending until the snapshot is complete":
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSnapshot.html). So before the
 * command writes, this waits (bounded) until DescribeImages shows every EBS mapping of the image
 * with a snapshot id and DescribeSnapshots shows each of those snapshots (pending or completed).
 * Past the bound, or on a failed image or snapshot, the run refuses: nothing has been written.
 */
export async function waitForImageSnapshots(ec2: EC2Client, imageId: string, clock: Clock = realClock, budgetMs = IMAGE_SNAPSHOTS_BUDGET_MS): Promise<string[]> {
  try {
    return await pollUntil(clock, `the snapshots of image ${imageId}`, budgetMs, IMAGE_SNAPSHOTS_POLL_MS, async () => {
      const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
      if (!image) return undefined;
      // ImageState and SnapshotState of the EC2 API model (botocore ec2/2016-11-15 service-2.json):
      // an image that failed, is invalid, errored or is gone never gets its snapshots.
      if (image.State === 'failed' || image.State === 'invalid' || image.State === 'error' || image.State === 'deregistered') {
        throw new UnexpectedStateError(`The backup image ${imageId} is ${image.State}: nothing was written to the instance`);
      }
      const ebs = (image.BlockDeviceMappings ?? []).filter((m) => m.Ebs !== undefined);
      const ids = ebs.map((m) => m.Ebs?.SnapshotId);
      if (ebs.length === 0 || ids.some((id) => !id)) return undefined;
      const snapshotIds = ids as string[];
      const snapshots = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }))).Snapshots ?? [];
      const failed = snapshots.find((x) => x.State === 'error');
      if (failed) throw new UnexpectedStateError(`Snapshot ${failed.SnapshotId} of the backup image ${imageId} failed: nothing was written to the instance`);
      return snapshotIds.every((id) => snapshots.some((x) => x.SnapshotId === id)) ? snapshotIds : undefined;
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    throw new UnexpectedStateError(
      `The snapshots of the backup image ${imageId} did not appear within ${budgetMs / 1000} s, so the image could hold a later state than the one before the change: nothing was written to the instance (run again, or with BackupMethod=Snapshot, whose point in time is the call itself)`,
    );
  }
}
