/**
 * The online method end to end on the twin (issue 12): a target that is a managed node (its agent
 * Online, Linux, 3.3.2746.0 or later) gets the key from the inject-key command run on its own
 * root, live; it never stops, nothing is detached, no helper is launched; the new key logs in
 * through a real sshd over its disk. Auto falls back to the volume swap when the agent is too
 * old, absent, or the instance stopped; an explicit Online that cannot run is refused.
 */
import { spawnSync } from 'node:child_process';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { REGION, startTwin, Twin } from '../../local/twin';
import { baseline, expectNoKeyMaterial, expectNothingLost, summaryOf } from './support';

jest.setTimeout(240000);

let twin: Twin;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 600 });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

/** The online path's result: `summarizeOnline.Payload` (at most 512 characters). */
function onlineSummaryOf(result: { outputs: Record<string, unknown> }): Record<string, string> {
  const text = String(result.outputs['summarizeOnline.Payload'] ?? '');
  expect(text.length).toBeLessThanOrEqual(512);
  return JSON.parse(text) as Record<string, string>;
}

async function loginWorks(imagePath: string, privateKey: string): Promise<boolean> {
  const sshd = await twin.disk.startSshd(imagePath);
  try {
    const r = await twin.disk.sshLogin({ port: sshd.port, user: 'ec2-user', privateKey, command: 'id -un' });
    return r.ok && r.stdout.trim() === 'ec2-user';
  } finally {
    await sshd.stop();
  }
}

/** Calls that would stop, move or launch anything: the online method makes none. */
const DOWNTIME_CALLS = ['StopInstances', 'StartInstances', 'DetachVolume', 'AttachVolume', 'RunInstances', 'TerminateInstances', 'CreateVpc'];

test('Auto takes Online for a managed instance: the key logs in, the instance never stopped, only authorized_keys changed', async () => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const summary = onlineSummaryOf(result);
  expect(summary).toMatchObject({
    Method: 'Online',
    MethodReason: expect.stringContaining('3.3.2746.0'),
    UsersChanged: 'ec2-user',
    FilesChanged: '/home/ec2-user/.ssh/authorized_keys',
    InstanceState: 'running',
    FullReport: expect.stringContaining(`on ${instance.instanceId}`),
  });
  expect(summary.BackupId).toMatch(/^snap-/);
  expect(result.outputs['summarize.Payload']).toBeUndefined();
  // From the agent's call log: nothing stopped, started, detached, attached or launched.
  expect(callLog.filter((c) => DOWNTIME_CALLS.includes(c.action)).map((c) => c.action)).toEqual([]);
  // The command ran on the instance itself, with Root=/ and no volume.
  const command = twin.agent.commands().find((c) => c.instanceId === instance.instanceId);
  expect(command?.parameters).toMatchObject({ Root: '/', VolumeId: '' });
  expect(command?.status).toBe('Success');

  await expectNothingLost(twin, before, ['/home/ec2-user/.ssh/authorized_keys']);
  const privateKey = (await twin.getParameter(summary.KeyParameterName, true)) as string;
  expect(/^-----BEGIN (OPENSSH|RSA) PRIVATE KEY-----\n/.test(privateKey)).toBe(true);
  expect(await loginWorks(instance.imagePath as string, privateKey)).toBe(true);
  expectNoKeyMaterial([JSON.stringify(result), ...twin.lambdaLogs(), ...twin.agent.commands().map((c) => JSON.stringify(c))]);
});

test("Online with BackupMethod=Image (NoReboot): the command is sent only once DescribeImages shows the image's snapshots and they exist; the key is sent only to an instance carrying this run's lock", async () => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, BackupMethod: 'Image' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const summary = onlineSummaryOf(result);
  expect(summary.BackupId).toMatch(/^ami-/);
  // The twin shows the image pending, without snapshot ids, until its CreateImage completes on the clock.
  const created = twin.clock.history().filter((op) => op.op === 'CreateImage' && op.resourceIds.includes(summary.BackupId));
  expect(created).toHaveLength(1);
  const send = callLog.find((c) => c.action === 'SendCommand' && c.status === 200);
  expect(send && send.at >= created[0]!.completesAt).toBe(true);
  // Read before the send: the image, its snapshots, and the instance's lock tag.
  const sendIndex = callLog.indexOf(send!);
  const beforeSend = callLog.slice(0, sendIndex).map((c) => c.action);
  expect(beforeSend).toEqual(expect.arrayContaining(['CreateImage', 'DescribeImages', 'DescribeSnapshots']));
  expect(beforeSend.lastIndexOf('DescribeInstances')).toBeGreaterThan(beforeSend.lastIndexOf('PutParameter'));
  await expectNothingLost(twin, before, ['/home/ec2-user/.ssh/authorized_keys']);
});

