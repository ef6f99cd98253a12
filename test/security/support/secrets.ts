/**
 * Finding a private key where it must not be, without ever printing it.
 *
 * A leak is any run of RUN_LENGTH consecutive characters of the key's base64 body. The
 * helpers here report *where* a run was found (source and offset), never the run itself, so a
 * failing test does not put the key into the test's own log.
 */
import { execFileSync } from 'child_process';
import { generateKeyPairSync } from 'crypto';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

export const RUN_LENGTH = 32;

/** The base64 body of a PEM or OpenSSH private key: header and footer lines and whitespace removed. */
export function secretBody(privateKeyText: string): string {
  return privateKeyText
    .split(/\r?\n/)
    .filter((l) => !/^-----(BEGIN|END) /.test(l.trim()) && !/^[A-Za-z-]+: /.test(l))
    .join('')
    .replace(/\s+/g, '');
}

/** Every RUN_LENGTH-character window of the body. */
export function secretRuns(body: string, n = RUN_LENGTH): Set<string> {
  if (body.length < n) throw new Error(`secret body is shorter than ${n} characters`);
  const runs = new Set<string>();
  for (let i = 0; i + n <= body.length; i++) runs.add(body.slice(i, i + n));
  return runs;
}

/** Offset of the first window of `haystack` that is a run of the secret, or -1. */
export function firstLeakOffset(haystack: string, runs: Set<string>, n = RUN_LENGTH): number {
  for (let i = 0; i + n <= haystack.length; i++) {
    if (runs.has(haystack.slice(i, i + n))) return i;
  }
  return -1;
}

export interface Exhibit {
  /** where it came from, e.g. "console.log #3" or "EC2 RunInstancesCommand input" */
  source: string;
  text: string;
}

/**
 * The sources (with offsets) in which a run of the secret appears. The result names places,
 * never the secret, so `expect(leaks(...)).toEqual([])` is safe to fail.
 *
 * `publicMaterial` (the matching public key line): an OpenSSH private key file embeds its public
 * key, so a run of the private file's base64 can coincide with a run of the public line. Such
 * runs are public, and are not counted as leaks.
 */
export function leaks(exhibits: Exhibit[], secretText: string, publicMaterial: string[] = []): string[] {
  const runs = secretRuns(secretBody(secretText));
  for (const pub of publicMaterial) {
    for (let i = 0; i + RUN_LENGTH <= pub.length; i++) runs.delete(pub.slice(i, i + RUN_LENGTH));
  }
  if (runs.size === 0) throw new Error('every run of the secret is public material: nothing left to look for');
  const found: string[] = [];
  for (const e of exhibits) {
    // also look at the text with JSON escapes of line breaks removed: a PEM embedded in JSON
    for (const variant of [e.text, e.text.replace(/\\[rn]/g, ''), e.text.replace(/\s+/g, '')]) {
      const at = firstLeakOffset(variant, runs);
      if (at >= 0) {
        found.push(`${e.source} (offset ${at})`);
        break;
      }
    }
  }
  return found;
}

/** Stringify anything for scanning, including errors (message, stack, own fields) and cycles. */
export function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) {
    const own: Record<string, unknown> = {};
    for (const k of Object.getOwnPropertyNames(value)) own[k] = (value as unknown as Record<string, unknown>)[k];
    return `${value.name}: ${value.message}\n${value.stack ?? ''}\n${safeJson(own)}`;
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return safeJson(value);
}

function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === 'bigint') return v.toString();
        if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
        if (v && typeof v === 'object') {
          if (seen.has(v)) return '[cycle]';
          seen.add(v);
        }
        return v;
      }) ?? String(value)
    );
  } catch {
    return String(value);
  }
}

export interface TestKeys {
  /** RSA private key, PKCS#1 PEM ("BEGIN RSA PRIVATE KEY") */
  rsaPem: string;
  /** Ed25519 private key, PKCS#8 PEM */
  ed25519Pem: string;
  /** Ed25519 private key in OpenSSH's own format ("BEGIN OPENSSH PRIVATE KEY"), from ssh-keygen */
  opensshPrivate: string;
  /** the OpenSSH public key line that goes with opensshPrivate */
  opensshPublic: string;
}

/** Fresh keys made at test time (never committed). */
export function makeTestKeys(): TestKeys {
  const rsa = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const ed = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const dir = mkdtempSync(join(tmpdir(), 'sec-keys-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@example', '-f', join(dir, 'k')], {
      stdio: 'ignore',
    });
    return {
      rsaPem: rsa.privateKey,
      ed25519Pem: ed.privateKey,
      opensshPrivate: readFileSync(join(dir, 'k'), 'utf8'),
      opensshPublic: readFileSync(join(dir, 'k.pub'), 'utf8').trim(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An OpenSSH public key line made with ssh-keygen. */
export function makePublicKey(type: 'ed25519' | 'rsa', comment = 'alice@example'): string {
  const dir = mkdtempSync(join(tmpdir(), 'sec-pub-'));
  try {
    const args = ['-q', '-t', type, '-N', '', '-C', comment, '-f', join(dir, 'k')];
    if (type === 'rsa') args.splice(3, 0, '-b', '3072');
    execFileSync('ssh-keygen', args, { stdio: 'ignore' });
    return readFileSync(join(dir, 'k.pub'), 'utf8').trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
