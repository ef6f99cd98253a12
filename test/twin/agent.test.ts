/**
 * The agent on its own, in front of a real moto: counting, faults, the clock-driven states, the
 * SSM agent answers. The script runner here records what it was asked to run (the end-to-end
 * tests run the real script on real images).
 */
import {
  AttachVolumeCommand,
  CreateImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  RunInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateDocumentCommand,
  DescribeInstanceInformationCommand,
  GetAutomationExecutionCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { Agent, InjectScriptRun, startAgent, STDOUT_LIMIT, type WireExchange } from '../../local/agent';
import { MotoServer, startMoto } from '../../local/moto';
import { VirtualClock } from '../../local/runner/clock';
import { latencyOf } from '../../local/latency';
import { javaVerdicts } from '../security/support/patterns';

const region = 'us-east-1';
const AMI = 'ami-0ed094fb1304fd857';
let moto: MotoServer;
let agent: Agent;
let clock: VirtualClock;
let ec2: EC2Client;
let ssm: SSMClient;
const runs: InjectScriptRun[] = [];
let scriptStdout = '';

beforeAll(async () => {
  moto = await startMoto({ maxLifetimeSeconds: 300 });
  clock = new VirtualClock();
  agent = await startAgent({
    motoEndpoint: moto.endpoint,
    region,
    clock,
    runInjectScript: async (run) => {
      runs.push(run);
      return { exitCode: 0, stdout: scriptStdout, stderr: '' };
    },
    executions: (id) => (id === 'exec-known' ? { status: 'InProgress' } : undefined),
  });
  const credentials = { accessKeyId: 'twin', secretAccessKey: 'twin' };
  ec2 = new EC2Client({ endpoint: agent.endpoint, region, credentials, maxAttempts: 1 });
  ssm = new SSMClient({ endpoint: agent.endpoint, region, credentials, maxAttempts: 1 });
});

afterAll(async () => {
  ec2?.destroy();
  ssm?.destroy();
  await agent?.stop();
  await moto?.stop();
});

async function launch(tags: Record<string, string> = {}, clientToken?: string): Promise<string> {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: AMI,
      MinCount: 1,
      MaxCount: 1,
      InstanceType: 't3.small',
      ClientToken: clientToken,
      TagSpecifications: Object.keys(tags).length
        ? [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }]
        : undefined,
    }),
  );
  return out.Instances?.[0]?.InstanceId as string;
}

test('counts calls by service and action, and a fault answers the nth call without forwarding it', async () => {
  agent.resetCalls();
  const id = await launch();
  agent.injectFault({ service: 'ec2', action: 'DescribeInstances', nth: 2, code: 'UnauthorizedOperation' });
  await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  await expect(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).rejects.toMatchObject({
    name: 'UnauthorizedOperation',
  });
  await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  expect(agent.callCount('ec2', 'RunInstances')).toBe(1);
  expect(agent.callCount('ec2', 'DescribeInstances')).toBe(3);
  expect(agent.callLog().filter((c) => c.faulted)).toHaveLength(1);
  expect(agent.pendingFaults()).toHaveLength(0);

  agent.injectFault({ service: 'ssm', action: 'GetParameter', code: 'ThrottlingException', statusCode: 400 });
  await expect(
    ssm.send(new (await import('@aws-sdk/client-ssm')).GetParameterCommand({ Name: '/nothing' })),
  ).rejects.toMatchObject({ name: 'ThrottlingException' });
});

