/**
 * The self-test (issue 16) against the twin's endpoint, the CLI's own entry (main) with the
 * twin's clients: for every method, a throwaway AL2023 instance launched from the public
 * parameter's AMI, ResetAccess on it, a real ssh login to a real sshd over its root image, then
 * nothing tagged with the run id left (read from moto directly, not from the CLI's report). A
 * fault at each of the self-test's own steps: still nothing left, and a fault in a delete is named.
 * Anything the self-test did not create (an untagged look-alike, another run's instance) is left
 * alone.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
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
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { SSMClient } from '@aws-sdk/client-ssm';
import { main } from '../../cli/main';
import type { SelftestIo } from '../../cli/commands/selftest';
import type { SelftestReport } from '../../cli/selftest/report';
import { Ledger, SELFTEST_TAG_KEY, cleanup, iamName } from '../../cli/selftest/resources';
import { enableSelftestInstances, type SelftestTwin } from '../../local/selftest-twin';
import { LINUX_AMI, REGION, startTwin, type Twin } from '../../local/twin';
import type { AwsFault } from '../../local/agent';

jest.setTimeout(900000);

const run = promisify(execFile);
const BIN = join(__dirname, '..', '..', 'cli', 'ec2-reset-access.cjs');

let twin: Twin;
let st: SelftestTwin;
let scratch: string;
let motoIam: IAMClient;

/**
 * `npm run build:cli` as package.json writes it, but into a private file renamed over
 * cli/dist/main.cjs: esbuild rewrites its outfile in place (truncate, then write), and another jest
 * worker may be starting the built CLI at that moment; a rename replaces the file atomically
 * (rename(2)), so a reader sees the old bundle or the new one, never half of one.
 */
function buildCliAtomically(): void {
  const root = join(__dirname, '..', '..');
  const script = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['build:cli'] as string;
  const outfile = '--outfile=cli/dist/main.cjs';
  expect(script.split(' ')).toContain(outfile);
  const tmp = `cli/dist/.main-${process.pid}.cjs`;
  const [cmd, ...args] = script.replace(outfile, `--outfile=${tmp}`).split(' ');
  try {
    execFileSync(join(root, 'node_modules', '.bin', cmd as string), args, { cwd: root, stdio: 'pipe' });
    renameSync(join(root, tmp), join(root, 'cli', 'dist', 'main.cjs'));
  } finally {
    rmSync(join(root, tmp), { force: true });
  }
}

beforeAll(async () => {
  buildCliAtomically();
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
  const home = hooks.home ?? mkdtempSync(join(scratch, 'home-'));
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
    // No key material ever reaches the output.
    expect(`${text}${err.join('')}`).not.toMatch(/PRIVATE KEY|BEGIN OPENSSH/);
    const last = text.trim().split('\n').pop() ?? '{}';
    return { code, out: text, err: err.join(''), report: (args.includes('--json') ? JSON.parse(last) : {}) as SelftestReport, home };
  } finally {
    made.forEach((c) => c.destroy());
  }
}

/** The child CLI's environment: the twin's endpoint (AWS_ENDPOINT_URL, which SDK v3 honours), fixed credentials, its own home. */
function childEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    AWS_ENDPOINT_URL: twin.agent.endpoint,
    AWS_ACCESS_KEY_ID: 'twin-cli',
    AWS_SECRET_ACCESS_KEY: 'twin-cli',
    AWS_REGION: REGION,
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    EC2_RESET_ACCESS_POLL_MS: '20',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
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

