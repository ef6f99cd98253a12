/**
 * `ec2-reset-access reset <instance-id>`: summary, confirmation, StartAutomationExecution, live
 * progress, then the key on disk (0600 from creation) and the exact ssh command; on failure, the
 * failed step, its message and what restore did.
 */
import {
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  GetParameterCommand,
  PutParameterCommand,
  StartAutomationExecutionCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { awsErrorName } from '../aws';
import { keyParameterName } from '../../lambdas/common/names';
import { documentStepNames, follow } from '../follow';
import { judge, outputOf, type Outcome, type Snapshot } from '../execution';
import { CliError, EXIT, UsageError, type ExitCode } from '../exit-codes';
import { checkKeyFileFree, keyFilePath, writeKeyFile } from '../key-file';
import { managedInstance, onlineGaps } from '../../lambdas/preflight/method';
import { buildPreview, previewLines, type BackupMethod, type MethodGuess, type Preview } from '../preview';
import { needsKeyParameter, parsePublicKeyFile, publicKeyParameterName } from '../public-key';
import type { CommonOptions, Io } from '../io';
import { describeOutcome, exitCodeOf, followRestore } from './outcome';

export interface ResetOptions extends CommonOptions {
  readonly publicKey?: string;
  readonly users?: string;
  readonly keyType?: string;
  readonly method?: string;
  readonly subnet?: string;
  readonly backup?: string;
  readonly helperInstanceType?: string;
  readonly allowEncryptedVolume?: boolean;
  readonly allowEphemeralDataLoss?: boolean;
  readonly documentName: string;
  readonly yes?: boolean;
  readonly keepParameter?: boolean;
  readonly force?: boolean;
}

export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** The runbook's parameters from the options: InstanceId, and each other one only when given. */
export function runbookParameters(instanceId: string, o: ResetOptions, publicKey?: { line?: string; parameter?: string }): Record<string, string[]> {
  const p: Record<string, string[]> = { InstanceId: [instanceId] };
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined) p[k] = [v];
  };
  put('PublicKey', publicKey?.line);
  put('PublicKeyParameter', publicKey?.parameter);
  put('Users', o.users);
  put('KeyType', o.keyType);
  put('Method', o.method);
  put('SubnetId', o.subnet);
  put('BackupMethod', o.backup);
  put('HelperInstanceType', o.helperInstanceType);
  if (o.allowEncryptedVolume !== undefined) put('AllowEncryptedVolume', o.allowEncryptedVolume ? 'True' : 'False');
  if (o.allowEphemeralDataLoss) put('AllowEphemeralDataLoss', 'True');
  return p;
}

export async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const i = out.Reservations?.flatMap((r) => r.Instances ?? [])[0];
    if (i) return i;
  } catch (err) {
    if (awsErrorName(err) !== 'InvalidInstanceID.NotFound') throw err;
  }
  throw new UsageError(`instance ${instanceId} not found in this Region and account (check --region / --profile)`);
}

/**
 * The way in preflight will choose, with preflight's own test of the online method's needs
 * (onlineGaps, lambdas/preflight/method.ts): Auto takes Online when nothing is missing.
 */
async function guessMethod(ssm: SSMClient, instance: Instance, asked: string): Promise<MethodGuess> {
  if (asked === 'VolumeSwap' || asked === 'UserData') return { chosen: asked, reason: `asked for (--method ${asked})` };
  let info;
  try {
    info = await managedInstance(ssm, instance.InstanceId as string);
  } catch (err) {
    return { chosen: 'unknown', reason: `DescribeInstanceInformation: ${awsErrorName(err) ?? 'error'}` };
  }
  const gaps = onlineGaps(instance.State?.Name ?? 'unknown', info);
  if (asked === 'Online') {
    if (gaps.length > 0) throw new CliError(`--method Online cannot run on ${instance.InstanceId}: ${gaps.join('; ')} (nothing was started; use --method VolumeSwap or Auto)`, EXIT.refused);
    return { chosen: 'Online', reason: 'asked for (--method Online)' };
  }
  return gaps.length === 0 ? { chosen: 'Online', reason: `Auto: SSM Agent ${info?.AgentVersion ?? ''} Online on Linux` } : { chosen: 'VolumeSwap', reason: `Auto: ${gaps.join('; ')}` };
}

