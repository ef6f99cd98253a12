/**
 * The runner on a document shaped like docs/architecture.md's runbook (same steps, actions,
 * waits, routing), with in-memory Lambdas and an in-memory AWS that, like the twin's agent,
 * schedules slow work on the clock and answers Describe* from it. It shows that the runner
 * models overlap (the helper boots while the target stops), that faults at any step route to
 * restore, and that cancel routes there too.
 */
import { latencyOf } from '../../local/latency';
import { VirtualClock } from '../../local/runner/clock';
import { AwsCall, ExecutionResult, runAutomation, timeToAccess } from '../../local/runner/runner';
import { freshId, Handler, lambdas } from './helpers';

const TARGET = 'i-0aaaaaaaaaaaaaaaa';
const HELPER = 'i-0bbbbbbbbbbbbbbbb';
const VOLUME = 'vol-0cccccccccccccccc';
const COMMAND = 'cmd-1';
const ACCESS_STEPS = ['waitForInstanceRunning', 'startInstance'];

const fn = (name: string) => ({ 'Fn::GetAtt': [`${name}Fn`, 'Arn'] });
const base = { ExecutionId: '{{ automation:EXECUTION_ID }}', InstanceId: '{{ InstanceId }}' };
const toRestore = { onFailure: 'step:restore', onCancel: 'step:restore' };

function lambda(name: string, folder: string, outputs: [string, string][] = [], extra: Record<string, unknown> = {}) {
  return {
    name,
    action: 'aws:invokeLambdaFunction',
    timeoutSeconds: 300,
    ...toRestore,
    inputs: { FunctionName: fn(folder), InputPayload: { ...base } },
    outputs: outputs.map(([Name, Type]) => ({ Name, Selector: `$.Payload.${Name}`, Type })),
    ...extra,
  };
}

function waitVolume(name: string, state: string) {
  return {
    name,
    action: 'aws:waitForAwsResourceProperty',
    timeoutSeconds: 600,
    ...toRestore,
    inputs: { Service: 'ec2', Api: 'DescribeVolumes', VolumeIds: ['{{ preflight.RootVolumeId }}'], PropertySelector: '$.Volumes[0].State', DesiredValues: [state] },
  };
}

function waitInstance(name: string, state: string) {
  return {
    name,
    action: 'aws:waitForAwsResourceProperty',
    timeoutSeconds: 600,
    ...toRestore,
    inputs: { Service: 'ec2', Api: 'DescribeInstances', InstanceIds: ['{{ InstanceId }}'], PropertySelector: '$.Reservations[0].Instances[0].State.Name', DesiredValues: [state] },
  };
}

const RUNBOOK = {
  schemaVersion: '0.3',
  description: '# Reset access (test shape)',
  assumeRole: '{{ AutomationAssumeRole }}',
  parameters: {
    InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8,17}$' },
    AutomationAssumeRole: { type: 'String', default: { 'Fn::GetAtt': ['AutomationRole', 'Arn'] }, allowedPattern: '^arn:aws:iam::\\d{12}:role/.+$' },
    KeyType: { type: 'String', default: 'rsa', allowedValues: ['rsa', 'ed25519'] },
  },
  mainSteps: [
    { ...lambda('preflight', 'preflight', [['RootVolumeId', 'String'], ['OriginalState', 'String']]), onFailure: 'Abort', onCancel: 'Abort', inputs: { FunctionName: fn('preflight'), InputPayload: { ...base, KeyType: '{{ KeyType }}' } } },
    lambda('stopInstance', 'stop-instance', [['PreviousState', 'String']]),
    lambda('launchHelper', 'launch-helper', [['HelperInstanceId', 'String'], ['NetworkCreated', 'Boolean']]),
    waitInstance('waitForInstanceStopped', 'stopped'),
    lambda('backupAndDetachRoot', 'backup-and-detach', [['BackupId', 'String']]),
    waitVolume('waitForRootDetached', 'available'),
    {
      name: 'waitForHelperOnline',
      action: 'aws:waitForAwsResourceProperty',
      timeoutSeconds: 600,
      ...toRestore,
      inputs: {
        Service: 'ssm',
        Api: 'DescribeInstanceInformation',
        Filters: [{ Key: 'InstanceIds', Values: ['{{ launchHelper.HelperInstanceId }}'] }],
        PropertySelector: '$.InstanceInformationList[0].PingStatus',
        DesiredValues: ['Online'],
      },
    },
    lambda('attachToHelper', 'attach-to-helper', [['HelperDeviceName', 'String']]),
    waitVolume('waitForAttachedToHelper', 'in-use'),
    lambda('injectKey', 'inject-key', [['CommandId', 'String'], ['KeyParameterName', 'String']]),
    {
      name: 'waitForInjection',
      action: 'aws:waitForAwsResourceProperty',
      timeoutSeconds: 600,
      maxAttempts: 3,
      ...toRestore,
      inputs: {
        Service: 'ssm',
        Api: 'GetCommandInvocation',
        CommandId: '{{ injectKey.CommandId }}',
        InstanceId: '{{ launchHelper.HelperInstanceId }}',
        PropertySelector: '$.Status',
        DesiredValues: ['Success', 'Failed', 'Cancelled', 'TimedOut'],
      },
    },
    lambda('releaseFromHelper', 'release-from-helper', [['UsersChanged', 'String']]),
    waitVolume('waitForRootReleased', 'available'),
    lambda('reattachRoot', 'reattach-root', [['DeviceName', 'String']]),
    waitVolume('waitForRootReattached', 'in-use'),
    lambda('startInstance', 'start-instance', [['Started', 'Boolean']]),
    lambda('cleanup', 'cleanup', [['Removed', 'String']], { maxAttempts: 3 }),
    {
      name: 'branchOnOriginalState',
      action: 'aws:branch',
      ...toRestore,
      inputs: { Choices: [{ NextStep: 'waitForInstanceRunning', Variable: '{{ preflight.OriginalState }}', StringEquals: 'running' }], Default: 'summarize' },
    },
    { ...waitInstance('waitForInstanceRunning', 'running'), nextStep: 'summarize' },
    lambda('summarize', 'summarize', [['KeyParameterName', 'String'], ['BackupId', 'String']], { isEnd: true }),
    { ...lambda('restore', 'restore', [['Restored', 'Boolean']]), onFailure: 'step:cleanupAfterRestore', onCancel: 'step:cleanupAfterRestore', nextStep: 'cleanupAfterRestore' },
    { ...lambda('cleanupAfterRestore', 'cleanup', [['Removed', 'String']], { maxAttempts: 3 }), onFailure: 'Abort', onCancel: 'Abort', isEnd: true },
  ],
  outputs: ['summarize.KeyParameterName', 'summarize.BackupId'],
};

