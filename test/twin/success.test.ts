/**
 * End to end on the twin: the synthesized runbook regains access for each key type and with the
 * user's own public key, with each SubnetId choice; the new key logs in; nothing else changed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  DescribeRouteTablesCommand,
  DescribeVpcsCommand,
} from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { InvalidAutomationExecutionParameters } from '../../local/runner/runner';
import { startTwin, Twin } from '../../local/twin';
import { LOST_PUBLIC_KEY } from '../../local/twin-disk';
import { baseline, expectNoKeyMaterial, expectNothingLost, summaryOf } from './support';

jest.setTimeout(240000);

let twin: Twin;
let scratch: string;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 600 });
  scratch = mkdtempSync(join(tmpdir(), 'twin-success-'));
  await routeDefaultVpcToInternet();
}, 600000);

/**
 * moto's default VPC has no internet route, and launch-helper refuses a chosen subnet that cannot
 * reach Systems Manager (issue 10, defect 3). The chosen-subnet tests run in a subnet that can: a
 * public subnet (MapPublicIpOnLaunch) whose route table sends 0.0.0.0/0 to an internet gateway.
 */
async function routeDefaultVpcToInternet(): Promise<void> {
  const vpc = (await twin.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }))).Vpcs?.[0]?.VpcId as string;
  const igw = (await twin.ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId as string;
  await twin.ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vpc }));
  const tables = await twin.ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: 'vpc-id', Values: [vpc] }] }));
  for (const t of tables.RouteTables ?? []) {
    await twin.ec2.send(new CreateRouteCommand({ RouteTableId: t.RouteTableId, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igw }));
  }
}

afterAll(async () => {
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
  await twin?.stop();
});

/** `ssh-keygen -l` of a private key: "<bits> SHA256:... comment (TYPE)". */
function fingerprintOf(privateKey: string): { fingerprint: string; type: string } {
  const file = join(scratch, `k-${Date.now()}`);
  writeFileSync(file, privateKey, { mode: 0o600 });
  try {
    const line = execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' }).trim();
    const [, , fingerprint, , type] = /^(\d+) (SHA256:\S+) (.*) \((\w+)\)$/.exec(line) ?? [];
    return { fingerprint: fingerprint ?? '', type: type ?? '' };
  } finally {
    rmSync(file, { force: true });
  }
}

async function loginWorks(imagePath: string, privateKey: string): Promise<boolean> {
  const sshd = await twin.disk.startSshd(imagePath);
  try {
    const r = await twin.disk.sshLogin({ port: sshd.port, user: 'ec2-user', privateKey, command: 'id -un' });
    return r.ok && r.stdout.trim() === 'ec2-user';
  } finally {
    await sshd.stop();
  }
}

test.each([
  ['rsa', 'CreateNewVPC', 'RSA'],
  ['ed25519', 'SelectedInstanceSubnet', 'ED25519'],
])('KeyType %s with SubnetId %s: the key is stored, it logs in, only authorized_keys changed', async (keyType, subnetId, sshType) => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: keyType, SubnetId: subnetId });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  const keyParameterName = summaryOf(result).KeyParameterName;
  expect(keyParameterName).toBe(`/ec2rl/openssh/${instance.instanceId}/key`);
  const privateKey = (await twin.getParameter(keyParameterName as string, true)) as string;
  // Never hand the key itself to expect(): a failure would print it.
  expect(/^-----BEGIN (OPENSSH|RSA) PRIVATE KEY-----\n/.test(privateKey)).toBe(true);
  const described = await twin.ssm.send(
    new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Name', Values: [keyParameterName as string] }] }),
  );
  expect(described.Parameters?.[0]).toMatchObject({ Type: 'SecureString', KeyId: twin.keyArn });
  expect(fingerprintOf(privateKey)).toEqual({ fingerprint: summaryOf(result).Fingerprint, type: sshType });
  expect(summaryOf(result).UsersChanged).toBe('ec2-user');
  expect(summaryOf(result).FilesChanged).toBe('/home/ec2-user/.ssh/authorized_keys');
  expect(summaryOf(result).BackupId).toMatch(/^snap-/);
  // The helper ran where it was asked to.
  expect(calls['ec2:CreateVpc'] ?? 0).toBe(subnetId === 'CreateNewVPC' ? 1 : 0);
  // The run's lock tag: put on the instance and root volume once, taken off each (issue 11).
  expect([calls['ec2:CreateTags'], calls['ec2:DeleteTags']]).toEqual([1, 2]);

  await expectNothingLost(twin, before, ['/home/ec2-user/.ssh/authorized_keys']);
  expect(await loginWorks(instance.imagePath as string, privateKey)).toBe(true);
  // The key never shows in the run's record, the command, or the Lambdas' logs.
  expectNoKeyMaterial([JSON.stringify(result), ...twin.lambdaLogs(), ...twin.agent.commands().map((c) => JSON.stringify(c))]);
});

