/**
 * A cancel at every step of the volume swap (the failures after each step:
 * test/twin/faults.test.ts, on its own twin): the run ends within Automation's two minutes for the
 * cancel path, the restore runbook it starts converges, and nothing is lost: the original root
 * volume on the original instance at its device name with its DeleteOnTermination, the instance
 * in its original state, no helper, network or lock, and the disk image byte-identical outside
 * authorized_keys.
 */
import { startTwin, Twin } from '../../local/twin';
import { functionTimeoutSeconds } from '../../lib/functions';
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

test('the steps cancelled are every step of the synthesized runbook but preflight and the restore path', () => {
  expectStepsMatchSynthesized(twin);
});

/**
 * Cancel (defect 4). Automation runs the cancellation path for at most two minutes
 * (automation-actions.html, common properties, onCancel; the runner enforces it). The runbook's
 * cancel path only starts the restore runbook, which restores and cleans up with no such limit.
 */
test.each(STEPS)('a cancel at %s: the run ends within two minutes, the restore runbook it started converges, nothing lost', async (step) => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { cancelAt: step });

  expect(result.status).toBe('Cancelled');
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual([`${step}:Cancelled`, 'startRestore:Success']);
  expect(result.cancelPathCutShort).toBeUndefined();
  expect(result.startedExecutions.map((e) => [e.executionId, e.status])).toEqual([[result.outputs['startRestore.RestoreExecutionId'], 'Success']]);
  expect(result.startedExecutions[0].steps.map((s) => `${s.name}:${s.status}`)).toEqual(['waitForExecutionEnded:Success', 'waitForLambdasStopped:Success', 'waitForInstanceSettled:Success', 'restore:Success', 'cleanup:Success']);
  await expectNothingLost(twin, before, [KEY_FILE]);
});

/**
 * P1-1. A cancel does not stop the Lambda function its step invoked
 * (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): the real launch-helper goes on
 * for its whole timeout (lib/functions.ts) and builds the network and the helper. The restore
 * runbook restores and cleans up only after that, so what it built is removed too.
 */
test('a cancel while launch-helper runs: its network and helper are built, then removed by the restore runbook', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result, callLog } = await twin.runReset(
    { InstanceId: instance.instanceId, KeyType: 'ed25519' },
    { cancelInFlight: { step: 'launchHelper', runsForSeconds: functionTimeoutSeconds('launch-helper') } },
  );

  expect(result.status).toBe('Cancelled');
  expect(result.inFlight?.map((f) => [f.step, f.error])).toEqual([['launchHelper', undefined]]);
  const child = result.startedExecutions[0];
  expect(child.steps.map((s) => `${s.name}:${s.status}`)).toEqual(['waitForExecutionEnded:Success', 'waitForLambdasStopped:Success', 'waitForInstanceSettled:Success', 'restore:Success', 'cleanup:Success']);
  // The in-flight Lambda launched the helper and made the VPC, and the restore runbook removed them.
  const apis = callLog.map((c) => c.action);
  expect(apis).toContain('RunInstances');
  expect(apis).toContain('CreateVpc');
  expect(apis.lastIndexOf('RunInstances')).toBeLessThan(apis.indexOf('TerminateInstances'));
  expect(apis).toContain('DeleteVpc');
  await expectNothingLost(twin, before, []);
});

/** The runbook with today's main's cancel design: every onCancel to the in-line restore. */
function withCancelToInlineRestore(): Record<string, unknown> {
  const doc = JSON.parse(JSON.stringify(twin.automationDocument)) as { mainSteps: Array<Record<string, unknown>> };
  for (const s of doc.mainSteps) if (s.onCancel === 'step:startRestore') s.onCancel = 'step:restore';
  return doc;
}

test.each(['waitForAttachedToHelper', 'injectKey'])(
  'with the cancel path of today\'s main (in-line restore and cleanup), a cancel at %s runs past the two minutes and is cut short',
  async (step) => {
    const instance = await twin.createLockedOutInstance({});

    const { result } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { cancelAt: step, document: withCancelToInlineRestore() });

    expect(result.status).toBe('Cancelled');
    expect(result.cancelPathCutShort).toBe(true);
    expect(result.startedExecutions).toEqual([]);
    // Automation stops the path at two minutes: whatever is still running then is on its own
    // (here cleanup, invoked in time, finishes in the twin; with restore at its budgets it is
    // never invoked: test/runner/runbook-shape.test.ts).
    const last = result.steps.at(-1);
    expect(last).toMatchObject({ status: 'Cancelled', failureMessage: expect.stringContaining('ran out of its 120 seconds') });
    expect((last?.endedAt ?? 0) - (result.steps.find((s) => s.name === step)?.startedAt ?? 0)).toBeGreaterThanOrEqual(120);
  },
);
