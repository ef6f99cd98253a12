/**
 * The CLI as a user runs it (the built bin, a child process), against the twin's AWS endpoint
 * (AWS_ENDPOINT_URL, which the SDK v3 honours:
 * https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html): a reset ending in a
 * real ssh login with the key file it wrote; that file never visible with another mode, even under
 * umask 000; the live display inside a real terminal (tmux), plain lines when piped.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { GetAutomationExecutionCommand, SSMClient, StartAutomationExecutionCommand } from '@aws-sdk/client-ssm';
import { startTwin, Twin } from '../../local/twin';
import { baseline, expectNothingLost } from '../twin/support';

jest.setTimeout(900000);

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'cli', 'ec2-reset-access.cjs');
const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';
const ESC = '\u001b[';

let twin: Twin;
let scratch: string;

beforeAll(async () => {
  execFileSync('npm', ['run', '--silent', 'build:cli'], { cwd: ROOT, stdio: 'pipe' });
  twin = await startTwin({ maxLifetimeSeconds: 1500, transitions: 'settle' });
  scratch = mkdtempSync(join(tmpdir(), 'cli-twin-'));
}, 600000);

afterAll(async () => {
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
  await twin?.stop();
});

/** The CLI's environment: the twin's endpoint, fixed credentials, a home of its own. */
function env(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    AWS_ENDPOINT_URL: twin.agent.endpoint,
    AWS_ACCESS_KEY_ID: 'twin-cli',
    AWS_SECRET_ACCESS_KEY: 'twin-cli',
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    EC2_RESET_ACCESS_POLL_MS: '250',
    // The SDK's own switch for its warning that later versions need Node 22 (this machine has 20):
    // @aws-sdk/core, emitWarningIfUnsupportedVersion. A user on Node 20 sees it on stderr.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

async function publicAddress(instanceId: string): Promise<string> {
  const i = (await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]?.Instances?.[0];
  return i?.PublicDnsName || i?.PublicIpAddress || (i?.PrivateIpAddress as string);
}

/** Real ssh with the key file the CLI wrote, as the printed command names it, to sshd over the image. */
async function sshWith(imagePath: string, keyFile: string, user: string): Promise<{ ok: boolean; out: string }> {
  const sshd = await twin.disk.startSshd(imagePath);
  try {
    const r = await run('timeout', [
      '30', 'ssh', '-F', '/dev/null', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-p', String(sshd.port), `${user}@127.0.0.1`, 'id -un',
    ]).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`, stderr: 'failed' }));
    return { ok: r.stderr !== 'failed', out: r.stdout };
  } finally {
    await sshd.stop();
  }
}

test('reset, piped, under umask 000: plain step lines, the key file 0600 from its creation (strace), the printed ssh command logs in', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const home = mkdtempSync(join(scratch, 'home-'));
  const sshDir = join(home, '.ssh');
  execFileSync('install', ['-d', '-m', '700', sshDir]);
  const keyPath = join(sshDir, `reset-access-${instance.instanceId}`);

  // The kernel's own record of how the file came to be: strace of the CLI's open/chmod/rename
  // calls, the CLI running with umask 000 (so the mode comes from the open call alone). And
  // inotify (fs.watch) on ~/.ssh: every mode the file is seen with while it runs.
  const modes = new Set<number>();
  const watcher = watch(sshDir, () => {
    try {
      modes.add(statSync(keyPath).mode & 0o777);
    } catch {
      /* not there yet */
    }
  });
  const trace = join(home, 'strace.log');
  const cli = await run(
    'sh',
    ['-c', 'umask 000; exec strace -ff -qq -e trace=open,openat,creat,chmod,fchmod,fchmodat,rename,renameat,renameat2,link,linkat -o "$TRACE" node "$BIN" reset "$IID" --yes --key-type ed25519 --document-name "$DOC"'],
    { env: { ...env(home), BIN, IID: instance.instanceId, DOC: twin.documentName, TRACE: trace } },
  ).catch((e: { code?: number; stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''} (exit ${e.code})` }));
  watcher.close();

  expect(cli.stderr).toBe('');
  const out = cli.stdout;
  // Piped: plain lines, no escape codes; each step a line with its state and time, in order.
  expect(out).not.toContain(ESC);
  const stepLines = out.split('\n').filter((l) => /^\S+ (preflight|stopInstance|injectKey|summarize)\s+Success\s+\d+(s|m\d\ds)$/.test(l.trim()));
  expect(stepLines.map((l) => l.trim().split(/\s+/)[1])).toEqual(['preflight', 'stopInstance', 'injectKey', 'summarize']);

  // The key: 0600 from creation (never seen otherwise), a real OpenSSH private key, never printed.
  expect(statSync(keyPath).mode & 0o777).toBe(0o600);
  expect([...modes]).toEqual([0o600]);
  // Every call naming the file: the one exclusive create with 0600, then only the read-back.
  // -ff: one file per thread (<trace>.<tid>), so that no call is split into "unfinished" and
  // "resumed" halves by another thread's (strace(1), -ff).
  const traced = readdirSync(home)
    .filter((f) => f.startsWith('strace.log.'))
    .map((f) => readFileSync(join(home, f), 'utf8'))
    .join('\n');
  const all = traced.split('\n').filter((l) => l.includes(`"${keyPath}"`));
  const calls = all.filter((l) => !/^openat\(AT_FDCWD, "[^"]+", O_RDONLY(\|O_CLOEXEC)?\) = \d+$/.test(l));
  expect(all.length - calls.length).toBe(1);
  expect(calls).toHaveLength(1);
  expect(calls[0]).toMatch(/openat\(AT_FDCWD, "[^"]+", O_WRONLY\|O_CREAT\|O_EXCL[^,]*, 0600\) = \d+$/);
  const fd = /= (\d+)$/.exec(calls[0])?.[1];
  expect(traced).not.toMatch(new RegExp(`fchmod\\(${fd},`));
  const privateKey = readFileSync(keyPath, 'utf8');
  expect(privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  expect(out).not.toContain(privateKey.split('\n')[1]);
  // The SecureString was deleted.
  expect(await twin.getParameter(`/ec2rl/openssh/${instance.instanceId}/key`, false)).toBeUndefined();

  // The exact ssh command: this key file, the user the run changed, the instance's address now.
  const address = await publicAddress(instance.instanceId);
  const cmd = /^ {2}ssh -i (\S+) (\S+)@(\S+)$/m.exec(out);
  expect(cmd?.slice(1)).toEqual([keyPath, 'ec2-user', address]);
  await expectNothingLost(twin, before, [KEY_FILE]);
  const login = await sshWith(instance.imagePath as string, keyPath, 'ec2-user');
  expect([login.ok, login.out.trim()]).toEqual([true, 'ec2-user']);
});

/** Screens of a tmux pane, captured every 150 ms (a 120x100 pane) until `done` matches or the time is up. */
async function tmuxFrames(session: string, command: string, done: RegExp, seconds: number, answer?: { when: RegExp; keys: string[] }): Promise<string[]> {
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '100', command]);
  execFileSync('tmux', ['set-option', '-t', session, 'remain-on-exit', 'on']);
  const frames: string[] = [];
  const until = Date.now() + seconds * 1000;
  try {
    while (Date.now() < until) {
      const frame = execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
      if (frames.at(-1) !== frame) frames.push(frame);
      if (done.test(frame)) break;
      if (answer && answer.when.test(frame)) {
        // Typed into the terminal, as a user answers the prompt.
        execFileSync('tmux', ['send-keys', '-t', session, ...answer.keys]);
        answer = undefined;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  } finally {
    execFileSync('tmux', ['kill-session', '-t', session]);
  }
  return frames;
}

test('reset in a real terminal: asks, the answer typed with send-keys; listr2 draws the steps in place, running then done, and ends with the ssh command', async () => {
  const instance = await twin.createLockedOutInstance({});
  const home = mkdtempSync(join(scratch, 'home-'));
  const e = env(home);
  const exports = Object.entries({ ...e, BIN, IID: instance.instanceId, DOC: twin.documentName })
    .map(([k, v]) => `${k}='${v}'`)
    .join(' ');
  const frames = await tmuxFrames(
    'cli-live',
    `env -i ${exports} TERM=xterm-256color sh -c 'node "$BIN" reset "$IID" --document-name "$DOC"; echo "EXIT=$?"; sleep 30'`,
    /EXIT=\d+/,
    600,
    { when: /Reset access to i-[0-9a-f]+\? \[y\/N\]/, keys: ['y', 'Enter'] },
  );
  // It asked on the terminal before starting anything.
  expect(frames.some((f) => /Reset access to i-[0-9a-f]+\? \[y\/N\]/.test(f) && !/Started execution/.test(f))).toBe(true);
  const last = frames.at(-1) as string;
  expect(last).toMatch(/EXIT=0/);
  expect(last).toMatch(/^ {2}ssh -i \S+reset-access-i-[0-9a-f]+ ec2-user@\S+$/m);
  // A step seen running in one frame and done in a later one: drawn in place, not appended.
  const running = frames.findIndex((f) => /stopInstance\s+InProgress/.test(f) || /injectKey\s+InProgress/.test(f) || /waitFor\w+\s+InProgress/.test(f));
  expect(running).toBeGreaterThanOrEqual(0);
  const doneIdx = frames.findIndex((f, i) => i > running && /✔ preflight\s+Success/.test(f) && /✔ summarize\s+Success/.test(f));
  expect(doneIdx).toBeGreaterThan(running);
  // In place: the final screen holds each step once.
  expect(last.match(/✔ preflight\s+Success/g)).toHaveLength(1);
  expect(last.match(/✔ summarize\s+Success/g)).toHaveLength(1);
  expect(frames.length).toBeGreaterThan(3);
});

/** The CLI as a child process: exit code, stdout, stderr. */
async function cli(home: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [BIN, ...args], { env: env(home) });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

test('cancel follows the restore execution to Success; status and backups --json see what is left, and backups --delete removes it', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const home = mkdtempSync(join(scratch, 'home-'));
  // Started as any client would, on the twin's Automation API.
  const api = new SSMClient({ endpoint: twin.agent.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'twin-cli', secretAccessKey: 'twin-cli' } });
  const id = (await api.send(new StartAutomationExecutionCommand({ DocumentName: twin.documentName, Parameters: { InstanceId: [instance.instanceId] } }))).AutomationExecutionId as string;
  const after = ['launchHelper', 'waitForInstanceStopped', 'backupAndDetachRoot', 'waitForRootDetached', 'describeHelper', 'waitForHelperOnline', 'attachToHelper'];
  for (;;) {
    const e = (await api.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id }))).AutomationExecution;
    if (after.includes(e?.CurrentStepName ?? '')) break;
    expect(['Success', 'Failed', 'Cancelled', 'TimedOut']).not.toContain(e?.AutomationExecutionStatus);
    await new Promise((r) => setTimeout(r, 50));
  }
  // While it runs, status with no argument shows its lock tags and lock record.
  const during = await cli(home, 'status', '--json');
  expect(during.code).toBe(0);
  const locks = (JSON.parse(during.stdout) as { locks: { kind: string; id: string; executionId: string }[] }).locks.filter((l) => l.executionId === id);
  expect(locks.map((l) => `${l.kind} ${l.id}`).sort()).toEqual([`instance tag ${instance.instanceId}`, `lock record ${instance.instanceId}`, `volume tag ${instance.rootVolumeId}`]);

  const cancelled = await cli(home, 'cancel', id, '--json');
  expect([cancelled.code, cancelled.stderr]).toEqual([0, '']);
  const c = JSON.parse(cancelled.stdout) as { status: string; restoreExecutionId: string; restore: { status: string } };
  expect(c.status).toBe('Cancelled');
  expect(c.restoreExecutionId).toMatch(/^[0-9a-f-]{36}$/);
  expect(c.restore.status).toBe('Success');
  await twin.automation.drain();
  await expectNothingLost(twin, before, [KEY_FILE]);

  // status <instance-id>: no lock left, and both executions listed.
  const st = await cli(home, 'status', instance.instanceId, '--json');
  expect(st.code).toBe(0);
  const s = JSON.parse(st.stdout) as { lockRecord: unknown; lockTags: unknown; executions: { executionId: string }[] };
  expect(s.lockRecord).toBeNull();
  expect(s.lockTags).toEqual({ instance: null, rootVolume: null });
  expect(s.executions.map((e) => e.executionId)).toEqual(expect.arrayContaining([id, c.restoreExecutionId]));

  // backups: the snapshots runs left, the first test's among them; --delete removes them all.
  const listed = await cli(home, 'backups', '--json');
  const items = (JSON.parse(listed.stdout) as { items: { kind: string; id: string; instanceId: string }[] }).items;
  expect(items.length).toBeGreaterThan(0);
  expect(items.every((i) => i.kind === 'snapshot' || i.kind === 'image' || i.kind === 'key-parameter')).toBe(true);
  const noTty = await cli(home, 'backups', '--delete');
  expect(noTty.code).toBe(3);
  const deleted = await cli(home, 'backups', '--delete', '--yes', '--json');
  expect(deleted.code).toBe(0);
  expect((JSON.parse(deleted.stdout) as { deleted: string[] }).deleted).toEqual(expect.arrayContaining(items.map((i) => i.id)));
  expect((JSON.parse((await cli(home, 'backups', '--json')).stdout) as { items: unknown[] }).items).toEqual([]);
});

