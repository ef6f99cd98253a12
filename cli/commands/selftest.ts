/**
 * `ec2-reset-access selftest`: proves the deployed stack works in this account and Region, on a
 * throwaway instance, before anyone needs it (issue 16). It launches a small Amazon Linux 2023
 * instance (no key pair) tagged `ec2-reset-access:selftest=<run id>`, runs ResetAccess on it with
 * `reset`'s own code, proves a login (ssh from this machine, else a Run Command check that the new
 * key is in the file sshd reads), then removes everything it made, reading each resource's tag
 * back before it deletes it, and prints a report (cli/selftest/report.ts).
 */
import { execFile } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceStatusCommand,
  RunInstancesCommand,
  type _InstanceType,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { IAMClient } from '@aws-sdk/client-iam';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, GetParameterCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName, type AwsOptions, type Clients } from '../aws';
import { readExecution, isTerminal } from '../execution';
import { CliError, EXIT, UsageError, type ExitCode } from '../exit-codes';
import { keyFilePath } from '../key-file';
import type { CommonOptions, Io } from '../io';
import { HELPER_AMI_PARAMETER_PREFIX } from '../../lib/constants';
import { CallMeter } from '../selftest/metrics';
import {
  ACCESS_STEP,
  apiCallsOf,
  failedOrRetried,
  reportLines,
  timeline,
  type Phase,
  type PhaseRecord,
  type SelftestReport,
} from '../selftest/report';
import {
  cleanup,
  createInstanceProfile,
  createNetwork,
  createSecurityGroup,
  describe,
  Ledger,
  RUN_ID,
  selftestTags,
  runbookLeftovers,
  userSubnet,
  zonesOffering,
  type CleanupResult,
} from '../selftest/resources';
import { firstUser, reset } from './reset';

const run = promisify(execFile);

export interface SelftestOptions extends CommonOptions {
  readonly method?: string;
  readonly subnet?: string;
  readonly architecture?: string;
  readonly keep?: boolean;
  readonly yes?: boolean;
  readonly cleanup?: string;
  /** How access is proven: `ssh` (where it can work, the default) or `run-command`. */
  readonly check?: string;
  readonly documentName: string;
}

/** Where an ssh to the instance goes: its address, port 22 (a test double may route it elsewhere). */
export interface SshRoute {
  readonly host: string;
  readonly port: number;
  release(): Promise<void>;
}

