import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { latencyOf } from '../../local/latency';
import { parseDocument } from '../../local/runner/document';
import { VirtualClock } from '../../local/runner/clock';
import {
  CANCEL_PATH_SECONDS,
  executions,
  InvalidAutomationExecutionParameters,
  runAutomation,
  timeToAccess,
  UnsupportedDocument,
} from '../../local/runner/runner';
import { doc, fakeEc2, freshId, lambdaStep, lambdas, run } from './helpers';

const STEP = latencyOf('AutomationStepTransition');
const COLD = latencyOf('LambdaColdInvoke');
const WARM = latencyOf('LambdaWarmInvoke');
const API = latencyOf('ApiCall');
const POLL = latencyOf('WaitPollInterval');
const INSTANCE = 'i-0123456789abcdef0';

const ok = (payload: Record<string, unknown>) => () => payload;
const boom = (message: string) => () => {
  throw new Error(message);
};

describe('routing: nextStep, isEnd, document order', () => {
  it('runs steps in order, passes outputs by selector, resolves variables and the document outputs', async () => {
    // Prepare
    const fake = lambdas({
      second: (e) => ({ Echo: `${e.Volume}/${e.Instance}/${e.ExecutionId}` }),
    });
    const api = async () => ({ VolumeId: 'vol-1', Count: 3, Flag: true });
    const d = doc(
      [
        {
          name: 'first',
          action: 'aws:executeAwsApi',
          inputs: { Service: 'ec2', Api: 'DescribeThing' },
          outputs: [
            { Name: 'VolumeId', Selector: '$.VolumeId', Type: 'String' },
            { Name: 'Count', Selector: '$.Count', Type: 'Integer' },
            { Name: 'Flag', Selector: '$.Flag', Type: 'Boolean' },
          ],
        },
        lambdaStep('second', 'second', {}, {
          Volume: '{{ first.VolumeId }}',
          Instance: '{{ InstanceId }}',
          Count: '{{ first.Count }}',
          Flag: '{{ first.Flag }}',
          Region: '{{ global:REGION }}',
          Account: 'acct-{{ global:ACCOUNT_ID }}',
        }),
      ],
      {
        parameters: { InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8,17}$' } },
        outputs: ['second.Payload', 'first.VolumeId'],
      },
    );
    const id = freshId();

    // Act
    const r = await runAutomation({ document: d, parameters: { InstanceId: INSTANCE }, executionId: id, invokeLambda: fake.invoke, awsCall: api, region: 'eu-west-1', accountId: '111122223333' });

    // Assess
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['first', 'Success', 1],
      ['second', 'Success', 1],
    ]);
    expect(fake.calls[0].event).toEqual({
      ExecutionId: id,
      Volume: 'vol-1',
      Instance: INSTANCE,
      Count: 3, // a whole-string reference keeps its type
      Flag: true,
      Region: 'eu-west-1',
      Account: 'acct-111122223333',
    });
    // The Lambda step's documented Payload output: the JSON text of what the function returned.
    expect(r.outputs).toEqual({ 'second.Payload': JSON.stringify({ Echo: `vol-1/${INSTANCE}/${id}` }), 'first.VolumeId': 'vol-1' });
    expect(r.steps[1].outputs.StatusCode).toBe(200);
    expect(r.modeledSeconds).toBeCloseTo(2 * STEP + API + COLD);
    expect(r.steps[1].endedAt).toBeCloseTo(r.modeledSeconds);
    expect(executions.get(id)).toBe('Success');
  });

  it('follows nextStep, stops at isEnd, and prices a second invocation of one function as warm', async () => {
    const fake = lambdas({ a: ok({}), b: ok({}), c: ok({}) });
    const d = doc([
      lambdaStep('one', 'a', { nextStep: 'three' }),
      lambdaStep('two', 'b'),
      lambdaStep('three', 'c', { nextStep: 'four' }),
      lambdaStep('four', 'a', { isEnd: true }),
      lambdaStep('five', 'b'),
    ]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).toEqual(['one', 'three', 'four']);
    expect(r.modeledSeconds).toBeCloseTo(3 * STEP + 2 * COLD + WARM);
  });
});

