/**
 * Disk images of EC2 Linux root volumes, small and sparse, built from a spec: the layouts real
 * instances have (whole-disk ext4, GPT with a BIOS boot partition and xfs, a separate /home, a
 * separate /var holding /var/home, btrfs subvolumes, LVM) and two that must be refused (no Linux
 * root, two roots). Each holds a
 * minimal but realistic root: /etc/passwd, group, shadow, ssh/sshd_config (+ sshd_config.d),
 * cloud/cloud.cfg, fstab, selinux/config, and the users' homes.
 *
 * snapshotImage/diffImage prove that a disk is unchanged outside the expected files: they
 * record the partition table and, for every filesystem, every file's type, mode, owner, size,
 * content hash, symlink target, xattrs and attribute flags (raw bytes for partitions without a
 * filesystem, such as an LVM physical volume).
 *
 * All mounting happens in a private mount namespace (unshare), so nothing stays mounted even
 * if this process dies; loop devices are detached in finally blocks.
 */
import { execFile } from 'child_process';
import { randomUUID } from 'crypto';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import { promisify } from 'util';
import { attachLoop, detachLoop } from './loop';

const run = promisify(execFile);

export type ImageLayout = 'ext4-whole' | 'gpt-xfs' | 'gpt-xfs-home' | 'gpt-var' | 'btrfs' | 'lvm' | 'no-root' | 'two-roots';

export interface ImageUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** @default /bin/bash */
  readonly shell?: string;
  /** @default /home/<name> (/root for uid 0) */
  readonly home?: string;
  /** Exact content of the default authorized_keys file (may lack a final newline); null: no file. @default null */
  readonly authorizedKeys?: string | null;
  /** No .ssh directory at all. @default false */
  readonly noSsh?: boolean;
  /** The home directory does not exist at all. @default false */
  readonly noHome?: boolean;
}

export interface ImageSpec {
  readonly layout: ImageLayout;
  /** @default 64 for ext4 layouts, 160 for btrfs and LVM, 320 for xfs (its minimum is 300) */
  readonly sizeMiB?: number;
  /** Users besides root (root is always there, uid 0, home /root). */
  readonly users?: readonly ImageUser[];
  /** cloud-init's system_info.default_user.name in /etc/cloud/cloud.cfg; null: no cloud.cfg. @default 'ec2-user' */
  readonly cloudInitDefaultUser?: string | null;
  /** Files under /etc/cloud/cloud.cfg.d: name -> content. */
  readonly cloudCfgD?: Readonly<Record<string, string>>;
  /** /etc/ssh/sshd_config. @default a stock config with `Include /etc/ssh/sshd_config.d/*.conf` */
  readonly sshdConfig?: string;
  /** Files under /etc/ssh/sshd_config.d: name -> content. */
  readonly sshdConfigD?: Readonly<Record<string, string>>;
  /** SELINUX= in /etc/selinux/config; omitted: no such file. */
  readonly selinux?: 'enforcing' | 'permissive' | 'disabled';
  /** Give this user's authorized_keys the immutable flag (chattr +i). */
  readonly immutableKeyFileOf?: string;
  /** Make this user's authorized_keys a symlink to an absolute path holding `content` in the image. */
  readonly symlinkKeyFile?: { readonly user: string; readonly target: string; readonly content: string };
  /** gpt-xfs layouts: the xfs root gets this UUID (e.g. that of an xfs already mounted). */
  readonly xfsUuid?: string;
  /** More files in the root: absolute path -> content (mode 0644, root-owned). */
  readonly extraFiles?: Readonly<Record<string, string>>;
  /** More directories in the root (made after the homes): mode and owner. */
  readonly dirs?: ReadonlyArray<{ readonly path: string; readonly mode: number; readonly uid?: number; readonly gid?: number }>;
  /** Symbolic links in the root (made last, replacing what is there), owned by uid:gid. */
  readonly links?: ReadonlyArray<{ readonly path: string; readonly target: string; readonly uid?: number; readonly gid?: number }>;
  /** More /etc/group entries (name, gid, member users). */
  readonly groups?: ReadonlyArray<{ readonly name: string; readonly gid: number; readonly members: readonly string[] }>;
  /** Fill the root filesystem to its last block (a file /fill). */
  readonly fill?: boolean;
  /**
   * A user added (passwd line and a home with an empty .ssh) just before a forced stop: the change
   * is committed in the root filesystem's journal only, not at its home location (ext4: the disk as
   * it was after an fsync; xfs: a shutdown after a log flush, as xfstests' godown).
   */
  readonly userInJournalOnly?: ImageUser;
}

