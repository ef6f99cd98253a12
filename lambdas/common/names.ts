/**
 * The SSM parameter paths this product writes, defined once: the Lambdas name their parameters
 * with them and the CDK app grants exactly these paths (lib/constants.ts). No imports, so the CDK
 * app can use it without loading the SDK.
 */

/** Path (no leading or trailing slash) of the plan records, which are also the locks. */
export const LOCK_PATH = 'reset-access/locks';
/** Path (no leading or trailing slash) of the generated private keys (as AWSSupport-ResetAccess). */
export const KEY_PATH = 'ec2rl/openssh';

/**
 * Path (no leading or trailing slash) under which a user may keep a public key line too long for
 * an Automation parameter (RSA 3072/4096), named by the runbook's PublicKeyParameter.
 */
export const PUBLIC_KEY_PATH = 'reset-access/public-keys';

/**
 * Path (no leading or trailing slash) of a RevokeKey fleet's parameters:
 * `/reset-access/revoke/<parent execution id>/spec` (what the children run) and `.../report` (the
 * fleet report).
 */
export const REVOKE_PATH = 'reset-access/revoke';

/** `/reset-access/locks/<instance-id>`: the plan record and lock of one instance. */
export function lockParameterName(instanceId: string): string {
  return `/${LOCK_PATH}/${instanceId}`;
}

/** `/ec2rl/openssh/<instance-id>/key`: the SecureString holding a generated private key. */
export function keyParameterName(instanceId: string): string {
  return `/${KEY_PATH}/${instanceId}/key`;
}

/**
 * The diagnostics_channel on which keys.ts announces the start of a key generation (the key type
 * only, never key material); the local twin listens to charge it on its clock (local/lambda-charge.ts).
 */
export const KEYGEN_CHANNEL = 'ec2-reset-access:keygen';
