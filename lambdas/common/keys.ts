/**
 * SSH key pairs for the inject-key step: generation (RSA 4096, Ed25519), a strict parser for a
 * user-supplied OpenSSH public key line, and SHA256 fingerprints exactly as `ssh-keygen -lf`.
 *
 * Key generation is Node's native crypto (RSA 4096 in well under a second, where node-forge's
 * pure-JS generator takes ~40 s). node-forge writes the OpenSSH encodings: the `ssh-rsa` public
 * line and the PEM armour of the RSA private key. Only the node-forge modules needed are loaded,
 * so the Lambda bundle stays small. Ed25519 private keys are written as openssh-key-v1, the
 * only Ed25519 format OpenSSH reads (it rejects PKCS#8 Ed25519).
 *
 * No function here ever puts key material into an error message.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'crypto';

// Only the pieces of node-forge that are needed (the package index pulls in TLS, PKCS#12, ...).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const forge = require('node-forge/lib/forge') as typeof import('node-forge');
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('node-forge/lib/jsbn');
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('node-forge/lib/pem');
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('node-forge/lib/ssh');

export type KeyType = 'rsa' | 'ed25519';

export interface GeneratedKeyPair {
  /** One OpenSSH public key line: `<type> <base64> reset-access-<yyyy-mm-dd>`. */
  readonly publicKey: string;
  /** RSA: PKCS#1 PEM; Ed25519: openssh-key-v1. Both read by `ssh -i`. Ends with a newline. */
  readonly privateKey: string;
  /** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
  readonly type: KeyType;
}

export interface ParsedPublicKey {
  /** The key type, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** The base64 of the key blob, as given. */
  readonly base64: string;
  /** The comment, or '' when there is none. */
  readonly comment: string;
  readonly fingerprint: string;
}

/** A public key line that is not one safe OpenSSH public key. The message never echoes it. */
export class InvalidPublicKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPublicKeyError';
  }
}

export const SUPPORTED_PUBLIC_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;

/** Longest accepted public key line (an RSA 16384 line is about 2.8 KB). */
export const MAX_PUBLIC_KEY_LENGTH = 8192;
/** Longest accepted comment. */
export const MAX_COMMENT_LENGTH = 256;
/** Smallest RSA modulus accepted, in bits. */
export const MIN_RSA_BITS = 2048;

const COMMENT_PATTERN = /^[A-Za-z0-9@._+=:,/ -]*$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;

/** Make a new key pair. The comment of the public line is `reset-access-<yyyy-mm-dd>` (UTC). */
export function generateKeyPair(type: KeyType, now: Date = new Date()): GeneratedKeyPair {
  const comment = `reset-access-${now.toISOString().slice(0, 10)}`;
  if (type === 'rsa') {
    return generateRsa(comment);
  }
  if (type === 'ed25519') {
    return generateEd25519(comment);
  }
  throw new Error(`unsupported key type: ${String(type)} (use rsa or ed25519)`);
}

function generateRsa(comment: string): GeneratedKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 4096, publicExponent: 65537 });
  const jwk = publicKey.export({ format: 'jwk' });
  const n = new forge.jsbn.BigInteger(Buffer.from(jwk.n as string, 'base64url').toString('hex'), 16);
  const e = new forge.jsbn.BigInteger(Buffer.from(jwk.e as string, 'base64url').toString('hex'), 16);
  const forgePublic = { n, e } as unknown as import('node-forge').pki.rsa.PublicKey;
  const publicLine = forge.ssh.publicKeyToOpenSSH(forgePublic, comment).trim();
  const der = privateKey.export({ type: 'pkcs1', format: 'der' });
  const pem = forge.pem.encode({ type: 'RSA PRIVATE KEY', body: der.toString('binary') }).replace(/\r\n/g, '\n');
  return { publicKey: publicLine, privateKey: pem, fingerprint: fingerprintOf(publicLine), type: 'rsa' };
}