test('Online, with its instance profile, a fault at the access check and in two deletes: the report names exactly what it could not remove, --cleanup <run-id> removes it; the run in the benchmark\'s shape', async () => {
  // The access check fails (the route to the instance cannot be made), and once the reset is
  // done, the next DeleteVpc and DeleteRole fail: armed then, so only the self-test's own calls meet them.
  const r = await selftest(['--yes', '--json', '--method', 'Online'], {
    sshRoute: async () => {
      twin.agent.injectFault({ service: 'ec2', action: 'DeleteVpc' });
      twin.agent.injectFault({ service: 'iam', action: 'DeleteRole' });
      throw new Error('no route to the instance (fault injected)');
    },
  });
  const rep = r.report;
  expect(r.code).toBe(1);
  expect(rep.ok).toBe(false);
  expect(rep.failure).toEqual({ phase: 'access', message: 'Error: no route to the instance (fault injected)' });
  expect(rep.methodChosen).toBe('Online');
  expect(st.instances.get(rep.instanceId as string)?.managed).toBe(true);
  expect(rep.phases.map((p) => `${p.phase} ${p.status}`)).toEqual([
    'network ok', 'security-group ok', 'instance-profile ok', 'launch ok', 'wait-running ok', 'wait-online ok', 'reset ok', 'access failed', 'cleanup failed',
  ]);
  expect(rep.run?.accessStep).toBe('waitForOnlineInjection');
  expect(rep.run?.status).toBe('Success');
  const vpc = (await twin.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: `tag:${SELFTEST_TAG_KEY}`, Values: [rep.runId] }] }))).Vpcs?.[0]?.VpcId;
  expect(rep.cleanup.notRemoved.map((n) => `${n.kind} ${n.id} ${n.why.split(':')[0]}`).sort()).toEqual(
    [`role ${iamName(rep.runId)} TwinInjectedFault`, `vpc ${vpc} TwinInjectedFault`].sort(),
  );
  expect(r.err).toMatch(/failed at access; 2 resource\(s\) not removed/);
  expect(rep.failedOrRetried['ec2:DeleteVpc']).toMatchObject({ calls: 1, failed: 1, errors: ['TwinInjectedFault'] });
  expect(rep.cleanup.removed.map((m) => m.kind)).toEqual(expect.arrayContaining(['instance', 'security-group', 'subnet', 'instance-profile', 'key-file']));
  expect(await leftBehind(rep.runId)).toEqual([`vpc ${vpc}`, `role ${iamName(rep.runId)}`]);
  const shape = benchRunShape();
  expect(Object.keys(rep.run ?? {}).sort()).toEqual(shape.run);
  expect(Object.keys(rep.run?.steps[0] ?? {}).sort()).toEqual(shape.step);
  expect(Object.keys(rep.apiCalls).sort()).toEqual(shape.apiCalls);

  const c = await selftest(['--cleanup', rep.runId, '--yes', '--json']);
  expect([c.code, c.err]).toEqual([0, '']);
  expect((JSON.parse(c.out) as { cleanup: { removed: { kind: string }[] } }).cleanup.removed.map((m) => m.kind).sort()).toEqual(['role', 'vpc']);
  expect(await leftBehind(rep.runId)).toEqual([]);
});

test('UserData with --keep, as a person reads it: each step with its time, the access proven, everything left and the command that removes it; --cleanup <run-id> then removes it all', async () => {
  const r = await selftest(['--yes', '--method', 'UserData', '--keep']);
  expect([r.code, r.err]).toEqual([0, '']);
  const runId = /^Self-test ([0-9a-f]{12}) in us-east-1: PASSED$/m.exec(r.out)?.[1] as string;
  expect(runId).toMatch(/^[0-9a-f]{12}$/);
  // What it would create and cost, before it did.
  expect(r.out.indexOf('one t3.micro instance')).toBeLessThan(r.out.indexOf('  network ok'));
  expect(r.out).toMatch(/method asked UserData, chosen UserData/);
  expect(r.out).toMatch(/^ {4}setUserData +\d+\.\d s {2}aws:invokeLambdaFunction Success$/m);
  expect(r.out).toMatch(/^ {4}waitRunningAfterUserData +\d+\.\d s .*\(access\)$/m);
  expect(r.out).toMatch(/access check: ssh \(ssh from 203\.0\.113\.7, the only address the security group lets in\): ok/);
  expect(r.out).toMatch(/time to access \(execution start to the first successful check\): \d+\.\d s/);
  expect(r.out).toContain(`kept for inspection (--keep): ec2-reset-access selftest --cleanup ${runId} --yes --region us-east-1`);
  const kept = await leftBehind(runId);
  expect(kept).toEqual(expect.arrayContaining([expect.stringMatching(/^instance i-/), expect.stringMatching(/^vpc /), expect.stringMatching(/^sg /), expect.stringMatching(/^snapshot /)]));
  const keyFile = join(r.home, '.ssh', `reset-access-${/instance (i-[0-9a-f]+) /.exec(r.out)?.[1]}`);
  expect(existsSync(keyFile)).toBe(true);
  const c = await selftest(['--cleanup', runId, '--yes'], { home: r.home });
  expect(existsSync(keyFile)).toBe(false);
  expect([c.code, c.err]).toEqual([0, '']);
  expect(c.out).toMatch(new RegExp(`^Cleanup of self-test ${runId}: removed instance i-[0-9a-f]+, `));
  expect(c.out).toMatch(/, backup-snapshot snap-[0-9a-f]+, .*, vpc vpc-[0-9a-f]+$/m);
  expect(await leftBehind(runId)).toEqual([]);
});

