/**
 * Step `injectKey`: take the user's public key, or make a key pair and keep its private half only
 * in a SecureString; then send the inject-key command to the helper with the public key alone.
 *
 * The private key goes into PutParameter's Value and nowhere else: not the result, the plan, a
 * log line or an error message.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { backupRunning, waitForImageSnapshots } from '@common/backup';
import { changesOf, endedInvocation, okReport } from '@common/command-wait';
import { realClock, type Clock } from '@common/ec2';
import type { GeneratedKeyPair, KeyType } from '@common/keys';
import { requireOwnLockTag } from '@common/lock-tag';
import { generateRunKey, prepareRunKey, storeRunKey, type RunKey } from '@common/stored-key';
import { isAwsError, NotReadyError, PlanError, UnexpectedStateError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan, type Plan } from '@common/plan';
import { fingerprintOf } from '@common/public-key';
import type { RevokeAction } from '@common/revoke';
import type { StepInput } from '@common/validation';
import { keyParameterName } from '@common/names';

export interface InjectConfig {
  /** The KMS key (ARN) that encrypts the SecureString. */
  readonly keyId: string;
  readonly documentName: string;
  /**
   * The revoke Command document (RevokeKey, issue 14), sent when the plan's action is a revoke.
   * '' when the function was deployed without it: a revoke plan then fails the step, naming it.
   */
  readonly revokeDocumentName?: string;
}

export interface InjectDeps {
  readonly ssm: SSMClient;
  /** The online method's backup (CreateSnapshot or CreateImage with NoReboot) is started here. */
  readonly ec2: EC2Client;
  readonly log: Logger;
  readonly config: InjectConfig;
  /** @default generateKeyPairAsync */
  readonly generate?: (type: KeyType) => GeneratedKeyPair | Promise<GeneratedKeyPair>;
  /** @default realClock */
  readonly clock?: Clock;
  /** @default ONLINE_CONFIRM_MS */
  readonly onlineConfirmMs?: number;
  /**
   * The invocation's time left before Lambda's timeout (the context object's
   * getRemainingTimeInMillis: https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html).
   * Online: the confirm wait ends CONFIRM_MARGIN_MS before it (review-s6 Q7). Absent: no bound
   * beyond ONLINE_CONFIRM_MS.
   */
  readonly remainingMs?: () => number;
}

export interface InjectResult {
  readonly commandId: string;
  /** `none` when the user gave the public key. */
  readonly keyParameterName: string;
  readonly fingerprint: string;
  readonly keyType: string;
  /** The backup of this run (`none` for BackupMethod=None or before the volume swap's backup). */
  readonly backupId: string;
  /**
   * Online only: the command ended Success on the instance and its report says the key is in
   * place (read by this step); false when it had not ended within ONLINE_CONFIRM_MS (the runbook's
   * waitForOnlineInjection and reportOnline then confirm it) and for the volume swap.
   */
  readonly confirmed: boolean;
  readonly usersChanged: readonly string[];
  readonly filesChanged: readonly string[];
}

/**
 * How long injectKey waits for the new command's invocation to become visible to
 * GetCommandInvocation, which may answer InvocationDoesNotExist just after SendCommand (issue 10,
 * defect 7; the API reference lists InvocationDoesNotExist among GetCommandInvocation's errors:
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html).
 */
export const INVOCATION_VISIBLE_MS = 30_000;
const INVOCATION_POLL_MS = 1_000;

/** How long the command may wait for delivery to the helper (SendCommand TimeoutSeconds). */
export const COMMAND_TIMEOUT_SECONDS = 300;

/**
 * Online: how long this step waits for the command to end on the instance itself, so that the run
 * knows the key is in place one step earlier (issue 12, time to access). Within the function's
 * timeout (lib/functions.ts) with room for the key generation and the backup call. Past it the step
 * still succeeds unconfirmed and the runbook's wait and reportOnline carry on.
 */
export const ONLINE_CONFIRM_MS = 120_000;
/**
 * Online: the confirm wait stops this long before the function's timeout, for what follows it (the
 * report's plan update: a GetParameter and a PutParameter) and a poll call in flight. The image
 * wait (up to IMAGE_SNAPSHOTS_BUDGET_MS) and the key's generation come before the confirm wait, so
 * the wait gets what they left (review-s6 Q7): past it the step returns unconfirmed and the
 * runbook's waitForOnlineInjection and reportOnline carry on, as after ONLINE_CONFIRM_MS.
 */
export const CONFIRM_MARGIN_MS = 15_000;
/** Online: GetCommandInvocation is asked every second while the command runs (a read, at most ~120 calls). */
export const ONLINE_POLL_MS = 1_000;

