/**
 * The online method (issue 12) under failure and cancel, on a managed instance: a failure after
 * every online step (and after branchOnMethod, which chooses it), a cancel at each, and chosen AWS
 * calls failing. After each run the instance ran throughout (no stop, detach, attach or launch in
 * the agent's call log), its root volume is where it was, no lock or lock tag is left, and the disk
 * image is byte-identical outside authorized_keys. (The volume swap: test/twin/faults.test.ts.)
 */
import { CreateTagsCommand, DeleteTagsCommand, DescribeTagsCommand } from '@aws-sdk/client-ec2';
import { AwsFault } from '../../local/agent';
import { startTwin, Twin } from '../../local/twin';
import { baseline, expectNothingLost, onlineStepNames } from './support';

jest.setTimeout(180000);

const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';
let twin: Twin;

beforeAll(async () => {
  // 'settle': the Lambdas see end states at once (same modeled time, no real-time polls).
  twin = await startTwin({ maxLifetimeSeconds: 900, transitions: 'settle' });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

/** branchOnMethod and every step after summarize but the restore path (the online path, in order;
 * the UserData path's steps, also after summarize, are tested in test/twin/user-data.test.ts). */
const ONLINE_STEPS = onlineStepNames();

test('the online steps under test are the synthesized runbook\'s', () => {
  expect(ONLINE_STEPS).toEqual(['branchOnMethod', 'injectKeyOnline', 'waitForOnlineInjection', 'reportOnline', 'cleanupOnline', 'summarizeOnline']);
  const names = (twin.automationDocument.mainSteps as Array<{ name: string }>).map((s) => s.name);
  for (const n of ONLINE_STEPS) expect(names).toContain(n);
});

/** Calls that would stop, move or launch anything: a run of the online method makes none, failed or not. */
const DOWNTIME_CALLS = ['StopInstances', 'StartInstances', 'DetachVolume', 'AttachVolume', 'RunInstances', 'TerminateInstances'];

async function onlineKeyReached(instanceId: string): Promise<boolean> {
  await twin.agent.drainCommands();
  return twin.agent.commands().some((c) => c.instanceId === instanceId && c.parameters.Root === '/' && c.status === 'Success');
}

test.each(ONLINE_STEPS)('a failure at %s (after its action ran) is restored: the instance ran throughout, nothing lost', async (step) => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { faults: [{ step, when: 'after', message: 'injected by the test' }] },
  );

  expect(result.status).toBe('Failed');
  const ran = result.steps.map((s) => `${s.name}:${s.status}`);
  expect(ran).toContain(`${step}:Failed`);
  expect(ran).not.toContain('describeInstance:Success');
  expect(ran.slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  expect(callLog.filter((c) => DOWNTIME_CALLS.includes(c.action)).map((c) => c.action)).toEqual([]);
  await expectNothingLost(twin, before, [KEY_FILE]);
  // The private key is kept exactly when the key reached authorized_keys.
  const kept = (await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`)) !== undefined;
  expect([step, kept]).toEqual([step, await onlineKeyReached(instance.instanceId)]);
});

test.each(ONLINE_STEPS)('a cancel at %s: the restore runbook it started converges, the instance ran throughout, nothing lost', async (step) => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { cancelAt: step });

  expect(result.status).toBe('Cancelled');
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual([`${step}:Cancelled`, 'startRestore:Success']);
  expect(result.startedExecutions.map((e) => e.status)).toEqual(['Success']);
  expect(result.startedExecutions[0].steps.map((s) => `${s.name}:${s.status}`)).toEqual(['waitForExecutionEnded:Success', 'waitForLambdasStopped:Success', 'waitForInstanceSettled:Success', 'restore:Success', 'cleanup:Success']);
  expect(callLog.filter((c) => DOWNTIME_CALLS.includes(c.action)).map((c) => c.action)).toEqual([]);
  await expectNothingLost(twin, before, [KEY_FILE]);
});

test.each<[string, AwsFault]>([
  ['SendCommand to the instance', { service: 'ssm', action: 'SendCommand', nth: 1 }],
  ['CreateSnapshot of the running root', { service: 'ec2', action: 'CreateSnapshot', nth: 1 }],
])('a failure of %s is restored: nothing lost', async (_name, fault) => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);

  const { result, unfiredFaults, callLog } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { awsFaults: [fault] });

  expect(unfiredFaults).toEqual([]);
  expect(result.status).toBe('Failed');
  expect(result.failureMessage).toContain('TwinInjectedFault');
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  expect(callLog.filter((c) => DOWNTIME_CALLS.includes(c.action)).map((c) => c.action)).toEqual([]);
  await expectNothingLost(twin, before, [KEY_FILE]);
  expect(await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`)).toBeUndefined();
});


test("the lock tag on the instance is another run's by the time of the send (review P6): nothing is sent, the run restores, nothing lost", async () => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);
  // Once the backup has been started (inside injectKeyOnline, before the key is stored and the
  // command sent), someone with ec2:CreateTags puts another execution's id in the lock tag.
  let retag: Promise<unknown> | undefined;
  const untap = twin.agent.tapWire((x) => {
    if (x.action === 'CreateSnapshot' && x.status === 200 && !retag) {
      retag = twin.ec2.send(new CreateTagsCommand({ Resources: [instance.instanceId], Tags: [{ Key: 'reset-access:lock', Value: 'another-execution' }] }));
    }
  });
  let run;
  try {
    run = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' });
  } finally {
    untap();
  }
  await retag;
  const { result, callLog } = run;

  expect(result.status).toBe('Failed');
  expect(result.failureMessage).toContain("carries the lock tag of another execution (another-execution), not this execution's");
  expect(callLog.filter((c) => c.action === 'SendCommand')).toEqual([]);
  expect(twin.agent.commands().filter((c) => c.instanceId === instance.instanceId)).toEqual([]);
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  // The other run's tag is its own to remove: restore removes only its own value (lock-tag.ts).
  const tags = (await twin.ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'resource-id', Values: [instance.instanceId] }, { Name: 'key', Values: ['reset-access:lock'] }] }))).Tags ?? [];
  expect(tags.map((t) => t.Value)).toEqual(['another-execution']);
  await twin.ec2.send(new DeleteTagsCommand({ Resources: [instance.instanceId], Tags: [{ Key: 'reset-access:lock' }] }));
  await expectNothingLost(twin, before, []);
});