test.each([
  ['an agent older than 3.3.2746.0', { managed: { agentVersion: '3.3.987.0' } }, /3\.3\.987\.0 is older/],
  ['an instance that is not a managed node', {}, /not a managed node/],
  ['a stopped managed instance', { managed: {}, state: 'stopped' as const }, /stopped, not running/],
])('Auto falls back to VolumeSwap for %s, and says why', async (_name, spec, why) => {
  const instance = await twin.createLockedOutInstance(spec);
  const before = await baseline(twin, instance, false);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, BackupMethod: 'None' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const summary = summaryOf(result);
  expect(summary.Method).toBe('VolumeSwap');
  expect(summary.MethodReason).toMatch(why);
  expect(calls['ec2:DetachVolume']).toBeGreaterThan(0);
  await expectNothingLost(twin, before);
});

test('an explicit Online on an instance that is not a managed node is refused, naming what is missing; nothing changes', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, Method: 'Online' });

  expect(result.status).toBe('Failed');
  expect(result.failureMessage).toMatch(/cannot use Method=Online: .*not a managed node/);
  expect(callLog.filter((c) => c.status === 200 && !/^(Describe|Get|List)/.test(c.action))).toEqual([]);
  await expectNothingLost(twin, before);
});

/** InstanceInformation in the SSM service model shipped with the AWS CLI (botocore): member names and enums. */
function botocoreInstanceInformation(): { members: string[]; enums: Record<string, string[]> } {
  const py = [
    'import botocore, gzip, json, os',
    "d = os.path.join(os.path.dirname(botocore.__file__), 'data', 'ssm')",
    "v = sorted(os.listdir(d))[-1]",
    "f = os.path.join(d, v, 'service-2.json')",
    "m = json.load(open(f)) if os.path.exists(f) else json.load(gzip.open(f + '.gz'))",
    "s = m['shapes']; i = s['InstanceInformation']['members']",
    "print(json.dumps({'members': list(i), 'enums': {k: s[i[k]['shape']].get('enum', []) for k in i if 'enum' in s[i[k]['shape']]}}))",
  ].join('\n');
  const out = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`botocore not readable: ${out.stderr}`);
  return JSON.parse(out.stdout) as { members: string[]; enums: Record<string, string[]> };
}

test("DescribeInstanceInformation lists a managed target while it runs, in the SSM model's shape; not once it is stopped", async () => {
  const model = botocoreInstanceInformation();
  const instance = await twin.createLockedOutInstance({ managed: { agentVersion: '3.3.3572.0' }, image: false });
  const ssm = new SSMClient({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  // The answer as bytes on the wire (the SDK would drop members its model does not know).
  const wire: string[] = [];
  const untap = twin.agent.tapWire((x) => {
    if (x.action === 'DescribeInstanceInformation') wire.push(x.response);
  });
  try {
    const listed = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instance.instanceId] }] }));
    const info = listed.InstanceInformationList ?? [];
    expect(info.map((i) => [i.InstanceId, i.PingStatus, i.PlatformType, i.AgentVersion])).toEqual([[instance.instanceId, 'Online', 'Linux', '3.3.3572.0']]);
    const raw = (JSON.parse(wire[0] ?? '{}') as { InstanceInformationList: Array<Record<string, unknown>> }).InstanceInformationList[0] ?? {};
    expect(raw.InstanceId).toBe(instance.instanceId);
    expect(Object.keys(raw).filter((k) => !model.members.includes(k))).toEqual([]);
    for (const [member, values] of Object.entries(model.enums)) {
      if (raw[member] !== undefined) expect([member, values.includes(String(raw[member]))]).toEqual([member, true]);
    }
    const stoppedOne = await twin.createLockedOutInstance({ managed: {}, image: false, state: 'stopped' });
    const none = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [stoppedOne.instanceId] }] }));
    expect(none.InstanceInformationList ?? []).toEqual([]);
  } finally {
    untap();
    ssm.destroy();
  }
});
