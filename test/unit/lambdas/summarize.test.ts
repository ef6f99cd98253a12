import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { handler, OUTPUT_FIELDS } from '../../../lambdas/summarize/handler';
import { awsError, INSTANCE_ID, STEP_EVENT } from '../helpers';

const ec2Mock = mockClient(EC2Client);

const EVENT = {
  ...STEP_EVENT,
  KeyParameterName: `/ec2rl/openssh/${INSTANCE_ID}/key`,
  BackupId: 'snap-0123456789abcdef0',
  UsersChanged: 'ec2-user',
  FilesChanged: '/home/ec2-user/.ssh/authorized_keys',
  Fingerprint: 'SHA256:abc',
  Warnings: 'none',
};

beforeEach(() => {
  ec2Mock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

describe('summarize handler', () => {
  it('returns the results of the run and the instance state now', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: 'running' } }] }] });
    const out = await handler(EVENT);
    expect(out).toEqual({
      KeyParameterName: EVENT.KeyParameterName,
      BackupId: EVENT.BackupId,
      UsersChanged: 'ec2-user',
      FilesChanged: EVENT.FilesChanged,
      Fingerprint: 'SHA256:abc',
      Warnings: 'none',
      InstanceState: 'running',
    });
    expect(Object.keys(out)).toEqual([...OUTPUT_FIELDS]);
  });

  it('says unknown when the instance cannot be found', async () => {
    ec2Mock.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));
    expect((await handler(EVENT)).InstanceState).toBe('unknown');
  });

  it('names a missing field', async () => {
    const { Fingerprint: _omit, ...rest } = EVENT;
    void _omit;
    await expect(handler(rest)).rejects.toMatchObject({ name: 'InvalidInputError', message: 'Fingerprint is missing or not a string' });
    expect(ec2Mock.calls()).toHaveLength(0);
  });
});
