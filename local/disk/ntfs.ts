/**
 * Disk images of EC2 Windows root volumes, small and sparse: a partition table (MBR, GPT, or none),
 * an NTFS file system made by `mkntfs` (Debian's ntfs-3g), and in it the files and folders that
 * identify a launch agent, as AWS documents them:
 * - EC2Launch v2: %ProgramData%\Amazon\EC2Launch\config\agent-config.yml and state\.run-once, the
 *   program in %ProgramFiles%\Amazon\EC2Launch
 *   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2launch-v2-settings.html, "EC2Launch v2
 *   directory structure"; the example agent-config.yml is the one on that page);
 * - EC2Config: %ProgramFiles%\Amazon\Ec2ConfigService\Settings\config.xml with the plugin
 *   Ec2SetPassword (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Config.html);
 * - EC2Launch v1: %ProgramData%\Amazon\EC2-Windows\Launch\Config\LaunchConfig.json and
 *   Scripts\InitializeInstance.ps1 (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2launch-config.html).
 *
 * And the volumes that must be refused: hibernated (hiberfil.sys whose first bytes are "HIBR" or
 * "hibr", the test ntfs-3g applies before a read-write mount: tuxera/ntfs-3g,
 * libntfs-3g/volume.c, ntfs_volume_check_hiberfile), BitLocker (the boot sector's OEM id
 * "-FVE-FS-" at offset 3 instead of "NTFS    ", which util-linux's libblkid reports as
 * TYPE=BitLocker: util-linux libblkid/src/superblocks/bitlocker.c), dynamic disks (MBR partition
 * type 0x42, or the GPT "Microsoft LDM metadata"/"Microsoft LDM data" types) and Storage Spaces
 * (GPT "Microsoft Storage Spaces"), the type names being those of sfdisk's own table.
 *
 * Files are written through an ntfs-3g mount in a private mount namespace (unshare), so nothing
 * stays mounted if this process dies; loop devices are detached in finally blocks.
 */
import { execFile, execFileSync } from 'child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'fs';
import { tmpdir } from 'os';
import { dirname, join } from 'path';
import { promisify } from 'util';
import { attachLoop, detachLoop } from './loop';

const run = promisify(execFile);

export type WindowsAgent = 'ec2launch-v2' | 'ec2config' | 'ec2launch-v1' | 'none';
export type WindowsPartitioning = 'mbr' | 'gpt' | 'whole' | 'mbr-dynamic' | 'gpt-ldm' | 'gpt-storage-spaces';

export interface WindowsImageOptions {
  /** @default 'mbr' */
  readonly partitioning?: WindowsPartitioning;
  /** The launch agents whose files are on the volume (more than one: a migrated instance). @default ['ec2launch-v2'] */
  readonly agents?: readonly WindowsAgent[];
  /** EC2Launch v2: state\.run-once exists (the instance has booted once since Sysprep). @default true */
  readonly runOnce?: boolean;
  /** EC2Launch v2: the exact agent-config.yml. @default EC2LAUNCH_V2_AGENT_CONFIG */
  readonly agentConfig?: string;
  /** EC2Config: the exact config.xml. @default ec2ConfigXml('Disabled') */
  readonly ec2ConfigXml?: string;
  /** EC2Config: the settings file's name as it is spelled on the volume. @default 'config.xml' */
  readonly ec2ConfigFileName?: string;
  /** hiberfil.sys at the root: 'HIBR'/'hibr' (hibernated or Fast Startup), 'zero' (resumed: header zeroed). */
  readonly hiberfil?: 'HIBR' | 'hibr' | 'zero';
  /** Overwrite the NTFS boot sector's OEM id with "-FVE-FS-" (a BitLocker volume). @default false */
  readonly bitlocker?: boolean;
  /** More files on the Windows volume: path with / separators (no leading /) -> content. */
  readonly extraFiles?: Readonly<Record<string, string | Buffer>>;
  /**
   * The agents' program files (EC2Launch.exe, Ec2Config.exe) carry a version resource with this
   * FILEVERSION ("2.0.1948.0"), compiled by LLVM's resource compiler (llvm-rc), not by our code.
   * @default none: the program files have no version resource
   */
  readonly agentFileVersion?: string;
  /** No \Windows folder: a data volume, not a Windows installation. @default false */
  readonly noWindows?: boolean;
  /** Fill the Windows volume's free space with a file (\fill.bin) until ntfs-3g reports it full. @default false */
  readonly fill?: boolean;
  /** @default 48 */
  readonly sizeMiB?: number;
}

