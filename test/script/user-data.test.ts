/**
 * The user data of the UserData method, checked against real tools: cloud-init's own schema check
 * (Debian's cloud-init 22.4.2), bash's own parser (the compacted script is the same program), and
 * shellcheck (the bootcmd program is POSIX sh, as cloud-init runs it with /bin/sh). The 16 KB limit
 * of EC2 (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html) is
 * measured on what we generate.
 */
import { execFileSync, spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import { writeFileSync } from 'fs';
import { join } from 'path';
import { gunzipSync } from 'zlib';
import { parse } from 'yaml';
import { generateKeyPair } from '@common/keys';
import { MAX_USERS } from '@common/validation';
import {
  bootOnlyScript,
  buildUserData,
  compactScript,
  findMarker,
  isOurUserData,
  USER_DATA_MAX_BYTES,
  UserDataTooLargeError,
} from '@common/user-data';
import { deployedScript, removeDir, scratchDir } from '../support/disk';

let dir: string;
beforeAll(() => {
  dir = scratchDir('user-data-test-');
});
afterAll(() => {
  removeDir(dir);
});

const EXECUTION = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

function bootcmdProgram(text: string): string {
  const doc = parse(text) as { bootcmd: string[] };
  expect(doc.bootcmd).toHaveLength(1);
  return doc.bootcmd[0];
}

it("is valid cloud-config by cloud-init's own schema check, and gzip of exactly that text", () => {
  // Prepare
  const key = generateKeyPair('ed25519');
  const built = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: ['ec2-user', 'admin'], executionId: EXECUTION });
  const file = join(dir, 'user-data.yaml');
  writeFileSync(file, built.text);

  // Act
  const check = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' });

  // Assess
  expect(check.stderr).not.toMatch(/error|invalid|deprecat/i);
  expect(check.stdout).toContain('Valid cloud-config');
  expect(check.status).toBe(0);
  expect(gunzipSync(built.bytes).toString('utf8')).toBe(built.text);
  expect(isOurUserData(built.bytes)).toBe(true);
  // The check can fail: a wrong key in the same file is reported by the same tool.
  writeFileSync(file, built.text.replace('bootcmd:', 'bootcmd: 5\nbootcmdx:'));
  expect(spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' }).status).not.toBe(0);
});

it('carries the public key, never a private key, and its marker names the fingerprint', () => {
  const key = generateKeyPair('rsa');
  const built = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: [], executionId: EXECUTION });
  expect(built.text).toContain(key.publicKey);
  expect(built.text).not.toMatch(/-----BEGIN|openssh-key-v1|b3BlbnNzaC1rZXktdjE/);
  const privateBody = key.privateKey.split('\n').filter((l) => !l.startsWith('-----') && l.length > 20);
  for (const line of privateBody) expect(built.text).not.toContain(line);
  expect(built.fingerprint).toBe(key.fingerprint);
  // A private key given as the public key is refused, and never echoed.
  expect(() => buildUserData({ script: deployedScript(), publicKey: key.privateKey, users: [], executionId: EXECUTION })).toThrow(/private key/);
});

it('the compacted script is the same program for bash (bash --pretty-print of both agree)', () => {
  const script = deployedScript();
  const full = join(dir, 'full.sh');
  const compact = join(dir, 'compact.sh');
  writeFileSync(full, script);
  writeFileSync(compact, compactScript(script));
  const pretty = (file: string): string =>
    execFileSync('bash', ['--pretty-print', file], { encoding: 'utf8', maxBuffer: 16 << 20 })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .join('\n');
  expect(pretty(compact)).toBe(pretty(full));
  expect(compactScript(script).length).toBeLessThanOrEqual(script.length);
  // The comparison can fail: leaving out a line inside a multi-line string changes bash's parse.
  writeFileSync(compact, "x='a\n# not a comment\nb'\n");
  writeFileSync(full, compactScript("x='a\n# not a comment\nb'\n"));
  expect(pretty(full)).not.toBe(pretty(compact));
});

it('the bootcmd program is POSIX sh that shellcheck passes (cloud-init runs it with /bin/sh)', () => {
  const key = generateKeyPair('ed25519');
  const built = buildUserData({ script: deployedScript(), publicKey: key.publicKey, users: ['ec2-user'], executionId: EXECUTION });
  const file = join(dir, 'bootcmd.sh');
  writeFileSync(file, `#!/bin/sh\n${bootcmdProgram(built.text)}\n`);
  const check = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
  expect(check.stdout).toBe('');
  expect(check.status).toBe(0);
});

