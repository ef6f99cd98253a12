/**
 * Step `confirmUserData` (Method=UserData): learn from the instance itself that the key is in
 * place. At boot our user data writes one marker line to the serial console naming this execution
 * and the result (lambdas/common/user-data.ts); this step reads the console with GetConsoleOutput
 * (base64 `Output`, botocore ec2 model; `Latest` asks for the latest output rather than the last
 * buffered snapshot: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html)
 * until the marker appears.
 *
 * `ok` returns; `failed` throws InjectionFailedError (the runbook restores); no marker within
 * CONFIRM_BUDGET_MS throws NotReadyError, and the runbook gives the step CONFIRM_ATTEMPTS attempts:
 * the instance must report within CONFIRM_ATTEMPTS x CONFIRM_BUDGET_MS of its start, else the run
 * restores.
 */
import { GetConsoleOutputCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, realClock, type Clock } from '@common/ec2';
import { InjectionFailedError, NotReadyError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan } from '@common/plan';
import { findMarker, findReason } from '@common/user-data';
import type { StepInput } from '@common/validation';

/** One invocation polls this long (the function's timeout is above it, under Lambda's 300 s). */
export const CONFIRM_BUDGET_MS = 240_000;
export const CONFIRM_POLL_MS = 10_000;
/** Attempts the runbook gives the step (its maxAttempts). */
export const CONFIRM_ATTEMPTS = 2;

export interface ConfirmUserDataDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default realClock */
  readonly clock?: Clock;
}

export interface ConfirmUserDataResult {
  readonly fingerprint: string;
  /** From the instance's report: who got the key, which files. */
  readonly users: string;
  readonly files: string;
}

/** The console text: GetConsoleOutput with Latest (preflight has refused the types without it). */
async function consoleText(ec2: EC2Client, instanceId: string): Promise<string> {
  const output = (await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }))).Output;
  return Buffer.from(output ?? '', 'base64').toString('utf8');
}

export async function confirmUserData(deps: ConfirmUserDataDeps, input: StepInput): Promise<ConfirmUserDataResult> {
  const { ec2, ssm, log } = deps;
  const clock = deps.clock ?? realClock;
  const { instanceId, executionId } = input;
  await loadOwnPlan(ssm, instanceId, executionId);
  const deadline = clock.now() + CONFIRM_BUDGET_MS;
  for (;;) {
    const text = await consoleText(ec2, instanceId);
    const marker = findMarker(text, executionId);
    if (marker?.result === 'ok') {
      log.info('the instance reports the key in place', { instanceId, fingerprint: marker.fingerprint });
      return { fingerprint: marker.fingerprint, users: marker.users, files: marker.files };
    }
    if (marker?.result === 'failed') {
      const reason = findReason(text, executionId);
      throw new InjectionFailedError(
        `Instance ${instanceId} reports on its console that adding the key (${marker.fingerprint}) failed at boot${reason ? `: ${reason}` : ''} (the script undoes its own writes when it fails). The run restores the original user data`,
      );
    }
    // Our boot program powers the instance off right after its marker (lambdas/common/user-data.ts),
    // so stopping and stopped are expected too: EC2 posts the console buffer "shortly after an
    // instance transition state (start, stop, reboot, or terminate)" (API_GetConsoleOutput), and a
    // read just after StartInstances may still show the stop before it. Polled until the budget.
    const state = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
    if (!['running', 'pending', 'stopping', 'stopped'].includes(state)) {
      throw new UnexpectedStateError(`Instance ${instanceId} is ${state} before it reported the key; the run restores`);
    }
    if (clock.now() + CONFIRM_POLL_MS > deadline) {
      throw new NotReadyError(
        `Instance ${instanceId} has not reported the key on its console after ${CONFIRM_BUDGET_MS / 1000} s (the run allows ${(CONFIRM_ATTEMPTS * CONFIRM_BUDGET_MS) / 1000} s from the start)`,
      );
    }
    await clock.sleep(CONFIRM_POLL_MS);
  }
}
