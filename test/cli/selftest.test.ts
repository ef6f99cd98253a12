/**
 * The self-test (issue 16) against the twin's endpoint, the CLI's own entry (main) with the
 * twin's clients: for every method, a throwaway AL2023 instance launched from the public
 * parameter's AMI, ResetAccess on it, a real ssh login to a real sshd over its root image, then
 * nothing tagged with the run id left (read from moto directly, not from the CLI's report). A
 * fault at each of the self-test's own steps: still nothing left, and a fault in a delete is named.
 * Anything the self-test did not create (an untagged look-alike, another run's instance) is left
 * alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { main } from '../../cli/main';
import type { SelftestIo } from '../../cli/commands/selftest';
import type { SelftestReport } from '../../cli/selftest/report';
import { SELFTEST_TAG_KEY, iamName } from '../../cli/selftest/resources';
import { enableSelftestInstances, type SelftestTwin } from '../../local/selftest-twin';
import { LINUX_AMI, REGION, startTwin, type Twin } from '../../local/twin';

jest.setTimeout(900000);

let twin: Twin;
let st: SelftestTwin;
let scratch: string;
let motoIam: IAMClient;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 1500, transitions: 'settle', awsManagedPolicies: true });
  st = await enableSelftestInstances(twin);
  scratch = mkdtempSync(join(tmpdir(), 'selftest-'));
  motoIam = new IAMClient({ endpoint: twin.moto.endpoint, region: REGION, credentials: { accessKeyId: 'twin', secretAccessKey: 'twin' } });
}, 600000);

afterAll(async () => {
  motoIam?.destroy();
  await st?.stop();
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
  await twin?.stop();
});

interface Run {
  code: number;
  out: string;
  err: string;
  report: SelftestReport;
  home: string;
}

/** The CLI's main() with an Io on the twin: its clients on the agent's endpoint, ssh routed to sshd over the image. */
async function selftest(args: string[], hooks: Partial<SelftestIo> = {}): Promise<Run> {
  const home = mkdtempSync(join(scratch, 'home-'));
  const out: string[] = [];
  const err: string[] = [];
  const config = { endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'twin-cli', secretAccessKey: 'twin-cli' } };
  const made: { destroy(): void }[] = [];
  const io: SelftestIo = {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    stdinIsTTY: false,
    renderer: 'silent',
    confirm: async () => false,
    home,
    clients: () => {
      const c = { ssm: new SSMClient(config), ec2: new EC2Client(config) };
      made.push(c.ssm, c.ec2);
      return c;
    },
    pollMs: 20,
    now: Date.now,
    iam: () => st.iam(),
    // A documentation address (RFC 5737): what checkip.amazonaws.com would answer.
    callerAddress: async () => '203.0.113.7',
    sshRoute: (instance) => st.sshRoute(instance),
    ...hooks,
  };
  try {
    const code = await main(['selftest', '--document-name', twin.documentName, ...args], io);
    const text = out.join('');
    const last = text.trim().split('\n').pop() ?? '{}';
    return { code, out: text, err: err.join(''), report: JSON.parse(last) as SelftestReport, home };
  } finally {
    made.forEach((c) => c.destroy());
  }
}

/** Everything in moto that carries the run's tag (and is not terminated), the IAM names, the runbook's leftovers. */
async function leftBehind(runId: string): Promise<string[]> {
  const ec2 = twin.ec2;
  const f = [{ Name: `tag:${SELFTEST_TAG_KEY}`, Values: [runId] }];
  const left: string[] = [];
  const inst = await ec2.send(new DescribeInstancesCommand({ Filters: [...f, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] }] }));
  for (const r of inst.Reservations ?? []) for (const i of r.Instances ?? []) left.push(`instance ${i.InstanceId}`);
  for (const g of (await ec2.send(new DescribeSecurityGroupsCommand({ Filters: f }))).SecurityGroups ?? []) left.push(`sg ${g.GroupId}`);
  for (const s of (await ec2.send(new DescribeSubnetsCommand({ Filters: f }))).Subnets ?? []) left.push(`subnet ${s.SubnetId}`);
  for (const t of (await ec2.send(new DescribeRouteTablesCommand({ Filters: f }))).RouteTables ?? []) left.push(`rtb ${t.RouteTableId}`);
  for (const g of (await ec2.send(new DescribeInternetGatewaysCommand({ Filters: f }))).InternetGateways ?? []) left.push(`igw ${g.InternetGatewayId}`);
  for (const v of (await ec2.send(new DescribeVpcsCommand({ Filters: f }))).Vpcs ?? []) left.push(`vpc ${v.VpcId}`);
  for (const [what, call] of [
    ['role', () => motoIam.send(new GetRoleCommand({ RoleName: iamName(runId) }))],
    ['instance profile', () => motoIam.send(new GetInstanceProfileCommand({ InstanceProfileName: iamName(runId) }))],
  ] as const) {
    const found = await call().then(
      () => true,
      (e: Error) => (e.name === 'NoSuchEntity' || e.name === 'NoSuchEntityException' ? false : Promise.reject(e)),
    );
    if (found) left.push(`${what} ${iamName(runId)}`);
  }
  // The runbook's backups of the run's instances, and its helpers and networks.
  const ids = (await ec2.send(new DescribeInstancesCommand({ Filters: f }))).Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId as string) ?? [];
  for (const id of ids) {
    const bf = [{ Name: 'tag:reset-access:instance-id', Values: [id] }, { Name: 'tag:reset-access:role', Values: ['backup'] }];
    for (const s of (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: bf }))).Snapshots ?? []) left.push(`snapshot ${s.SnapshotId}`);
    for (const i of (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: bf }))).Images ?? []) left.push(`image ${i.ImageId}`);
    const lo = await twin.leftovers(id);
    for (const [k, v] of Object.entries(lo)) for (const x of v) left.push(`runbook ${k} ${x}`);
    if ((await twin.getParameter(`/ec2rl/openssh/${id}/key`)) !== undefined) left.push(`key parameter of ${id}`);
  }
  return left;
}

