/**
 * RevokeKey under failure and cancel (issue 14, item 6: "fault tests as for ResetAccess"), in Revoke
 * mode. After each run the instance is as it was (its root volume at its device, its state, no
 * helper, network, lock or lock tag), the disk image is byte-identical outside the key file, and the
 * key file is either exactly as before or exactly the revoked file (the command writes atomically:
 * never half).
 *
 * - The fleet runbook (RevokeKey): a failure after every one of its steps (resolve, branchOnSelection,
 *   readGroup and resolveGroup with a resource group, fanOut, gather): gather still runs, removes the
 *   run's tags, spec and results, and reports every chosen instance; nothing of the run is left.
 * - RevokeKey-Instance: a failure after every step of the online path, and after the volume swap's
 *   steps where the revoke differs from ResetAccess (the revoke command sent, its report read, the
 *   per-instance report); the volume swap's other steps are ResetAccess's own functions and routing
 *   (runbooks/revoke-key-instance.yaml), which test/twin/faults.test.ts faults after each (the CI
 *   budget, common-wt.md, does not pay for them twice); and a cancel.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTagsCommand, DeleteTagsCommand, DescribeTagsCommand } from '@aws-sdk/client-ec2';
import type { ImageSpec } from '../../local/disk/images';
import { startTwin, Twin } from '../../local/twin';
import { fingerprintsOf as oracle, imageFile, opensshKey, twinCli } from './aws-cli';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(300000);

const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';
let twin: Twin;
let scratch: string;
let revokeInstance: Record<string, unknown>;
let leaked: { line: string; fingerprint: string };
let other: string;

const key = (type: 'ed25519' | 'rsa', name: string) => opensshKey(scratch, type, name);
const keyFileOf = (imagePath: string): string => imageFile(imagePath, KEY_FILE);
/** The fingerprints ssh-keygen -l attributes to a file's lines (the oracle). */
const fingerprintsOf = (content: string): string[] => oracle(scratch, content);
const cli = twinCli(() => twin, () => scratch);

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'revoke-faults-'));
  leaked = key('ed25519', 'leaked');
  other = key('ed25519', 'other').line;
  twin = await startTwin({ maxLifetimeSeconds: 900, transitions: 'settle' });
  revokeInstance = twin.automationDocuments['RevokeKey-Instance'] as Record<string, unknown>;
}, 600000);

afterAll(async () => {
  await twin?.stop();
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
});