async function preview(ec2: EC2Client, ssm: SSMClient, instanceId: string, backup: BackupMethod, method: string): Promise<Preview> {
  const instance = await describeInstance(ec2, instanceId);
  const guess = await guessMethod(ssm, instance, method);
  const addresses = await ec2.send(new DescribeAddressesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] }));
  const rootId = instance.BlockDeviceMappings?.find((b) => b.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
  const volume = rootId ? (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [rootId] }))).Volumes?.[0] : undefined;
  return buildPreview(instance, (addresses.Addresses?.length ?? 0) > 0, volume, backup, guess);
}

/** The address to ssh to, and which kind it is. */
export function addressOf(i: Instance): { address?: string; kind: 'public DNS' | 'public IP' | 'private IP' | 'none' } {
  if (i.PublicDnsName) return { address: i.PublicDnsName, kind: 'public DNS' };
  if (i.PublicIpAddress) return { address: i.PublicIpAddress, kind: 'public IP' };
  if (i.PrivateIpAddress) return { address: i.PrivateIpAddress, kind: 'private IP' };
  return { kind: 'none' };
}

/** The first user of UsersChanged (a comma list, maybe cut with `…(+N more)`). */
export function firstUser(usersChanged: string | undefined): string | undefined {
  const u = (usersChanged ?? '').split(',')[0]?.replace(/….*$/, '').trim();
  return u && /^[a-z_][a-z0-9_.-]*$/.test(u) ? u : undefined;
}

/** The runbook's result (summarize.Payload), parsed; undefined when absent or not JSON. */
export function parseSummary(text: string | undefined): Record<string, string> | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : undefined;
  } catch {
    return undefined;
  }
}