/** A tiny AWS in the style of the twin's agent: slow work is scheduled on the clock; Describe* answers from it. */
function world(clock: VirtualClock, originalState: 'running' | 'stopped') {
  const instance = new Map<string, string>([[TARGET, originalState]]);
  let volume = { state: 'in-use', attachedTo: TARGET };
  let command: 'none' | 'sent' = 'none';
  const transitional = (id: string, now: string, settled: string) => (clock.pending(id).length > 0 ? now : settled);

  const awsCall: AwsCall = async (service, api, params) => {
    if (service === 'ec2' && api === 'DescribeInstances') {
      const id = (params.InstanceIds as string[])[0];
      const s = instance.get(id) as string;
      const shown = s === 'stopped' ? transitional(id, 'stopping', 'stopped') : s === 'running' ? transitional(id, 'pending', 'running') : s;
      return { Reservations: [{ Instances: [{ InstanceId: id, State: { Name: shown } }] }] };
    }
    if (service === 'ec2' && api === 'DescribeVolumes') {
      const shown = volume.state === 'available' ? transitional(VOLUME, 'detaching', 'available') : transitional(VOLUME, 'attaching', 'in-use');
      return { Volumes: [{ VolumeId: VOLUME, State: shown }] };
    }
    if (service === 'ssm' && api === 'DescribeInstanceInformation') {
      const id = ((params.Filters as { Values: string[] }[])[0].Values)[0];
      if (!instance.has(id) || clock.pending(id).length > 0) return { InstanceInformationList: [] };
      return { InstanceInformationList: [{ InstanceId: id, PingStatus: 'Online' }] };
    }
    if (service === 'ssm' && api === 'GetCommandInvocation') {
      if (command === 'none') throw Object.assign(new Error('no such invocation'), { name: 'InvocationDoesNotExist' });
      return { Status: clock.pending(COMMAND).length > 0 ? 'InProgress' : 'Success' };
    }
    throw new Error(`world has no ${service} ${api}`);
  };

  const handlers: Record<string, Handler> = {
    preflight: () => ({ RootVolumeId: VOLUME, OriginalState: originalState }),
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
      volume = { state: 'available', attachedTo: '' };
      clock.schedule('DetachVolume', [VOLUME, TARGET]);
      return { BackupId: 'snap-1' };
    },
    'attach-to-helper': () => {
      volume = { state: 'in-use', attachedTo: HELPER };
      clock.schedule('AttachVolume', [VOLUME, HELPER]);
      return { HelperDeviceName: '/dev/sdf' };
    },
    'inject-key': () => {
      command = 'sent';
      clock.schedule('RunCommand', [COMMAND, HELPER]);
      return { CommandId: COMMAND, KeyParameterName: `/ec2rl/openssh/${TARGET}/key` };
    },
    'release-from-helper': () => {
      volume = { state: 'available', attachedTo: '' };
      clock.schedule('DetachVolume', [VOLUME, HELPER]);
      return { UsersChanged: 'ec2-user' };
    },
    'reattach-root': () => {
      volume = { state: 'in-use', attachedTo: TARGET };
      clock.schedule('AttachVolume', [VOLUME, TARGET]);
      return { DeviceName: '/dev/xvda' };
    },
    'start-instance': () => {
      if (originalState === 'running') {
        instance.set(TARGET, 'running');
        clock.schedule('StartInstances', [TARGET]);
      }
      return { Started: originalState === 'running' };
    },
    cleanup: () => {
      instance.delete(HELPER);
      return { Removed: HELPER };
    },
    summarize: () => ({ KeyParameterName: `/ec2rl/openssh/${TARGET}/key`, BackupId: 'snap-1' }),
    restore: () => {
      // converge: the volume back on the target, the instance in its original state
      volume = { state: 'in-use', attachedTo: TARGET };
      instance.set(TARGET, originalState);
      return { Restored: true };
    },
  };
  const fake = lambdas(Object.fromEntries(Object.entries(handlers).map(([folder, h]) => [JSON.stringify(fn(folder)), h])));
  return { awsCall, fake, instance, volume: () => volume };
}

