/**
 * Step `restoreUserData` (Method=UserData, after the second stop): put the original user data back
 * byte for byte (none stays none), check it by reading it back, then delete the saved copy
 * (putBackUserData, lambdas/common/user-data-store.ts, which the converging restore also uses
 * through convergeUserData when a run fails or is cancelled with our user data on the instance).
 *
 * Safe to run twice: with no saved copy and user data that is not ours, there is nothing to do;
 * with no saved copy and our user data still on the instance, it refuses loudly (the original is
 * gone: the message says what to do).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance } from '@common/ec2';
import { UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan } from '@common/plan';
import { putBackUserData, type PutBackResult } from '@common/user-data-store';
import type { StepInput } from '@common/validation';

export { convergeUserData, putBackUserData } from '@common/user-data-store';

export interface RestoreUserDataDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
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