const IMAGE = (): ImageSpec => ({ layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${other}\n${leaked.line}\n` }], cloudInitDefaultUser: 'ec2-user' });

/** The key file is as before, or exactly the revoked one (the leaked line gone, the other kept). */
function expectBeforeOrRevoked(content: string): void {
  const before = `${other}\n${leaked.line}\n`;
  if (content === before) return;
  expect(content).toBe(`${other}\n`);
  expect(fingerprintsOf(content)).not.toContain(leaked.fingerprint);
}

test.each<[string, 'swap' | 'online', string]>([
  ['the revoke command sent to the helper', 'swap', 'injectKey'],
  ['its report read and the volume released', 'swap', 'releaseFromHelper'],
  ['the per-instance report (volume swap)', 'swap', 'report'],
  ['the method chosen (online)', 'online', 'branchOnMethod'],
  ['the online backup', 'online', 'backupOnline'],
  ['the revoke command on the instance itself', 'online', 'injectKeyOnline'],
  ['the wait for the online command', 'online', 'waitForOnlineInjection'],
  ['the online command\'s report read', 'online', 'reportOnline'],
  ['the per-instance report (online)', 'online', 'report'],
  ['the cleanup (online)', 'online', 'cleanup'],
])('a failure after %s is restored: nothing lost, the key file before or fully revoked', async (_what, path, step) => {
  // Prepare
  const instance = await twin.createLockedOutInstance({ image: IMAGE(), ...(path === 'swap' ? { state: 'stopped' } : { managed: {} }) });
  const before = await baseline(twin, instance);
  // Act
  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, Fingerprints: leaked.fingerprint, Mode: 'Revoke' },
    { document: revokeInstance, faults: [{ step, when: 'after', message: 'injected by the test' }] },
  );
  // Assess
  expect(result.status).toBe('Failed');
  expect(result.steps.map((s) => `${s.name}:${s.status}`)).toContain(`${step}:Failed`);
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
  await expectNothingLost(twin, before, [KEY_FILE]);
  expectBeforeOrRevoked(keyFileOf(instance.imagePath as string));
});

test('a cancel while the revoke command runs on the helper: the restore runbook converges, nothing lost', async () => {
  // Prepare
  const instance = await twin.createLockedOutInstance({ image: IMAGE(), state: 'stopped' });
  const before = await baseline(twin, instance);
  // Act
  const { result } = await twin.runReset({ InstanceId: instance.instanceId, Fingerprints: leaked.fingerprint, Mode: 'Revoke' }, { document: revokeInstance, cancelAt: 'waitForInjection' });
  // Assess
  expect(result.status).toBe('Cancelled');
  expect(result.steps.map((s) => `${s.name}:${s.status}`).slice(-2)).toEqual(['waitForInjection:Cancelled', 'startRestore:Success']);
  expect(result.startedExecutions.map((e) => e.status)).toEqual(['Success']);
  await expectNothingLost(twin, before, [KEY_FILE]);
  expectBeforeOrRevoked(keyFileOf(instance.imagePath as string));
});

test('an audit that fails after its command ran changes not a byte of the disk', async () => {
  // Prepare
  const instance = await twin.createLockedOutInstance({ image: IMAGE(), state: 'stopped' });
  const before = await baseline(twin, instance);
  // Act
  const { result } = await twin.runReset(
    { InstanceId: instance.instanceId, Fingerprints: leaked.fingerprint, Mode: 'Audit' },
    { document: revokeInstance, faults: [{ step: 'releaseFromHelper', when: 'after', message: 'injected by the test' }] },
  );
  // Assess
  expect(result.status).toBe('Failed');
  await expectNothingLost(twin, before, []);
});

/**
 * The fleet runbook: a failure after each of its steps. Every failure (and cancel) of a step before
 * gather routes to gather (runbooks/revoke-key-fleet.yaml), which removes what the run wrote; a
 * failure after gather itself is retried (maxAttempts 2), and the retry answers the report the first
 * attempt wrote. One managed instance (the online method: the cheapest child) per run.
 */
describe('RevokeKey (the fleet): a failure after each step', () => {
  const fleetDoc = (): Record<string, unknown> => twin.automationDocuments.RevokeKey as Record<string, unknown>;
  const GROUP = 'revoke-faults';

  beforeAll(async () => {
    // A tag-based group for the readGroup and resolveGroup cases (Resource Groups' CreateGroup, served by moto).
    const query = JSON.stringify({ ResourceTypeFilters: ['AWS::EC2::Instance'], TagFilters: [{ Key: 'revoke-faults', Values: ['yes'] }] });
    await cli.json('resource-groups', 'create-group', '--name', GROUP, '--resource-query', JSON.stringify({ Type: 'TAG_FILTERS_1_0', Query: query }));
  });

  test.each<[string, boolean, string]>([
    ['resolve', false, 'Failed'],
    ['branchOnSelection', false, 'Failed'],
    ['readGroup', true, 'Failed'],
    ['resolveGroup', true, 'Failed'],
    ['fanOut', false, 'Failed'],
    ['gather', false, 'Success'],
  ])('after %s: gather removes the run\'s tags, spec and results; nothing lost, nothing locked', async (step, byGroup, status) => {
    // Prepare
    const instance = await twin.createLockedOutInstance({ image: IMAGE(), managed: {} });
    if (byGroup) await twin.ec2.send(new CreateTagsCommand({ Resources: [instance.instanceId], Tags: [{ Key: 'revoke-faults', Value: 'yes' }] }));
    const before = await baseline(twin, instance);
    const executionId = randomUUID();
    const selection = byGroup ? { ResourceGroupName: GROUP } : { InstanceIds: instance.instanceId };
    try {
      // Act
      const { result } = await twin.runReset(
        { ...selection, Fingerprints: leaked.fingerprint, Mode: 'Revoke' },
        // gather: its first attempt fails after it ran; the step's second attempt (maxAttempts 2) follows.
        { document: fleetDoc(), executionId, faults: [{ step, when: 'after', message: 'injected by the test', ...(step === 'gather' ? { times: 1 } : {}) }] },
      );
      // Assess
      expect(result.status).toBe(status);
      const steps = result.steps.map((x) => `${x.name}:${x.status}`);
      expect(steps).toContain(step === 'gather' ? 'gather:Success' : `${step}:Failed`);
      expect(steps.at(-1)).toBe('gather:Success');
      await expectNothingLost(twin, before, [KEY_FILE]);
      expectBeforeOrRevoked(keyFileOf(instance.imagePath as string));
      // The fleet report names the instance: cleaned when its run ended before the failure, else failed;
      // before resolveGroup (readGroup) nothing was chosen or written, and there is no report.
      const text = await twin.getParameter(`/reset-access/revoke/${executionId}/report`);
      if (step === 'readGroup') expect(text).toBeUndefined();
      else {
        const report = JSON.parse(text ?? '{}') as { instances: Array<{ instanceId: string; outcome: string }> };
        expect(report.instances).toEqual([expect.objectContaining({ instanceId: instance.instanceId, outcome: ['fanOut', 'gather'].includes(step) ? 'cleaned' : 'failed' })]);
      }
      for (const name of ['spec', `results/${instance.instanceId}`]) expect(await twin.getParameter(`/reset-access/revoke/${executionId}/${name}`)).toBeUndefined();
      const tags = await twin.ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['reset-access:revoke-run'] }, { Name: 'resource-id', Values: [instance.instanceId] }] }));
      expect(tags.Tags ?? []).toEqual([]);
    } finally {
      // The group selects by tag: the next case's instance only.
      if (byGroup) await twin.ec2.send(new DeleteTagsCommand({ Resources: [instance.instanceId], Tags: [{ Key: 'revoke-faults' }] }));
    }
  });
});
