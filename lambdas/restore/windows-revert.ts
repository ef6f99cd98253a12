/**
 * Restore's Windows part (issue 15, review W2): once the windows-reset command may have written to
 * the Windows volume (EnablePasswordGeneration: `.run-once` renamed, or EC2Config's Ec2SetPassword
 * enabled; NewPassword: the one-shot boot task in agent-config.yml), a run that fails or is
 * cancelled before it started the instance sends the same document again with `Mode=Revert` and
 * this run's id, on the helper, with the volume attached there, and waits for its report: the
 * script puts every file it changed back byte for byte (runbooks/windows-reset.sh, plan_revert).
 * Only then does restore put the volume back on the instance (restore.ts, putVolumeBack). Without
 * it, the instance's next boot would run the trigger: a new password after a run that reported
 * failure, and with NewPassword one encrypted to a key nobody keeps.
 *
 * When the volume already left the helper (a failure after releaseWindows), it is attached to the
 * helper again first: the instance is stopped (the run has not started it), so the volume is
 * detached from it, attached to the helper at the device attachToHelper uses, reverted, and then
 * moved back by restore as usual.
 *
 * An instance the run has started (startWindows' StartInstances returned) has booted, or may be booting,
 * with the trigger: that boot is what the run was for, and the script cannot change a volume in use.
 * Nothing is reverted then; the message says what the boot does.
 */
import { AttachVolumeCommand, DetachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance, findInstance, findVolume, liveAttachment, pollUntil, type Clock } from '@common/ec2';
import { awsErrorCode, isAwsError, NotReadyError } from '@common/errors';
import type { Logger } from '@common/log';
import { updatePlan, type Plan } from '@common/plan';
import { parseWindowsReport } from '@common/windows';
import { HELPER_DEVICE_NAME } from '../attach-to-helper/attach-to-helper';

export interface WindowsRevertDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly clock: Clock;
  /** The windows-reset Command document's name (the restore function's WINDOWS_DOCUMENT_NAME). */
  readonly windowsDocumentName?: string;
}

export interface WindowsRevertBudgets {
  /** Each volume move (detach from the instance, attach to the helper). */
  readonly moveMs: number;
  /** The Revert command, from SendCommand to its end, per attempt of restore. */
  readonly commandMs: number;
}

/**
 * A move takes seconds on EBS; the script, a mount and a rename or a rewrite. The worst case of
 * 2 x 40 + 90 s added to restore's own budgets (restore.ts) can pass the function's timeout: that
 * attempt then fails and Automation retries restore (maxAttempts 3), which goes on from the plan and
 * the real state: a Revert command still running is waited for again (plan.progress.revertCommandId),
 * never sent a second time, and a revert already done (progress.windowsReverted) is not repeated.
 */
export const DEFAULT_REVERT_BUDGETS: WindowsRevertBudgets = { moveMs: 40_000, commandMs: 90_000 };

/** GetCommandInvocation Status values after which the command no longer runs (botocore ssm 2014-11-06, CommandInvocationStatus). */
const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];
const POLL_MS = 3_000;

/** The SendCommand timeout of the Revert command (delivery to the helper), as resetWindows. */
const REVERT_COMMAND_TIMEOUT_SECONDS = 300;

/**
 * Whether the windows-reset command of this run may have written: it was sent, and it did not end
 * with a report that lists no change (the script decides every refusal before it writes, and its
 * report lists each change it made: runbooks/windows-reset.yaml, "Output parameters").
 */
async function mayHaveWritten(deps: WindowsRevertDeps, plan: Plan): Promise<boolean> {
  const { commandId, helperInstanceId } = plan.created;
  if (!commandId || !helperInstanceId) return false;
  try {
    const inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperInstanceId }));
    if (!TERMINAL.includes(inv.Status ?? '')) return true;
    const report = parseWindowsReport(inv.StandardOutputContent);
    return !report || report.changes.length > 0;
  } catch {
    // Not visible yet (eventually consistent: InvocationDoesNotExist) or unreadable: it may still run and write.
    return true;
  }
}

