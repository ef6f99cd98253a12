/**
 * A failure at every step of the runbook, and at chosen AWS calls: whatever fails, restore puts
 * the instance back. (The online method's steps: test/twin/online-faults.test.ts, on its own twin;
 * a cancel at every step: test/twin/faults-cancel.test.ts, on its own twin.) After each run: the
 * original root volume on the original instance at its device name with its DeleteOnTermination,
 * the instance in its original state, no helper, network or lock, and the disk image
 * byte-identical outside authorized_keys.
 */
import { AwsFault } from '../../local/agent';
import { startTwin, Twin } from '../../local/twin';
import { expectStepsMatchSynthesized, KEY_FILE, STEPS } from './fault-steps';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(180000);

let twin: Twin;

beforeAll(async () => {
  // 'settle': the Lambdas see end states at once (same modeled time, no real-time polls).
  twin = await startTwin({ maxLifetimeSeconds: 900, transitions: 'settle' });
}, 600000);

afterAll(async () => {
  await twin?.stop();
});

test('the steps under test are every step of the synthesized runbook but preflight and the restore path', () => {
  expectStepsMatchSynthesized(twin);
});

test('a failure at preflight (before it acts) changes nothing', async () => {
  const instance = await twin.createLockedOutInstance({ image: false });
  const before = await baseline(twin, instance, false);
  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { faults: [{ step: 'preflight', when: 'before', message: 'injected by the test' }] },
  );
  expect(result.status).toBe('Failed');
  expect(result.steps.map((s) => s.name)).toEqual(['preflight']);
  await expectNothingLost(twin, before);
});

test.each(STEPS)('a failure at %s (after its action ran) is restored: nothing lost', async (step) => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { faults: [{ step, when: 'after', message: 'injected by the test' }] },
  );

  expect(result.status).toBe('Failed');
  const ran = result.steps.map((s) => `${s.name}:${s.status}`);
  expect(ran).toContain(`${step}:Failed`);
  expect(ran.slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  await expectNothingLost(twin, before, [KEY_FILE]);
  const reached = await keyReachedVolume(instance.rootVolumeId);
  const kept = (await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`)) !== undefined;
  if (KEY_ON_VOLUME_AT.includes(step)) {
    // A failure at injectKey or waitForInjection after the command put the key on the volume keeps
    // the private key (else the new line is useless). Restore must judge "injected" by the
    // command's outcome, not only by progress.keyInjected (which release-from-helper sets).
    expect([reached, kept]).toEqual([true, true]);
  } else if (!reached) {
    // No private key is kept for a key that never reached the volume.
    expect(kept).toBe(false);
  }
});

/**
 * The steps whose failure comes after the command put the key on the volume but before
 * release-from-helper records it. (These runs were once a test of their own, the same fault on the
 * same instance: merged here, the same assertions on one run.)
 */
const KEY_ON_VOLUME_AT = ['injectKey', 'waitForInjection'];

test('the steps where the key is on the volume before restore are among the steps faulted above', () => {
  expect(STEPS).toEqual(expect.arrayContaining(KEY_ON_VOLUME_AT));
});

async function keyReachedVolume(volumeId: string): Promise<boolean> {
  await twin.agent.drainCommands();
  return twin.agent.commands().some((c) => c.parameters.VolumeId === volumeId && c.status === 'Success');
}

const awsFaults: Array<[string, AwsFault]> = [
  ['the 1st DetachVolume (the target root)', { service: 'ec2', action: 'DetachVolume', nth: 1 }],
  ['the 2nd AttachVolume (back on the target)', { service: 'ec2', action: 'AttachVolume', nth: 2 }],
  ['StartInstances', { service: 'ec2', action: 'StartInstances', nth: 1 }],
  ['SendCommand', { service: 'ssm', action: 'SendCommand', nth: 1 }],
  ['RunInstances (the helper)', { service: 'ec2', action: 'RunInstances', nth: 1, code: 'InsufficientInstanceCapacity' }],
  ['CreateSnapshot', { service: 'ec2', action: 'CreateSnapshot', nth: 1 }],
];

test.each(awsFaults)('a failure of %s is restored: nothing lost', async (_name, fault) => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result, unfiredFaults } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { awsFaults: [fault] });

  expect(unfiredFaults).toEqual([]);
  expect(result.status).toBe('Failed');
  expect(result.failureMessage).toContain(fault.code ?? 'TwinInjectedFault');
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  await expectNothingLost(twin, before, [KEY_FILE]);
});

test('a stopped instance whose run fails stays stopped', async () => {
  const instance = await twin.createLockedOutInstance({ state: 'stopped', deleteOnTermination: false });
  const before = await baseline(twin, instance, false);

  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { faults: [{ step: 'waitForAttachedToHelper', when: 'after', message: 'injected by the test' }] },
  );

  expect(result.status).toBe('Failed');
  await expectNothingLost(twin, before);
});