export interface WindowsImage {
  readonly path: string;
  /** The Windows partition's number in the table (1-based), or 0 for a whole-disk file system. */
  readonly windowsPartition: number;
}

/** The example agent-config.yml of AWS's EC2Launch v2 settings page (see the file comment), CRLF as Windows writes it. */
export const EC2LAUNCH_V2_AGENT_CONFIG = [
  'version: 1.0',
  'config:',
  '- stage: boot',
  '  tasks:',
  '  - task: extendRootPartition',
  '- stage: preReady',
  '  tasks:',
  '  - task: activateWindows',
  '    inputs:',
  '      activation:',
  '        type: amazon',
  '  - task: setDnsSuffix',
  '    inputs:',
  '      suffixes:',
  '      - $REGION.ec2-utilities.amazonaws.com',
  '  - task: setAdminAccount',
  '    inputs:',
  '      password:',
  '        type: random',
  '  - task: setWallpaper',
  '    inputs:',
  '      path: C:\\ProgramData\\Amazon\\EC2Launch\\wallpaper\\Ec2Wallpaper.jpg',
  '      attributes:',
  '      - hostName',
  '      - instanceId',
  '- stage: postReady',
  '  tasks:',
  '  - task: startSsm',
  '',
].join('\r\n');

/** An EC2Config config.xml in the shape AWS's page shows: plugins with Name and State, Ec2SetPassword first. */
export function ec2ConfigXml(setPasswordState: 'Enabled' | 'Disabled'): string {
  const plugin = (name: string, state: string): string[] => ['    <Plugin>', `      <Name>${name}</Name>`, `      <State>${state}</State>`, '    </Plugin>'];
  return [
    '<?xml version="1.0" standalone="yes"?>',
    '<Ec2ConfigurationSettings>',
    '  <Plugins>',
    ...plugin('Ec2SetPassword', setPasswordState),
    ...plugin('Ec2SetComputerName', 'Disabled'),
    ...plugin('Ec2InitializeDrives', 'Enabled'),
    ...plugin('Ec2HandleUserData', 'Disabled'),
    '  </Plugins>',
    '  <GlobalSettings>',
    '    <ManageShutdown>true</ManageShutdown>',
    '  </GlobalSettings>',
    '</Ec2ConfigurationSettings>',
    '',
  ].join('\r\n');
}

const LAUNCH_CONFIG_JSON = '{\r\n  "SetComputerName": false,\r\n  "SetMonitorAlwaysOn": false,\r\n  "SetWallpaper": true,\r\n  "AddDnsSuffixList": true,\r\n  "ExtendBootVolumeSize": true,\r\n  "HandleUserData": true,\r\n  "AdminPasswordType": "Random",\r\n  "AdminPassword": ""\r\n}\r\n';

