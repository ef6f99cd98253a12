/**
 * SSH key pairs for the inject-key step: generation of RSA 4096 and Ed25519 pairs in the formats
 * OpenSSH reads. Parsing a user's public key and fingerprints live in public-key.ts (re-exported
 * here), so that preflight, which only checks a key, does not bundle node-forge.
 *
 * Key generation is Node's native crypto (RSA 4096: a median 1.5 s of CPU on the bench machine, more on a
 * Lambda with less than one vCPU: bench/results/latest.json; node-forge's pure-JS generator takes ~40 s). node-forge writes the OpenSSH encodings: the `ssh-rsa` public
 * line and the PEM armour of the RSA private key. Only the node-forge modules needed are loaded,
 * so the Lambda bundle stays small. Ed25519 private keys are written as openssh-key-v1, the
 * only Ed25519 format OpenSSH reads (it rejects PKCS#8 Ed25519).
 *
 * No function here ever puts key material into an error message.
 */
import { generateKeyPair as generateKeyPairCallback, generateKeyPairSync, randomBytes, type KeyObject } from 'crypto';
import { channel } from 'diagnostics_channel';
import { promisify } from 'util';
import { KEYGEN_CHANNEL } from './names';
import { fingerprintOf, sshString, uint32 } from './public-key';

export * from './public-key';

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

/**
 * Where a key generation starts and ends, for an observer in the same process (Node's
 * diagnostics_channel: publishing costs nothing when nobody subscribes). The local twin subscribes
 * to charge the generation on its virtual clock from the moment it starts (local/agent.ts); the
 * message carries the key type only, never key material.
 */
const keygenChannel = channel(KEYGEN_CHANNEL);

/** Make a new key pair. The comment of the public line is `reset-access-<yyyy-mm-dd>` (UTC). */
export function generateKeyPair(type: KeyType, now: Date = new Date()): GeneratedKeyPair {
  const comment = commentFor(now);
  keygenChannel.publish({ phase: 'start', type });
  if (type === 'rsa') {
    const pair = generateKeyPairSync('rsa', { modulusLength: 4096, publicExponent: 65537 });
    return encodeRsa(pair.publicKey, pair.privateKey, comment);
  }
  if (type === 'ed25519') {
    return generateEd25519(comment);
  }
  throw new Error(`unsupported key type: ${String(type)} (use rsa or ed25519)`);
}

const generateRsaAsync = promisify(generateKeyPairCallback);

/**
 * The same key pair, made without blocking the event loop: Node's crypto.generateKeyPair runs the
 * RSA prime search on the libuv thread pool (https://nodejs.org/api/crypto.html#cryptogeneratekeypairtype-options-callback),
 * so the handler's AWS calls that do not need the key go on meanwhile (inject-key, online).
 */
export async function generateKeyPairAsync(type: KeyType, now: Date = new Date()): Promise<GeneratedKeyPair> {
  const comment = commentFor(now);
  if (type === 'rsa') {
    keygenChannel.publish({ phase: 'start', type });
    const pair = await generateRsaAsync('rsa', { modulusLength: 4096, publicExponent: 65537 });
    return encodeRsa(pair.publicKey, pair.privateKey, comment);
  }
  return generateKeyPair(type, now);
}

const commentFor = (now: Date): string => `reset-access-${now.toISOString().slice(0, 10)}`;

function encodeRsa(publicKey: KeyObject, privateKey: KeyObject, comment: string): GeneratedKeyPair {
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