/** Default users: the AL2023 default user. */
export const DEFAULT_USERS: readonly ImageUser[] = [{ name: 'ec2-user', uid: 1000, gid: 1000 }];

export const DEFAULT_SSHD_CONFIG = [
  '# sshd_config of a test image',
  'Include /etc/ssh/sshd_config.d/*.conf',
  'PermitRootLogin forced-commands-only',
  'PasswordAuthentication no',
  'KbdInteractiveAuthentication no',
  '#AuthorizedKeysFile .ssh/authorized_keys',
  'Subsystem sftp /usr/libexec/openssh/sftp-server',
  '',
].join('\n');

interface FsPlan {
  /** Partition number, or 0 for the whole disk. */
  readonly partition: number;
  /** An LVM logical volume inside that partition: the byte range of its data. */
  readonly lv?: { readonly offset: number; readonly size: number };
  readonly fstype: 'ext4' | 'xfs' | 'btrfs';
  readonly uuid: string;
  readonly label: string;
  /**
   * Stage directories copied in: subvolume '' for the filesystem root, or a btrfs subvolume
   * name; targetPath is where the content appears in the target ('/' or '/home').
   */
  readonly content: ReadonlyArray<{ readonly subvolume: string; readonly stage: string; readonly targetPath?: string }>;
}

/** Which filesystem holds a target path, and the path inside it (from its top level). */
function locate(filesystems: readonly FsPlan[], targetPath: string): { fs: FsPlan; path: string } | undefined {
  let best: { fs: FsPlan; path: string; length: number } | undefined;
  for (const fs of filesystems) {
    for (const c of fs.content) {
      const prefix = c.targetPath ?? '/';
      const inside = prefix === '/' || targetPath === prefix || targetPath.startsWith(`${prefix}/`);
      if (inside && (!best || prefix.length > best.length)) {
        const rest = prefix === '/' ? targetPath : targetPath.slice(prefix.length);
        best = { fs, path: `${c.subvolume ? `/${c.subvolume}` : ''}${rest}`, length: prefix.length };
      }
    }
  }
  return best ? { fs: best.fs, path: best.path } : undefined;
}

function homeOf(user: ImageUser): string {
  return user.home ?? (user.uid === 0 ? '/root' : `/home/${user.name}`);
}

function writeStageFile(stage: string, path: string, content: string, mode = 0o644, uid = 0, gid = 0): void {
  const full = join(stage, path);
  mkdirSync(dirname(full), { recursive: true, mode: 0o755 });
  writeFileSync(full, content);
  chmodSync(full, mode);
  chownSync(full, uid, gid);
}

function makeDir(stage: string, path: string, mode: number, uid: number, gid: number): void {
  const full = join(stage, path);
  mkdirSync(full, { recursive: true });
  chmodSync(full, mode);
  chownSync(full, uid, gid);
}