/** What the self-test needs from its process beyond Io (each has a default for the real CLI). */
export interface SelftestIo extends Io {
  readonly iam?: (opts: AwsOptions) => IAMClient;
  /** This machine's public IPv4 address as AWS sees it. @default checkip.amazonaws.com */
  readonly callerAddress?: () => Promise<string>;
  readonly sshRoute?: (instance: Instance, address: string) => Promise<SshRoute>;
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * Calls `handler` on the first SIGINT or SIGTERM (Ctrl-C, a CI job's timeout); a second one exits
   * at once with `exitMessage`. Returns the undo. @default process signals
   */
  readonly onStopSignal?: (handler: (signal: string) => void, exitMessage: string) => () => void;
}

/** The real process's signals: the first asks the self-test to stop and clean up, the second exits 130. */
function processStopSignal(handler: (signal: string) => void, exitMessage: string): () => void {
  let seen = false;
  const on = (signal: NodeJS.Signals): void => {
    if (seen) {
      process.stderr.write(`\n${exitMessage}\n`);
      process.exit(130);
    }
    seen = true;
    handler(signal);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return () => {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  };
}

/** Thrown inside the run's own waits once a stop signal arrived. */
class StopRequested extends Error {
  constructor(signal: string) {
    super(`stopped by ${signal}`);
    this.name = 'StopRequested';
  }
}

const ARCH: Record<string, { type: string }> = { x86_64: { type: 't3.micro' }, arm64: { type: 't4g.micro' } };

/**
 * This machine's public IPv4 address: AWS's own service, https://checkip.amazonaws.com, which the
 * EC2 User Guide names for finding it when adding an inbound rule for ssh
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/authorizing-access-to-an-instance.html).
 */
export async function checkIp(): Promise<string> {
  const res = await fetch('https://checkip.amazonaws.com', { signal: AbortSignal.timeout(10000) });
  if (!res.ok) throw new Error(`checkip.amazonaws.com answered ${res.status}`);
  const ip = (await res.text()).trim();
  if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(ip)) throw new Error('checkip.amazonaws.com did not answer with an IPv4 address');
  return ip;
}

function instrument(c: Clients, iam: IAMClient, meter: CallMeter): void {
  meter.instrument('ec2', c.ec2.middlewareStack);
  // One middleware stack type for every v3 client (@smithy/types MiddlewareStack<Input, Output>), each client's own I/O types aside.
  meter.instrument('ssm', c.ssm.middlewareStack as unknown as EC2Client['middlewareStack']);
  meter.instrument('iam', iam.middlewareStack as unknown as EC2Client['middlewareStack']);
}

export async function selftest(o: SelftestOptions, io: SelftestIo): Promise<ExitCode> {
  const method = o.method ?? 'Auto';
  const architecture = o.architecture ?? 'x86_64';
  if (!ARCH[architecture]) throw new UsageError(`--architecture must be x86_64 or arm64, not "${architecture}"`);
  if (o.subnet !== undefined && !/^subnet-[0-9a-f]{8,17}$/.test(o.subnet)) throw new UsageError(`"${o.subnet}" is not a subnet id (subnet- and 8 or 17 hex digits)`);
  if (o.cleanup !== undefined && !RUN_ID.test(o.cleanup)) throw new UsageError(`"${o.cleanup}" is not a self-test run id (12 hex digits, as the report printed it)`);
  const clients = io.clients(o);
  const iam = io.iam ? io.iam(o) : new IAMClient({ ...(o.region ? { region: o.region } : {}), ...(o.profile ? { profile: o.profile } : {}) });
  const meter = new CallMeter();
  instrument(clients, iam, meter);
  const baseSleep = io.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // A stop signal (Ctrl-C, SIGTERM) ends the run's own waits at their next poll and at the next
  // phase, and the cleanup below still runs: it sleeps with baseSleep, which never stops.
  let stopSignal: string | null = null;
  const stopIfAsked = (): void => {
    if (stopSignal !== null) throw new StopRequested(stopSignal);
  };
  const sleep = async (ms: number): Promise<void> => {
    stopIfAsked();
    await baseSleep(ms);
    stopIfAsked();
  };
  const cleanupOptions = { home: io.home, pollMs: io.pollMs, now: io.now, sleep: baseSleep, keyFile: (id: string) => keyFilePath(io.home, id) };
  const c = { ec2: clients.ec2, ssm: clients.ssm, iam };
  const region = await clients.ec2.config.region();

  if (o.cleanup !== undefined) {
    if (!o.yes) await confirm(io, `Remove everything tagged ec2-reset-access:selftest=${o.cleanup} in ${region}?`);
    const result = await cleanup(c, o.cleanup, new Ledger(), cleanupOptions);
    if (o.json) io.out(`${JSON.stringify({ runId: o.cleanup, region, cleanup: result })}\n`);
    else io.out(`${cleanupLines(o.cleanup, result).join('\n')}\n`);
    return result.notRemoved.length === 0 ? EXIT.ok : EXIT.error;
  }

  const runId = randomBytes(6).toString('hex');
  const instanceType = ARCH[architecture]!.type;
  // How access is proven: ssh needs this machine's address and a public address on the instance.
  let callerCidr: string | undefined;
  let checkWhy: string;
  let subnetInfo: Awaited<ReturnType<typeof userSubnet>> | undefined;
  // Instance types are offered per Availability Zone: the temporary subnet goes in one that offers
  // the type, and a user's subnet in another zone is refused before anything is created.
  const zones = await zonesOffering(clients.ec2, ARCH[architecture]!.type);
  if (zones.length === 0) throw new CliError(`${ARCH[architecture]!.type} is offered in no Availability Zone of ${region} (DescribeInstanceTypeOfferings); nothing was created`, EXIT.refused);
  if (o.subnet) {
    subnetInfo = await userSubnet(clients.ec2, o.subnet);
    if (!zones.includes(subnetInfo.availabilityZone)) {
      throw new CliError(`subnet ${o.subnet} is in ${subnetInfo.availabilityZone}, which does not offer ${ARCH[architecture]!.type} (it is offered in ${zones.join(', ')}); nothing was created`, EXIT.refused);
    }
  }
  if (o.check === 'run-command') {
    checkWhy = 'asked for (--check run-command): no inbound rule at all';
  } else {
    try {
      const ip = await (io.callerAddress ?? checkIp)();
      callerCidr = `${ip}/32`;
      checkWhy = `ssh from ${ip}, the only address the security group lets in`;
    } catch (err) {
      checkWhy = `this machine's public address is unknown (${(err as Error).message}), so no inbound rule can be narrowed to it: Run Command checks the key instead`;
    }
    if (callerCidr && subnetInfo && !subnetInfo.publicOnLaunch) {
      callerCidr = undefined;
      checkWhy = `subnet ${o.subnet} gives no public IPv4 address on launch, so this machine cannot reach the instance: Run Command checks the key instead`;
    }
    if (o.check === 'ssh' && !callerCidr) throw new CliError(`--check ssh cannot work here: ${checkWhy.replace(/: Run Command checks the key instead$/, '')}; nothing was created`, EXIT.refused);
  }
  const check: 'ssh' | 'run-command' = callerCidr ? 'ssh' : 'run-command';
  const needsProfile = method === 'Online' || method === 'Auto' || check === 'run-command';

  if (!o.json) {
    io.out(
      [
        `Self-test ${runId} in ${region}: ResetAccess (--method ${method}) on a throwaway instance, then everything removed.`,
        'It creates, each tagged ec2-reset-access:selftest=' + runId + ':',
        `  - one ${instanceType} instance (Amazon Linux 2023, ${architecture}, no key pair, a gp3 root of 8 GiB or the image's size) for about 10 minutes: billed per second, a few cents at on-demand prices`,
        '  - the backup ResetAccess takes of its root volume (an EBS snapshot), deleted at the end',
        '  - a public IPv4 address on the instance (billed per hour while it exists), and what ResetAccess itself runs: for the volume swap a temporary helper instance (t3.small by default) and its network for a few minutes',
        o.subnet ? `  - in your subnet ${o.subnet}: nothing else there but a security group` : '  - a temporary VPC, public subnet, internet gateway and route table',
        `  - a security group with ${callerCidr ? `inbound tcp/22 from ${callerCidr} only` : 'no inbound rule'}`,
        ...(needsProfile ? ['  - an IAM role with the AWS managed policy AmazonSSMManagedInstanceCore and its instance profile'] : []),
        `  access is proven by ${check === 'ssh' ? 'ssh' : 'Run Command'}: ${checkWhy}`,
        o.keep ? '  --keep: all of it is left for inspection, with the command that removes it' : '',
        `If this is interrupted, remove what it made with: ec2-reset-access selftest --cleanup ${runId} --yes --region ${region}`,
      ]
        .filter(Boolean)
        .join('\n') + '\n',
    );
  }
  if (!o.yes) await confirm(io, `Run the self-test (it creates the resources above, at a small cost)?`);

  const removeLater = `ec2-reset-access selftest --cleanup ${runId} --yes --region ${region}`;
  const undoStop = (io.onStopSignal ?? processStopSignal)(
    (signal) => {
      stopSignal = signal;
      io.err(`\nec2-reset-access: ${signal}: stopping the self-test ${runId} and removing what it made (a ResetAccess run under way is followed to its end first); send it again to exit now and remove it later with: ${removeLater}\n`);
    },
    `Exited without cleaning up: remove what self-test ${runId} made with: ${removeLater}`,
  );
  const ledger = new Ledger();
  const phases: PhaseRecord[] = [];
  let failure: { phase: Phase; message: string } | null = null;
  let current: Phase = 'network';
  const phase = async <T>(p: Phase, f: () => Promise<T>, note?: () => string | undefined): Promise<T> => {
    current = p;
    stopIfAsked();
    const t = io.now();
    try {
      const v = await f();
      phases.push({ phase: p, seconds: (io.now() - t) / 1000, status: 'ok', ...(note?.() ? { note: note() } : {}) });
      if (!o.json) io.out(`  ${p} ok (${((io.now() - t) / 1000).toFixed(1)} s)\n`);
      return v;
    } catch (err) {
      phases.push({ phase: p, seconds: (io.now() - t) / 1000, status: 'failed', note: describe(err) });
      throw err;
    }
  };

  let instanceId: string | null = null;
  let executionId: string | null = null;
  let methodChosen: string | null = null;
  let resetJson: Record<string, unknown> | undefined;
  let runReport: SelftestReport['run'] = null;
  let timeToAccess: number | null = null;
  let accessOk = false;
  let attempts = 0;
  const notMeasured: { field: string; reason: string }[] = [];
  try {
    const network = await phase('network', async () => (subnetInfo ? subnetInfo : createNetwork(clients.ec2, runId, zones[0] as string, ledger)));
    const groupId = await phase('security-group', () => createSecurityGroup(clients.ec2, runId, network.vpcId, callerCidr, ledger));
    const profile = needsProfile ? await phase('instance-profile', () => createInstanceProfile(iam, runId, region, ledger)) : undefined;
    instanceId = await phase('launch', () => launch(clients, runId, architecture, instanceType, network.subnetId, groupId, profile, ledger, meter, sleep, io.pollMs));
    const id = instanceId;
    await phase('wait-running', () => waitRunning(clients.ec2, id, io, sleep));
    if (needsProfile) await phase('wait-online', () => waitOnline(clients.ssm, id, io, sleep));

    // ResetAccess, with reset's own code: its --json object is read back.
    if (!o.json) io.out(`  reset: ResetAccess on ${id}, several minutes on AWS (it goes on if this is interrupted: ec2-reset-access status ${id})\n`);
    const resetStart = io.now();
    let code: ExitCode = EXIT.error;
    await phase('reset', async () => {
      const captured: string[] = [];
      const inner: Io = { ...io, out: (t) => captured.push(t), renderer: 'silent', onInterrupt: undefined, clients: () => clients };
      code = await reset(id, { region: o.region, profile: o.profile, json: true, yes: true, documentName: o.documentName, ...(o.method ? { method: o.method } : {}) }, inner);
      resetJson = JSON.parse(captured.join('').trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      executionId = typeof resetJson.executionId === 'string' ? resetJson.executionId : null;
      if (executionId) {
        const snap = await readExecution(clients.ssm, executionId);
        const result = resetJson.result as Record<string, string> | undefined;
        methodChosen = result?.Method ?? null;
        const steps = timeline(snap.steps, snap.execution.ExecutionStartTime);
        const accessStep = ACCESS_STEP[methodChosen ?? ''] ?? '';
        const running = steps.find((s) => s.name === accessStep);
        const start = snap.execution.ExecutionStartTime?.getTime();
        const end = snap.execution.ExecutionEndTime?.getTime();
        runReport = {
          steps,
          status: snap.execution.AutomationExecutionStatus ?? 'unknown',
          accessStep,
          totalSeconds: start !== undefined && end !== undefined ? Math.round((end - start) / 10) / 100 : null,
          keyType: 'rsa',
          end: 'measured',
          instanceRunningSeconds: running ? running.endSeconds : null,
          work: [],
        };
        if (!isTerminal(snap.execution.AutomationExecutionStatus)) notMeasured.push({ field: 'run.totalSeconds', reason: 'the execution had not ended' });
      }
      if (code !== EXIT.ok) {
        const outcome = resetJson.outcome as { kind?: string; failedStep?: { name?: string; message?: string }; message?: string } | undefined;
        throw new Error(`ResetAccess ended with exit code ${code}${outcome ? ` (${outcome.kind}${outcome.failedStep ? ` at ${outcome.failedStep.name}: ${outcome.failedStep.message ?? ''}` : ''})` : ''}`);
      }
    }, () => (executionId ? `execution ${executionId}` : undefined));

    const keyFile = typeof resetJson?.keyFile === 'string' ? resetJson.keyFile : undefined;
    if (!keyFile) throw new Error('ResetAccess gave no key file');
    const user = firstUser((resetJson?.result as Record<string, string> | undefined)?.UsersChanged) ?? 'ec2-user';
    await phase('access', async () => {
      const instance = await describeOne(clients.ec2, id);
      if (check === 'ssh') {
        const address = instance.PublicIpAddress ?? instance.PublicDnsName;
        if (!address) throw new Error(`instance ${id} has no public address to ssh to`);
        attempts = await sshCheck(io, instance, address, user, keyFile, sleep);
      } else {
        attempts = await runCommandCheck(clients.ssm, id, user, keyFile, io, sleep);
      }
      accessOk = true;
      timeToAccess = Math.round((io.now() - resetStart) / 100) / 10;
    }, () => `${check} as ${user}`);
  } catch (err) {
    failure = { phase: current, message: err instanceof CliError ? err.message : describe(err) };
  }

  let cleaned: CleanupResult = { removed: [], notRemoved: [], refused: [] };
  let howToRemove: string | undefined;
  if (o.keep) {
    howToRemove = `ec2-reset-access selftest --cleanup ${runId} --yes --region ${region}`;
    phases.push({ phase: 'cleanup', seconds: 0, status: 'skipped', note: '--keep' });
  } else {
    const t = io.now();
    cleaned = await cleanup(c, runId, ledger, cleanupOptions);
    if (executionId) {
      try {
        cleaned.notRemoved.push(...(await runbookLeftovers(c, executionId, instanceId)));
      } catch (err) {
        cleaned.notRemoved.push({ kind: 'vpc', id: '(runbook leftovers)', why: `could not list what execution ${executionId} left: ${describe(err)}` });
      }
    }
    phases.push({ phase: 'cleanup', seconds: (io.now() - t) / 1000, status: cleaned.notRemoved.length === 0 ? 'ok' : 'failed', ...(cleaned.notRemoved.length ? { note: `${cleaned.notRemoved.length} not removed` } : {}) });
  }
  if (timeToAccess === null) notMeasured.push({ field: 'timeToAccessSeconds', reason: failure ? `the self-test failed at ${failure.phase}` : 'no access check ran' });
  const counts = meter.snapshot();
  const report: SelftestReport = {
    kind: 'ec2-reset-access selftest',
    version: 1,
    runId,
    region,
    generatedAt: new Date(io.now()).toISOString(),
    methodAsked: method,
    methodChosen,
    instanceId,
    instanceType,
    architecture,
    executionId,
    ok: failure === null && accessOk && cleaned.notRemoved.length === 0,
    failure,
    phases,
    run: runReport,
    timeToAccessSeconds: timeToAccess,
    accessCheck: { kind: check, why: checkWhy, ok: accessOk, attempts },
    apiCalls: apiCallsOf(counts),
    failedOrRetried: failedOrRetried(counts),
    cleanup: { kept: !!o.keep, removed: cleaned.removed, notRemoved: cleaned.notRemoved, refused: cleaned.refused, ...(howToRemove ? { howToRemove } : {}) },
    notMeasured,
  };
  if (o.json) io.out(`${JSON.stringify(report)}\n`);
  else io.out(`${reportLines(report).join('\n')}\n`);
  if (!report.ok) io.err(`ec2-reset-access: self-test ${runId} failed${failure ? ` at ${failure.phase}` : ''}${cleaned.notRemoved.length ? `; ${cleaned.notRemoved.length} resource(s) not removed (listed above)` : ''}\n`);
  undoStop();
  return report.ok ? EXIT.ok : EXIT.error;
}

async function confirm(io: Io, question: string): Promise<void> {
  if (!io.stdinIsTTY) throw new CliError('not starting: stdin is not a terminal, so there is no one to confirm; pass --yes to run without asking', EXIT.refused);
  if (!(await io.confirm(question))) throw new CliError('not starting: you declined', EXIT.refused);
}

function cleanupLines(runId: string, r: CleanupResult): string[] {
  return [
    `Cleanup of self-test ${runId}: ${r.removed.length === 0 ? 'nothing found to remove' : `removed ${r.removed.map((m) => `${m.kind} ${m.id}`).join(', ')}`}`,
    ...r.notRemoved.map((n) => `  NOT REMOVED: ${n.kind} ${n.id}: ${n.why}`),
    ...r.refused.map((n) => `  left alone (not this run's): ${n.kind} ${n.id}: ${n.why}`),
  ];
}

async function describeOne(ec2: EC2Client, id: string): Promise<Instance> {
  const i = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0];
  if (!i) throw new Error(`instance ${id} not found`);
  return i;
}

/**
 * IAM's eventual consistency: a new instance profile may be refused by RunInstances for a few
 * seconds, as InvalidParameterValue "Value (<name>) for parameter iamInstanceProfile.name is invalid.
 * Invalid IAM Instance Profile name" (as reported in aws/aws-sdk-js-v3#5253; no AWS page gives the
 * text: local/README.md, assumptions). Any other refusal fails the launch, and cleanup still runs.
 */
const PROFILE_NOT_READY = /iamInstanceProfile|IAM Instance Profile|instance profile/i;

/**
 * Launches the instance: the latest Amazon Linux 2023 AMI from its public parameter
 * (/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-<arch>,
 * https://docs.aws.amazon.com/linux/al2023/ug/ec2.html), no key pair, IMDSv2 required, shutdown
 * behaviour stop (ResetAccess refuses `terminate`), tagged at creation (instance and volume).
 * A new instance profile may not be usable at once: IAM is eventually consistent ("changes that
 * you make are not always immediately visible", https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency;
 * AddRoleToInstanceProfile: "you must then wait for the change to appear across all of AWS",
 * https://docs.aws.amazon.com/IAM/latest/APIReference/API_AddRoleToInstanceProfile.html), so
 * RunInstances refused for the profile is retried, at most 12 times. Each attempt has its own
 * ClientToken, so that the SDK's own retries of one attempt make one launch
 * (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html), while an attempt after
 * a refusal, which launched nothing, is not answered with the refusal again (review P11).
 */
async function launch(
  c: Clients,
  runId: string,
  architecture: string,
  instanceType: string,
  subnetId: string,
  groupId: string,
  profile: string | undefined,
  ledger: Ledger,
  meter: CallMeter,
  sleep: (ms: number) => Promise<void>,
  pollMs: number,
): Promise<string> {
  const ami = (await c.ssm.send(new GetParameterCommand({ Name: `${HELPER_AMI_PARAMETER_PREFIX}${architecture}` }))).Parameter?.Value;
  if (!ami || !/^ami-[0-9a-f]+$/.test(ami)) throw new Error(`the public parameter ${HELPER_AMI_PARAMETER_PREFIX}${architecture} gave no AMI id`);
  // The root as the cost statement says it: gp3 at the image's own root device name.
  const image = (await c.ec2.send(new DescribeImagesCommand({ ImageIds: [ami] }))).Images?.[0];
  const rootDevice = image?.RootDeviceName ?? '/dev/xvda';
  // Never smaller than the image's own root snapshot (RunInstances refuses a smaller volume).
  const imageRootGiB = image?.BlockDeviceMappings?.find((b) => b.DeviceName === rootDevice)?.Ebs?.VolumeSize ?? 0;
  for (let attempt = 1; ; attempt++) {
    try {
      const out = await c.ec2.send(
        new RunInstancesCommand({
          ImageId: ami,
          InstanceType: instanceType as _InstanceType,
          MinCount: 1,
          MaxCount: 1,
          SubnetId: subnetId,
          SecurityGroupIds: [groupId],
          BlockDeviceMappings: [{ DeviceName: rootDevice, Ebs: { VolumeSize: Math.max(8, imageRootGiB), VolumeType: 'gp3', DeleteOnTermination: true } }],
          ...(profile ? { IamInstanceProfile: { Name: profile } } : {}),
          MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
          InstanceInitiatedShutdownBehavior: 'stop',
          ClientToken: `ec2-reset-access-selftest-${runId}-${attempt}`,
          TagSpecifications: [
            { ResourceType: 'instance', Tags: selftestTags(runId) },
            { ResourceType: 'volume', Tags: selftestTags(runId) },
          ],
        }),
      );
      const id = out.Instances?.[0]?.InstanceId;
      if (!id) throw new Error('RunInstances returned no instance');
      ledger.add('instance', id);
      return id;
    } catch (err) {
      const name = awsErrorName(err);
      if (profile && name === 'InvalidParameterValue' && PROFILE_NOT_READY.test((err as Error).message) && attempt < 12) {
        meter.noteHandled('ec2:RunInstances', `${name} (instance profile not yet usable; retried)`);
        await sleep(Math.max(pollMs, 1) * 2);
        continue;
      }
      throw err;
    }
  }
}

/**
 * Running, and both status checks passed (DescribeInstanceStatus: InstanceStatus and SystemStatus
 * `ok`, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-system-instance-status-check.html).
 */
async function waitRunning(ec2: EC2Client, id: string, io: Io, sleep: (ms: number) => Promise<void>): Promise<void> {
  const until = io.now() + 15 * 60 * 1000;
  for (;;) {
    const s = (await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [id], IncludeAllInstances: true }))).InstanceStatuses?.[0];
    if (s?.InstanceState?.Name === 'running' && s.InstanceStatus?.Status === 'ok' && s.SystemStatus?.Status === 'ok') return;
    if (s?.InstanceState?.Name && ['shutting-down', 'terminated', 'stopping', 'stopped'].includes(s.InstanceState.Name)) throw new Error(`instance ${id} is ${s.InstanceState.Name}`);
    if (io.now() > until) throw new Error(`instance ${id} did not pass its status checks within 15 minutes`);
    await sleep(io.pollMs);
  }
}

