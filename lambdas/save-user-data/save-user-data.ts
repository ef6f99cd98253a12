/**
 * Step `saveUserData` (Method=UserData): before anything on the instance changes, keep its user
 * data byte for byte in a SecureString under the stack's KMS key, and make sure ours fits EC2's
 * 16 KB. Refuses, changing nothing, user data too large to keep (over 8 KB saved) and a key too
 * long for the user data.
 *
 * Safe to run twice and after a run that died: when the instance already carries user data of
 * this product, the saved copy is the original and is kept as it is.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { RefusedError } from '@common/errors';
import { generateKeyPair } from '@common/keys';
import type { Logger } from '@common/log';
import { loadOwnPlan } from '@common/plan';
import { buildUserData, isOurUserData, userDataParameterName, UserDataTooLargeError } from '@common/user-data';
import { checkUserDataFits, readInjectScript, readSavedUserData, readUserDataBase64, writeSavedUserData } from '@common/user-data-store';
import type { StepInput } from '@common/validation';

export interface SaveUserDataConfig {
  /** The KMS key (ARN) that encrypts the SecureString. */
  readonly keyId: string;
  /** The inject-key Command document: its script goes into our user data. */
  readonly documentName: string;
}

export interface SaveUserDataDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: SaveUserDataConfig;
}

export interface SaveUserDataResult {
  readonly parameterName: string;
  /** Bytes of the original user data (0: none). */
  readonly originalBytes: number;
  readonly tier: 'Intelligent-Tiering' | 'kept';
  /** Bytes of the user data that will be set (gzip), of EC2's 16384. */
  readonly ourBytes: number;
}

export async function saveUserData(deps: SaveUserDataDeps, input: StepInput): Promise<SaveUserDataResult> {
  const { ec2, ssm, log, config } = deps;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  const parameterName = userDataParameterName(instanceId);

  // Ours must fit before anything is saved or changed. A generated key is made in setUserData;
  // here one of the same type stands in for the size (its private half is discarded at once).
  const publicKey = plan.inputs.publicKey !== '' ? plan.inputs.publicKey : generateKeyPair(plan.inputs.keyType).publicKey;
  const script = await readInjectScript(ssm, config.documentName);
  let ourBytes: number;
  try {
    ourBytes = buildUserData({ script, publicKey, users: plan.inputs.users, executionId }).bytes.length;
  } catch (err) {
    if (err instanceof UserDataTooLargeError) throw new RefusedError(`${err.message}. Nothing was changed`);
    throw err;
  }

  const current = await readUserDataBase64(ec2, instanceId);
  if (isOurUserData(Buffer.from(current, 'base64'))) {
    const saved = await readSavedUserData(ssm, instanceId);
    if (!saved) {
      throw new RefusedError(
        `Instance ${instanceId} carries user data of an earlier ec2-reset-access run and no saved original (${parameterName}); nothing was changed. Put the instance's own user data back (stopped: aws ec2 modify-instance-attribute), then run again`,
      );
    }
    log.info('the instance carries our user data from an earlier attempt: the saved original is kept', { instanceId, parameterName });
    return { parameterName, originalBytes: Buffer.from(saved.base64, 'base64').length, tier: 'kept', ourBytes };
  }

  const originalBytes = await checkUserDataFits(ec2, instanceId);
  const tier = await writeSavedUserData(ssm, instanceId, executionId, current, config.keyId);
  log.info('original user data saved', { instanceId, parameterName, originalBytes, tier, ourBytes });
  return { parameterName, originalBytes, tier, ourBytes };
}
