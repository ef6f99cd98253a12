/**
 * RevokeKey-Instance under failure and cancel (issue 14, item 6: "fault tests as for ResetAccess"):
 * a failure after representative steps of each path, and a cancel, in Revoke mode. After each run
 * the instance is as it was (its root volume at its device, its state, no helper, network, lock or
 * lock tag), the disk image is byte-identical outside the key file, and the key file is either
 * exactly as before or exactly the revoked file (the command writes atomically: never half).
 *
 * Representative steps rather than every one (the CI budget, common-wt.md): every step of both
 * paths is ResetAccess's own function and routing (runbooks/revoke-key-instance.yaml), which
 * test/twin/faults.test.ts and online-faults.test.ts fault after each; here the steps where the
 * revoke differs (the revoke command sent, its report read, the per-instance report) and a cancel.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImageSpec } from '../../local/disk/images';
import { startTwin, Twin } from '../../local/twin';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(300000);

const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';
let twin: Twin;
let scratch: string;
let revokeInstance: Record<string, unknown>;
let leaked: { line: string; fingerprint: string };
let other: string;

function key(type: string, name: string): { line: string; fingerprint: string } {
  const file = join(scratch, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', file]);
  return {
    line: readFileSync(`${file}.pub`, 'utf8').trim(),
    fingerprint: execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1],
  };
}

function keyFileOf(imagePath: string): string {
  return execFileSync('debugfs', ['-R', `cat ${KEY_FILE}`, imagePath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** The fingerprints ssh-keygen -l attributes to a file's lines (the oracle). */
function fingerprintsOf(content: string): string[] {
  const f = join(scratch, 'probe');
  writeFileSync(f, content);
  try {
    return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.split(' ')[1]);
  } catch {
    return [];
  }
}

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
  ['the revoke command on the instance itself', 'online', 'injectKeyOnline'],
  ['the per-instance report (online)', 'online', 'report'],
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
