/**
 * An encrypted root under a customer managed KMS key, end to end on the twin (issue 10, defect 5):
 * a run regains access and a run that fails after the volume reached the helper puts it back, and
 * in both the root volume stays the same encrypted volume under the same key, at its device name.
 *
 * moto checks no KMS permission, so this proves the flow, not the IAM: the roles' EBS encryption
 * permissions are checked over the template (test/security/iam.test.ts, test/infra/permissions.test.ts).
 */
import { DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { startTwin, Twin } from '../../local/twin';
import { baseline, expectNoKeyMaterial, expectNothingLost } from './support';

jest.setTimeout(240000);

let twin: Twin;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 600 });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

async function rootVolume(volumeId: string) {
  const v = (await twin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0];
  return { encrypted: v?.Encrypted, kmsKeyId: v?.KmsKeyId, attachments: (v?.Attachments ?? []).map((a) => ({ instance: a.InstanceId, device: a.Device })) };
}

test('a root encrypted under a customer key: the key is added, and the root is the same encrypted volume under the same key', async () => {
  const instance = await twin.createLockedOutInstance({ kmsKey: 'enabled' });
  const before = await rootVolume(instance.rootVolumeId);
  expect(before.encrypted).toBe(true);
  expect(before.kmsKeyId).toMatch(/^arn:aws:kms:/);
  const was = await baseline(twin, instance);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });

  expect(result.status).toBe('Success');
  // The private key was stored (its value never goes to expect()).
  expect((await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`, true))?.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
  // The calls in which EC2 uses the volume's key with the caller's rights all happened.
  for (const call of ['ec2:AttachVolume', 'ec2:StartInstances', 'ec2:RunInstances', 'ec2:CreateSnapshot']) {
    expect({ call, made: (calls[call] ?? 0) > 0 }).toEqual({ call, made: true });
  }
  expect(await rootVolume(instance.rootVolumeId)).toEqual({
    encrypted: true,
    kmsKeyId: before.kmsKeyId,
    attachments: [{ instance: instance.instanceId, device: instance.rootDeviceName }],
  });
  await expectNothingLost(twin, was, ['/home/ec2-user/.ssh/authorized_keys']);
  expectNoKeyMaterial([JSON.stringify(result), ...twin.lambdaLogs()]);
});

test('a failure after the encrypted root reached the helper: restore puts the same encrypted volume back', async () => {
  const instance = await twin.createLockedOutInstance({ kmsKey: 'enabled' });
  const before = await rootVolume(instance.rootVolumeId);
  const was = await baseline(twin, instance);

  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { faults: [{ step: 'waitForAttachedToHelper', when: 'after', message: 'injected by the test' }] },
  );

  expect(result.status).toBe('Failed');
  expect(await rootVolume(instance.rootVolumeId)).toEqual({
    encrypted: true,
    kmsKeyId: before.kmsKeyId,
    attachments: [{ instance: instance.instanceId, device: instance.rootDeviceName }],
  });
  await expectNothingLost(twin, was);
});
