/**
 * The twin's Windows boot (issue 15): what a Windows instance's launch agent does at a boot, read
 * from its root volume's disk image with ntfs-3g's own tools, written from AWS's documentation of
 * the agents (never from the product's script):
 *
 * - EC2Launch v2 keeps its settings in C:\ProgramData\Amazon\EC2Launch\config\agent-config.yml and
 *   marks the first boot's tasks done with C:\ProgramData\Amazon\EC2Launch\state\.run-once; with
 *   that file deleted, the tasks of frequency `once` run again at the next boot, and a
 *   `setAdminAccount` task with a `random` password sets a new Administrator password that EC2 then
 *   returns, encrypted to the instance's key pair, from GetPasswordData
 *   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Launchv2.html,
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2launch-v2-settings.html).
 * - EC2Config generates one at a boot where its Ec2SetPassword plugin is Enabled in
 *   C:\Program Files\Amazon\Ec2ConfigService\Settings\config.xml
 *   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Config.html).
 * - GetPasswordData: "the encrypted administrator password", "encrypted using the key pair that you
 *   specified when you launched the instance", an empty string until it is available
 *   (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetPasswordData.html). The encoding
 *   is what the AWS CLI decrypts: base64 of RSA PKCS#1 v1.5 with the key pair's private key, UTF-8
 *   (awscli/customizations/ec2/decryptpassword.py, rsa.decrypt). AWS documents neither the
 *   password's length nor its alphabet: the twin's is 32 characters from letters, digits and
 *   punctuation (local/README.md, assumptions).
 *
 * What cannot run here: Windows itself and PowerShell. A boot-time script (EC2Launch v2
 * `executeScript`) is not run; the twin plays its documented effect only for the one-shot task
 * of Mode=NewPassword (see `newPasswordTask`), and says so in its record of the boot.
 */
import { execFile } from 'node:child_process';
import { constants, createHash, createPublicKey, publicEncrypt, randomInt } from 'node:crypto';
import { promisify } from 'node:util';
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { parse as parseYaml } from 'yaml';
import { attachLoop, detachLoop } from './disk/loop';

const run = promisify(execFile);

export const EC2LAUNCH_V2_CONFIG = 'ProgramData/Amazon/EC2Launch/config/agent-config.yml';
export const EC2LAUNCH_V2_RUN_ONCE = 'ProgramData/Amazon/EC2Launch/state/.run-once';
export const EC2CONFIG_SETTINGS = 'Program Files/Amazon/Ec2ConfigService/Settings/config.xml';

export interface WindowsBootDeps {
  /** moto's EC2, directly. */
  readonly ec2: EC2Client;
  /** The disk image backing an EBS volume (the agent's registry). */
  readonly volumeImage: (volumeId: string) => string | undefined;
}

export interface WindowsBootRecord {
  readonly instanceId: string;
  /** The agent found, and what it did at this boot. */
  readonly agent: 'EC2Launch v2' | 'EC2Config' | 'none';
  readonly passwordGenerated: boolean;
  /** The one-shot NewPassword task was found and its effect played (not run: no PowerShell here). */
  readonly newPasswordTask: boolean;
}

export interface WindowsBootTwin {
  /** The key pair's public key (PEM) as EC2 keeps it, by key name (the twin imports the key pair). */
  registerKeyPair(keyName: string, publicKeyPem: string): void;
  /**
   * The password data of an instance's first boot, made at its launch (`at`): a Windows instance
   * launched with a key pair has it before any run ("This usually only happens the first time an
   * instance is launched", GetPasswordData in botocore data/ec2/2016-11-15/service-2.json), so the
   * run must tell it from the data its own boot makes (review W1). Returns the SHA-256 (hex) of that
   * first password, for a test to compare (also launchPasswordSha256).
   */
  seedLaunchPassword(instanceId: string, keyName: string, at: Date): string;
  launchPasswordSha256(instanceId: string): string | undefined;
  /** After a successful StartInstances: boots the Windows instances among them. */
  afterStart(instanceIds: readonly string[]): Promise<void>;
  /** The GetPasswordData response of a Windows instance this twin knows, or undefined (moto answers). */
  passwordDataXml(instanceId: string, requestId: string): string | undefined;
  /** Console lines a boot wrote (the NewPassword task's line), for GetConsoleOutput. */
  consoleText(instanceId: string): string | undefined;
  boots(): readonly WindowsBootRecord[];
  /** SHA-256 (hex) of the last password a boot of this instance made: what a test compares with what the run stored. */
  lastPasswordSha256(instanceId: string): string | undefined;
}

