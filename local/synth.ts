/**
 * The twin's copy of the synthesized app: `createApp().app.synth()` into a git-ignored folder
 * under the project (so the bundles' external `@aws-sdk/*` resolve from its node_modules),
 * cached by a hash of everything that goes into it. Several test files (and processes) share
 * one synthesis; a new one is written to a temporary folder and renamed into place. Two
 * processes that need the same synthesis at once (two jest workers) do not both make it: the
 * first takes a lock file (created exclusively, holding its pid), the others wait for its
 * result; a lock whose holder has died is taken over.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';

export const PROJECT_ROOT = join(__dirname, '..');
export const TWIN_DIR = join(PROJECT_ROOT, '.twin');

export interface SynthesizedApp {
  readonly outdir: string;
  readonly stackName: string;
  readonly template: CfnTemplate;
  /** True when this call ran the synthesis (false: reused). */
  readonly fresh: boolean;
}

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
  readonly DependsOn?: unknown;
}

export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Outputs?: Record<string, unknown>;
  readonly Parameters?: Record<string, unknown>;
}

export class SynthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SynthError';
  }
}

const INPUTS = ['lib', 'lambdas', 'runbooks', 'bin', 'package-lock.json', 'cdk.json', 'tsconfig.json'];

function filesUnder(path: string, out: string[]): void {
  if (!existsSync(path)) return;
  const st = statSync(path);
  if (st.isFile()) {
    out.push(path);
    return;
  }
  for (const name of readdirSync(path).sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    filesUnder(join(path, name), out);
  }
}

/** A hash of every file the synthesis reads. */
export function inputsHash(): string {
  const h = createHash('sha256');
  const files: string[] = [];
  for (const i of INPUTS) filesUnder(join(PROJECT_ROOT, i), files);
  for (const f of files) {
    h.update(relative(PROJECT_ROOT, f));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

function readAssembly(outdir: string): { stackName: string; template: CfnTemplate } {
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as {
    artifacts?: Record<string, { type?: string; properties?: { templateFile?: string; stackName?: string } }>;
  };
  const stacks = Object.entries(manifest.artifacts ?? {}).filter(([, a]) => a.type === 'aws:cloudformation:stack');
  if (stacks.length !== 1) throw new SynthError(`expected one stack in ${outdir}, found ${stacks.length}`);
  const [artifactId, artifact] = stacks[0] as [string, { properties?: { templateFile?: string; stackName?: string } }];
  const templateFile = artifact.properties?.templateFile ?? `${artifactId}.template.json`;
  const template = JSON.parse(readFileSync(join(outdir, templateFile), 'utf8')) as CfnTemplate;
  return { stackName: artifact.properties?.stackName ?? artifactId, template };
}

let memo: SynthesizedApp | undefined;

export interface SynthOptions {
  /** Another runbook YAML than runbooks/reset-access.yaml (part of the cache key). */
  readonly runbookFile?: string;
  readonly log?: (line: string) => void;
}

/** Synthesizes the app once per process (and once per set of inputs on disk). */
export function synthesizeApp(options: SynthOptions = {}): SynthesizedApp {
  const log = options.log ?? (() => undefined);
  let hash = inputsHash();
  if (options.runbookFile) {
    hash = createHash('sha256').update(hash).update(readFileSync(options.runbookFile)).digest('hex').slice(0, 16);
  }
  const outdir = join(TWIN_DIR, 'cdk.out', hash);
  if (memo && memo.outdir === outdir) return memo;
  if (existsSync(join(outdir, '.complete'))) {
    memo = { outdir, ...readAssembly(outdir), fresh: false };
    return memo;
  }
  mkdirSync(join(TWIN_DIR, 'cdk.out'), { recursive: true });
  const lock = takeLock(`${outdir}.lock`, () => existsSync(join(outdir, '.complete')), log);
  if (lock === 'done') {
    memo = { outdir, ...readAssembly(outdir), fresh: false };
    return memo;
  }
  try {
    memo = { outdir, ...synthesizeInto(outdir, options, log), fresh: true };
  } finally {
    unlinkSync(lock);
  }
  pruneOldSyntheses(outdir);
  return memo;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock file `path` (O_CREAT|O_EXCL: one process wins), or waits while another live
 * process holds it. Returns the path once held, or 'done' when `done()` turns true meanwhile
 * (the holder finished the work). A lock left by a dead process is removed and taken.
 */
export function takeLock(path: string, done: () => boolean, log: (line: string) => void, timeoutMs = 900_000): string | 'done' {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    if (done()) return 'done';
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      // The holder may have finished between done() and openSync.
      if (done()) {
        unlinkSync(path);
        return 'done';
      }
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new SynthError(`waited ${timeoutMs / 1000} s for the synthesis locked by pid ${holder} (${path})`);
    if (!told) {
      log(`waiting for the synthesis another process (pid ${holder}) is making`);
      told = true;
    }
    sleepSync(250);
  }
}

function synthesizeInto(outdir: string, options: SynthOptions, log: (line: string) => void): { stackName: string; template: CfnTemplate } {
  const tmp = join(TWIN_DIR, 'cdk.out', `tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  log('synthesizing the CDK app and bundling the step Lambdas (once; cached under .twin/)');
  try {
    // In a child process: aws-cdk-lib stays out of this process, and the bundlers' chatter is
    // kept (and shown only when the synthesis fails).
    const tsx = join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');
    const child = spawnSync(tsx, [__filename, CHILD_FLAG, tmp, options.runbookFile ?? ''], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      timeout: 600000,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (child.status !== 0) {
      const output = `${child.stdout ?? ''}\n${child.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n');
      throw new SynthError(`exit ${child.status ?? child.signal}: ${output}`);
    }
    writeFileSync(join(tmp, '.complete'), new Date().toISOString());
    try {
      renameSync(tmp, outdir);
    } catch {
      // Another process got there first: use its copy.
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw new SynthError(`the CDK app did not synthesize: ${(err as Error).message}`);
  }
  return readAssembly(outdir);
}

/** Removes syntheses of older inputs that nobody has touched for an hour. */
function pruneOldSyntheses(keep: string): void {
  const root = join(TWIN_DIR, 'cdk.out');
  const hourAgo = Date.now() - 3600_000;
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (dir === keep || name.endsWith('.lock')) continue;
    try {
      if (statSync(dir).mtimeMs < hourAgo) rmSync(dir, { recursive: true, force: true });
    } catch {
      /* another process removed it */
    }
  }
}

const CHILD_FLAG = '--twin-synth-child';

/** The child: synthesizes into argv's outdir with asset metadata (as the CDK CLI asks for it). */
function synthChild(outdir: string, runbookFile: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createApp } = require('../lib/app') as typeof import('../lib/app');
  const { app } = createApp({
    outdir,
    context: { 'aws:cdk:enable-asset-metadata': true },
    stackProps: runbookFile ? { runbookFile } : undefined,
  });
  app.synth();
}

if (require.main === module && process.argv[2] === CHILD_FLAG) {
  synthChild(process.argv[3] as string, process.argv[4] ?? '');
}
