/**
 * The runner on the repository's own runbooks (runbooks/reset-access.yaml and restore.yaml, with
 * their placeholders replaced as lib/runbook.ts does), with in-memory Lambdas and an in-memory AWS
 * that, like the twin's agent, schedules slow work on the clock and answers Describe* from it.
 * It shows that the runner models overlap (the helper boots while the target stops), that a fault
 * at any step routes to restore in the same execution, and that a cancel at any step ends the run
 * within the cancellation path's two minutes and converges through the restore runbook it starts.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { latencyOf } from '../../local/latency';
import { VirtualClock } from '../../local/runner/clock';
import { AwsCall, CANCEL_PATH_SECONDS, ExecutionResult, executions, runAutomation, timeToAccess } from '../../local/runner/runner';
import { loadRunbookYaml, replacePlaceholders, RESTORE_RUNBOOK_FILE } from '../../lib/runbook';
import { STEP_FOLDERS, type StepFolder } from '../../lib/constants';
import { functionTimeoutSeconds } from '../../lib/functions';
import { OUTPUT_FIELDS as RESTORE_OUTPUT_FIELDS } from '../../lambdas/restore/handler';
import { Handler, lambdas } from './helpers';

const TARGET = 'i-0aaaaaaaaaaaaaaaa';
const HELPER = 'i-0bbbbbbbbbbbbbbbb';
const VOLUME = 'vol-0cccccccccccccccc';
const COMMAND = 'cmd-1';
const ROLE = 'arn:aws:iam::123456789012:role/automation';
const ACCESS_STEPS = ['waitForInstanceRunning', 'startInstance'];
const RESTORE_DOCUMENT = 'ResetAccess-Restore';
/** The botocore package of the preinstalled AWS CLI v1: AWS's published service models. */
const BOTOCORE = execFileSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))']).toString().trim();

const tokens = {
  functionArns: Object.fromEntries(STEP_FOLDERS.map((f) => [f, `fn:${f}`])),
  automationRoleArn: ROLE,
  injectDocumentName: 'ResetAccess-InjectKey',
  restoreDocumentName: RESTORE_DOCUMENT,
  windowsDocumentName: 'ResetAccess-WindowsReset',
};
const RUNBOOK = replacePlaceholders(loadRunbookYaml(join(__dirname, '..', '..', 'runbooks', 'reset-access.yaml')), tokens) as {
  mainSteps: { name: string }[];
};
const RESTORE = replacePlaceholders(loadRunbookYaml(RESTORE_RUNBOOK_FILE), tokens);