function generateEd25519(comment: string): GeneratedKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const publicLine = `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
  const privatePem = encodeOpenSshEd25519(pub, seed, comment);
  return { publicKey: publicLine, privateKey: privatePem, fingerprint: fingerprintOf(publicLine), type: 'ed25519' };
}

/**
 * The openssh-key-v1 container (PROTOCOL.key in OpenSSH): magic, cipher `none`, kdf `none`,
 * one public key, then the private section: two equal check ints, the key, the comment and
 * padding 1, 2, 3... to the cipher block size (8 for `none`).
 */
function encodeOpenSshEd25519(pub: Buffer, seed: Buffer, comment: string): string {
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  const parts = [
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ];
  let section = Buffer.concat(parts);
  const padLength = (8 - (section.length % 8)) % 8;
  const padding = Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1));
  section = Buffer.concat([section, padding]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'binary'),
    sshString('none'),
    sshString('none'),
    sshString(Buffer.alloc(0)),
    uint32(1),
    sshString(publicBlob),
    sshString(section),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** `SHA256:<base64 of the SHA-256 of the key blob, without padding>`, as `ssh-keygen -lf`. */
export function fingerprintOf(publicLine: string): string {
  const fields = publicLine.trim().split(/[ \t]+/);
  if (fields.length < 2 || !BASE64_PATTERN.test(fields[1])) {
    throw new InvalidPublicKeyError('not an OpenSSH public key line: expected "<type> <base64> [comment]"');
  }
  return fingerprintOfBlob(Buffer.from(fields[1], 'base64'));
}

function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Parse one user-supplied OpenSSH public key line, strictly: a supported type, base64 whose
 * inner type matches, a sane size, no options prefix, no second key, no control characters,
 * and a comment of safe characters only. Throws InvalidPublicKeyError naming the problem.
 */
export function parseOpenSshPublicKey(line: string): ParsedPublicKey {
  if (typeof line !== 'string' || line.trim() === '') {
    throw new InvalidPublicKeyError('the public key is empty: paste one OpenSSH public key line (the .pub file)');
  }
  if (/PRIVATE KEY|PuTTY-User-Key-File/.test(line)) {
    throw new InvalidPublicKeyError('this is a private key; paste the .pub line (it begins with ssh-ed25519, ssh-rsa or ecdsa-sha2-)');
  }
  if (line.length > MAX_PUBLIC_KEY_LENGTH) {
    throw new InvalidPublicKeyError(`the public key is longer than ${MAX_PUBLIC_KEY_LENGTH} characters`);
  }
  if (/[\r\n\0]/.test(line)) {
    throw new InvalidPublicKeyError('the public key must be a single line: it contains a newline, carriage return or NUL');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0b-\x1f\x7f]/.test(line)) {
    throw new InvalidPublicKeyError('the public key contains control characters');
  }
  const trimmed = line.trim();
  const match = /^(\S+)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(trimmed);
  if (!match) {
    throw new InvalidPublicKeyError('not an OpenSSH public key line: expected "<type> <base64> [comment]"');
  }
  const [, type, base64, rawComment] = match;
  if (!(SUPPORTED_PUBLIC_KEY_TYPES as readonly string[]).includes(type)) {
    if (/[=,"]/.test(type) || /^(command|from|environment|restrict|no-|permit|principals|tunnel|cert-authority|expiry-time)/.test(type)) {
      throw new InvalidPublicKeyError('options before the key (such as command= or from=) are not accepted: paste the key line alone');
    }
    throw new InvalidPublicKeyError(`unsupported key type: use one of ${SUPPORTED_PUBLIC_KEY_TYPES.join(', ')}`);
  }
  if (!BASE64_PATTERN.test(base64) || base64.length % 4 !== 0) {
    throw new InvalidPublicKeyError('the key data is not valid base64');
  }
  const comment = (rawComment ?? '').trim();
  if (comment.length > MAX_COMMENT_LENGTH) {
    throw new InvalidPublicKeyError(`the key comment is longer than ${MAX_COMMENT_LENGTH} characters`);
  }
  if (!COMMENT_PATTERN.test(comment)) {
    throw new InvalidPublicKeyError('the key comment may hold only letters, digits, spaces and @ . _ + = : , / -');
  }
  const commentWords = comment.split(/\s+/);
  if (commentWords.some((word) => (SUPPORTED_PUBLIC_KEY_TYPES as readonly string[]).includes(word) || /^AAAA[A-Za-z0-9+/]{20,}/.test(word))) {
    throw new InvalidPublicKeyError('more than one key given: paste exactly one public key line');
  }
  const blob = Buffer.from(base64, 'base64');
  if (blob.toString('base64') !== base64) {
    throw new InvalidPublicKeyError('the key data is not valid base64');
  }
  checkBlob(type, blob);
  return { type, base64, comment, fingerprint: fingerprintOfBlob(blob) };
}

/** Check the wire-format blob: its inner type, its fields, its size, nothing left over. */
function checkBlob(type: string, blob: Buffer): void {
  const reader = new BlobReader(blob);
  const innerType = reader.string().toString('latin1');
  if (innerType !== type) {
    throw new InvalidPublicKeyError('the key data does not match its type (the type before the base64 differs from the one inside it)');
  }
  switch (type) {
    case 'ssh-ed25519':
    case 'sk-ssh-ed25519@openssh.com':
      if (reader.string().length !== 32) {
        throw new InvalidPublicKeyError('the Ed25519 key is not 32 bytes');
      }
      break;
    case 'ssh-rsa': {
      const e = reader.string();
      const n = reader.string();
      const bits = mpintBits(n);
      if (e.length === 0 || e.length > 8) {
        throw new InvalidPublicKeyError('the RSA public exponent is invalid');
      }
      if (bits < MIN_RSA_BITS) {
        throw new InvalidPublicKeyError(`the RSA key has ${bits} bits: at least ${MIN_RSA_BITS} are required`);
      }
      if (bits > 16384) {
        throw new InvalidPublicKeyError('the RSA key is larger than 16384 bits');
      }
      break;
    }
    default: {
      // ecdsa-sha2-nistpNNN and sk-ecdsa-sha2-nistp256@openssh.com
      const curve = /nistp(256|384|521)/.exec(type)?.[1] as string;
      if (reader.string().toString('latin1') !== `nistp${curve}`) {
        throw new InvalidPublicKeyError('the ECDSA curve name does not match the key type');
      }
      const point = reader.string();
      const expected = { '256': 65, '384': 97, '521': 133 }[curve];
      if (point.length !== expected || point[0] !== 0x04) {
        throw new InvalidPublicKeyError('the ECDSA public point has the wrong size for its curve');
      }
    }
  }
  if (type.startsWith('sk-')) {
    const application = reader.string().toString('latin1');
    if (!application.startsWith('ssh:')) {
      throw new InvalidPublicKeyError('the security-key application must begin with "ssh:"');
    }
  }
  if (!reader.done()) {
    throw new InvalidPublicKeyError('the key data has trailing bytes');
  }
}

function mpintBits(n: Buffer): number {
  let i = 0;
  while (i < n.length && n[i] === 0) i += 1;
  if (i === n.length) return 0;
  return (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]));
}

class BlobReader {
  private offset = 0;
  constructor(private readonly blob: Buffer) {}

  string(): Buffer {
    if (this.offset + 4 > this.blob.length) {
      throw new InvalidPublicKeyError('the key data is truncated');
    }
    const length = this.blob.readUInt32BE(this.offset);
    const start = this.offset + 4;
    if (length > this.blob.length - start) {
      throw new InvalidPublicKeyError('the key data is truncated');
    }
    this.offset = start + length;
    return this.blob.subarray(start, start + length);
  }

  done(): boolean {
    return this.offset === this.blob.length;
  }
}

function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

function sshString(value: string | Buffer): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return Buffer.concat([uint32(data.length), data]);
}
