/**
 * The main job as a user runs it (`tsx local/demo.ts`, what `npm start` runs): it exits 0,
 * shows progress and the summary, never prints key material, and leaves no process behind.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

jest.setTimeout(600000);

const ROOT = join(__dirname, '..', '..');

test('the demo resets a locked-out instance, logs in with ssh, and prints a summary without the key', () => {
  const run = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'local', 'demo.ts')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 540000,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const output = `${run.stdout}\n${run.stderr}`;
  // Report the end of the output on failure, never a key (checked below first).
  const keyInOutput = /PRIVATE KEY|openssh-key-v1|b3BlbnNzaC1rZXktdjE/.test(output);
  expect(keyInOutput).toBe(false);
  expect({ status: run.status, tail: output.split('\n').slice(-15).join('\n') }).toMatchObject({ status: 0 });
  expect(run.stdout).toContain('refused, as expected');
  // Both methods, each through the CLI and ending in a login with the key file it wrote.
  expect(run.stdout.match(/logged in as ec2-user/g)).toHaveLength(2);
  expect(run.stdout).toMatch(/method: +VolumeSwap \(Auto/);
  expect(run.stdout).toMatch(/method: +Online \(Auto/);
  expect(run.stdout).toMatch(/instance stopped: +never/);
  expect(run.stdout).toMatch(/login: +ssh -i \S+\/\.ssh\/reset-access-i-[0-9a-f]+ ec2-user@/);
  expect(run.stdout).toMatch(/time to access: +\d+\.\d s/);
  expect(run.stdout).toMatch(/key parameter: +\/ec2rl\/openssh\/i-[0-9a-f]+\/key/);
  expect(run.stdout).toMatch(/backup: +snap-[0-9a-f]+/);
  expect(run.stdout).toMatch(/files changed: +\/home\/ec2-user\/\.ssh\/authorized_keys/);
  expect(run.stdout).toMatch(/left behind: +no helper, no network, no lock/);
  for (const step of ['preflight', 'injectKey', 'waitForInstanceRunning', 'summarize', 'injectKeyOnline', 'summarizeOnline']) expect(run.stdout).toContain(step);
  // twin.stop() checked its servers, loop devices and mounts before the demo printed this line.
  expect(run.stdout).toContain('no mount, no loop device, no process left');
});