export async function reset(instanceId: string, o: ResetOptions, io: Io): Promise<ExitCode> {
  if (!INSTANCE_ID.test(instanceId)) throw new UsageError(`"${instanceId}" is not an instance id (i- and 8 or 17 hex digits)`);
  let publicKeyLine: string | undefined;
  if (o.publicKey !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(o.publicKey, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --public-key ${o.publicKey}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    publicKeyLine = parsePublicKeyFile(text, o.publicKey);
  }
  const keyFile = keyFilePath(io.home, instanceId);
  if (!publicKeyLine) checkKeyFileFree(keyFile, !!o.force);

  const { ssm, ec2 } = io.clients(o);
  const pv = await preview(ec2, ssm, instanceId, (o.backup ?? 'Snapshot') as BackupMethod, o.method ?? 'Auto');
  if (!o.json) io.out(`${previewLines(pv).join('\n')}\n`);
  if (!o.yes) {
    if (!io.stdinIsTTY) throw new CliError('not starting: stdin is not a terminal, so there is no one to confirm; pass --yes to run without asking', EXIT.refused);
    if (!(await io.confirm(`Reset access to ${instanceId}?`))) throw new CliError('not starting: you declined', EXIT.refused);
  }

  let keyParameter: string | undefined;
  try {
    if (publicKeyLine && needsKeyParameter(publicKeyLine)) {
      keyParameter = publicKeyParameterName(instanceId, randomBytes(4).toString('hex'));
      await ssm.send(new PutParameterCommand({ Name: keyParameter, Type: 'String', Value: publicKeyLine, Overwrite: false, Description: `ec2-reset-access CLI: public key for ${instanceId}` }));
    }
    const params = runbookParameters(instanceId, o, keyParameter ? { parameter: keyParameter } : publicKeyLine ? { line: publicKeyLine } : undefined);
    const started = await ssm.send(new StartAutomationExecutionCommand({ DocumentName: o.documentName, Parameters: params }));
    const executionId = started.AutomationExecutionId as string;
    if (!o.json) io.out(`Started execution ${executionId} of ${o.documentName} (cancel: ec2-reset-access cancel ${executionId})\n`);
    const undo = io.onInterrupt?.(
      `Stopped following. Execution ${executionId} goes on: ec2-reset-access status ${executionId} to see it, ec2-reset-access cancel ${executionId} to cancel it (restore follows).`,
    );
    let disarmed = false;
    const disarm = (): void => {
      if (!disarmed) undo?.();
      disarmed = true;
    };
    try {
      return await followAndFinish(ssm, ec2, executionId, instanceId, keyFile, pv, o, io, disarm);
    } finally {
      disarm();
    }
  } finally {
    if (keyParameter) {
      try {
        await ssm.send(new DeleteParameterCommand({ Name: keyParameter }));
      } catch (err) {
        io.err(`ec2-reset-access: could not delete ${keyParameter} (${awsErrorName(err) ?? 'error'}): delete it with aws ssm delete-parameter --name ${keyParameter}\n`);
      }
    }
  }
}

async function followAndFinish(
  ssm: SSMClient,
  ec2: EC2Client,
  executionId: string,
  instanceId: string,
  keyFile: string,
  pv: Preview,
  o: ResetOptions,
  io: Io,
  executionEnded: () => void,
): Promise<ExitCode> {
  const stepNames = await documentStepNames(ssm, o.documentName).catch(() => undefined);
  // The online method: the key file is written as soon as the step outputs say the key is in place
  // (review P4), and the run is followed to its end (cleanup, summary) after that.
  let early: EarlyKey | undefined;
  const onSnapshot = async (s: Snapshot): Promise<void> => {
    if (early) return;
    const name = keyInPlace(s);
    if (!name) return;
    try {
      const value = (await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }))).Parameter?.Value;
      if (!value) return;
      writeKeyFile(keyFile, value, !!o.force);
      early = { keyName: name, step: keyStepOf(s) };
      if (!o.json) io.out(`The key is in place on ${instanceId}: the private key is in ${keyFile} (mode 0600). Following the run to its end (cleanup, summary)...\n`);
    } catch {
      // Not now (the file exists, the parameter cannot be read, ...): the end of the run says why.
    }
  };
  const snap = await follow({ ssm, executionId, stepNames, renderer: o.json ? 'silent' : io.renderer, intervalMs: io.pollMs, now: io.now, onSnapshot });
  // The execution has ended: "it goes on, cancel it" is no longer true on Ctrl-C.
  executionEnded();
  const outcome: Outcome = judge(snap);
  if (outcome.kind !== 'success') {
    const restore = outcome.kind === 'cancelled' && outcome.restoreExecutionId ? await followRestore(ssm, outcome.restoreExecutionId, o, io) : undefined;
    const code = exitCodeOf(outcome, restore);
    if (o.json) io.out(`${JSON.stringify({ executionId, instanceId, preview: pv, outcome, restore, exitCode: code, ...(early ? { keyFile, keyWrittenAfter: early.step, keyParameterName: early.keyName } : {}) })}\n`);
    else {
      io.err(describeOutcome(outcome, restore, instanceId));
      if (early) {
        io.err(
          `Note: the key had been put in place (${early.step}) and written to ${keyFile} before this failure. ` +
            `The private key is also still in ${early.keyName} (not deleted). What restore did is above; whether the key still logs in depends on it.\n`,
        );
      }
    }
    return code;
  }

  // The result: the first summarize step's Payload output that parses (summarize.Payload,
  // summarizeOnline.Payload, summarizeUserData.Payload: one per method, issue 12).
  const summaryKey = Object.keys(snap.execution.Outputs ?? {}).filter((k) => /^summarize\w*\.Payload$/.test(k)).find((k) => parseSummary(outputOf(snap.execution, k)));
  const summary = summaryKey ? (parseSummary(outputOf(snap.execution, summaryKey)) as Record<string, string>) : undefined;
  if (!summary) {
    throw new CliError(
      `execution ${executionId} succeeded but gave no summary output; a generated key would be in ${keyParameterName(instanceId)}: fetch it with (umask 077; set -o noclobber; aws ssm get-parameter --name ${keyParameterName(instanceId)} --with-decryption --query Parameter.Value --output text > key.pem)`,
      EXIT.error,
    );
  }
  const keyName = summary.KeyParameterName;
  let wroteKey = !!early && early.keyName === keyName;
  if (wroteKey && !o.keepParameter) await ssm.send(new DeleteParameterCommand({ Name: keyName }));
  if (!wroteKey && keyName && keyName !== 'none') {
    const got = await ssm.send(new GetParameterCommand({ Name: keyName, WithDecryption: true }));
    const value = got.Parameter?.Value;
    if (!value) throw new CliError(`the key parameter ${keyName} is empty; it was left in place`, EXIT.error);
    try {
      writeKeyFile(keyFile, value, !!o.force);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new CliError(
        `the reset succeeded, but ${why}. The key is still in ${keyName} (not deleted): fetch it with (umask 077; set -o noclobber; aws ssm get-parameter --name ${keyName} --with-decryption --query Parameter.Value --output text > key.pem)`,
        EXIT.error,
      );
    }
    wroteKey = true;
    if (!o.keepParameter) await ssm.send(new DeleteParameterCommand({ Name: keyName }));
  }
  const instance = await describeInstance(ec2, instanceId);
  const addr = addressOf(instance);
  const user = firstUser(summary.UsersChanged) ?? '<user>';
  const identity = wroteKey ? keyFile : '<your private key>';
  const ssh = addr.address ? `ssh -i ${identity} ${user}@${addr.address}` : undefined;
  const state = instance.State?.Name ?? 'unknown';
  if (o.json) {
    const result = { ...summary, ...(wroteKey && !o.keepParameter ? { KeyParameterName: `${keyName} (deleted)` } : {}) };
    io.out(`${JSON.stringify({ executionId, instanceId, preview: pv, outcome, result, keyFile: wroteKey ? keyFile : undefined, address: addr.address, addressKind: addr.kind, instanceState: state, ssh, exitCode: EXIT.ok })}\n`);
    return EXIT.ok;
  }
  const lines = [`Access reset on ${instanceId} (execution ${executionId}).`];
  if (summary.Method) lines.push(`  method: ${summary.Method}${summary.MethodReason ? ` (${summary.MethodReason})` : ''}`);
  if (summary.UsersChanged) lines.push(`  users changed: ${summary.UsersChanged}`);
  if (summary.Fingerprint) lines.push(`  key fingerprint: ${summary.Fingerprint}`);
  if (summary.BackupId && summary.BackupId !== 'none') lines.push(`  backup: ${summary.BackupId} (kept; list and delete with: ec2-reset-access backups)`);
  if (summary.Warnings) lines.push(`  warnings: ${summary.Warnings}`);
  if (wroteKey) lines.push(`  private key: ${keyFile} (mode 0600)${o.keepParameter ? `; also kept in ${keyName}` : `; the parameter ${keyName} was deleted`}`);
  if (state !== 'running') lines.push(`  the instance is ${state}: start it first (aws ec2 start-instances --instance-ids ${instanceId}), then read its address`);
  if (ssh) lines.push(`Log in (${addr.kind}${addr.kind === 'private IP' ? ': reachable from inside its VPC only' : ''}):`, `  ${ssh}`);
  io.out(`${lines.join('\n')}\n`);
  return EXIT.ok;
}

