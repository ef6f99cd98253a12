import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/summarize/handler';
import { awsError, HELPER_ID, INSTANCE_ID, STEP_EVENT } from '../helpers';

const ec2Mock = mockClient(EC2Client);

/** The earlier steps' whole Payload outputs, as the runbook passes them (JSON text). */
function event(release: Record<string, unknown> = {}, start: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...STEP_EVENT,
    InjectKeyResult: JSON.stringify({ CommandId: 'cmd-1', KeyParameterName: `/ec2rl/openssh/${INSTANCE_ID}/key`, Fingerprint: 'SHA256:abc', KeyType: 'rsa' }),
    BackupResult: JSON.stringify({ BackupId: 'snap-0123456789abcdef0', BackupMethod: 'Snapshot' }),
    ReleaseResult: JSON.stringify({ UsersChanged: 'ec2-user', FilesChanged: '/home/ec2-user/.ssh/authorized_keys', CommandId: 'cmd-1', HelperInstanceId: HELPER_ID, ...release }),
    StartResult: JSON.stringify({ Started: true, Warnings: 'none', ...start }),
    PreflightResult: JSON.stringify({ RootVolumeId: 'vol-1', Method: 'VolumeSwap', MethodReason: 'Auto: volume swap, since it is not a managed node' }),
  };
}

beforeEach(() => {
  ec2Mock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

describe('summarize handler', () => {
  it('returns the results of the run, the instance state now, and where the full report is', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const out = await handler(event());
    expect(out).toEqual({
      KeyParameterName: `/ec2rl/openssh/${INSTANCE_ID}/key`,
      BackupId: 'snap-0123456789abcdef0',
      UsersChanged: 'ec2-user',
      FilesChanged: '/home/ec2-user/.ssh/authorized_keys',
      Fingerprint: 'SHA256:abc',
      Warnings: 'none',
      InstanceState: 'running',
      Address: 'none',
      FullReport: `command cmd-1 on ${HELPER_ID}`,
      Method: 'VolumeSwap',
      MethodReason: 'Auto: volume swap, since it is not a managed node',
    });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
  });

  it('summarizes the online path: no StartResult, the command ran on the instance itself, the method and why', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const { StartResult: _none, ...online } = event({ HelperInstanceId: INSTANCE_ID });
    const reason = `Auto: running, SSM Agent 3.3.2746.0 Online on Linux: no stop needed ${'x'.repeat(400)}`;
    const out = await handler({ ...online, PreflightResult: JSON.stringify({ Method: 'Online', MethodReason: reason }) });
    expect(out).toMatchObject({ Method: 'Online', Warnings: '', InstanceState: 'running', FullReport: `command cmd-1 on ${INSTANCE_ID}` });
    expect(String(out.MethodReason).startsWith('Auto: running, SSM Agent 3.3.2746.0')).toBe(true);
    expect(String(out.MethodReason).endsWith('…(cut)')).toBe(true);
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
  });

  it('names the address to ssh to: the public IP, else the private IP', async () => {
    const withAddresses = (a: Record<string, string>) =>
      ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' }, ...a }] }] });
    withAddresses({ PublicDnsName: 'ec2-198-51-100-7.compute-1.amazonaws.com', PublicIpAddress: '198.51.100.7', PrivateIpAddress: '10.0.0.5' });
    expect((await handler(event())).Address).toBe('198.51.100.7 (public)');
    withAddresses({ PublicDnsName: '', PrivateIpAddress: '10.0.0.5' });
    expect((await handler(event())).Address).toBe('10.0.0.5 (private)');
  });

  it('keeps its whole result, the runbook output, within 512 characters by cutting the longest lists', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' }, PublicIpAddress: '203.0.113.255' }] }],
    });
    const files = Array.from({ length: 6 }, (_, i) => `/home/user${i}/.ssh/authorized_keys`).join(',');
    const out = await handler(event({ FilesChanged: files, UsersChanged: 'u'.repeat(100) }, { Warnings: `the instance gets a new public IP address; ${'w'.repeat(300)}` }));
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
    expect(out.Warnings.endsWith('…(cut)')).toBe(true);
    expect(out.FullReport).toBe(`command cmd-1 on ${HELPER_ID}`);
    expect(out.KeyParameterName).toBe(`/ec2rl/openssh/${INSTANCE_ID}/key`);
  });

  it('cuts Warnings before the lists: a run on two users keeps both files whole beside the longest warnings', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const files = '/home/alice/.ssh/authorized_keys,/home/ec2-user/.ssh/authorized_keys';
    const warnings =
      'the public IP address 203.0.113.10 was released at stop and a new one was assigned at start (read it with aws ec2 describe-instances, or associate an Elastic IP to keep one);' +
      'the backup snap-0123456789abcdef0 is kept and costs storage until you delete it';
    const out = await handler(event({ UsersChanged: 'alice,ec2-user', FilesChanged: files, CommandId: '0f5b2b7e-3f0c-4c1e-9a57-0123456789ab' }, { Warnings: warnings }));
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
    expect(out.FilesChanged).toBe(files);
    expect(out.UsersChanged).toBe('alice,ec2-user');
    expect(out.Warnings.startsWith('the public IP address 203.0.113.10 was released at stop')).toBe(true);
    expect(out.Method).toBe('VolumeSwap');
  });

  it('with real ids, gives up MethodReason before a list: the method stays, both files stay whole', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const files = '/home/alice/.ssh/authorized_keys,/home/ec2-user/.ssh/authorized_keys';
    const warnings = `the public IP address 203.0.113.10 was released at stop and a new one was assigned at start; ${'w'.repeat(200)}`;
    const out = await handler(
      event(
        { UsersChanged: 'alice,ec2-user', FilesChanged: files, CommandId: '0f5b2b7e-3f0c-4c1e-9a57-0123456789ab', HelperInstanceId: 'i-0123456789abcdef1' },
        { Warnings: warnings },
      ),
    );
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
    expect(out.FilesChanged).toBe(files);
    expect(out.Method).toBe('VolumeSwap');
  });

  it('says unknown when the instance cannot be found', async () => {
    ec2Mock.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    expect((await handler(event())).InstanceState).toBe('unknown');
  });

  // P3-10: a Payload handed over as the object itself (a map-typed value) gives the same summary.
  it('takes a Payload given as an object as well as its JSON string', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const asText = await handler(event());
    const objects = Object.fromEntries(Object.entries(event()).map(([k, v]) => [k, k.endsWith('Result') ? JSON.parse(String(v)) : v]));
    expect(await handler(objects)).toEqual(asText);
    await expect(handler({ ...event(), BackupResult: ['snap-1'] })).rejects.toMatchObject({ name: 'InvalidInputError' });
  });

  it('names a missing field and a Payload that is not JSON', async () => {
    const { ReleaseResult: _omit, ...rest } = event();
    void _omit;
    await expect(handler(rest)).rejects.toMatchObject({ name: 'InvalidInputError', message: 'ReleaseResult is missing or not a string' });
    await expect(handler({ ...event(), BackupResult: 'snap-1' })).rejects.toMatchObject({ name: 'InvalidInputError', message: 'BackupResult is not the JSON Payload of a step' });
    expect(ec2Mock.calls()).toHaveLength(0);
  });
});
