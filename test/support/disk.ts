/**
 * Shared helpers for the tests that run the inject-key script on loop-device disk images:
 * the deployed script text, a run of it on an image, and the proof that a test left no mount,
 * no loop device and no work directory behind.
 */
import { execFileSync } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { join } from 'path';
import { injectKeyScriptFromDocument, loadInjectKeyDocument } from '../../lib/inject-key-document';
import { buildImage, snapshotImage, type ImageSnapshot, type ImageSpec } from '../../local/disk/images';
import { attachLoop, detachLoop, listLoopDevices } from '../../local/disk/loop';
import { runInjectScript, type RunInjectResult } from '../../local/disk/run-inject';

export const VOLUME_ID = 'vol-0a1b2c3d4e5f60718';

/** The script exactly as deployed: taken back out of the Command document object. */
export function deployedScript(): string {
  return injectKeyScriptFromDocument(loadInjectKeyDocument());
}

export interface SystemState {
  readonly mounts: string[];
  readonly loops: string[];
}

/**
 * Mounts and loop devices of this test on the machine now: loop devices backed by files under
 * `scope` (a scratch directory), and mounts of those devices or under `scope`. (Other work on
 * the machine, such as a benchmark run at the same time, has its own loop devices.)
 */
export function systemState(scope: string): SystemState {
  const loops = listLoopDevices().filter((line) => line.includes(`(${scope}`)).sort();
  const devices = loops.map((line) => line.split(':')[0]);
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter((line) => line.includes(scope) || devices.some((d) => line.startsWith(`${d} `) || line.startsWith(`${d}p`)))
    .sort();
  return { mounts, loops };
}

/** A private scratch directory for images. */
export function scratchDir(prefix = 'inject-test-'): string {
  return mkdtempSync(join('/var/tmp', prefix));
}

export function removeDir(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

/**
 * The scratch images of one test file: a private directory (made now, removed after the file),
 * a check after each test that it left no mount and no loop device of that directory, and a
 * factory that builds a numbered image there with its snapshot before any run.
 */
export function scratchImages(prefix: string, imageName: string): {
  readonly dir: string;
  image(spec: ImageSpec): Promise<{ path: string; before: ImageSnapshot }>;
} {
  const dir = scratchDir(prefix);
  let state: SystemState;
  let counter = 0;
  beforeEach(() => {
    state = systemState(dir);
  });
  afterEach(() => {
    expect(systemState(dir)).toEqual(state);
  });
  afterAll(() => {
    removeDir(dir);
  });
  return {
    dir,
    async image(spec: ImageSpec) {
      counter += 1;
      const path = join(dir, `${imageName}-${counter}.img`);
      await buildImage(path, spec);
      return { path, before: await snapshotImage(path) };
    },
  };
}

export interface InjectOptions {
  readonly publicKey: string;
  readonly users?: string;
  readonly volumeId?: string;
  readonly root?: string;
}

/** Run the deployed script against an image (attached and detached by runInjectScript). */
export async function inject(image: string, options: InjectOptions): Promise<RunInjectResult> {
  const volumeId = options.volumeId ?? VOLUME_ID;
  const result = await runInjectScript({
    script: deployedScript(),
    env: {
      SSM_VolumeId: volumeId,
      SSM_PublicKey: options.publicKey,
      SSM_Users: options.users ?? '',
      SSM_Root: options.root ?? '',
    },
    volumes: { [VOLUME_ID]: image },
    timeoutMs: 60_000,
  });
  // Every exit path unmounts and removes its work directory.
  if (result.leftoverMounts.length > 0 || result.leftoverTmp.length > 0) {
    throw new Error(`the script left mounts ${JSON.stringify(result.leftoverMounts)} and files ${JSON.stringify(result.leftoverTmp)}`);
  }
  return result;
}

/**
 * Run a shell script as root with one filesystem of an image mounted read-write at $m (partition
 * suffix such as 'p2', or '' for the whole disk), in a private mount namespace; its stdout.
 */
export async function onImage(path: string, partition: string, script: string, options = 'rw'): Promise<string> {
  const loop = await attachLoop(path);
  try {
    const wrapper = `set -e; m=$(mktemp -d); trap 'umount "$m" 2>/dev/null; rmdir "$m"' EXIT; mount -o "$2" "$1" "$m"; ${script}`;
    return execFileSync('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', wrapper, 'x', `${loop.device}${partition}`, options], { encoding: 'utf8' });
  } finally {
    await detachLoop(loop.device);
  }
}

/** Is this process root (the disk tests need it; CI runs as root). */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The hex of a string, as `getfattr -e hex` prints it. */
export function hex(text: string): string {
  return Buffer.from(text).toString('hex');
}

/** sha256 of a file on this machine. */
export function sha256File(path: string): string {
  return execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];
}

/**
 * Every file under `path` with its type, size and sha256 (`find` + `sha256sum`), or null when
 * `path` does not exist: a before/after proof that needs nothing to exist beforehand.
 */
export function treeState(path: string): string[] | null {
  if (!existsSync(path)) return null;
  const out = execFileSync('bash', ['-c', 'cd "$1" && find . -printf "%p %y %s\\n" && find . -type f -exec sha256sum {} +', 'tree', path], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '').sort();
}