interface EarlyKey {
  /** The SecureString the key file was written from. */
  readonly keyName: string;
  /** The step whose outputs said the key was in place. */
  readonly step: string;
}

/** The Payload of the last run of a step, parsed (aws:invokeLambdaFunction's output "Payload"). */
function payloadOf(s: Snapshot, step: string): Record<string, unknown> | undefined {
  for (let i = s.steps.length - 1; i >= 0; i--) {
    const e = s.steps[i];
    if (e.StepName !== step) continue;
    if (e.StepStatus !== 'Success') return undefined;
    try {
      const v = JSON.parse(e.Outputs?.Payload?.[0] ?? '') as unknown;
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The generated key's SecureString once the run's step outputs say the key is in place on the
 * instance (the online method): injectKeyOnline's Payload with Confirmed "true", or reportOnline
 * ended Success after it. Read from DescribeAutomationStepExecutions' StepExecution.Outputs
 * ("Returned values from the execution of the step":
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_StepExecution.html; the
 * Payload output of aws:invokeLambdaFunction:
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html).
 * undefined until then, for the other methods, and when the user gave the public key (no key to fetch).
 */
export function keyInPlace(s: Snapshot): string | undefined {
  const inject = payloadOf(s, 'injectKeyOnline');
  const name = typeof inject?.KeyParameterName === 'string' ? inject.KeyParameterName : undefined;
  if (!name || name === 'none') return undefined;
  if (inject?.Confirmed === 'true') return name;
  return payloadOf(s, 'reportOnline') !== undefined ? name : undefined;
}

function keyStepOf(s: Snapshot): string {
  return payloadOf(s, 'injectKeyOnline')?.Confirmed === 'true' ? 'injectKeyOnline' : 'reportOnline';
}
