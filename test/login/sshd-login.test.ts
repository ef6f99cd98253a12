/**
 * The end of the story: after the deployed script injected a generated public key into a disk
 * image, a real OpenSSH sshd (StrictModes yes, public keys only, on 127.0.0.1) reading that
 * image's users and authorized_keys accepts `ssh -i` with the generated private key, for both
 * key types, and rejects any other key. Before the injection the same key is rejected.
 */
import { join } from 'path';
import { generateKeyPair, type KeyType } from '@common/keys';
import { buildImage, type ImageSpec } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { runInjectScript } from '../../local/disk/run-inject';
import { sshLogin, startSshd, type SshdOptions } from '../../local/disk/sshd';
import { deployedScript, removeDir, scratchDir, systemState, VOLUME_ID } from '../support/disk';

let dir: string;
beforeAll(() => {
  dir = scratchDir('login-test-');
});
afterAll(() => {
  removeDir(dir);
});

async function withSshd<T>(options: SshdOptions, fn: (port: number, log: () => string) => Promise<T>): Promise<T> {
  const sshd = await startSshd({ ...options, timeoutSeconds: 60 });
  try {
    return await fn(sshd.port, sshd.log);
  } finally {
    await sshd.stop();
  }
}

const cases: Array<[KeyType, ImageSpec, string]> = [
  ['rsa', { layout: 'gpt-xfs-home', users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: null }] }, 'ec2-user'],
  ['ed25519', { layout: 'ext4-whole', cloudInitDefaultUser: 'admin', users: [{ name: 'admin', uid: 1000, gid: 1000, noSsh: true }] }, 'admin'],
];

describe.each(cases)('ssh login with a generated %s key', (type, spec, user) => {
  it('is refused before the injection, accepted after it, and any other key stays refused', async () => {
    // Prepare
    const state = systemState(dir);
    const pair = generateKeyPair(type);
    const other = generateKeyPair(type);
    const image = join(dir, `${type}.img`);
    await buildImage(image, spec);
    const loop = await attachLoop(image);
    try {
      const rootDevice = spec.layout === 'ext4-whole' ? loop.device : `${loop.device}p1`;
      const sshdOptions: SshdOptions = {
        root: { device: rootDevice, fstype: spec.layout === 'ext4-whole' ? 'ext4' : 'xfs' },
        home: spec.layout === 'gpt-xfs-home' ? { device: `${loop.device}p3`, fstype: 'ext4' } : undefined,
      };
      const before = await withSshd(sshdOptions, (port) => sshLogin({ port, user, privateKey: pair.privateKey }));
      expect(before.ok).toBe(false);

      // Act
      const result = await runInjectScript({
        script: deployedScript(),
        env: { SSM_VolumeId: VOLUME_ID, SSM_PublicKey: pair.publicKey, SSM_Users: '', SSM_Root: '' },
        volumes: { [VOLUME_ID]: loop.device },
        timeoutMs: 60_000,
      });
      expect(result.exitCode).toBe(0);
      expect(result.report?.changes).toEqual([{ user, uid: 1000, file: `/home/${user}/.ssh/authorized_keys`, action: 'created' }]);
      expect(result.report?.root?.device).toBe(rootDevice);

      // Assess
      await withSshd(sshdOptions, async (port, log) => {
        const ok = await sshLogin({ port, user, privateKey: pair.privateKey });
        expect(ok).toEqual({ ok: true, stdout: `${user}\n`, stderr: '' });
        const wrong = await sshLogin({ port, user, privateKey: other.privateKey });
        expect(wrong.ok).toBe(false);
        expect(wrong.stdout).toBe('');
        const otherUser = await sshLogin({ port, user: 'root', privateKey: pair.privateKey });
        expect(otherUser.ok).toBe(false);
        expect(log()).toContain(`Accepted publickey for ${user}`);
        expect(log()).toContain(pair.fingerprint);
        expect(log()).not.toContain(pair.privateKey.split('\n')[1]);
      });
    } finally {
      await detachLoop(loop.device);
    }
    expect(systemState(dir)).toEqual(state);
  });
});
