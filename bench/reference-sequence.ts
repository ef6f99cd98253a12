/**
 * The reference: AWSSupport-ResetAccess (Linux path) and its child AWSSupport-StartEC2RescueWorkflow,
 * as the step sequence of ../shared/reference/resetaccess-sequence.md, written as data and
 * modeled under the twin's latency table (local/latency.ts), the same table that times our
 * runbook in the twin. Every step runs strictly after the one before it: the reference's
 * documents have no overlap, so its modeled time is a plain sum.
 *
 * How an Automation action is charged (the same figures the twin's runner charges ours):
 * - every Automation step: one AutomationStepTransition;
 * - aws:executeAwsApi / aws:assertAwsResourceProperty / aws:executeAutomation: one ApiCall;
 * - aws:executeScript (Python in the Automation service's sandbox): one LambdaWarmInvoke, the
 *   cheaper of the two invoke figures, so the reference is never charged more than we are;
 * - a wait for slow work (stop, start, attach, detach, a Run Command, a stack): that work's
 *   figure from the table, once, from the call that started it;
 * - aws:sleep: its literal duration (not a latency figure: the document fixes it);
 * - aws:branch: the transition only.
 * Optional work the reference skips by default (the post-script AMI) is not charged.
 */
import { latencyOf, type LatencyOp } from '../local/latency';

export interface Charge {
  /** A latency table entry. */
  readonly op: LatencyOp;
  /** How many times it is paid in this step (default 1). */
  readonly times?: number;
}

export interface ReferenceStep {
  /** The item number in resetaccess-sequence.md. */
  readonly item: number;
  /** Short name, for tables. */
  readonly name: string;
  readonly document: 'AWSSupport-ResetAccess' | 'AWSSupport-StartEC2RescueWorkflow';
  /** What the step does, in the reference's own terms. */
  readonly what: string;
  /** The latency table entries it pays, strictly in sequence. */
  readonly charges: readonly Charge[];
  /** A fixed duration the document itself sets (aws:sleep), with the reason. */
  readonly fixed?: { readonly seconds: number; readonly why: string };
  /** Access is back when this step completes (the key already stands in the parameter). */
  readonly access?: true;
}

// Helpers that say which Automation action a charge comes from.
const transition = (steps = 1): Charge => ({ op: 'AutomationStepTransition', times: steps });
const apiCalls = (n = 1): Charge => ({ op: 'ApiCall', times: n });
const scripts = (n = 1): Charge => ({ op: 'LambdaWarmInvoke', times: n });

const PARENT = 'AWSSupport-ResetAccess' as const;
const CHILD = 'AWSSupport-StartEC2RescueWorkflow' as const;

