/**
 * Every refusal of preflight that the emulator can express, end to end: the run fails at
 * preflight, names the cause, and nothing changed (no mutating call, the instance as it was, no
 * helper, network or lock of its own).
 */
import { randomUUID } from 'node:crypto';
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import { INSTANCE_STORE_AMI, LockedOutSpec, startTwin, Twin, WINDOWS_AMI } from '../../local/twin';
import { mutatingCalls } from './support';

jest.setTimeout(120000);

let twin: Twin;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 600 });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

const cases: Array<[string, LockedOutSpec, RegExp]> = [
  ['an instance-store root', { imageId: INSTANCE_STORE_AMI }, /instance.store/i],
  ['Windows', { imageId: WINDOWS_AMI, rootDeviceName: '/dev/sda1' }, /windows/i],
  ['shutdown behaviour terminate', { shutdownBehavior: 'terminate' }, /terminate/i],
  ['stop protection', { disableApiStop: true }, /stop protection|DisableApiStop/i],
  ['a one-time Spot instance', { spot: true }, /spot/i],
  ['an Auto Scaling group member', { autoScalingGroup: true }, /auto ?scaling/i],
  ['an encrypted root whose KMS key is disabled', { kmsKey: 'disabled' }, /KMS|key.*(disabled|not enabled)/i],
];

test.each(cases)('refuses %s, changing nothing', async (_name, spec, reason) => {
  const instance = await twin.createLockedOutInstance({ image: false, ...spec });
  const before = await twin.snapshotInstance(instance.instanceId);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });

  expect(result.status).toBe('Failed');
  expect(result.steps.map((s) => [s.name, s.status])).toEqual([['preflight', 'Failed']]);
  expect(result.failureMessage).toMatch(reason);
  expect(mutatingCalls(callLog)).toEqual([]);
  expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before);
  const left = await twin.leftovers(instance.instanceId);
  expect(left.helpers).toEqual([]);
  expect(left.vpcs).toEqual([]);
  expect(left.locks).not.toContain(`/reset-access/locks/${instance.instanceId}`);
});

test('refuses an instance locked by a run still in progress, and leaves that lock alone', async () => {
  const instance = await twin.createLockedOutInstance({ image: false });
  const other = randomUUID();
  await twin.holdLock(instance.instanceId, other);
  const lockName = `/reset-access/locks/${instance.instanceId}`;
  const lockBefore = await twin.getParameter(lockName);
  const before = await twin.snapshotInstance(instance.instanceId);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });

  expect(result.status).toBe('Failed');
  expect(result.steps.map((s) => [s.name, s.status])).toEqual([['preflight', 'Failed']]);
  expect(result.failureMessage).toMatch(/lock/i);
  expect(result.failureMessage).toContain(other);
  expect(mutatingCalls(callLog)).toEqual([]);
  expect(await twin.getParameter(lockName)).toBe(lockBefore);
  expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before);
});

test('refuses an instance carrying the lock tag of an execution Systems Manager does not know, changing nothing (issue 11)', async () => {
  const instance = await twin.createLockedOutInstance({ image: false });
  const other = randomUUID();
  await twin.ec2.send(new CreateTagsCommand({ Resources: [instance.instanceId], Tags: [{ Key: 'reset-access:lock', Value: other }] }));
  const before = await twin.snapshotInstance(instance.instanceId);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });

  expect(result.status).toBe('Failed');
  expect(result.steps.map((s) => [s.name, s.status])).toEqual([['preflight', 'Failed']]);
  expect(result.failureMessage).toContain(`reset-access:lock=${other}`);
  expect(mutatingCalls(callLog)).toEqual([]);
  expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before);
  expect((await twin.leftovers(instance.instanceId)).locks).not.toContain(`/reset-access/locks/${instance.instanceId}`);
});
