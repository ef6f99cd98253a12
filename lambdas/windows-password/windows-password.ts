/**
 * Step `waitForPassword` (issue 15): after the Windows instance started, wait until its launch
 * agent has set the new Administrator password, and say how the user gets it.
 *
 * - EnablePasswordGeneration: GetPasswordData until it returns password data made after this run
 *   started the instance (its Timestamp, see passwordDataReady: review W1). AWS: "password
 *   generation and encryption may take a few minutes. If you try to retrieve the password before
 *   it's available, the output returns an empty string. We recommend that you wait up to 15 minutes
 *   after launching an instance" (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetPasswordData.html).
 *   The runbook gives the step PASSWORD_ATTEMPTS x PASSWORD_BUDGET_MS = 16 minutes from the start.
 *   The data stays encrypted to the instance's key pair: this step never decrypts it.
 * - NewPassword: the serial console (GetConsoleOutput with Latest, "supported on instance types
 *   that use the Nitro hypervisor": https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html;
 *   preflight refuses the others) until the boot action's line for this run; its ciphertext is
 *   decrypted here with the run's private key, the password stored as the SecureString
 *   `/ec2rl/windows/<instance-id>/password` under the stack's KMS key, and the run's key deleted.
 *   The password is in this function's memory only between the two calls: never in a log, an
 *   output, the plan or an error message.
 */
import { DescribeInstancesCommand, GetConsoleOutputCommand, GetPasswordDataCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { realClock, type Clock } from '@common/ec2';
import { InjectionFailedError, isAwsError, NotReadyError, PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan, type Plan } from '@common/plan';
import type { StepInput } from '@common/validation';
import { decryptPassword, DEFAULT_WINDOWS_MODE, findConsoleResult, passwordParameterName, type WindowsMode } from '@common/windows';

/** One invocation polls this long (the function's timeout is above it, under Lambda's 300 s). */
export const PASSWORD_BUDGET_MS = 240_000;
export const PASSWORD_POLL_MS = 15_000;
/** Attempts the runbook gives the step (its maxAttempts): 4 x 240 s = 16 min, past AWS's "up to 15 minutes". */
export const PASSWORD_ATTEMPTS = 4;

export interface WindowsPasswordConfig {
  /** The stack's KMS key (ARN) for the password's SecureString. */
  readonly keyId: string;
}

export interface WindowsPasswordDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: WindowsPasswordConfig;
  /** @default realClock */
  readonly clock?: Clock;
}

export interface WindowsPasswordResult {
  readonly mode: WindowsMode;
  /** The SecureString with the password (NewPassword), or `none`. */
  readonly passwordParameterName: string;
  readonly keyName: string;
  readonly instanceState: string;
  /** `<ip> (public)`, `<ip> (private)` or `none`. */
  readonly address: string;
  readonly backupId: string;
}

async function instanceNow(ec2: EC2Client, instanceId: string) {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const i = out.Reservations?.flatMap((r) => r.Instances ?? []).find((x) => x.InstanceId === instanceId);
  if (!i) throw new UnexpectedStateError(`Instance ${instanceId} was not found`);
  return i;
}

/**
 * Whether GetPasswordData holds password data made by this run's boot. An instance launched with a
 * key pair already has the data of its first boot ("This usually only happens the first time an
 * instance is launched", GetPasswordData's documentation in the EC2 API model, botocore
 * data/ec2/2016-11-15/service-2.json), which the user cannot use any more: only data whose
 * `Timestamp` ("The time the data was last updated", GetPasswordDataResult in the same model) is
 * later than the run's own StartInstances counts (review W1). Older data is waited past, as empty.
 */
async function passwordDataReady(ec2: EC2Client, instanceId: string, startedAt: number): Promise<'ready' | 'empty' | 'old'> {
  const out = await ec2.send(new GetPasswordDataCommand({ InstanceId: instanceId }));
  if ((out.PasswordData ?? '').trim() === '') return 'empty';
  const at = out.Timestamp?.getTime();
  return at !== undefined && at > startedAt ? 'ready' : 'old';
}

/**
 * When this run asked EC2 to start the instance: startWindows records it in the plan before its
 * StartInstances. Without it (the instance was already pending or running at startWindows, which
 * this run did not start), the instance's LaunchTime, "The time that the instance was last
 * launched" (Instance.LaunchTime, the same model).
 */
function startTimeOf(plan: Plan, launchTime: Date | undefined): number {
  const recorded = plan.progress.startRequestedAt ? Date.parse(plan.progress.startRequestedAt) : NaN;
  if (Number.isFinite(recorded)) return recorded;
  if (launchTime) return launchTime.getTime();
  throw new PlanError(`The plan of ${plan.instanceId} has no start time and EC2 gives no LaunchTime: cannot tell this boot's password data from an older one`);
}

