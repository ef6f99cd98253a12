/**
 * What the step Lambdas give back to Automation fits what Automation takes: every output value,
 * a Lambda step's whole Payload included, is at most 512 characters (botocore's SSM model,
 * AutomationParameterValue, read here from the AWS CLI's own copy); and injectKey returns only
 * once its command's invocation is visible, so the wait after it never meets
 * InvocationDoesNotExist (issue 10, defects 7 and 8).
 */
import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { mockClient } from 'aws-sdk-client-mock';
import { DescribeVolumesCommand, DetachVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { joinWithin, MAX_OUTPUT_CHARS } from '@common/outputs';
import { handler as releaseHandler } from '../../../lambdas/release-from-helper/handler';
import { injectKey, INVOCATION_VISIBLE_MS } from '../../../lambdas/inject-key/inject-key';
import { awsError, fakeClock, HELPER_ID, makePlan, parameterStore, recordingLogger, ROOT_VOLUME_ID, STEP_EVENT, STEP_INPUT, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
let store: ReturnType<typeof parameterStore>;

function botocoreMax(shape: string): number {
  const dir = execFileSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' }).trim();
  const file = join(dir, 'data', 'ssm', '2014-11-06', 'service-2.json');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : gunzipSync(readFileSync(`${file}.gz`)).toString('utf8');
  return (JSON.parse(text) as { shapes: Record<string, { max: number }> }).shapes[shape].max;
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
});
afterEach(() => jest.restoreAllMocks());

describe('output values fit AutomationParameterValue', () => {
  it('is the cap botocore states', () => {
    expect(MAX_OUTPUT_CHARS).toBe(botocoreMax('AutomationParameterValue'));
  });

  it('joinWithin keeps whole items and says how many it left out', () => {
    const users = Array.from({ length: 40 }, (_, i) => `user${i}`);
    const text = joinWithin(users, 60);
    expect(text.length).toBeLessThanOrEqual(60);
    const kept = text.split(',').slice(0, -1);
    expect(users.slice(0, kept.length)).toEqual(kept);
    expect(text.endsWith(`…(+${users.length - kept.length} more)`)).toBe(true);
    expect(joinWithin(['a', 'b'], 60)).toBe('a,b');
    expect(joinWithin([], 60)).toBe('none');
  });

  it('release-from-helper on a fleet-sized user list returns a Payload under the cap', async () => {
    const changes = Array.from({ length: 200 }, (_, i) => ({ user: `user${i}`, uid: 1000 + i, file: `/home/user${i}/.ssh/authorized_keys`, action: 'appended' }));
    const report = { version: 1, status: 'ok', root: { device: '/dev/nvme1n1p1', fstype: 'ext4' }, selinux: false, changes, warnings: [] };
    storePlan(store, makePlan({ created: { helperInstanceId: HELPER_ID, commandId: '0f5b2b7e-3f0c-4c1e-9a57-0123456789ab' } }));
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: JSON.stringify(report) });
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: ROOT_VOLUME_ID, State: 'in-use', Attachments: [{ InstanceId: HELPER_ID, State: 'attached' }] }] });
    ec2Mock.on(DetachVolumeCommand).resolves({});
    const out = await releaseHandler(STEP_EVENT);
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(botocoreMax('AutomationParameterValue'));
    expect(out.UsersChanged).toMatch(/^user0,user1,.*…\(\+\d+ more\)$/);
    expect(out.FilesChanged).toMatch(/…\(\+\d+ more\)$/);
    expect(out).toMatchObject({ CommandId: '0f5b2b7e-3f0c-4c1e-9a57-0123456789ab', HelperInstanceId: HELPER_ID });
  });
});

describe('injectKey waits until its invocation is visible (bounded)', () => {
  const config = { keyId: 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555', documentName: 'ResetAccess-InjectKey' };
  const USER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host';
  beforeEach(() => {
    storePlan(store, makePlan({ inputs: { ...makePlan().inputs, publicKey: USER_KEY }, created: { helperInstanceId: HELPER_ID } }));
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  });

  it('polls through InvocationDoesNotExist and returns once GetCommandInvocation knows the invocation', async () => {
    ssmMock
      .on(GetCommandInvocationCommand)
      .rejectsOnce(awsError('InvocationDoesNotExist'))
      .rejectsOnce(awsError('InvocationDoesNotExist'))
      .resolves({ Status: 'Pending' });
    const clock = fakeClock();
    const r = await injectKey({ ssm: ssmMock as unknown as SSMClient, ec2: ec2Mock as unknown as EC2Client, log: recordingLogger(), config, clock }, STEP_INPUT);
    expect(r.commandId).toBe('cmd-1');
    expect(ssmMock).toHaveReceivedCommandTimes(GetCommandInvocationCommand, 3);
    expect(ssmMock).toHaveReceivedCommandWith(GetCommandInvocationCommand, { CommandId: 'cmd-1', InstanceId: HELPER_ID });
    expect(clock.elapsed()).toBeLessThan(INVOCATION_VISIBLE_MS);
  });

  it(`fails after ${INVOCATION_VISIBLE_MS / 1000} s when the invocation never shows, naming the command`, async () => {
    ssmMock.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist'));
    const clock = fakeClock();
    await expect(injectKey({ ssm: ssmMock as unknown as SSMClient, ec2: ec2Mock as unknown as EC2Client, log: recordingLogger(), config, clock }, STEP_INPUT)).rejects.toThrow(
      `The inject command cmd-1 on helper ${HELPER_ID} was not visible to GetCommandInvocation within ${INVOCATION_VISIBLE_MS / 1000} s`,
    );
    expect(clock.elapsed()).toBeLessThanOrEqual(INVOCATION_VISIBLE_MS);
  });
});
