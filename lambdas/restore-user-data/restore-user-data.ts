/**
 * Step `restoreUserData` (Method=UserData, after the second stop): put the original user data back
 * byte for byte (none stays none), check it by reading it back, then delete the saved copy.
 * putBackUserData is also what the converging restore calls (lambdas/restore) when a run fails or
 * is cancelled with our user data on the instance.
 *
 * Safe to run twice: with no saved copy and user data that is not ours, there is nothing to do;
 * with no saved copy and our user data still on the instance, it refuses loudly (the original is
 * gone: the message says what to do).
 */
import { StopInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, pollUntil, type Clock } from '@common/ec2';
import { RestoreError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan } from '@common/plan';
import { isOurUserData, userDataParameterName } from '@common/user-data';
import { deleteSavedUserData, readSavedUserData, readUserDataBase64, writeUserData } from '@common/user-data-store';
import type { StepInput } from '@common/validation';

export interface RestoreUserDataDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export type PutBackResult = 'restored' | 'nothing-saved';

/**
 * Puts the saved original back on the stopped instance and deletes the saved copy. The caller
 * makes sure the instance is stopped. Throws RestoreError (keeping the saved copy) when EC2 does
 * not hold exactly the original afterwards.
 */
export async function putBackUserData(ec2: EC2Client, ssm: SSMClient, instanceId: string): Promise<{ result: PutBackResult; bytes: number }> {
  const name = userDataParameterName(instanceId);
  const saved = await readSavedUserData(ssm, instanceId);
  if (!saved) {
    const current = Buffer.from(await readUserDataBase64(ec2, instanceId), 'base64');
    if (isOurUserData(current)) {
      throw new RestoreError(
        `Instance ${instanceId} still carries the user data of ec2-reset-access and no original is saved in ${name}: set its own user data again by hand (stopped: aws ec2 modify-instance-attribute)`,
      );
    }
    return { result: 'nothing-saved', bytes: current.length };
  }
  const original = Buffer.from(saved.base64, 'base64');
  try {
    await writeUserData(ec2, instanceId, original);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new RestoreError(`Could not put the original user data of ${instanceId} back (${why}); it stays saved in ${name}`);
  }
  await deleteSavedUserData(ssm, instanceId);
  return { result: 'restored', bytes: original.length };
}

export async function restoreUserData(deps: RestoreUserDataDeps, input: StepInput): Promise<{ result: PutBackResult; bytes: number }> {
  const { ec2, ssm, log } = deps;
  const { instanceId, executionId } = input;
  await loadOwnPlan(ssm, instanceId, executionId);
  const state = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
  if (state !== 'stopped') {
    throw new UnexpectedStateError(`Instance ${instanceId} is ${state}; user data can be put back only while it is stopped`);
  }
  const out = await putBackUserData(ec2, ssm, instanceId);
  log.info('original user data put back', { instanceId, result: out.result, bytes: out.bytes });
  return out;
}

/**
 * For the converging restore (lambdas/restore): when this product's user data is on the instance or
 * an original is saved, stop the instance if it runs (user data changes only while stopped), wait for
 * it within `stopBudgetMs`, and put the original back. Appends what it did to `done`. The caller
 * then starts the instance if it was running before the run. A no-op for the other methods.
 */
export async function convergeUserData(
  deps: { ec2: EC2Client; ssm: SSMClient; clock: Clock },
  instanceId: string,
  stopBudgetMs: number,
  done: string[],
): Promise<void> {
  const { ec2, ssm } = deps;
  const saved = await readSavedUserData(ssm, instanceId);
  if (!saved) {
    const current = Buffer.from(await readUserDataBase64(ec2, instanceId), 'base64');
    if (!isOurUserData(current)) return;
  }
  let state = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
  if (state === 'running' || state === 'pending') {
    await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    done.push(`stopped ${instanceId} to put its user data back`);
    state = 'stopping';
  }
  if (state === 'stopping') {
    state = await pollUntil(deps.clock, `instance ${instanceId} to stop before its user data is put back`, stopBudgetMs, 5_000, async () => {
      const s = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
      return s === 'stopping' || s === 'running' || s === 'pending' ? undefined : s;
    });
  }
  if (state !== 'stopped') {
    throw new RestoreError(`Cannot put the user data of ${instanceId} back: the instance is ${state}; the original stays saved in ${userDataParameterName(instanceId)}`);
  }
  const out = await putBackUserData(ec2, ssm, instanceId);
  if (out.result === 'restored') done.push(`put the original user data of ${instanceId} back (${out.bytes} bytes)`);
}