describe('failures: onFailure, isCritical, maxAttempts', () => {
  const failing = (extra: Record<string, unknown>) =>
    doc([lambdaStep('ok1', 'ok'), lambdaStep('bad', 'bad', extra), lambdaStep('after', 'ok'), lambdaStep('restore', 'restore', { isEnd: true })]);
  const fleet = () => lambdas({ ok: ok({}), bad: boom('volume vol-9 is attached elsewhere'), restore: ok({ Restored: true }) });

  it.each([
    // onFailure, isCritical, expected status, steps run
    [{}, 'Failed', ['ok1', 'bad']],
    [{ onFailure: 'Abort' }, 'Failed', ['ok1', 'bad']],
    [{ onFailure: 'step:restore' }, 'Failed', ['ok1', 'bad', 'restore']],
    [{ onFailure: 'step:restore', isCritical: false }, 'Success', ['ok1', 'bad', 'restore']],
    [{ onFailure: 'Continue' }, 'Success', ['ok1', 'bad', 'after', 'restore']],
    [{ onFailure: 'Continue', isCritical: true }, 'Failed', ['ok1', 'bad', 'after', 'restore']],
  ])('%j → %s via %j', async (extra, status, names) => {
    const fake = fleet();
    const r = await run({ document: failing(extra), executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe(status);
    expect(r.steps.map((s) => s.name)).toEqual(names);
    const bad = r.steps.find((s) => s.name === 'bad');
    expect(bad?.status).toBe('Failed');
    expect(bad?.failureMessage).toBe('volume vol-9 is attached elsewhere');
    expect(r.failureMessage).toContain('Step bad failed: volume vol-9 is attached elsewhere');
  });

  it('a failed isEnd step goes to its onFailure step:X; with Continue it ends', async () => {
    const fake = lambdas({ bad: boom('summarize broke'), restore: ok({}) });
    const d = (onFailure: string) => doc([lambdaStep('summarize', 'bad', { isEnd: true, onFailure }), lambdaStep('restore', 'restore')]);
    const routed = await run({ document: d('step:restore'), executionId: freshId(), invokeLambda: fake.invoke });
    expect(routed.steps.map((s) => s.name)).toEqual(['summarize', 'restore']);
    expect(routed.status).toBe('Failed');
    const continued = await run({ document: d('Continue'), executionId: freshId(), invokeLambda: fake.invoke });
    expect(continued.steps.map((s) => s.name)).toEqual(['summarize']);
    expect(continued.status).toBe('Success');
  });

  it('a failure on the restore path is reported too, and the execution stays Failed', async () => {
    const fake = lambdas({ bad: boom('first'), restore: boom('second') });
    const d = doc([lambdaStep('bad', 'bad', { onFailure: 'step:restore' }), lambdaStep('restore', 'restore')]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Failed');
    expect(r.failureMessage).toBe('Step bad failed: first Step restore failed: second');
  });

  it('retries up to maxAttempts and succeeds on a later attempt', async () => {
    let n = 0;
    const fake = lambdas({
      flaky: () => {
        n += 1;
        if (n < 3) throw new Error(`try ${n}`);
        return { Tries: n };
      },
    });
    const d = doc([lambdaStep('flaky', 'flaky', { maxAttempts: 3 })]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Success');
    expect(r.steps[0].attempts).toBe(3);
    expect(r.steps[0].outputs.Payload).toBe('{"Tries":3}');
    expect(r.modeledSeconds).toBeCloseTo(STEP + COLD + 2 * WARM);
  });

  it('gives up after maxAttempts with the last message', async () => {
    let n = 0;
    const fake = lambdas({
      never: () => {
        n += 1;
        throw new Error(`try ${n}`);
      },
    });
    const r = await run({ document: doc([lambdaStep('never', 'never', { maxAttempts: 2 })]), executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Failed');
    expect(r.steps[0]).toMatchObject({ status: 'Failed', attempts: 2, failureMessage: 'try 2' });
    expect(fake.calls).toHaveLength(2);
  });

  it('keeps the error name of a thrown named error in the message', async () => {
    class LockHeld extends Error {
      constructor() {
        super('instance is locked by exec-1');
        this.name = 'LockHeld';
      }
    }
    const fake = lambdas({
      x: () => {
        throw new LockHeld();
      },
    });
    const r = await run({ document: doc([lambdaStep('x', 'x')]), executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.steps[0].failureMessage).toBe('LockHeld: instance is locked by exec-1');
  });

  it('fails a step whose selected output does not have the declared Type', async () => {
    const d = doc([{ name: 'x', action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'X' }, outputs: [{ Name: 'Started', Selector: '$.Started', Type: 'Boolean' }] }]);
    const r = await run({ document: d, executionId: freshId(), awsCall: async () => ({ Started: 'yes' }) });
    expect(r.status).toBe('Failed');
    expect(r.steps[0].failureMessage).toMatch(/Started .* declared Boolean but selected string/);
  });

  it('a selector that matches nothing yields no output, and referencing it fails the later step', async () => {
    const fake = lambdas({ y: ok({}) });
    const d = doc([
      { name: 'x', action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'X' }, outputs: [{ Name: 'Missing', Selector: '$.Missing', Type: 'String' }] },
      lambdaStep('y', 'y', {}, { M: '{{ x.Missing }}' }),
    ]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, awsCall: async () => ({}) });
    expect(r.steps[0]).toMatchObject({ status: 'Success' });
    expect(r.steps[0].outputs).not.toHaveProperty('Missing');
    expect(r.steps[1]).toMatchObject({ status: 'Failed', failureMessage: expect.stringContaining('{{ x.Missing }} did not resolve') });
    expect(fake.calls).toHaveLength(0);
  });
});

describe('aws:waitForAwsResourceProperty on the virtual clock', () => {
  const stopAndWait = (timeoutSeconds?: number, extra: Record<string, unknown> = {}) =>
    doc([
      { name: 'stop', action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'StopInstances', InstanceIds: ['{{ InstanceId }}'] } },
      {
        name: 'waitStopped',
        action: 'aws:waitForAwsResourceProperty',
        inputs: {
          Service: 'ec2',
          Api: 'DescribeInstances',
          InstanceIds: ['{{ InstanceId }}'],
          PropertySelector: '$.Reservations[0].Instances[0].State.Name',
          DesiredValues: ['stopped'],
        },
        ...(timeoutSeconds ? { timeoutSeconds } : {}),
        ...extra,
      },
      lambdaStep('restore', 'restore'),
    ], { parameters: { InstanceId: { type: 'String' } } });

  it('settles the clock to the pending stop and succeeds on the first poll', async () => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock, 60);
    const fake = lambdas({ restore: ok({}) });
    const r = await runAutomation({ document: stopAndWait(), parameters: { InstanceId: INSTANCE }, executionId: freshId(), clock, awsCall: ec2.awsCall, invokeLambda: fake.invoke });
    expect(r.status).toBe('Success');
    const wait = r.steps[1];
    // the stop was scheduled at STEP + API; the wait settles to its completion, then one DescribeInstances
    expect(wait.endedAt).toBeCloseTo(STEP + API + 60 + API);
    expect(ec2.calls.map((c) => c.api)).toEqual(['StopInstances', 'DescribeInstances']);
    expect(ec2.state.get(INSTANCE)).toBe('stopped');
  });

  it('times out in virtual time when the modeled completion is past timeoutSeconds, then routes onFailure', async () => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock, 600);
    const fake = lambdas({ restore: ok({}) });
    const r = await runAutomation({
      document: stopAndWait(120, { onFailure: 'step:restore' }),
      parameters: { InstanceId: INSTANCE },
      executionId: freshId(),
      clock,
      awsCall: ec2.awsCall,
      invokeLambda: fake.invoke,
    });
    const wait = r.steps[1];
    expect(wait.status).toBe('TimedOut');
    expect(wait.endedAt - wait.startedAt).toBeCloseTo(120);
    expect(wait.failureMessage).toMatch(/timed out after 120s .*StopInstances modeled to complete/);
    expect(r.steps.map((s) => s.name)).toEqual(['stop', 'waitStopped', 'restore']);
    expect(r.status).toBe('TimedOut');
    // No DescribeInstances was made: the wait knew from the clock it could not finish in time.
    expect(ec2.calls.map((c) => c.api)).toEqual(['StopInstances']);
  });

  it('a timed-out wait with onFailure Abort ends the execution TimedOut', async () => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock, 600);
    const r = await runAutomation({ document: stopAndWait(120), parameters: { InstanceId: INSTANCE }, executionId: freshId(), clock, awsCall: ec2.awsCall, invokeLambda: lambdas({}).invoke });
    expect(r.status).toBe('TimedOut');
    expect(r.steps.map((s) => s.name)).toEqual(['stop', 'waitStopped']);
  });

  it('polls every WaitPollInterval until the property has a desired value', async () => {
    let calls = 0;
    const awsCall = async () => {
      calls += 1;
      return { Volumes: [{ State: calls < 4 ? 'in-use' : 'available' }] };
    };
    const d = doc([
      {
        name: 'w',
        action: 'aws:waitForAwsResourceProperty',
        inputs: { Service: 'ec2', Api: 'DescribeVolumes', VolumeIds: ['vol-1'], PropertySelector: '$.Volumes[0].State', DesiredValues: ['available', 'deleted'] },
      },
    ]);
    const r = await run({ document: d, executionId: freshId(), awsCall });
    expect(r.status).toBe('Success');
    expect(calls).toBe(4);
    expect(r.modeledSeconds).toBeCloseTo(STEP + 4 * API + 3 * POLL);
  });

  it('an API error other than throttling fails the attempt at once; maxAttempts retries it', async () => {
    // AWS documents no behaviour for an API error in this action (local/README.md, assumptions):
    // the twin never hides one as "not yet".
    const clock = new VirtualClock();
    let calls = 0;
    const awsCall = async () => {
      calls += 1;
      throw Object.assign(new Error('The command id was not found'), { name: 'InvocationDoesNotExist' });
    };
    const d = doc([
      {
        name: 'w',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds: 30,
        maxAttempts: 3,
        inputs: { Service: 'ssm', Api: 'GetCommandInvocation', CommandId: 'c-1', InstanceId: 'i-1', PropertySelector: '$.Status', DesiredValues: ['Success'] },
      },
    ]);
    const r = await run({ document: d, executionId: freshId(), awsCall, clock });
    expect(r.status).toBe('Failed');
    expect(r.steps[0].attempts).toBe(3);
    expect(calls).toBe(3);
    expect(r.steps[0].failureMessage).toBe('ssm GetCommandInvocation: InvocationDoesNotExist: The command id was not found');
    expect(r.modeledSeconds).toBeCloseTo(STEP + 3 * API);
  });

  it('keeps polling through throttling (retried by Automation) and reports it when it times out', async () => {
    const clock = new VirtualClock();
    let calls = 0;
    const awsCall = async () => {
      calls += 1;
      throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    };
    const d = doc([
      {
        name: 'w',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds: 30,
        maxAttempts: 2,
        inputs: { Service: 'ssm', Api: 'GetCommandInvocation', CommandId: 'c-1', InstanceId: 'i-1', PropertySelector: '$.Status', DesiredValues: ['Success'] },
      },
    ]);
    const r = await run({ document: d, executionId: freshId(), awsCall, clock });
    expect(r.status).toBe('TimedOut');
    expect(r.steps[0].attempts).toBe(2);
    expect(r.steps[0].failureMessage).toContain('last call throttled: ThrottlingException: Rate exceeded');
    // two attempts of 30 s each, polling about every POLL seconds
    expect(r.modeledSeconds).toBeCloseTo(STEP + 60);
    expect(calls).toBeGreaterThanOrEqual(2 * Math.floor(30 / (POLL + API)));
    expect(calls).toBeLessThanOrEqual(2 * Math.ceil(30 / POLL + 1));
  });

  it('reports a selector that does not match the response', async () => {
    const d = doc([
      { name: 'w', action: 'aws:waitForAwsResourceProperty', timeoutSeconds: 10, inputs: { Service: 'ec2', Api: 'DescribeVolumes', PropertySelector: '$.Volumes[0].State', DesiredValues: ['available'] } },
    ]);
    const r = await run({ document: d, executionId: freshId(), awsCall: async () => ({ Volumes: [] }) });
    expect(r.steps[0].failureMessage).toContain('$.Volumes[0].State not found in the response');
  });
});

