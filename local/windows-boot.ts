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
import { constants, publicEncrypt, randomInt } from 'node:crypto';
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
  /** After a successful StartInstances: boots the Windows instances among them. */
  afterStart(instanceIds: readonly string[]): Promise<void>;
  /** The GetPasswordData response of a Windows instance this twin knows, or undefined (moto answers). */
  passwordDataXml(instanceId: string, requestId: string): string | undefined;
  /** Console lines a boot wrote (the NewPassword task's line), for GetConsoleOutput. */
  consoleText(instanceId: string): string | undefined;
  boots(): readonly WindowsBootRecord[];
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

async function ntfsDevice(devices: string[]): Promise<string | undefined> {
  for (const d of devices) {
    try {
      const t = (await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', d])).stdout.trim();
      if (t === 'ntfs') return d;
    } catch {
      // no filesystem
    }
  }
  return undefined;
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
      const device = await ntfsDevice([...loop.partitions, loop.device]);
      if (!device) return;
      const v2 = await ntfsCat(device, EC2LAUNCH_V2_CONFIG);
      let generate = false;
      if (v2) {
        const runOnce = await ntfsCat(device, EC2LAUNCH_V2_RUN_ONCE);
        generate = runOnce === undefined && setsRandomPassword(agentConfigTasks(v2.toString('utf8')));
        record = { ...record, agent: 'EC2Launch v2' };
      } else {
        const config = await ntfsCat(device, EC2CONFIG_SETTINGS);
        if (config) {
          // <Plugin><Name>Ec2SetPassword</Name><State>Enabled</State></Plugin>
          generate = /<Name>\s*Ec2SetPassword\s*<\/Name>\s*<State>\s*Enabled\s*<\/State>/.test(config.toString('utf8'));
          record = { ...record, agent: 'EC2Config' };
        }
      }
      const keyPem = instance.KeyName ? keyPairs.get(instance.KeyName) : undefined;
      if (generate && keyPem) {
        const encrypted = publicEncrypt({ key: keyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(randomPassword(), 'utf8'));
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
        `<timestamp>${(known?.at ?? new Date()).toISOString()}</timestamp>`,
        `<passwordData>${known?.data ?? ''}</passwordData>`,
        '</GetPasswordDataResponse>',
      ].join('');
    },
    consoleText: (instanceId) => consoles.get(instanceId),
    boots: () => [...done],
  };
}