test('VolumeSwap end to end: launched from the public AL2023 parameter, reset, a real ssh login with the new key, nothing tagged left', async () => {
  const r = await selftest(['--yes', '--json', '--method', 'VolumeSwap']);
  expect([r.code, r.err, r.report.failure, r.report.cleanup.notRemoved]).toEqual([0, '', null, []]);
  const rep = r.report;
  expect(rep.ok).toBe(true);
  expect(rep.methodChosen).toBe('VolumeSwap');
  expect(rep.instanceType).toBe('t3.micro');
  // The instance really was the twin's AL2023 one (its image made from the public parameter's AMI).
  expect(st.instances.has(rep.instanceId as string)).toBe(true);
  const launched = (await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [rep.instanceId as string] }))).Reservations?.[0]?.Instances?.[0];
  expect(launched?.ImageId).toBe(LINUX_AMI);
  expect(launched?.KeyName).toBeUndefined();
  expect(rep.accessCheck).toMatchObject({ kind: 'ssh', ok: true });
  expect(rep.run?.accessStep).toBe('waitForInstanceRunning');
  expect(rep.run?.steps.map((s) => s.name)).toEqual(expect.arrayContaining(['preflight', 'injectKey', 'waitForInstanceRunning', 'summarize']));
  expect(rep.timeToAccessSeconds).toBeGreaterThan(0);
  expect(rep.cleanup.notRemoved).toEqual([]);
  expect(rep.cleanup.removed.map((m) => m.kind)).toEqual(expect.arrayContaining(['instance', 'security-group', 'subnet', 'route-table', 'internet-gateway', 'vpc', 'backup-snapshot', 'key-file']));
  expect(await leftBehind(rep.runId)).toEqual([]);
});

/** The keys of one method's run in the committed benchmark result: the shape --json must match. */
function benchRunShape(): { run: string[]; step: string[]; apiCalls: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const latest = require('../../bench/results/latest.json') as { ours: { low: Record<string, unknown> & { steps: Record<string, unknown>[] } }; apiCallsPerReset: Record<string, unknown> };
  return { run: Object.keys(latest.ours.low).sort(), step: Object.keys(latest.ours.low.steps[0] ?? {}).sort(), apiCalls: Object.keys(latest.apiCallsPerReset).sort() };
}

test('Online, with its instance profile: the agent registers only then; the run in the benchmark\'s shape; the role and profile removed', async () => {
  const r = await selftest(['--yes', '--json', '--method', 'Online']);
  expect([r.code, r.err, r.report.failure, r.report.cleanup.notRemoved]).toEqual([0, '', null, []]);
  const rep = r.report;
  expect(rep.methodChosen).toBe('Online');
  expect(st.instances.get(rep.instanceId as string)?.managed).toBe(true);
  expect(rep.phases.map((p) => p.phase)).toEqual(['network', 'security-group', 'instance-profile', 'launch', 'wait-running', 'wait-online', 'reset', 'access', 'cleanup']);
  expect(rep.run?.accessStep).toBe('waitForOnlineInjection');
  expect(rep.accessCheck).toMatchObject({ kind: 'ssh', ok: true });
  const shape = benchRunShape();
  expect(Object.keys(rep.run ?? {}).sort()).toEqual(shape.run);
  expect(Object.keys(rep.run?.steps[0] ?? {}).sort()).toEqual(shape.step);
  expect(Object.keys(rep.apiCalls).sort()).toEqual(shape.apiCalls);
  expect(rep.apiCalls.byAction['ec2:RunInstances']).toBe(1);
  expect(rep.cleanup.removed.map((m) => m.kind)).toEqual(expect.arrayContaining(['instance-profile', 'role']));
  expect(await leftBehind(rep.runId)).toEqual([]);
});

test('UserData with --keep: everything left and the command to remove it printed; --cleanup <run-id> then removes it all', async () => {
  const r = await selftest(['--yes', '--json', '--method', 'UserData', '--keep']);
  expect([r.code, r.err, r.report.failure]).toEqual([0, '', null]);
  const rep = r.report;
  expect(rep.methodChosen).toBe('UserData');
  expect(rep.run?.accessStep).toBe('waitRunningAfterUserData');
  expect(rep.accessCheck).toMatchObject({ kind: 'ssh', ok: true });
  expect(rep.cleanup).toMatchObject({ kept: true, removed: [] });
  expect(rep.cleanup.howToRemove).toBe(`ec2-reset-access selftest --cleanup ${rep.runId} --yes --region us-east-1`);
  const kept = await leftBehind(rep.runId);
  expect(kept).toEqual(expect.arrayContaining([`instance ${rep.instanceId}`, expect.stringMatching(/^vpc /), expect.stringMatching(/^sg /), expect.stringMatching(/^snapshot /)]));
  const c = await selftest(['--cleanup', rep.runId, '--yes', '--json']);
  expect([c.code, c.err]).toEqual([0, '']);
  expect(await leftBehind(rep.runId)).toEqual([]);
});