/**
 * The volume swap (inject and revoke) with BackupMethod=Image (review-s6 Q19): the image was made
 * by backup-and-detach (CreateImage, NoReboot) on the stopped instance, and the root volume was
 * detached right after. Stopped or not, an image holds "only the data that has been written to the
 * volumes at the time the snapshots are created"
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html, NoReboot): its point
 * in time is each snapshot's creation, which no source ties to the CreateImage call or to the
 * detach. The command below is the first write to the volume, so the same bounded wait as the
 * online path (waitForImageSnapshots) comes before it; past its bound, or on a failed image, the
 * step refuses with nothing written and nothing stored. In the runbook this step follows the
 * helper's boot, so the snapshots usually exist by now and the wait is one DescribeImages and one
 * DescribeSnapshots.
 */
async function imageSnapshotsBeforeWrite(deps: InjectDeps, plan: Plan): Promise<void> {
  const backupId = plan.created.backupId;
  if (plan.inputs.backupMethod === 'Image' && backupId?.startsWith('ami-')) await waitForImageSnapshots(deps.ec2, backupId, deps.clock);
}

export function keyParameterNameFor(instanceId: string): string {
  return keyParameterName(instanceId);
}


export async function injectKey(deps: InjectDeps, input: StepInput): Promise<InjectResult> {
  const { ssm, config } = deps;
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(ssm, instanceId, executionId);
  // Online: the command runs on the instance itself, on its live root (Root=/, no volume to find).
  const online = plan.method.chosen === 'Online';
  const helperId = online ? instanceId : plan.created.helperInstanceId;
  if (!helperId) throw new PlanError(`The plan of ${instanceId} has no helper instance: launchHelper did not complete`);

  if (plan.inputs.action?.kind === 'revoke') {
    return sendRevoke(deps, plan, helperId, online);
  }

  const keyDeps = { ssm, keyId: config.keyId, generate: deps.generate };
  let backupId = plan.created.backupId ?? 'none';
  let key: RunKey;
  if (online) {
    // Online: the backup starts here, before anything is written (a snapshot is point-in-time at
    // the call: https://docs.aws.amazon.com/ebs/latest/userguide/ebs-creating-snapshot.html), in the
    // same step as the command, which saves a step transition and a cold Lambda on the way to
    // access. The key is generated meanwhile (off the event loop: generateKeyPairAsync), since the
    // backup's calls do not need it; it is stored after the backup's plan update (one writer of
    // the plan at a time), and the command is sent only after both.
    const [backup, pair] = await Promise.all([backupRunning({ ec2: deps.ec2, ssm, log: deps.log }, plan, input), generateRunKey(keyDeps, plan)]);
    backupId = backup.backupId;
    // Image (NoReboot): its point in time is its snapshots' creation, not the call (review P5):
    // wait for them, while the key is stored.
    const imageWait = plan.inputs.backupMethod === 'Image' && backupId.startsWith('ami-') ? waitForImageSnapshots(deps.ec2, backupId, deps.clock) : undefined;
    // Both settle before either's failure is thrown (review-s6 Q8): a failed image wait must not
    // end the handler while the key's PutParameter or its plan record is still in flight (Lambda
    // freezes the environment; the put could land later with no record in the plan for restore).
    const [stored, waited] = await Promise.allSettled([storeRunKey(keyDeps, plan, pair, instanceId, executionId), imageWait]);
    if (stored.status === 'rejected') throw stored.reason;
    if (waited.status === 'rejected') throw waited.reason;
    key = stored.value;
  } else {
    await imageSnapshotsBeforeWrite(deps, plan);
    key = await prepareRunKey(keyDeps, plan, instanceId, executionId);
  }
  const { publicKey, fingerprint, keyType, keyParameterName } = key;
  if (keyParameterName !== 'none') deps.log.info('private key stored', { instanceId, parameter: keyParameterName, fingerprint });
  // Online: the customer's instance must carry this run's lock tag, read now (review P6/O1).
  if (online) await requireOwnLockTag(deps.ec2, instanceId, executionId);

  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.documentName,
      InstanceIds: [helperId],
      Parameters: {
        VolumeId: [online ? '' : plan.instance.rootVolumeId],
        PublicKey: [publicKey],
        Users: [plan.inputs.users.join(',')],
        Root: [online ? '/' : ''],
      },
      TimeoutSeconds: COMMAND_TIMEOUT_SECONDS,
      Comment: `ec2-reset-access ${executionId} for ${instanceId}`.slice(0, 100),
    }),
  );
  const commandId = out.Command?.CommandId;
  if (!commandId) throw new UnexpectedStateError(`SendCommand to helper ${helperId} returned no command id`);
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.created.commandId = commandId;
    p.progress.phase = 'injection-sent';
  });
  deps.log.info('inject command sent', { instanceId, helperId, commandId, fingerprint });
  const base = { commandId, keyParameterName, fingerprint, keyType, backupId, confirmed: false, usersChanged: [], filesChanged: [] };
  if (!online) {
    await waitUntilVisible(ssm, deps.clock ?? realClock, commandId, helperId);
    return base;
  }
  // Online: wait for the command to end and read its report here. A failed command fails this
  // step (InjectionFailedError), and the runbook restores.
  const confirmMs = Math.min(deps.onlineConfirmMs ?? ONLINE_CONFIRM_MS, deps.remainingMs ? deps.remainingMs() - CONFIRM_MARGIN_MS : Infinity);
  if (confirmMs <= 0) {
    deps.log.info('no time left in this step to wait for the inject command; the runbook waits for it', { instanceId, commandId });
    return base;
  }
  let inv;
  try {
    inv = await endedInvocation({ ssm, clock: deps.clock, commandWaitMs: confirmMs }, commandId, helperId, {
      pollMs: ONLINE_POLL_MS,
      afterTimeout: 'left to waitForOnlineInjection and reportOnline',
    });
  } catch (err) {
    if (!(err instanceof NotReadyError)) throw err;
    deps.log.info('inject command not ended yet; the runbook waits for it', { instanceId, commandId });
    return base;
  }
  const report = okReport(inv, commandId, helperId, 'Nothing else was changed by this step.');
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.progress.keyInjected = true;
    p.progress.phase = 'key-injected';
  });
  deps.log.info('key in place on the instance', { instanceId, commandId, fingerprint });
  return { ...base, confirmed: true, ...changesOf(report) };
}