/** A tiny AWS in the style of the twin's agent: slow work is scheduled on the clock; Describe* answers from it. */
function world(clock: VirtualClock, originalState: 'running' | 'stopped', restoreSeconds = latencyOf('DetachVolume') + latencyOf('AttachVolume')) {
  const instance = new Map<string, string>([[TARGET, originalState]]);
  let volume = { state: 'in-use', attachedTo: TARGET, device: '/dev/xvda' };
  let command: 'none' | 'sent' = 'none';
  let lock: string | undefined;
  const transitional = (id: string, now: string, settled: string) => (clock.pending(id).length > 0 ? now : settled);
  const describeInstance = (id: string) => {
    const s = instance.get(id) as string;
    const shown = s === 'stopped' ? transitional(id, 'stopping', 'stopped') : s === 'running' ? transitional(id, 'pending', 'running') : s;
    return { InstanceId: id, State: { Name: shown }, RootDeviceName: '/dev/xvda' };
  };

  const awsCall: AwsCall = async (service, api, params) => {
    if (service === 'ec2' && api === 'DescribeInstances') {
      if (params.Filters) {
        // The helper, found by its tags (execution id, role helper).
        return { Reservations: instance.has(HELPER) ? [{ Instances: [describeInstance(HELPER)] }] : [] };
      }
      return { Reservations: [{ Instances: [describeInstance((params.InstanceIds as string[])[0])] }] };
    }
    if (service === 'ec2' && api === 'DescribeVolumes') {
      const shown = volume.state === 'available' ? transitional(VOLUME, 'detaching', 'available') : transitional(VOLUME, 'attaching', 'in-use');
      const attachments = volume.attachedTo ? [{ InstanceId: volume.attachedTo, Device: volume.device, State: shown === 'in-use' ? 'attached' : 'attaching' }] : [];
      if (params.Filters) {
        const f = params.Filters as { Name: string; Values: string[] }[];
        const match = f.every((x) => (x.Name === 'attachment.instance-id' ? x.Values.includes(volume.attachedTo) : x.Values.includes(volume.device)));
        return { Volumes: match ? [{ VolumeId: VOLUME, State: shown, Attachments: attachments }] : [] };
      }
      return { Volumes: [{ VolumeId: VOLUME, State: shown, Attachments: attachments }] };
    }
    if (service === 'ssm' && api === 'DescribeInstanceInformation') {
      const id = (params.Filters as { Values: string[] }[])[0].Values[0];
      if (!instance.has(id) || clock.pending(id).length > 0) return { InstanceInformationList: [] };
      return { InstanceInformationList: [{ InstanceId: id, PingStatus: 'Online' }] };
    }
    if (service === 'ssm' && api === 'ListCommandInvocations') {
      if (command === 'none') return { CommandInvocations: [] };
      return { CommandInvocations: [{ CommandId: COMMAND, Status: clock.pending(COMMAND).length > 0 ? 'InProgress' : 'Success' }] };
    }
    if (service === 'ssm' && api === 'GetAutomationExecution') {
      return { AutomationExecution: { AutomationExecutionStatus: executions.get(String(params.AutomationExecutionId)) } };
    }
    throw new Error(`world has no ${service} ${api}`);
  };

  const handlers: Record<string, Handler> = {
    preflight: (e) => {
      lock = String(e.ExecutionId);
      // branchOnMethod takes the volume swap: this world swaps volumes.
      return { RootVolumeId: VOLUME, OriginalState: originalState, Method: 'VolumeSwap', MethodToken: '|method:VolumeSwap|' };
    },
    'stop-instance': () => {
      const prev = instance.get(TARGET) as string;
      if (prev === 'running') {
        instance.set(TARGET, 'stopped');
        clock.schedule('StopInstances', [TARGET]);
      }
      return { PreviousState: prev };
    },
    'launch-helper': () => {
      instance.set(HELPER, 'running');
      clock.schedule('RunInstancesUntilOnline', [HELPER]);
      return { HelperInstanceId: HELPER, NetworkCreated: true };
    },
    'backup-and-detach': () => {
      clock.schedule('CreateSnapshot', ['snap-1']);
      volume = { state: 'available', attachedTo: '', device: '' };
      clock.schedule('DetachVolume', [VOLUME, TARGET]);
      return { BackupId: 'snap-1', BackupMethod: 'Snapshot' };
    },
    'attach-to-helper': () => {
      volume = { state: 'in-use', attachedTo: HELPER, device: '/dev/sdf' };
      clock.schedule('AttachVolume', [VOLUME, HELPER]);
      return { HelperDeviceName: '/dev/sdf' };
    },
    'inject-key': () => {
      command = 'sent';
      clock.schedule('RunCommand', [COMMAND, HELPER]);
      return { CommandId: COMMAND, KeyParameterName: `/ec2rl/openssh/${TARGET}/key`, Fingerprint: 'SHA256:x', KeyType: 'rsa' };
    },
    'release-from-helper': () => {
      volume = { state: 'available', attachedTo: '', device: '' };
      clock.schedule('DetachVolume', [VOLUME, HELPER]);
      return { UsersChanged: 'ec2-user', FilesChanged: '/home/ec2-user/.ssh/authorized_keys', CommandId: COMMAND, HelperInstanceId: HELPER };
    },
    'reattach-root': () => {
      volume = { state: 'in-use', attachedTo: TARGET, device: '/dev/xvda' };
      clock.schedule('AttachVolume', [VOLUME, TARGET]);
      return { DeviceName: '/dev/xvda' };
    },
    'start-instance': () => {
      if (originalState === 'running') {
        instance.set(TARGET, 'running');
        clock.schedule('StartInstances', [TARGET]);
      }
      return { Started: originalState === 'running', Warnings: 'none' };
    },
    cleanup: (e) => {
      // Terminating the helper before its network goes: the Lambda waits for it.
      if (instance.has(HELPER)) clock.advanceBy(latencyOf('TerminateInstances'));
      instance.delete(HELPER);
      if (lock === e.ExecutionId) lock = undefined;
      return { Removed: HELPER };
    },
    summarize: (e) => ({ Inputs: Object.keys(e).sort().join(','), InstanceState: describeInstance(TARGET).State.Name }),
    restore: () => {
      // Converge: the volume back on the target at its device, the instance in its original state.
      clock.advanceBy(restoreSeconds);
      volume = { state: 'in-use', attachedTo: TARGET, device: '/dev/xvda' };
      instance.set(TARGET, originalState);
      return { Restored: true, Message: 'restored' };
    },
  };
  const fake = lambdas(Object.fromEntries(Object.entries(handlers).map(([folder, h]) => [`fn:${folder}`, h])));
  const timeline: { fn: string; at: number }[] = [];
  const invoke = (fn: unknown, payload: unknown) => {
    timeline.push({ fn: String(fn), at: clock.now() });
    return fake.invoke(fn, payload);
  };
  return { awsCall, fake: { ...fake, invoke }, timeline, instance, volume: () => volume, lock: () => lock };
}

