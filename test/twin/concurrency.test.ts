/**
 * Two executions on one instance at once (the second is refused by the lock), restore run twice
 * (it converges), and a lock left by a finished execution (taken over).
 */
import { randomUUID } from 'node:crypto';
import { executions } from '../../local/runner/runner';
import { startTwin, Twin } from '../../local/twin';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(180000);

const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';
let twin: Twin;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 600, transitions: 'settle' });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

test('two executions on one instance at once: one resets it, the other is refused at preflight', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const params = { InstanceId: instance.instanceId, KeyType: 'ed25519' };

  const launchesBefore = twin.agent.callCount('ec2', 'RunInstances');
  const [a, b] = await Promise.all([twin.runReset(params), twin.runReset(params)]);

  const results = [a.result, b.result];
  const winner = results.find((r) => r.status === 'Success');
  const loser = results.find((r) => r.status !== 'Success');
  expect(winner).toBeDefined();
  expect(loser?.status).toBe('Failed');
  expect(loser?.steps.map((s) => `${s.name}:${s.status}`)).toEqual(['preflight:Failed']);
  expect(loser?.failureMessage).toMatch(/lock/i);
  expect(loser?.failureMessage).toContain(winner?.executionId);
  // One helper was ever launched, one command sent.
  expect(twin.agent.callCount('ec2', 'RunInstances') - launchesBefore).toBe(1);
  expect(twin.agent.commands().filter((c) => c.parameters.VolumeId === instance.rootVolumeId)).toHaveLength(1);
  await expectNothingLost(twin, before, [KEY_FILE]);
});

test('restore run twice in a row (its first attempt reported failed) converges: nothing lost', async () => {
  const instance = await twin.createLockedOutInstance({ image: false });
  const before = await baseline(twin, instance, false);

  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    {
      faults: [
        { step: 'waitForAttachedToHelper', when: 'after', message: 'injected by the test' },
        { step: 'restore', when: 'after', message: 'injected by the test', times: 1 },
      ],
    },
  );

  const restore = result.steps.find((s) => s.name === 'restore');
  expect(restore).toMatchObject({ status: 'Success', attempts: 2 });
  await expectNothingLost(twin, before);
});

test('restore invoked again after the run (cleanup had failed) converges, then cleanup finishes', async () => {
  const instance = await twin.createLockedOutInstance({ image: false });
  const before = await baseline(twin, instance, false);
  const executionId = randomUUID();

  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    {
      executionId,
      faults: [
        { step: 'attachToHelper', when: 'after', message: 'injected by the test' },
        { step: 'cleanupAfterRestore', when: 'before', message: 'injected by the test' },
      ],
    },
  );
  expect(result.status).toBe('Failed');
  // Restored, but the helper and the lock are still there.
  expect((await twin.leftovers(instance.instanceId)).locks).toHaveLength(1);
  expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before.snapshot);

  const again = (await twin.invokeStep('restore', { ExecutionId: executionId, InstanceId: instance.instanceId }, executionId)) as {
    Restored: boolean;
  };
  expect(again.Restored).toBe(true);
  expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before.snapshot);
  await twin.invokeStep('cleanup', { ExecutionId: executionId, InstanceId: instance.instanceId }, executionId);
  await expectNothingLost(twin, before);
});

test('a lock left by a finished execution is taken over, and the reset succeeds', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const old = randomUUID();
  await twin.holdLock(instance.instanceId, old);
  executions.set(old, 'Failed');

  const { result } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });

  expect(result.status).toBe('Success');
  await expectNothingLost(twin, before, [KEY_FILE]);
});

/**
 * P1-2. A run that failed (or was cancelled) before it restored leaves its plan for its restore
 * (the restore runbook, or restore run by hand). The next run must not take that lock over: it
 * would delete the plan the restore needs and record the stopped instance as its original state.
 */
test('a failed run that did not restore keeps its lock: the next run is refused until the restore runbook has run for it', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const params = { InstanceId: instance.instanceId, KeyType: 'ed25519' };

  const first = await twin.runReset(params, {
    faults: [
      // The instance is stopped and the helper launched, the root volume still on the instance.
      { step: 'backupAndDetachRoot', when: 'before', message: 'injected by the test' },
      { step: 'restore', when: 'before', message: 'restore failed in the test' },
    ],
  });
  expect(first.result.status).toBe('Failed');

  const second = await twin.runReset(params);
  expect(second.result.status).toBe('Failed');
  expect(second.result.steps.map((s) => `${s.name}:${s.status}`)).toEqual(['preflight:Failed']);
  expect(second.result.failureMessage).toContain(`locked by execution ${first.result.executionId} (Failed)`);
  expect(second.result.failureMessage).toContain(`ExecutionId ${first.result.executionId}`);

  const restoreName = Object.keys(twin.automationDocuments).find((n) => n.endsWith('-Restore')) as string;
  const restored = await twin.runReset({ InstanceId: instance.instanceId, ExecutionId: first.result.executionId }, { document: twin.automationDocuments[restoreName] });
  expect(restored.result.status).toBe('Success');

  const third = await twin.runReset(params);
  expect(third.result.status).toBe('Success');
  await expectNothingLost(twin, before, [KEY_FILE]);
});
