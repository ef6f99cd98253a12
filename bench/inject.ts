/**
 * injectSeconds: the inject script on a 1 GiB ext4 image and a 1 GiB xfs image (sparse), run the
 * way the twin's agent runs it (local/disk runInjectScript: a private mount namespace, the NVMe
 * by-id links, loop devices attached and detached around it). Wall clock of that call: the
 * loop device set-up is included, which on EC2 is part of the attach, so it errs high.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runChild } from './exec';
import { PROJECT_ROOT, TSX } from './keygen';
import { PartMissing } from './parts';
import type { InjectRun } from './result';
import { round } from './stats';

/** The layouts measured, with the filesystem each stands for. */
export const INJECT_LAYOUTS = { ext4: 'ext4-whole', xfs: 'gpt-xfs' } as const;
export const INJECT_IMAGE_MIB = 1024;

export interface InjectMeasurement {
  readonly ext4: number | null;
  readonly xfs: number | null;
  readonly runs: readonly InjectRun[];
}

export function measureInject(): InjectMeasurement {
  for (const part of ['local/disk/images.ts', 'local/disk/run-inject.ts', 'lib/inject-key-document.ts', 'runbooks/inject-key.sh']) {
    if (!fs.existsSync(path.join(PROJECT_ROOT, part))) throw new PartMissing(`${part} is not in the tree yet`);
  }
  if (process.getuid && process.getuid() !== 0) throw new PartMissing('the inject script needs root (loop devices, mounts)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-inject-'));
  try {
    const outFile = path.join(dir, 'inject.json');
    runChild(
      TSX,
      [path.join(__dirname, 'probes', 'inject-probe.ts'), outFile, path.join(dir, 'images'), String(INJECT_IMAGE_MIB), INJECT_LAYOUTS.ext4, INJECT_LAYOUTS.xfs],
      { what: 'the inject script probe', cwd: PROJECT_ROOT, timeout: 15 * 60_000 },
    );
    const { runs } = JSON.parse(fs.readFileSync(outFile, 'utf8')) as { runs: InjectRun[] };
    const secondsOf = (layout: string): number | null => {
      const r = runs.find((x) => x.layout === layout);
      return r && r.status.startsWith('ok') ? round(r.seconds, 2) : null;
    };
    return {
      ext4: secondsOf(INJECT_LAYOUTS.ext4),
      xfs: secondsOf(INJECT_LAYOUTS.xfs),
      runs: runs.map((r) => ({ ...r, seconds: round(r.seconds, 2) })),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