describe('aws:executeAwsApi', () => {
  it('passes the API parameters as written and selects typed outputs', async () => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock);
    const d = doc(
      [
        {
          name: 'describe',
          action: 'aws:executeAwsApi',
          inputs: { Service: 'ec2', Api: 'DescribeInstances', InstanceIds: ['{{ Ids }}'] },
          outputs: [
            { Name: 'State', Selector: '$.Reservations[0].Instances[0].State.Name', Type: 'String' },
            { Name: 'Cores', Selector: "$.Reservations[0].Instances[0]['CpuOptions'].CoreCount", Type: 'Integer' },
            { Name: 'Tags', Selector: '$.Reservations[0].Instances[0].Tags', Type: 'MapList' },
            { Name: 'Instance', Selector: '$.Reservations[0].Instances[0]', Type: 'StringMap' },
          ],
        },
      ],
      { parameters: { Ids: { type: 'String' } }, outputs: ['describe.State', 'describe.Cores'] },
    );
    const r = await runAutomation({ document: d, parameters: { Ids: INSTANCE }, executionId: freshId(), clock, awsCall: ec2.awsCall, invokeLambda: lambdas({}).invoke });
    expect(ec2.calls[0].params).toEqual({ InstanceIds: [INSTANCE] });
    expect(r.outputs).toEqual({ 'describe.State': 'running', 'describe.Cores': 2 });
    expect(r.steps[0].outputs.Tags).toEqual([{ Key: 'a', Value: 'b' }]);
  });

  it('fails the step with the API error', async () => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock);
    const d = doc([{ name: 'd', action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'DescribeInstances', InstanceIds: ['i-nope'] } }]);
    const r = await run({ document: d, executionId: freshId(), clock, awsCall: ec2.awsCall });
    expect(r.status).toBe('Failed');
    expect(r.steps[0].failureMessage).toBe("ec2 DescribeInstances: InvalidInstanceID.NotFound: The instance ID 'i-nope' does not exist");
  });
});

describe('aws:branch', () => {
  const branchDoc = (choices: unknown[], defaultStep?: string) =>
    doc(
      [
        {
          name: 'pre',
          action: 'aws:executeAwsApi',
          inputs: { Service: 'ec2', Api: 'Pre' },
          outputs: [
            { Name: 'State', Selector: '$.State', Type: 'String' },
            { Name: 'Flag', Selector: '$.Flag', Type: 'Boolean' },
            { Name: 'N', Selector: '$.N', Type: 'Integer' },
          ],
        },
        { name: 'br', action: 'aws:branch', inputs: { Choices: choices, ...(defaultStep ? { Default: defaultStep } : {}) } },
        lambdaStep('left', 'x', { isEnd: true }),
        lambdaStep('right', 'x', { isEnd: true }),
      ],
      { parameters: { Mode: { type: 'String', default: 'fast' }, Yes: { type: 'Boolean', default: true } } },
    );
  const pre = lambdas({ x: ok({}) });
  const preApi = async () => ({ State: 'running', Flag: false, N: 7 });

  it.each([
    ['StringEquals on a step output', [{ NextStep: 'right', Variable: '{{ pre.State }}', StringEquals: 'running' }], undefined, 'right'],
    ['StringEquals that does not match falls to Default', [{ NextStep: 'right', Variable: '{{ pre.State }}', StringEquals: 'stopped' }], 'left', 'left'],
    ['BooleanEquals on a step output', [{ NextStep: 'right', Variable: '{{ pre.Flag }}', BooleanEquals: false }], 'left', 'right'],
    ['BooleanEquals on a parameter', [{ NextStep: 'right', Variable: '{{ Yes }}', BooleanEquals: true }], 'left', 'right'],
    ['NumericEquals', [{ NextStep: 'right', Variable: '{{ pre.N }}', NumericEquals: 7 }], 'left', 'right'],
    ['Not', [{ NextStep: 'right', Not: { Variable: '{{ Mode }}', StringEquals: 'fast' } }], 'left', 'left'],
    [
      'And',
      [{ NextStep: 'right', And: [{ Variable: '{{ Mode }}', StringEquals: 'fast' }, { Variable: '{{ pre.N }}', NumericEquals: 7 }] }],
      'left',
      'right',
    ],
    [
      'Or',
      [{ NextStep: 'right', Or: [{ Variable: '{{ Mode }}', StringEquals: 'slow' }, { Variable: '{{ pre.Flag }}', BooleanEquals: true }] }],
      'left',
      'left',
    ],
    ['EqualsIgnoreCase', [{ NextStep: 'right', Variable: '{{ pre.State }}', EqualsIgnoreCase: 'RUNNING' }], 'left', 'right'],
    ['StartsWith', [{ NextStep: 'right', Variable: '{{ pre.State }}', StartsWith: 'run' }], 'left', 'right'],
    ['EndsWith that does not match', [{ NextStep: 'right', Variable: '{{ pre.State }}', EndsWith: 'stop' }], 'left', 'left'],
    ['Contains', [{ NextStep: 'right', Variable: '{{ pre.State }}', Contains: 'unn' }], 'left', 'right'],
    ['NumericGreater', [{ NextStep: 'right', Variable: '{{ pre.N }}', NumericGreater: 6 }], 'left', 'right'],
    ['NumericLesser', [{ NextStep: 'right', Variable: '{{ pre.N }}', NumericLesser: 7 }], 'left', 'left'],
    ['NumericGreaterOrEquals', [{ NextStep: 'right', Variable: '{{ pre.N }}', NumericGreaterOrEquals: 7 }], 'left', 'right'],
    ['NumericLesserOrEquals', [{ NextStep: 'right', Variable: '{{ pre.N }}', NumericLesserOrEquals: 6 }], 'left', 'left'],
    [
      'the first matching choice wins',
      [
        { NextStep: 'left', Variable: '{{ pre.State }}', StringEquals: 'running' },
        { NextStep: 'right', Variable: '{{ pre.State }}', StringEquals: 'running' },
      ],
      undefined,
      'left',
    ],
  ])('%s', async (_title, choices, defaultStep, expected) => {
    const r = await run({ document: branchDoc(choices, defaultStep), executionId: freshId(), invokeLambda: pre.invoke, awsCall: preApi });
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).toEqual(['pre', 'br', expected]);
  });

  it('goes on to the next step in the document when no choice matches and there is no Default', async () => {
    const r = await run({ document: branchDoc([{ NextStep: 'right', Variable: '{{ pre.State }}', StringEquals: 'stopped' }]), executionId: freshId(), invokeLambda: pre.invoke, awsCall: preApi });
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).toEqual(['pre', 'br', 'left']);
  });

  it('a branch with isEnd and no true choice ends the execution', async () => {
    const d = doc([
      { name: 'br', action: 'aws:branch', isEnd: true, inputs: { Choices: [{ NextStep: 'x', Variable: '{{ Mode }}', StringEquals: 'slow' }] } },
      lambdaStep('x', 'x'),
    ], { parameters: { Mode: { type: 'String', default: 'fast' } } });
    const r = await run({ document: d, executionId: freshId(), invokeLambda: pre.invoke, awsCall: preApi });
    expect(r.status).toBe('Success');
    expect(r.steps.map((s) => s.name)).toEqual(['br']);
  });

  it('fails the step when a numeric comparison meets a value that is not a number', async () => {
    const r = await run({ document: branchDoc([{ NextStep: 'right', Variable: '{{ pre.State }}', NumericGreater: 1 }], 'left'), executionId: freshId(), invokeLambda: pre.invoke, awsCall: preApi });
    expect(r.status).toBe('Failed');
    expect(r.steps[1].failureMessage).toBe('NumericGreater: {{ pre.State }} is not a number');
  });
});

