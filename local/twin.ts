/**
 * The local twin: the whole reset on this machine, without AWS.
 *
 * startTwin() starts moto and the agent in front of it, synthesizes the CDK app (cached under
 * .twin/), creates in moto what the step Lambdas reference (the KMS key, the helper's role and
 * instance profile, the inject-key Command document, the Automation document), and gives the
 * Lambdas the environment their template gives them. runReset() runs the *synthesized*
 * Automation document through the runner, each Lambda step running its bundled asset in
 * process. stop() leaves no process, mount, loop device or file behind, and checks it.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AutoScalingClient, AttachInstancesCommand, CreateAutoScalingGroupCommand, CreateLaunchConfigurationCommand } from '@aws-sdk/client-auto-scaling';
import {
  DescribeAddressesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  ImportKeyPairCommand,
  Instance,
  _InstanceType,
  RequestSpotInstancesCommand,
  RunInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CreateAliasCommand, CreateKeyCommand, DisableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  CreateDocumentCommand,
  DocumentType,
  GetParameterCommand,
  GetParametersByPathCommand,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { AutomationService, createAutomationService } from './automation-service';
import { createEc2Limits } from './ec2-limits';
import { Agent, AwsFault, CallRecord, startAgent, Transitions } from './agent';
import { PhysicalResource, resolveIntrinsics, ResolveContext } from './cfn';
import { DiskApi, ImageSpec, loadDisk, LOST_KEY_IMAGE } from './twin-disk';
import { MotoServer, startMoto } from './moto';
import { executions, ExecutionResult, Fault, runAutomation, sdkAwsCall, VirtualClock } from './runner/runner';
import { CfnResource, CfnTemplate, PROJECT_ROOT, synthesizeApp, SynthesizedApp } from './synth';
import { LOCK_PATH } from '../lambdas/common/names';
import { STEP_FOLDERS } from '../lib/constants';

export const REGION = 'us-east-1';
export const ACCOUNT_ID = '123456789012';
export const AVAILABILITY_ZONE = 'us-east-1a';
/** Amazon Linux 2023 x86_64 in moto's image list (the public parameter names it too). */
export const LINUX_AMI = 'ami-0ed094fb1304fd857';
/** A Windows Server image in moto's list. */
export const WINDOWS_AMI = 'ami-03cf127a';
/** An instance-store-backed Linux image in moto's list. */
export const INSTANCE_STORE_AMI = 'ami-04681a1dbd79675b6';

export const LOCK_PREFIX = `/${LOCK_PATH}/`;
export const MANAGED_TAG = { Name: 'tag:reset-access:managed-by', Values: ['ec2-reset-access'] };

export class TwinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TwinError';
  }
}

export interface TwinOptions {
  /** Progress lines (never payloads or keys). */
  readonly log?: (line: string) => void;
  /** Hard limit on moto's life in seconds. @default 900 */
  readonly maxLifetimeSeconds?: number;
  /** Another runbook YAML than runbooks/reset-access.yaml. @default - the repository's */
  readonly runbookFile?: string;
  /**
   * How resources still changing look to the Lambdas ('show': as in AWS, they poll in real time;
   * 'settle': the end state at once, same modeled time, no real-time polls). @default 'show'
   */
  readonly transitions?: Transitions;
  /** Where the Lambdas' log lines go (CloudWatch Logs in AWS). @default - kept, see lambdaLogs() */
  readonly lambdaLog?: (line: string) => void;
  /**
   * Enforce EC2's account limits a fleet meets: the Region's VPC quota and the API request-rate
   * token buckets on the virtual clock (local/ec2-limits.ts). @default false
   */
  readonly awsLimits?: boolean;
  /**
   * moto serves the AWS managed policies (arn:aws:iam::aws:policy/...), so that a role can have
   * AmazonSSMManagedInstanceCore attached (the self-test, local/selftest-twin.ts). @default false
   */
  readonly awsManagedPolicies?: boolean;
}

export interface LockedOutSpec {
  /** The root volume's disk image; false: no image (the command, if sent, finds no disk). @default LOST_KEY_IMAGE */
  readonly image?: ImageSpec | false;
  /** @default 'running' */
  readonly state?: 'running' | 'stopped';
  /** @default '/dev/xvda' */
  readonly rootDeviceName?: string;
  /** @default true */
  readonly deleteOnTermination?: boolean;
  /** @default LINUX_AMI */
  readonly imageId?: string;
  /** @default 't3.small' */
  readonly instanceType?: string;
  /** @default 'stop' */
  readonly shutdownBehavior?: 'stop' | 'terminate';
  /** Stop protection. @default false */
  readonly disableApiStop?: boolean;
  /** Launch as a one-time Spot instance. @default false */
  readonly spot?: boolean;
  /** Encrypt the root volume with a customer KMS key in this state. @default - not encrypted */
  readonly kmsKey?: 'enabled' | 'disabled';
  /** Make it a member of an Auto Scaling group. @default false */
  readonly autoScalingGroup?: boolean;
  /** @default - moto's default subnet */
  readonly subnetId?: string;
  /**
   * A managed node (issue 12): while it runs, DescribeInstanceInformation lists it (Online,
   * Linux, this agent version unless said otherwise), and SendCommand to it runs the document on
   * its own disk image as its live root. @default - not managed
   */
  readonly managed?: { readonly agentVersion?: string; readonly pingStatus?: 'Online' | 'ConnectionLost' | 'Inactive'; readonly platformType?: 'Linux' | 'Windows' | 'MacOS' };
  /** The instance's user data at launch (issue 12, Method=UserData). @default - none */
  readonly userData?: Buffer;
  /**
   * A Windows target (issue 15): launched from WINDOWS_AMI at /dev/sda1 (moto's platform windows),
   * its root volume backed by this NTFS disk image (copied sparse per instance; build it with
   * local/disk/ntfs.ts), and, unless `keyPair` is false, an RSA key pair made here and imported
   * into EC2 as EC2 keeps it (its private half returned to the test, as the user keeps the .pem).
   */
  readonly windows?: { readonly imagePath: string; readonly keyPair?: boolean };
}