interface ResetOptions {
  faults?: { step: string; when: 'before' | 'after'; message: string }[];
  cancelAt?: string;
  cancelInFlight?: { step: string; runsForSeconds: number };
  document?: unknown;
  restoreSeconds?: number;
}

async function reset(originalState: 'running' | 'stopped', { document, restoreSeconds, ...extra }: ResetOptions = {}) {
  const clock = new VirtualClock();
  const w = world(clock, originalState, restoreSeconds);
  const result = await runAutomation({
    document: document ?? RUNBOOK,
    parameters: { InstanceId: TARGET },
    // Automation execution ids are UUIDs; the restore runbook's ExecutionId parameter says so.
    executionId: randomUUID(),
    invokeLambda: w.fake.invoke,
    awsCall: w.awsCall,
    clock,
    documents: { [RESTORE_DOCUMENT]: RESTORE },
    ...extra,
  });
  return { result, w };
}

const end = (r: ExecutionResult, name: string) => r.steps.find((s) => s.name === name)?.endedAt as number;
const start = (r: ExecutionResult, name: string) => r.steps.find((s) => s.name === name)?.startedAt as number;
const converged = (w: ReturnType<typeof world>, state: string) => {
  expect(w.volume()).toEqual({ state: 'in-use', attachedTo: TARGET, device: '/dev/xvda' });
  expect(w.instance.get(TARGET)).toBe(state);
  expect(w.instance.has(HELPER)).toBe(false);
  expect(w.lock()).toBeUndefined();
};

