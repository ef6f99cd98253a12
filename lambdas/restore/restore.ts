/**
 * Step `restore`: converge from the plan and the real state (DescribeVolumes, DescribeInstances),
 * not from step outputs, so it works from any point of the run and twice (docs/architecture.md,
 * "Restore"):
 *  0. an inject command sent and not known to have ended: wait for a terminal status (bounded),
 *     cancel it if it still runs and wait for it to end, and judge "injected" by its report, so the
 *     volume never leaves the helper mid-write and a key that reached the volume keeps its private
 *     half; a command that never ends fails this attempt once (Automation retries), then forces;
 *  1. root volume attached to the helper: detach (force only after a normal detach timed out, or
 *     when the command never ended: the result then says so and asks for a filesystem check),
 *     wait available;
 *  2. available: attach to the original instance at the original device name, wait in-use;
 *  3. DeleteOnTermination as it was; start the instance if it was running and is stopped;
 *  4. a key written but not injected: delete the SecureString; injected: keep it, name it.
 *  4b. Method=UserData: the original user data back (convergeUserData: stop if running, put back);
 *  1w. Windows (issue 15), before 1: what the windows-reset command wrote is undone with its
 *     Mode=Revert on the helper, unless the run has started the instance (windows-revert.ts);
 *  5. last: remove this run's lock tag from the instance and the root volume (issue 11).
 * The online method (plan.method.chosen Online) moved and stopped nothing: only 0, 4 and 5, with
 * the command on the instance itself; nothing is detached, stopped or started.
 * Throws RestoreError naming the volume and its state when it cannot be put back.
 */
import {
  AttachVolumeCommand,
  DetachVolumeCommand,
  ModifyInstanceAttributeCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetCommandInvocationCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { describeInstance, findInstance, findVolume, liveAttachment, pollUntil, type Clock } from '@common/ec2';
import { awsErrorCode, isAwsError, NotReadyError, PlanError, RestoreError } from '@common/errors';
import type { Logger } from '@common/log';
import { parseReport } from '@common/report';
import { removeLockTag } from '@common/lock-tag';
import { readPlan, updatePlan, type Plan } from '@common/plan';
import { convergeUserData } from '@common/user-data-store';
import type { StepInput } from '@common/validation';
import { revertWindows, type WindowsRevertBudgets } from './windows-revert';

export interface RestoreBudgets {
  /** Wait for a normal detach before forcing it. */
  readonly detachMs: number;
  /** Wait after a forced detach. */
  readonly forceDetachMs: number;
  readonly attachMs: number;
  /** Wait for a stopping instance to be stopped before starting it. */
  readonly stopMs: number;
  /** Wait for a running inject command to end before cancelling it. */
  readonly commandMs: number;
  /** Wait, after CancelCommand, for the command to reach a terminal state. */
  readonly cancelMs: number;
}

/**
 * Per attempt at most 45 + 30 s for the command, then (when it ended) 60 + 30 + 60 + 60 s for the
 * volume and the instance: 285 s, within the Lambda's 290 s under the step's 300 s. An attempt that
 * waited the command out ends after its 75 s (it throws); an attempt that forces goes straight to
 * the forced detach (30 + 60 + 60 s more).
 */
export const DEFAULT_BUDGETS: RestoreBudgets = { commandMs: 45_000, cancelMs: 30_000, detachMs: 60_000, forceDetachMs: 30_000, attachMs: 60_000, stopMs: 60_000 };

/**
 * GetCommandInvocation `Status` values after which the command no longer runs on the helper. The
 * SSM API model (botocore data/ssm/2014-11-06/service-2.json, shape CommandInvocationStatus) has
 * Pending, InProgress, Delayed, Success, Cancelled, TimedOut, Failed and Cancelling; its
 * StatusDetails documentation calls Success, Failed, Cancelled and the timeouts terminal states.
 * Cancelling is not: the command may still be writing.
 */
export const COMMAND_TERMINAL: readonly string[] = ['Success', 'Failed', 'Cancelled', 'TimedOut'];
const POLL_MS = 3_000;
/** Helper states in which no process of the helper can write to the volume any more. */
const HELPER_AT_REST = ['stopped', 'terminated'];

export interface RestoreDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly clock: Clock;
  readonly budgets?: RestoreBudgets;
  /** The windows-reset Command document, for a Windows run's Mode=Revert (windows-revert.ts). */
  readonly windowsDocumentName?: string;
  /** @default DEFAULT_REVERT_BUDGETS */
  readonly revertBudgets?: WindowsRevertBudgets;
}

