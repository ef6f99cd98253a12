/**
 * Step `setUserData` (Method=UserData): on the stopped instance, set the user data that adds the
 * key at the next boot (lambdas/common/user-data.ts), read it back, and start the instance (the
 * first of the method's two stop/start cycles ends here). Only after the original is saved. When the
 * Lambda makes the key pair, the private key goes only into its SecureString, as in injectKey; the
 * user data carries the public key alone.
 */
import { StartInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance } from '@common/ec2';
import { PlanError, UnexpectedStateError } from '@common/errors';
import { generateKeyPair } from '@common/keys';
import type { Logger } from '@common/log';
import { loadOwnPlan } from '@common/plan';
import { prepareRunKey } from '@common/stored-key';
import { buildUserData, userDataParameterName } from '@common/user-data';
import { readInjectScript, readSavedUserData, writeUserData } from '@common/user-data-store';
import type { StepInput } from '@common/validation';

export interface SetUserDataConfig {
  readonly keyId: string;
  readonly documentName: string;
}

export interface SetUserDataDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: SetUserDataConfig;
  readonly generate?: typeof generateKeyPair;
}

export interface SetUserDataResult {
  readonly fingerprint: string;
  /** `none` when the user gave the public key. */
  readonly keyParameterName: string;
  readonly bytes: number;
}

export async function setUserData(deps: SetUserDataDeps, input: StepInput): Promise<SetUserDataResult> {
  const { ec2, ssm, log, config } = deps;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  const state = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
  if (state !== 'stopped') {
    throw new UnexpectedStateError(`Instance ${instanceId} is ${state}; user data can be changed only while it is stopped`);
  }
  if (!(await readSavedUserData(ssm, instanceId))) {
    throw new PlanError(`No saved original user data (${userDataParameterName(instanceId)}): saveUserData did not complete; not changing the user data`);
  }

  const { publicKey, keyParameterName: parameterName } = await prepareRunKey({ ssm, keyId: config.keyId, generate: deps.generate }, plan, instanceId, executionId);

  const script = await readInjectScript(ssm, config.documentName);
  const built = buildUserData({ script, publicKey, users: plan.inputs.users, executionId });
  await writeUserData(ec2, instanceId, built.bytes);
  await ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
  log.info('user data set and the instance started: the key is added at this boot', { instanceId, fingerprint: built.fingerprint, bytes: built.bytes.length });
  return { fingerprint: built.fingerprint, keyParameterName: parameterName, bytes: built.bytes.length };
}