it('fits EC2\'s 16 KB with RSA 4096 and Ed25519 keys (margin measured); a larger result is refused before any change', () => {
  const script = deployedScript();
  const sizes: Record<string, number> = {};
  for (const type of ['ed25519', 'rsa'] as const) {
    const key = generateKeyPair(type);
    const built = buildUserData({ script, publicKey: key.publicKey, users: ['ec2-user'], executionId: EXECUTION });
    sizes[type] = built.bytes.length;
    expect(built.bytes.length).toBeLessThanOrEqual(USER_DATA_MAX_BYTES);
    // Uncompressed it would not fit: the compression is needed.
    expect(Buffer.byteLength(built.text)).toBeGreaterThan(USER_DATA_MAX_BYTES);
  }
  // The worst case the inputs allow: the largest key validatePublicKey accepts (RSA of 16384 bits,
  // its 256-character comment random, so nothing compresses), 32 users of 32 characters each.
  const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const field = (b: Buffer): Buffer => Buffer.concat([u32(b.length), b]);
  const modulus = randomBytes(2048);
  modulus[0] |= 0x80;
  const blob = Buffer.concat([field(Buffer.from('ssh-rsa')), field(Buffer.from([1, 0, 1])), field(Buffer.concat([Buffer.from([0]), modulus]))]);
  const longest = `ssh-rsa ${blob.toString('base64')} ${randomBytes(192).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 256)}`;
  const users = Array.from({ length: MAX_USERS }, (_, i) => `u${String(i).padStart(2, '0')}${'x'.repeat(29)}`);
  const worst = buildUserData({ script, publicKey: longest, users, executionId: EXECUTION });
  sizes.worst = worst.bytes.length;
  process.stdout.write(
    `user data sizes (gzip, what EC2 counts; base64 in transit ${worst.bytes.toString('base64').length} for the worst): ${JSON.stringify(sizes)} of ${USER_DATA_MAX_BYTES}\n`,
  );
  // Headroom (review U9): the script grows with every issue; this fails before the worst case
  // stops fitting, not after. The worst case keeps 1 KB, RSA 4096 (the default KeyType) 3 KB.
  expect(USER_DATA_MAX_BYTES - sizes.worst).toBeGreaterThanOrEqual(1024);
  expect(USER_DATA_MAX_BYTES - sizes.rsa).toBeGreaterThanOrEqual(3072);
  // A script that does not compress (random text) pushes it over: refused with the sizes named.
  const noise = Array.from({ length: 400 }, () => `: ${Math.random().toString(36).repeat(3)}`).join('\n');
  expect(() => buildUserData({ script: `${script}\n${noise}\n`, publicKey: generateKeyPair('ed25519').publicKey, users: [], executionId: EXECUTION })).toThrow(
    UserDataTooLargeError,
  );
});

it('the boot build leaves out only what the offline method alone reaches, and bash parses it', () => {
  const script = deployedScript();
  const boot = bootOnlyScript(script);
  const file = join(dir, 'boot.sh');
  writeFileSync(file, boot);
  expect(spawnSync('bash', ['-n', file], { encoding: 'utf8' }).status).toBe(0);
  const defined = (text: string): string[] => [...text.matchAll(/^([a-z_][a-z0-9_]*)\(\) \{$/gm)].map((m) => m[1]);
  const gone = defined(script).filter((f) => !defined(boot).includes(f));
  expect(gone).toContain('offline');
  expect(defined(boot)).toEqual(expect.arrayContaining(['main', 'online', 'plan', 'apply', 'inject_for', 'cleanup']));
  // Every function the online path calls is still defined: bash reports none missing when it runs
  // (test/script/user-data-boot.test.ts boots it under the real cloud-init and adds the key).
  process.stdout.write(`boot build leaves out: ${gone.join(' ')}\n`);
});

it('findMarker finds only this execution\'s marker line, the last one, even after other console text', () => {
  const fp = 'SHA256:abcdEFGH0123456789+/abcdefghijklmnopqrstuvw';
  const text = [
    '[    1.234] Linux version 6.1',
    `ec2-reset-access: user data other-run ok ${fp}`,
    `[   12.5] random: crng initec2-reset-access: user data ${EXECUTION} failed ${fp} users= files=`,
    `ec2-reset-access: user data ${EXECUTION} ok ${fp} users=ec2-user,admin files=/home/ec2-user/.ssh/authorized_keys,/home/admin/.ssh/my keys\r`,
  ].join('\n');
  expect(findMarker(text, EXECUTION)).toEqual({ result: 'ok', fingerprint: fp, users: 'ec2-user,admin', files: '/home/ec2-user/.ssh/authorized_keys,/home/admin/.ssh/my keys' });
  expect(findMarker(text.split('\n').slice(0, 3).join('\n'), EXECUTION)).toEqual({ result: 'failed', fingerprint: fp, users: '', files: '' });
  expect(findMarker(text, 'not-this-one')).toBeUndefined();
});