/**
 * A revoke plan: sends the revoke Command document (its parameters: the contract in
 * runbooks/revoke-key.yaml) with the fingerprints, the replacement public key, the users and the
 * mode. No key pair is made and nothing is stored: KeyParameterName is `none`.
 */
async function sendRevoke(deps: InjectDeps, plan: Plan, targetId: string, online: boolean): Promise<InjectResult> {
  const { ssm, config } = deps;
  const action = plan.inputs.action as RevokeAction;
  const { instanceId, executionId } = plan;
  if (!config.revokeDocumentName) {
    throw new UnexpectedStateError('This inject-key function was deployed without REVOKE_DOCUMENT_NAME: it cannot send a revoke command');
  }
  // Online: the customer's instance must carry this run's lock tag, read now (review P6/O1).
  if (online) await requireOwnLockTag(deps.ec2, instanceId, executionId);
  else await imageSnapshotsBeforeWrite(deps, plan);
  const out = await ssm.send(
    new SendCommandCommand({
      DocumentName: config.revokeDocumentName,
      InstanceIds: [targetId],
      Parameters: {
        VolumeId: [online ? '' : plan.instance.rootVolumeId],
        Root: [online ? '/' : ''],
        Fingerprints: [action.fingerprints.join(',')],
        ReplacementKey: [action.replacementKey],
        Users: [plan.inputs.users.join(',')],
        Mode: [action.mode],
      },
      TimeoutSeconds: COMMAND_TIMEOUT_SECONDS,
      Comment: `ec2-reset-access revoke ${executionId} for ${instanceId}`.slice(0, 100),
    }),
  );
  const commandId = out.Command?.CommandId;
  if (!commandId) throw new UnexpectedStateError(`SendCommand to ${targetId} returned no command id`);
  await updatePlan(ssm, instanceId, executionId, (p) => {
    p.created.commandId = commandId;
    p.progress.phase = 'injection-sent';
  });
  deps.log.info('revoke command sent', { instanceId, targetId, commandId, mode: action.mode, keys: action.fingerprints.length });
  await waitUntilVisible(ssm, deps.clock ?? realClock, commandId, targetId);
  return {
    commandId,
    keyParameterName: 'none',
    fingerprint: action.replacementKey ? fingerprintOf(action.replacementKey) : 'none',
    keyType: action.replacementKey ? action.replacementKey.split(' ')[0] : 'none',
    // The revoke's online backup is its own step (backupOnline); its report is read by reportOnline.
    backupId: plan.created.backupId ?? 'none',
    confirmed: false,
    usersChanged: [],
    filesChanged: [],
  };
}

/**
 * Returns once GetCommandInvocation knows the invocation (any status), so that the runbook's
 * wait after this step never meets InvocationDoesNotExist. Bounded by INVOCATION_VISIBLE_MS; past
 * it, the step fails and the runbook restores (the command may still run: restore waits for it).
 */
async function waitUntilVisible(ssm: SSMClient, clock: Clock, commandId: string, helperId: string): Promise<void> {
  const deadline = clock.now() + INVOCATION_VISIBLE_MS;
  for (;;) {
    try {
      await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
      return;
    } catch (err) {
      if (!isAwsError(err, 'InvocationDoesNotExist')) throw err;
    }
    if (clock.now() + INVOCATION_POLL_MS > deadline) {
      throw new UnexpectedStateError(
        `The inject command ${commandId} on helper ${helperId} was not visible to GetCommandInvocation within ${INVOCATION_VISIBLE_MS / 1000} s`,
      );
    }
    await clock.sleep(INVOCATION_POLL_MS);
  }
}
