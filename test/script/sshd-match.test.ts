/**
 * Which AuthorizedKeysFile the inject-key script writes, against OpenSSH's own answer: for each
 * configuration (Match User/Group/all, negation, wildcards, keyword case, Include in and out of
 * Match blocks, %h %u %U %%, several entries), `sshd -T -C user=<u>,...` run over the image's own
 * /etc/ssh, /etc/passwd and /etc/group says which files sshd reads for each user; the script must
 * write the first of them (none exists yet, every one can be made).
 */
import { generateKeyPair } from '@common/keys';
import { buildImage, type ImageSpec } from '../../local/disk/images';
import { attachLoop, detachLoop } from '../../local/disk/loop';
import { sshdAuthorizedKeysFiles } from '../../local/disk/sshd';
import { inject, removeDir, scratchDir, systemState } from '../support/disk';
import { join } from 'path';

const key = generateKeyPair('ed25519');
const USERS = [
  { name: 'alice', uid: 1000, gid: 1000, authorizedKeys: null },
  { name: 'bob', uid: 1001, gid: 1500, authorizedKeys: null },
  { name: 'carol', uid: 1002, gid: 1002, authorizedKeys: null },
  { name: 'ec2-user', uid: 1003, gid: 1003, authorizedKeys: null },
];
const BASE: Omit<ImageSpec, 'sshdConfig'> = {
  layout: 'ext4-whole',
  users: USERS,
  groups: [
    { name: 'staff', gid: 1500, members: ['carol'] },
    { name: 'admins', gid: 2000, members: ['alice', 'carol'] },
  ],
  dirs: [{ path: '/etc/ssh/keys', mode: 0o755 }],
};

/** sshd_config(5) TOKENS for AuthorizedKeysFile: %% %h %U %u; a relative path is under the home. */
function expand(template: string, user: (typeof USERS)[number]): string {
  const home = `/home/${user.name}`;
  const out = template.replace(/%([%hUu])/g, (_m, t: string) => ({ '%': '%', h: home, U: String(user.uid), u: user.name })[t] as string);
  return out.startsWith('/') ? out : `${home}/${out}`;
}

const CASES: Array<[string, Partial<ImageSpec>, RegExp | null]> = [
  ['a global AuthorizedKeysFile before the Match blocks wins for everyone', {
    sshdConfig: 'AuthorizedKeysFile .ssh/authorized_keys\nMatch User alice,b?b\n  AuthorizedKeysFile /etc/ssh/keys/%u\nMatch User c*\n  AuthorizedKeysFile .ssh/carol_keys\n',
  }, null],
  ['Match User with a comma list and wildcards, before the global default', {
    sshdConfig: 'Match User alice,b?b\n  AuthorizedKeysFile /etc/ssh/keys/%u\nMatch User c*\n  AuthorizedKeysFile .ssh/carol_keys\n',
  }, null],
  ['a Match in an included file ends with that file; the line after the Include is global', {
    sshdConfig: 'Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile .ssh/authorized_keys\n',
    sshdConfigD: { '50-match.conf': 'Match User alice\n  AuthorizedKeysFile /etc/ssh/keys/%u\n', '60-x.conf': 'PasswordAuthentication no\n' },
  }, null],
  ['negation, keyword case and user-name case', {
    sshdConfig: 'Match User *,!alice\n  AuthorizedKeysFile .ssh/not_alice\nMatch User ALICE\n  AuthorizedKeysFile .ssh/upper\nmatch user alice\n  AuthorizedKeysFile .ssh/lower_%U\n',
  }, null],
  ['a list of negations only matches nobody; Group by primary and by membership; Match all', {
    sshdConfig: 'Match User !bob\n  AuthorizedKeysFile .ssh/never\nMatch Group admins\n  AuthorizedKeysFile %h/.ssh/admins_%u\nMatch Group staff,!admins\n  AuthorizedKeysFile /etc/ssh/keys/staff_%u\nMatch all\n  AuthorizedKeysFile .ssh/all %%x\n',
  }, null],
  ['Include inside a Match block (relative to /etc/ssh); an Address block cannot be known offline', {
    sshdConfig: 'Match Address 10.0.0.0/8\n  AuthorizedKeysFile /etc/ssh/keys/vpn_%u\nMatch User bob\n  Include bob.d/*.conf\nMatch all\n  AuthorizedKeysFile .ssh/authorized_keys\n',
    extraFiles: { '/etc/ssh/bob.d/10-keys.conf': 'AuthorizedKeysFile .ssh/bob_keys\n' },
  }, /^\/etc\/ssh\/sshd_config sets AuthorizedKeysFile in a Match block on Address, Host, LocalAddress, LocalPort or RDomain, which cannot be known offline: assumed not to apply$/],
  ['an Include inside a block that does not match adds nothing, not even its Match blocks', {
    sshdConfig: 'Match User nobody\n  Include /etc/ssh/sshd_config.d/*.conf\n',
    sshdConfigD: { '50-hidden.conf': 'AuthorizedKeysFile .ssh/hidden\nMatch User alice\n  AuthorizedKeysFile .ssh/alice_hidden\nMatch all\n  AuthorizedKeysFile .ssh/all_hidden\n' },
  }, null],
  ['Match all after a Match block that does not apply', { sshdConfig: 'Match User nobody\n  AuthorizedKeysFile /etc/ssh/keys/nobody\nMatch all\n  AuthorizedKeysFile .ssh/from_all_%u\n' }, null],
  ['no AuthorizedKeysFile at all: the compiled-in default', { sshdConfig: 'PasswordAuthentication no\n' }, null],
  // Review R1 findings:
  ['F7: ~name in AuthorizedKeysFile is that user\'s home, expanded when sshd reads its configuration', {
    sshdConfig: 'Match User alice\n  AuthorizedKeysFile ~alice/.ssh/tilde_keys\nMatch User carol\n  AuthorizedKeysFile ~carol/.ssh/authorized_keys ~carol/x\n',
  }, null],
  ['F10: an Include with a pattern in a directory component', {
    sshdConfig: 'Include /etc/ssh/conf*.x/*.conf\nAuthorizedKeysFile .ssh/not_this\n',
    extraFiles: {
      '/etc/ssh/conf1.x/10-a.conf': 'Match User alice\n  AuthorizedKeysFile .ssh/from_glob_dir\n',
      '/etc/ssh/conf2.x/20-b.conf': 'AuthorizedKeysFile .ssh/second_%u\n',
    },
  }, null],
  ['F11: Match patterns know * and ? only; an extended glob of bash is literal text', {
    sshdConfig: 'Match User @(alice|zed)\n  AuthorizedKeysFile .ssh/at\nMatch User +(c*)\n  AuthorizedKeysFile .ssh/plus\nMatch User *(*(*(a)))b,!(bob)\n  AuthorizedKeysFile .ssh/star\nMatch User [ab]*\n  AuthorizedKeysFile .ssh/bracket\n',
  }, null],
  ['F13: a group id with two names: sshd names it by the first, so membership of the second is not matched', {
    groups: [{ name: 'wheel2', gid: 10, members: [] }, { name: 'admins', gid: 10, members: ['alice', 'carol'] }, { name: 'staff', gid: 1500, members: ['carol'] }],
    sshdConfig: 'Match Group admins\n  AuthorizedKeysFile .ssh/admins\nMatch Group wheel2\n  AuthorizedKeysFile .ssh/wheel2\n',
  }, null],
];

