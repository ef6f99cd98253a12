/**
 * The main job (`npm start`): a locked-out instance reset end to end on this machine.
 *
 * 1. starts the twin (moto + the agent, the synthesized app "deployed" into moto);
 * then for two instances, one Systems Manager does not manage (Auto takes the volume swap) and a
 * managed node with a recent SSM Agent (Auto takes the online method, no stop):
 * 2. builds the instance: a real ext4 root volume image whose ec2-user has only a key nobody has;
 * 3. shows that nobody can log in (a real sshd over the image refuses a fresh key);
 * 4. runs the CLI as a user does, `ec2-reset-access reset <instance-id> --yes`, against the twin's
 *    endpoint (AWS_ENDPOINT_URL): it starts the synthesized runbook on the twin's Automation API,
 *    shows the steps live (in a pseudo-terminal when this runs in one: `script`), writes the key to
 *    ~/.ssh/reset-access-<instance-id> (a temporary HOME here) and prints the ssh command;
 * 5. logs in with a real `ssh` with that key file and user, to a real sshd reading the volume;
 * 6. proves the volume is byte-identical outside authorized_keys, and that nothing is left.
 *
 * The private key is never printed: it goes from the parameter to the 0600 file, by the CLI.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetAutomationExecutionCommand, SSMClient } from '@aws-sdk/client-ssm';
import { LockedOutSpec, PROJECT_ROOT, REGION, startTwin, Twin } from './twin';

const CLI = join(PROJECT_ROOT, 'cli', 'ec2-reset-access.cjs');

const started = Date.now();

function elapsed(): string {
  return `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
}

function progress(line: string): void {
  process.stdout.write(`${elapsed()}  ${line}\n`);
}

function seconds(t: number): string {
  return `${(Math.round(t * 10) / 10).toFixed(1)} s`;
}

class DemoFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoFailure';
  }
}

/** A throwaway key pair (for the "nobody can log in" check); its files are removed at once. */
function throwawayKey(): string {
  const dir = mkdtempSync(join(tmpdir(), 'demo-throwaway-'));
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'throwaway', '-f', join(dir, 'k')]);
    return execFileSync('cat', [join(dir, 'k')], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function tryLogin(twin: Twin, imagePath: string, privateKey: string): Promise<{ ok: boolean; user: string }> {
  const sshd = await twin.disk.startSshd(imagePath);
  try {
    const r = await twin.disk.sshLogin({ port: sshd.port, user: 'ec2-user', privateKey, command: 'id -un' });
    return { ok: r.ok, user: r.stdout.trim() };
  } finally {
    await sshd.stop();
  }
}

const run = promisify(execFile);

/**
 * The CLI, as a child process (the twin serves it from this process, so not spawnSync), its
 * output shown as it comes and kept. In a terminal it runs inside a pseudo-terminal (`script`
 * from util-linux), so it draws its live display; piped, it prints plain lines.
 */
async function runCli(twin: Twin, home: string, args: string[]): Promise<{ code: number; text: string }> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: home,
    TERM: process.env.TERM ?? 'xterm',
    AWS_ENDPOINT_URL: twin.agent.endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: 'demo',
    AWS_SECRET_ACCESS_KEY: 'demo',
    AWS_CONFIG_FILE: join(home, 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-credentials'),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    EC2_RESET_ACCESS_POLL_MS: '250',
  };
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  // The pseudo-terminal gets this terminal's size (script sizes it from its own stdin, not a
  // terminal here), so that the display wraps as it would.
  const size = `stty cols ${process.stdout.columns || 120} rows ${process.stdout.rows || 40}`;
  const child = process.stdout.isTTY
    ? spawn('script', ['-qfec', `${size}; exec ${quoted}`, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => {
    process.stdout.write(d);
    text += d.toString('utf8');
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  // eslint-disable-next-line no-control-regex
  return { code, text: text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '') };
}

/** Real ssh with the key file the CLI wrote (ssh itself refuses a key file others can read). */
async function sshWithFile(twin: Twin, imagePath: string, keyFile: string, user: string): Promise<{ ok: boolean; user: string }> {
  const sshd = await twin.disk.startSshd(imagePath);
  try {
    const r = await run('timeout', [
      '30', 'ssh', '-F', '/dev/null', '-i', keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-p', String(sshd.port), `${user}@127.0.0.1`, 'id -un',
    ]);
    return { ok: true, user: r.stdout.trim() };
  } catch {
    return { ok: false, user: '' };
  } finally {
    await sshd.stop();
  }
}

/** One locked-out instance reset through the CLI; returns its summary lines. */
async function resetOne(twin: Twin, spec: LockedOutSpec, label: string, cleanups: (() => void)[], images: string[]): Promise<string[]> {
  progress(`${label}: building the locked-out instance: ext4 root volume image, ec2-user holds only a lost key`);
  const instance = await twin.createLockedOutInstance(spec);
  const imagePath = instance.imagePath as string;
  images.push(imagePath);
  progress(`instance ${instance.instanceId} running, root ${instance.rootVolumeId} at ${instance.rootDeviceName}`);
  const before = await twin.disk.snapshotImage(imagePath);
  const instanceBefore = await twin.snapshotInstance(instance.instanceId);

  progress('checking that nobody can log in now (real sshd over the volume, a fresh key)');
  const locked = await tryLogin(twin, imagePath, throwawayKey());
  if (locked.ok) throw new DemoFailure('a fresh key logged in before the reset: the instance is not locked out');
  progress('  refused, as expected');

  const home = mkdtempSync(join(tmpdir(), 'demo-home-'));
  cleanups.push(() => rmSync(home, { recursive: true, force: true }));
  progress(`running the CLI: ec2-reset-access reset ${instance.instanceId} --yes   (HOME=${home}, AWS_ENDPOINT_URL=the twin)`);
  const runStart = twin.clock.now();
  const historyFrom = twin.clock.history().length;
  const cli = await runCli(twin, home, ['reset', instance.instanceId, '--yes', '--document-name', twin.documentName]);
  if (cli.code !== 0) throw new DemoFailure(`the CLI exited ${cli.code}`);
  const printed = /ssh -i (\S+) (\S+)@(\S+)/.exec(cli.text);
  if (!printed) throw new DemoFailure('the CLI printed no ssh command');
  const [, keyFile, user, address] = printed;
  const executionId = /Started execution ([0-9a-f-]{36})/.exec(cli.text)?.[1] as string;
  const api = new SSMClient({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
  const execution = (await api.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }))).AutomationExecution;
  // The result: summarize.Payload (volume swap) or summarizeOnline.Payload (online, issue 12).
  const payload = [execution?.Outputs?.['summarize.Payload']?.[0], execution?.Outputs?.['summarizeOnline.Payload']?.[0]].find((v) => v?.startsWith('{'));
  const summary0 = JSON.parse(payload ?? '{}') as Record<string, unknown>;
  const out = (name: string) => String(summary0[name] ?? '');
  const keyParameterName = out('KeyParameterName');

  progress(`logging in with the printed command, ssh -i ${keyFile} ${user}@${address}, to a real sshd reading the volume (127.0.0.1 stands for ${address})`);
  const login = await sshWithFile(twin, imagePath, keyFile, user);
  if (!login.ok || login.user !== 'ec2-user') throw new DemoFailure('ssh with the key file the CLI wrote did not log in as ec2-user');
  progress(`  logged in as ${login.user}`);

  const after = await twin.disk.snapshotImage(imagePath);
  const changed = twin.disk.diffImage(before, after).map((d) => d.key);
  const filesChanged = out('FilesChanged').split(',').filter(Boolean);
  const unexpected = changed.filter((key) => !filesChanged.some((f) => key.endsWith(`:${f}`)));
  if (unexpected.length > 0) throw new DemoFailure(`the volume changed outside the key files: ${unexpected.join(', ')}`);

  const instanceAfter = await twin.snapshotInstance(instance.instanceId);
  if (
    instanceAfter.state !== instanceBefore.state ||
    instanceAfter.rootVolumeId !== instanceBefore.rootVolumeId ||
    instanceAfter.rootDeviceName !== instanceBefore.rootDeviceName ||
    instanceAfter.rootDeleteOnTermination !== instanceBefore.rootDeleteOnTermination
  ) {
    throw new DemoFailure('the instance is not as it was (state, root volume, device name or DeleteOnTermination)');
  }
  const ops = twin.clock.history().slice(historyFrom).filter((op) => op.resourceIds.includes(instance.instanceId));
  const stops = ops.filter((op) => op.op === 'StopInstances').length;

  const method = out('Method');
  const t0 = execution?.ExecutionStartTime?.getTime() ?? 0;
  const steps = execution?.StepExecutions ?? [];
  const lines = ['', `${label}: ResetAccess through the CLI, method ${method || '?'}: success`, ''];
  lines.push('  step                       modeled start   duration');
  for (const x of steps) {
    const a = (x.ExecutionStartTime?.getTime() ?? t0) - t0;
    const b = (x.ExecutionEndTime?.getTime() ?? t0) - t0;
    lines.push(`  ${String(x.StepName).padEnd(26)} ${seconds(a / 1000).padStart(9)} ${seconds((b - a) / 1000).padStart(10)}   ${x.StepStatus}`);
  }
  lines.push('');
  if (method === 'Online') {
    // Access is back when the inject command has run on the instance, which never stopped.
    const injected = steps.find((x) => x.StepName === 'waitForOnlineInjection')?.ExecutionEndTime?.getTime();
    if (injected !== undefined) lines.push(`  time to access:     ${seconds((injected - t0) / 1000)} (the key is in, the instance never stopped, modeled)`);
  } else {
    // Access is back when the target is running again (its StartInstances completes); the
    // runbook notices it at waitForInstanceRunning.
    const start = ops.filter((op) => op.op === 'StartInstances').at(-1);
    const waited = steps.find((x) => x.StepName === 'waitForInstanceRunning')?.ExecutionEndTime?.getTime();
    if (start) lines.push(`  time to access:     ${seconds(start.completesAt - runStart)} (the instance is running again, modeled)`);
    if (waited !== undefined) lines.push(`  runbook reports it: ${seconds((waited - t0) / 1000)} (end of waitForInstanceRunning)`);
  }
  lines.push(`  whole run:          ${seconds(((execution?.ExecutionEndTime?.getTime() ?? t0) - t0) / 1000)} modeled`);
  lines.push(`  method:             ${method} (${out('MethodReason')})`);
  lines.push(`  instance stopped:   ${stops === 0 ? 'never' : `${stops} time(s), started again`}`);
  lines.push(`  key parameter:      ${keyParameterName} (SecureString, stack KMS key; the CLI wrote it to ${keyFile}, mode 0600, and deleted it; never printed)`);
  lines.push(`  key fingerprint:    ${out('Fingerprint')}`);
  lines.push(`  backup:             ${out('BackupId')}`);
  lines.push(`  users changed:      ${out('UsersChanged')}`);
  lines.push(`  files changed:      ${filesChanged.join(', ')}`);
  lines.push(`  volume:             byte-identical outside those files (${after.entries.size} entries compared)`);
  lines.push(`  login:              ssh -i ${keyFile} ${user}@${address} (at 127.0.0.1) -> ${login.user}`);
  return lines;
}

async function main(): Promise<void> {
  // The SDK's notice that its 2027 releases need Node 22 is not news for this demo's reader.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  progress('building the CLI (npm run build:cli: esbuild of cli/main.ts)');
  execFileSync('npm', ['run', '--silent', 'build:cli'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
  progress('starting the local twin: moto on 127.0.0.1, the agent in front of it, the CDK app synthesized');
  const twin = await startTwin({ log: (line) => progress(line) });
  let stopped = false;
  const images: string[] = [];
  const summary: string[] = [];
  const cleanups: (() => void)[] = [];
  try {
    // Method Auto on both: preflight picks the volume swap for an instance Systems Manager does
    // not manage, and the online method for a running managed node with a recent SSM Agent.
    summary.push(...(await resetOne(twin, {}, 'instance 1 (not a managed node)', cleanups, images)));
    summary.push(...(await resetOne(twin, { managed: {} }, 'instance 2 (a managed node, SSM Agent online)', cleanups, images)));
    const left = await twin.leftovers();
    const leftIds = [...left.helpers, ...left.vpcs, ...left.subnets, ...left.internetGateways, ...left.routeTables, ...left.securityGroups, ...left.locks];
    if (leftIds.length > 0) throw new DemoFailure(`left behind in the emulator: ${leftIds.join(', ')}`);
    summary.push('');
    summary.push(`  both runs:          ${((Date.now() - started) / 1000).toFixed(1)} s real for this demo`);
    summary.push(`  API calls:          ${Object.values(twin.agent.calls()).reduce((a, b) => a + b, 0)} through the agent (the CLI's and the runbooks')`);
    summary.push('  left behind:        no helper, no network, no lock (checked in the emulator)');
  } finally {
    stopped = true;
    await twin.stop();
    for (const c of cleanups) c();
  }
  if (!stopped) return;
  // twin.stop() checked its own servers, loop devices and mounts; check the machine once more.
  const loops = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout;
  if (images.some((i) => loops.includes(i))) throw new DemoFailure('a loop device is left on an image');
  summary.push('  on this machine:    no mount, no loop device, no process left (moto, agent, sshd stopped)');
  process.stdout.write(`${summary.join('\n')}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(`\nthe demo failed: ${message}\n`);
    process.exit(1);
  },
);