/** Write a Linux root into `rootStage`, homes under /home into `homeStage` (may be the same tree). */
function stageRoot(spec: ImageSpec, rootStage: string, homeStage: string, fstab: string, varStage?: string): void {
  const users = [{ name: 'root', uid: 0, gid: 0, shell: '/bin/bash', home: '/root' } as ImageUser, ...(spec.users ?? DEFAULT_USERS)];
  for (const dir of ['etc', 'etc/ssh', 'etc/ssh/sshd_config.d', 'bin', 'usr', 'usr/bin', 'var', 'tmp', 'home', 'root']) {
    makeDir(rootStage, dir, dir === 'tmp' ? 0o1777 : dir === 'root' ? 0o550 : 0o755, 0, 0);
  }
  makeDir(homeStage, 'home', 0o755, 0, 0);
  const passwd = [
    ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${homeOf(u)}:${u.shell ?? '/bin/bash'}`),
    'daemon:x:2:2:daemon:/sbin:/sbin/nologin',
    'sshd:x:74:74:Privilege-separated SSH:/usr/share/empty.sshd:/sbin/nologin',
    'nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin',
  ];
  const groupIds = new Map<number, string>([[0, 'root'], [2, 'daemon'], [74, 'sshd'], [65534, 'nobody']]);
  for (const u of users) if (!groupIds.has(u.gid) && !(spec.groups ?? []).some((g) => g.gid === u.gid)) groupIds.set(u.gid, u.name);
  writeStageFile(rootStage, 'etc/passwd', `${passwd.join('\n')}\n`);
  const groupLines = [...groupIds].map(([gid, name]) => `${name}:x:${gid}:`);
  for (const g of spec.groups ?? []) groupLines.push(`${g.name}:x:${g.gid}:${g.members.join(',')}`);
  writeStageFile(rootStage, 'etc/group', `${groupLines.join('\n')}\n`);
  // "*": no password login, not locked (the test sshd runs without PAM, where "!" means locked).
  const shadow = [...users.map((u) => u.name), 'daemon', 'sshd', 'nobody'].map((n) => `${n}:*:19700:0:99999:7:::`);
  writeStageFile(rootStage, 'etc/shadow', `${shadow.join('\n')}\n`, 0o000);
  writeStageFile(rootStage, 'etc/ssh/sshd_config', spec.sshdConfig ?? DEFAULT_SSHD_CONFIG, 0o600);
  for (const [name, content] of Object.entries(spec.sshdConfigD ?? {})) {
    writeStageFile(rootStage, `etc/ssh/sshd_config.d/${name}`, content, 0o600);
  }
  writeStageFile(rootStage, 'etc/fstab', fstab);
  writeStageFile(rootStage, 'etc/hostname', 'target\n');
  writeStageFile(rootStage, 'etc/os-release', 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\n');
  writeStageFile(rootStage, 'usr/bin/data.bin', 'x'.repeat(100_000));
  const defaultUser = spec.cloudInitDefaultUser === undefined ? 'ec2-user' : spec.cloudInitDefaultUser;
  if (defaultUser !== null) {
    writeStageFile(
      rootStage,
      'etc/cloud/cloud.cfg',
      [
        'users:',
        '  - default',
        'disable_root: true',
        'system_info:',
        '  default_user:',
        `    name: ${defaultUser}`,
        '    lock_passwd: true',
        '    gecos: Default User',
        '    groups: [wheel, adm, systemd-journal]',
        '    shell: /bin/bash',
        '  distro: amazon',
        '',
      ].join('\n'),
    );
  }
  for (const [name, content] of Object.entries(spec.cloudCfgD ?? {})) {
    writeStageFile(rootStage, `etc/cloud/cloud.cfg.d/${name}`, content);
  }
  if (spec.selinux) {
    writeStageFile(rootStage, 'etc/selinux/config', `# SELinux\nSELINUX=${spec.selinux}\nSELINUXTYPE=targeted\n`);
  }
  for (const [path, content] of Object.entries(spec.extraFiles ?? {})) {
    writeStageFile(rootStage, path.replace(/^\//, ''), content);
  }
  for (const u of users) {
    if (u.noHome) continue;
    // With a separate /var, /home is a link to var/home: a home under either lives in /var/home.
    const home = varStage && homeOf(u).startsWith('/home/') ? `/var${homeOf(u)}` : homeOf(u);
    const stage = home.startsWith('/home/') ? homeStage : varStage && home.startsWith('/var/') ? varStage : rootStage;
    if (stage === varStage) makeDir(varStage, dirname(home), 0o755, 0, 0);
    makeDir(stage, home, 0o700, u.uid, u.gid);
    writeStageFile(stage, `${home}/.bashrc`, '# .bashrc\n', 0o644, u.uid, u.gid);
    if (u.noSsh) continue;
    const keys = u.authorizedKeys ?? null;
    const symlink = spec.symlinkKeyFile?.user === u.name ? spec.symlinkKeyFile : undefined;
    if (keys === null && !symlink && u.uid !== 0) {
      makeDir(stage, `${home}/.ssh`, 0o700, u.uid, u.gid);
      continue;
    }
    makeDir(stage, `${home}/.ssh`, 0o700, u.uid, u.gid);
    if (symlink) {
      writeStageFile(rootStage, symlink.target.replace(/^\//, ''), symlink.content, 0o600, u.uid, u.gid);
      symlinkSync(symlink.target, join(stage, home, '.ssh/authorized_keys'));
      lchownSync(join(stage, home, '.ssh/authorized_keys'), u.uid, u.gid);
    } else if (keys !== null) {
      writeStageFile(stage, `${home}/.ssh/authorized_keys`, keys, 0o600, u.uid, u.gid);
    }
  }
  for (const d of spec.dirs ?? []) makeDir(rootStage, d.path, d.mode, d.uid ?? 0, d.gid ?? 0);
  for (const l of spec.links ?? []) {
    const full = join(rootStage, l.path);
    rmSync(full, { recursive: true, force: true });
    symlinkSync(l.target, full);
    lchownSync(full, l.uid ?? 0, l.gid ?? 0);
  }
}

/** A data filesystem with no Linux root on it. */
function stageData(stage: string): void {
  writeStageFile(stage, 'data/readme.txt', 'not a root filesystem\n');
  writeStageFile(stage, 'etc/hosts', '127.0.0.1 localhost\n');
}

function fstabLine(spec: string, mountpoint: string, fstype: string, options = 'defaults'): string {
  return `${spec}\t${mountpoint}\t${fstype}\t${options}\t0 0`;
}

function sgdiskArgs(parts: ReadonlyArray<{ n: number; size: string; type: string; name: string }>, image: string): string[] {
  const args: string[] = ['-o'];
  for (const p of parts) {
    args.push(`-n${p.n}:0:${p.size}`, `-t${p.n}:${p.type}`, `-c${p.n}:${p.name}`);
  }
  args.push(image);
  return args;
}

function defaultSize(layout: ImageLayout): number {
  if (layout === 'gpt-xfs' || layout === 'gpt-xfs-home') return layout === 'gpt-xfs-home' ? 420 : 320;
  if (layout === 'gpt-var') return 360;
  if (layout === 'btrfs') return 160;
  if (layout === 'lvm') return 128;
  return 64;
}

/** Build a disk image at `path` (overwritten) following `spec`. */
export async function buildImage(path: string, spec: ImageSpec): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'image-stage-'));
  chmodSync(work, 0o700);
  try {
    rmSync(path, { force: true });
    await run('truncate', ['-s', `${spec.sizeMiB ?? defaultSize(spec.layout)}M`, path]);
    const filesystems: FsPlan[] = [];
    const stage = (name: string): string => {
      const dir = join(work, name);
      mkdirSync(dir, { mode: 0o755 });
      return dir;
    };
    const lvm: { partition: number } | undefined = spec.layout === 'lvm' ? { partition: 3 } : undefined;
    switch (spec.layout) {
      case 'ext4-whole': {
        const uuid = randomUUID();
        const root = stage('root');
        stageRoot(spec, root, root, `${fstabLine(`UUID=${uuid}`, '/', 'ext4', 'defaults,noatime')}\n`);
        filesystems.push({ partition: 0, fstype: 'ext4', uuid, label: 'cloudimg-rootfs', content: [{ subvolume: '', stage: root }] });
        break;
      }
      case 'gpt-xfs':
      case 'gpt-xfs-home': {
        // Amazon Linux 2023: p1 the xfs root, p128 the BIOS boot partition.
        const withHome = spec.layout === 'gpt-xfs-home';
        const parts = [
          { n: 128, size: '+1M', type: 'ef02', name: 'BIOS Boot Partition' },
          { n: 1, size: withHome ? '+310M' : '0', type: '8300', name: 'Linux' },
          ...(withHome ? [{ n: 3, size: '0', type: '8302', name: 'home' }] : []),
        ];
        await run('sgdisk', sgdiskArgs(parts, path));
        const uuid = spec.xfsUuid ?? randomUUID();
        const homeUuid = randomUUID();
        const root = stage('root');
        const home = withHome ? stage('home') : root;
        const fstab = [fstabLine(`UUID=${uuid}`, '/', 'xfs', 'defaults,noatime')];
        if (withHome) fstab.push(fstabLine(`UUID=${homeUuid}`, '/home', 'ext4', 'defaults,nofail'));
        stageRoot(spec, root, home, `${fstab.join('\n')}\n`);
        filesystems.push({ partition: 1, fstype: 'xfs', uuid, label: '/', content: [{ subvolume: '', stage: root }] });
        if (withHome) {
          filesystems.push({ partition: 3, fstype: 'ext4', uuid: homeUuid, label: 'home', content: [{ subvolume: '', stage: join(home, 'home'), targetPath: '/home' }] });
        }
        break;
      }
      case 'gpt-var': {
        // Fedora CoreOS / Silverblue style: the homes are in /var/home (/home is a symbolic link
        // to var/home), and /var is a filesystem of its own: p2 the ext4 root, p3 the xfs /var.
        await run('sgdisk', sgdiskArgs([
          { n: 1, size: '+1M', type: 'ef02', name: 'bios' },
          { n: 2, size: '+40M', type: '8300', name: 'root' },
          { n: 3, size: '0', type: '8300', name: 'var' },
        ], path));
        const uuid = randomUUID();
        const varUuid = randomUUID();
        const root = stage('root');
        const varStage = stage('var');
        makeDir(varStage, 'var', 0o755, 0, 0);
        const fstab = [fstabLine(`UUID=${uuid}`, '/', 'ext4', 'defaults'), fstabLine(`UUID=${varUuid}`, '/var', 'xfs', 'defaults')];
        stageRoot(spec, root, root, `${fstab.join('\n')}\n`, varStage);
        rmSync(join(root, 'home'), { recursive: true });
        symlinkSync('var/home', join(root, 'home'));
        filesystems.push({ partition: 2, fstype: 'ext4', uuid, label: 'root', content: [{ subvolume: '', stage: root }] });
        filesystems.push({ partition: 3, fstype: 'xfs', uuid: varUuid, label: 'var', content: [{ subvolume: '', stage: join(varStage, 'var'), targetPath: '/var' }] });
        break;
      }
      case 'btrfs': {
        // Fedora: one btrfs with the subvolumes root and home.
        await run('sgdisk', sgdiskArgs([
          { n: 1, size: '+1M', type: 'ef02', name: 'bios' },
          { n: 2, size: '0', type: '8300', name: 'root' },
        ], path));
        const uuid = randomUUID();
        const root = stage('root');
        const home = stage('home');
        const fstab = [fstabLine(`UUID=${uuid}`, '/', 'btrfs', 'subvol=root,compress=zstd:1'), fstabLine(`UUID=${uuid}`, '/home', 'btrfs', 'subvol=home,compress=zstd:1')];
        stageRoot(spec, root, home, `${fstab.join('\n')}\n`);
        filesystems.push({ partition: 2, fstype: 'btrfs', uuid, label: 'fedora', content: [{ subvolume: 'root', stage: root }, { subvolume: 'home', stage: join(home, 'home'), targetPath: '/home' }] });
        break;
      }
      case 'lvm': {
        // RHEL-like: /boot on p2 (ext4 here), the root in LVM on p3.
        await run('sgdisk', sgdiskArgs([
          { n: 1, size: '+1M', type: 'ef02', name: 'bios' },
          { n: 2, size: '+32M', type: '8300', name: 'boot' },
          { n: 3, size: '0', type: '8e00', name: 'lvm' },
        ], path));
        const boot = stage('boot');
        writeStageFile(boot, 'grub2/grub.cfg', '# grub\n');
        writeStageFile(boot, 'vmlinuz-6.1', 'kernel\n');
        const bootUuid = randomUUID();
        filesystems.push({ partition: 2, fstype: 'ext4', uuid: bootUuid, label: 'boot', content: [{ subvolume: '', stage: boot }] });
        // The root filesystem inside the logical volume rootvg/root, written at the LV's
        // extents directly (it cannot be activated here: no device-mapper).
        const root = stage('root');
        stageRoot(spec, root, root, `${fstabLine('/dev/mapper/rootvg-root', '/', 'ext4')}\n${fstabLine(`UUID=${bootUuid}`, '/boot', 'ext4')}\n`);
        filesystems.push({ partition: 3, lv: { offset: 0, size: 0 }, fstype: 'ext4', uuid: randomUUID(), label: 'root', content: [{ subvolume: '', stage: root }] });
        break;
      }
      case 'no-root': {
        await run('sgdisk', sgdiskArgs([
          { n: 1, size: '+1M', type: 'ef02', name: 'bios' },
          { n: 2, size: '0', type: '8300', name: 'data' },
        ], path));
        const data = stage('data');
        stageData(data);
        filesystems.push({ partition: 2, fstype: 'ext4', uuid: randomUUID(), label: 'data', content: [{ subvolume: '', stage: data }] });
        break;
      }
      case 'two-roots': {
        await run('sgdisk', sgdiskArgs([
          { n: 1, size: '+30M', type: '8300', name: 'root-a' },
          { n: 2, size: '0', type: '8300', name: 'root-b' },
        ], path));
        for (const n of [1, 2]) {
          const uuid = randomUUID();
          const root = stage(`root${n}`);
          stageRoot(spec, root, root, `${fstabLine(`UUID=${uuid}`, '/', 'ext4')}\n`);
          filesystems.push({ partition: n, fstype: 'ext4', uuid, label: `root${n}`, content: [{ subvolume: '', stage: root }] });
        }
        break;
      }
      default:
        throw new Error(`unknown image layout: ${String(spec.layout)}`);
    }
    await populate(path, spec, filesystems, lvm?.partition);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** mkfs, copy the stages in, set flags and labels: one bash script in a private mount namespace. */
async function populate(path: string, spec: ImageSpec, filesystems: FsPlan[], lvmPartition: number | undefined): Promise<void> {
  const loop = await attachLoop(path);
  try {
    const deviceOf = (partition: number): string => (partition === 0 ? loop.device : `${loop.device}p${partition}`);
    if (lvmPartition !== undefined) {
      const lv = await createLvm(deviceOf(lvmPartition));
      const index = filesystems.findIndex((f) => f.lv !== undefined);
      if (index >= 0) filesystems[index] = { ...filesystems[index], lv };
    }
    const lines: string[] = ['set -euo pipefail', 'mnt=$(mktemp -d)', 'trap \'umount -R "$mnt" 2>/dev/null || true; rmdir "$mnt"\' EXIT'];
    const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    for (const fs of filesystems) {
      let dev = q(deviceOf(fs.partition));
      if (fs.lv) {
        lines.push(`lvdev=$(losetup -f --show -o ${fs.lv.offset} --sizelimit ${fs.lv.size} ${dev})`);
        dev = '"$lvdev"';
      }
      if (fs.fstype === 'ext4') lines.push(`mkfs.ext4 -q -F -U ${fs.uuid} -L ${q(fs.label)} ${dev}`);
      if (fs.fstype === 'xfs') lines.push(`mkfs.xfs -q -f -m uuid=${fs.uuid} -L ${q(fs.label)} ${dev}`);
      if (fs.fstype === 'btrfs') lines.push(`mkfs.btrfs -q -f -U ${fs.uuid} -L ${q(fs.label)} ${dev}`);
      lines.push(`mount -t ${fs.fstype} ${fs.fstype === 'xfs' ? '-o nouuid ' : ''}${dev} "$mnt"`);
      for (const c of fs.content) {
        if (c.subvolume !== '') lines.push(`btrfs -q subvolume create "$mnt/${c.subvolume}"`);
        lines.push(`cp -a --preserve=all ${q(c.stage)}/. "$mnt/${c.subvolume}"`);
      }
      // The immutable flag, which the copy cannot carry.
      if (spec.immutableKeyFileOf) {
        const u = (spec.users ?? DEFAULT_USERS).find((x) => x.name === spec.immutableKeyFileOf);
        if (!u) throw new Error(`immutableKeyFileOf names no user: ${spec.immutableKeyFileOf}`);
        const where = locate(filesystems, `${homeOf(u)}/.ssh/authorized_keys`);
        if (where && where.fs === fs) lines.push(`chattr +i "$mnt"${q(where.path)}`);
      }
      if (spec.fill && fs === filesystems.find((f) => locate([f], '/etc/passwd'))) {
        lines.push(`dd if=/dev/zero of="$mnt/fill" bs=1M status=none 2>/dev/null || true`, `dd if=/dev/zero of="$mnt/fill2" bs=1k status=none 2>/dev/null || true`);
      }
      lines.push(`sync; umount "$mnt"`);
      if (fs.lv) lines.push('losetup -d "$lvdev"');
    }
    await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', lines.join('\n')], { maxBuffer: 16 * 1024 * 1024 });
    if (spec.userInJournalOnly) await addUserInJournalOnly(path, loop.device, spec.userInJournalOnly, filesystems);
  } finally {
    await detachLoop(loop.device);
  }
}

/** See ImageSpec.userInJournalOnly. The image file is replaced by the disk as a crash leaves it. */
async function addUserInJournalOnly(path: string, device: string, u: ImageUser, filesystems: FsPlan[]): Promise<void> {
  const fs = filesystems.find((f) => locate([f], '/etc/passwd') && !f.lv);
  if (!fs || (fs.fstype !== 'ext4' && fs.fstype !== 'xfs')) throw new Error('userInJournalOnly needs an ext4 or xfs root');
  const dev = fs.partition === 0 ? device : `${device}p${fs.partition}`;
  const home = homeOf(u);
  const crash =
    fs.fstype === 'ext4'
      ? // the journal holds the commit, the home locations are still the old ones: copy the disk now
        `sync "$m/etc/passwd" "$m${home}/.ssh"; cp --sparse=always "$IMAGE" "$IMAGE.crash"`
      : `sync "$m/etc/passwd" "$m${home}/.ssh"; xfs_io -x -c "shutdown -f" "$m"`;
  const script = [
    'set -euo pipefail',
    'm=$(mktemp -d)',
    'trap \'umount "$m" 2>/dev/null || true; rmdir "$m"\' EXIT',
    `mount ${fs.fstype === 'xfs' ? '-o nouuid ' : ''}"$DEV" "$m"`,
    'sync -f "$m"',
    `cp -a "$m/etc/passwd" "$m/etc/passwd+"; echo "$LINE" >> "$m/etc/passwd+"; mv "$m/etc/passwd+" "$m/etc/passwd"`,
    `mkdir -m 0700 "$m${home}" "$m${home}/.ssh"; chown ${u.uid}:${u.gid} "$m${home}" "$m${home}/.ssh"`,
    crash,
    'umount "$m"',
  ].join('\n');
  const line = `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${home}:${u.shell ?? '/bin/bash'}`;
  await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { env: { ...process.env, DEV: dev, IMAGE: path, LINE: line } });
  if (fs.fstype === 'ext4') await run('mv', [`${path}.crash`, path]);
}

/**
 * A real LVM physical volume with the volume group rootvg and the logical volume root on all
 * its extents. lvcreate needs device-mapper, which this machine lacks, so the LV is added to
 * the metadata with vgcfgbackup + vgcfgrestore. LVM runs with a private LVM_SYSTEM_DIR (no
 * devices file, no backups on the host). Returns the LV's data range inside the partition.
 */
async function createLvm(device: string): Promise<{ offset: number; size: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'lvm-'));
  try {
    writeFileSync(
      join(dir, 'lvm.conf'),
      'devices { use_devicesfile = 0 }\nglobal { use_lvmlockd = 0 }\nactivation { udev_sync = 0 udev_rules = 0 }\nbackup { backup = 0 archive = 0 }\n',
    );
    const env = { ...process.env, LVM_SYSTEM_DIR: dir, LVM_SUPPRESS_FD_WARNINGS: '1' };
    await run('pvcreate', ['-q', '-ff', '-y', device], { env });
    await run('vgcreate', ['-q', 'rootvg', device], { env });
    const backup = join(dir, 'rootvg.vg');
    await run('vgcfgbackup', ['-q', '-f', backup, 'rootvg'], { env });
    const text = readFileSync(backup, 'utf8');
    const number = (name: string): number => Number(new RegExp(`\\b${name} = (\\d+)`).exec(text)?.[1]);
    const extentSize = number('extent_size');
    const peStart = number('pe_start');
    const peCount = number('pe_count');
    if (!extentSize || !peStart || !peCount) throw new Error('unexpected vgcfgbackup output');
    const lvSection = [
      '\tlogical_volumes {',
      '\t\troot {',
      '\t\t\tid = "r00tLV-0000-0000-0000-0000-0000-000000"',
      '\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]',
      '\t\t\tflags = []',
      '\t\t\tsegment_count = 1',
      '\t\t\tsegment1 {',
      '\t\t\t\tstart_extent = 0',
      `\t\t\t\textent_count = ${peCount}`,
      '\t\t\t\ttype = "striped"',
      '\t\t\t\tstripe_count = 1',
      '\t\t\t\tstripes = ["pv0", 0]',
      '\t\t\t}',
      '\t\t}',
      '\t}',
    ].join('\n');
    const end = text.trimEnd().lastIndexOf('}');
    writeFileSync(backup, `${text.slice(0, end)}${lvSection}\n${text.slice(end)}`);
    await run('vgcfgrestore', ['-q', '-f', backup, 'rootvg'], { env });
    return { offset: peStart * 512, size: peCount * extentSize * 512 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- snapshots ------------------------------------------------------------------------------

export interface ImageSnapshot {
  /** `sfdisk --dump` of the image ('' when it has no partition table). */
  readonly partitionTable: string;
  /** key `<device role>:<path>` -> description (type, mode, owner, size, hash, link, xattrs, flags). */
  readonly entries: ReadonlyMap<string, string>;
}

export interface ImageDifference {
  readonly key: string;
  readonly before?: string;
  readonly after?: string;
}

/**
 * Record everything on the image: the partition table and, per filesystem, every file with its
 * metadata and content hash; partitions without a mountable filesystem are hashed raw.
 */
export async function snapshotImage(imagePath: string): Promise<ImageSnapshot> {
  let partitionTable = '';
  try {
    partitionTable = (await run('sfdisk', ['--dump', imagePath])).stdout;
  } catch {
    partitionTable = '';
  }
  const loop = await attachLoop(imagePath);
  try {
    const devices = loop.partitions.length > 0 ? loop.partitions : [loop.device];
    // Few processes (each costs tens of ms here): one find, one sha256sum, one getfattr and
    // one lsattr per filesystem; merged below.
    const script = [
      'set -euo pipefail',
      'mnt=$(mktemp -d)',
      'trap \'umount "$mnt" 2>/dev/null || true; rmdir "$mnt"\' EXIT',
      'for dev in "$@"; do',
      '  type=$(blkid -p -o value -s TYPE "$dev" 2>/dev/null || true)',
      '  case "$type" in',
      '    xfs) opts=ro,nouuid,norecovery ;; ext2|ext3|ext4) opts=ro,noload ;; btrfs) opts=ro,subvolid=5 ;; *) opts="" ;;',
      '  esac',
      '  echo "@@DEV $dev"',
      '  if [ -z "$opts" ]; then echo "@@RAW ${type:-none} $(sha256sum < "$dev" | cut -d" " -f1)"; continue; fi',
      '  mount -t "$type" -o "$opts" "$dev" "$mnt"',
      '  cd "$mnt"',
      '  echo "@@META"; find . -printf "%p\\t%y %m %U:%G %s %l\\n"',
      '  echo "@@SHA"; find . -type f -exec sha256sum {} +',
      '  echo "@@XATTR"; getfattr -R -h -d -m - -e hex . 2>/dev/null || true',
      '  echo "@@FLAGS"; find . \\( -type f -o -type d \\) -exec lsattr -d {} + 2>/dev/null || true',
      '  echo "@@END"',
      '  cd /',
      '  umount "$mnt"',
      'done',
    ].join('\n');
    const { stdout } = await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'snapshot', ...devices], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const entries = parseSnapshot(stdout, loop.device);
    return { partitionTable, entries };
  } finally {
    await detachLoop(loop.device);
  }
}

/** Merge the sections of the snapshot script into one description per file. */
function parseSnapshot(stdout: string, loopDevice: string): Map<string, string> {
  const entries = new Map<string, string>();
  let role = '';
  let section = '';
  const meta = new Map<string, string>();
  const sha = new Map<string, string>();
  const xattrs = new Map<string, string[]>();
  const flags = new Map<string, string>();
  let xattrFile = '';
  const flush = (): void => {
    for (const [path, m] of meta) {
      // A directory's size changes with its entries, which are recorded themselves.
      const description = m.replace(/^d (\d+ \S+) \d+ /, 'd $1 - ');
      const x = (xattrs.get(path) ?? []).sort().join(' ');
      entries.set(`${role}:${path}`, `${description} sha=${sha.get(path) ?? '-'} xattrs=[${x}] flags=${flags.get(path) ?? '-'}`);
    }
    meta.clear(); sha.clear(); xattrs.clear(); flags.clear();
  };
  // find and sha256sum print ./path, getfattr prints path: both become /path.
  const strip = (p: string): string => (p === '.' ? '/' : `/${p.replace(/^\.\//, '')}`);
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@DEV ')) {
      const device = line.slice(6);
      role = device === loopDevice ? 'disk' : `p${device.slice(loopDevice.length + 1)}`;
      continue;
    }
    if (line.startsWith('@@RAW ')) {
      entries.set(`${role}:<raw>`, line.slice(6));
      continue;
    }
    if (line === '@@END') {
      flush();
      section = '';
      continue;
    }
    if (line.startsWith('@@')) {
      section = line.slice(2);
      continue;
    }
    if (line === '') continue;
    if (section === 'META') {
      const tab = line.indexOf('\t');
      meta.set(strip(line.slice(0, tab)), line.slice(tab + 1));
    } else if (section === 'SHA') {
      const [hash, ...rest] = line.split('  ');
      sha.set(strip(rest.join('  ')), hash);
    } else if (section === 'XATTR') {
      if (line.startsWith('# file: ')) {
        xattrFile = strip(line.slice(8));
      } else {
        xattrs.set(xattrFile, [...(xattrs.get(xattrFile) ?? []), line]);
      }
    } else if (section === 'FLAGS') {
      const space = line.indexOf(' ');
      flags.set(strip(line.slice(space + 1)), line.slice(0, space));
    }
  }
  return entries;
}

/** What differs between two snapshots, sorted by key; the partition table as key `<partition-table>`. */
export function diffImage(before: ImageSnapshot, after: ImageSnapshot): ImageDifference[] {
  const out: ImageDifference[] = [];
  if (before.partitionTable !== after.partitionTable) {
    out.push({ key: '<partition-table>', before: before.partitionTable, after: after.partitionTable });
  }
  const keys = new Set([...before.entries.keys(), ...after.entries.keys()]);
  for (const key of [...keys].sort()) {
    const b = before.entries.get(key);
    const a = after.entries.get(key);
    if (b !== a) out.push({ key, before: b, after: a });
  }
  return out;
}
