/**
 * bundleBytes: synthesize the app into a git-ignored folder under the project, then size every
 * Lambda's bundle. A function's bundle is the folder its `aws:asset:path` metadata names; its
 * entry is index.js (or index.mjs).
 */
import * as fs from 'fs';
import * as path from 'path';
import { runChild } from './exec';
import { PROJECT_ROOT, TSX } from './keygen';

export const BENCH_CDK_OUT = path.join(PROJECT_ROOT, '.twin', 'bench-cdk.out');

export interface LambdaBundle {
  /** The logical id of the AWS::Lambda::Function. */
  readonly logicalId: string;
  /** A short name: the Lambda folder when recognisable, else the construct path. */
  readonly name: string;
  /** Absolute path of the bundle's entry file. */
  readonly entry: string;
  /** Bytes of the entry file: what the runtime loads. */
  readonly bytes: number;
  /** Bytes of the whole asset folder (source maps included). */
  readonly assetBytes: number;
  /** Environment the template gives the function; tokens are replaced by placeholders. */
  readonly environment: Readonly<Record<string, string>>;
  readonly handler: string;
  /** True for the product's step Lambdas (a folder under lambdas/); false for CDK's own helpers. */
  readonly ours: boolean;
}

interface TemplateResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}

/** Run the synth in a child process; returns the template paths. */
export function synthesize(outdir: string = BENCH_CDK_OUT): string[] {
  fs.rmSync(outdir, { recursive: true, force: true });
  fs.mkdirSync(outdir, { recursive: true });
  const out = runChild(TSX, [path.join(__dirname, 'probes', 'synth-probe.ts'), outdir], {
    what: 'the synth (lib/app.ts createApp)',
    cwd: PROJECT_ROOT,
    timeout: 10 * 60_000,
    env: { ...process.env, CDK_DISABLE_VERSION_CHECK: '1' },
  });
  const parsed = JSON.parse(out.trim().split('\n').pop() as string) as { templates: Array<{ path: string }> };
  return parsed.templates.map((t) => t.path);
}

function folderSize(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? folderSize(p) : fs.statSync(p).size;
  }
  return total;
}

/** A stand-in for a CloudFormation token in an environment variable (the value only has to exist). */
function placeholderFor(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (/PROFILE/i.test(name)) return 'arn:aws:iam::123456789012:instance-profile/bench-placeholder';
  if (/KEY/i.test(name)) return 'arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000';
  return `bench-placeholder-${name.toLowerCase().replace(/_/g, '-')}`;
}

const KNOWN_FOLDERS = [
  'preflight', 'stop-instance', 'launch-helper', 'backup-and-detach', 'attach-to-helper', 'inject-key',
  'release-from-helper', 'reattach-root', 'start-instance', 'cleanup', 'summarize', 'restore',
];

/** Guess the Lambda folder from a logical id or construct path ("InjectKeyFunctionAB12" -> inject-key). */
export function folderNameOf(logicalId: string, cdkPath: string): string {
  const squash = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');
  const haystack = squash(`${cdkPath} ${logicalId}`);
  const found = KNOWN_FOLDERS
    .filter((f) => haystack.includes(squash(f)))
    .sort((a, b) => b.length - a.length)[0];
  return found ?? (cdkPath || logicalId);
}

/**
 * The asset folder of a function: its `aws:asset:path` metadata, or else the folder named after
 * the S3 key's hash (`asset.<hash>`, the layout of a cloud assembly).
 */
function assetDirOf(resource: TemplateResource, assemblyDir: string): string | undefined {
  const assetPath = resource.Metadata?.['aws:asset:path'];
  if (typeof assetPath === 'string') return path.resolve(assemblyDir, assetPath);
  const key = (resource.Properties?.Code as { S3Key?: unknown } | undefined)?.S3Key;
  const hash = typeof key === 'string' ? /^([0-9a-f]{64})\.zip$/.exec(key)?.[1] : undefined;
  const dir = hash ? path.join(assemblyDir, `asset.${hash}`) : undefined;
  return dir && fs.existsSync(dir) ? dir : undefined;
}

/** Every Lambda bundle named by the templates. */
export function lambdaBundles(templatePaths: readonly string[]): LambdaBundle[] {
  const bundles: LambdaBundle[] = [];
  for (const templatePath of templatePaths) {
    const template = JSON.parse(fs.readFileSync(templatePath, 'utf8')) as { Resources?: Record<string, TemplateResource> };
    for (const [logicalId, resource] of Object.entries(template.Resources ?? {})) {
      if (resource.Type !== 'AWS::Lambda::Function') continue;
      const dir = assetDirOf(resource, path.dirname(templatePath));
      if (!dir) continue; // inline code
      const entry = ['index.js', 'index.mjs', 'index.cjs'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
      if (!entry) continue;
      const variables = ((resource.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables) ?? {};
      const environment: Record<string, string> = {};
      for (const [k, v] of Object.entries(variables)) environment[k] = placeholderFor(k, v);
      const cdkPath = String(resource.Metadata?.['aws:cdk:path'] ?? '');
      const name = folderNameOf(logicalId, cdkPath);
      bundles.push({
        logicalId,
        name,
        ours: KNOWN_FOLDERS.includes(name),
        entry,
        bytes: fs.statSync(entry).size,
        assetBytes: folderSize(dir),
        environment,
        handler: String(resource.Properties?.Handler ?? ''),
      });
    }
  }
  return bundles.sort((a, b) => b.bytes - a.bytes);
}
