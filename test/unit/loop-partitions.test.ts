/**
 * Loop devices (local/disk/loop.ts) on this machine's kernel: a partition that something holds open
 * for a moment when the image is detached (a scan of every block device by another process, a
 * mount on its way out) is still removed, so that no partition of this image outlives its loop
 * device and turns up under the next image attached at that device number.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { attachLoop, detachLoop } from '../../local/disk/loop';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'loop-partitions-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function partitionsInSysfs(device: string): string[] {
  const name = basename(device);
  return readdirSync(`/sys/block/${name}`).filter((e) => e.startsWith(`${name}p`));
}

test('a partition held open for a moment at detach is still removed: nothing of the image is left at that device number', async () => {
  const image = join(dir, 'two-partitions.img');
  execFileSync('truncate', ['-s', '64M', image]);
  execFileSync('sfdisk', ['-q', image], { input: 'label: gpt\n,20M\n,20M\n' });
  const loop = await attachLoop(image);
  expect(loop.partitions.map((p) => basename(p))).toEqual([`${basename(loop.device)}p1`, `${basename(loop.device)}p2`]);
  // Another process holds p1 open for 700 ms, from before the detach starts.
  const holder = spawn('sh', ['-c', 'exec 7<"$1"; echo open; sleep 0.7', 'holder', loop.partitions[0] as string], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  // The kernel refuses to delete it while it is open (what the old single partx -d met).
  expect(() => execFileSync('partx', ['-d', '--nr', '1', loop.device], { stdio: 'pipe' })).toThrow();

  await detachLoop(loop.device);

  await new Promise<void>((resolve) => (holder.exitCode !== null ? resolve() : holder.once('exit', () => resolve())));
  expect(partitionsInSysfs(loop.device)).toEqual([]);
  expect(existsSync(`/sys/block/${basename(loop.device)}/loop/backing_file`)).toBe(false);
});
