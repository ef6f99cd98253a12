/**
 * The twin's side of the UserData method: what EC2 and the instance do with user data that moto
 * does not.
 *
 * - ModifyInstanceAttribute of user data: EC2 accepts it only while the instance is stopped ("The
 *   instance must be in the stopped state", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html);
 *   moto does not check (its own TODO). `refuseUnlessStopped` answers IncorrectInstanceState.
 *   moto keeps the value per instance and DescribeInstanceAttribute gives it back.
 * - StartInstances of an instance whose user data is this product's: the instance boots, and
 *   cloud-init runs over its root volume's disk image (local/cloud-init-boot.ts, the real cloud-init
 *   22.4.2 with the same instance id at every boot, so a start is a later boot of the same instance).
 *   What the boot writes to /dev/console is appended to the instance's console output. Other user
 *   data does not boot cloud-init in the twin: the other tests' images stay as they are.
 * - GetConsoleOutput: the instance's console output so far, base64-encoded (botocore ec2 model,
 *   GetConsoleOutputResult: instanceId, timestamp, output).
 */
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { join } from 'path';
import { DescribeInstanceAttributeCommand, DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { isOurUserData } from '../lambdas/common/user-data';
import { bootWithCloudInit } from './cloud-init-boot';
import { attachLoop, detachLoop } from './disk/loop';

export interface UserDataTwinDeps {
  /** moto's EC2, directly (not through the agent). */
  readonly ec2: EC2Client;
  /** The disk image backing an EBS volume (the agent's registry). */
  readonly volumeImage: (volumeId: string) => string | undefined;
  /** Where each boot's scratch directory goes. @default /var/tmp */
  readonly scratchRoot?: string;
  /**
   * The boot asked to power off (our boot program does, after its marker): the instance stops as
   * an OS-initiated shutdown with shutdown behaviour stop does
   * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_ChangingInstanceInitiatedShutdownBehavior.html).
   */
  readonly onPoweroff?: (instanceId: string) => Promise<void>;
}

export interface UserDataBoot {
  readonly instanceId: string;
  readonly exitCode: number;
  readonly console: string;
  readonly poweroff: boolean;
}

export interface UserDataTwin {
  /** Throws `{ code: 'IncorrectInstanceState' }` unless the instance is stopped. */
  refuseUnlessStopped(instanceId: string, stateOf: (id: string) => Promise<string>): Promise<void>;
  /** After a successful StartInstances: boots the instances whose user data is ours. */
  afterStart(instanceIds: readonly string[]): Promise<void>;
  /** The GetConsoleOutput response of an instance this twin booted, or undefined (moto answers). */
  consoleOutputXml(instanceId: string, requestId: string): string | undefined;
  /** The boots so far (tests read them). */
  boots(): readonly UserDataBoot[];
}

export class IncorrectInstanceState extends Error {
  public readonly code = 'IncorrectInstanceState';
  constructor(message: string) {
    super(message);
    this.name = 'IncorrectInstanceState';
  }
}

/**
 * Removes a boot's scratch directory once nothing is mounted under it. The boot's mounts live in
 * its own mount namespace (unshare -m) and end with it; a mount still seen here under the
 * directory (mountinfo's fifth field, octal-escaped) means something went wrong: the directory is
 * kept rather than removed through the mount.
 */
function removeUnlessMounted(dir: string): void {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  if (points.some((p) => p === dir || p.startsWith(`${dir}/`))) return;
  rmSync(dir, { recursive: true, force: true });
}

export function createUserDataTwin(deps: UserDataTwinDeps): UserDataTwin {
  const consoles = new Map<string, { text: string; at: Date }>();
  const done: UserDataBoot[] = [];

  async function rootImage(instanceId: string): Promise<string | undefined> {
    const out = await deps.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = out.Reservations?.[0]?.Instances?.[0];
    const root = instance?.BlockDeviceMappings?.find((b) => b.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
    return root ? deps.volumeImage(root) : undefined;
  }

  async function boot(instanceId: string): Promise<void> {
    const attr = await deps.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }));
    const userData = Buffer.from(attr.UserData?.Value ?? '', 'base64');
    if (!isOurUserData(userData)) return;
    const image = await rootImage(instanceId);
    if (!image) return;
    const loop = image.startsWith('/dev/') ? undefined : await attachLoop(image);
    try {
      const devices = loop ? [loop.device, ...loop.partitions] : [image];
      const work = mkdtempSync(join(deps.scratchRoot ?? '/var/tmp', `twin-boot-${instanceId}-`));
      try {
        const result = await bootWithCloudInit({ devices, workDir: work, instanceId, userData });
        const before = consoles.get(instanceId)?.text ?? '';
        consoles.set(instanceId, { text: before + result.console, at: new Date() });
        done.push({ instanceId, exitCode: result.exitCode, console: result.console, poweroff: result.poweroff });
      } finally {
        removeUnlessMounted(work);
      }
    } finally {
      if (loop) await detachLoop(loop.device);
    }
    if (done[done.length - 1]?.poweroff && deps.onPoweroff) await deps.onPoweroff(instanceId);
  }

  return {
    async refuseUnlessStopped(instanceId, stateOf) {
      const state = await stateOf(instanceId);
      if (state !== 'stopped') {
        throw new IncorrectInstanceState(`The instance '${instanceId}' is not in the 'stopped' state.`);
      }
    },
    async afterStart(instanceIds) {
      for (const id of instanceIds) await boot(id);
    },
    consoleOutputXml(instanceId, requestId) {
      const c = consoles.get(instanceId);
      if (!c) return undefined;
      return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
        `<requestId>${requestId}</requestId>`,
        `<instanceId>${instanceId}</instanceId>`,
        `<timestamp>${c.at.toISOString()}</timestamp>`,
        `<output>${Buffer.from(c.text).toString('base64')}</output>`,
        '</GetConsoleOutputResponse>',
      ].join('');
    },
    boots: () => [...done],
  };
}
