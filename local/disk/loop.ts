/**
 * Loop devices for disk images: attach an image with its partitions (losetup + partx, since
 * the kernel reads no partition table of a loop device by itself), detach it again, and a
 * process-exit safety net that detaches whatever this process attached and left behind.
 */
import { execFile, execFileSync } from 'child_process';
import { existsSync, readdirSync } from 'fs';
import { promisify } from 'util';

const run = promisify(execFile);

export interface AttachedLoop {
  /** The loop device, e.g. /dev/loop3. */
  readonly device: string;
  /** Its partition devices in partition-number order, e.g. [/dev/loop3p1, /dev/loop3p128]. */
  readonly partitions: string[];
}

/** Loop devices attached by this process and not yet detached. */
const attached = new Set<string>();
let safetyNetInstalled = false;

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  process.on('exit', () => {
    for (const device of attached) {
      try {
        execFileSync('partx', ['-d', device], { stdio: 'ignore' });
      } catch {
        // no partitions
      }
      try {
        execFileSync('losetup', ['-d', device], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  });
}

/** Partition devices of a loop device, from sysfs, in partition-number order. */
export function partitionsOf(device: string): string[] {
  const name = device.replace(/^\/dev\//, '');
  const sys = `/sys/block/${name}`;
  if (!existsSync(sys)) return [];
  return readdirSync(sys)
    .filter((entry) => entry.startsWith(`${name}p`) && /^\d+$/.test(entry.slice(name.length + 1)))
    .sort((a, b) => Number(a.slice(name.length + 1)) - Number(b.slice(name.length + 1)))
    .map((entry) => `/dev/${entry}`);
}

async function waitForNodes(paths: string[], timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (paths.some((p) => !existsSync(p))) {
    if (Date.now() > deadline) {
      throw new Error(`device nodes did not appear: ${paths.filter((p) => !existsSync(p)).join(', ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Attach an image file to a free loop device and create its partition devices. */
export async function attachLoop(imagePath: string): Promise<AttachedLoop> {
  if (!existsSync(imagePath)) {
    throw new Error(`no such image: ${imagePath}`);
  }
  installSafetyNet();
  const { stdout } = await run('losetup', ['-f', '--show', imagePath]);
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) {
    throw new Error(`losetup gave an unexpected device name: ${device}`);
  }
  attached.add(device);
  try {
    // Partitions a previous user of this device number left (see removePartitions) belong to
    // another image's table: removed before this image's are added, else the device fails.
    if (partitionsOf(device).length > 0 && !(await removePartitions(device))) {
      throw new Error(`${device} still has partitions of an earlier image that cannot be removed: ${partitionsOf(device).join(', ')}`);
    }
    try {
      await run('partx', ['-a', device]);
    } catch {
      // No partition table (a whole-disk filesystem) or partitions already known.
    }
    const partitions = partitionsOf(device);
    await waitForNodes([device, ...partitions]);
    return { device, partitions };
  } catch (error) {
    await detachLoop(device);
    throw error;
  }
}

/**
 * Deletes the partition devices of `device`, retrying for up to 5 s while one is busy. A partition
 * that anything holds open at that instant (a mount not yet gone, or any process probing every
 * block device, such as an LVM scan or blkid elsewhere on the machine) is not deleted (partx -d:
 * EBUSY), and losetup -d does not delete it either: partitions added with partx (BLKPG) outlive
 * the loop device's detach, so the next image attached at that device number would see this
 * image's partitions (seen on this machine: after the holder closed, /sys/block/loopN/loopNp1
 * stayed with no backing file). Returns whether none is left.
 */
async function removePartitions(device: string): Promise<boolean> {
  for (let attempt = 0; attempt < 50 && partitionsOf(device).length > 0; attempt += 1) {
    try {
      await run('partx', ['-d', device]);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return partitionsOf(device).length === 0;
}

/** Remove the partition devices and detach the loop device. */
export async function detachLoop(device: string): Promise<void> {
  // Partitions still held after the retries are left (losetup -d then only marks the device for
  // autoclear): the next attachLoop at this device number removes them or refuses the device.
  await removePartitions(device);
  let lastError: unknown;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      await run('losetup', ['-d', device]);
      attached.delete(device);
      await released(device);
      return;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`could not detach ${device}: ${(lastError as Error).message}`);
}

/**
 * Waits (at most 10 s) until `device` has no backing file. `losetup -d` of a device that is still
 * open (a FUSE server such as ntfs-3g ending after a SIGKILL of its group) only marks it for
 * autoclear: the kernel detaches it when the last opener closes it (losetup(8), --detach; loop(4),
 * LO_FLAGS_AUTOCLEAR). A device still held after that is left for the caller's own checks to report.
 */
async function released(device: string): Promise<void> {
  const backing = `/sys/block/${device.replace(/^\/dev\//, '')}/loop/backing_file`;
  for (let i = 0; i < 100 && existsSync(backing); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Loop devices currently attached on the machine (`losetup -a`), one line each. */
export function listLoopDevices(): string[] {
  const out = execFileSync('losetup', ['-a'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim() !== '');
}