/**
 * Puts back what this run's windows-reset command wrote, when it may have written and the run has
 * not started the instance. Records `windowsReverted` in the plan once the Revert report is ok.
 * Pushes what it did (or why it could not) to `done`. Throws NotReadyError when the Revert command
 * has not ended within the budget (restore is retried and waits for the same command).
 */
export async function revertWindows(
  deps: WindowsRevertDeps,
  plan: Plan,
  done: string[],
  budgets: WindowsRevertBudgets = DEFAULT_REVERT_BUDGETS,
  /** The windows-reset command never ended: restore forces the detach, and no second command may run beside it. */
  commandNeverEnded = false,
): Promise<void> {
  if (plan.instance.platform !== 'windows' || !plan.created.commandId || plan.progress.windowsReverted) return;
  const { instanceId, executionId } = plan;
  const volumeId = plan.instance.rootVolumeId;
  const helperId = plan.created.helperInstanceId;
  // Started: StartInstances returned, or it was sent and the instance is no longer stopped (the
  // answer may have been lost). A StartInstances that failed (InsufficientInstanceCapacity, ...)
  // left the instance stopped: nothing booted, and the revert goes on (review Q1).
  const started =
    plan.progress.startAccepted === true ||
    (plan.progress.startRequestedAt !== undefined && (await describeInstance(deps.ec2, instanceId)).State?.Name !== 'stopped');
  if (started) {
    done.push(
      plan.inputs.mode === 'NewPassword'
        ? `not reverted: the run started ${instanceId}, whose boot runs this run's one-shot task (a new Administrator password, written to its console encrypted to the run's key)`
        : `not reverted: the run started ${instanceId}, whose boot makes a new Administrator password (GetPasswordData with the key pair)`,
    );
    return;
  }
  const fail = (why: string): void => {
    done.push(`NOT REVERTED what the windows-reset command ${plan.created.commandId} wrote (${why}): the instance's next boot ${plan.inputs.mode === 'NewPassword' ? `runs its one-shot task, whose password only this run's key ${plan.created.runKeyParameterName ?? ''} decrypts` : 'makes a new Administrator password'}; run the windows-reset document with Mode=Revert RunId=${executionId} on an instance with the volume attached`);
  };
  if (commandNeverEnded) return fail('the command never reported an end, so the volume is detached with Force');
  if (!plan.progress.revertCommandId && !(await mayHaveWritten(deps, plan))) return;
  if (!deps.windowsDocumentName) return fail('restore has no WINDOWS_DOCUMENT_NAME');
  if (!helperId) return fail('the plan names no helper');
  const helper = await findInstance(deps.ec2, helperId);
  if (helper?.State?.Name !== 'running') return fail(`helper ${helperId} is ${helper?.State?.Name ?? 'gone'}`);

  let commandId = plan.progress.revertCommandId;
  if (!commandId) {
    const moved = await bringToHelper(deps, plan, helperId, budgets);
    if (moved !== 'ok') return fail(moved);
    const out = await deps.ssm.send(
      new SendCommandCommand({
        DocumentName: deps.windowsDocumentName,
        InstanceIds: [helperId],
        Parameters: { VolumeId: [volumeId], Mode: ['Revert'], RunId: [executionId], PasswordKey: [''] },
        TimeoutSeconds: REVERT_COMMAND_TIMEOUT_SECONDS,
        Comment: `ec2-reset-access revert ${executionId}`.slice(0, 100),
      }),
    );
    commandId = out.Command?.CommandId;
    if (!commandId) return fail('SendCommand returned no command id');
    const sent = commandId;
    plan.progress.revertCommandId = sent;
    await updatePlan(deps.ssm, instanceId, executionId, (p) => {
      p.progress.revertCommandId = sent;
    });
    deps.log.info('windows-reset Mode=Revert sent', { instanceId, helperId, commandId });
  }

  let status = 'not yet visible';
  let stdout: string | undefined;
  try {
    await pollUntil(deps.clock, `the Revert command ${commandId} to end`, budgets.commandMs, POLL_MS, async () => {
      try {
        const inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
        status = inv.Status ?? 'Pending';
        stdout = inv.StandardOutputContent;
        return TERMINAL.includes(status) ? true : undefined;
      } catch (err) {
        if (isAwsError(err, 'InvocationDoesNotExist')) return undefined;
        throw err;
      }
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    throw new NotReadyError(`The Revert command ${commandId} on helper ${helperId} is still ${status} after ${budgets.commandMs / 1000} s; the root volume stays on the helper and restore is retried`);
  }
  const report = parseWindowsReport(stdout);
  if (status !== 'Success' || report?.status !== 'ok') return fail(`the Revert command ended ${status}: ${report?.error ?? 'no report'}`);
  plan.progress.windowsReverted = true;
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.windowsReverted = true;
  });
  const undone = report.changes.map((c) => c.path).join(', ');
  done.push(undone ? `reverted what the windows-reset command wrote (${undone})` : 'the Revert command found nothing of this run to undo');
}

/** Attaches the root volume to the helper again, from wherever the failed run left it; returns 'ok' or why not. */
async function bringToHelper(deps: WindowsRevertDeps, plan: Plan, helperId: string, budgets: WindowsRevertBudgets): Promise<string> {
  const { ec2 } = deps;
  const { instanceId } = plan;
  const volumeId = plan.instance.rootVolumeId;
  const where = async () => {
    const v = await findVolume(ec2, volumeId);
    return { state: v?.State ?? 'gone', attachment: v ? liveAttachment(v) : undefined };
  };
  const settled = (budget: number, what: string, ok: (w: Awaited<ReturnType<typeof where>>) => boolean) =>
    pollUntil(deps.clock, what, budget, POLL_MS, async () => (ok(await where()) ? true : undefined));

  const w = await where();
  if (w.attachment?.instanceId === helperId && w.attachment.state === 'attached') return 'ok';
  if (w.attachment?.instanceId === helperId && w.attachment.state === 'attaching') {
    await settled(budgets.moveMs, `volume ${volumeId} to be attached to the helper`, (n) => n.attachment?.instanceId === helperId && n.attachment.state === 'attached');
    return 'ok';
  }
  if (w.attachment?.instanceId === instanceId) {
    const state = (await describeInstance(ec2, instanceId)).State?.Name;
    if (state !== 'stopped') return `instance ${instanceId} is ${state}, so its root volume cannot be taken back to the helper`;
    if (w.attachment.state !== 'detaching') {
      try {
        await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId }));
      } catch (err) {
        return `detaching ${volumeId} from ${instanceId} failed (${awsErrorCode(err) || 'error'})`;
      }
    }
  }
  if (w.attachment?.instanceId === helperId && w.attachment.state === 'detaching') {
    // releaseWindows' detach is under way: let it end, then attach again.
  } else if (w.attachment && w.attachment.instanceId !== instanceId) {
    return `volume ${volumeId} is ${w.attachment.state} to ${w.attachment.instanceId}`;
  }
  await settled(budgets.moveMs, `volume ${volumeId} to be available`, (n) => n.state === 'available' && !n.attachment);
  try {
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId, Device: HELPER_DEVICE_NAME }));
  } catch (err) {
    return `attaching ${volumeId} to helper ${helperId} failed (${awsErrorCode(err) || 'error'})`;
  }
  await settled(budgets.moveMs, `volume ${volumeId} to be attached to the helper`, (n) => n.attachment?.instanceId === helperId && n.attachment.state === 'attached');
  deps.log.info('root volume attached to the helper again for the revert', { volumeId, helperId });
  return 'ok';
}