export interface LockedOutInstance {
  readonly instanceId: string;
  readonly rootVolumeId: string;
  readonly rootDeviceName: string;
  readonly subnetId: string;
  readonly vpcId: string;
  readonly availabilityZone: string;
  /** The disk image backing the root volume, when it has one. */
  readonly imagePath?: string;
  /** Windows: the key pair's private key (PKCS#1 PEM, as `aws ec2 get-password-data --priv-launch-key` reads it). */
  readonly keyPairPrivateKeyPem?: string;
}

export interface RunOptions {
  /** Step faults for the runner. */
  readonly faults?: Fault[];
  /** Cancel the execution when this step starts. */
  readonly cancelAt?: string;
  /** Cancel the execution while this Lambda step's function runs (runner.ts, cancelInFlight). */
  readonly cancelInFlight?: { step: string; runsForSeconds: number };
  /** Faults on AWS calls, armed for this run and cleared after it. */
  readonly awsFaults?: AwsFault[];
  readonly executionId?: string;
  /** Runner progress lines. */
  readonly log?: (line: string) => void;
  /** Another Automation document than the deployed runbook (a variant under test). @default - the deployed runbook */
  readonly document?: Record<string, unknown>;
}

export interface ResetRun {
  readonly result: ExecutionResult;
  /** API calls made during the run, by `service:Action`. */
  readonly calls: Record<string, number>;
  /** Every call of the run in order, with its HTTP status. */
  readonly callLog: readonly CallRecord[];
  /** Faults armed for the run that never fired. */
  readonly unfiredFaults: readonly AwsFault[];
}

/** What the tests compare before and after a run. */
export interface InstanceSnapshot {
  readonly instanceId: string;
  readonly state: string;
  readonly rootDeviceName: string;
  readonly rootVolumeId?: string;
  readonly rootDeleteOnTermination?: boolean;
  /** Every block device: device → volume id. */
  readonly devices: Record<string, string>;
  readonly disableApiStop: boolean;
}

export interface Leftovers {
  readonly helpers: string[];
  readonly vpcs: string[];
  readonly subnets: string[];
  readonly internetGateways: string[];
  readonly routeTables: string[];
  readonly securityGroups: string[];
  readonly locks: string[];
  readonly addresses: string[];
}

export interface Twin {
  readonly agent: Agent;
  /** The Automation API the agent serves (StartAutomationExecution ... StopAutomationExecution). */
  readonly automation: AutomationService;
  readonly moto: MotoServer;
  readonly clock: VirtualClock;
  readonly app: SynthesizedApp;
  readonly documentName: string;
  readonly injectDocumentName: string;
  readonly keyArn: string;
  /** SDK clients straight to moto (not counted by the agent). */
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly kms: KMSClient;
  readonly disk: DiskApi;
  /** The synthesized Automation document with its intrinsics resolved (as deployed). */
  readonly automationDocument: Record<string, unknown>;
  /** Every deployed Automation document by name (ResetAccess and ResetAccess-Restore). */
  readonly automationDocuments: Readonly<Record<string, Record<string, unknown>>>;
  createLockedOutInstance(spec?: LockedOutSpec): Promise<LockedOutInstance>;
  runReset(parameters: Record<string, unknown>, options?: RunOptions): Promise<ResetRun>;
  /** Runs one step Lambda directly (e.g. restore a second time). */
  invokeStep(folder: string, payload: Record<string, unknown>, executionId: string): Promise<unknown>;
  snapshotInstance(instanceId: string): Promise<InstanceSnapshot>;
  /** What the runbook created and did not delete (for one target instance, or all). */
  leftovers(instanceId?: string): Promise<Leftovers>;
  /** The parameter's value, or undefined when it does not exist. */
  getParameter(name: string, decrypt?: boolean): Promise<string | undefined>;
  /** Every line the step Lambdas logged (their CloudWatch Logs). */
  lambdaLogs(): readonly string[];
  /** Writes a lock as a run that is still going would (for the lock-held refusal). */
  holdLock(instanceId: string, executionId: string): Promise<void>;
  stop(): Promise<void>;
}

function tagSpec(resourceType: 'instance' | 'volume', tags: Record<string, string>) {
  return { ResourceType: resourceType, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) } as const;
}

/** The Lambda folder a function resource was built from (its Code asset's entry, or its description). */
interface FunctionInfo {
  readonly logicalId: string;
  readonly physicalName: string;
  readonly arn: string;
  readonly assetDir: string;
  readonly handlerFile: string;
  readonly handlerExport: string;
  readonly environment: Record<string, string>;
  readonly timeoutSeconds: number;
  readonly folder?: string;
}