export interface RestoreResult {
  readonly restored: boolean;
  readonly message: string;
  /** True when the root volume was detached from the helper with Force: the message says to check its filesystem. */
  readonly forcedDetach: boolean;
}

/** What restore learned about the inject command before it moved the volume. */
interface Settled {
  /** The command may still have been running when the volume left the helper: detach with Force at once. */
  readonly force: boolean;
  /** Whether the command added the key cannot be known (it never reported an end). */
  readonly outcomeUnknown: boolean;
}

export async function restore(deps: RestoreDeps, input: StepInput): Promise<RestoreResult> {
  const { instanceId, executionId } = input;
  const plan = await readPlan(deps.ssm, instanceId);
  if (!plan) {
    return { restored: false, message: `No plan for ${instanceId}: this execution changed nothing to restore`, forcedDetach: false };
  }
  if (plan.executionId !== executionId) {
    // Not a success: this execution's instance is not restored, and its lock was taken by another.
    throw new PlanError(`Cannot restore for execution ${executionId}: the plan of ${instanceId} belongs to execution ${plan.executionId}; not touched. Check ${instanceId}, its root volume and any helper tagged with ${executionId} by hand`);
  }
  const budgets = deps.budgets ?? DEFAULT_BUDGETS;
  const done: string[] = [];
  const settled = await settleCommand(deps, plan, budgets, done);
  if (plan.method.chosen === 'Online') return finishOnline(deps, plan, done, settled);
  const forcedEarlier = plan.progress.forcedDetach === true;
  // Windows: what the windows-reset command wrote is undone on the helper before the volume moves back (review W2).
  await revertWindows(deps, plan, done, deps.revertBudgets, settled.force);
  try {
    await putVolumeBack(deps, plan, budgets, done, settled.force);
    // Method=UserData: the original user data back (the instance stopped for it if it runs).
    if ((plan as { method?: { chosen?: string } }).method?.chosen === 'UserData') {
      await convergeUserData(deps, instanceId, budgets.stopMs, done);
    }
    await restoreInstance(deps, plan, budgets, done);
  } catch (err) {
    // A failure after a forced detach (this attempt's or an earlier one's) still carries its advice.
    if (err instanceof RestoreError && plan.progress.forcedDetach) throw new RestoreError(`${err.message}. ${FSCK_ADVICE}`);
    throw err;
  }
  if (forcedEarlier) done.push(`FORCED the detach of ${plan.instance.rootVolumeId} from the helper in an earlier attempt. ${FSCK_ADVICE}`);
  const forcedDetach = plan.progress.forcedDetach === true;
  await settleKey(deps, plan, done, settled.outcomeUnknown);
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'restored';
  });
  // Last, only once the volume is back and the instance restored: this run's lock tag. A restore
  // that throws above leaves it, so a retry (or the restore runbook) may still act.
  await removeLockTag(deps.ec2, instanceId, plan.instance.rootVolumeId, executionId);
  // A forced detach comes first: its advice must survive any cut of the message.
  const ordered = [...done.filter((d) => d.startsWith('FORCED')), ...done.filter((d) => !d.startsWith('FORCED'))];
  const message = ordered.length > 0 ? ordered.join('; ') : 'nothing to change';
  deps.log.info('restored', { instanceId, actions: done.length, forcedDetach });
  return { restored: true, message, forcedDetach };
}

/**
 * The online path's restore, once the command has settled: the instance ran throughout and its
 * root volume never moved, so what is left is the key parameter and the lock tag. The only change
 * a run can have made to the instance are the inject script's (runbooks/inject-key.sh): a key line
 * appended in place to authorized_keys (or a new file), a missing ~/.ssh created, an immutable flag
 * cleared and set again, an SELinux label on a new file. The append is not atomic: a command
 * cancelled mid-write can leave a partial last line.
 */
