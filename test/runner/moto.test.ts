/**
 * The runner against a real moto_server through sdkAwsCall: a wait on DescribeInstances of a
 * moto instance. The server is started here on a free loopback port, under `timeout`, and
 * killed in afterAll.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { latencyOf } from '../../local/latency';
import { VirtualClock } from '../../local/runner/clock';
import { AwsCall, runAutomation, sdkAwsCall } from '../../local/runner/runner';
import { doc, freshId, lambdas } from './helpers';

const REGION = 'us-east-1';
let server: ChildProcess | undefined;
let endpoint = '';
let output = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitUntilAnswering(url: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    if (server?.exitCode !== null && server?.exitCode !== undefined) throw new Error(`moto_server exited: ${output}`);
    try {
      await fetch(url);
      return;
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`moto_server did not answer at ${url}: ${String(last)} ${output}`);
}

beforeAll(async () => {
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  server = spawn('timeout', ['60', 'moto_server', '-H', '127.0.0.1', '-p', String(port)], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.on('data', (d) => (output += String(d)));
  server.stderr?.on('data', (d) => (output += String(d)));
  await waitUntilAnswering(`${endpoint}/moto-api/`, 30000);
}, 40000);

afterAll(() => {
  if (server?.pid !== undefined && server.exitCode === null) {
    try {
      process.kill(-server.pid, 'SIGTERM'); // the process group: timeout and moto_server
    } catch {
      // already gone
    }
  }
});

/** sdkAwsCall plus what the twin's agent does for a stop: schedule its completion on the clock. */
function withClock(call: AwsCall, clock: VirtualClock): { awsCall: AwsCall; apis: string[] } {
  const apis: string[] = [];
  const awsCall: AwsCall = async (service, api, params) => {
    apis.push(api);
    const out = await call(service, api, params);
    if (api === 'StopInstances') clock.schedule('StopInstances', params.InstanceIds as string[]);
    return out;
  };
  return { awsCall, apis };
}