test('a refusal by preflight: exit 3, its message, nothing changed', async () => {
  const instance = await twin.createLockedOutInstance({ disableApiStop: true, image: false });
  const before = await baseline(twin, instance, false);
  const home = mkdtempSync(join(scratch, 'home-'));
  const r = await cli(home, 'reset', instance.instanceId, '--yes', '--document-name', twin.documentName);
  expect(r.code).toBe(3);
  expect(r.stderr).toMatch(/^Refused, nothing changed: .*stop protection/im);
  await expectNothingLost(twin, before);
});

test('Auto on a running managed node: the summary says Online with no stop, the result comes from summarizeOnline.Payload, and the key logs in', async () => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);
  const home = mkdtempSync(join(scratch, 'home-'));
  const r = await cli(home, 'reset', instance.instanceId, '--yes', '--document-name', twin.documentName);
  expect([r.code, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toMatch(/method Online: .*no stop/);
  expect(r.stdout).not.toContain('STOPPED');
  expect(r.stdout).toMatch(/^ {2}method: Online/m);
  const keyPath = join(home, '.ssh', `reset-access-${instance.instanceId}`);
  // Written as soon as the step outputs said the key was in place (review P4), then followed to the end.
  expect(r.stdout).toContain(`The key is in place on ${instance.instanceId}: the private key is in ${keyPath} (mode 0600).`);
  expect(r.stdout).toMatch(/^ {2}private key: .*the parameter \/ec2rl\/openssh\/i-[0-9a-f]+\/key was deleted$/m);
  expect(statSync(keyPath).mode & 0o777).toBe(0o600);
  const cmd = /^ {2}ssh -i (\S+) (\S+)@(\S+)$/m.exec(r.stdout);
  expect(cmd?.slice(1)).toEqual([keyPath, 'ec2-user', await publicAddress(instance.instanceId)]);
  await expectNothingLost(twin, before, [KEY_FILE]);
  const login = await sshWith(instance.imagePath as string, keyPath, 'ec2-user');
  expect([login.ok, login.out.trim()]).toEqual([true, 'ec2-user']);
});