async function finishOnline(deps: RestoreDeps, plan: Plan, done: string[], settled: Settled): Promise<RestoreResult> {
  const { instanceId, executionId } = plan;
  await settleKey(deps, plan, done, settled.outcomeUnknown);
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'restored';
  });
  await removeLockTag(deps.ec2, instanceId, plan.instance.rootVolumeId, executionId);
  const message = done.length > 0 ? done.join('; ') : 'nothing to change (online method: the instance kept running)';
  deps.log.info('restored (online)', { instanceId, actions: done.length });
  return { restored: true, message, forcedDetach: false };
}

async function volumeState(deps: RestoreDeps, volumeId: string) {
  const volume = await findVolume(deps.ec2, volumeId);
  if (!volume) throw new RestoreError(`Cannot restore: the root volume ${volumeId} was not found`);
  return { state: volume.State ?? 'unknown', attachment: liveAttachment(volume) };
}

function describeState(volumeId: string, v: { state: string; attachment?: { instanceId: string; state: string } }): string {
  return `volume ${volumeId} is ${v.state}${v.attachment ? ` (${v.attachment.state} to ${v.attachment.instanceId})` : ''}`;
}

async function waitAvailable(deps: RestoreDeps, volumeId: string, budgetMs: number): Promise<void> {
  await pollUntil(deps.clock, `volume ${volumeId} to be available`, budgetMs, POLL_MS, async () => {
    const v = await volumeState(deps, volumeId);
    return v.state === 'available' && !v.attachment ? true : undefined;
  });
}

const FSCK_ADVICE =
  'Its filesystem may not have been cleanly unmounted: check it before you rely on it (stop the instance, attach the volume to another instance and run fsck -n, or xfs_repair -n for XFS; or look at the boot log for journal recovery)';

/** The advice every forced detach carries in the result. */
function forcedMessage(volumeId: string, helperId: string, why: string): string {
  return `FORCED the detach of ${volumeId} from helper ${helperId} (${why}). ${FSCK_ADVICE}`;
}

/** Records a forced detach in the plan, so that a later attempt still reports it. */
async function recordForced(deps: RestoreDeps, plan: Plan): Promise<void> {
  plan.progress.forcedDetach = true;
  await updatePlan(deps.ssm, plan.instanceId, plan.executionId, (p) => {
    p.progress.forcedDetach = true;
  });
}

