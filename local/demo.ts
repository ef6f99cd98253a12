/**
 * The main job (`npm start`): a locked-out instance reset end to end on this machine.
 *
 * 1. starts the twin (moto + the agent, the synthesized app "deployed" into moto);
 * 2. builds the instance: a real ext4 root volume image whose ec2-user has only a key nobody has;
 * 3. shows that nobody can log in (a real sshd over the image refuses a fresh key);
 * 4. runs the synthesized runbook through the twin;
 * 5. reads the private key back from the SecureString parameter and logs in with a real `ssh`;
 * 6. proves the volume is byte-identical outside authorized_keys, and that nothing is left.
 *
 * The private key is held in memory only and never printed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { timeToAccess } from './runner/runner';
import { LockedOutInstance, startTwin, Twin } from './twin';

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

async function main(): Promise<void> {
  // The SDK's notice that its 2027 releases need Node 22 is not news for this demo's reader.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  progress('starting the local twin: moto on 127.0.0.1, the agent in front of it, the CDK app synthesized');
  const twin = await startTwin({ log: (line) => progress(line) });
  let stopped = false;
  let instance: LockedOutInstance | undefined;
  const summary: string[] = [];
  try {
    progress('building the locked-out instance: ext4 root volume image, ec2-user holds only a lost key');
    instance = await twin.createLockedOutInstance({});
    const imagePath = instance.imagePath as string;
    progress(`instance ${instance.instanceId} running, root ${instance.rootVolumeId} at ${instance.rootDeviceName}`);
    const before = await twin.disk.snapshotImage(imagePath);
    const instanceBefore = await twin.snapshotInstance(instance.instanceId);

    progress('checking that nobody can log in now (real sshd over the volume, a fresh key)');
    const locked = await tryLogin(twin, imagePath, throwawayKey());
    if (locked.ok) throw new DemoFailure('a fresh key logged in before the reset: the instance is not locked out');
    progress('  refused, as expected');

    progress('running the ResetAccess runbook (synthesized document, bundled Lambdas, virtual clock)');
    const runStart = twin.clock.now();
    const run = await twin.runReset(
      { InstanceId: instance.instanceId },
      {
        log: (line) => {
          const m = /^\[([\d.]+)s\] (\S+) (\S+)/.exec(line);
          if (m && m[2] !== 'execution') progress(`  ${m[2].padEnd(24)} ${m[3].padEnd(9)} at ${m[1]} s modeled`);
        },
      },
    );
    const { result } = run;
    if (result.status !== 'Success') {
      throw new DemoFailure(`the runbook ended ${result.status}: ${result.failureMessage ?? 'no message'}`);
    }
    // The runbook's result is summarize.Payload: one JSON object of at most 512 characters.
    const summary0 = JSON.parse(String(result.outputs['summarize.Payload'] ?? '{}')) as Record<string, unknown>;
    const out = (name: string) => String(summary0[name] ?? '');
    const keyParameterName = out('KeyParameterName');

    progress(`reading the private key back from ${keyParameterName} (GetParameter WithDecryption)`);
    const privateKey = await twin.getParameter(keyParameterName, true);
    if (!privateKey) throw new DemoFailure(`the parameter ${keyParameterName} holds no key`);

    progress('logging in with a real ssh to a real sshd reading the volume');
    const login = await tryLogin(twin, imagePath, privateKey);
    if (!login.ok || login.user !== 'ec2-user') throw new DemoFailure('ssh with the new key did not log in as ec2-user');
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
    const left = await twin.leftovers();
    const leftIds = [
      ...left.helpers,
      ...left.vpcs,
      ...left.subnets,
      ...left.internetGateways,
      ...left.routeTables,
      ...left.securityGroups,
      ...left.locks,
    ];
    if (leftIds.length > 0) throw new DemoFailure(`left behind in the emulator: ${leftIds.join(', ')}`);

    // Access is back when the target is running again (its StartInstances completes); the
    // runbook notices it at waitForInstanceRunning.
    const start = twin.clock
      .history()
      .filter((op) => op.op === 'StartInstances' && op.resourceIds.includes(instance!.instanceId))
      .at(-1);
    const reported = timeToAccess(result, ['waitForInstanceRunning', 'startInstance']);
    summary.push('', 'ResetAccess on the local twin: success', '');
    summary.push('  step                       modeled start   duration');
    for (const s of result.steps) {
      summary.push(`  ${s.name.padEnd(26)} ${seconds(s.startedAt).padStart(9)} ${seconds(s.endedAt - s.startedAt).padStart(10)}   ${s.status}`);
    }
    summary.push('');
    if (start) summary.push(`  time to access:     ${seconds(start.completesAt - runStart)} (the instance is running again, modeled)`);
    if (reported !== undefined) summary.push(`  runbook reports it: ${seconds(reported)} (end of waitForInstanceRunning)`);
    summary.push(`  whole run:          ${seconds(result.modeledSeconds)} modeled, ${((Date.now() - started) / 1000).toFixed(1)} s real for this demo`);
    summary.push(`  key parameter:      ${keyParameterName} (SecureString, stack KMS key; read back and used, never printed)`);
    summary.push(`  key fingerprint:    ${out('Fingerprint')}`);
    summary.push(`  backup:             ${out('BackupId')}`);
    summary.push(`  users changed:      ${out('UsersChanged')}`);
    summary.push(`  files changed:      ${filesChanged.join(', ')}`);
    summary.push(`  volume:             byte-identical outside those files (${after.entries.size} entries compared)`);
    summary.push(`  login:              ssh -i <key> ec2-user@127.0.0.1 -> ${login.user}`);
    summary.push(`  API calls:          ${Object.values(run.calls).reduce((a, b) => a + b, 0)} through the agent`);
    summary.push('  left behind:        no helper, no network, no lock (checked in the emulator)');
  } finally {
    stopped = true;
    await twin.stop();
  }
  if (!stopped) return;
  // twin.stop() checked its own servers, loop devices and mounts; check the machine once more.
  const loops = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout;
  if (instance?.imagePath && loops.includes(instance.imagePath)) throw new DemoFailure('a loop device is left on the image');
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
