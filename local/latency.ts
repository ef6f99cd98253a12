/**
 * The latency table of the local twin: how long each slow AWS operation is *modeled* to take.
 *
 * These are modeled figures, not measurements. Each carries where the number comes from: a
 * public AWS page and the sentence it rests on, or `kind: 'estimate'` with the reasoning. The
 * twin's virtual clock (local/runner/clock.ts) schedules completions with these figures, so a
 * run reports a modeled time to access, and the same table models the reference
 * (AWSSupport-ResetAccess) for comparison. Change a figure here and both sides move together.
 */

export type LatencyOp =
  | 'StopInstances'
  | 'StartInstances'
  | 'TerminateInstances'
  | 'RunInstancesUntilOnline'
  | 'AttachVolume'
  | 'DetachVolume'
  | 'CreateSnapshot'
  | 'CreateImage'
  | 'RunCommand'
  | 'LambdaColdInvoke'
  | 'LambdaWarmInvoke'
  | 'CloudFormationCreateStack'
  | 'CloudFormationDeleteStack'
  | 'ConfigureAWSPackageEC2Rescue'
  | 'ApiCall'
  | 'AutomationStepTransition'
  | 'WaitPollInterval';

export interface PublishedSource {
  readonly kind: 'published';
  /** The AWS documentation page or statement. */
  readonly url: string;
  /** The sentence the figure rests on (paraphrased closely where noted). */
  readonly statement: string;
  /** How the number was read from the statement. */
  readonly reading: string;
}

export interface EstimateSource {
  readonly kind: 'estimate';
  /** Why there is no public figure, and why this number. */
  readonly why: string;
  /** A related public page, when one bounds or frames the estimate. */
  readonly related?: string;
}

export interface LatencyEntry {
  readonly op: LatencyOp;
  /** What is timed, from the call to the state the runbook waits for. */
  readonly what: string;
  readonly seconds: number;
  readonly source: PublishedSource | EstimateSource;
}