const TWIN_ENV = {
  AWS_REGION: REGION,
  AWS_DEFAULT_REGION: REGION,
  AWS_ACCESS_KEY_ID: 'twin',
  AWS_SECRET_ACCESS_KEY: 'twin',
  // Each bundle carries its own SDK, which warns once per copy that this machine's Node 20 will
  // soon be too old for it; the functions run on Node 22 in Lambda, where it never warns.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export async function startTwin(options: TwinOptions = {}): Promise<Twin> {
  const log = options.log ?? (() => undefined);
  const disk = loadDisk();
  const app = synthesizeApp({ log, runbookFile: options.runbookFile });
  const template: CfnTemplate = app.template;
  const workDir = mkdtempSync(join(tmpdir(), 'ec2-reset-access-twin-'));
  const clock = new VirtualClock();
  const cleanups: Array<() => Promise<void> | void> = [];
  let moto: MotoServer | undefined;
  let agent: Agent | undefined;
  try {
    moto = await startMoto({
      maxLifetimeSeconds: options.maxLifetimeSeconds ?? 900,
      ...(options.awsManagedPolicies ? { env: { MOTO_IAM_LOAD_MANAGED_POLICIES: 'true' } } : {}),
    });
    const motoEndpoint = moto.endpoint;
    agent = await startAgent({
      motoEndpoint,
      region: REGION,
      clock,
      runInjectScript: (run) => disk.runInjectScript(run),
      transitions: options.transitions,
      limits: options.awsLimits
        ? createEc2Limits({
            now: () => clock.now(),
            countVpcs: async () => {
              const direct = new EC2Client({ endpoint: motoEndpoint, region: REGION, credentials: { accessKeyId: 'twin', secretAccessKey: 'twin' } });
              try {
                return (await direct.send(new DescribeVpcsCommand({}))).Vpcs?.length ?? 0;
              } finally {
                direct.destroy();
              }
            },
          })
        : undefined,
      executions: (id) => {
        const status = executions.get(id);
        return status === undefined ? undefined : { status };
      },
    });
    const credentials = { accessKeyId: 'twin', secretAccessKey: 'twin' };
    const client = { endpoint: motoEndpoint, region: REGION, credentials };
    const ec2 = new EC2Client(client);
    const ssm = new SSMClient(client);
    const kms = new KMSClient(client);
    const iam = new IamQuery(motoEndpoint);
    const autoscaling = new AutoScalingClient(client);
    cleanups.push(() => [ec2, ssm, kms, autoscaling].forEach((c) => c.destroy()));

    const deployed = await deployTemplate(template, app.stackName, { ec2, ssm, kms, iam }, app.outdir);
    log(`emulator up: moto ${motoEndpoint}, agent ${agent.endpoint}; stack ${app.stackName} created in moto`);

    const baseEnv: Record<string, string> = { ...TWIN_ENV, AWS_ENDPOINT_URL: agent.endpoint };
    const copies: string[] = [];
    let copyCounter = 0;
    const warm = new Set<string>();
    /** executionId → logical id → loaded handler module */
    const loaded = new Map<string, Map<string, Record<string, unknown>>>();

    const functionFor = (value: unknown): FunctionInfo => {
      let key: string | undefined;
      if (typeof value === 'string') {
        key = value;
      } else if (value && typeof value === 'object') {
        const v = value as Record<string, unknown>;
        if (Array.isArray(v['Fn::GetAtt'])) key = String((v['Fn::GetAtt'] as unknown[])[0]);
        else if (typeof v.Ref === 'string') key = v.Ref;
      }
      const fn =
        key === undefined
          ? undefined
          : (deployed.functions.get(key) ??
            [...deployed.functions.values()].find((f) => f.arn === key || f.physicalName === key || f.folder === key));
      if (!fn) throw new TwinError(`no function in the template for FunctionName ${JSON.stringify(value)}`);
      return fn;
    };

    const loadHandler = (fn: FunctionInfo, executionId: string): Record<string, unknown> => {
      let perExecution = loaded.get(executionId);
      if (!perExecution) {
        perExecution = new Map();
        loaded.set(executionId, perExecution);
      }
      const known = perExecution.get(fn.logicalId);
      if (known) return known;
      // A fresh module instance per execution (a new Lambda container): a copy of the bundle
      // under a new name next to the original, so its source map and node_modules resolve.
      const copy = join(fn.assetDir, `twin-${process.pid}-${++copyCounter}-${basename(fn.handlerFile)}`);
      copyFileSync(fn.handlerFile, copy);
      copies.push(copy);
      Object.assign(process.env, baseEnv, fn.environment, { AWS_ACCESS_KEY_ID: `twin-${fn.logicalId}` });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(copy) as Record<string, unknown>;
      // The bundle carries its own SDK: once the execution ends (`loaded` forgets it), nothing
      // may keep the module alive, or a test running hundreds of executions holds hundreds of SDKs.
      delete require.cache[require.resolve(copy)];
      perExecution.set(fn.logicalId, mod);
      return mod;
    };

    const invoke = async (fn: FunctionInfo, payload: unknown, executionId: string): Promise<unknown> => {
      const mod = loadHandler(fn, executionId);
      const handler = mod[fn.handlerExport];
      if (typeof handler !== 'function') throw new TwinError(`${fn.logicalId}: the bundle exports no ${fn.handlerExport}`);
      Object.assign(process.env, baseEnv, fn.environment, {
        // Each function's own access key id, as each has its own execution role: the agent's
        // tapWire names the caller of every request (test/security/iam-replay.test.ts).
        AWS_ACCESS_KEY_ID: `twin-${fn.logicalId}`,
        AWS_LAMBDA_FUNCTION_NAME: fn.physicalName,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
      });
      const context = {
        functionName: fn.physicalName,
        functionVersion: '$LATEST',
        invokedFunctionArn: fn.arn,
        memoryLimitInMB: '256',
        awsRequestId: `twin-${executionId}-${copyCounter}`,
        logGroupName: `/aws/lambda/${fn.physicalName}`,
        logStreamName: 'twin',
        getRemainingTimeInMillis: () => fn.timeoutSeconds * 1000,
        callbackWaitsForEmptyEventLoop: true,
      };
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new TwinError(`Task timed out after ${fn.timeoutSeconds} seconds (${fn.logicalId}, wall clock)`)),
          fn.timeoutSeconds * 1000,
        );
        timer.unref();
      });
      try {
        return await Promise.race([(handler as (e: unknown, c: unknown) => Promise<unknown>)(payload, context), limit]);
      } finally {
        if (timer) clearTimeout(timer);
      }
    };

    // The Lambdas log with console.log (what the runtime ships to CloudWatch Logs): their
    // structured lines go to the twin's log store instead of this process's output.
    const lambdaLines: string[] = [];
    const originalConsoleLog = console.log;
    console.log = (...args: unknown[]) => {
      const first = args[0];
      if (args.length === 1 && typeof first === 'string' && first.startsWith('{"level":')) {
        lambdaLines.push(first);
        options.lambdaLog?.(first);
        return;
      }
      originalConsoleLog(...args);
    };
    cleanups.push(() => {
      console.log = originalConsoleLog;
    });

    const awsCall = sdkAwsCall(agent.endpoint, REGION);
    const images: string[] = [];
    const imageTemplates = new Map<string, string>();
    let imageCounter = 0;

    const makeImage = async (spec: ImageSpec): Promise<string> => {
      const key = JSON.stringify(spec);
      let base = imageTemplates.get(key);
      if (!base) {
        base = join(workDir, `template-${imageTemplates.size + 1}.img`);
        await disk.buildImage(base, spec);
        imageTemplates.set(key, base);
      }
      const path = join(workDir, `root-${++imageCounter}.img`);
      // Sparse copy: fast, and byte-identical to the template.
      execFileSync('cp', ['--sparse=always', base, path]);
      images.push(path);
      return path;
    };

    // The Automation API on the agent's endpoint (local/automation-service.ts): executions any
    // client starts run here, in the background, with the same Lambdas, AWS calls and clock.
    const automation = createAutomationService({
      clock,
      documents: deployed.automationDocuments,
      accountId: ACCOUNT_ID,
      region: REGION,
      instancesByTag: async (tagKey, values) => {
        const out = await ec2.send(
          new DescribeInstancesCommand({
            Filters: [
              { Name: `tag:${tagKey}`, Values: [...values] },
              { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
            ],
          }),
        );
        return (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId ?? '')).filter((id) => id !== '');
      },
      run: async (request) => {
        try {
          return await runAutomation({
            document: request.document,
            parameters: request.parameters,
            executionId: request.executionId,
            invokeLambda: (fn, payload) => invoke(functionFor(fn), payload, request.executionId),
            awsCall,
            clock,
            warmFunctions: warm,
            accountId: ACCOUNT_ID,
            region: REGION,
            documents: deployed.automationDocuments,
            liveSteps: request.liveSteps,
            stopRequest: request.stopRequest,
            onEnded: request.onEnded,
            onStarted: request.onStarted,
            sharedClock: request.sharedClock,
            // aws:executeAutomation (the RevokeKey fleet's fan-out) through this same API.
            executeAutomation: (r) => automation.executeAutomation(r),
          });
        } finally {
          await agent!.drainCommands();
          loaded.delete(request.executionId);
        }
      },
    });
    agent.addSsmHandlers(automation.handlers);

    const twin: Twin = {
      agent,
      automation,
      moto,
      clock,
      app,
      documentName: deployed.documentName,
      injectDocumentName: deployed.injectDocumentName,
      keyArn: deployed.keyArn,
      ec2,
      ssm,
      kms,
      disk,
      automationDocument: deployed.automationDocument,
      automationDocuments: deployed.automationDocuments,

      async createLockedOutInstance(spec: LockedOutSpec = {}): Promise<LockedOutInstance> {
        const rootDeviceName = spec.rootDeviceName ?? (spec.windows ? '/dev/sda1' : '/dev/xvda');
        let kmsKeyId: string | undefined;
        if (spec.kmsKey) {
          const key = await kms.send(new CreateKeyCommand({ Description: 'twin: a customer key of the target root volume' }));
          kmsKeyId = key.KeyMetadata?.Arn;
          if (spec.kmsKey === 'disabled') await kms.send(new DisableKeyCommand({ KeyId: key.KeyMetadata?.KeyId }));
        }
        const blockDeviceMappings = [
          {
            DeviceName: rootDeviceName,
            Ebs: {
              VolumeSize: 8,
              DeleteOnTermination: spec.deleteOnTermination ?? true,
              ...(kmsKeyId ? { Encrypted: true, KmsKeyId: kmsKeyId } : {}),
            },
          },
        ];
        const tags = { Name: 'locked-out', 'twin:purpose': 'target' };
        let keyName: string | undefined;
        let keyPairPrivateKeyPem: string | undefined;
        if (spec.windows && spec.windows.keyPair !== false) {
          const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
          keyPairPrivateKeyPem = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
          // The OpenSSH public line EC2's ImportKeyPair takes, as ssh-keygen derives it from the private key.
          const dir = mkdtempSync(join(workDir, 'keypair-'));
          writeFileSync(join(dir, 'k.pem'), keyPairPrivateKeyPem, { mode: 0o600 });
          const publicLine = execFileSync('ssh-keygen', ['-y', '-f', join(dir, 'k.pem')]).toString().trim();
          rmSync(dir, { recursive: true, force: true });
          keyName = `twin-windows-${++imageCounter}`;
          await ec2.send(new ImportKeyPairCommand({ KeyName: keyName, PublicKeyMaterial: Buffer.from(publicLine) }));
          agent!.windows.registerKeyPair(keyName, pair.publicKey.export({ type: 'spki', format: 'pem' }).toString());
        }
        let instanceId: string;
        if (spec.spot) {
          const req = await ec2.send(
            new RequestSpotInstancesCommand({
              InstanceCount: 1,
              Type: 'one-time',
              LaunchSpecification: {
                ImageId: spec.imageId ?? LINUX_AMI,
                InstanceType: (spec.instanceType ?? 't3.small') as _InstanceType,
                BlockDeviceMappings: blockDeviceMappings,
                Placement: { AvailabilityZone: AVAILABILITY_ZONE },
                ...(spec.subnetId ? { SubnetId: spec.subnetId } : {}),
              },
            }),
          );
          instanceId = req.SpotInstanceRequests?.[0]?.InstanceId ?? '';
          if (!instanceId) throw new TwinError('moto made no instance for the Spot request');
        } else {
          const run = await ec2.send(
            new RunInstancesCommand({
              ImageId: spec.imageId ?? (spec.windows ? WINDOWS_AMI : LINUX_AMI),
              InstanceType: (spec.instanceType ?? 't3.small') as _InstanceType,
              ...(keyName ? { KeyName: keyName } : {}),
              MinCount: 1,
              MaxCount: 1,
              BlockDeviceMappings: blockDeviceMappings,
              InstanceInitiatedShutdownBehavior: spec.shutdownBehavior ?? 'stop',
              DisableApiStop: spec.disableApiStop ?? false,
              ...(spec.userData ? { UserData: spec.userData.toString('base64') } : {}),
              Placement: { AvailabilityZone: AVAILABILITY_ZONE },
              ...(spec.subnetId ? { SubnetId: spec.subnetId } : {}),
              TagSpecifications: [tagSpec('instance', tags)],
            }),
          );
          instanceId = run.Instances?.[0]?.InstanceId ?? '';
          // A Windows instance launched with a key pair has its first boot's password data (review W1).
          if (spec.windows && keyName) agent!.windows.seedLaunchPassword(instanceId, keyName, run.Instances?.[0]?.LaunchTime ?? new Date());
        }
        if (spec.autoScalingGroup) {
          const name = `twin-asg-${instanceId}`;
          await autoscaling.send(
            new CreateLaunchConfigurationCommand({ LaunchConfigurationName: name, ImageId: LINUX_AMI, InstanceType: 't3.small' }),
          );
          await autoscaling.send(
            new CreateAutoScalingGroupCommand({
              AutoScalingGroupName: name,
              LaunchConfigurationName: name,
              MinSize: 0,
              MaxSize: 2,
              DesiredCapacity: 0,
              AvailabilityZones: [AVAILABILITY_ZONE],
            }),
          );
          await autoscaling.send(new AttachInstancesCommand({ AutoScalingGroupName: name, InstanceIds: [instanceId] }));
        }
        if (spec.state === 'stopped') await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
        const instance = await describeInstance(ec2, instanceId);
        const root = instance.BlockDeviceMappings?.find((b) => b.DeviceName === (instance.RootDeviceName ?? rootDeviceName));
        const rootVolumeId = root?.Ebs?.VolumeId ?? '';
        let imagePath: string | undefined;
        if (spec.windows && rootVolumeId) {
          imagePath = join(workDir, `root-${++imageCounter}.img`);
          execFileSync('cp', ['--sparse=always', spec.windows.imagePath, imagePath]);
          images.push(imagePath);
          agent!.registerVolume(rootVolumeId, imagePath);
        } else if (spec.image !== false && rootVolumeId) {
          imagePath = await makeImage(spec.image ?? LOST_KEY_IMAGE);
          agent!.registerVolume(rootVolumeId, imagePath);
        }
        if (spec.managed) agent!.registerManaged(instanceId, { ...spec.managed, rootVolumeId });
        return {
          instanceId,
          rootVolumeId,
          rootDeviceName: instance.RootDeviceName ?? rootDeviceName,
          subnetId: instance.SubnetId ?? '',
          vpcId: instance.VpcId ?? '',
          availabilityZone: instance.Placement?.AvailabilityZone ?? AVAILABILITY_ZONE,
          imagePath,
          keyPairPrivateKeyPem,
        };
      },

      async runReset(parameters: Record<string, unknown>, runOptions: RunOptions = {}): Promise<ResetRun> {
        const executionId = runOptions.executionId ?? randomExecutionId();
        const before = agent!.calls();
        const logStart = agent!.callLog().length;
        for (const f of runOptions.awsFaults ?? []) agent!.injectFault(f);
        try {
          const result = await runAutomation({
            document: runOptions.document ?? deployed.automationDocument,
            parameters,
            executionId,
            invokeLambda: (fn, payload) => invoke(functionFor(fn), payload, executionId),
            awsCall,
            clock,
            faults: runOptions.faults,
            cancelAt: runOptions.cancelAt,
            cancelInFlight: runOptions.cancelInFlight,
            log: runOptions.log,
            warmFunctions: warm,
            accountId: ACCOUNT_ID,
            region: REGION,
            // The cancel path starts the restore runbook (StartAutomationExecution): the runner
            // runs it after this execution, as Automation would, on the same clock.
            documents: deployed.automationDocuments,
            // An aws:executeAutomation step (RevokeKey's fan-out) through the Automation API.
            executeAutomation: (r) => automation.executeAutomation(r),
          });
          await agent!.drainCommands();
          const after = agent!.calls();
          const calls: Record<string, number> = {};
          for (const [k, v] of Object.entries(after)) {
            const d = v - (before[k] ?? 0);
            if (d > 0) calls[k] = d;
          }
          return { result, calls, callLog: agent!.callLog().slice(logStart), unfiredFaults: agent!.pendingFaults() };
        } finally {
          loaded.delete(executionId);
          if ((runOptions.awsFaults ?? []).length > 0) agent!.clearFaults();
        }
      },

      async invokeStep(folder, payload, executionId) {
        return invoke(functionFor(folder), payload, executionId);
      },

      async snapshotInstance(instanceId: string): Promise<InstanceSnapshot> {
        const i = await describeInstance(ec2, instanceId);
        const devices: Record<string, string> = {};
        for (const b of i.BlockDeviceMappings ?? []) if (b.DeviceName && b.Ebs?.VolumeId) devices[b.DeviceName] = b.Ebs.VolumeId;
        const root = i.BlockDeviceMappings?.find((b) => b.DeviceName === i.RootDeviceName);
        const stop = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'disableApiStop' }));
        return {
          instanceId,
          state: i.State?.Name ?? 'unknown',
          rootDeviceName: i.RootDeviceName ?? '',
          rootVolumeId: root?.Ebs?.VolumeId,
          rootDeleteOnTermination: root?.Ebs?.DeleteOnTermination,
          devices,
          disableApiStop: stop.DisableApiStop?.Value ?? false,
        };
      },

      async leftovers(instanceId?: string): Promise<Leftovers> {
        const scope = [MANAGED_TAG, ...(instanceId ? [{ Name: 'tag:reset-access:instance-id', Values: [instanceId] }] : [])];
        const helpers = await ec2.send(
          new DescribeInstancesCommand({
            Filters: [
              ...scope,
              { Name: 'tag:reset-access:role', Values: ['helper'] },
              { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] },
            ],
          }),
        );
        const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: scope }));
        const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: scope }));
        const igws = await ec2.send(new DescribeInternetGatewaysCommand({ Filters: scope }));
        const rtbs = await ec2.send(new DescribeRouteTablesCommand({ Filters: scope }));
        const sgs = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: scope }));
        const addresses = await ec2.send(new DescribeAddressesCommand({ Filters: scope }));
        const locks: string[] = [];
        let next: string | undefined;
        do {
          const page = await ssm.send(new GetParametersByPathCommand({ Path: LOCK_PREFIX, Recursive: true, NextToken: next }));
          for (const p of page.Parameters ?? []) if (p.Name && (!instanceId || p.Name === `${LOCK_PREFIX}${instanceId}`)) locks.push(p.Name);
          next = page.NextToken;
        } while (next);
        return {
          helpers: (helpers.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId ?? '')),
          vpcs: (vpcs.Vpcs ?? []).map((v) => v.VpcId ?? ''),
          subnets: (subnets.Subnets ?? []).map((s) => s.SubnetId ?? ''),
          internetGateways: (igws.InternetGateways ?? []).map((g) => g.InternetGatewayId ?? ''),
          routeTables: (rtbs.RouteTables ?? []).map((r) => r.RouteTableId ?? ''),
          securityGroups: (sgs.SecurityGroups ?? []).map((g) => g.GroupId ?? ''),
          locks,
          addresses: (addresses.Addresses ?? []).map((a) => a.AllocationId ?? ''),
        };
      },

      async getParameter(name: string, decrypt = false): Promise<string | undefined> {
        try {
          const out = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: decrypt }));
          return out.Parameter?.Value;
        } catch (err) {
          if (err instanceof ParameterNotFound || (err as Error).name === 'ParameterNotFound') return undefined;
          throw err;
        }
      },

      lambdaLogs: () => [...lambdaLines],

      async holdLock(instanceId: string, executionId: string): Promise<void> {
        executions.set(executionId, 'InProgress');
        const i = await describeInstance(ec2, instanceId);
        const root = i.BlockDeviceMappings?.find((b) => b.DeviceName === i.RootDeviceName);
        // The plan a run that has just passed preflight would hold (lambdas/common/plan.ts).
        const plan = {
          version: 1,
          executionId,
          instanceId,
          createdAt: new Date().toISOString(),
          inputs: {
            method: 'Auto',
            subnetId: 'CreateNewVPC',
            helperInstanceType: 't3.small',
            keyType: 'rsa',
            publicKey: '',
            users: [],
            backupMethod: 'Snapshot',
            allowEncryptedVolume: true,
            allowEphemeralDataLoss: false,
          },
          method: { chosen: 'VolumeSwap', reason: 'Auto: not managed by Systems Manager' },
          instance: {
            originalState: i.State?.Name === 'stopped' ? 'stopped' : 'running',
            rootVolumeId: root?.Ebs?.VolumeId ?? '',
            rootDeviceName: i.RootDeviceName ?? '',
            deleteOnTermination: root?.Ebs?.DeleteOnTermination ?? true,
            availabilityZone: i.Placement?.AvailabilityZone ?? AVAILABILITY_ZONE,
            architecture: i.Architecture ?? 'x86_64',
            subnetId: i.SubnetId ?? '',
            vpcId: i.VpcId ?? '',
            publicIpAddress: i.PublicIpAddress ?? '',
            elasticIp: false,
          },
          created: {},
          progress: { keyInjected: false, phase: 'preflight' },
        };
        await ssm.send(
          new PutParameterCommand({ Name: `${LOCK_PREFIX}${instanceId}`, Type: 'String', Overwrite: false, Value: JSON.stringify(plan) }),
        );
      },

      async stop(): Promise<void> {
        await automation.drain();
        const problems: string[] = [];
        try {
          await agent?.stop();
        } catch (err) {
          problems.push(`agent: ${(err as Error).message}`);
        }
        await moto?.stop();
        for (const c of cleanups) await c();
        for (const copy of copies) if (existsSync(copy)) unlinkSync(copy);
        // Nothing may still use an image: no loop device, no mount.
        for (const img of [...images, ...imageTemplates.values()]) {
          const loops = execFileSync('losetup', ['-j', img], { encoding: 'utf8' }).trim();
          if (loops) problems.push(`loop device left on ${img}: ${loops}`);
        }
        const mounts = execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' });
        if (mounts.includes(workDir)) problems.push(`a mount under ${workDir} is left`);
        if (moto && processAlive(moto.pid)) problems.push(`moto_server (pid ${moto.pid}) still runs`);
        if (problems.length === 0) rmSync(workDir, { recursive: true, force: true });
        if (problems.length > 0) throw new TwinError(`the twin left something behind: ${problems.join('; ')}`);
      },
    };
    return twin;
  } catch (err) {
    await agent?.stop().catch(() => undefined);
    await moto?.stop().catch(() => undefined);
    for (const c of cleanups) await c();
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * IAM's query protocol, straight to moto (the project has no IAM client package, and the twin
 * only needs the helper's role and instance profile).
 */
class IamQuery {
  constructor(private readonly endpoint: string) {}

  async call(action: string, params: Record<string, string>): Promise<string> {
    const body = new URLSearchParams({ Action: action, Version: '2010-05-08', ...params }).toString();
    const res = await fetch(`${this.endpoint}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        authorization: `AWS4-HMAC-SHA256 Credential=twin/20260101/${REGION}/iam/aws4_request, SignedHeaders=host, Signature=twin`,
      },
      body,
    });
    const text = await res.text();
    if (!res.ok) throw new TwinError(`iam ${action} answered ${res.status}: ${xmlField(text, 'Message') || text.slice(0, 200)}`);
    return text;
  }
}

function xmlField(xml: string, field: string): string {
  return new RegExp(`<${field}>([^<]*)</${field}>`).exec(xml)?.[1] ?? '';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function randomExecutionId(): string {
  // Automation execution ids are UUIDs.
  return globalThis.crypto.randomUUID();
}

async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const i = out.Reservations?.[0]?.Instances?.[0];
  if (!i) throw new TwinError(`instance ${instanceId} not found in moto`);
  return i;
}

interface Deployed {
  readonly functions: Map<string, FunctionInfo>;
  readonly automationDocument: Record<string, unknown>;
  readonly automationDocuments: Record<string, Record<string, unknown>>;
  readonly documentName: string;
  readonly injectDocumentName: string;
  readonly keyArn: string;
}

/**
 * "Deploys" the template into moto: the resources the Lambdas reference are created for real
 * (KMS key and alias, the helper's role and instance profile, both SSM documents); every other
 * resource gets a physical name and ARN so that every intrinsic resolves.
 */
async function deployTemplate(
  template: CfnTemplate,
  stackName: string,
  clients: { ec2: EC2Client; ssm: SSMClient; kms: KMSClient; iam: IamQuery },
  outdir: string,
): Promise<Deployed> {
  const resources = new Map<string, PhysicalResource>();
  const ctx: ResolveContext = { region: REGION, accountId: ACCOUNT_ID, stackName, resources };
  const arnPrefix = `arn:aws:%s:${REGION}:${ACCOUNT_ID}`;
  const entries = Object.entries(template.Resources);
  const ofType = (t: string) => entries.filter(([, r]) => r.Type === t);
  const shortName = (logicalId: string) => `${stackName}-${logicalId}`.slice(0, 64);

  // Names and ARNs of what needs no real creation.
  for (const [id, r] of entries) {
    const name = shortName(id);
    switch (r.Type) {
      case 'AWS::Lambda::Function':
        resources.set(id, { ref: name, attributes: { Arn: `${arnPrefix.replace('%s', 'lambda')}:function:${name}` } });
        break;
      case 'AWS::IAM::Role':
        resources.set(id, { ref: name, attributes: { Arn: `arn:aws:iam::${ACCOUNT_ID}:role/${name}`, RoleId: `AROA${id.slice(0, 12).toUpperCase()}` } });
        break;
      case 'AWS::Logs::LogGroup':
        resources.set(id, { ref: name, attributes: { Arn: `${arnPrefix.replace('%s', 'logs')}:log-group:${name}:*` } });
        break;
      default:
        resources.set(id, { ref: name, attributes: { Arn: `${arnPrefix.replace('%s', 'twin')}:${id}` } });
    }
  }

  // The KMS key of the SecureString parameters.
  let keyArn = '';
  for (const [id] of ofType('AWS::KMS::Key')) {
    const key = await clients.kms.send(new CreateKeyCommand({ Description: `${stackName} ${id}` }));
    keyArn = key.KeyMetadata?.Arn ?? '';
    resources.set(id, { ref: key.KeyMetadata?.KeyId ?? '', attributes: { Arn: keyArn, KeyId: key.KeyMetadata?.KeyId ?? '' } });
  }
  for (const [id, r] of ofType('AWS::KMS::Alias')) {
    const props = resolveIntrinsics(r.Properties ?? {}, ctx) as { AliasName?: string; TargetKeyId?: string };
    if (props.AliasName && props.TargetKeyId) {
      await clients.kms.send(new CreateAliasCommand({ AliasName: props.AliasName, TargetKeyId: props.TargetKeyId }));
      resources.set(id, { ref: props.AliasName, attributes: {} });
    }
  }

  // The helper's role and instance profile (the role named by an instance profile).
  const profileRoles = new Set<string>();
  for (const [, r] of ofType('AWS::IAM::InstanceProfile')) {
    for (const role of ((r.Properties?.Roles ?? []) as unknown[])) {
      if (role && typeof role === 'object' && 'Ref' in role) profileRoles.add(String((role as { Ref: unknown }).Ref));
    }
  }
  for (const id of profileRoles) {
    const r = template.Resources[id] as CfnResource;
    const name = shortName(id);
    const trust = resolveIntrinsics(r.Properties?.AssumeRolePolicyDocument ?? {}, ctx);
    const role = await clients.iam.call('CreateRole', { RoleName: name, AssumeRolePolicyDocument: JSON.stringify(trust) });
    resources.set(id, { ref: name, attributes: { Arn: xmlField(role, 'Arn'), RoleId: xmlField(role, 'RoleId') } });
  }
  for (const [id, r] of ofType('AWS::IAM::InstanceProfile')) {
    const name = shortName(id);
    const profile = await clients.iam.call('CreateInstanceProfile', { InstanceProfileName: name });
    for (const role of resolveIntrinsics(r.Properties?.Roles ?? [], ctx) as string[]) {
      await clients.iam.call('AddRoleToInstanceProfile', { InstanceProfileName: name, RoleName: role });
    }
    resources.set(id, { ref: name, attributes: { Arn: xmlField(profile, 'Arn') } });
  }

  // The SSM documents: the Command document first (the runbook names it).
  const documents = ofType('AWS::SSM::Document').sort(([, a], [, b]) =>
    (a.Properties?.DocumentType === 'Command' ? 0 : 1) - (b.Properties?.DocumentType === 'Command' ? 0 : 1),
  );
  let automationDocument: Record<string, unknown> | undefined;
  const automationDocuments: Record<string, Record<string, unknown>> = {};
  // The runbook is the document the stack's DocumentName output names; the others (the restore
  // runbook) are started by it.
  const mainDocumentId = ((template.Outputs?.DocumentName as { Value?: { Ref?: string } } | undefined)?.Value?.Ref) ?? undefined;
  let documentName = '';
  let injectDocumentName = '';
  const injectDocumentId = ((template.Outputs?.InjectKeyDocumentName as { Value?: { Ref?: string } } | undefined)?.Value?.Ref) ?? undefined;
  for (const [id, r] of documents) {
    const props = r.Properties ?? {};
    const type = String(props.DocumentType ?? 'Command');
    const name = String(resolveIntrinsics(props.Name ?? shortName(id), ctx));
    const content = resolveIntrinsics(props.Content, ctx);
    const text = typeof content === 'string' ? content : JSON.stringify(content);
    const format = typeof content === 'string' ? String(props.DocumentFormat ?? 'JSON') : 'JSON';
    await clients.ssm.send(
      new CreateDocumentCommand({ Name: name, DocumentType: type as DocumentType, DocumentFormat: format as 'JSON' | 'YAML', Content: text }),
    );
    resources.set(id, { ref: name, attributes: {} });
    if (type === 'Automation') {
      const parsed = (typeof content === 'string' ? JSON.parse(content) : content) as Record<string, unknown>;
      automationDocuments[name] = parsed;
      if (mainDocumentId === undefined ? !automationDocument : id === mainDocumentId) {
        automationDocument = parsed;
        documentName = name;
      }
    } else if (injectDocumentId === undefined ? injectDocumentName === '' : id === injectDocumentId) {
      // The inject-key document (the stack's InjectKeyDocumentName output); the other Command
      // documents (RevokeKey's) are deployed alike.
      injectDocumentName = name;
    }
  }
  if (!automationDocument) throw new TwinError('the template has no Automation document');

  // The step functions: asset folder, handler, environment.
  const functions = new Map<string, FunctionInfo>();
  for (const [id, r] of ofType('AWS::Lambda::Function')) {
    // The asset folder: the metadata the CLI asks for, else the folder named by the S3 key's hash.
    let assetPath = r.Metadata?.['aws:asset:path'];
    if (typeof assetPath !== 'string') {
      const key = (r.Properties?.Code as { S3Key?: unknown } | undefined)?.S3Key;
      if (typeof key === 'string') assetPath = `asset.${key.replace(/\.zip$/, '')}`;
    }
    if (typeof assetPath !== 'string') throw new TwinError(`${id} has neither aws:asset:path metadata nor an S3Key`);
    const assetDir = join(outdir, assetPath);
    const handler = String(r.Properties?.Handler ?? 'index.handler');
    const dot = handler.lastIndexOf('.');
    const handlerFile = join(assetDir, `${handler.slice(0, dot)}.js`);
    if (!existsSync(handlerFile)) throw new TwinError(`${id}: ${handlerFile} is missing from the synthesized assets`);
    const env = resolveIntrinsics(
      ((r.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {}),
      ctx,
    ) as Record<string, unknown>;
    const physical = resources.get(id) as PhysicalResource;
    functions.set(id, {
      logicalId: id,
      physicalName: physical.ref,
      arn: physical.attributes.Arn as string,
      assetDir,
      handlerFile,
      handlerExport: handler.slice(dot + 1),
      environment: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])),
      timeoutSeconds: Number(r.Properties?.Timeout ?? 3),
      folder: folderOf(r, id),
    });
  }
  return { functions, automationDocument, automationDocuments, documentName, injectDocumentName, keyArn };
}

/** The Lambda folder a function was built from, read from its description or its id. */
function folderOf(r: CfnResource, logicalId: string): string | undefined {
  const described = /^ResetAccess ([a-z-]+):/.exec(String(r.Properties?.Description ?? ''))?.[1];
  if (described) return described;
  const folders = STEP_FOLDERS;
  const squash = (s: string) => s.replace(/[^a-z0-9]/gi, '').toLowerCase();
  const id = squash(logicalId);
  // The longest folder name whose letters start the construct id after its scope prefix.
  const hits = folders.filter((f) => id.includes(squash(f))).sort((a, b) => b.length - a.length);
  return hits[0];
}

export { PROJECT_ROOT };
