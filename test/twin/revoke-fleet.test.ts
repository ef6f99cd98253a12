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
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateTagsCommand, DescribeKeyPairsCommand, DescribeTagsCommand, ImportKeyPairCommand } from '@aws-sdk/client-ec2';
import { GetAutomationExecutionCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { ImageSpec } from '../../local/disk/images';
import { startTwin, type LockedOutInstance, type Twin } from '../../local/twin';

jest.setTimeout(900000);

const run = promisify(execFile);
const TERMINAL = ['Success', 'Failed', 'Cancelled', 'TimedOut'];
const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';

let twin: Twin;
let scratch: string;

/** A key made by OpenSSH, with its fingerprint as `ssh-keygen -l` prints it. */
function opensshKey(type: 'ed25519' | 'rsa', name: string): { line: string; blob: string; fingerprint: string } {
  const file = join(scratch, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', `${name}@fleet`, '-f', file]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
  return { line, blob: line.split(' ')[1], fingerprint };
}

/** The key file of an ext4-whole image, read with e2fsprogs' debugfs (no mount). */
function keyFileOf(imagePath: string, path = KEY_FILE): string {
  return execFileSync('debugfs', ['-R', `cat ${path}`, imagePath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Fingerprints `ssh-keygen -l -f` attributes to the file's lines, in order (the oracle). */
function fingerprintsOf(content: string): string[] {
  const f = join(scratch, `keys-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, content);
  try {
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(' ')[1]);
  } catch {
    return [];
  } finally {
    rmSync(f, { force: true });
  }
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function cliEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: scratch,
    AWS_ACCESS_KEY_ID: 'twin-cli',
    AWS_SECRET_ACCESS_KEY: 'twin-cli',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(scratch, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch, 'no-credentials'),
    AWS_PAGER: '',
  };
}

async function aws<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  const r = await run('aws', ['--endpoint-url', twin.agent.endpoint, '--region', 'us-east-1', '--output', 'json', ...args], { env: cliEnv(), maxBuffer: 16 * 1024 * 1024 });
  return (r.stdout.trim() === '' ? {} : JSON.parse(r.stdout)) as T;
}

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