async function storeNewPassword(deps: WindowsPasswordDeps, plan: Plan, ciphertext: string): Promise<string> {
  const { ssm } = deps;
  const { instanceId, executionId } = plan;
  const keyName = plan.created.runKeyParameterName;
  if (!keyName) throw new PlanError(`The plan of ${instanceId} has no run key: resetWindows did not make one`);
  let pem: string | undefined;
  try {
    pem = (await ssm.send(new GetParameterCommand({ Name: keyName, WithDecryption: true }))).Parameter?.Value;
  } catch (err) {
    throw new UnexpectedStateError(`Could not read the run's key ${keyName}: ${err instanceof Error ? err.name : 'error'}`);
  }
  if (!pem) throw new UnexpectedStateError(`The run's key ${keyName} is empty`);
  let password: string;
  try {
    password = decryptPassword(pem, ciphertext);
  } catch {
    throw new InjectionFailedError(`Instance ${instanceId} wrote a password line for this run that does not decrypt with the run's key; the run restores`);
  }
  const name = passwordParameterName(instanceId);
  try {
    await ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: password,
        Type: 'SecureString',
        KeyId: deps.config.keyId,
        Overwrite: true,
        Description: `ec2-reset-access: the Administrator password of ${instanceId} set by execution ${executionId}`,
      }),
    );
  } catch (err) {
    throw new UnexpectedStateError(`Could not store the password in ${name}: ${err instanceof Error ? err.name : 'error'}`);
  }
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.created.passwordParameterName = name;
  });
  try {
    await ssm.send(new DeleteParameterCommand({ Name: keyName }));
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
  await updatePlan(ssm, instanceId, executionId, (p) => {
    delete p.created.runKeyParameterName;
  });
  return name;
}

export async function waitForPassword(deps: WindowsPasswordDeps, input: StepInput): Promise<WindowsPasswordResult> {
  const { ec2, ssm, log } = deps;
  const clock = deps.clock ?? realClock;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  if (plan.instance.platform !== 'windows') throw new PlanError(`The plan of ${instanceId} is not a Windows target's: waitForPassword does not run for it`);
  const mode = plan.inputs.mode ?? DEFAULT_WINDOWS_MODE;
  const deadline = clock.now() + PASSWORD_BUDGET_MS;
  let passwordName = plan.created.passwordParameterName ?? 'none';
  const startedAt = mode === 'EnablePasswordGeneration' ? startTimeOf(plan, (await instanceNow(ec2, instanceId)).LaunchTime) : 0;
  let seenOld = false;
  for (;;) {
    if (passwordName !== 'none') break;
    if (mode === 'EnablePasswordGeneration') {
      const data = await passwordDataReady(ec2, instanceId, startedAt);
      if (data === 'ready') break;
      seenOld ||= data === 'old';
    } else {
      const output = (await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }))).Output;
      const found = findConsoleResult(Buffer.from(output ?? '', 'base64').toString('utf8'), executionId);
      if (found?.kind === 'error') {
        throw new InjectionFailedError(`Instance ${instanceId} reports on its console that the new password could not be set at boot: ${found.reason}. The run restores`);
      }
      if (found?.kind === 'password') {
        passwordName = await storeNewPassword(deps, plan, found.ciphertext);
        break;
      }
    }
    const state = (await instanceNow(ec2, instanceId)).State?.Name ?? 'unknown';
    if (state !== 'running' && state !== 'pending') {
      throw new UnexpectedStateError(`Instance ${instanceId} is ${state} before its new password was ready; the run restores`);
    }
    if (clock.now() + PASSWORD_POLL_MS > deadline) {
      throw new NotReadyError(
        `Instance ${instanceId} has no new password yet after ${PASSWORD_BUDGET_MS / 1000} s (${mode === 'NewPassword' ? 'no line on its console' : seenOld ? `GetPasswordData still holds only password data older than this run's start at ${new Date(startedAt).toISOString()}` : 'GetPasswordData is empty'}; the run allows ${(PASSWORD_ATTEMPTS * PASSWORD_BUDGET_MS) / 60_000} min from the start)`,
      );
    }
    await clock.sleep(PASSWORD_POLL_MS);
  }
  log.info('new Administrator password ready', { instanceId, mode, parameter: passwordName });
  const i = await instanceNow(ec2, instanceId);
  const address = i.PublicIpAddress ? `${i.PublicIpAddress} (public)` : i.PrivateIpAddress ? `${i.PrivateIpAddress} (private)` : 'none';
  return {
    mode,
    passwordParameterName: passwordName,
    keyName: i.KeyName ?? plan.instance.keyName ?? '',
    instanceState: i.State?.Name ?? 'unknown',
    address,
    backupId: plan.created.backupId ?? 'none',
  };
}

/**
 * What the user runs next. EnablePasswordGeneration: the AWS CLI decrypts GetPasswordData with the
 * key pair's private key (`aws ec2 get-password-data --priv-launch-key`, AWS CLI command reference,
 * https://docs.aws.amazon.com/cli/latest/reference/ec2/get-password-data.html); NewPassword:
 * GetParameter with decryption.
 */
export function nextStep(instanceId: string, r: WindowsPasswordResult): string {
  return r.mode === 'NewPassword'
    ? `aws ssm get-parameter --with-decryption --name ${r.passwordParameterName} --query Parameter.Value --output text`
    : `aws ec2 get-password-data --instance-id ${instanceId} --priv-launch-key <private key file of key pair ${r.keyName.slice(0, 60)}>`;
}