describe('aws:sleep and timeoutSeconds', () => {
  it('sleeps in virtual time', async () => {
    const r = await run({ document: doc([{ name: 's', action: 'aws:sleep', inputs: { Duration: 'PT1M30S' } }]), executionId: freshId() });
    expect(r.status).toBe('Success');
    expect(r.modeledSeconds).toBeCloseTo(STEP + 90);
  });

  it('a sleep longer than timeoutSeconds times out at the timeout', async () => {
    const r = await run({ document: doc([{ name: 's', action: 'aws:sleep', timeoutSeconds: 10, inputs: { Duration: 'PT30S' } }]), executionId: freshId() });
    expect(r.status).toBe('TimedOut');
    expect(r.modeledSeconds).toBeCloseTo(STEP + 10);
  });

  it('a Lambda step is capped at 300 s, the documented maximum', async () => {
    const clock = new VirtualClock();
    const fake = lambdas({
      long: () => {
        clock.advanceBy(400); // e.g. the handler waits on slow work through the agent
        return {};
      },
    });
    const r = await run({ document: doc([lambdaStep('long', 'long', { timeoutSeconds: 900 })]), executionId: freshId(), invokeLambda: fake.invoke, clock });
    expect(r.steps[0].status).toBe('TimedOut');
    expect(r.steps[0].failureMessage).toMatch(/over timeoutSeconds 300/);
  });

  it('a Lambda step whose modeled invocation exceeds timeoutSeconds times out (its effects done)', async () => {
    const fake = lambdas({ slow: ok({}) });
    const r = await run({ document: doc([lambdaStep('slow', 'slow', { timeoutSeconds: COLD / 2 })]), executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.steps[0].status).toBe('TimedOut');
    expect(fake.calls).toHaveLength(1);
    expect(r.status).toBe('TimedOut');
  });
});

describe('cancel', () => {
  const cancelDoc = (onCancel?: string) =>
    doc([lambdaStep('a', 'x'), lambdaStep('b', 'x', onCancel ? { onCancel } : {}), lambdaStep('c', 'x', { isEnd: true }), lambdaStep('restore', 'restore')]);

  it('routes to onCancel step:X when the named step starts; the execution is Cancelled', async () => {
    const fake = lambdas({ x: ok({}), restore: ok({}) });
    const r = await run({ document: cancelDoc('step:restore'), executionId: freshId(), invokeLambda: fake.invoke, cancelAt: 'b' });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'Success'],
      ['b', 'Cancelled'],
      ['restore', 'Success'],
    ]);
    expect(fake.names()).toEqual(['x', 'restore']);
  });

  it('with onCancel Abort (the default) nothing runs after the cancelled step', async () => {
    const fake = lambdas({ x: ok({}), restore: ok({}) });
    const r = await run({ document: cancelDoc(), executionId: freshId(), invokeLambda: fake.invoke, cancelAt: 'b' });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => s.name)).toEqual(['a', 'b']);
    expect(fake.calls).toHaveLength(1);
  });
});

describe('fault hooks', () => {
  it('before: the action does not run, the step fails and routes onFailure', async () => {
    const fake = lambdas({ x: ok({}), target: ok({}), restore: ok({}) });
    const d = doc([lambdaStep('a', 'target', { onFailure: 'step:restore' }), lambdaStep('b', 'x', { isEnd: true }), lambdaStep('restore', 'restore')]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, faults: [{ step: 'a', when: 'before', message: 'injected' }] });
    expect(fake.names()).toEqual(['restore']);
    expect(r.steps[0]).toMatchObject({ name: 'a', status: 'Failed', failureMessage: 'injected' });
    expect(r.status).toBe('Failed');
  });

  it('after: the action runs (its effects done), then the step is reported failed', async () => {
    const effects: string[] = [];
    const fake = lambdas({
      target: () => {
        effects.push('did it');
        return { X: 1 };
      },
      restore: ok({}),
    });
    const d = doc([lambdaStep('a', 'target', { onFailure: 'step:restore' }), lambdaStep('restore', 'restore')]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, faults: [{ step: 'a', when: 'after', message: 'injected after' }] });
    expect(effects).toEqual(['did it']);
    expect(r.steps[0]).toMatchObject({ status: 'Failed', failureMessage: 'injected after', outputs: {} });
    expect(r.steps.map((s) => s.name)).toEqual(['a', 'restore']);
  });

  it('a fault with times: 1 fails only the first attempt, so maxAttempts recovers', async () => {
    const fake = lambdas({ target: ok({}) });
    const r = await run({
      document: doc([lambdaStep('a', 'target', { maxAttempts: 2 })]),
      executionId: freshId(),
      invokeLambda: fake.invoke,
      faults: [{ step: 'a', when: 'after', message: 'once', times: 1 }],
    });
    expect(r.status).toBe('Success');
    expect(r.steps[0].attempts).toBe(2);
    expect(fake.calls).toHaveLength(2);
  });
});

