/**
 * The twin's one seam to the disk side (local/disk): image building, running the Command
 * document's script on images, the byte-level image comparison and the real sshd. Everything
 * the twin needs from local/disk goes through here.
 */
import { buildImage, diffImage, ImageDifference, ImageSnapshot, ImageSpec, snapshotImage } from './disk/images';
import { runInjectScript } from './disk/run-inject';

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
  /** A real sshd on 127.0.0.1 over the image's users; `login` runs `ssh` with the key. */
  startSshd(imagePath: string): Promise<SshdHandle>;
  sshLogin(options: { port: number; user: string; privateKey: string; command?: string }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

export class DiskNotAvailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskNotAvailable';
  }
}

/** Binds the twin to local/disk (loaded when first needed). */
export function loadDisk(): DiskApi {
  const missing = (what: string) => async (): Promise<never> => {
    throw new DiskNotAvailable(`local/disk does not provide ${what} yet`);
  };
  let sshd: Record<string, unknown> = {};
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sshd = require('./disk/sshd') as Record<string, unknown>;
  } catch {
    /* not there yet */
  }
  const fn = <T>(m: Record<string, unknown>, name: string): T =>
    (typeof m[name] === 'function' ? m[name] : missing(name)) as T;
  return {
    buildImage,
    runInjectScript,
    snapshotImage,
    diffImage,
    startSshd: fn(sshd, 'startSshd'),
    sshLogin: fn(sshd, 'sshLogin'),
  };
}