/** Puts the root volume back on the instance; returns true when it had to force the detach from the helper. */
async function putVolumeBack(deps: RestoreDeps, plan: Plan, budgets: RestoreBudgets, done: string[], forceNow: boolean): Promise<boolean> {
  const { ec2 } = deps;
  const volumeId = plan.instance.rootVolumeId;
  const instanceId = plan.instanceId;
  const helperId = plan.created.helperInstanceId;
  let v = await volumeState(deps, volumeId);
  let forced = false;

  // Transitional states left by a step that failed or was cancelled mid-way: let them settle
  // first (an attachment still attaching is not detached, one detaching from the instance is
  // not attached again before it is available).
  if (helperId && v.attachment?.instanceId === helperId && v.attachment.state === 'attaching') {
    await pollUntil(deps.clock, `volume ${volumeId} to finish attaching to the helper`, budgets.attachMs, POLL_MS, async () => {
      const now = await volumeState(deps, volumeId);
      return now.attachment?.state === 'attaching' ? undefined : true;
    });
    v = await volumeState(deps, volumeId);
  }
  if (v.attachment?.instanceId === instanceId && v.attachment.state === 'detaching') {
    await waitAvailable(deps, volumeId, budgets.detachMs);
    v = await volumeState(deps, volumeId);
  }

  if (v.attachment && v.attachment.instanceId !== instanceId) {
    if (v.attachment.instanceId !== helperId) {
      throw new RestoreError(
        `Cannot restore: ${describeState(volumeId, v)}, which is neither ${instanceId} nor this run's helper; attach it back to ${instanceId} at ${plan.instance.rootDeviceName} by hand`,
      );
    }
    if (forceNow) {
      deps.log.warn('the inject command may still run: forcing the detach', { volumeId, helperId });
      await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId, Force: true }));
      await recordForced(deps, plan);
      await waitAvailable(deps, volumeId, budgets.forceDetachMs);
      done.push(forcedMessage(volumeId, helperId, 'the inject command never reported an end'));
      forced = true;
    } else {
      if (v.attachment.state !== 'detaching') {
        await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId }));
      }
      try {
        await waitAvailable(deps, volumeId, budgets.detachMs);
        done.push(`detached ${volumeId} from helper ${helperId}`);
      } catch (err) {
        if (!(err instanceof NotReadyError)) throw err;
        deps.log.warn('normal detach timed out: forcing', { volumeId, helperId });
        await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId, Force: true }));
        await recordForced(deps, plan);
        await waitAvailable(deps, volumeId, budgets.forceDetachMs);
        done.push(forcedMessage(volumeId, helperId, `a normal detach did not finish in ${Math.round(budgets.detachMs / 1000)} s`));
        forced = true;
      }
    }
    v = await volumeState(deps, volumeId);
  }

  if (v.state === 'available' && !v.attachment) {
    const instance = await describeInstance(ec2, instanceId);
    const state = instance.State?.Name;
    if (state !== 'stopped') {
      throw new RestoreError(`Cannot restore: ${describeState(volumeId, v)} but instance ${instanceId} is ${state}, not stopped; attach it at ${plan.instance.rootDeviceName} once it is stopped`);
    }
    try {
      await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: plan.instance.rootDeviceName }));
    } catch (err) {
      throw new RestoreError(
        `Cannot restore: attaching ${volumeId} (available) to ${instanceId} at ${plan.instance.rootDeviceName} failed (${awsErrorCode(err) || 'error'}); the volume is left available and tagged by its backup`,
      );
    }
    done.push(`attached ${volumeId} to ${instanceId} at ${plan.instance.rootDeviceName}`);
    v = await volumeState(deps, volumeId);
  }

  if (v.attachment?.instanceId === instanceId && v.attachment.state === 'attaching') {
    await pollUntil(deps.clock, `volume ${volumeId} to be in-use`, budgets.attachMs, POLL_MS, async () => {
      const now = await volumeState(deps, volumeId);
      return now.attachment?.instanceId === instanceId && now.attachment.state === 'attached' ? true : undefined;
    });
    v = await volumeState(deps, volumeId);
  }
  if (v.attachment?.instanceId !== instanceId || v.attachment.state !== 'attached') {
    throw new RestoreError(`Cannot restore: ${describeState(volumeId, v)}; it should be attached to ${instanceId} at ${plan.instance.rootDeviceName}`);
  }
  return forced;
}

async function restoreInstance(deps: RestoreDeps, plan: Plan, budgets: RestoreBudgets, done: string[]): Promise<void> {
  const { ec2 } = deps;
  const instanceId = plan.instanceId;
  await ec2.send(
    new ModifyInstanceAttributeCommand({
      InstanceId: instanceId,
      BlockDeviceMappings: [{ DeviceName: plan.instance.rootDeviceName, Ebs: { DeleteOnTermination: plan.instance.deleteOnTermination } }],
    }),
  );
  if (plan.instance.originalState !== 'running') {
    await stopWindowsStartedByRun(deps, plan, done);
    return;
  }
  let state = (await describeInstance(ec2, instanceId)).State?.Name;
  if (state === 'stopping') {
    state = await pollUntil(deps.clock, `instance ${instanceId} to be stopped before it starts again`, budgets.stopMs, POLL_MS, async () => {
      const s = (await describeInstance(ec2, instanceId)).State?.Name;
      return s === 'stopping' ? undefined : s;
    });
  }
  if (state === 'stopped') {
    await ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    done.push(`started ${instanceId}`);
  } else if (state !== 'running' && state !== 'pending') {
    throw new RestoreError(`Cannot restore: instance ${instanceId} is ${state}; it was running before this run`);
  }
}

interface CommandState {
  readonly status: string;
  readonly stdout?: string;
}

