/**
 * The Windows path (issue 15), defined once for the steps that share it: the runbook's Mode
 * parameter, the parameter names, the run's password key, the windows-reset Command document's
 * report and console line (the contract of runbooks/windows-reset.yaml).
 *
 * A Windows target is reset with the volume swap on a Linux helper that reads NTFS: the helper's
 * script makes the launch agent set a new Administrator password at the next boot, and the run then
 * starts the instance and waits for that password:
 * - EnablePasswordGeneration (default, what AWSSupport-ResetAccess does): the agent encrypts it to
 *   the instance's key pair and EC2 returns it from GetPasswordData ("The password is encrypted using
 *   the key pair that you specified when you launched the instance", and until it is available "the
 *   output returns an empty string",
 *   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetPasswordData.html);
 * - NewPassword (the key pair is lost too): a one-shot boot action makes the password on the
 *   instance and writes it to the serial console encrypted (RSA-OAEP) to a key pair this run made;
 *   the run decrypts it and stores it as a SecureString. The password is never in clear text on the
 *   volume, in user data, a tag, a log or an output.
 */
import { constants, generateKeyPairSync, privateDecrypt } from 'crypto';
import { InvalidInputError } from './errors';

/** The runbook's Mode parameter (allowedValues), Windows only. */
export const WINDOWS_MODES = ['EnablePasswordGeneration', 'NewPassword'] as const;
export type WindowsMode = (typeof WINDOWS_MODES)[number];
export const DEFAULT_WINDOWS_MODE: WindowsMode = 'EnablePasswordGeneration';

/** The Mode parameter; absent means its default. */
export function validateMode(value: unknown, field = 'Mode'): WindowsMode {
  if (value === undefined) return DEFAULT_WINDOWS_MODE;
  if (typeof value === 'string' && (WINDOWS_MODES as readonly string[]).includes(value)) return value as WindowsMode;
  throw new InvalidInputError(`${field} must be one of ${WINDOWS_MODES.join(', ')}`);
}

/** Path (no leading or trailing slash) of the new Administrator passwords (Mode=NewPassword). */
export const WINDOWS_PASSWORD_PATH = 'ec2rl/windows';
/** Path (no leading or trailing slash) of a run's own RSA private key (Mode=NewPassword), deleted at the end of the run. */
export const WINDOWS_RUN_KEY_PATH = 'reset-access/windows-run-keys';

/** `/ec2rl/windows/<instance-id>/password`: the SecureString with the new password. */
export function passwordParameterName(instanceId: string): string {
  return `/${WINDOWS_PASSWORD_PATH}/${instanceId}/password`;
}

/** `/reset-access/windows-run-keys/<instance-id>`: the run's private key, only while the run waits for the password. */
export function runKeyParameterName(instanceId: string): string {
  return `/${WINDOWS_RUN_KEY_PATH}/${instanceId}`;
}

/** The platform as preflight reads it from DescribeInstances (Platform is `windows` for Windows, absent otherwise; PlatformDetails names the OS). */
export function isWindows(instance: { Platform?: string; PlatformDetails?: string }): boolean {
  return instance.Platform?.toLowerCase() === 'windows' || /windows/i.test(instance.PlatformDetails ?? '');
}

/** branchOnPlatform's token in preflight's Payload (as MethodToken: no character JSON escapes, no '|' elsewhere). */
export function platformToken(platform: 'windows' | 'linux'): string {
  return `|platform:${platform}|`;
}

/**
 * The run's key pair for Mode=NewPassword: RSA 2048. The public half goes to the helper as the
 * windows-reset document's PasswordKey: base64 of the DER SubjectPublicKeyInfo (one line, about 392
 * characters, no secret); the private half (PKCS#8 PEM) only into the run's SecureString.
 */
export function generatePasswordKey(): { publicKeyDerBase64: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKeyDerBase64: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/**
 * The password from the boot action's ciphertext: RSA-OAEP with SHA-1 (the contract of the
 * windows-reset document; what .NET's RSACryptoServiceProvider.Encrypt(data, fOAEP: true) makes),
 * UTF-8. Throws without the ciphertext or the key in the message.
 */
export function decryptPassword(privateKeyPem: string, ciphertextBase64: string): string {
  try {
    return privateDecrypt({ key: privateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(ciphertextBase64, 'base64')).toString('utf8');
  } catch {
    throw new Error('The console line does not decrypt with this run\'s key');
  }
}

/** What the boot action reported on the serial console for this run, if anything yet. */
export type ConsoleResult = { kind: 'password'; ciphertext: string } | { kind: 'error'; reason: string };

/**
 * This run's line in the console output: `ec2-reset-access:<RunId>:password:<base64>` or
 * `ec2-reset-access:<RunId>:error:<short reason>` (the contract with runbooks/windows-reset.yaml).
 * Another run's lines are ignored; the last line of this run counts.
 */
export function findConsoleResult(console: string, runId: string): ConsoleResult | undefined {
  let found: ConsoleResult | undefined;
  const prefix = `ec2-reset-access:${runId}:`;
  for (const raw of console.split(/\r?\n/)) {
    const at = raw.indexOf(prefix);
    if (at < 0) continue;
    const rest = raw.slice(at + prefix.length).trim();
    const pw = /^password:([A-Za-z0-9+/]+={0,2})$/.exec(rest);
    if (pw) found = { kind: 'password', ciphertext: pw[1] };
    else if (rest.startsWith('error:')) found = { kind: 'error', reason: rest.slice(6, 200).replace(/[^\x20-\x7e]/g, '?') };
  }
  return found;
}

/** The windows-reset document's JSON report (last line of its standard output). */
export interface WindowsReport {
  version: number;
  status: 'ok' | 'error';
  agent?: string;
  agentVersion?: string;
  mode?: string;
  changes: Array<{ path: string; action: string }>;
  warnings: string[];
  error?: string;
}

/** The report, or undefined when the last non-empty line is not one. */
export function parseWindowsReport(stdout: string | undefined): WindowsReport | undefined {
  const last = (stdout ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '').pop();
  if (!last) return undefined;
  try {
    const v = JSON.parse(last) as Partial<WindowsReport> | null;
    if (!v || typeof v !== 'object' || (v.status !== 'ok' && v.status !== 'error')) return undefined;
    return {
      version: typeof v.version === 'number' ? v.version : 0,
      status: v.status,
      agent: typeof v.agent === 'string' ? v.agent : undefined,
      agentVersion: typeof v.agentVersion === 'string' ? v.agentVersion : undefined,
      mode: typeof v.mode === 'string' ? v.mode : undefined,
      changes: Array.isArray(v.changes) ? v.changes.filter((c) => c && typeof c.path === 'string').map((c) => ({ path: c.path, action: String(c.action) })) : [],
      warnings: Array.isArray(v.warnings) ? v.warnings.map(String) : [],
      error: typeof v.error === 'string' ? v.error : undefined,
    };
  } catch {
    return undefined;
  }
}