test('the wire tap hears each exchange with both bodies, answered here or by moto, faulted or not, until untapped', async () => {
  const heard: WireExchange[] = [];
  const untap = agent.tapWire((x) => heard.push(x));
  await ec2.send(new DescribeVolumesCommand({ VolumeIds: [] }));
  await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: 'exec-known' }));
  agent.injectFault({ service: 'ssm', action: 'GetAutomationExecution' });
  await expect(ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: 'exec-known' }))).rejects.toThrow();
  untap();
  await ec2.send(new DescribeVolumesCommand({ VolumeIds: [] }));
  expect(heard.map((x) => `${x.service}:${x.action}:${x.status}`)).toEqual([
    'ec2:DescribeVolumes:200',
    'ssm:GetAutomationExecution:200',
    'ssm:GetAutomationExecution:400',
  ]);
  expect(heard[0].protocol).toBe('ec2');
  expect(heard[0].request).toContain('Action=DescribeVolumes');
  expect(heard[0].response).toContain('<DescribeVolumesResponse');
  expect(JSON.parse(heard[1].request)).toEqual({ AutomationExecutionId: 'exec-known' });
  expect(JSON.parse(heard[1].response).AutomationExecution.AutomationExecutionStatus).toBe('InProgress');
  expect(heard[2].response).toContain('TwinInjectedFault');
});

test('RunInstances with the same ClientToken returns the same instance (moto alone does not)', async () => {
  const a = await launch({}, 'token-abc');
  const b = await launch({}, 'token-abc');
  expect(b).toBe(a);
});

test('a stop shows stopping until an observer has waited for it on the virtual clock', async () => {
  const id = await launch();
  const t0 = clock.now();
  await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
  const first = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  expect(first.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('stopping');
  expect(clock.now()).toBe(t0 + latencyOf('StopInstances'));
  const second = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  expect(second.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('stopped');
});

test('detach shows detaching then available; DetachVolume without InstanceId works; attach shows attaching', async () => {
  const id = await launch();
  await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
  clock.settle([id]);
  const vol = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 1 }));
  const volumeId = vol.VolumeId as string;
  await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: id, Device: '/dev/sdf' }));
  const attaching = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  expect(attaching.Volumes?.[0]?.Attachments?.[0]?.State).toBe('attaching');
  const attached = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  expect(attached.Volumes?.[0]?.Attachments?.[0]?.State).toBe('attached');

  await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
  const detaching = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  expect(detaching.Volumes?.[0]?.State).toBe('in-use');
  expect(detaching.Volumes?.[0]?.Attachments?.[0]).toMatchObject({ State: 'detaching', InstanceId: id, Device: '/dev/sdf' });
  const available = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  expect(available.Volumes?.[0]?.State).toBe('available');
});

test('a helper is Online only after its launch completes on the clock; SendCommand runs the document script', async () => {
  const helper = await launch({ 'reset-access:role': 'helper' });
  const notYet = await ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [helper] }] }),
  );
  expect(notYet.InstanceInformationList).toHaveLength(0);
  const online = await ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [helper] }] }),
  );
  expect(online.InstanceInformationList?.[0]?.PingStatus).toBe('Online');

  const vol = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 1 }));
  const volumeId = vol.VolumeId as string;
  agent.registerVolume(volumeId, '/tmp/not-read-by-this-test.img');
  await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: helper, Device: '/dev/sdf' }));

  await ssm.send(
    new CreateDocumentCommand({
      Name: 'TwinAgentTestDoc',
      DocumentType: 'Command',
      DocumentFormat: 'YAML',
      Content: [
        "schemaVersion: '2.2'",
        'description: test',
        'parameters:',
        '  VolumeId:',
        '    type: String',
        "    allowedPattern: '^(vol-[0-9a-f]{8,17})?$'",
        '    interpolationType: ENV_VAR',
        'mainSteps:',
        '  - action: aws:runShellScript',
        '    name: injectKey',
        '    inputs:',
        '      runCommand:',
        '        - echo "$SSM_VolumeId"',
      ].join('\n'),
    }),
  );
  await expect(
    ssm.send(
      new SendCommandCommand({
        DocumentName: 'TwinAgentTestDoc',
        InstanceIds: [helper],
        Parameters: { Other: ['x'] },
      }),
    ),
  ).rejects.toMatchObject({ name: 'InvalidParameters' });

  scriptStdout = 'x'.repeat(STDOUT_LIMIT + 500);
  const sent = await ssm.send(
    new SendCommandCommand({ DocumentName: 'TwinAgentTestDoc', InstanceIds: [helper], Parameters: { VolumeId: [volumeId] } }),
  );
  const commandId = sent.Command?.CommandId as string;
  expect(runs.at(-1)).toMatchObject({ env: { SSM_VolumeId: volumeId }, volumes: { [volumeId]: '/tmp/not-read-by-this-test.img' } });
  expect(runs.at(-1)?.script).toContain('echo "$SSM_VolumeId"');
  const first = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helper }));
  expect(first.Status).toBe('InProgress');
  const done = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helper }));
  expect(done.Status).toBe('Success');
  expect(done.ResponseCode).toBe(0);
  expect(done.StandardOutputContent).toHaveLength(STDOUT_LIMIT);
});