export const REFERENCE_SEQUENCE: readonly ReferenceStep[] = [
  {
    item: 1, name: 'checkPlatformAndStartWorkflow', document: PARENT,
    what: 'check whether the platform is Windows (DescribeInstances); start the child automation',
    charges: [transition(2), apiCalls(2)],
  },
  {
    item: 2, name: 'waitForRunningOrStopped', document: CHILD,
    what: 'wait for the instance to be running or stopped (already running: one poll)',
    charges: [transition(), apiCalls()],
  },
  {
    item: 3, name: 'preflightChecks', document: CHILD,
    what:
      'describe the instance and its root volume; assert EBS root, unencrypted, shutdown behaviour ' +
      'stop, no product codes (6 API steps); branch out for Spot; Auto Scaling and concurrency ' +
      'checks (2 scripts); check the subnet AZ (1 API step)',
    charges: [transition(10), apiCalls(7), scripts(2)],
  },
  {
    item: 4, name: 'createStack', document: CHILD,
    what:
      'aws:createStack: IAM role and instance profile, launch template, helper instance, VPC, subnet, ' +
      'internet gateway, route; waits for CREATE_COMPLETE',
    charges: [transition(), { op: 'CloudFormationCreateStack' }],
  },
  {
    item: 5, name: 'waitForHelperOnline', document: CHILD,
    what: 'the helper boots and registers with Systems Manager; wait until Online',
    charges: [transition(), { op: 'RunInstancesUntilOnline' }],
  },
  {
    item: 6, name: 'disableDeleteOnTermination', document: CHILD,
    what: 'ModifyInstanceAttribute: DeleteOnTermination=false on the root volume',
    charges: [transition(), apiCalls()],
  },
  {
    item: 7, name: 'stopInstanceAndWait', document: CHILD,
    what: 'stop the target (force-stop as fallback, not taken) and wait for stopped',
    charges: [transition(), apiCalls(), { op: 'StopInstances' }],
  },
  {
    item: 8, name: 'createBackupImage', document: CHILD,
    what: 'CreateImage of the stopped target (not waited for)',
    charges: [transition(), { op: 'CreateImage' }],
  },
  {
    item: 9, name: 'installEC2Rescue', document: CHILD,
    what: 'AWS-ConfigureAWSPackage (Run Command) installs EC2Rescue for Linux on the helper; wait',
    charges: [transition(), { op: 'ConfigureAWSPackageEC2Rescue' }],
  },
  {
    item: 10, name: 'detachRootAndWait', document: CHILD,
    what: 'DetachVolume of the target root; wait for available',
    charges: [transition(2), apiCalls(), { op: 'DetachVolume' }],
  },
  {
    item: 11, name: 'attachToHelperWaitAndSleep', document: CHILD,
    what: 'AttachVolume to the helper as /dev/sdf; wait for in-use; aws:sleep 30 s',
    charges: [transition(3), apiCalls(), { op: 'AttachVolume' }],
    fixed: { seconds: 30, why: 'the document sleeps a fixed 30 s after the attach (aws:sleep PT30S)' },
  },
  {
    item: 12, name: 'runEC2RescueInjectKey', document: CHILD,
    what: 'Run Command: mount, chroot, ec2rl --inject-key-only (RSA 4096, SecureString); wait',
    charges: [transition(), { op: 'RunCommand' }],
  },
  {
    item: 13, name: 'stopHelperAndWait', document: CHILD,
    what: 'stop the helper (force-stop as fallback, not taken) and wait for stopped',
    charges: [transition(), apiCalls(), { op: 'StopInstances' }],
  },
  {
    item: 14, name: 'detachFromHelperAndWait', document: CHILD,
    what: 'DetachVolume from the helper; wait for available',
    charges: [transition(2), apiCalls(), { op: 'DetachVolume' }],
  },
  {
    item: 15, name: 'reattachRootAndWait', document: CHILD,
    what: 'AttachVolume back at the original device name; wait for in-use',
    charges: [transition(2), apiCalls(), { op: 'AttachVolume' }],
  },
  {
    item: 16, name: 'restoreDeleteOnTermination', document: CHILD,
    what: 'optional post-script AMI (off by default, not charged); restore DeleteOnTermination',
    charges: [transition(), apiCalls()],
  },
  {
    item: 17, name: 'startInstanceAndWait', document: CHILD,
    what: 'restore the original state: start the target and wait for running',
    charges: [transition(2), apiCalls(), { op: 'StartInstances' }],
    access: true,
  },
  {
    item: 18, name: 'deleteStack', document: CHILD,
    what: 'delete the CloudFormation stack and wait for DELETE_COMPLETE',
    charges: [transition(), { op: 'CloudFormationDeleteStack' }],
  },
  {
    item: 19, name: 'readWorkflowOutputs', document: PARENT,
    what: "read the child's outputs: the backup AMI id and the key parameter name",
    charges: [transition(), apiCalls()],
  },
];

export interface ModeledStep {
  readonly item: number;
  readonly name: string;
  readonly startSeconds: number;
  readonly endSeconds: number;
  readonly seconds: number;
  /** e.g. `AutomationStepTransition×2 + ApiCall + StopInstances`. */
  readonly charged: string;
}

export interface ReferenceModel {
  readonly steps: readonly ModeledStep[];
  /** End of the step marked `access`. */
  readonly timeToAccessSeconds: number;
  /** End of the last step (the whole execution). */
  readonly totalSeconds: number;
}

/** Seconds a step costs under a latency function (the real table by default). */
export function stepSeconds(step: ReferenceStep, latency: (op: LatencyOp) => number = latencyOf): number {
  const charged = step.charges.reduce((sum, c) => sum + latency(c.op) * (c.times ?? 1), 0);
  return charged + (step.fixed?.seconds ?? 0);
}

function describeCharges(step: ReferenceStep): string {
  const parts = step.charges.map((c) => ((c.times ?? 1) === 1 ? c.op : `${c.op}×${c.times}`));
  if (step.fixed) parts.push(`sleep ${step.fixed.seconds} s`);
  return parts.join(' + ');
}

/** The reference's timeline: strictly sequential, each step starting when the previous one ends. */
export function modelReference(
  sequence: readonly ReferenceStep[] = REFERENCE_SEQUENCE,
  latency: (op: LatencyOp) => number = latencyOf,
): ReferenceModel {
  const accessSteps = sequence.filter((s) => s.access);
  if (accessSteps.length !== 1) {
    throw new Error(`the reference sequence must mark exactly one access step, found ${accessSteps.length}`);
  }
  let t = 0;
  const steps: ModeledStep[] = [];
  for (const step of sequence) {
    const seconds = stepSeconds(step, latency);
    steps.push({ item: step.item, name: step.name, startSeconds: t, endSeconds: t + seconds, seconds, charged: describeCharges(step) });
    t += seconds;
  }
  const access = steps.find((s) => s.item === accessSteps[0].item) as ModeledStep;
  return { steps, timeToAccessSeconds: access.endSeconds, totalSeconds: t };
}
