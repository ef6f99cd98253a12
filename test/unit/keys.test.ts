import { execFileSync } from 'child_process';
import { generateKeyPairSync } from 'crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import {
  fingerprintOf,
  generateKeyPair,
  InvalidPublicKeyError,
  parseOpenSshPublicKey,
} from '@common/keys';

/** Run ssh-keygen on a key written to a 0600 file in a private temp dir, then delete it. */
function withKeyFile<T>(content: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'keys-test-'));
  try {
    const path = join(dir, 'key');
    writeFileSync(path, content, { mode: 0o600 });
    chmodSync(path, 0o600);
    return fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function sshKeygen(args: string[]): string {
  return execFileSync('ssh-keygen', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Public key lines made by ssh-keygen itself, one per type. */
function sshKeygenPublic(type: string, bits?: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'keys-test-'));
  try {
    const path = join(dir, 'k');
    sshKeygen(['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'me@host', '-f', path]);
    return execFileSync('cat', [`${path}.pub`], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('generateKeyPair', () => {
  it.each(['rsa', 'ed25519'] as const)('makes a %s pair that ssh-keygen reads, with the same public key and fingerprint', (type) => {
    // Prepare / Act
    const started = Date.now();
    const pair = generateKeyPair(type, new Date('2026-03-04T10:00:00Z'));
    const elapsed = Date.now() - started;

    // Assess
    expect(pair.type).toBe(type);
    expect(elapsed).toBeLessThan(10_000);
    expect(pair.publicKey).toMatch(type === 'rsa' ? /^ssh-rsa AAAA\S+ reset-access-2026-03-04$/ : /^ssh-ed25519 AAAA\S+ reset-access-2026-03-04$/);
    expect(pair.privateKey).toMatch(type === 'rsa' ? /^-----BEGIN RSA PRIVATE KEY-----\n/ : /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    expect(pair.privateKey.endsWith('-----\n')).toBe(true);
    const derived = withKeyFile(pair.privateKey, (path) => sshKeygen(['-y', '-f', path]).trim());
    expect(derived.split(' ').slice(0, 2)).toEqual(pair.publicKey.split(' ').slice(0, 2));
    const listed = withKeyFile(pair.publicKey + '\n', (path) => sshKeygen(['-lf', path]));
    expect(listed).toContain(` ${pair.fingerprint} `);
    expect(listed).toContain(type === 'rsa' ? '4096' : '256');
    expect(parseOpenSshPublicKey(pair.publicKey).fingerprint).toBe(pair.fingerprint);
  });

  it('makes a different key every time', () => {
    expect(generateKeyPair('ed25519').publicKey).not.toBe(generateKeyPair('ed25519').publicKey);
  });

  it('refuses an unknown type', () => {
    expect(() => generateKeyPair('dsa' as never)).toThrow(/unsupported key type/);
  });
});

describe('fingerprintOf', () => {
  it.each([
    ['ed25519', undefined],
    ['rsa', 2048],
    ['ecdsa', 256],
    ['ecdsa', 384],
    ['ecdsa', 521],
  ])('matches ssh-keygen -lf for %s %s', (type, bits) => {
    const line = sshKeygenPublic(type, bits);
    const listed = withKeyFile(line + '\n', (path) => sshKeygen(['-lf', path]));
    expect(listed.split(' ')[1]).toBe(fingerprintOf(line));
    expect(parseOpenSshPublicKey(line).fingerprint).toBe(fingerprintOf(line));
  });
});

describe('parseOpenSshPublicKey', () => {
  const ed = sshKeygenPublic('ed25519');
  const [edType, edBase64] = ed.split(' ');

  it('returns type, base64, comment and fingerprint', () => {
    const parsed = parseOpenSshPublicKey(`${edType} ${edBase64} alice@laptop`);
    expect(parsed).toEqual({ type: 'ssh-ed25519', base64: edBase64, comment: 'alice@laptop', fingerprint: fingerprintOf(ed) });
  });

  it('accepts a key without a comment, and surrounding spaces', () => {
    expect(parseOpenSshPublicKey(`  ${edType} ${edBase64}  `).comment).toBe('');
  });

  it('accepts the security-key types', () => {
    const skEd = Buffer.concat([str('sk-ssh-ed25519@openssh.com'), str(Buffer.alloc(32, 7)), str('ssh:')]).toString('base64');
    expect(parseOpenSshPublicKey(`sk-ssh-ed25519@openssh.com ${skEd} yubi`).type).toBe('sk-ssh-ed25519@openssh.com');
    const point = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
    const skEc = Buffer.concat([str('sk-ecdsa-sha2-nistp256@openssh.com'), str('nistp256'), str(point), str('ssh:')]).toString('base64');
    expect(parseOpenSshPublicKey(`sk-ecdsa-sha2-nistp256@openssh.com ${skEc}`).type).toBe('sk-ecdsa-sha2-nistp256@openssh.com');
  });

  const rsa1024 = (() => {
    const jwk = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const n = Buffer.concat([Buffer.from([0]), Buffer.from(jwk.n as string, 'base64url')]);
    return `ssh-rsa ${Buffer.concat([str('ssh-rsa'), str(Buffer.from(jwk.e as string, 'base64url')), str(n)]).toString('base64')}`;
  })();

  it.each([
    ['empty', '', /empty/],
    ['only spaces', '   ', /empty/],
    ['no base64', 'ssh-ed25519', /expected/],
    ['an options prefix', `command="/bin/sh" ${ed}`, /options/],
    ['a from= prefix', `from="10.0.0.1" ${ed}`, /options/],
    ['a restrict prefix', `restrict ${ed}`, /options/],
    ['an unknown type', `ssh-dss ${edBase64}`, /unsupported key type/],
    ['a second key on the line', `${ed} ${ed}`, /more than one key/],
    ['two lines', `${ed}\n${ed}`, /single line/],
    ['a carriage return', `${ed}\r`, /single line/],
    ['a NUL', `${edType} ${edBase64}\0x`, /single line/],
    ['a tab in the comment', `${edType} ${edBase64} a\tb`, /safe|letters/],
    ['unsafe comment characters', `${edType} ${edBase64} $(reboot)`, /comment may hold only/],
    ['a backtick in the comment', `${edType} ${edBase64} \`id\``, /comment may hold only/],
    ['a too long comment', `${edType} ${edBase64} ${'a'.repeat(300)}`, /longer than 256/],
    ['a too long line', `${edType} ${'A'.repeat(9000)}`, /longer than 8192/],
    ['bad base64', `${edType} AAAA$$$$`, /base64/],
    ['base64 of the wrong length', `${edType} ${edBase64.slice(0, -1)}`, /base64/],
    ['an inner type that differs', `ssh-rsa ${edBase64}`, /does not match its type/],
    ['truncated data', `${edType} ${Buffer.from(edBase64, 'base64').subarray(0, 30).toString('base64')}`, /truncated/],
    ['trailing bytes', `${edType} ${Buffer.concat([Buffer.from(edBase64, 'base64'), Buffer.alloc(3)]).toString('base64')}`, /trailing/],
    ['RSA below 2048 bits', rsa1024, /1024 bits: at least 2048/],
  ])('refuses %s', (_name, input, message) => {
    expect(() => parseOpenSshPublicKey(input)).toThrow(InvalidPublicKeyError);
    expect(() => parseOpenSshPublicKey(input)).toThrow(message);
  });

  it.each(['rsa', 'ed25519'] as const)('refuses a pasted %s PRIVATE key with its own message that never echoes it', (type) => {
    const { privateKey } = generateKeyPair(type);
    let caught: unknown;
    try {
      parseOpenSshPublicKey(privateKey);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidPublicKeyError);
    const error = caught as InvalidPublicKeyError;
    expect(error.name).toBe('InvalidPublicKeyError');
    expect(error.message).toMatch(/this is a private key; paste the \.pub line/);
    const body = privateKey.split('\n')[1];
    expect(error.message).not.toContain(body.slice(0, 16));
    expect(String(error.stack)).not.toContain(body.slice(0, 16));
  });

  it('never echoes a refused input', () => {
    const secretish = `${edType} ${edBase64} comment-with-$ecret`;
    expect(() => parseOpenSshPublicKey(secretish)).toThrow(InvalidPublicKeyError);
    try {
      parseOpenSshPublicKey(secretish);
    } catch (error) {
      expect((error as Error).message).not.toContain('ecret');
      expect((error as Error).message).not.toContain(edBase64);
    }
  });
});

function str(value: string | Buffer): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

describe('bundle size', () => {
  it('keys.ts bundles small: only the node-forge pieces it needs', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const esbuild = require('esbuild') as typeof import('esbuild');
    const result = await esbuild.build({
      entryPoints: [join(__dirname, '..', '..', 'lambdas', 'common', 'keys.ts')],
      bundle: true,
      minify: true,
      platform: 'node',
      target: 'node20',
      write: false,
      metafile: true,
    });
    const size = result.outputFiles[0].contents.length;
    expect(size).toBeLessThan(150 * 1024);
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((p) => /node-forge\/lib\/(tls|pkcs12|x509|rsa|prime)\.js$/.test(p))).toEqual([]);
  });
});