/** A file of the NTFS volume on `device`, or undefined when it does not exist (ntfscat, ntfs-3g). */
async function ntfsCat(device: string, path: string): Promise<Buffer | undefined> {
  try {
    const out = await run('ntfscat', ['-f', device, path], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
    return out.stdout as unknown as Buffer;
  } catch {
    return undefined;
  }
}

/** The NTFS file systems among the disk and its partitions (a Windows disk may have a System Reserved one first). */
async function ntfsDevices(devices: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const d of devices) {
    try {
      const t = (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', d])).stdout.trim();
      if (t === 'ntfs') found.push(d);
    } catch {
      // no filesystem
    }
  }
  return found;
}

/** A random password: AWS documents no alphabet or length (assumption, local/README.md). */
function randomPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!@#$%&*()-_=+?';
  return Array.from({ length: 32 }, () => alphabet[randomInt(alphabet.length)]).join('');
}

interface AgentConfigTask {
  task?: string;
  inputs?: Record<string, unknown> | Array<Record<string, unknown>>;
}

/** The tasks of an EC2Launch v2 agent-config.yml (config: [{ stage, tasks: [{ task, inputs }] }]). */
function agentConfigTasks(text: string): AgentConfigTask[] {
  const doc = parseYaml(text) as { config?: Array<{ tasks?: AgentConfigTask[] }> } | null;
  return (doc?.config ?? []).flatMap((stage) => stage.tasks ?? []);
}

/**
 * Mode=NewPassword's one-shot boot action: an EC2Launch v2 `executeScript` task (inputs: a list of
 * { frequency, type, runAs, content }, ec2launch-v2-settings.html) whose PowerShell content carries
 * `$RunId = '...'` and `$KeyXml = '<RSAKeyValue>...'` (runbooks/windows-boot.ps1). PowerShell cannot
 * run here, so the twin plays what that script does on Windows (a random password, encrypted with
 * RSA-OAEP-SHA1 to the key, one console line): the one place where the twin reads our own text, and
 * the PowerShell itself is listed under "rests on documentation" (docs/architecture.md).
 */
function newPasswordTask(tasks: AgentConfigTask[]): { runId: string; keyXml: string } | undefined {
  for (const t of tasks) {
    if (t.task !== 'executeScript' || !Array.isArray(t.inputs)) continue;
    for (const entry of t.inputs) {
      const content = typeof entry.content === 'string' ? entry.content : '';
      const runId = /^\$RunId = '([A-Za-z0-9-]{1,64})'$/m.exec(content)?.[1];
      const keyXml = /^\$KeyXml = '(<RSAKeyValue>.*<\/RSAKeyValue>)'$/m.exec(content)?.[1];
      if (entry.type === 'powershell' && runId && keyXml) return { runId, keyXml };
    }
  }
  return undefined;
}

/** .NET's RSAKeyValue XML (RSA.ToXmlString: base64 big-endian Modulus and Exponent) as a Node public key. */
function publicKeyOfXml(xml: string) {
  const field = (name: string): string => {
    const v = new RegExp(`<${name}>([A-Za-z0-9+/=]+)</${name}>`).exec(xml)?.[1];
    if (!v) throw new Error(`RSAKeyValue without ${name}`);
    return Buffer.from(v, 'base64').toString('base64url');
  };
  return createPublicKey({ key: { kty: 'RSA', n: field('Modulus'), e: field('Exponent') }, format: 'jwk' });
}

function setsRandomPassword(tasks: AgentConfigTask[]): boolean {
  return tasks.some((t) => {
    if (t.task !== 'setAdminAccount') return false;
    const inputs = (Array.isArray(t.inputs) ? t.inputs[0] : t.inputs) ?? {};
    const password = (inputs as { password?: { type?: string } }).password;
    return password?.type === 'random';
  });
}