describe('refusals before anything runs', () => {
  const base = () => [lambdaStep('a', 'x'), lambdaStep('b', 'x')];
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an unknown action', doc([{ name: 'a', action: 'aws:runCommand', inputs: {} }]), /step a: action "aws:runCommand" is not implemented/],
    ['an unknown step field', doc([{ ...lambdaStep('a', 'x'), precondition: {} }]), /step a: field "precondition" is not implemented/],
    ['an unknown Lambda input', doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'x', Qualifier: '1' } }]), /step a inputs: field "Qualifier"/],
    ['an asynchronous Lambda invocation', doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'x', InvocationType: 'Event' } }]), /step a: InvocationType "Event" is not implemented/],
    ['Payload and InputPayload together', doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'x', InputPayload: {}, Payload: '{}' } }]), /not both/],
    ['an unknown document field', { ...doc(base()), files: {} }, /document: field "files"/],
    ['a wrong schemaVersion', { ...doc(base()), schemaVersion: '2.2' }, /schemaVersion must be "0.3"/],
    ['an unknown automation variable', doc([lambdaStep('a', 'x', {}, { D: '{{ automation:DOCUMENT_ARN }}' })]), /step a: variable \{\{ automation:DOCUMENT_ARN \}\} is not implemented/],
    ['an ssm parameter reference', doc([lambdaStep('a', 'x', {}, { D: '{{ssm:/my/param}}' })]), /ssm:\/my\/param/],
    ['an undeclared parameter', doc([lambdaStep('a', 'x', {}, { D: '{{ Nope }}' })]), /\{\{ Nope \}\} is neither a parameter/],
    ['an undeclared step output', doc([lambdaStep('a', 'x'), lambdaStep('b', 'x', {}, { D: '{{ a.Nope }}' })]), /step a has no output "Nope"/],
    ['an output of an unknown step', doc([lambdaStep('a', 'x', {}, { D: '{{ zz.Out }}' })]), /no step "zz"/],
    ['a nextStep that does not exist', doc([lambdaStep('a', 'x', { nextStep: 'zz' })]), /step a: nextStep "zz" is not a step/],
    ['an onFailure target that does not exist', doc([lambdaStep('a', 'x', { onFailure: 'step:zz' })]), /onFailure "zz"/],
    ['onCancel Continue (not allowed)', doc([lambdaStep('a', 'x', { onCancel: 'Continue' })]), /onCancel must be Abort or step:<name>/],
    ['an unimplemented choice operator', doc([{ name: 'a', action: 'aws:branch', inputs: { Choices: [{ NextStep: 'a', Variable: 'x', StringStartsWith: 'y' }] } }]), /choice operator StringStartsWith is not implemented/],
    ['a branch target that does not exist', doc([{ name: 'a', action: 'aws:branch', inputs: { Choices: [{ NextStep: 'zz', Variable: 'x', StringEquals: 'y' }] } }]), /NextStep "zz"/],
    ['a selector outside the subset', doc([lambdaStep('a', 'x', { outputs: [{ Name: 'O', Selector: '$.Payload[*].X', Type: 'String' }] })]), /output O: Selector "\$\.Payload\[\*\]\.X"/],
    ['an unknown output Type', doc([lambdaStep('a', 'x', { outputs: [{ Name: 'O', Selector: '$.Payload.X', Type: 'Float' }] })]), /Type "Float"/],
    ['outputs on a wait step', doc([{ name: 'w', action: 'aws:waitForAwsResourceProperty', inputs: { Service: 'ec2', Api: 'X', PropertySelector: '$.A', DesiredValues: ['b'] }, outputs: [{ Name: 'O', Selector: '$.A', Type: 'String' }] }]), /outputs with a Selector are not available/],
    ['a wait without DesiredValues', doc([{ name: 'w', action: 'aws:waitForAwsResourceProperty', inputs: { Service: 'ec2', Api: 'X', PropertySelector: '$.A' } }]), /inputs.DesiredValues is required/],
    ['a sleep with a Timestamp', doc([{ name: 's', action: 'aws:sleep', inputs: { Timestamp: '2026-01-01T00:00:00Z' } }]), /field "Timestamp"/],
    ['a bad Duration', doc([{ name: 's', action: 'aws:sleep', inputs: { Duration: '30 seconds' } }]), /ISO 8601/],
    ['maxAttempts 0', doc([lambdaStep('a', 'x', { maxAttempts: 0 })]), /maxAttempts must be an integer/],
    ['isEnd as a string', doc([lambdaStep('a', 'x', { isEnd: 'true' })]), /isEnd must be true or false/],
    ['a duplicate step name', doc([lambdaStep('a', 'x'), lambdaStep('a', 'x')]), /name is used twice/],
    ['an unknown parameter field', doc(base(), { parameters: { P: { type: 'String', secret: true } } }), /parameter P: field "secret"/],
    ['maxItems on a String', doc(base(), { parameters: { P: { type: 'String', maxItems: 3 } } }), /minItems and maxItems apply to StringList and MapList only/],
    ['an unknown parameter type', doc(base(), { parameters: { P: { type: 'Float' } } }), /parameter P: type "Float"/],
    ['a document output of an unknown step', doc(base(), { outputs: ['zz.Out'] }), /document outputs/],
  ])('%s', async (_title, d, message) => {
    const fake = lambdas({ x: ok({}) });
    const id = freshId();
    await expect(run({ document: d, executionId: id, invokeLambda: fake.invoke })).rejects.toThrow(message);
    await expect(run({ document: d, executionId: freshId(), invokeLambda: fake.invoke })).rejects.toBeInstanceOf(UnsupportedDocument);
    expect(fake.calls).toHaveLength(0);
    expect(executions.has(id)).toBe(false);
  });

  it('refuses a fault or cancelAt naming a step that does not exist', async () => {
    const d = doc([lambdaStep('a', 'x')]);
    await expect(run({ document: d, executionId: freshId(), faults: [{ step: 'zz', when: 'before', message: 'm' }] })).rejects.toThrow(/fault names step "zz"/);
    await expect(run({ document: d, executionId: freshId(), cancelAt: 'zz' })).rejects.toThrow(/cancelAt names step "zz"/);
  });

  it('refuses to reuse an execution id', async () => {
    const fake = lambdas({ x: ok({}) });
    const id = freshId();
    await run({ document: doc([lambdaStep('a', 'x')]), executionId: id, invokeLambda: fake.invoke });
    await expect(run({ document: doc([lambdaStep('a', 'x')]), executionId: id, invokeLambda: fake.invoke })).rejects.toThrow(/already used/);
  });
});

