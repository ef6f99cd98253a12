/**
 * The twin's one seam to the disk side (local/disk): image building, running the Command
 * document's script on images, the byte-level image comparison and the real sshd. Everything
 * the twin needs from local/disk goes through here.
 */

/**
 * A public key whose private half was deleted the moment it was made: the "lost" key of the
 * locked-out instance. Nobody can log in with it.
 */
export const LOST_PUBLIC_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIh9UkFFCov4pC3LzZKiifsf/khbBitOzbFrRRvkHAWw lost-key@nowhere';

/** What an image holds (local/disk's buildImage spec). */
export type ImageSpec = Record<string, unknown>;

/** The default locked-out root: one ext4 filesystem, ec2-user whose only key is the lost one. */
export const LOST_KEY_IMAGE: ImageSpec = {
  layout: 'ext4-whole',
  sizeMiB: 64,
  users: [{ name: 'ec2-user', uid: 1000, authorizedKeys: [LOST_PUBLIC_KEY] }],
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

/** A record of an image's bytes to compare it with later. */
export type ImageBaseline = unknown;

export interface ImageDifference {
  /** Paths (inside the image's filesystems) that differ, or byte ranges outside any file. */
  readonly changedPaths: string[];
  /** True when nothing outside the allowed key files changed. */
  readonly identicalOutsideKeys: boolean;
  readonly description: string;
}

export interface SshdHandle {
  readonly port: number;
  stop(): Promise<void>;
}

export interface DiskApi {
  buildImage(path: string, spec: ImageSpec): Promise<unknown>;
  runInjectScript(run: InjectRun): Promise<InjectResult>;
  /** Records the image to compare with later. */
  baseline(path: string): Promise<ImageBaseline>;
  /** Compares the image with its baseline, allowing changes to the key files of `users`. */
  compare(path: string, baseline: ImageBaseline, allowedKeyFiles: readonly string[]): Promise<ImageDifference>;
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
  let mod: Record<string, unknown> = {};
  let sshd: Record<string, unknown> = {};
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('./disk') as Record<string, unknown>;
  } catch {
    /* not there yet */
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sshd = require('./disk/sshd') as Record<string, unknown>;
  } catch {
    /* not there yet */
  }
  const fn = <T>(m: Record<string, unknown>, name: string): T =>
    (typeof m[name] === 'function' ? m[name] : missing(name)) as T;
  return {
    buildImage: fn(mod, 'buildImage'),
    runInjectScript: fn(mod, 'runInjectScript'),
    baseline: fn(mod, 'snapshotImage'),
    compare: fn(mod, 'diffImage'),
    startSshd: fn(sshd, 'startSshd'),
    sshLogin: fn(sshd, 'sshLogin'),
  };
}
