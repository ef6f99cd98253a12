/**
 * Step `injectKey`: take the user's public key, or make a key pair and keep its private half only
 * in a SecureString; then send the inject-key command to the helper with the public key alone.
 *
 * The private key goes into PutParameter's Value and nowhere else: not the result, the plan, a
 * log line or an error message.
 */
import { PutParameterCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { fingerprintOf, generateKeyPair } from '@common/keys';
import { PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';
import { keyParameterName } from '@common/names';

export interface InjectConfig {
  /** The KMS key (ARN) that encrypts the SecureString. */
  readonly keyId: string;
  readonly documentName: string;
}

export interface InjectDeps {
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: InjectConfig;
  readonly generate?: typeof generateKeyPair;
}

export interface InjectResult {
  readonly commandId: string;
  /** `none` when the user gave the public key. */
  readonly keyParameterName: string;
  readonly fingerprint: string;
  readonly keyType: string;
}

/** How long the command may wait for delivery to the helper (SendCommand TimeoutSeconds). */
export const COMMAND_TIMEOUT_SECONDS = 300;

export function keyParameterNameFor(instanceId: string): string {
  return keyParameterName(instanceId);
}

const SHORT_TYPES: Record<string, string> = { 'ssh-rsa': 'rsa', 'ssh-ed25519': 'ed25519' };

export async function injectKey(deps: InjectDeps, input: StepInput): Promise<InjectResult> {
  const { ssm, config } = deps;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  const helperId = plan.created.helperInstanceId;
  if (!helperId) throw new PlanError(`The plan of ${instanceId} has no helper instance: launchHelper did not complete`);

  let publicKey: string;
  let keyParameterName = 'none';
  let fingerprint: string;
  let keyType: string;
  if (plan.inputs.publicKey !== '') {
    publicKey = plan.inputs.publicKey;
    fingerprint = fingerprintOf(publicKey);
    const type = publicKey.split(' ')[0] ?? '';
    keyType = SHORT_TYPES[type] ?? type;
  } else {
    const pair = (deps.generate ?? generateKeyPair)(plan.inputs.keyType);
    publicKey = pair.publicKey;
    fingerprint = pair.fingerprint;
    keyType = pair.type;
    keyParameterName = keyParameterNameFor(instanceId);
    try {
      // Tags cannot be combined with Overwrite in PutParameter; the path and the KMS key mark it.
      await ssm.send(
        new PutParameterCommand({
          Name: keyParameterName,
          Value: pair.privateKey,
          Type: 'SecureString',
          KeyId: config.keyId,
          Overwrite: true,
          Description: `ec2-reset-access: SSH private key (${pair.type}, ${pair.fingerprint}) for ${instanceId}, execution ${executionId}`,
        }),
      );
    } catch (err) {
      // The SDK error never carries the request's Value; rethrow a message of our own to be sure.
      const code = err instanceof Error ? err.name : 'error';
      throw new UnexpectedStateError(`Could not store the private key in ${keyParameterName}: ${code}`);
    }
    // Recorded after the write (an earlier run's key under the same name is never deleted for a
    // write that failed) and before SendCommand (restore deletes a key that was never injected).
    await updatePlan(ssm, instanceId, executionId, (p) => {
      p.created.keyParameterName = keyParameterName;
    });
    deps.log.info('private key stored', { instanceId, parameter: keyParameterName, fingerprint });
  }

  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.documentName,
      InstanceIds: [helperId],
      Parameters: {
        VolumeId: [plan.instance.rootVolumeId],
        PublicKey: [publicKey],
        Users: [plan.inputs.users.join(',')],
        Root: [''],
      },
      TimeoutSeconds: COMMAND_TIMEOUT_SECONDS,
      Comment: `ec2-reset-access ${executionId} for ${instanceId}`.slice(0, 100),
    }),
  );
  const commandId = out.Command?.CommandId;
  if (!commandId) throw new UnexpectedStateError(`SendCommand to helper ${helperId} returned no command id`);
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.created.commandId = commandId;
    p.progress.phase = 'injection-sent';
  });
  deps.log.info('inject command sent', { instanceId, helperId, commandId, fingerprint });
  return { commandId, keyParameterName, fingerprint, keyType };
}