describe('parameters', () => {
  const params = {
    InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8,17}$' },
    KeyType: { type: 'String', default: 'rsa', allowedValues: ['rsa', 'ed25519'] },
    Users: { type: 'StringList', default: [], allowedPattern: '^[a-z_][a-z0-9_.-]{0,31}$', maxItems: 3, displayType: 'textarea' },
    Note: { type: 'String', default: '', maxChars: 5 },
    Allow: { type: 'Boolean', default: false },
    Count: { type: 'Integer', default: 1, allowedValues: [1, 2, 3] },
    Maps: { type: 'MapList', default: [] },
    Role: { type: 'String', default: { 'Fn::GetAtt': ['AutomationRole123', 'Arn'] } },
  };
  const d = doc([lambdaStep('a', 'x', {}, { I: '{{ InstanceId }}', K: '{{ KeyType }}', U: '{{ Users }}', A: '{{ Allow }}', C: '{{ Count }}', M: '{{ Maps }}' })], {
    parameters: params,
    assumeRole: '{{ Role }}',
  });

  it('fills defaults, coerces the API string forms, and records assumeRole', async () => {
    const fake = lambdas({ x: ok({}) });
    const r = await run({
      document: d,
      executionId: freshId(),
      invokeLambda: fake.invoke,
      parameters: { InstanceId: [INSTANCE], Users: ['ec2-user', 'admin'], Allow: 'True', Count: '2', Maps: '[{"a":"b"}]', Role: 'arn:aws:iam::111122223333:role/r' },
    });
    expect(r.status).toBe('Success');
    expect(fake.calls[0].event).toMatchObject({ I: INSTANCE, K: 'rsa', U: ['ec2-user', 'admin'], A: true, C: 2, M: [{ a: 'b' }] });
    expect(r.assumeRole).toBe('arn:aws:iam::111122223333:role/r');
  });

  it('accepts the documented resource types with their patterns (an empty value too)', async () => {
    const fake = lambdas({ x: ok({}) });
    const rd = doc([lambdaStep('a', 'x', {}, { I: '{{ Id }}', L: '{{ Ids }}' })], {
      parameters: {
        Id: { type: 'AWS::EC2::Instance::Id' },
        Ids: { type: 'List<AWS::EC2::Instance::Id>', default: [] },
        Role: { type: 'AWS::IAM::Role::Arn', default: '' },
      },
      assumeRole: '{{ Role }}',
    });
    const r = await run({ document: rd, executionId: freshId(), invokeLambda: fake.invoke, parameters: { Id: INSTANCE, Ids: [INSTANCE, 'mi-0123456789abcdef0'] } });
    expect(r.status).toBe('Success');
    expect(fake.calls[0].event).toMatchObject({ I: INSTANCE, L: [INSTANCE, 'mi-0123456789abcdef0'] });
    expect(r.assumeRole).toBe('');
    await expect(run({ document: rd, executionId: freshId(), invokeLambda: fake.invoke, parameters: { Id: 'i-123' } })).rejects.toThrow(
      /^Parameter Id: a value of 5 characters is not a valid AWS::EC2::Instance::Id/,
    );
    await expect(run({ document: rd, executionId: freshId(), invokeLambda: fake.invoke, parameters: { Id: INSTANCE, Role: 'arn:aws:iam::1:user/x' } })).rejects.toThrow(
      /^Parameter Role: a value of 21 characters is not a valid AWS::IAM::Role::Arn/,
    );
    await expect(run({ document: rd, executionId: freshId(), invokeLambda: fake.invoke, parameters: { Id: INSTANCE, Ids: ['vol-1'] } })).rejects.toThrow(/^Parameter Ids: /);
  });

  it('resolves a CloudFormation-token default through resolveIntrinsic', async () => {
    const fake = lambdas({ x: ok({}) });
    const r = await run({
      document: d,
      executionId: freshId(),
      invokeLambda: fake.invoke,
      parameters: { InstanceId: INSTANCE },
      resolveIntrinsic: (v) => `resolved:${JSON.stringify(v)}`,
    });
    expect(r.assumeRole).toBe('resolved:{"Fn::GetAtt":["AutomationRole123","Arn"]}');
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['a missing required parameter', { Role: 'r' }, 'InstanceId', /is required and has no default/],
    ['a value outside allowedPattern', { InstanceId: 'i-XYZ', Role: 'r' }, 'InstanceId', /does not match the allowed pattern/],
    ['a value outside allowedValues', { InstanceId: INSTANCE, KeyType: 'dsa', Role: 'r' }, 'KeyType', /not one of the allowed values/],
    ['a StringList element outside allowedPattern', { InstanceId: INSTANCE, Users: ['ok', 'Bad User'], Role: 'r' }, 'Users', /a value of 8 characters does not match/],
    ['a wrong type', { InstanceId: 42, Role: 'r' }, 'InstanceId', /expected a String, got number 42/],
    ['a StringList over maxItems', { InstanceId: INSTANCE, Users: ['a', 'b', 'c', 'd'], Role: 'r' }, 'Users', /more than maxItems 3/],
    ['a String over maxChars', { InstanceId: INSTANCE, Note: 'toolong', Role: 'r' }, 'Note', /over maxChars 5/],
    ['a Boolean that is not one', { InstanceId: INSTANCE, Allow: 'yes', Role: 'r' }, 'Allow', /expected a Boolean/],
    ['an Integer that is not one', { InstanceId: INSTANCE, Count: '1.5', Role: 'r' }, 'Count', /expected an Integer/],
    ['an Integer outside allowedValues', { InstanceId: INSTANCE, Count: 4, Role: 'r' }, 'Count', /not one of the allowed values/],
    ['a MapList that is not one', { InstanceId: INSTANCE, Maps: ['a'], Role: 'r' }, 'Maps', /expected a MapList/],
    ['an undeclared parameter', { InstanceId: INSTANCE, Role: 'r', Extra: 'x' }, 'Extra', /is not a parameter of this document/],
    ['a token default with no resolver', { InstanceId: INSTANCE }, 'Role', /CloudFormation token/],
  ])('refuses %s, naming the parameter', async (_title, given, name, message) => {
    const fake = lambdas({ x: ok({}) });
    const p = run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, parameters: given });
    await expect(p).rejects.toBeInstanceOf(InvalidAutomationExecutionParameters);
    await expect(run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, parameters: given })).rejects.toThrow(new RegExp(`^Parameter ${name}: .*${message.source}`));
    expect(fake.calls).toHaveLength(0);
  });

  it('never repeats a rejected value in its message (a pasted private key must not reach a log)', async () => {
    const secret = 'AAAAC3NzaC1lZDI1NTE5AAAAIPrivateLookingMaterialThatMustNotLeak0123';
    const fake = lambdas({ x: ok({}) });
    const p = run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, parameters: { InstanceId: INSTANCE, Users: [secret], Role: 'r' } });
    await expect(p).rejects.toThrow(/^Parameter Users: a value of \d+ characters does not match/);
    await p.catch((e: Error) => expect(e.message).not.toContain(secret.slice(0, 32)));
  });
});