let dir: string;
beforeAll(() => {
  dir = scratchDir('sshd-match-');
});
afterAll(() => {
  removeDir(dir);
});

describe('the file the script writes is the one sshd -T says sshd reads', () => {
  it.each(CASES)('%s', async (_name, config, warning) => {
    // Prepare
    const state = systemState(dir);
    const path = join(dir, 'match.img');
    await buildImage(path, { ...BASE, ...config } as ImageSpec);
    const loop = await attachLoop(path);
    let oracle: Record<string, string[]>;
    try {
      oracle = await sshdAuthorizedKeysFiles({ device: loop.device, fstype: 'ext4' }, USERS.map((u) => u.name));
    } finally {
      await detachLoop(loop.device);
    }
    expect(Object.keys(oracle).sort()).toEqual(USERS.map((u) => u.name).sort());

    // Act
    const result = await inject(path, { publicKey: key.publicKey, users: USERS.map((u) => u.name).join(',') });

    // Assess
    expect(result.report?.status).toBe('ok');
    for (const user of USERS) {
      const change = result.report?.changes.find((c) => c.user === user.name);
      expect({ user: user.name, file: change?.file }).toEqual({ user: user.name, file: expand(oracle[user.name][0], user) });
    }
    // One warning however many users it concerns.
    if (warning) expect(result.report?.warnings).toEqual([expect.stringMatching(warning)]);
    else expect(result.report?.warnings).toEqual([]);
    expect(systemState(dir)).toEqual(state);
  });

  it('several entries, the first in a directory that does not exist: the next one sshd reads', async () => {
    const path = join(dir, 'later.img');
    await buildImage(path, { ...BASE, sshdConfig: 'AuthorizedKeysFile /etc/ssh/missing/%u .ssh/authorized_keys\n' } as ImageSpec);
    const loop = await attachLoop(path);
    let oracle: Record<string, string[]>;
    try {
      oracle = await sshdAuthorizedKeysFiles({ device: loop.device, fstype: 'ext4' }, ['alice']);
    } finally {
      await detachLoop(loop.device);
    }
    expect(oracle.alice).toEqual(['/etc/ssh/missing/%u', '.ssh/authorized_keys']);

    const result = await inject(path, { publicKey: key.publicKey, users: 'alice' });

    expect(result.report?.status).toBe('ok');
    expect(result.report?.changes).toEqual([{ user: 'alice', uid: 1000, file: expand(oracle.alice[1], USERS[0]), action: 'created' }]);
  });
});