export function createWindowsBootTwin(deps: WindowsBootDeps): WindowsBootTwin {
  const keyPairs = new Map<string, string>();
  const passwordData = new Map<string, { data: string; at: Date }>();
  const consoles = new Map<string, string>();
  const played = new Set<string>();
  const passwordHashes = new Map<string, string>();
  const launchHashes = new Map<string, string>();
  const made = (instanceId: string): string => {
    const password = randomPassword();
    passwordHashes.set(instanceId, createHash('sha256').update(password).digest('hex'));
    return password;
  };
  const done: WindowsBootRecord[] = [];

  async function boot(instanceId: string): Promise<void> {
    const out = await deps.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = out.Reservations?.[0]?.Instances?.[0];
    if (!instance || String(instance.Platform ?? '').toLowerCase() !== 'windows') return;
    const root = instance.BlockDeviceMappings?.find((b) => b.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
    const image = root ? deps.volumeImage(root) : undefined;
    if (!image) return;
    const loop = await attachLoop(image);
    let record: WindowsBootRecord = { instanceId, agent: 'none', passwordGenerated: false, newPasswordTask: false };
    try {
      // The Windows volume: the NTFS file system that holds a launch agent's settings.
      let device: string | undefined;
      let v2: Buffer | undefined;
      let ec2config: Buffer | undefined;
      for (const d of await ntfsDevices([...loop.partitions, loop.device])) {
        v2 = await ntfsCat(d, EC2LAUNCH_V2_CONFIG);
        ec2config = v2 ? undefined : await ntfsCat(d, EC2CONFIG_SETTINGS);
        if (v2 || ec2config) {
          device = d;
          break;
        }
      }
      if (!device) return;
      let generate = false;
      if (v2) {
        const runOnce = await ntfsCat(device, EC2LAUNCH_V2_RUN_ONCE);
        const tasks = agentConfigTasks(v2.toString('utf8'));
        generate = runOnce === undefined && setsRandomPassword(tasks);
        record = { ...record, agent: 'EC2Launch v2' };
        const hook = newPasswordTask(tasks);
        if (hook && !played.has(`${instanceId}/${hook.runId}`)) {
          // Its own done-marker keeps it from acting twice; the twin remembers instead (it does not write NTFS).
          played.add(`${instanceId}/${hook.runId}`);
          const cipher = publicEncrypt({ key: publicKeyOfXml(hook.keyXml), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(made(instanceId), 'utf8'));
          consoles.set(instanceId, `${consoles.get(instanceId) ?? ''}ec2-reset-access:${hook.runId}:password:${cipher.toString('base64')}\r\n`);
          record = { ...record, newPasswordTask: true };
        }
      } else if (ec2config) {
        // <Plugin><Name>Ec2SetPassword</Name><State>Enabled</State></Plugin>
        generate = /<Name>\s*Ec2SetPassword\s*<\/Name>\s*<State>\s*Enabled\s*<\/State>/.test(ec2config.toString('utf8'));
        record = { ...record, agent: 'EC2Config' };
      }
      const keyPem = instance.KeyName ? keyPairs.get(instance.KeyName) : undefined;
      if (generate && keyPem) {
        const encrypted = publicEncrypt({ key: keyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(made(instanceId), 'utf8'));
        passwordData.set(instanceId, { data: encrypted.toString('base64'), at: new Date() });
        record = { ...record, passwordGenerated: true };
      }
    } finally {
      await detachLoop(loop.device);
      done.push(record);
    }
  }

  return {
    registerKeyPair(keyName, publicKeyPem) {
      keyPairs.set(keyName, publicKeyPem);
    },
    seedLaunchPassword(instanceId, keyName, at) {
      const keyPem = keyPairs.get(keyName);
      if (!keyPem) throw new Error(`seedLaunchPassword: key pair ${keyName} is not registered`);
      const password = randomPassword();
      const encrypted = publicEncrypt({ key: keyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(password, 'utf8'));
      passwordData.set(instanceId, { data: encrypted.toString('base64'), at });
      const hash = createHash('sha256').update(password).digest('hex');
      launchHashes.set(instanceId, hash);
      return hash;
    },
    launchPasswordSha256: (instanceId) => launchHashes.get(instanceId),
    async afterStart(instanceIds) {
      for (const id of instanceIds) await boot(id);
    },
    passwordDataXml(instanceId, requestId) {
      const known = passwordData.get(instanceId);
      if (!known && !done.some((b) => b.instanceId === instanceId)) return undefined;
      return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<GetPasswordDataResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
        `<requestId>${requestId}</requestId>`,
        `<instanceId>${instanceId}</instanceId>`,
        // GetPasswordDataResult (botocore data/ec2/2016-11-15/service-2.json): instanceId, passwordData and
        // timestamp, "The time the data was last updated" (here: when the boot or the launch made it).
        `<timestamp>${(known?.at ?? new Date()).toISOString()}</timestamp>`,
        `<passwordData>${known?.data ?? ''}</passwordData>`,
        '</GetPasswordDataResponse>',
      ].join('');
    },
    consoleText: (instanceId) => consoles.get(instanceId),
    lastPasswordSha256: (instanceId) => passwordHashes.get(instanceId),
    boots: () => [...done],
  };
}
