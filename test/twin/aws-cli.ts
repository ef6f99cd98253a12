/**
 * The preinstalled AWS CLI v1 pointed at a twin, and OpenSSH as the oracle of which lines carry
 * which key: the preamble the twin tests that drive RevokeKey and the Automation API share.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Twin } from '../../local/twin';

const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TwinCli {
  /** The CLI's environment: fixed credentials, no profile, no pager, nothing from the user's files. */
  env(): NodeJS.ProcessEnv;
  /** `aws <args>` against the twin (asynchronously: the twin runs in this process); never throws. */
  raw(...args: string[]): Promise<CliResult>;
  /** `aws <args>`, its JSON answer; throws with the CLI's error when it exits non-zero. */
  json<T = Record<string, unknown>>(...args: string[]): Promise<T>;
}

/** The AWS CLI against `twin()` (read at each call: the twin starts in beforeAll), with `scratch()` as HOME. */
export function twinCli(twin: () => Twin, scratch: () => string): TwinCli {
  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: scratch(),
    AWS_ACCESS_KEY_ID: 'twin-cli',
    AWS_SECRET_ACCESS_KEY: 'twin-cli',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(scratch(), 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch(), 'no-credentials'),
    AWS_PAGER: '',
  });
  const raw = async (...args: string[]): Promise<CliResult> => {
    try {
      const r = await run('aws', ['--endpoint-url', twin().agent.endpoint, '--region', 'us-east-1', '--output', 'json', ...args], { env: env(), maxBuffer: 16 * 1024 * 1024 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  };
  const json = async <T = Record<string, unknown>>(...args: string[]): Promise<T> => {
    const r = await raw(...args);
    if (r.code !== 0) throw new Error(`aws ${args.slice(0, 2).join(' ')} exited ${r.code}: ${r.stderr}`);
    return (r.stdout.trim() === '' ? {} : JSON.parse(r.stdout)) as T;
  };
  return { env, raw, json };
}

/** A key made by OpenSSH in `dir`, with its fingerprint as `ssh-keygen -l` prints it. */
export function opensshKey(dir: string, type: 'ed25519' | 'rsa', name: string): { line: string; blob: string; fingerprint: string } {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', `${name}@fleet`, '-f', file]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
  return { line, blob: line.split(' ')[1], fingerprint };
}

/** Fingerprints `ssh-keygen -l -f` attributes to a file's lines, in order (the oracle); none for a file it cannot read. */
export function fingerprintsOf(dir: string, content: string): string[] {
  const f = join(dir, `keys-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, content);
  try {
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(' ')[1]);
  } catch {
    return [];
  } finally {
    rmSync(f, { force: true });
  }
}

/** A file of an ext4 image, read with e2fsprogs' debugfs (no mount). */
export function imageFile(imagePath: string, path: string): string {
  return execFileSync('debugfs', ['-R', `cat ${path}`, imagePath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}
