/**
 * Step `restore`: converge from the plan and the real state (DescribeVolumes, DescribeInstances),
 * not from step outputs, so it works from any point of the run and twice (docs/architecture.md,
 * "Restore"):
 *  0. an inject command sent and not known to have ended: wait for it (bounded), cancel it if it
 *     still runs, and judge "injected" by its report, so the volume never leaves the helper
 *     mid-write and a key that reached the volume keeps its private half;
 *  1. root volume attached to the helper: detach (force only after a normal detach timed out),
 *     wait available;
 *  2. available: attach to the original instance at the original device name, wait in-use;
 *  3. DeleteOnTermination as it was; start the instance if it was running and is stopped;
 *  4. a key written but not injected: delete the SecureString; injected: keep it, name it.
 * Throws RestoreError naming the volume and its state when it cannot be put back.
 */
import {
  AttachVolumeCommand,
  DetachVolumeCommand,
  ModifyInstanceAttributeCommand,
  StartInstancesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import {
  CancelCommandCommand,
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetCommandInvocationCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { describeInstance, findVolume, liveAttachment, pollUntil, type Clock } from '@common/ec2';
import { awsErrorCode, isAwsError, NotReadyError, RestoreError } from '@common/errors';
import type { Logger } from '@common/log';
import { parseReport } from '@common/report';
import { readPlan, updatePlan, type Plan } from '@common/plan';
import type { StepInput } from '@common/validation';

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
}

/** 45 + 60 + 30 + 60 + 60 s: within a Lambda timeout under the step's 300 s. */
export const DEFAULT_BUDGETS: RestoreBudgets = { commandMs: 45_000, detachMs: 60_000, forceDetachMs: 30_000, attachMs: 60_000, stopMs: 60_000 };
/** Command statuses after which nothing runs on the helper any more. */
const COMMAND_ENDED = ['Success', 'Failed', 'Cancelled', 'TimedOut'];
const POLL_MS = 3_000;

export interface RestoreDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly clock: Clock;
  readonly budgets?: RestoreBudgets;
}

export interface RestoreResult {
  readonly restored: boolean;
  readonly message: string;
}

export async function restore(deps: RestoreDeps, input: StepInput): Promise<RestoreResult> {
  const { instanceId, executionId } = input;
  const plan = await readPlan(deps.ssm, instanceId);
  if (!plan) {
    return { restored: false, message: `No plan for ${instanceId}: this execution changed nothing to restore` };
  }
  if (plan.executionId !== executionId) {
    return { restored: false, message: `The plan of ${instanceId} belongs to execution ${plan.executionId}; not touched` };
  }
  const budgets = deps.budgets ?? DEFAULT_BUDGETS;
  const done: string[] = [];
  await settleCommand(deps, plan, budgets, done);
  await putVolumeBack(deps, plan, budgets, done);
  await restoreInstance(deps, plan, budgets, done);
  await settleKey(deps, plan, done);
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'restored';
  });
  const message = done.length > 0 ? done.join('; ') : 'nothing to change';
  deps.log.info('restored', { instanceId, actions: done.length });
  return { restored: true, message };
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

async function putVolumeBack(deps: RestoreDeps, plan: Plan, budgets: RestoreBudgets, done: string[]): Promise<void> {
  const { ec2 } = deps;
  const volumeId = plan.instance.rootVolumeId;
  const instanceId = plan.instanceId;
  const helperId = plan.created.helperInstanceId;
  let v = await volumeState(deps, volumeId);

  if (v.attachment && v.attachment.instanceId !== instanceId) {
    if (v.attachment.instanceId !== helperId) {
      throw new RestoreError(
        `Cannot restore: ${describeState(volumeId, v)}, which is neither ${instanceId} nor this run's helper; attach it back to ${instanceId} at ${plan.instance.rootDeviceName} by hand`,
      );
    }
    if (v.attachment.state !== 'detaching') {
      await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId }));
    }
    try {
      await waitAvailable(deps, volumeId, budgets.detachMs);
    } catch (err) {
      if (!(err instanceof NotReadyError)) throw err;
      deps.log.warn('normal detach timed out: forcing', { volumeId, helperId });
      await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId, Force: true }));
      await waitAvailable(deps, volumeId, budgets.forceDetachMs);
    }
    done.push(`detached ${volumeId} from helper ${helperId}`);
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
  if (plan.instance.originalState !== 'running') return;
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

/**
 * Makes sure the inject command no longer runs before the volume moves, and records whether it
 * put the key on the volume (plan.progress.keyInjected). Best effort: when the command cannot be
 * read (no permission, gone), restore goes on with what the plan says and says so.
 */
async function settleCommand(deps: RestoreDeps, plan: Plan, budgets: RestoreBudgets, done: string[]): Promise<void> {
  const { commandId, helperInstanceId: helperId } = plan.created;
  if (!commandId || !helperId || plan.progress.keyInjected) return;
  const read = async (): Promise<{ status: string; stdout?: string } | undefined> => {
    try {
      const out = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
      return { status: out.Status ?? 'Pending', stdout: out.StandardOutputContent };
    } catch (err) {
      // Right after SendCommand the invocation may not exist yet: it has not started.
      if (isAwsError(err, 'InvocationDoesNotExist')) return { status: 'Pending' };
      throw err;
    }
  };
  try {
    let inv = await read();
    if (inv && !COMMAND_ENDED.includes(inv.status)) {
      try {
        inv = await pollUntil(deps.clock, `command ${commandId} to end`, budgets.commandMs, POLL_MS, async () => {
          const now = await read();
          return now && COMMAND_ENDED.includes(now.status) ? now : undefined;
        });
      } catch (err) {
        if (!(err instanceof NotReadyError)) throw err;
        await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [helperId] }));
        done.push(`cancelled the inject command ${commandId}, still running after ${Math.round(budgets.commandMs / 1000)} s`);
        return;
      }
    }
    if (inv?.status === 'Success' && parseReport(inv.stdout)?.status === 'ok') {
      plan.progress.keyInjected = true;
      await updatePlan(deps.ssm, plan.instanceId, plan.executionId, (p) => {
        p.progress.keyInjected = true;
      });
      done.push(`the inject command ${commandId} had added the key`);
    }
  } catch (err) {
    deps.log.warn('could not read the inject command', { commandId, code: awsErrorCode(err) });
    done.push(`could not read the inject command ${commandId} (${awsErrorCode(err) || 'error'})`);
  }
}

async function settleKey(deps: RestoreDeps, plan: Plan, done: string[]): Promise<void> {
  const name = plan.created.keyParameterName;
  if (!name) return;
  if (plan.progress.keyInjected) {
    done.push(`the key was injected: its private key stays in ${name}`);
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
