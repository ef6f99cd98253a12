/**
 * `--public-key FILE`: one OpenSSH public key line. A line up to 512 characters goes in the
 * runbook's PublicKey parameter; a longer one (RSA 3072/4096) through PublicKeyParameter, a String
 * parameter under /reset-access/public-keys/, because every Automation parameter value is at most
 * 512 characters (AutomationParameterValue, max 512, botocore data/ssm/2014-11-06/service-2.json).
 * The runbook's preflight validates the key itself; this only refuses what is plainly not a public
 * key line, and never repeats the file's content in an error.
 */
import { PUBLIC_KEY_PATH } from '../lambdas/common/names';
import { UsageError } from './exit-codes';

export const MAX_PARAMETER_VALUE = 512;

export function parsePublicKeyFile(text: string, file: string): string {
  if (/PRIVATE KEY/.test(text)) {
    throw new UsageError(`${file} holds a private key, not a public key: give the .pub file (its content is not shown)`);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw new UsageError(`${file} must hold exactly one public key line (it has ${lines.length})`);
  const line = lines[0];
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( .*)?$/.test(line)) {
    throw new UsageError(`${file} is not an OpenSSH public key line (type, base64 key, optional comment)`);
  }
  return line;
}

/** True when the line must go through PublicKeyParameter. */
export function needsKeyParameter(line: string): boolean {
  return line.length > MAX_PARAMETER_VALUE;
}

/** `/reset-access/public-keys/cli-<instance-id>-<suffix>` (pattern of the runbook: [A-Za-z0-9_.-]{1,128}). */
export function publicKeyParameterName(instanceId: string, suffix: string): string {
  return `/${PUBLIC_KEY_PATH}/cli-${instanceId}-${suffix}`;
}
