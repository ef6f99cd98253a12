/**
 * The twin's one seam to the disk side (local/disk): image building, running the Command
 * document's script on images, the byte-level image comparison and the real sshd. Everything
 * the twin needs from local/disk goes through here.
 */
import { buildImage, diffImage, ImageDifference, ImageSnapshot, ImageSpec, snapshotImage } from './disk/images';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { attachLoop, detachLoop } from './disk/loop';
import { runInjectScript } from './disk/run-inject';
import { sshLogin, startSshd } from './disk/sshd';

const run = promisify(execFile);

/**
 * A public key whose private half was deleted the moment it was made: the "lost" key of the
 * locked-out instance. Nobody can log in with it.
 */
export const LOST_PUBLIC_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIh9UkFFCov4pC3LzZKiifsf/khbBitOzbFrRRvkHAWw lost-key@nowhere';

export type { ImageSpec } from './disk/images';

/** The default locked-out root: one ext4 filesystem, ec2-user whose only key is the lost one. */
export const LOST_KEY_IMAGE: ImageSpec = {
  layout: 'ext4-whole',
  users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${LOST_PUBLIC_KEY}\n` }],
  cloudInitDefaultUser: 'ec2-user',
};

export interface InjectRun {
  readonly script: string;
  readonly env: Record<string, string>;
  readonly volumes: Record<string, string>;
  readonly timeoutMs: number;
  /** The online method: the image that is the instance's live root (local/disk/run-inject.ts). */
  readonly liveRoot?: string;
}

export interface InjectResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly report?: unknown;
}

export type { ImageSnapshot, ImageDifference } from './disk/images';

export interface SshdHandle {
  readonly port: number;
  stop(): Promise<void>;
}

export interface DiskApi {
  buildImage(path: string, spec: ImageSpec): Promise<unknown>;
  runInjectScript(run: InjectRun): Promise<InjectResult>;
  /** Records the image (partition table, every file's metadata and content hash). */
  snapshotImage(path: string): Promise<ImageSnapshot>;
  /** What differs between two snapshots. */
  diffImage(before: ImageSnapshot, after: ImageSnapshot): ImageDifference[];
  /** A real sshd on 127.0.0.1 over the image's users and their authorized_keys. */
  startSshd(imagePath: string): Promise<SshdHandle>;
  /** A real `ssh -i` login; the key lives in a 0600 temp file for the call only. */
  sshLogin(options: { port: number; user: string; privateKey: string; command?: string }): Promise<{ ok: boolean; stdout: string; stderr: string }>;
}

/** The filesystem type on a block device ('' when none). */
async function fstypeOf(device: string): Promise<string> {
  try {
    return (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device])).stdout.trim();
  } catch {
    return '';
  }
}

/** sshd over an image: its loop device attached for sshd's life, detached at stop. */
async function startSshdOnImage(imagePath: string): Promise<SshdHandle> {
  const loop = await attachLoop(imagePath);
  try {
    let root: { device: string; fstype: string } | undefined;
    for (const device of loop.partitions.length > 0 ? loop.partitions : [loop.device]) {
      const fstype = await fstypeOf(device);
      if (['ext2', 'ext3', 'ext4', 'xfs', 'btrfs'].includes(fstype)) {
        root = { device, fstype };
        break;
      }
    }
    if (!root) throw new Error(`no Linux root filesystem on ${imagePath} for sshd`);
    const sshd = await startSshd({ root, timeoutSeconds: 120 });
    return {
      port: sshd.port,
      async stop() {
        try {
          await sshd.stop();
        } finally {
          await detachLoop(loop.device);
        }
      },
    };
  } catch (err) {
    await detachLoop(loop.device);
    throw err;
  }
}

/** Binds the twin to local/disk. */
export function loadDisk(): DiskApi {
  return { buildImage, runInjectScript, snapshotImage, diffImage, startSshd: startSshdOnImage, sshLogin };
}