/** One read of the invocation; never throws (an unreadable state is simply not terminal). */
async function readCommand(deps: RestoreDeps, commandId: string, helperId: string): Promise<CommandState> {
  try {
    const out = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
    return { status: out.Status ?? 'Pending', stdout: out.StandardOutputContent };
  } catch (err) {
    // Right after SendCommand the invocation may not exist yet (Run Command is eventually
    // consistent: GetCommandInvocation in the SSM API model): it has not started.
    if (isAwsError(err, 'InvocationDoesNotExist')) return { status: 'Pending' };
    return { status: `unreadable (${awsErrorCode(err) || 'error'})` };
  }
}

const isTerminal = (c: CommandState): boolean => COMMAND_TERMINAL.includes(c.status);

async function waitTerminal(deps: RestoreDeps, commandId: string, helperId: string, budgetMs: number, last: CommandState): Promise<CommandState> {
  let now = last;
  try {
    return await pollUntil(deps.clock, `command ${commandId} to end`, budgetMs, POLL_MS, async () => {
      now = await readCommand(deps, commandId, helperId);
      return isTerminal(now) ? now : undefined;
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    return now;
  }
}

/**
 * The volume must not leave the helper while the inject command may still write to it: restore
 * waits for a terminal status (COMMAND_TERMINAL), cancels the command if it runs past its budget
 * and waits again for it to end. When it still has not ended (Cancelling, an agent that no longer
 * answers), the first such attempt throws NotReadyError so that Automation retries restore
 * (maxAttempts); a later one forces the detach and says so. A helper that is stopped or terminated
 * runs nothing. Records whether the command put the key on the volume (plan.progress.keyInjected).
 */
async function settleCommand(deps: RestoreDeps, plan: Plan, budgets: RestoreBudgets, done: string[]): Promise<Settled> {
  const online = plan.method.chosen === 'Online';
  const { commandId } = plan.created;
  // Online: the command runs on the instance itself, on its live root (always "on" it).
  const helperId = online ? plan.instanceId : plan.created.helperInstanceId;
  const calm: Settled = { force: false, outcomeUnknown: false };
  // The command is windows-reset's on a Windows target (issue 15), inject-key's otherwise.
  const windows = plan.instance.platform === 'windows';
  const command = windows ? 'windows-reset command' : 'inject command';
  if (!commandId || !helperId || plan.progress.keyInjected) return calm;
  const onHelper = online || (await volumeState(deps, plan.instance.rootVolumeId)).attachment?.instanceId === helperId;

  let inv = await readCommand(deps, commandId, helperId);
  if (!isTerminal(inv) && onHelper) {
    inv = await waitTerminal(deps, commandId, helperId, budgets.commandMs, inv);
    if (!isTerminal(inv)) {
      try {
        await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [helperId] }));
        done.push(`cancelled the ${command} ${commandId}, still ${inv.status} after ${Math.round(budgets.commandMs / 1000)} s`);
      } catch (err) {
        done.push(`could not cancel the ${command} ${commandId} (${awsErrorCode(err) || 'error'})`);
      }
      inv = await waitTerminal(deps, commandId, helperId, budgets.cancelMs, inv);
    }
  }

  if (isTerminal(inv)) {
    if (inv.status === 'Success' && parseReport(inv.stdout)?.status === 'ok') {
      plan.progress.keyInjected = true;
      await updatePlan(deps.ssm, plan.instanceId, plan.executionId, (p) => {
        p.progress.keyInjected = true;
      });
      done.push(windows ? `the windows-reset command ${commandId} had written its changes` : `the ${command} ${commandId} had added the key`);
    } else if (inv.status !== 'Success') {
      done.push(`the ${command} ${commandId} ended ${inv.status}`);
    }
    return calm;
  }
  if (!onHelper) {
    // The volume is no longer on the helper: nothing of the command can reach it.
    done.push(`the ${command} ${commandId} is ${inv.status}, but the root volume is no longer on the helper`);
    return { force: false, outcomeUnknown: true };
  }
  const helperState = (await findInstance(deps.ec2, helperId))?.State?.Name ?? 'terminated';
  if (HELPER_AT_REST.includes(helperState)) {
    done.push(`the ${command} ${commandId} is ${inv.status}, but helper ${helperId} is ${helperState}: nothing runs on it`);
    return { force: false, outcomeUnknown: true };
  }
  const waited = Math.round((budgets.commandMs + budgets.cancelMs) / 1000);
  if ((plan.progress.commandWaitsExhausted ?? 0) < 1) {
    await updatePlan(deps.ssm, plan.instanceId, plan.executionId, (p) => {
      p.progress.commandWaitsExhausted = (p.progress.commandWaitsExhausted ?? 0) + 1;
    });
    deps.log.warn('inject command has not ended: restore is to be retried', { commandId, status: inv.status });
    throw new NotReadyError(
      `The ${command} ${commandId} on helper ${helperId} is still ${inv.status} ${waited} s after restore began waiting and cancelled it; ` +
        'the root volume stays on the helper while the command may write to it. Restore is retried (maxAttempts) and forces the detach if the command still has not ended.',
    );
  }
  done.push(`the ${command} ${commandId} was still ${inv.status} after two waits of ${waited} s and a cancel`);
  return { force: true, outcomeUnknown: true };
}