/** The SSM Agent registered and Online (DescribeInstanceInformation PingStatus). */
async function waitOnline(ssm: SSMClient, id: string, io: Io, sleep: (ms: number) => Promise<void>): Promise<void> {
  const until = io.now() + 10 * 60 * 1000;
  for (;;) {
    const info = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }));
    if (info.InstanceInformationList?.some((i) => i.InstanceId === id && i.PingStatus === 'Online')) return;
    if (io.now() > until) throw new Error(`instance ${id} did not come Online in Systems Manager within 10 minutes (its instance profile has AmazonSSMManagedInstanceCore; it needs outbound HTTPS to Systems Manager)`);
    await sleep(io.pollMs);
  }
}

/**
 * A login as a user makes it: `ssh -i <key> -o StrictHostKeyChecking=accept-new <user>@<address>
 * true`, with a known_hosts file of its own (the throwaway host never lands in the user's), retried
 * while sshd is not up yet, for at most two minutes.
 */
async function sshCheck(io: SelftestIo, instance: Instance, address: string, user: string, keyFile: string, sleep: (ms: number) => Promise<void>): Promise<number> {
  const route = io.sshRoute ? await io.sshRoute(instance, address) : { host: address, port: 22, release: async () => undefined };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-reset-access-selftest-'));
  try {
    const until = io.now() + 2 * 60 * 1000;
    for (let attempt = 1; ; attempt++) {
      try {
        await run(
          'ssh',
          [
            '-i', keyFile,
            '-o', 'StrictHostKeyChecking=accept-new',
            '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
            '-o', 'BatchMode=yes',
            '-o', 'IdentitiesOnly=yes',
            '-o', 'IdentityAgent=none',
            '-o', 'ConnectTimeout=10',
            '-o', 'LogLevel=ERROR',
            '-p', String(route.port),
            `${user}@${route.host}`,
            'true',
          ],
          { timeout: 30000 },
        );
        return attempt;
      } catch (err) {
        if (io.now() > until) throw new Error(`ssh ${user}@${address} with the new key failed: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').pop()}`);
        await sleep(Math.max(io.pollMs, 1) * 2);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await route.release();
  }
}

/** The fingerprint (SHA256:...) of the key file's public half, by ssh-keygen itself. */
async function fingerprintOf(keyFile: string): Promise<string> {
  const out = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', keyFile]);
  const fp = out.stdout.trim().split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error('ssh-keygen gave no fingerprint for the key file');
  return fp;
}

/**
 * The check where ssh cannot reach the instance: AWS-RunShellScript runs on the instance
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-runShellScript)
 * and lists the fingerprints of the keys in each file sshd reads for the user: the
 * AuthorizedKeysFile values `sshd -T` prints for that user (Match blocks applied, sshd_config(5)
 * TOKENS %h %u %%), relative ones under the home (sshd_config(5), AuthorizedKeysFile). The script
 * goes as one element of `commands` (each element becomes lines of the script the plugin writes).
 */
async function runCommandCheck(ssm: SSMClient, id: string, user: string, keyFile: string, io: Io, sleep: (ms: number) => Promise<void>): Promise<number> {
  if (!/^[a-z_][a-z0-9_.-]*$/.test(user)) throw new Error(`not a user name: ${user}`);
  const want = await fingerprintOf(keyFile);
  const script = [
    'set -eu',
    `u=${user}`,
    'h=$(getent passwd "$u" | cut -d: -f6)',
    // sshd -T loads a host key before it prints anything: a throwaway one, so the check never needs the instance's.
    't=$(mktemp -d); trap \'rm -rf "$t"\' EXIT',
    'ssh-keygen -q -t ed25519 -N "" -f "$t/hostkey"',
    'for f in $(sshd -T -h "$t/hostkey" -C "user=$u,host=localhost,addr=127.0.0.1" | awk \'$1=="authorizedkeysfile"{for(i=2;i<=NF;i++)print $i}\'); do',
    '  f=${f//%h/$h}; f=${f//%u/$u}; f=${f//%%/%}',
    '  case "$f" in /*) ;; *) f="$h/$f" ;; esac',
    '  if [ -f "$f" ]; then ssh-keygen -l -E sha256 -f "$f" | awk -v f="$f" \'{print "KEY", $2, f}\'; fi',
    'done',
  ];
  const sent = await ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [id], Parameters: { commands: [script.join('\n')] }, Comment: 'ec2-reset-access self-test: is the new key where sshd reads it?' }));
  const commandId = sent.Command?.CommandId as string;
  const until = io.now() + 5 * 60 * 1000;
  for (let attempt = 1; ; attempt++) {
    let inv;
    try {
      inv = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
    } catch (err) {
      // Just after SendCommand the invocation may not exist yet (GetCommandInvocation, InvocationDoesNotExist).
      if (awsErrorName(err) !== 'InvocationDoesNotExist') throw err;
    }
    const status = inv?.Status;
    if (status === 'Success') {
      const lines = (inv?.StandardOutputContent ?? '').split('\n').filter((l) => l.startsWith('KEY '));
      if (!lines.some((l) => l.split(' ')[1] === want)) throw new Error(`the new key (${want}) is in none of the files sshd reads for ${user}`);
      return attempt;
    }
    if (status && ['Failed', 'Cancelled', 'TimedOut', 'Cancelling'].includes(status)) throw new Error(`the Run Command check ended ${status}: ${(inv?.StandardErrorContent ?? '').trim().split('\n').pop() ?? ''}`);
    if (io.now() > until) throw new Error('the Run Command check did not end within 5 minutes');
    await sleep(io.pollMs);
  }
}
