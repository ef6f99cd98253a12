/**
 * Method=UserData end to end on the twin: the synthesized runbook stops the instance, sets our user
 * data, starts it; the twin boots the real cloud-init over the instance's disk image
 * (local/user-data-twin.ts); the run reads the instance's report from GetConsoleOutput, stops it,
 * puts the original user data back byte for byte and starts it as it was. A real ssh login with
 * the new key follows. A fault after the user data steps leaves the instance as it was.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeInstanceAttributeCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { startTwin, Twin } from '../../local/twin';
import { expectNoKeyMaterial } from './support';

jest.setTimeout(300000);

let twin: Twin;
let scratch: string;
const ORIGINAL = Buffer.from('#!/bin/bash\necho "original user data: db password hunter2" > /var/tmp/app-config\n');

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 900 });
  scratch = mkdtempSync(join(tmpdir(), 'twin-userdata-'));
}, 600000);

afterAll(async () => {
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
  await twin?.stop();
});

async function userDataOf(instanceId: string): Promise<string> {
  const out = await twin.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }));
  return out.UserData?.Value ?? '';
}

async function stateOf(instanceId: string): Promise<string> {
  const out = await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name ?? '';
}

/** Changes on the disk image outside cloud-init's own state and the key file. */
async function changedOutside(imagePath: string, before: Awaited<ReturnType<Twin['disk']['snapshotImage']>>): Promise<string[]> {
  const after = await twin.disk.snapshotImage(imagePath);
  return twin.disk
    .diffImage(before, after)
    .map((d) => d.key)
    // (/var/lib itself: cloud-init makes /var/lib/cloud there on the twin's images, which have
    // never booted; a real instance has it from its first boot.)
    .filter((k) => !k.includes('/var/lib/cloud') && !k.endsWith(':/var/lib') && !k.includes('/home/ec2-user/.ssh'));
}

test('Method=UserData: the key added at boot by cloud-init, confirmed from the console, the original user data back byte for byte; ssh logs in', async () => {
  const instance = await twin.createLockedOutInstance({ userData: ORIGINAL });
  const imageBefore = await twin.disk.snapshotImage(instance.imagePath as string);
  const originalBase64 = await userDataOf(instance.instanceId);
  expect(Buffer.from(originalBase64, 'base64').equals(ORIGINAL)).toBe(true);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, Method: 'UserData', KeyType: 'ed25519' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const summary = JSON.parse(String(result.outputs['summarizeUserData.Payload'])) as Record<string, string>;
  expect(summary).toMatchObject({ Method: 'UserData', UsersChanged: 'ec2-user', FilesChanged: '/home/ec2-user/.ssh/authorized_keys' });
  // Two starts, one StopInstances: the boot program powered the instance off after its report
  // (review U5), and restoreUserData's ModifyInstanceAttribute is refused on anything not stopped.
  expect([calls['ec2:StopInstances'], calls['ec2:StartInstances']]).toEqual([1, 2]);
  // The original user data back, byte for byte; the saved copy gone; the instance running.
  expect(await userDataOf(instance.instanceId)).toBe(originalBase64);
  expect(await twin.getParameter(`/reset-access/user-data/${instance.instanceId}`)).toBeUndefined();
  expect(await stateOf(instance.instanceId)).toBe('running');
  // The disk: only the key file and cloud-init's own state changed.
  expect(await changedOutside(instance.imagePath as string, imageBefore)).toEqual([]);
  // A real login with the new key.
  const privateKey = (await twin.getParameter(summary.KeyParameterName, true)) as string;
  const sshd = await twin.disk.startSshd(instance.imagePath as string);
  try {
    const login = await twin.disk.sshLogin({ port: sshd.port, user: 'ec2-user', privateKey, command: 'id -un' });
    expect([login.ok, login.stdout.trim()]).toEqual([true, 'ec2-user']);
  } finally {
    await sshd.stop();
  }
  const keyFile = join(scratch, 'k');
  writeFileSync(keyFile, privateKey, { mode: 0o600 });
  expect(execFileSync('ssh-keygen', ['-l', '-f', keyFile], { encoding: 'utf8' })).toContain(summary.Fingerprint);
  expectNoKeyMaterial([JSON.stringify(result), ...twin.lambdaLogs()]);
});

/** Every step of the UserData path but the branch (a fault there is a failure of the branch itself). */
const USER_DATA_STEPS = [
  'saveUserData',
  'backupUserData',
  'stopForUserData',
  'waitStoppedForUserData',
  'setUserData',
  'confirmUserData',
  'stopAfterUserData',
  'waitStoppedAfterUserData',
  'restoreUserData',
  'startAfterUserData',
  'describeStateAfterUserData',
  'waitRunningAfterUserData',
  'cleanupUserData',
];

test('the steps under fault are every step of the synthesized UserData path but its branch and summary', () => {
  const names = (twin.automationDocument.mainSteps as Array<{ name: string }>).map((s) => s.name);
  expect(names.filter((n) => n.includes('UserData') && !['branchOnStateAfterUserData', 'summarizeUserData'].includes(n))).toEqual(USER_DATA_STEPS);
});

test.each(USER_DATA_STEPS)(
  'a failure at %s (after its action ran) is restored: the original user data back, the instance running, nothing else changed',
  async (step) => {
    const instance = await twin.createLockedOutInstance({ userData: ORIGINAL });
    const imageBefore = await twin.disk.snapshotImage(instance.imagePath as string);
    const originalBase64 = await userDataOf(instance.instanceId);

    const { result } = await twin.runReset(
      { InstanceId: instance.instanceId, Method: 'UserData', KeyType: 'ed25519' },
      { faults: [{ step, when: 'after', message: 'injected by the test' }] },
    );

    expect(result.status).toBe('Failed');
    const ran = result.steps.map((s) => `${s.name}:${s.status}`);
    expect(ran).toContain(`${step}:Failed`);
    expect(ran.slice(-2)).toEqual(['restore:Success', 'cleanupAfterRestore:Success']);
    expect(await userDataOf(instance.instanceId)).toBe(originalBase64);
    expect(await twin.getParameter(`/reset-access/user-data/${instance.instanceId}`)).toBeUndefined();
    expect(await stateOf(instance.instanceId)).toBe('running');
    expect(await changedOutside(instance.imagePath as string, imageBefore)).toEqual([]);
  },
);
