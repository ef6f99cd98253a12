/**
 * Child-process probe for bench/inject.ts: the deployed inject script (taken back out of the
 * Command document) run through local/disk's runInjectScript on a fresh sparse image per layout,
 * timed around that one call. Writes one JSON file; the images are removed in finally.
 * Usage: tsx bench/probes/inject-probe.ts <out.json> <workdir> <sizeMiB> <layout>...
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import { mkdirSync, rmSync, statSync, writeFileSync } from 'fs';
import { join } from 'path';

interface ImagesModule {
  buildImage(path: string, spec: Record<string, unknown>): Promise<void>;
}
interface RunInjectModule {
  runInjectScript(options: { script: string; env: Record<string, string>; volumes: Record<string, string>; timeoutMs?: number }): Promise<{
    exitCode: number;
    report?: { status: string; error?: string; root?: { fstype: string }; changes: Array<{ action: string }> };
    leftoverMounts: string[];
  }>;
}
interface DocumentModule {
  loadInjectKeyDocument(): Record<string, unknown>;
  injectKeyScriptFromDocument(doc: Record<string, unknown>): string;
}
interface KeysModule {
  generateKeyPair(type: 'ed25519'): { publicKey: string };
}

async function main(): Promise<void> {
  const [outFile, workDir, sizeMiB, ...layouts] = process.argv.slice(2);
  const { buildImage } = require('../../local/disk/images') as ImagesModule;
  const { runInjectScript } = require('../../local/disk/run-inject') as RunInjectModule;
  const { loadInjectKeyDocument, injectKeyScriptFromDocument } = require('../../lib/inject-key-document') as DocumentModule;
  const { generateKeyPair } = require('../../lambdas/common/keys') as KeysModule;
  const script = injectKeyScriptFromDocument(loadInjectKeyDocument());
  // The key the user lost, already in authorized_keys, and the new one to inject: public halves only.
  const lostKey = generateKeyPair('ed25519').publicKey;
  const newKey = generateKeyPair('ed25519').publicKey;
  mkdirSync(workDir, { recursive: true });
  const runs: Array<{ layout: string; imageBytes: number; seconds: number; status: string }> = [];
  for (const layout of layouts) {
    const image = join(workDir, `bench-${layout}.img`);
    try {
      await buildImage(image, {
        layout,
        sizeMiB: Number(sizeMiB),
        users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${lostKey}\n` }],
      });
      const volumeId = 'vol-0123456789abcdef0';
      const start = process.hrtime.bigint();
      const result = await runInjectScript({
        script,
        env: { SSM_VolumeId: volumeId, SSM_PublicKey: newKey, SSM_Users: '', SSM_Root: '' },
        volumes: { [volumeId]: image },
        timeoutMs: 300_000,
      });
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const r = result.report;
      const status =
        result.exitCode === 0 && r?.status === 'ok'
          ? `ok (${r.root?.fstype ?? '?'} root, ${r.changes.map((c) => c.action).join(', ') || 'no change'}${result.leftoverMounts.length ? `, LEFT MOUNTED: ${result.leftoverMounts.join(' ')}` : ''})`
          : `FAILED: exit ${result.exitCode}, ${r?.error ?? 'no report'}`;
      runs.push({ layout, imageBytes: statSync(image).size, seconds, status });
    } finally {
      rmSync(image, { force: true });
    }
  }
  writeFileSync(outFile, JSON.stringify({ runs }));
}

main().catch((err: unknown) => {
  process.stderr.write(`inject probe: ${(err as Error).name}: ${(err as Error).message}\n`);
  process.exit(1);
});