describe('the FunctionName value, the registry, the log, timeToAccess', () => {
  it('hands an intrinsic FunctionName to invokeLambda unresolved', async () => {
    const fn = { 'Fn::GetAtt': ['PreflightFn1234', 'Arn'] };
    const fake = lambdas({ [JSON.stringify(fn)]: ok({ A: 'b' }) });
    const d = doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: fn, InputPayload: { X: 1 } } }]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Success');
    expect(fake.calls[0].fn).toEqual(fn);
    expect(fake.calls[0].event).toEqual({ X: 1 });
  });

  it('accepts a Payload JSON string', async () => {
    const fake = lambdas({ x: ok({}) });
    const d = doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'x', Payload: '{"Id":"{{ automation:EXECUTION_ID }}"}' } }]);
    const id = freshId();
    await run({ document: d, executionId: id, invokeLambda: fake.invoke });
    expect(fake.calls[0].event).toEqual({ Id: id });
  });

  it('shows InProgress in the registry while running and the final status after', async () => {
    const id = freshId();
    let seen: string | undefined;
    const fake = lambdas({
      x: () => {
        seen = executions.get(id);
        throw new Error('no');
      },
    });
    await run({ document: doc([lambdaStep('a', 'x')]), executionId: id, invokeLambda: fake.invoke });
    expect(seen).toBe('InProgress');
    expect(executions.get(id)).toBe('Failed');
  });

  it('logs step names, statuses and times, never payloads or outputs', async () => {
    const lines: string[] = [];
    const secret = '-----BEGIN OPENSSH PRIVATE KEY-----abc';
    const fake = lambdas({ x: (e) => ({ Key: secret, Echo: e.Secret }), y: boom(`bad ${'x'}`) });
    const d = doc([lambdaStep('a', 'x', {}, { Secret: 'TOPSECRETINPUT' }), lambdaStep('b', 'y', { onFailure: 'Continue' })]);
    await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, log: (l) => lines.push(l) });
    const all = lines.join('\n');
    expect(all).toMatch(/a Success/);
    expect(all).toMatch(/b Failed/);
    expect(all).not.toContain(secret);
    expect(all).not.toContain('TOPSECRETINPUT');
  });

  it('timeToAccess is the end of the first given step that succeeded, in the order given', async () => {
    const fake = lambdas({ x: ok({}) });
    const d = doc([lambdaStep('startInstance', 'x'), { name: 'waitForInstanceRunning', action: 'aws:sleep', inputs: { Duration: 'PT30S' } }, lambdaStep('cleanup', 'x')]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke });
    const running = r.steps.find((s) => s.name === 'waitForInstanceRunning');
    expect(timeToAccess(r, ['waitForInstanceRunning', 'startInstance'])).toBe(running?.endedAt);
    expect(timeToAccess(r, ['nope', 'startInstance'])).toBe(r.steps[0].endedAt);
    expect(timeToAccess(r, ['nope'])).toBeUndefined();
  });

  it('global:DATE and DATE_TIME follow the virtual clock from startDate', async () => {
    const fake = lambdas({ x: ok({}) });
    const d = doc([{ name: 's', action: 'aws:sleep', inputs: { Duration: 'PT1H' } }, lambdaStep('a', 'x', {}, { D: '{{ global:DATE }}', T: '{{ global:DATE_TIME }}', P: '{{ global:AWS_PARTITION }}' })]);
    await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, startDate: new Date('2026-01-31T23:30:00Z') });
    expect(fake.calls[0].event).toMatchObject({ D: '2026-02-01', T: `2026-02-01_00.30.0${2 * STEP}`, P: 'aws' });
  });
});

/** botocore's SSM model, shipped with the preinstalled AWS CLI: the reference for the 512 cap. */
function botocoreSsmShape(name: string): Record<string, unknown> {
  const dir = execFileSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' }).trim();
  const file = join(dir, 'data', 'ssm', '2014-11-06', 'service-2.json');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : gunzipSync(readFileSync(`${file}.gz`)).toString('utf8');
  return (JSON.parse(text) as { shapes: Record<string, Record<string, unknown>> }).shapes[name];
}

describe("Automation's documented limits", () => {
  const AWS_MAX = botocoreSsmShape('AutomationParameterValue').max as number;

  it('caps a parameter value as StartAutomationExecution does (botocore: AutomationParameterValue)', async () => {
    expect(AWS_MAX).toBe(512);
    expect(botocoreSsmShape('StepExecution')).toMatchObject({ members: expect.objectContaining({ Outputs: { shape: 'AutomationParameterMap', documentation: expect.any(String) } }) });
    const d = doc([lambdaStep('a', 'x')], { parameters: { Key: { type: 'String', maxChars: 3072 } } });
    const fake = lambdas({ x: ok({}) });
    await expect(run({ document: d, parameters: { Key: 'k'.repeat(AWS_MAX + 1) }, executionId: freshId(), invokeLambda: fake.invoke })).rejects.toThrow(
      InvalidAutomationExecutionParameters,
    );
    const r = await run({ document: d, parameters: { Key: 'k'.repeat(AWS_MAX) }, executionId: freshId(), invokeLambda: fake.invoke });
    expect(r.status).toBe('Success');
    expect(fake.calls).toHaveLength(1);
  });

  it('fails a step whose output value is over the cap (a Lambda Payload included)', async () => {
    const fake = lambdas({ big: ok({ Report: 'r'.repeat(AWS_MAX) }), small: ok({ Report: 'r'.repeat(AWS_MAX - 20) }) });
    const big = await run({ document: doc([lambdaStep('a', 'big')]), executionId: freshId(), invokeLambda: fake.invoke });
    expect(big.status).toBe('Failed');
    expect(big.steps[0].failureMessage).toMatch(/output Payload of step a is \d+ characters, over the 512/);
    const small = await run({ document: doc([lambdaStep('a', 'small')]), executionId: freshId(), invokeLambda: fake.invoke });
    expect(small.status).toBe('Success');
  });

  it('refuses a selector inside an aws:invokeLambdaFunction Payload (AWS documents none) and takes the documented outputs', () => {
    const inside = doc([lambdaStep('a', 'x', { outputs: [{ Name: 'V', Selector: '$.Payload.V', Type: 'String' }] })]);
    expect(() => parseDocument(inside)).toThrow(/Selector \$\.Payload\.V is not documented for aws:invokeLambdaFunction/);
    const whole = doc([lambdaStep('a', 'x', { outputs: [{ Name: 'P', Selector: '$.Payload', Type: 'String' }] })]);
    expect(() => parseDocument(whole)).not.toThrow();
  });

  it('takes LogType None and refuses Tail, which the twin cannot return', () => {
    const step = (LogType: string) => doc([{ name: 'a', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'x', LogType } }]);
    expect(() => parseDocument(step('None'))).not.toThrow();
    expect(() => parseDocument(step('Tail'))).toThrow(/LogType "Tail" is not implemented/);
  });

  it(`stops the cancellation path after ${CANCEL_PATH_SECONDS} s: what runs past it is cut short, nothing after runs`, async () => {
    const fake = lambdas({ x: ok({}), last: ok({}) });
    const sleep = (name: string, seconds: number, next: string) => ({ name, action: 'aws:sleep', inputs: { Duration: `PT${seconds}S` }, nextStep: next });
    const d = doc([
      lambdaStep('a', 'x'),
      lambdaStep('b', 'x', { onCancel: 'step:slow', isEnd: true }),
      sleep('slow', 90, 'slower'),
      sleep('slower', 60, 'last'),
      lambdaStep('last', 'last', { isEnd: true }),
    ]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, cancelAt: 'b' });
    const cancelAt = r.steps[1].startedAt;
    expect(r.status).toBe('Cancelled');
    expect(r.cancelPathCutShort).toBe(true);
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'Success'],
      ['b', 'Cancelled'],
      ['slow', 'Success'],
      ['slower', 'Cancelled'],
    ]);
    expect(r.modeledSeconds).toBeCloseTo(cancelAt + CANCEL_PATH_SECONDS);
    expect(fake.names()).toEqual(['x']);
  });

  it('a cancellation path within the two minutes runs to its end', async () => {
    const fake = lambdas({ x: ok({}), last: ok({}) });
    const d = doc([
      lambdaStep('b', 'x', { onCancel: 'step:slow', isEnd: true }),
      { name: 'slow', action: 'aws:sleep', inputs: { Duration: 'PT100S' } },
      lambdaStep('last', 'last', { isEnd: true }),
    ]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, cancelAt: 'b' });
    expect(r.status).toBe('Cancelled');
    expect(r.cancelPathCutShort).toBeUndefined();
    expect(fake.names()).toEqual(['last']);
  });
});