/**
 * A Windows target that was stopped before the run is started by the run for the password boot
 * (issue 15, startWindows): a failure after that stops it again (no wait), so it ends as it was.
 */
async function stopWindowsStartedByRun(deps: RestoreDeps, plan: Plan, done: string[]): Promise<void> {
  if (plan.instance.platform !== 'windows') return;
  const state = (await describeInstance(deps.ec2, plan.instanceId)).State?.Name;
  if (state !== 'running' && state !== 'pending') return;
  await deps.ec2.send(new StopInstancesCommand({ InstanceIds: [plan.instanceId] }));
  done.push(`stopped ${plan.instanceId} again (it was stopped before the run)`);
}

/**
 * A Windows run's own key (Mode=NewPassword, issue 15) is deleted when the run fails before its
 * windows-reset command was sent, or once restore reverted what it wrote. Otherwise the volume may carry the boot task, which at the
 * instance's next boot sets a new password and writes it to the console encrypted to this key only:
 * deleting the key would then lock the user out, so it is kept and the message says why.
 */
async function deleteWindowsRunKey(deps: RestoreDeps, plan: Plan, done: string[]): Promise<void> {
  const name = plan.created.runKeyParameterName;
  if (!name) return;
  // Kept while the volume may carry the boot task: the command was sent and its writes were not
  // reverted (windows-revert.ts) and no password was stored.
  if (plan.created.commandId && !plan.created.passwordParameterName && !plan.progress.windowsReverted) {
    done.push(`kept ${name}: the boot task this run may have written sets a new password at the next boot, readable only with this key from the console line ec2-reset-access:${plan.executionId}:password:`);
    return;
  }
  try {
    await deps.ssm.send(new DeleteParameterCommand({ Name: name }));
    done.push(`deleted this run's key ${name}`);
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
}

async function settleKey(deps: RestoreDeps, plan: Plan, done: string[], outcomeUnknown: boolean): Promise<void> {
  await deleteWindowsRunKey(deps, plan, done);
  const name = plan.created.keyParameterName;
  if (!name) return;
  if (plan.progress.keyInjected) {
    done.push(`the key was injected: its private key stays in ${name}`);
    return;
  }
  if (outcomeUnknown) {
    // The command may have added the key before it stopped answering: its private half is kept.
    done.push(`the inject command's outcome is unknown: its private key stays in ${name}`);
    return;
  }
  // The name is shared with earlier runs on this instance (AWSSupport-ResetAccess's path); this
  // run overwrote it. Deleting it would delete the history too, and with it an earlier run's key
  // that may still be in authorized_keys: then the parameter is kept and the message says so.
  const described = await deps.ssm.send(
    new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Name', Option: 'Equals', Values: [name] }] }),
  );
  const version = described.Parameters?.[0]?.Version;
  if (version === undefined) return;
  if (version > 1) {
    done.push(
      `kept ${name}: its latest version holds a key that was never injected, its earlier versions the keys of earlier runs (aws ssm get-parameter-history --with-decryption --name ${name})`,
    );
    return;
  }
  try {
    await deps.ssm.send(new DeleteParameterCommand({ Name: name }));
    done.push(`deleted the unused private key ${name}`);
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
}