export const LATENCY_TABLE: readonly LatencyEntry[] = [
  {
    op: 'StopInstances',
    what: 'StopInstances until the instance is stopped (graceful OS shutdown of a Linux instance)',
    seconds: 60,
    source: {
      kind: 'estimate',
      why:
        'AWS publishes no duration for a stop. The API reference says the stop includes a graceful OS ' +
        'shutdown by default and that an instance "stuck in the stopping state" may need Force; a ' +
        'systemd shutdown of a small Linux instance plus the hypervisor stop is commonly about a minute.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StopInstances.html',
    },
  },
  {
    op: 'StartInstances',
    what: 'StartInstances until the instance state is running (not until sshd answers)',
    seconds: 30,
    source: {
      kind: 'estimate',
      why:
        'AWS publishes no duration for pending → running. Placement and hypervisor start before the ' +
        'state flips to running typically take tens of seconds; 30 s is a middle figure.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html',
    },
  },
  {
    op: 'TerminateInstances',
    what: 'TerminateInstances until terminated (cleanup, off the critical path)',
    seconds: 60,
    source: {
      kind: 'estimate',
      why: 'No published figure; shutting-down → terminated takes about as long as a stop.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html',
    },
  },
  {
    op: 'RunInstancesUntilOnline',
    what: 'RunInstances of the Amazon Linux 2023 helper until it is Online in Systems Manager',
    seconds: 90,
    source: {
      kind: 'estimate',
      why:
        'No published figure. Boot to multi-user on AL2023 plus SSM Agent registration and its first ' +
        'ping; reports range from under a minute to several minutes. 90 s is the figure used for both ' +
        'our runbook and the reference (which waits up to 600 s for the same thing).',
      related: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/ssm-agent.html',
    },
  },
  {
    op: 'AttachVolume',
    what: 'AttachVolume until the volume state is in-use',
    seconds: 5,
    source: {
      kind: 'estimate',
      why:
        'No published figure. The attachment goes attaching → attached within seconds in practice; ' +
        'a third-party tool (crewjam/withebs) reports about 6 s for a whole attach/run/detach cycle.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AttachVolume.html',
    },
  },
  {
    op: 'DetachVolume',
    what: 'DetachVolume until the volume state is available',
    seconds: 10,
    source: {
      kind: 'estimate',
      why:
        'No published figure. Detaching from a stopped instance is quick; from a running helper the ' +
        'guest must release the device first, so it is modeled slower than an attach.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DetachVolume.html',
    },
  },
  {
    op: 'CreateSnapshot',
    what: 'the CreateSnapshot call (the runbook does not wait for completion)',
    seconds: 1,
    source: {
      kind: 'published',
      url: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSnapshot.html',
      statement:
        'Snapshots occur asynchronously; the point-in-time snapshot is created immediately, but the ' +
        'status of the snapshot is pending until the snapshot is complete (when all of the modified ' +
        'blocks have been transferred to Amazon S3), which can take several hours for large initial snapshots',
      reading: 'the call returns at once; 1 s is the modeled round trip, and no wait follows it',
    },
  },
  {
    op: 'CreateImage',
    what: 'the CreateImage call on a stopped instance (neither runbook waits for the AMI)',
    seconds: 1,
    source: {
      kind: 'estimate',
      why:
        'The call returns an image id while the image is pending; on a stopped instance there is no ' +
        'reboot. No published duration for the call itself; modeled like CreateSnapshot.',
      related: 'https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html',
    },
  },
  {
    op: 'RunCommand',
    what: 'a Run Command on the helper, SendCommand until the invocation is Success (short script)',
    seconds: 10,
    source: {
      kind: 'estimate',
      why:
        'No published figure. Delivery to an Online agent is near-immediate over its control channel; ' +
        'the inject script mounts, edits and unmounts in seconds. 10 s covers delivery, run and the ' +
        'status report.',
      related: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/run-command.html',
    },
  },
  {
    op: 'LambdaColdInvoke',
    what: 'a Lambda invocation that needs a new execution environment (Node.js, bundled SDK)',
    seconds: 1,
    source: {
      kind: 'published',
      url: 'https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#cold-start-latency',
      statement:
        'According to an analysis of production Lambda workloads, cold starts typically occur in under ' +
        '1% of invocations. The duration of a cold start varies from under 100 ms to over 1 second.',
      reading: 'the upper end, 1 s, covers init plus the handler and its few API calls',
    },
  },
  {
    op: 'LambdaWarmInvoke',
    what: 'a Lambda invocation on a warm execution environment, handler and its API calls included',
    seconds: 0.3,
    source: {
      kind: 'estimate',
      why:
        'No init; the invoke round trip is tens of milliseconds, and a step handler makes a handful ' +
        'of API calls of about 50 ms each.',
      related: 'https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html',
    },
  },
  {
    op: 'CloudFormationCreateStack',
    what:
      "the reference's aws:createStack of the EC2Rescue workflow stack (IAM role, instance profile, " +
      'launch template, VPC, subnet, IGW, route), until CREATE_COMPLETE, helper launch excluded',
    seconds: 180,
    source: {
      kind: 'estimate',
      why:
        'No published figure. CloudFormation creates these resources in dependency order; the IAM ' +
        'instance profile alone commonly takes about two minutes to become usable, and the network ' +
        'resources add tens of seconds.',
      related: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-iam-instanceprofile.html',
    },
  },
  {
    op: 'CloudFormationDeleteStack',
    what: "the reference's stack deletion until DELETE_COMPLETE (terminate helper, delete network and IAM)",
    seconds: 120,
    source: {
      kind: 'estimate',
      why:
        'No published figure. Dominated by terminating the helper (about a minute) and deleting the ' +
        'network and IAM resources that depend on it.',
      related: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-console-delete-stack.html',
    },
  },
  {
    op: 'ConfigureAWSPackageEC2Rescue',
    what: "the reference's AWS-ConfigureAWSPackage Run Command that installs EC2Rescue on the helper",
    seconds: 30,
    source: {
      kind: 'estimate',
      why:
        'No published figure. A Run Command (about 10 s, see RunCommand) plus downloading and ' +
        'unpacking the EC2Rescue for Linux package (tens of MB) from the distributor.',
      related: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/distributor-working-with-packages-deploy.html',
    },
  },
  {
    op: 'ApiCall',
    what: 'one AWS API call (an SSM or EC2 request and its response), as made by a step or a poll',
    seconds: 0.1,
    source: {
      kind: 'estimate',
      why: 'No published figure; a regional API round trip is tens of milliseconds, rounded up.',
    },
  },
  {
    op: 'AutomationStepTransition',
    what: 'the Automation engine moving from one step to the next (scheduling, status record)',
    seconds: 1,
    source: {
      kind: 'estimate',
      why:
        'No published figure; execution histories show steps starting about a second after the ' +
        'previous one ended. Charged to every step of both runbooks alike.',
      related: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html',
    },
  },
  {
    op: 'WaitPollInterval',
    what: 'the interval between two polls of aws:waitForAwsResourceProperty',
    seconds: 5,
    source: {
      kind: 'estimate',
      why:
        'The action documentation gives the default timeout (3600 s) but no poll interval; a few ' +
        'seconds bounds how late a wait can notice a change.',
      related: 'https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-waitForAwsResourceProperty.html',
    },
  },
];

const BY_OP: ReadonlyMap<LatencyOp, LatencyEntry> = new Map(LATENCY_TABLE.map((e) => [e.op, e]));

export class UnknownLatencyOp extends Error {
  constructor(op: string) {
    super(`No latency figure for "${op}"; known operations: ${LATENCY_TABLE.map((e) => e.op).join(', ')}`);
    this.name = 'UnknownLatencyOp';
  }
}

export function isLatencyOp(op: string): op is LatencyOp {
  return BY_OP.has(op as LatencyOp);
}

/** The entry for one operation; throws UnknownLatencyOp for a name not in the table. */
export function latencyEntry(op: LatencyOp | string): LatencyEntry {
  const entry = BY_OP.get(op as LatencyOp);
  if (!entry) throw new UnknownLatencyOp(op);
  return entry;
}

/** Modeled seconds for one operation. */
export function latencyOf(op: LatencyOp | string): number {
  return latencyEntry(op).seconds;
}
