/** Small EC2 look-ups and a bounded poll, shared by the steps. */
import {
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
  type Volume,
} from '@aws-sdk/client-ec2';
import { isAwsError, NotReadyError, UnexpectedStateError } from './errors';

/** The instance, or throws naming it when it does not exist. */
export async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  const instance = await findInstance(ec2, instanceId);
  if (!instance) throw new UnexpectedStateError(`Instance ${instanceId} was not found`);
  return instance;
}

/** The instance, or undefined when it does not exist. */
export async function findInstance(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
  } catch (err) {
    if (isAwsError(err, 'InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed')) return undefined;
    throw err;
  }
}

/** The volume, or undefined when it does not exist. */
export async function findVolume(ec2: EC2Client, volumeId: string): Promise<Volume | undefined> {
  try {
    const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return out.Volumes?.find((v) => v.VolumeId === volumeId);
  } catch (err) {
    if (isAwsError(err, 'InvalidVolume.NotFound')) return undefined;
    throw err;
  }
}

/** The volume, or throws naming it when it does not exist. */
export async function describeVolume(ec2: EC2Client, volumeId: string): Promise<Volume> {
  const volume = await findVolume(ec2, volumeId);
  if (!volume) throw new UnexpectedStateError(`Volume ${volumeId} was not found`);
  return volume;
}

/** The live attachment of a volume (attaching, attached or detaching), if any. */
export function liveAttachment(volume: Volume): { instanceId: string; device: string; state: string } | undefined {
  const a = volume.Attachments?.find((x) => x.State !== 'detached');
  if (!a?.InstanceId) return undefined;
  return { instanceId: a.InstanceId, device: a.Device ?? '', state: a.State ?? '' };
}

export interface Clock {
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, or throws
 * NotReadyError(`what`) after `budgetMs`.
 */
export async function pollUntil<T>(
  clock: Clock,
  what: string,
  budgetMs: number,
  intervalMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = clock.now() + budgetMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (clock.now() + intervalMs > deadline) {
      throw new NotReadyError(`Timed out after ${Math.round(budgetMs / 1000)} s waiting for ${what}`);
    }
    await clock.sleep(intervalMs);
  }
}