test('GetAutomationExecution answers from the execution registry', async () => {
  const known = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: 'exec-known' }));
  expect(known.AutomationExecution?.AutomationExecutionStatus).toBe('InProgress');
  await expect(ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: 'exec-unknown' }))).rejects.toMatchObject({
    name: 'AutomationExecutionNotFoundException',
  });
});

test('an instance launched from an instance-store image has an instance-store root and no EBS root mapping', async () => {
  const out = await ec2.send(
    new RunInstancesCommand({ ImageId: 'ami-04681a1dbd79675b6', MinCount: 1, MaxCount: 1, InstanceType: 't3.small' }),
  );
  const id = out.Instances?.[0]?.InstanceId as string;
  const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const instance = described.Reservations?.[0]?.Instances?.[0];
  expect(instance?.RootDeviceType).toBe('instance-store');
  expect(instance?.BlockDeviceMappings?.some((b) => b.DeviceName === instance.RootDeviceName)).toBe(false);
  // An EBS-backed one is left alone.
  const ebs = await launch();
  const other = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [ebs] }));
  expect(other.Reservations?.[0]?.Instances?.[0]?.RootDeviceType).toBe('ebs');
});

test("with transitions 'settle' an observer sees the end state at once, and the clock still pays the wait", async () => {
  agent.setTransitions('settle');
  try {
    const id = await launch();
    const t0 = clock.now();
    await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    const seen = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(seen.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('stopped');
    expect(clock.now()).toBe(t0 + latencyOf('StopInstances'));
  } finally {
    agent.setTransitions('show');
  }
});

test('CreateImage tags the image and its snapshots in the call, as EC2 does', async () => {
  const id = await launch();
  const tag = (type: 'image' | 'snapshot') => ({ ResourceType: type, Tags: [{ Key: 'reset-access:role', Value: 'backup' }] });
  const out = await ec2.send(new CreateImageCommand({ InstanceId: id, Name: 'twin-backup', NoReboot: true, TagSpecifications: [tag('image'), tag('snapshot')] }));
  // A pending image shows its mappings without snapshot ids (the twin's DescribeImages, local/agent.ts):
  // the ids are read once the image has settled.
  const pending = (await ec2.send(new DescribeImagesCommand({ ImageIds: [out.ImageId as string] }))).Images?.[0];
  expect(pending?.Tags).toEqual([{ Key: 'reset-access:role', Value: 'backup' }]);
  agent.setTransitions('settle');
  let image;
  try {
    image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [out.ImageId as string] }))).Images?.[0];
  } finally {
    agent.setTransitions('show');
  }
  const snapshotIds = (image?.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId).filter((s): s is string => !!s);
  expect(snapshotIds.length).toBeGreaterThan(0);
  const snapshots = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }));
  expect(snapshots.Snapshots?.map((s) => s.SnapshotId).sort()).toEqual([...snapshotIds].sort());
  for (const snap of snapshots.Snapshots ?? []) expect(snap.Tags).toEqual([{ Key: 'reset-access:role', Value: 'backup' }]);
});

/**
 * The agent's parameter handling, each behaviour from its source (aws/amazon-ssm-agent and AWS's
 * documentation, cited in local/agent.ts) and each decided by a real engine where one exists: Go's
 * regexp validates, as in the agent.
 */