describe('aws:executeAwsApi ssm StartAutomationExecution of a known document', () => {
  const restoreDoc = doc(
    [
      {
        name: 'waitForEnd',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds: 600,
        inputs: { Service: 'ssm', Api: 'GetAutomationExecution', AutomationExecutionId: '{{ ExecutionId }}', PropertySelector: '$.AutomationExecution.AutomationExecutionStatus', DesiredValues: ['Cancelled', 'Failed', 'Success'] },
      },
      lambdaStep('restore', 'restore', { isEnd: true }, { Of: '{{ ExecutionId }}' }),
    ],
    { parameters: { ExecutionId: { type: 'String' } } },
  );
  const parent = doc([
    lambdaStep('a', 'x', { onCancel: 'step:startRestore' }),
    lambdaStep('b', 'x', { onCancel: 'step:startRestore', isEnd: true }),
    {
      name: 'startRestore',
      action: 'aws:executeAwsApi',
      isEnd: true,
      inputs: { Service: 'ssm', Api: 'StartAutomationExecution', DocumentName: 'Restore', Parameters: { ExecutionId: ['{{ automation:EXECUTION_ID }}'] } },
      outputs: [{ Name: 'RestoreExecutionId', Selector: '$.AutomationExecutionId', Type: 'String' }],
    },
  ], { outputs: ['startRestore.RestoreExecutionId'] });
  // GetAutomationExecution as the twin's agent answers it: from the runner's registry.
  const registryApi = async (service: string, api: string, params: Record<string, unknown>) => {
    if (service === 'ssm' && api === 'GetAutomationExecution') {
      return { AutomationExecution: { AutomationExecutionStatus: executions.get(String(params.AutomationExecutionId)) } };
    }
    throw new Error(`unexpected ${service} ${api}`);
  };

  it('returns the new id at once; the started execution runs after the cancelled one has ended, on its own time', async () => {
    const fake = lambdas({ x: ok({}), restore: ok({ Restored: true }) });
    const id = freshId();
    const r = await run({ document: parent, executionId: id, invokeLambda: fake.invoke, awsCall: registryApi, cancelAt: 'b', documents: { Restore: restoreDoc } });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'Success'],
      ['b', 'Cancelled'],
      ['startRestore', 'Success'],
    ]);
    expect(r.startedExecutions).toHaveLength(1);
    const child = r.startedExecutions[0];
    expect(r.outputs['startRestore.RestoreExecutionId']).toBe(child.executionId);
    expect(child.status).toBe('Success');
    expect(child.steps.map((s) => [s.name, s.status])).toEqual([
      ['waitForEnd', 'Success'],
      ['restore', 'Success'],
    ]);
    // The restore ran for the cancelled execution, and only after it ended.
    expect(fake.calls.at(-1)?.event).toMatchObject({ Of: id });
    expect(executions.get(child.executionId)).toBe('Success');
    expect(child.modeledSeconds).toBeCloseTo(2 * STEP + API + COLD);
  });

  it('fails the step as the API would when the parameters do not satisfy the started document', async () => {
    const bad = doc([
      lambdaStep('b', 'x', { onCancel: 'step:startRestore', isEnd: true }),
      { name: 'startRestore', action: 'aws:executeAwsApi', isEnd: true, inputs: { Service: 'ssm', Api: 'StartAutomationExecution', DocumentName: 'Restore', Parameters: { Nope: ['1'] } } },
    ]);
    const r = await run({ document: bad, executionId: freshId(), invokeLambda: lambdas({ x: ok({}) }).invoke, cancelAt: 'b', documents: { Restore: restoreDoc } });
    expect(r.steps[1]).toMatchObject({ status: 'Failed', failureMessage: expect.stringContaining('Nope') });
    expect(r.startedExecutions).toEqual([]);
  });

  it('refuses a ClientToken that is not a UUID (botocore IdempotencyToken), starting nothing', async () => {
    const bad = doc([
      lambdaStep('b', 'x', { onCancel: 'step:startRestore', isEnd: true }),
      { name: 'startRestore', action: 'aws:executeAwsApi', isEnd: true, inputs: { Service: 'ssm', Api: 'StartAutomationExecution', DocumentName: 'Restore', ClientToken: 'not-a-uuid', Parameters: { ExecutionId: ['{{ automation:EXECUTION_ID }}'] } } },
    ]);
    const r = await run({ document: bad, executionId: freshId(), invokeLambda: lambdas({ x: ok({}) }).invoke, cancelAt: 'b', documents: { Restore: restoreDoc } });
    expect(r.steps[1]).toMatchObject({ status: 'Failed', failureMessage: expect.stringContaining('ClientToken') });
    expect(r.startedExecutions).toEqual([]);
  });

  it('cancelInFlight: the invocation goes on and its work lands at its end; only a Lambda step may be named', async () => {
    const fake = lambdas({ x: ok({}), slow: ok({ Done: true }) });
    const d = doc([lambdaStep('a', 'x'), lambdaStep('b', 'slow', { isEnd: true })]);
    const r = await run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, cancelInFlight: { step: 'b', runsForSeconds: 100 } });
    expect(r.status).toBe('Cancelled');
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'Success'],
      ['b', 'Cancelled'],
    ]);
    expect(r.inFlight).toHaveLength(1);
    expect(r.inFlight?.[0]).toMatchObject({ step: 'b', landedAt: expect.any(Number) });
    expect(r.inFlight?.[0].endsAt).toBeCloseTo((r.inFlight?.[0].startedAt ?? 0) + 100);
    expect(fake.names()).toEqual(['x', 'slow']);
    await expect(run({ document: d, executionId: freshId(), invokeLambda: fake.invoke, cancelInFlight: { step: 'zz', runsForSeconds: 1 } })).rejects.toThrow(/cancelInFlight names step "zz"/);
  });
});
