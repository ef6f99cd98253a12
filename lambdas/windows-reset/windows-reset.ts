/**
 * Step `resetWindows` (issue 15): send the windows-reset Command document to the helper, which has
 * the Windows root volume attached. For Mode=NewPassword it first makes the run's RSA key pair:
 * the private half goes into a SecureString under the stack's KMS key (PutParameter's Value and
 * nowhere else), the public half to the helper as PasswordKey, where the boot action the script
 * writes encrypts the new password to it. Returns once the command's invocation is visible.
 */
import { GetCommandInvocationCommand, PutParameterCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { pollUntil, realClock, type Clock } from '@common/ec2';
import { isAwsError, NotReadyError, PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';
import { DEFAULT_WINDOWS_MODE, generatePasswordKey, runKeyParameterName, type WindowsMode } from '@common/windows';

export interface WindowsResetConfig {
  /** The stack's KMS key (ARN) for the run's private key. */
  readonly keyId: string;
  /** The windows-reset Command document's name. */
  readonly documentName: string;
}

export interface WindowsResetDeps {
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly config: WindowsResetConfig;
  readonly generate?: typeof generatePasswordKey;
  /** @default realClock */
  readonly clock?: Clock;
}

export interface WindowsResetResult {
  readonly commandId: string;
  readonly mode: WindowsMode;
  /** The run's private key parameter, or `none` (EnablePasswordGeneration). */
  readonly runKeyParameterName: string;
}

/** How long the command may wait for delivery to the helper (SendCommand TimeoutSeconds), as inject-key. */
export const WINDOWS_COMMAND_TIMEOUT_SECONDS = 300;
/**
 * GetCommandInvocation may answer InvocationDoesNotExist just after SendCommand
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html):
 * the step returns only once the invocation is visible, within this bound, as injectKey does.
 */
export const INVOCATION_VISIBLE_MS = 30_000;

export async function resetWindows(deps: WindowsResetDeps, input: StepInput): Promise<WindowsResetResult> {
  const { ssm, config, log } = deps;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  if (plan.instance.platform !== 'windows') throw new PlanError(`The plan of ${instanceId} is not a Windows target's: resetWindows does not run for it`);
  const helperId = plan.created.helperInstanceId;
  if (!helperId) throw new PlanError(`The plan of ${instanceId} has no helper instance: launchHelper did not complete`);
  const mode = plan.inputs.mode ?? DEFAULT_WINDOWS_MODE;

  let passwordKey = '';
  let keyName = 'none';
  if (mode === 'NewPassword') {
    const pair = (deps.generate ?? generatePasswordKey)();
    keyName = runKeyParameterName(instanceId);
    try {
      await ssm.send(
        new PutParameterCommand({
          Name: keyName,
          Value: pair.privateKeyPem,
          Type: 'SecureString',
          KeyId: config.keyId,
          Overwrite: true,
          Description: `ec2-reset-access: this run's key for the new Windows password of ${instanceId}, execution ${executionId} (deleted when the run ends)`,
        }),
      );
    } catch (err) {
      // The SDK error never carries the request's Value; a message of our own, to be sure.
      throw new UnexpectedStateError(`Could not store the run's key in ${keyName}: ${err instanceof Error ? err.name : 'error'}`);
    }
    // Recorded after the write and before the key is used anywhere: restore deletes it on failure.
    await updatePlan(ssm, instanceId, executionId, (p) => {
      p.created.runKeyParameterName = keyName;
    });
    passwordKey = pair.publicKeyDerBase64;
  }

  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.documentName,
      InstanceIds: [helperId],
      Parameters: { VolumeId: [plan.instance.rootVolumeId], Mode: [mode], RunId: [executionId], PasswordKey: [passwordKey] },
      TimeoutSeconds: WINDOWS_COMMAND_TIMEOUT_SECONDS,
      Comment: `ec2-reset-access ${executionId} for ${instanceId}`.slice(0, 100),
    }),
  );
  const commandId = out.Command?.CommandId;
  if (!commandId) throw new UnexpectedStateError(`SendCommand to helper ${helperId} returned no command id`);
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.created.commandId = commandId;
    p.progress.phase = 'injection-sent';
  });
  log.info('windows-reset command sent', { instanceId, helperId, commandId, mode });
  try {
    await pollUntil(deps.clock ?? realClock, `the windows-reset command ${commandId} to be visible`, INVOCATION_VISIBLE_MS, 1_000, async () => {
      try {
        await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
        return true;
      } catch (err) {
        if (isAwsError(err, 'InvocationDoesNotExist')) return undefined;
        throw err;
      }
    });
  } catch (err) {
    if (err instanceof NotReadyError) throw new UnexpectedStateError(`The windows-reset command ${commandId} on helper ${helperId} was not visible within ${INVOCATION_VISIBLE_MS / 1000} s`);
    throw err;
  }
  return { commandId, mode, runKeyParameterName: keyName };
}