test('a PublicKey of the user and a subnet id: no private key is made or stored, the user key logs in', async () => {
  const dir = mkdtempSync(join(scratch, 'user-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@laptop', '-f', join(dir, 'id')]);
  const publicKey = execFileSync('cat', [join(dir, 'id.pub')], { encoding: 'utf8' }).trim();
  const privateKey = execFileSync('cat', [join(dir, 'id')], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, PublicKey: publicKey, SubnetId: instance.subnetId });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  expect(summaryOf(result).KeyParameterName).toBe('none');
  expect(await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`)).toBeUndefined();
  expect(calls['ec2:CreateVpc'] ?? 0).toBe(0);
  expect(twin.agent.commands().at(-1)?.parameters.PublicKey).toBe(publicKey);
  await expectNothingLost(twin, before, ['/home/ec2-user/.ssh/authorized_keys']);
  expect(await loginWorks(instance.imagePath as string, privateKey)).toBe(true);
});

test('an RSA 4096 key (over the 512 characters of a parameter value): refused as PublicKey, taken through PublicKeyParameter, it logs in', async () => {
  const dir = mkdtempSync(join(scratch, 'rsa-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '4096', '-N', '', '-C', 'bob@laptop', '-f', join(dir, 'id')]);
  const publicKey = execFileSync('cat', [join(dir, 'id.pub')], { encoding: 'utf8' }).trim();
  const privateKey = execFileSync('cat', [join(dir, 'id')], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  expect(publicKey.length).toBeGreaterThan(512);
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);

  // StartAutomationExecution refuses the value (AutomationParameterValue: at most 512).
  await expect(twin.runReset({ InstanceId: instance.instanceId, PublicKey: publicKey })).rejects.toThrow(InvalidAutomationExecutionParameters);
  await twin.ssm.send(new PutParameterCommand({ Name: '/reset-access/public-keys/bob', Type: 'String', Value: publicKey }));
  const { result } = await twin.runReset({ InstanceId: instance.instanceId, PublicKeyParameter: '/reset-access/public-keys/bob' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  expect(summaryOf(result).KeyParameterName).toBe('none');
  expect(twin.agent.commands().at(-1)?.parameters.PublicKey).toBe(publicKey);
  await expectNothingLost(twin, before, ['/home/ec2-user/.ssh/authorized_keys']);
  expect(await loginWorks(instance.imagePath as string, privateKey)).toBe(true);
});

test('an instance that was stopped is reset and stays stopped; BackupMethod Image backs it up as an AMI', async () => {
  const instance = await twin.createLockedOutInstance({ state: 'stopped' });
  const before = await baseline(twin, instance, false);

  const { result, calls } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519', BackupMethod: 'Image' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  expect(summaryOf(result).BackupId).toMatch(/^ami-/);
  expect(calls['ec2:CreateImage']).toBe(1);
  expect(calls['ec2:StopInstances'] ?? 0).toBe(0);
  expect(calls['ec2:StartInstances'] ?? 0).toBe(0);
  expect(result.steps.map((s) => s.name)).not.toContain('waitForInstanceRunning');
  await expectNothingLost(twin, before);
});

test('a GPT disk with xfs root and a separate /home, two named users: both get the key, nothing else changes', async () => {
  const instance = await twin.createLockedOutInstance({
    image: {
      layout: 'gpt-xfs-home',
      users: [
        { name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: `${LOST_PUBLIC_KEY}\n` },
        { name: 'alice', uid: 1001, gid: 1001, authorizedKeys: null },
      ],
    },
  });
  const before = await baseline(twin, instance);

  const { result } = await twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519', Users: 'ec2-user,alice' });

  expect([result.status, result.failureMessage]).toEqual(['Success', undefined]);
  expect(String(summaryOf(result).UsersChanged).split(',').sort()).toEqual(['alice', 'ec2-user']);
  const files = String(summaryOf(result).FilesChanged).split(',').sort();
  expect(files).toEqual(['/home/alice/.ssh/authorized_keys', '/home/ec2-user/.ssh/authorized_keys']);
  // alice had no .ssh: the directory is new too.
  await expectNothingLost(twin, before, [...files, '/home/alice/.ssh', '/alice/.ssh', '/alice/.ssh/authorized_keys', '/ec2-user/.ssh/authorized_keys']);
});