test('Auto, the built CLI in a child process, --check run-command: Run Command proves the key is in the file sshd reads; an untagged look-alike and another run\'s instance are never touched', async () => {
  // Prepare: two instances the self-test did not make, one named as its instances are, one carrying another run's tag.
  const lookAlike = (
    await twin.ec2.send(
      new RunInstancesCommand({
        ImageId: LINUX_AMI,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: 'ec2-reset-access-selftest-000000000000' }] }],
      }),
    )
  ).Instances?.[0]?.InstanceId as string;
  const otherRun = (
    await twin.ec2.send(
      new RunInstancesCommand({
        ImageId: LINUX_AMI,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: SELFTEST_TAG_KEY, Value: 'aaaaaaaaaaaa' }] }],
      }),
    )
  ).Instances?.[0]?.InstanceId as string;

  // Act: the built CLI as a user runs it (a child process, AWS_ENDPOINT_URL naming the twin), with the Run Command check.
  const home = mkdtempSync(join(scratch, 'home-'));
  const cli = await run('node', [BIN, 'selftest', '--yes', '--json', '--check', 'run-command', '--document-name', twin.documentName], { env: childEnv(home) }).catch(
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''} (exit ${e.code})` }),
  );
  expect(cli.stderr).toBe('');
  expect(cli.stdout).not.toMatch(/PRIVATE KEY/);
  const rep = JSON.parse(cli.stdout) as SelftestReport;
  const r = { home };
  expect([rep.failure, rep.cleanup.notRemoved]).toEqual([null, []]);
  expect(rep.methodAsked).toBe('Auto');
  expect(rep.methodChosen).toBe('Online');
  expect(rep.accessCheck).toEqual({ kind: 'run-command', why: 'asked for (--check run-command): no inbound rule at all', ok: true, attempts: expect.any(Number) });
  // The check really ran AWS-RunShellScript on the instance, and its output named the key file sshd reads.
  const check = twin.agent.commands().filter((c) => c.documentName === 'AWS-RunShellScript' && c.instanceId === rep.instanceId);
  expect(check).toHaveLength(1);
  expect(check[0]?.stdout).toMatch(/^KEY SHA256:\S+ \/home\/ec2-user\/\.ssh\/authorized_keys$/m);
  // No inbound rule was opened (there is no address to open it to).
  expect(await leftBehind(rep.runId)).toEqual([]);

  // The two others are still running; and a cleanup told their ids (as if its ledger held them) leaves them alone.
  const state = async (id: string) =>
    (await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0]?.State?.Name;
  expect([await state(lookAlike), await state(otherRun)]).toEqual(['running', 'running']);
  const ledger = new Ledger();
  ledger.add('instance', lookAlike);
  ledger.add('instance', otherRun);
  const iam = st.iam();
  const result = await cleanup({ ec2: twin.ec2, ssm: twin.ssm, iam }, rep.runId, ledger, {
    home: r.home,
    pollMs: 10,
    now: Date.now,
    sleep: (ms) => new Promise((res) => setTimeout(res, ms)),
    keyFile: (id) => join(r.home, '.ssh', `reset-access-${id}`),
  });
  expect(result.removed).toEqual([]);
  expect(result.refused.map((x) => x.id).sort()).toEqual([lookAlike, otherRun].sort());
  expect([await state(lookAlike), await state(otherRun)]).toEqual(['running', 'running']);
});

test.each<[string, string, AwsFault[]]>([
  ['network', 'VolumeSwap', [{ service: 'ec2', action: 'CreateRoute' }]],
  ['security-group', 'VolumeSwap', [{ service: 'ec2', action: 'AuthorizeSecurityGroupIngress' }]],
  ['instance-profile', 'Online', [{ service: 'iam', action: 'AddRoleToInstanceProfile' }]],
  // The public parameter's read throttled once (the SDK retries it), then the launch refused.
  ['launch', 'VolumeSwap', [{ service: 'ssm', action: 'GetParameter', code: 'ThrottlingException' }, { service: 'ec2', action: 'RunInstances' }]],
  ['wait-running', 'VolumeSwap', [{ service: 'ec2', action: 'DescribeInstanceStatus' }]],
  // IAM's eventual consistency first (RunInstances refusing the new profile twice, retried), then the agent never seen Online.
  [
    'wait-online',
    'Online',
    [
      { service: 'ec2', action: 'RunInstances', times: 2, code: 'InvalidParameterValue', message: 'Value (ec2-reset-access-selftest) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name' },
      { service: 'ssm', action: 'DescribeInstanceInformation' },
    ],
  ],
  ['reset', 'VolumeSwap', [{ service: 'ssm', action: 'StartAutomationExecution' }]],
])('a fault at %s (--method %s): it fails there, says so, and removes everything it had made', async (phase, method, faults) => {
  faults.forEach((f) => twin.agent.injectFault(f));
  const logStart = twin.agent.callLog().length;
  // The ClientToken of every RunInstances request, as sent on the wire (EC2 query protocol).
  const tokens: string[] = [];
  const untap = twin.agent.tapWire((x) => {
    if (x.action === 'RunInstances') tokens.push(new URLSearchParams(x.request).get('ClientToken') ?? '');
  });
  try {
    const r = await selftest(['--yes', '--json', '--method', method]);
    const rep = r.report;
    expect(r.code).toBe(1);
    expect(rep.failure?.phase).toBe(phase);
    expect(rep.failure?.message).toMatch(/TwinInjectedFault/);
    expect(r.err).toMatch(new RegExp(`failed at ${phase}$`, 'm'));
    expect(rep.timeToAccessSeconds).toBeNull();
    expect(rep.cleanup.notRemoved).toEqual([]);
    // It had made something before the fault, and removed it.
    expect(rep.cleanup.removed.length).toBeGreaterThan(0);
    expect(await leftBehind(rep.runId)).toEqual([]);
    expect(twin.agent.pendingFaults()).toEqual([]);
    if (phase === 'launch') {
      // The SDK's retry, counted by the self-test's middleware, against the requests the twin received.
      const received = twin.agent.callLog().slice(logStart).filter((c) => c.service === 'ssm' && c.action === 'GetParameter');
      expect(received.map((c) => c.faulted)).toEqual([true, false]);
      expect(rep.failedOrRetried['ssm:GetParameter']).toEqual({ calls: 1, attempts: 2, attemptErrors: 1, failed: 0, errors: [] });
      expect(rep.failedOrRetried['ec2:RunInstances']).toMatchObject({ calls: 1, attempts: 1, failed: 1, errors: ['TwinInjectedFault'] });
    }
    if (phase === 'wait-online') {
      expect(rep.failedOrRetried['ec2:RunInstances']).toMatchObject({ calls: 3, failed: 2 });
      // A retry after a refusal is a new request (its own token), never the refused one again.
      expect(new Set(tokens).size).toBe(3);
      expect(rep.phases.find((p) => p.phase === 'launch')?.status).toBe('ok');
    }
  } finally {
    untap();
    twin.agent.clearFaults();
  }
});

test('a fault inside the ResetAccess run that its own cleanup cannot get past: the self-test names what the run left (not its to delete), and removes its own', async () => {
  // Every DeleteVpc fails while the run cleans up (its own temporary VPC stays), and the self-test's own too, once.
  twin.agent.injectFault({ service: 'ec2', action: 'DeleteVpc', times: 1000 });
  let rep: SelftestReport;
  try {
    rep = (await selftest(['--yes', '--json', '--method', 'VolumeSwap'])).report;
  } finally {
    twin.agent.clearFaults();
  }
  expect(rep.ok).toBe(false);
  const runbookVpcs = (await twin.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'tag:reset-access:execution-id', Values: [rep.executionId as string] }] }))).Vpcs ?? [];
  expect(runbookVpcs).toHaveLength(1);
  const left = rep.cleanup.notRemoved.filter((n) => n.why.startsWith('left by ResetAccess execution'));
  expect(left.map((n) => `${n.kind} ${n.id}`)).toEqual(expect.arrayContaining([`vpc ${runbookVpcs[0]?.VpcId}`]));
  const own = rep.cleanup.notRemoved.filter((n) => !n.why.startsWith('left by ResetAccess execution'));
  expect(own.map((n) => n.kind)).toEqual(['vpc']);
  const c = await selftest(['--cleanup', rep.runId, '--yes', '--json']);
  expect(c.code).toBe(0);
  expect((await leftBehind(rep.runId)).filter((x) => !x.startsWith('runbook '))).toEqual([]);
});

test('--subnet: launched in the user\'s subnet, a fault after launch, and the user\'s subnet and VPC are left as they were', async () => {
  const subnet = (await twin.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }))).Subnets?.[0];
  expect(subnet?.MapPublicIpOnLaunch).toBe(true);
  twin.agent.injectFault({ service: 'ec2', action: 'DescribeInstanceStatus' });
  try {
    const r = await selftest(['--yes', '--json', '--method', 'VolumeSwap', '--subnet', subnet?.SubnetId as string]);
    expect(r.report.failure?.phase).toBe('wait-running');
    const launched = (await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [r.report.instanceId as string] }))).Reservations?.[0]?.Instances?.[0];
    expect(launched?.SubnetId).toBe(subnet?.SubnetId);
    expect(r.report.cleanup.removed.map((m) => m.kind).sort()).toEqual(['instance', 'security-group']);
    expect(r.report.cleanup.notRemoved).toEqual([]);
    expect(await leftBehind(r.report.runId)).toEqual([]);
    const still = (await twin.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnet?.SubnetId as string] }))).Subnets?.[0];
    expect([still?.SubnetId, still?.VpcId]).toEqual([subnet?.SubnetId, subnet?.VpcId]);
  } finally {
    twin.agent.clearFaults();
  }
});

test('where this machine\'s address cannot be learned, the Run Command check is chosen and said why; --check ssh is then refused up front', async () => {
  const noAddress = { callerAddress: async () => Promise.reject(new Error('getaddrinfo ENOTFOUND checkip.amazonaws.com')) };
  const before = twin.agent.callLog().length;
  const asked = await selftest([], noAddress);
  expect(asked.code).toBe(3);
  expect(asked.out).toMatch(/access is proven by Run Command: this machine's public address is unknown \(getaddrinfo ENOTFOUND checkip\.amazonaws\.com\), so no inbound rule can be narrowed to it/);
  expect(asked.out).toMatch(/a security group with no inbound rule/);
  expect(asked.out).toMatch(/an IAM role with the AWS managed policy AmazonSSMManagedInstanceCore/);
  const ssh = await selftest(['--yes', '--check', 'ssh'], noAddress);
  expect(ssh.code).toBe(3);
  expect(ssh.err).toMatch(/--check ssh cannot work here: this machine's public address is unknown .*; nothing was created/);
  expect(twin.agent.callLog().slice(before).filter((c) => /^(Create|Run|Put|Attach|Authorize|Start)/.test(c.action))).toEqual([]);
});

test('no --yes and no terminal: refused with exit 3 before anything is created', async () => {
  const before = twin.agent.callLog().length;
  const out: string[] = [];
  const home = mkdtempSync(join(scratch, 'home-'));
  const code = await main(['selftest', '--document-name', twin.documentName], {
    out: (t) => out.push(t),
    err: (t) => out.push(t),
    stdinIsTTY: false,
    renderer: 'silent',
    confirm: async () => true,
    home,
    clients: () => ({ ssm: new SSMClient({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }), ec2: new EC2Client({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }) }),
    pollMs: 20,
    now: Date.now,
    iam: () => st.iam(),
    callerAddress: async () => '203.0.113.7',
  } as SelftestIo);
  expect(code).toBe(3);
  const text = out.join('');
  // It stated the cost and what it would create before refusing.
  expect(text).toMatch(/one t3\.micro instance .* for about 10 minutes/);
  expect(text).toMatch(/an EBS snapshot/);
  expect(text).toMatch(/inbound tcp\/22 from 203\.0\.113\.7\/32 only/);
  expect(text).toMatch(/not starting: stdin is not a terminal/);
  // On a terminal it asks; a "no" refuses the same way.
  const asked: string[] = [];
  const declined = await main(['selftest', '--document-name', twin.documentName], {
    out: () => undefined,
    err: (t) => asked.push(t),
    stdinIsTTY: true,
    renderer: 'silent',
    confirm: async (q) => (asked.push(q), false),
    home,
    clients: () => ({ ssm: new SSMClient({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }), ec2: new EC2Client({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }) }),
    pollMs: 20,
    now: Date.now,
    iam: () => st.iam(),
    callerAddress: async () => '203.0.113.7',
  } as SelftestIo);
  expect(declined).toBe(3);
  expect(asked.join('')).toMatch(/Run the self-test .*\?.*not starting: you declined/s);
  const creating = twin.agent.callLog().slice(before).filter((c) => /^(Create|Run|Put|Attach|Authorize|Start)/.test(c.action));
  expect(creating).toEqual([]);
});

test('a stop signal (Ctrl-C, a CI timeout\'s SIGTERM) while ResetAccess runs: the run is followed to its end, the self-test stops before its next phase, says how to exit at once and clean up later, and still removes everything it made', async () => {
  let stop: ((signal: string) => void) | undefined;
  let exitMessage = '';
  let undone = false;
  // The signal arrives as the self-test starts the ResetAccess execution (seen on the twin's wire).
  const untap = twin.agent.tapWire((x) => {
    if (x.action === 'StartAutomationExecution') stop?.('SIGTERM');
  });
  let r: Run;
  try {
    r = await selftest(['--yes', '--json', '--method', 'VolumeSwap'], {
      onStopSignal: (handler, message) => {
        stop = handler;
        exitMessage = message;
        return () => void (undone = true);
      },
    });
  } finally {
    untap();
  }
  const rep = r.report;
  expect(r.code).toBe(1);
  expect(rep.failure).toEqual({ phase: 'access', message: expect.stringMatching(/stopped by SIGTERM/) });
  expect(rep.phases.find((p) => p.phase === 'reset')?.status).toBe('ok');
  expect(rep.phases.some((p) => p.phase === 'access')).toBe(false);
  expect(r.err).toContain(`selftest --cleanup ${rep.runId} --yes`);
  expect(exitMessage).toContain(`selftest --cleanup ${rep.runId} --yes`);
  expect(rep.cleanup.removed.length).toBeGreaterThan(0);
  expect(rep.cleanup.notRemoved).toEqual([]);
  expect(await leftBehind(rep.runId)).toEqual([]);
  expect(undone).toBe(true);
});