/** A stand-in program file: "MZ", then the version resource llvm-rc compiles from a VERSIONINFO statement. */
function programFile(version: string | undefined): Buffer {
  const head = Buffer.from('MZ fixture, not a program\0\0\0\0\0\0');
  if (version === undefined) return head;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a four-part version: ${version}`);
  const work = mkdtempSync(join(tmpdir(), 'ntfs-rc-'));
  try {
    const commas = version.split('.').join(',');
    const rc = ['1 VERSIONINFO', `FILEVERSION ${commas}`, `PRODUCTVERSION ${commas}`, 'BEGIN', '  BLOCK "StringFileInfo"', '  BEGIN', '    BLOCK "040904b0"', '    BEGIN', `      VALUE "FileVersion", "${version}"`, '    END', '  END', 'END', ''].join('\n');
    writeFileSync(join(work, 'v.rc'), rc);
    execFileSync('llvm-rc', ['-no-cpp', '-fo', join(work, 'v.res'), join(work, 'v.rc')], { stdio: 'pipe' });
    return Buffer.concat([head, readFileSync(join(work, 'v.res'))]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function agentFiles(agent: WindowsAgent, options: WindowsImageOptions): Record<string, string | Buffer> {
  switch (agent) {
    case 'ec2launch-v2': {
      const files: Record<string, string | Buffer> = {
        'ProgramData/Amazon/EC2Launch/config/agent-config.yml': options.agentConfig ?? EC2LAUNCH_V2_AGENT_CONFIG,
        'ProgramData/Amazon/EC2Launch/state/state.json': '{"stages":{}}\r\n',
        'ProgramData/Amazon/EC2Launch/log/agent.log': '2026-01-01 00:00:00 Info: EC2Launch v2 service v2.0.1948\r\n',
        'Program Files/Amazon/EC2Launch/EC2Launch.exe': programFile(options.agentFileVersion),
      };
      if (options.runOnce ?? true) files['ProgramData/Amazon/EC2Launch/state/.run-once'] = '';
      return files;
    }
    case 'ec2config':
      return {
        [`Program Files/Amazon/Ec2ConfigService/Settings/${options.ec2ConfigFileName ?? 'config.xml'}`]: options.ec2ConfigXml ?? ec2ConfigXml('Disabled'),
        'Program Files/Amazon/Ec2ConfigService/Ec2Config.exe': programFile(options.agentFileVersion),
      };
    case 'ec2launch-v1':
      return {
        'ProgramData/Amazon/EC2-Windows/Launch/Config/LaunchConfig.json': LAUNCH_CONFIG_JSON,
        'ProgramData/Amazon/EC2-Windows/Launch/Scripts/InitializeInstance.ps1': '# fixture\r\n',
      };
    case 'none':
      return {};
  }
}

/** The sfdisk script of each partitioning; the Windows (NTFS) partition is the last one. */
function partitionTable(partitioning: WindowsPartitioning): { script: string; windows: number } | undefined {
  switch (partitioning) {
    case 'whole':
      return undefined;
    case 'mbr':
      // A "System Reserved" partition, then C:, as Windows Setup lays out a BIOS disk.
      return { script: 'label: dos\nstart=2048, size=8MiB, type=7, bootable\nstart=18432, type=7\n', windows: 2 };
    case 'mbr-dynamic':
      return { script: 'label: dos\nstart=2048, type=42\n', windows: 1 };
    case 'gpt':
      return {
        script: 'label: gpt\nsize=4MiB, type="Microsoft reserved"\ntype="Microsoft basic data"\n',
        windows: 2,
      };
    case 'gpt-ldm':
      return {
        script: 'label: gpt\nsize=1MiB, type="Microsoft LDM metadata"\ntype="Microsoft LDM data"\n',
        windows: 2,
      };
    case 'gpt-storage-spaces':
      return { script: 'label: gpt\ntype="Microsoft Storage Spaces"\n', windows: 1 };
  }
}

/** The files as a staging tree, the Windows folder that identifies the system volume included. */
function stage(dir: string, options: WindowsImageOptions): void {
  const files: Record<string, string | Buffer> = options.noWindows
    ? { 'Data/.keep': '' }
    : {
        'Windows/System32/config/.keep': '',
        'Windows/System32/ntoskrnl.exe': Buffer.from('MZ fixture, not a kernel'),
        'Users/Administrator/.keep': '',
      };
  for (const agent of options.agents ?? ['ec2launch-v2']) Object.assign(files, agentFiles(agent, options));
  if (options.hiberfil !== undefined) {
    const header = Buffer.alloc(8192);
    if (options.hiberfil !== 'zero') header.write(options.hiberfil, 0, 'ascii');
    files['hiberfil.sys'] = header;
  }
  Object.assign(files, options.extraFiles ?? {});
  for (const [path, content] of Object.entries(files)) {
    const target = join(dir, path);
    mkdirSync(dirname(target), { recursive: true });
    if (!path.endsWith('/.keep')) writeFileSync(target, content);
  }
}

/** Build a Windows root image at `path` (overwritten). */
export async function buildWindowsImage(path: string, options: WindowsImageOptions = {}): Promise<WindowsImage> {
  const partitioning = options.partitioning ?? 'mbr';
  rmSync(path, { force: true });
  await run('truncate', ['-s', `${options.sizeMiB ?? 48}M`, path]);
  const table = partitionTable(partitioning);
  if (table) await run('sh', ['-c', 'printf "%s" "$1" | sfdisk --quiet --no-reread --no-tell-kernel "$2"', 'sfdisk', table.script, path]);
  const staging = mkdtempSync(join(tmpdir(), 'ntfs-stage-'));
  const loop = await attachLoop(path);
  try {
    const device = table ? loop.partitions[table.windows - 1] : loop.device;
    if (device === undefined) throw new Error(`no partition ${table?.windows} on ${loop.device}`);
    if (partitioning === 'mbr') {
      // The small "System Reserved" partition: NTFS too, without a Windows folder.
      await run('mkntfs', ['--quick', '--force', '--label', 'System Reserved', loop.partitions[0] as string]);
    }
    await run('mkntfs', ['--quick', '--force', '--label', 'Windows', device]);
    stage(staging, options);
    const populate = [
      'set -e',
      'm=$(mktemp -d)',
      'ntfs-3g "$1" "$m"',
      'cp -r --no-preserve=all "$2"/. "$m"/',
      // dd stops with ENOSPC: that is the point.
      ...(options.fill ? ['dd if=/dev/zero of="$m/fill.bin" bs=64k 2>/dev/null || true'] : []),
      'umount "$m"',
      'rmdir "$m"',
    ].join('\n');
    await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', populate, 'populate', device, staging]);
    if (options.bitlocker) {
      const fd = openSync(device, 'r+');
      try {
        writeSync(fd, Buffer.from('-FVE-FS-', 'ascii'), 0, 8, 3);
      } finally {
        closeSync(fd);
      }
    }
    return { path, windowsPartition: table ? table.windows : 0 };
  } finally {
    await detachLoop(loop.device);
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The device of the Windows partition on an attached loop device. */
function partitionDevice(loopDevice: string, partitions: string[], image: WindowsImage): string {
  const device = image.windowsPartition === 0 ? loopDevice : partitions[image.windowsPartition - 1];
  if (device === undefined) throw new Error(`partition ${image.windowsPartition} is missing on ${loopDevice}`);
  return device;
}

/** Run an ntfsprogs reader (ntfscat, ntfsls, ntfsinfo) on the image's Windows partition, without mounting it. */
export async function readNtfs(image: WindowsImage, tool: 'ntfscat' | 'ntfsls' | 'ntfsinfo', args: (device: string) => string[]): Promise<Buffer> {
  const loop = await attachLoop(image.path);
  try {
    const device = partitionDevice(loop.device, loop.partitions, image);
    const { stdout } = await run(tool, args(device), { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } finally {
    await detachLoop(loop.device);
  }
}

/** A file's content read back with ntfscat (path with / separators, no leading /); undefined when it does not exist. */
export async function ntfsCat(image: WindowsImage, file: string): Promise<Buffer | undefined> {
  try {
    return await readNtfs(image, 'ntfscat', (device) => ['--force', device, file]);
  } catch {
    return undefined;
  }
}

/** The names in a directory, listed with ntfsls (-a: hidden and system files too). */
export async function ntfsList(image: WindowsImage, directory: string): Promise<string[]> {
  const out = await readNtfs(image, 'ntfsls', (device) => ['--all', '--force', '--path', directory, device]);
  return out
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '' && line !== '.' && line !== '..');
}
