/**
 * The key a run puts in: the user's public key, or a new pair whose private half is stored as the
 * SecureString `/ec2rl/openssh/<instance-id>/key` under the stack's KMS key. One definition for
 * every step that puts a key in (injectKey for the volume swap and the online method,
 * setUserData for the user data method).
 */
import { PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { UnexpectedStateError } from '@common/errors';
import { fingerprintOf, generateKeyPairAsync, type GeneratedKeyPair, type KeyType } from '@common/keys';
import { keyParameterName } from '@common/names';
import { updatePlan, type Plan } from '@common/plan';

export interface RunKey {
  readonly publicKey: string;
  readonly fingerprint: string;
  /** rsa, ed25519, or the user's key's own type. */
  readonly keyType: string;
  /** The SecureString with the private key, or `none` when the user gave the public key. */
  readonly keyParameterName: string;
}

export interface RunKeyDeps {
  readonly ssm: SSMClient;
  /** The stack's KMS key for the SecureString. */
  readonly keyId: string;
  /** @default generateKeyPairAsync (sync generators are accepted too, e.g. in tests) */
  readonly generate?: (type: KeyType) => GeneratedKeyPair | Promise<GeneratedKeyPair>;
}

const SHORT_TYPES: Record<string, string> = { 'ssh-rsa': 'rsa', 'ssh-ed25519': 'ed25519' };

/**
 * The user's public key from the plan, or a new pair: its private key stored, then recorded in
 * the plan (after the write, so that an earlier run's key under the same name is never deleted
 * for a write that failed, and before the key is sent anywhere, so that restore deletes a key
 * that was never put in).
 */
export async function prepareRunKey(deps: RunKeyDeps, plan: Plan, instanceId: string, executionId: string): Promise<RunKey> {
  return storeRunKey(deps, plan, await generateRunKey(deps, plan), instanceId, executionId);
}

/**
 * The generation alone: no AWS call, nothing stored. undefined when the user gave the public key.
 * Started first by a handler that has other calls to make meanwhile (inject-key, online), then
 * handed to storeRunKey.
 */
export async function generateRunKey(deps: Pick<RunKeyDeps, 'generate'>, plan: Plan): Promise<GeneratedKeyPair | undefined> {
  if (plan.inputs.publicKey !== '') return undefined;
  return (deps.generate ?? generateKeyPairAsync)(plan.inputs.keyType);
}

/** Stores a generated pair's private key and records it in the plan (see prepareRunKey); the user's key as it is. */
export async function storeRunKey(deps: RunKeyDeps, plan: Plan, pair: GeneratedKeyPair | undefined, instanceId: string, executionId: string): Promise<RunKey> {
  if (pair === undefined) {
    const publicKey = plan.inputs.publicKey;
    const type = publicKey.split(' ')[0] ?? '';
    return { publicKey, fingerprint: fingerprintOf(publicKey), keyType: SHORT_TYPES[type] ?? type, keyParameterName: 'none' };
  }
  const name = keyParameterName(instanceId);
  try {
    // Tags cannot be combined with Overwrite in PutParameter; the path and the KMS key mark it.
    await deps.ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: pair.privateKey,
        Type: 'SecureString',
        KeyId: deps.keyId,
        Overwrite: true,
        Description: `ec2-reset-access: SSH private key (${pair.type}, ${pair.fingerprint}) for ${instanceId}, execution ${executionId}`,
      }),
    );
  } catch (err) {
    // The SDK error never carries the request's Value; a message of our own, to be sure.
    const code = err instanceof Error ? err.name : 'error';
    throw new UnexpectedStateError(`Could not store the private key in ${name}: ${code}`);
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.created.keyParameterName = name;
  });
  return { publicKey: pair.publicKey, fingerprint: pair.fingerprint, keyType: pair.type, keyParameterName: name };
}