async function launch(call: AwsCall): Promise<string> {
  const images = (await call('ec2', 'DescribeImages', {})) as { Images: { ImageId: string }[] };
  expect(images.Images.length).toBeGreaterThan(0);
  const run = (await call('ec2', 'RunInstances', { ImageId: images.Images[0].ImageId, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' })) as {
    Instances: { InstanceId: string; State: { Name: string } }[];
  };
  return run.Instances[0].InstanceId;
}

const stopAndWait = (desired: string, timeoutSeconds: number) =>
  doc(
    [
      {
        name: 'stopInstance',
        action: 'aws:executeAwsApi',
        inputs: { Service: 'ec2', Api: 'StopInstances', InstanceIds: ['{{ InstanceId }}'] },
        outputs: [{ Name: 'Previous', Selector: '$.StoppingInstances[0].PreviousState.Name', Type: 'String' }],
      },
      {
        name: 'waitForInstance',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds,
        onFailure: 'step:report',
        inputs: {
          Service: 'ec2',
          Api: 'DescribeInstances',
          InstanceIds: ['{{ InstanceId }}'],
          PropertySelector: '$.Reservations[0].Instances[0].State.Name',
          DesiredValues: [desired],
        },
      },
      {
        name: 'describe',
        action: 'aws:executeAwsApi',
        inputs: { Service: 'ec2', Api: 'DescribeInstances', InstanceIds: ['{{ InstanceId }}'] },
        outputs: [{ Name: 'State', Selector: '$.Reservations[0].Instances[0].State.Name', Type: 'String' }],
        isEnd: true,
      },
      { name: 'report', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'report', InputPayload: { Id: '{{ InstanceId }}' } } },
    ],
    { parameters: { InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8,17}$' } }, outputs: ['stopInstance.Previous', 'describe.State'] },
  );

describe('runner against moto_server through sdkAwsCall', () => {
  it('stops a moto instance and waits for it to be stopped, on the virtual clock', async () => {
    // Prepare
    const call = sdkAwsCall(endpoint, REGION);
    const instanceId = await launch(call);
    const clock = new VirtualClock();
    const { awsCall, apis } = withClock(call, clock);

    // Act
    const r = await runAutomation({ document: stopAndWait('stopped', 300), parameters: { InstanceId: instanceId }, executionId: freshId('moto'), clock, awsCall, invokeLambda: lambdas({}).invoke });

    // Assess
    expect(r.status).toBe('Success');
    expect(r.outputs).toEqual({ 'stopInstance.Previous': 'running', 'describe.State': 'stopped' });
    const wait = r.steps.find((s) => s.name === 'waitForInstance');
    // the wait settled to the modeled stop completion, not earlier
    const stop = clock.history().find((o) => o.op === 'StopInstances' && o.resourceIds.includes(instanceId));
    expect(stop).toBeDefined();
    expect(wait!.endedAt).toBeGreaterThanOrEqual(stop!.completesAt);
    expect(wait!.endedAt).toBeLessThan(stop!.completesAt + latencyOf('WaitPollInterval') + 1);
    expect(apis).toEqual(['StopInstances', 'DescribeInstances', 'DescribeInstances']);
  });

  it('times out in virtual time on a state that never comes, with the last value seen, and routes onFailure', async () => {
    const call = sdkAwsCall(endpoint, REGION);
    const instanceId = await launch(call);
    const clock = new VirtualClock();
    const { awsCall, apis } = withClock(call, clock);
    const fake = lambdas({ report: () => ({}) });

    // Longer than the modeled stop, so the wait polls the stopped instance until its timeout.
    const timeout = latencyOf('StopInstances') + 10 * latencyOf('WaitPollInterval');
    const r = await runAutomation({ document: stopAndWait('terminated', timeout), parameters: { InstanceId: instanceId }, executionId: freshId('moto'), clock, awsCall, invokeLambda: fake.invoke });

    const wait = r.steps.find((s) => s.name === 'waitForInstance')!;
    expect(wait.status).toBe('TimedOut');
    expect(wait.failureMessage).toContain('last value "stopped"');
    expect(wait.endedAt - wait.startedAt).toBeCloseTo(timeout);
    expect(r.steps.map((s) => s.name)).toEqual(['stopInstance', 'waitForInstance', 'report']);
    expect(fake.calls[0].event).toEqual({ Id: instanceId });
    expect(r.status).toBe('TimedOut');
    expect(apis.filter((a) => a === 'DescribeInstances').length).toBeGreaterThan(5);
  });

  it('passes moto errors through with their names', async () => {
    const call = sdkAwsCall(endpoint, REGION);
    await expect(call('ec2', 'DescribeInstances', { InstanceIds: ['i-0000000000000dead'] })).rejects.toMatchObject({ name: 'InvalidInstanceID.NotFound' });
    await expect(call('ec2', 'NoSuchThing', {})).rejects.toThrow(/ec2 has no API "NoSuchThing"/);
    await expect(call('lambdax', 'Invoke', {})).rejects.toThrow(/service "lambdax" is not mapped/);
  });

  it('answers ssm and (when its client is installed) iam through the same mapping', async () => {
    const call = sdkAwsCall(endpoint, REGION);
    await call('ssm', 'PutParameter', { Name: '/runner/test', Value: 'v', Type: 'String' });
    const got = (await call('ssm', 'GetParameter', { Name: '/runner/test' })) as { Parameter: { Value: string; LastModifiedDate: unknown } };
    expect(got.Parameter.Value).toBe('v');
    expect(typeof got.Parameter.LastModifiedDate).toBe('string'); // plain JSON, as selectors see it
    let iamInstalled = true;
    try {
      require.resolve('@aws-sdk/client-iam');
    } catch {
      iamInstalled = false;
    }
    if (iamInstalled) {
      await expect(call('iam', 'ListRoles', {})).resolves.toHaveProperty('Roles');
    } else {
      await expect(call('iam', 'ListRoles', {})).rejects.toThrow(/needs the package @aws-sdk\/client-iam/);
    }
  });
});