describe('the repository runbook on the runner', () => {
  it('resets a running instance; the helper boots while the target stops', async () => {
    const { result: r, w } = await reset('running');

    expect(r.status).toBe('Success');
    expect(r.assumeRole).toBe(ROLE);
    expect(r.steps.map((s) => s.name)).toEqual([
      'preflight', 'branchOnMethod', 'describeInstance', 'describeRootVolume', 'stopInstance', 'launchHelper', 'waitForInstanceStopped',
      'backupAndDetachRoot', 'waitForRootDetached', 'describeHelper', 'waitForHelperOnline', 'attachToHelper', 'waitForAttachedToHelper', 'branchOnPlatform', 'injectKey',
      'waitForInjection', 'releaseFromHelper', 'waitForRootReleased', 'reattachRoot', 'waitForRootReattached', 'startInstance',
      'describeInstanceState', 'branchOnState', 'waitForInstanceRunning', 'cleanup', 'summarize',
    ]);
    // summarize got the earlier steps' whole Payloads; its own Payload is the runbook's output.
    expect(JSON.parse(String(r.outputs['summarize.Payload']))).toEqual({
      Inputs: 'BackupResult,ExecutionId,InjectKeyResult,InstanceId,PreflightResult,ReleaseResult,StartResult',
      InstanceState: 'running',
    });
    converged(w, 'running');

    // Overlap: the stop completes StopInstances after stopInstance's Lambda; the helper's boot
    // started one step later and was mostly done by then.
    const stopDone = end(r, 'stopInstance') + latencyOf('StopInstances');
    expect(end(r, 'waitForInstanceStopped')).toBeCloseTo(stopDone + latencyOf('ApiCall'));
    const onlineAt = end(r, 'launchHelper') + latencyOf('RunInstancesUntilOnline');
    expect(end(r, 'waitForHelperOnline')).toBeCloseTo(Math.max(onlineAt, start(r, 'waitForHelperOnline')) + latencyOf('ApiCall'));
    const sequentialSlowWork =
      latencyOf('StopInstances') + latencyOf('RunInstancesUntilOnline') + 2 * latencyOf('DetachVolume') + 2 * latencyOf('AttachVolume') +
      latencyOf('RunCommand') + latencyOf('StartInstances');
    const access = timeToAccess(r, ACCESS_STEPS) as number;
    expect(access).toBe(end(r, 'waitForInstanceRunning'));
    expect(access).toBeLessThan(sequentialSlowWork);
    expect(r.modeledSeconds).toBeGreaterThan(access);
  });

  it('resets a stopped instance: the branch skips the wait for running, access is at startInstance', async () => {
    const { result: r, w } = await reset('stopped');
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).not.toContain('waitForInstanceRunning');
    expect(timeToAccess(r, ACCESS_STEPS)).toBe(end(r, 'startInstance'));
    converged(w, 'stopped');
  });

  const names = RUNBOOK.mainSteps.map((s) => s.name);
  const afterPreflight = names.slice(1, names.indexOf('summarize') + 1);
  it.each(afterPreflight.flatMap((step) => [[step, 'before'], [step, 'after']] as const))('a fault %s (%s) routes to restore and cleanupAfterRestore; the execution is Failed', async (step, when) => {
    const { result: r, w } = await reset('running', { faults: [{ step, when, message: `injected at ${step}` }] });
    expect(r.status).toBe('Failed');
    expect(r.steps.map((s) => s.name).slice(-2)).toEqual(['restore', 'cleanupAfterRestore']);
    expect(r.steps.find((s) => s.name === step)).toMatchObject({ status: 'Failed', failureMessage: `injected at ${step}` });
    expect(r.failureMessage).toBe(`Step ${step} failed: injected at ${step}`);
    converged(w, 'running');
    expect(r.startedExecutions).toEqual([]);
  });

  it('a fault in preflight aborts at once (nothing to restore)', async () => {
    const { result: r, w } = await reset('running', { faults: [{ step: 'preflight', when: 'before', message: 'refused: Spot' }] });
    expect(r.status).toBe('Failed');
    expect(r.steps.map((s) => s.name)).toEqual(['preflight']);
    expect(w.fake.calls).toHaveLength(0);
  });

  it.each(afterPreflight)('a cancel at %s ends within the two minutes and the restore runbook it starts converges', async (step) => {
    const { result: r, w } = await reset('running', { cancelAt: step });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.at(-1)?.failureMessage).toBeUndefined();
    expect(r.steps.map((s) => [s.name, s.status]).slice(-2)).toEqual([
      [step, 'Cancelled'],
      ['startRestore', 'Success'],
    ]);
    expect(r.cancelPathCutShort).toBeUndefined();
    expect(r.modeledSeconds - start(r, step)).toBeLessThan(CANCEL_PATH_SECONDS);
    expect(r.startedExecutions).toHaveLength(1);
    const restore = r.startedExecutions[0];
    expect(r.outputs['startRestore.RestoreExecutionId']).toBe(restore.executionId);
    expect(restore.status).toBe('Success');
    expect(restore.steps.map((s) => s.name)).toEqual(['waitForExecutionEnded', 'waitForLambdasStopped', 'waitForInstanceSettled', 'restore', 'cleanup']);
    // The restore runbook restored this execution's plan, not its own.
    expect(w.fake.calls.filter((c) => c.fn === 'fn:restore').map((c) => c.event.ExecutionId)).toEqual([r.executionId]);
    converged(w, 'running');
  });

  /**
   * Restore at its own budgets (lambdas/restore: wait 45 s for a running inject command, 60 s
   * for a normal detach, 30 s after forcing it, then attach and start): longer than the two
   * minutes of a cancellation path.
   */
  const SLOW_RESTORE = 45 + 60 + 30 + latencyOf('AttachVolume') + latencyOf('StartInstances');

  it.each(['attachToHelper', 'waitForAttachedToHelper', 'branchOnPlatform', 'injectKey', 'waitForInjection'])(
    "with today's main's cancel path (onCancel to the in-line restore), a cancel at %s and a slow restore leaves the helper and the lock",
    async (step) => {
      const inline = JSON.parse(JSON.stringify(RUNBOOK)) as { mainSteps: Record<string, unknown>[] };
      for (const s of inline.mainSteps) if (s.onCancel === 'step:startRestore') s.onCancel = 'step:restore';
      const { result: r, w } = await reset('running', { cancelAt: step, document: inline, restoreSeconds: SLOW_RESTORE });
      expect(r.status).toBe('Cancelled');
      expect(r.cancelPathCutShort).toBe(true);
      expect(r.steps.map((s) => s.name).slice(-2)).toEqual([step, 'restore']);
      expect(w.instance.has(HELPER)).toBe(true);
      expect(w.lock()).toBeDefined();
    },
  );

  it.each(['attachToHelper', 'waitForAttachedToHelper', 'branchOnPlatform', 'injectKey', 'waitForInjection'])(
    'with the cancel path that starts the restore runbook, the same slow restore converges (cancel at %s)',
    async (step) => {
      const { result: r, w } = await reset('running', { cancelAt: step, restoreSeconds: SLOW_RESTORE });
      expect(r.status).toBe('Cancelled');
      expect(r.cancelPathCutShort).toBeUndefined();
      expect(r.startedExecutions.map((e) => e.status)).toEqual(['Success']);
      expect(r.startedExecutions[0].modeledSeconds).toBeGreaterThan(CANCEL_PATH_SECONDS);
      converged(w, 'running');
    },
  );

  /**
   * P1-1: a cancel while a step's Lambda runs does not stop it (API_Invoke.html); it may go on
   * until its timeout (lib/functions.ts). The runner lets it run that long and applies its work
   * when it ends. The restore runbook must not restore or clean up before then.
   */
  const lambdaSteps = (RUNBOOK.mainSteps as { name: string; action?: string; inputs?: { FunctionName?: string } }[])
    // The volume swap's steps (this world swaps volumes; the online path's Lambdas are the same
    // functions, and its cancels are played on the twin: test/twin/faults.test.ts).
    .filter((s, i, all) => s.action === 'aws:invokeLambdaFunction' && s.name !== 'preflight' && i <= all.findIndex((x) => x.name === 'summarize'))
    .map((s) => [s.name, String(s.inputs?.FunctionName).replace(/^fn:/, '') as StepFolder] as const);

  it.each(lambdaSteps)('a cancel while the Lambda of %s (%s) runs to its timeout: restore and cleanup start only after it has ended', async (step, folder) => {
    const runsForSeconds = functionTimeoutSeconds(folder);
    // restore and cleanupAfterRestore run only after a failure: fail injectKey to reach them.
    const faults = step === 'restore' || step === 'cleanupAfterRestore' ? [{ step: 'injectKey', when: 'after' as const, message: 'injected' }] : [];
    const { result: r, w } = await reset('running', { cancelInFlight: { step, runsForSeconds }, faults });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => [s.name, s.status]).slice(-2)).toEqual([
      [step, 'Cancelled'],
      ['startRestore', 'Success'],
    ]);
    expect(r.inFlight).toHaveLength(1);
    const flight = r.inFlight?.[0];
    expect(flight?.endsAt).toBeCloseTo((flight?.startedAt ?? 0) + runsForSeconds);
    const child = r.startedExecutions[0];
    expect(child.status).toBe('Success');
    // Every Lambda call after the cancel, in order, with its time on the clock.
    const after = w.timeline.filter((c) => c.at >= (flight?.startedAt ?? 0));
    const landing = after.findIndex((c) => c.fn === `fn:${folder}` && c.at === flight?.landedAt);
    expect(landing).toBeGreaterThanOrEqual(0);
    const converging = after.map((c, i) => ({ ...c, i })).filter((c) => c.i !== landing && (c.fn === 'fn:restore' || c.fn === 'fn:cleanup'));
    expect(converging.length).toBeGreaterThanOrEqual(2);
    for (const c of converging) {
      // No restore or cleanup while the cancelled invocation may still run, and its work came first.
      expect(c.at).toBeGreaterThanOrEqual(flight?.endsAt ?? Infinity);
      expect(c.i).toBeGreaterThan(landing);
    }
    converged(w, 'running');
  });

  // P2-5: a cancel during the failure path hands over to the restore runbook too.
  it.each(['restore', 'cleanupAfterRestore'])('a cancel at %s (on the failure path) starts the restore runbook, which converges', async (step) => {
    const { result: r, w } = await reset('running', { faults: [{ step: 'injectKey', when: 'after', message: 'injected' }], cancelAt: step });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => [s.name, s.status]).slice(-2)).toEqual([
      [step, 'Cancelled'],
      ['startRestore', 'Success'],
    ]);
    expect(r.startedExecutions.map((e) => e.status)).toEqual(['Success']);
    converged(w, 'running');
  });

  // P2-6: startRestore's attempts fit the two minutes, and a retry does not start a second -Restore.
  it('startRestore: a retry after a call that did start the restore runbook starts no second one', async () => {
    const { result: r, w } = await reset('running', {
      cancelAt: 'injectKey',
      faults: [{ step: 'startRestore', when: 'after', message: 'timed out waiting for the answer', times: 1 } as never],
    });
    const startStep = r.steps.find((s) => s.name === 'startRestore');
    expect(startStep).toMatchObject({ status: 'Success', attempts: 2 });
    expect(r.cancelPathCutShort).toBeUndefined();
    expect(r.startedExecutions).toHaveLength(1);
    expect(r.outputs['startRestore.RestoreExecutionId']).toBe(r.startedExecutions[0].executionId);
    converged(w, 'running');
  });

  it('startRestore: every attempt at its timeout still ends inside the cancellation path', () => {
    const step = (RUNBOOK.mainSteps as { name: string; timeoutSeconds?: number; maxAttempts?: number }[]).find((s) => s.name === 'startRestore');
    // The steps before it on the cancel path take at least one step transition.
    expect((step?.timeoutSeconds ?? 3600) * (step?.maxAttempts ?? 1)).toBeLessThan(CANCEL_PATH_SECONDS - latencyOf('AutomationStepTransition'));
  });

  // P2-3: a ResetAccess execution that has not ended is not restored alongside.
  it('the restore runbook for an execution still running aborts after its wait, and restores nothing', async () => {
    const clock = new VirtualClock();
    const w = world(clock, 'running');
    const running = randomUUID();
    executions.set(running, 'InProgress');
    const r = await runAutomation({
      document: RESTORE,
      parameters: { InstanceId: TARGET, ExecutionId: running },
      executionId: randomUUID(),
      invokeLambda: w.fake.invoke,
      awsCall: w.awsCall,
      clock,
    });
    expect(r.status).toBe('TimedOut');
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([['waitForExecutionEnded', 'TimedOut']]);
    expect(w.fake.calls).toHaveLength(0);
  });

  // P2-7: ListCommandInvocations documents no order; only the inject-key document's invocations count.
  it('waitForInjection filters by the documented CommandFilter shape (botocore ssm model)', () => {
    const model = JSON.parse(gunzipSync(readFileSync(join(BOTOCORE, 'data', 'ssm', '2014-11-06', 'service-2.json.gz'))).toString()) as {
      shapes: Record<string, { members?: Record<string, { shape: string }>; required?: string[]; enum?: string[] }>;
    };
    const step = (RUNBOOK.mainSteps as { name: string; inputs?: Record<string, unknown> }[]).find((s) => s.name === 'waitForInjection');
    const filters = step?.inputs?.Filters as Record<string, string>[];
    expect(model.shapes.ListCommandInvocationsRequest.members?.Filters.shape).toBe('CommandFilterList');
    const filterShape = model.shapes.CommandFilter;
    for (const f of filters) {
      expect(Object.keys(f).sort()).toEqual([...(filterShape.required ?? [])].sort());
      expect(model.shapes.CommandFilterKey.enum).toContain(f.key);
    }
    expect(filters).toContainEqual({ key: 'DocumentName', value: tokens.injectDocumentName });
  });

  // P2-4: restore waits only about a minute for a stopping instance; the restore runbook waits for the stop first.
  it('the restore runbook lets a slow stop finish before restore runs', async () => {
    const clock = new VirtualClock();
    const w = world(clock, 'running');
    const ended = randomUUID();
    executions.set(ended, 'Cancelled');
    w.instance.set(TARGET, 'stopped');
    const SLOW_STOP = 700;
    clock.schedule('StopInstances', [TARGET], SLOW_STOP);
    const stopDone = clock.now() + SLOW_STOP;
    const r = await runAutomation({
      document: RESTORE,
      parameters: { InstanceId: TARGET, ExecutionId: ended },
      executionId: randomUUID(),
      invokeLambda: w.fake.invoke,
      awsCall: w.awsCall,
      clock,
    });
    expect(r.status).toBe('Success');
    const restoreAt = w.timeline.find((c) => c.fn === 'fn:restore')?.at as number;
    expect(restoreAt).toBeGreaterThanOrEqual(stopDone);
  });

  // P3-8: the restore runbook's description and docs/architecture.md name every field of restore.Payload.
  it('the restore runbook description and the architecture table name every field the restore Lambda returns', () => {
    const description = String((RESTORE as { description?: string }).description);
    const table = readFileSync(join(__dirname, '..', '..', 'docs', 'architecture.md'), 'utf8').split('\n').find((l) => l.startsWith('| restore |')) ?? '';
    for (const field of RESTORE_OUTPUT_FIELDS) {
      expect(description).toContain(`\`${field}\``);
      expect(table).toContain(`\`${field}\``);
    }
  });
});
