/**
 * The run's lock tag on the customer's instance and root volume (issue 11; key in tags.ts).
 *
 * Added by preflight only, right after it took the lock record; removed last by cleanup and
 * restore. Removal names the tag's value: EC2's DeleteTags deletes a tag given with a value only
 * when the resource's value matches ("When you specify both a value and a key name, the tag is
 * deleted only if the tag's value matches the specified value",
 * https://docs.aws.amazon.com/ec2/latest/devguide/example_ec2_DeleteTags_section.html; the API
 * reference's Tag.N, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteTags.html),
 * so a late removal by one run can never take away the tag of a later run.
 */
import { CreateTagsCommand, DeleteTagsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { findInstance, findVolume } from './ec2';
import { isAwsError, UnexpectedStateError } from './errors';
import { LOCK_TAG_KEY, lockTagOf } from './tags';

/** Errors of a resource that no longer exists: nothing to untag. */
const GONE = ['InvalidInstanceID.NotFound', 'InvalidVolume.NotFound', 'InvalidID'];

/** Tags the instance and its root volume with this execution's lock (CreateTags overwrites a stale value). */
export async function addLockTag(ec2: EC2Client, resourceIds: string[], executionId: string): Promise<void> {
  await ec2.send(new CreateTagsCommand({ Resources: resourceIds, Tags: [{ Key: LOCK_TAG_KEY, Value: executionId }] }));
}

/**
 * Removes this execution's lock tag from the instance and its root volume, where they carry it
 * (read first: the roles may untag only where the key is, and a second removal, cleanup after
 * restore, then makes no call); one call each, a resource that is gone is skipped.
 */
export async function removeLockTag(ec2: EC2Client, instanceId: string, volumeId: string, executionId: string): Promise<void> {
  const instance = await findInstance(ec2, instanceId);
  const volume = volumeId ? await findVolume(ec2, volumeId) : undefined;
  const ids = [
    ...(lockTagOf(instance?.Tags) === executionId ? [instanceId] : []),
    ...(lockTagOf(volume?.Tags) === executionId ? [volumeId] : []),
  ];
  for (const id of ids) {
    try {
      await ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: LOCK_TAG_KEY, Value: executionId }] }));
    } catch (err) {
      if (!isAwsError(err, ...GONE)) throw err;
    }
  }
}

/**
 * Refuses unless the instance carries this execution's lock tag, read now (review P6/O1): IAM lets
 * SendCommand go to any instance that carries a lock tag (of any run: an IAM condition cannot
 * compare a tag with the execution id in the Lambda's payload, lib/functions.ts), so the handler
 * reads the tag's value immediately before it sends to the customer's instance and sends only
 * when it is its own.
 */
export async function requireOwnLockTag(ec2: EC2Client, instanceId: string, executionId: string): Promise<void> {
  const instance = await findInstance(ec2, instanceId);
  const holder = lockTagOf(instance?.Tags);
  if (holder !== executionId) {
    throw new UnexpectedStateError(
      `${instanceId} ${instance ? (holder ? `carries the lock tag of another execution (${holder})` : 'carries no lock tag') : 'was not found'}, not this execution's (${executionId}): nothing was sent to it`,
    );
  }
}

