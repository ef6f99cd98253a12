/**
 * A user-supplied OpenSSH public key: a strict parser for one `authorized_keys` line, and SHA256
 * fingerprints exactly as `ssh-keygen -lf` prints them. Also the two SSH wire-format encoders
 * (uint32, string) that key generation shares.
 *
 * Kept apart from key generation (keys.ts) so that a Lambda that only checks a public key
 * (preflight) does not bundle node-forge. No function here ever puts key material into an error
 * message.
 */
import { createHash } from 'crypto';

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

export function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

export function sshString(value: string | Buffer): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return Buffer.concat([uint32(data.length), data]);
}