describe('SendCommand parameters, as the SSM Agent validates and passes them', () => {
  let helper: string;
  let n = 0;

  beforeAll(async () => {
    helper = await launch({ 'reset-access:role': 'helper' });
    for (let i = 0; i < 3; i++) {
      const info = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [helper] }] }));
      if (info.InstanceInformationList?.[0]?.PingStatus === 'Online') return;
    }
    throw new Error('the helper never came Online');
  });

  /** A Command document: `parameters` (YAML lines under `parameters:`), `inputsExtra` lines under inputs, and the commands. */
  async function documentWith(parameters: string[], commands: string[], inputsExtra: string[] = []): Promise<string> {
    const name = `TwinAgentParamDoc${++n}`;
    const content = [
      "schemaVersion: '2.2'",
      'description: test',
      'parameters:',
      ...parameters.map((l) => `  ${l}`),
      'mainSteps:',
      '  - action: aws:runShellScript',
      '    name: step',
      '    inputs:',
      ...inputsExtra.map((l) => `      ${l}`),
      '      runCommand:',
      ...commands.map((c) => `        - ${JSON.stringify(c)}`),
    ].join('\n');
    await ssm.send(new CreateDocumentCommand({ Name: name, DocumentType: 'Command', DocumentFormat: 'YAML', Content: content }));
    return name;
  }

  async function send(document: string, parameters: Record<string, string[]>): Promise<{ commandId: string; ran: InjectScriptRun | undefined }> {
    const before = runs.length;
    const sent = await ssm.send(new SendCommandCommand({ DocumentName: document, InstanceIds: [helper], Parameters: parameters }));
    return { commandId: sent.Command?.CommandId as string, ran: runs.length > before ? runs.at(-1) : undefined };
  }

  async function invocation(commandId: string) {
    let got = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helper }));
    while (got.Status === 'InProgress' || got.Status === 'Pending') {
      got = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helper }));
    }
    return got;
  }

  const volumeParameter = (extra: string[] = []): string[] => [
    'VolumeId:',
    '  type: String',
    "  default: ''",
    "  allowedPattern: '^(vol-[0-9a-f]{8,17})?$'",
    ...extra.map((l) => `  ${l}`),
  ];

  test('interpolationType: ENV_VAR on the parameter gives the step SSM_<Name> with the value as given', async () => {
    const doc = await documentWith(volumeParameter(['interpolationType: ENV_VAR']), ['echo "$SSM_VolumeId"']);
    const { commandId, ran } = await send(doc, { VolumeId: ['vol-0123456789abcdef0'] });
    expect(ran?.env).toEqual({ SSM_VolumeId: 'vol-0123456789abcdef0' });
    expect((await invocation(commandId)).Status).toBe('Success');
  });

  test('a default fills a parameter not given, and reaches the step the same way', async () => {
    const doc = await documentWith(volumeParameter(['interpolationType: ENV_VAR']), ['echo "$SSM_VolumeId"']);
    const { ran } = await send(doc, {});
    expect(ran?.env.SSM_VolumeId).toBe('');
  });

  test('interpolationType under the step inputs has no effect: no SSM_ variable is set', async () => {
    const doc = await documentWith(volumeParameter(), ['echo "$SSM_VolumeId"'], ['interpolationType: ENV_VAR']);
    const { commandId, ran } = await send(doc, { VolumeId: ['vol-0123456789abcdef0'] });
    expect(ran).toBeDefined();
    expect(ran?.env).toEqual({});
    expect((await invocation(commandId)).Status).toBe('Success');
  });

  test('a value outside its allowedPattern (Go regexp) fails the invocation before anything runs, without echoing the value', async () => {
    const doc = await documentWith(volumeParameter(['interpolationType: ENV_VAR']), ['echo "$SSM_VolumeId"']);
    const hostile = 'vol-1; rm -rf /';
    const { commandId, ran } = await send(doc, { VolumeId: [hostile] });
    expect(ran).toBeUndefined();
    const got = await invocation(commandId);
    expect(got.Status).toBe('Failed');
    expect(got.StandardErrorContent).toContain('does not match the allowed pattern');
    expect(got.StandardErrorContent).not.toContain(hostile);
  });

  test('a pattern Go cannot compile fails every invocation, although JavaScript and Java accept it (issue 10, defect 2)', async () => {
    const pattern = '^[A-Za-z0-9+/]{16,8000}$';
    expect(() => new RegExp(pattern)).not.toThrow();
    expect(javaVerdicts([[pattern, 'AAAAAAAAAAAAAAAA']])[0]).toEqual({ matches: true, find: true });
    const doc = await documentWith(['Blob:', '  type: String', "  default: 'AAAAAAAAAAAAAAAA'", `  allowedPattern: '${pattern}'`, '  interpolationType: ENV_VAR'], [
      'echo "$SSM_Blob"',
    ]);
    const { commandId, ran } = await send(doc, { Blob: ['AAAAAAAAAAAAAAAAAAAA'] });
    expect(ran).toBeUndefined();
    const got = await invocation(commandId);
    expect(got.Status).toBe('Failed');
    expect(got.StandardErrorContent).toMatch(/compiling allowed pattern.*invalid repeat count/);
  });

  test('the deployed inject-key document passes all four parameters as SSM_ variables', async () => {
    const { loadInjectKeyDocument } = await import('../../lib/inject-key-document');
    const name = `TwinAgentInjectKey${++n}`;
    await ssm.send(new CreateDocumentCommand({ Name: name, DocumentType: 'Command', DocumentFormat: 'JSON', Content: JSON.stringify(loadInjectKeyDocument()) }));
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0mzeroes0000000000000000000000000000000000 me@host';
    const { ran } = await send(name, { VolumeId: ['vol-0123456789abcdef0'], PublicKey: [key], Users: ['ec2-user'] });
    expect(ran?.env).toMatchObject({ SSM_VolumeId: 'vol-0123456789abcdef0', SSM_PublicKey: key, SSM_Users: 'ec2-user', SSM_Root: '' });
  });

  test('without ENV_VAR, {{ Name }} in a command becomes the value, with $$ turned into $ (the agent\'s ReplaceParameter)', async () => {
    const doc = await documentWith(['Word:', '  type: String', "  default: 'a$$b'", "  allowedPattern: '^[a-z$]+$'"], ['echo {{ Word }}-{{Word}}', '{{ Word }}']);
    const { ran } = await send(doc, {});
    expect(ran?.script).toBe('echo a$b-a$b\na$$b');
    expect(ran?.env.SSM_Word).toBeUndefined();
  });

  test('with ENV_VAR, {{ Name }} in a command is refused by the twin: no source settles what the agent does', async () => {
    const doc = await documentWith(volumeParameter(['interpolationType: ENV_VAR']), ['echo {{ VolumeId }}']);
    await expect(send(doc, {})).rejects.toMatchObject({ name: 'InvalidDocumentContent' });
  });

  test('a value over maxChars, or an undeclared parameter, is refused by SendCommand itself', async () => {
    const doc = await documentWith(volumeParameter(['interpolationType: ENV_VAR', 'maxChars: 12']), ['echo "$SSM_VolumeId"']);
    await expect(send(doc, { VolumeId: ['vol-0123456789abcdef0'] })).rejects.toMatchObject({ name: 'InvalidParameters' });
    await expect(send(doc, { Volume: ['vol-01234567'] })).rejects.toMatchObject({ name: 'InvalidParameters' });
  });

  test('the 64 KB quota counts the runtime parameters (MaxDocumentSizeExceeded)', async () => {
    const doc = await documentWith(['Big:', '  type: String', "  default: ''", "  allowedPattern: '^[a-z]*$'", '  interpolationType: ENV_VAR'], ['true']);
    await expect(send(doc, { Big: ['a'.repeat(64 * 1024)] })).rejects.toMatchObject({ name: 'MaxDocumentSizeExceeded' });
  });
});