async function reset(originalState: 'running' | 'stopped', extra: { faults?: { step: string; when: 'before' | 'after'; message: string }[]; cancelAt?: string } = {}) {
  const clock = new VirtualClock();
  const w = world(clock, originalState);
  const result = await runAutomation({
    document: RUNBOOK,
    parameters: { InstanceId: TARGET },
    executionId: freshId('shape'),
    invokeLambda: w.fake.invoke,
    awsCall: w.awsCall,
    clock,
    resolveIntrinsic: () => 'arn:aws:iam::123456789012:role/automation',
    ...extra,
  });
  return { result, w };
}

const end = (r: ExecutionResult, name: string) => r.steps.find((s) => s.name === name)?.endedAt as number;
const start = (r: ExecutionResult, name: string) => r.steps.find((s) => s.name === name)?.startedAt as number;

describe('a runbook shaped like the architecture', () => {
  it('resets a running instance; the helper boots while the target stops', async () => {
    const { result: r } = await reset('running');

    expect(r.status).toBe('Success');
    expect(r.assumeRole).toBe('arn:aws:iam::123456789012:role/automation');
    expect(r.steps.map((s) => s.name)).toEqual([
      'preflight', 'stopInstance', 'launchHelper', 'waitForInstanceStopped', 'backupAndDetachRoot', 'waitForRootDetached',
      'waitForHelperOnline', 'attachToHelper', 'waitForAttachedToHelper', 'injectKey', 'waitForInjection', 'releaseFromHelper',
      'waitForRootReleased', 'reattachRoot', 'waitForRootReattached', 'startInstance', 'cleanup', 'branchOnOriginalState',
      'waitForInstanceRunning', 'summarize',
    ]);
    expect(r.outputs).toEqual({ 'summarize.KeyParameterName': `/ec2rl/openssh/${TARGET}/key`, 'summarize.BackupId': 'snap-1' });

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
    const { result: r } = await reset('stopped');
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).not.toContain('waitForInstanceRunning');
    expect(timeToAccess(r, ACCESS_STEPS)).toBe(end(r, 'startInstance'));
  });

  const afterPreflight = RUNBOOK.mainSteps.map((s) => s.name).slice(1, RUNBOOK.mainSteps.findIndex((s) => s.name === 'summarize') + 1);
  it.each(afterPreflight.flatMap((step) => [[step, 'before'], [step, 'after']] as const))('a fault %s (%s) routes to restore and cleanupAfterRestore; the execution is Failed', async (step, when) => {
    const { result: r, w } = await reset('running', { faults: [{ step, when, message: `injected at ${step}` }] });
    expect(r.status).toBe('Failed');
    const names = r.steps.map((s) => s.name);
    expect(names.slice(-2)).toEqual(['restore', 'cleanupAfterRestore']);
    expect(r.steps.find((s) => s.name === step)).toMatchObject({ status: 'Failed', failureMessage: `injected at ${step}` });
    expect(r.failureMessage).toBe(`Step ${step} failed: injected at ${step}`);
    expect(w.volume()).toEqual({ state: 'in-use', attachedTo: TARGET });
    expect(r.outputs).toEqual({});
  });

  it('a fault in preflight aborts at once (nothing to restore)', async () => {
    const { result: r, w } = await reset('running', { faults: [{ step: 'preflight', when: 'before', message: 'refused: Spot' }] });
    expect(r.status).toBe('Failed');
    expect(r.steps.map((s) => s.name)).toEqual(['preflight']);
    expect(w.fake.calls).toHaveLength(0);
  });

  it('a cancel during the run routes to restore; the execution is Cancelled', async () => {
    const { result: r } = await reset('running', { cancelAt: 'attachToHelper' });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => s.name).slice(-3)).toEqual(['attachToHelper', 'restore', 'cleanupAfterRestore']);
    expect(r.steps.find((s) => s.name === 'attachToHelper')?.status).toBe('Cancelled');
  });
});
