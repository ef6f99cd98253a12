/**
 * RevokeKey on a fleet in the twin, driven by the AWS CLI v1 (`aws ssm start-automation-execution
 * --document-name RevokeKey ...` against the twin's endpoint), with OpenSSH as the oracle: every
 * per-instance and fleet report is checked against what `ssh-keygen -l -f` says about each
 * instance's key file before and after (ssh-keygen reads a file line by line, options included),
 * and an audit against the SHA-256 of every whole disk image.
 *
 * The fleet (six instances, tag fleet=leak): two managed and running (online: one with the leaked
 * key once, one with it twice, once behind an options prefix), one managed and clean, two
 * unmanaged and stopped (volume swap: one with the key, one clean), one unmanaged and running
 * (unreachable: AllowStop=False, never stopped, never read).
 *
 * DeleteKeyPair: kept here (one instance unreachable); its deletion once every instance is clean
 * is exercised on the wire by the IAM replay's RevokeKey scenario (test/security/iam-replay.test.ts)
 * and its rule by test/unit/lambdas/revoke.test.ts (a third fleet run here cost ~40 s of the CI budget).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTagsCommand, DescribeKeyPairsCommand, DescribeTagsCommand, ImportKeyPairCommand } from '@aws-sdk/client-ec2';
import { DescribeAutomationExecutionsCommand, GetAutomationExecutionCommand, GetParametersByPathCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { ImageSpec } from '../../local/disk/images';
import { startTwin, type LockedOutInstance, type Twin } from '../../local/twin';
import { fingerprintsOf as oracle, imageFile, opensshKey as makeKey, twinCli } from './aws-cli';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(900000);

const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];
const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';

let twin: Twin;
let scratch: string;

const opensshKey = (type: 'ed25519' | 'rsa', name: string) => makeKey(scratch, type, name);
const keyFileOf = (imagePath: string, path = KEY_FILE): string => imageFile(imagePath, path);
const fingerprintsOf = (content: string): string[] => oracle(scratch, content);

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

const cli = twinCli(() => twin, () => scratch);
const aws = cli.json;

interface Execution {
  AutomationExecutionId: string;
  AutomationExecutionStatus: string;
  Outputs?: Record<string, string[]>;
  FailureMessage?: string;
  StepExecutions?: Array<{ StepName: string; StepStatus: string; FailureMessage?: string }>;
}

/** Starts RevokeKey with the AWS CLI and waits (real time) for the end. */
async function revokeKey(parameters: Record<string, string>, seconds = 600): Promise<Execution> {
  // One --parameters with a JSON map (values may hold commas, spaces and '=').
  const map = JSON.stringify(Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])));
  const started = await aws<{ AutomationExecutionId: string }>('ssm', 'start-automation-execution', '--document-name', 'RevokeKey', '--parameters', map);
  // Waiting polls with the SDK (a CLI process per poll costs a core on this shared machine); the
  // final answer is the AWS CLI's.
  const sdk = new SSMClient({ endpoint: twin.agent.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'twin-cli', secretAccessKey: 'twin-cli' } });
  const until = Date.now() + seconds * 1000;
  try {
    for (;;) {
      const got = await sdk.send(new GetAutomationExecutionCommand({ AutomationExecutionId: started.AutomationExecutionId }));
      const status = got.AutomationExecution?.AutomationExecutionStatus ?? '';
      if (TERMINAL.includes(status)) break;
      if (Date.now() > until) throw new Error(`RevokeKey ${started.AutomationExecutionId} still ${status}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    sdk.destroy();
  }
  return (await aws<{ AutomationExecution: Execution }>('ssm', 'get-automation-execution', '--automation-execution-id', started.AutomationExecutionId)).AutomationExecution;
}

interface FleetEntry {
  instanceId: string;
  outcome: string;
  method?: string;
  found?: number;
  removed?: number;
  added?: number;
  reason?: string;
}
interface FleetReport {
  counts: Record<string, number>;
  instances: FleetEntry[];
  keyPair: string;
}

async function fleetReportOf(e: Execution): Promise<{ gather: Record<string, unknown>; report: FleetReport }> {
  const gather = JSON.parse(e.Outputs?.['gather.Payload']?.[0] ?? '{}') as Record<string, unknown>;
  const text = await twin.getParameter(String(gather.ReportParameter));
  return { gather, report: JSON.parse(text ?? '{}') as FleetReport };
}

let LEAKED: ReturnType<typeof opensshKey>;
let OTHER: ReturnType<typeof opensshKey>;
let REPLACEMENT: ReturnType<typeof opensshKey>;

function image(authorizedKeys: string): ImageSpec {
  return { layout: 'ext4-whole', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys }], cloudInitDefaultUser: 'ec2-user' };
}

interface Member {
  readonly name: string;
  readonly instance: LockedOutInstance;
  readonly before: string;
}
const fleet: Member[] = [];
const member = (name: string): Member => fleet.find((m) => m.name === name) as Member;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'revoke-fleet-'));
  LEAKED = opensshKey('rsa', 'leaked');
  OTHER = opensshKey('ed25519', 'other');
  REPLACEMENT = opensshKey('ed25519', 'replacement');
  twin = await startTwin({ maxLifetimeSeconds: 1800, transitions: 'settle' });
  const managed = { agentVersion: '3.3.2746.0' };
  const specs: Array<{ name: string; keys: string; managed?: boolean; state?: 'running' | 'stopped' }> = [
    { name: 'online-once', keys: `${OTHER.line}\n${LEAKED.line}\n`, managed: true },
    // The key twice: behind an options prefix with quoted spaces and commas, and plain with another comment.
    { name: 'online-twice', keys: `from="10.0.0.1,10.0.0.2",command="echo a, b" ${LEAKED.line}\n${OTHER.line}\nssh-rsa ${LEAKED.blob} old laptop\n`, managed: true },
    { name: 'online-clean', keys: `${OTHER.line}\n`, managed: true },
    { name: 'swap-leaked', keys: `${LEAKED.line}\n${OTHER.line}\n`, state: 'stopped' },
    { name: 'swap-clean', keys: `${OTHER.line}\n`, state: 'stopped' },
    { name: 'unreachable', keys: `${LEAKED.line}\n` },
  ];
  for (const s of specs) {
    const instance = await twin.createLockedOutInstance({ image: image(s.keys), state: s.state ?? 'running', ...(s.managed ? { managed } : {}) });
    fleet.push({ name: s.name, instance, before: s.keys });
  }
  await twin.ec2.send(new CreateTagsCommand({ Resources: fleet.map((m) => m.instance.instanceId), Tags: [{ Key: 'fleet', Value: 'leak' }] }));
}, 900000);

afterAll(async () => {
  await twin?.stop();
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
});

test('the oracle: ssh-keygen attributes the leaked key to exactly the lines the fixtures put it on', () => {
  expect(fingerprintsOf(member('online-twice').before).filter((f) => f === LEAKED.fingerprint)).toHaveLength(2);
  expect(fingerprintsOf(member('online-clean').before)).toEqual([OTHER.fingerprint]);
});

/**
 * What "nothing changed" can mean for each instance: a volume the helper reads (volume swap), or an
 * instance never touched, keeps every byte of its image (SHA-256 of the whole image); an online
 * instance's image is its live root, mounted read-write by the twin for the command as a running
 * instance's root is, so the mount itself changes filesystem metadata: there, no file changed
 * (every file's content and metadata, DiskApi.diffImage).
 */
async function unchanged(m: Member, hash: string, files: Awaited<ReturnType<Twin['disk']['snapshotImage']>>): Promise<void> {
  const path = m.instance.imagePath as string;
  if (m.name.startsWith('online')) expect(twin.disk.diffImage(files, await twin.disk.snapshotImage(path))).toEqual([]);
  else expect([m.name, sha256(path)]).toEqual([m.name, hash]);
}

test('Audit on the fleet by tag: every instance reported as ssh-keygen sees it, not a byte of any disk changed', async () => {
  // Prepare
  const hashes = new Map(fleet.map((m) => [m.name, sha256(m.instance.imagePath as string)]));
  const files = new Map<string, Awaited<ReturnType<Twin['disk']['snapshotImage']>>>();
  for (const m of fleet) files.set(m.name, await twin.disk.snapshotImage(m.instance.imagePath as string));
  // Act
  const e = await revokeKey({ TargetTagKey: 'fleet', TargetTagValue: 'leak', Fingerprints: LEAKED.fingerprint, MaxConcurrency: '6' });
  // Assess
  expect(e.AutomationExecutionStatus).toBe('Success');
  const { gather, report } = await fleetReportOf(e);
  expect(gather).toMatchObject({ Instances: 6, Clean: 2, Found: 3, Unreachable: 1, Failed: 0, Cleaned: 0 });
  for (const m of fleet) {
    const entry = report.instances.find((x) => x.instanceId === m.instance.instanceId) as FleetEntry;
    const leakedLines = fingerprintsOf(m.before).filter((f) => f === LEAKED.fingerprint).length;
    if (m.name === 'unreachable') {
      expect(entry).toMatchObject({ outcome: 'unreachable' });
      expect(entry.reason).toMatch(/AllowStop=False/);
    } else {
      expect(entry).toMatchObject({ outcome: leakedLines > 0 ? 'found' : 'clean', found: leakedLines, removed: 0, added: 0 });
      expect(entry.method).toBe(m.name.startsWith('online') ? 'Online' : 'VolumeSwap');
    }
    await unchanged(m, hashes.get(m.name) as string, files.get(m.name) as Awaited<ReturnType<Twin['disk']['snapshotImage']>>);
  }
  // The run's tags are gone, and nothing is locked.
  const tags = await twin.ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['reset-access:revoke-run', 'reset-access:lock'] }] }));
  expect(tags.Tags ?? []).toEqual([]);
  expect((await twin.leftovers()).locks).toEqual([]);
});

/**
 * Selection by resource group (issue 14, item 1): a tag-based group made with the AWS CLI (Resource
 * Groups' CreateGroup, served by moto), then RevokeKey with ResourceGroupName. The members must be
 * what the Resource Groups API reference says a TAG_FILTERS_1_0 query holds (ResourceQuery.Query:
 * every tag key matched, at least one value of each; its own example is Stage in Test or Deploy,
 * and Version in 1 or 2): online-once (Stage=Test, Version=1) and online-twice (Stage=Deploy,
 * Version=2), not online-clean (Stage only) nor swap-clean (Version only).
 */
test('Audit by resource group (AWS CLI): the EC2 instances as its tag query defines them, nothing else; a CloudFormation stack group refused before any change', async () => {
  // Prepare
  const tag = (name: string, tags: Record<string, string>) =>
    twin.ec2.send(new CreateTagsCommand({ Resources: [member(name).instance.instanceId], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }));
  await tag('online-once', { Stage: 'Test', Version: '1' });
  await tag('online-twice', { Stage: 'Deploy', Version: '2' });
  await tag('online-clean', { Stage: 'Deploy' });
  await tag('swap-clean', { Version: '1' });
  const query = JSON.stringify({ ResourceTypeFilters: ['AWS::EC2::Instance'], TagFilters: [{ Key: 'Stage', Values: ['Test', 'Deploy'] }, { Key: 'Version', Values: ['1', '2'] }] });
  await aws('resource-groups', 'create-group', '--name', 'leak-web', '--resource-query', JSON.stringify({ Type: 'TAG_FILTERS_1_0', Query: query }));
  // Act
  const e = await revokeKey({ ResourceGroupName: 'leak-web', Fingerprints: LEAKED.fingerprint, MaxConcurrency: '2' });
  // Assess
  expect(e.AutomationExecutionStatus).toBe('Success');
  expect((e.StepExecutions ?? []).map((x) => x.StepName)).toEqual(['resolve', 'branchOnSelection', 'readGroup', 'resolveGroup', 'fanOut', 'gather']);
  const { gather, report } = await fleetReportOf(e);
  expect(report.instances.map((x) => x.instanceId).sort()).toEqual([member('online-once').instance.instanceId, member('online-twice').instance.instanceId].sort());
  expect(gather).toMatchObject({ Instances: 2, Found: 2, Failed: 0 });
  for (const x of report.instances) {
    const m = fleet.find((f) => f.instance.instanceId === x.instanceId) as Member;
    expect(x).toMatchObject({ outcome: 'found', found: fingerprintsOf(m.before).filter((f) => f === LEAKED.fingerprint).length });
  }
  expect(JSON.parse(e.Outputs?.['resolveGroup.Payload']?.[0] ?? '{}')).toMatchObject({ Instances: 2, Selection: 'resource group leak-web' });

  // A CloudFormation stack group: refused at resolveGroup, nothing tagged or written.
  await aws('resource-groups', 'create-group', '--name', 'leak-stack', '--resource-query', JSON.stringify({
    Type: 'CLOUDFORMATION_STACK_1_0',
    Query: JSON.stringify({ ResourceTypeFilters: ['AWS::AllSupported'], StackIdentifier: 'arn:aws:cloudformation:us-east-1:123456789012:stack/web/00000000-0000-0000-0000-000000000000' }),
  }));
  const refused = await revokeKey({ ResourceGroupName: 'leak-stack', Fingerprints: LEAKED.fingerprint });
  expect(refused.AutomationExecutionStatus).toBe('Failed');
  expect((refused.StepExecutions ?? []).find((x) => x.StepName === 'resolveGroup')?.FailureMessage).toMatch(/CloudFormation stack group; choose its instances by InstanceIds or a tag/);
  const tags = await twin.ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['reset-access:revoke-run'] }] }));
  expect(tags.Tags ?? []).toEqual([]);
  expect(await twin.getParameter(`/reset-access/revoke/${refused.AutomationExecutionId}/spec`)).toBeUndefined();
});

test('Revoke of a key pair with a replacement key: the leaked lines gone, every other line kept in order, the report equal to what ssh-keygen sees; the key pair kept (one instance unreachable)', async () => {
  // Prepare: the leaked key as an EC2 key pair (the runbook reads its public key with DescribeKeyPairs).
  await twin.ec2.send(new ImportKeyPairCommand({ KeyName: 'leaked', PublicKeyMaterial: Buffer.from(LEAKED.line) }));
  const hashes = new Map(fleet.map((m) => [m.name, sha256(m.instance.imagePath as string)]));
  const files = new Map<string, Awaited<ReturnType<Twin['disk']['snapshotImage']>>>();
  for (const m of fleet) files.set(m.name, await twin.disk.snapshotImage(m.instance.imagePath as string));
  // Act
  const e = await revokeKey({
    TargetTagKey: 'fleet',
    TargetTagValue: 'leak',
    KeyPairName: 'leaked',
    Mode: 'Revoke',
    ReplacementPublicKey: REPLACEMENT.line,
    DeleteKeyPair: 'True',
    MaxConcurrency: '6',
  });
  // Assess
  expect(e.AutomationExecutionStatus).toBe('Success');
  const { gather, report } = await fleetReportOf(e);
  expect(gather).toMatchObject({ Instances: 6, Cleaned: 3, Clean: 2, Unreachable: 1, Failed: 0 });
  expect(gather.KeyPair).toMatch(/^leaked kept: .*1 unreachable/);
  const pairs = await twin.ec2.send(new DescribeKeyPairsCommand({})).then((r) => (r.KeyPairs ?? []).map((k) => k.KeyName));
  expect(pairs).toContain('leaked');
  for (const m of fleet) {
    const entry = report.instances.find((x) => x.instanceId === m.instance.instanceId) as FleetEntry;
    const beforeFps = fingerprintsOf(m.before);
    const leakedLines = beforeFps.filter((f) => f === LEAKED.fingerprint).length;
    if (m.name === 'unreachable' || leakedLines === 0) {
      expect(entry.outcome).toBe(m.name === 'unreachable' ? 'unreachable' : 'clean');
      await unchanged(m, hashes.get(m.name) as string, files.get(m.name) as Awaited<ReturnType<Twin['disk']['snapshotImage']>>);
      continue;
    }
    const after = keyFileOf(m.instance.imagePath as string);
    const afterFps = fingerprintsOf(after);
    expect(afterFps).not.toContain(LEAKED.fingerprint);
    // Every other line kept, in order, byte for byte; the replacement where the leaked key was.
    const kept = m.before.split('\n').filter((l) => l !== '' && fingerprintsOf(`${l}\n`)[0] !== LEAKED.fingerprint);
    expect(after.split('\n').filter((l) => l !== '' && fingerprintsOf(`${l}\n`)[0] !== REPLACEMENT.fingerprint)).toEqual(kept);
    expect(afterFps.filter((f) => f === REPLACEMENT.fingerprint)).toHaveLength(1);
    expect(entry).toMatchObject({ outcome: 'cleaned', found: leakedLines, removed: leakedLines, added: 1 });
  }
});

/**
 * A cancel of the fleet run (review P9). No AWS source says what cancelling an execution does to
 * the executions its aws:executeAutomation step started, so the twin leaves them running
 * (local/README.md) and the product must not need more: gather, on the cancel path, stops every
 * child of the run still going and reports it `cancelled` (or `unknown` if it is still running at
 * gather's bound), an instance never started `cancelled`, never `failed` or `clean`; each stopped
 * child's own cancel path restores its instance.
 */
test('stop-automation-execution on the fleet while a volume swap runs: the running child is stopped and restored, the report says cancelled, nothing lost', async () => {
  // Prepare: run in order (MaxConcurrency 1): an online clean instance, a stopped one with the key, a stopped clean one.
  const specs: Array<{ keys: string; managed?: boolean; state: 'running' | 'stopped' }> = [
    { keys: `${OTHER.line}\n`, managed: true, state: 'running' },
    { keys: `${OTHER.line}\n${LEAKED.line}\n`, state: 'stopped' },
    { keys: `${OTHER.line}\n`, state: 'stopped' },
  ];
  const members: LockedOutInstance[] = [];
  for (const s of specs) members.push(await twin.createLockedOutInstance({ image: image(s.keys), state: s.state, ...(s.managed ? { managed: { agentVersion: '3.3.2746.0' } } : {}) }));
  await twin.ec2.send(new CreateTagsCommand({ Resources: members.map((m) => m.instanceId), Tags: [{ Key: 'fleet', Value: 'cancel' }] }));
  const before = await Promise.all(members.map((m) => baseline(twin, m)));
  const untouched = sha256(members[2].imagePath as string);
  const sdk = new SSMClient({ endpoint: twin.agent.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'twin-cli', secretAccessKey: 'twin-cli' } });
  try {
    // Act: start with the AWS CLI; once the second instance's run is past its stop, cancel the fleet run.
    const map = JSON.stringify({ TargetTagKey: ['fleet'], TargetTagValue: ['cancel'], Fingerprints: [LEAKED.fingerprint], Mode: ['Revoke'], MaxConcurrency: ['1'] });
    const { AutomationExecutionId: id } = await aws<{ AutomationExecutionId: string }>('ssm', 'start-automation-execution', '--document-name', 'RevokeKey', '--parameters', map);
    const past = ['launchHelper', 'waitForInstanceStopped', 'backupAndDetachRoot', 'waitForRootDetached', 'describeHelper', 'waitForHelperOnline', 'attachToHelper'];
    let child: string | undefined;
    for (const until = Date.now() + 300000; !child; ) {
      if (Date.now() > until) throw new Error('the second instance\'s run never got past its stop');
      const list = await sdk.send(new DescribeAutomationExecutionsCommand({ Filters: [{ Key: 'DocumentNamePrefix', Values: ['RevokeKey-Instance'] }] }));
      for (const m of list.AutomationExecutionMetadataList ?? []) {
        if (m.AutomationExecutionStatus !== 'InProgress' || !past.includes(m.CurrentStepName ?? '')) continue;
        const got = await sdk.send(new GetAutomationExecutionCommand({ AutomationExecutionId: m.AutomationExecutionId }));
        if (got.AutomationExecution?.Parameters?.InstanceId?.[0] === members[1].instanceId) child = m.AutomationExecutionId;
      }
      if (!child) await new Promise((r) => setTimeout(r, 100));
    }
    await aws('ssm', 'stop-automation-execution', '--automation-execution-id', id);
    for (const until = Date.now() + 300000; ; ) {
      const got = await sdk.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id }));
      if (TERMINAL.includes(got.AutomationExecution?.AutomationExecutionStatus ?? '')) break;
      if (Date.now() > until) throw new Error('the fleet run did not end');
      await new Promise((r) => setTimeout(r, 500));
    }
    // Everything the cancel set going (the child's restore runbook) ends.
    await twin.automation.drain();
    // Assess
    const e = (await aws<{ AutomationExecution: Execution }>('ssm', 'get-automation-execution', '--automation-execution-id', id)).AutomationExecution;
    expect(e.AutomationExecutionStatus).toBe('Cancelled');
    const steps = (e.StepExecutions ?? []).map((x) => `${x.StepName}:${x.StepStatus}${x.StepStatus === 'Success' || x.StepName === 'fanOut' ? '' : ` ${x.FailureMessage}`}`);
    expect(steps).toEqual(['resolve:Success', 'branchOnSelection:Success', 'fanOut:Cancelled', 'gather:Success']);
    const { gather, report } = await fleetReportOf(e);
    expect(report.instances.map((x) => [x.instanceId, x.outcome])).toEqual([
      [members[0].instanceId, 'clean'],
      [members[1].instanceId, 'cancelled'],
      [members[2].instanceId, 'cancelled'],
    ]);
    expect(gather).toMatchObject({ Instances: 3, Clean: 1, Cancelled: 2, Unknown: 0, Failed: 0 });
    expect(report.instances[2].reason).toMatch(/not started/);
    // The stopped child ended Cancelled through its own cancel path, which started its restore.
    const stopped = (await aws<{ AutomationExecution: Execution }>('ssm', 'get-automation-execution', '--automation-execution-id', child)).AutomationExecution;
    expect(stopped.AutomationExecutionStatus).toBe('Cancelled');
    expect((stopped.StepExecutions ?? []).at(-1)).toMatchObject({ StepName: 'startRestore', StepStatus: 'Success' });
    // Nothing lost: each instance as it was, the key file before or fully revoked, the unstarted one not a byte changed.
    for (const b of before) await expectNothingLost(twin, b, [KEY_FILE]);
    const after = keyFileOf(members[1].imagePath as string);
    if (after !== specs[1].keys) expect(fingerprintsOf(after)).toEqual([OTHER.fingerprint]);
    expect(sha256(members[2].imagePath as string)).toBe(untouched);
    // The run's results, spec and tags are gone.
    const left = await sdk.send(new GetParametersByPathCommand({ Path: `/reset-access/revoke/${id}`, Recursive: true }));
    expect((left.Parameters ?? []).map((p) => p.Name)).toEqual([`/reset-access/revoke/${id}/report`]);
    const tags = await twin.ec2.send(new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['reset-access:revoke-run'] }] }));
    expect(tags.Tags ?? []).toEqual([]);
  } finally {
    sdk.destroy();
  }
});