test('--profile and --region select the credentials and Region, as the AWS CLI does: without them the same call has neither', async () => {
  const home = mkdtempSync(join(scratch, 'home-'));
  writeFileSync(join(home, 'credentials'), '[reset-ops]\naws_access_key_id = twin-profile\naws_secret_access_key = twin-profile\n');
  const base = env(home);
  const bare: NodeJS.ProcessEnv = { ...base, AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials') };
  delete bare.AWS_ACCESS_KEY_ID;
  delete bare.AWS_SECRET_ACCESS_KEY;
  delete bare.AWS_REGION;
  const status = async (...extra: string[]) =>
    run('node', [BIN, 'status', '--json', ...extra], { env: bare }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
  const ok = await status('--profile', 'reset-ops', '--region', 'us-east-1');
  expect([ok.code, ok.stderr]).toEqual([0, '']);
  expect(JSON.parse(ok.stdout)).toHaveProperty('locks');
  const noRegion = await status('--profile', 'reset-ops');
  expect(noRegion.code).toBe(1);
  expect(noRegion.stderr).toMatch(/Region/i);
  const noProfile = await status('--region', 'us-east-1');
  expect(noProfile.code).toBe(1);
  expect(noProfile.stderr).toMatch(/credential/i);
});

test('a step that fails: exit 4, the failed step and its message, and what restore did; nothing lost, no key file', async () => {
  const instance = await twin.createLockedOutInstance({});
  const before = await baseline(twin, instance);
  const home = mkdtempSync(join(scratch, 'home-'));
  // The first AttachVolume (attachToHelper's) fails; restore's own attach then succeeds.
  twin.agent.injectFault({ service: 'ec2', action: 'AttachVolume', nth: 1, times: 1 });
  const r = await cli(home, 'reset', instance.instanceId, '--yes', '--document-name', twin.documentName);
  expect(r.code).toBe(4);
  expect(r.stderr).toMatch(/^The run failed at attachToHelper Failed after \d+s: .*TwinInjectedFault/m);
  expect(r.stderr).toMatch(/^ {2}restore Success after \d+/m);
  // What the restore Lambda returned (its step's Payload), as the twin's Automation API gives it.
  expect(r.stderr).toMatch(new RegExp(`^Restore reported: attached ${instance.rootVolumeId} to ${instance.instanceId} at ${instance.rootDeviceName}`, 'm'));
  expect(r.stderr).toContain('Restore put the root volume back');
  await twin.automation.drain();
  await expectNothingLost(twin, before);
  expect(() => statSync(join(home, '.ssh', `reset-access-${instance.instanceId}`))).toThrow(/ENOENT/);
});

test('online: the key file is written once the step outputs say the key is in place, and the run is followed to its end; a later failure (cleanup) is reported beside it', async () => {
  const instance = await twin.createLockedOutInstance({ managed: {} });
  const before = await baseline(twin, instance);
  const home = mkdtempSync(join(scratch, 'home-'));
  const keyPath = join(home, '.ssh', `reset-access-${instance.instanceId}`);
  // cleanupOnline's DeleteTags fails at each of its 3 attempts, after the key is in place; restore's succeeds.
  twin.agent.injectFault({ service: 'ec2', action: 'DeleteTags', nth: 1, times: 3 });
  const r = await cli(home, 'reset', instance.instanceId, '--yes', '--document-name', twin.documentName);
  expect(r.code).toBe(4);
  expect(r.stdout).toContain(`The key is in place on ${instance.instanceId}: the private key is in ${keyPath} (mode 0600). Following the run to its end`);
  expect(r.stderr).toMatch(/^The run failed at cleanupOnline/m);
  expect(r.stderr).toContain(`Note: the key had been put in place (injectKeyOnline) and written to ${keyPath} before this failure.`);
  expect(statSync(keyPath).mode & 0o777).toBe(0o600);
  const privateKey = readFileSync(keyPath, 'utf8');
  expect(r.stdout + r.stderr).not.toContain(privateKey.split('\n')[1]);
  await twin.automation.drain();
  await expectNothingLost(twin, before, [KEY_FILE]);
  // The key the file holds is the one the run put in place (real ssh over the instance's disk).
  const login = await sshWith(instance.imagePath as string, keyPath, 'ec2-user');
  expect([login.ok, login.out.trim()]).toEqual([true, 'ec2-user']);
});
