/**
 * The reference: AWSSupport-ResetAccess (Linux path) and its child AWSSupport-StartEC2RescueWorkflow,
 * as the step sequence of ../shared/reference/resetaccess-sequence.md, written as data and
 * modeled under the twin's latency table (local/latency.ts), the same table that times our
 * runbook in the twin, at either end of its ranges. Every step runs strictly after the one
 * before it: the reference's documents have no overlap.
 *
 * Each item is a list of Automation actions, charged exactly as the twin's runner
 * (local/runner/runner.ts) charges the same action in our runbook:
 * - every Automation step: one AutomationStepTransition first;
 * - `api` (aws:executeAwsApi, aws:assertAwsResourceProperty, aws:executeAutomation): one ApiCall;
 *   when the call starts slow work (a stop, an attach, ...), that work completes at the call's
 *   time + its latency figure;
 * - `wait` (aws:waitForAwsResourceProperty): when the work it waits for is still pending, the
 *   clock moves to its completion plus the mean poll lateness (half the poll interval: the poll
 *   that sees the change comes on average that late), then one ApiCall for that poll;
 * - `callAndWait` (aws:changeInstanceState, aws:createStack, aws:deleteStack, aws:runCommand: one
 *   step that starts work and polls for it): one ApiCall, the work's figure, the mean poll
 *   lateness (the poll interval of these actions is undocumented too: the same assumed range), one ApiCall;
 * - `script` (aws:executeScript in the Automation service's sandbox): one LambdaWarmInvoke, the
 *   cheaper of the runner's two invoke figures (ours pay LambdaColdInvoke on a first invoke), so
 *   the reference is never charged more than we are for the same kind of step;
 * - `branch`: the transition only; `sleep` (aws:sleep): its literal duration (the document fixes
 *   it, not a latency figure).
 * Optional work the reference skips by default (the post-script AMI) and fallbacks it does not
 * take (force-stop, helper reboot and retry) are not charged.
 */
import { latencyOf, meanPollLateness, type LatencyEnd, type LatencyOp } from '../local/latency';

export type ReferenceAction =
  /** API steps; `starts` names slow work begun by the (last) call, awaited later by a `wait`. */
  | { readonly kind: 'api'; readonly count?: number; readonly starts?: LatencyOp }
  /** aws:waitForAwsResourceProperty on the work started last and not yet awaited. */
  | { readonly kind: 'wait' }
  /** One step that starts work and waits for it; `thenStarts`: work that begins when it ends. */
  | { readonly kind: 'callAndWait'; readonly op: LatencyOp; readonly thenStarts?: LatencyOp }
  | { readonly kind: 'script'; readonly count?: number }
  | { readonly kind: 'branch' }
  | { readonly kind: 'sleep'; readonly seconds: number; readonly why: string };

export interface ReferenceStep {
  /** The item number in resetaccess-sequence.md. */
  readonly item: number;
  /** Short name, for tables. */
  readonly name: string;
  readonly document: 'AWSSupport-ResetAccess' | 'AWSSupport-StartEC2RescueWorkflow';
  /** What the step does, in the reference's own terms. */
  readonly what: string;
  /** Its Automation actions, in order. */
  readonly actions: readonly ReferenceAction[];
  /** Access is back when this step completes (the key already stands in the parameter). */
  readonly access?: true;
}

const api = (count = 1, starts?: LatencyOp): ReferenceAction => ({ kind: 'api', count, starts });
const wait: ReferenceAction = { kind: 'wait' };
const callAndWait = (op: LatencyOp, thenStarts?: LatencyOp): ReferenceAction => ({ kind: 'callAndWait', op, thenStarts });
const script = (count = 1): ReferenceAction => ({ kind: 'script', count });

/**
 * The reference's fixed sleep after attaching the root volume to its helper: 10 s in the published
 * step list of AWSSupport-StartEC2RescueWorkflow (awsdocs/aws-systems-manager-user-guide,
 * doc_source/automation-awssupport-startec2rescueworkflow.md: "aws:sleep - Sleep 10 seconds").
 */
export const REFERENCE_SLEEP_SECONDS = 10;

const PARENT = 'AWSSupport-ResetAccess' as const;
const CHILD = 'AWSSupport-StartEC2RescueWorkflow' as const;

export const REFERENCE_SEQUENCE: readonly ReferenceStep[] = [
  {
    item: 1, name: 'checkPlatformAndStartWorkflow', document: PARENT,
    what: 'check whether the platform is Windows (DescribeInstances); start the child automation',
    actions: [api(2)],
  },
  {
    item: 2, name: 'waitForRunningOrStopped', document: CHILD,
    what: 'wait for the instance to be running or stopped (it is running: the first poll sees it)',
    actions: [wait],
  },
  {
    item: 3, name: 'preflightChecks', document: CHILD,
    what:
      'describe the instance and its root volume; assert EBS root, unencrypted, shutdown behaviour ' +
      'stop, no product codes; branch out for Spot; Auto Scaling and concurrent-execution checks ' +
      '(two scripts); check the subnet AZ',
    actions: [api(6), { kind: 'branch' }, script(2), api(1)],
  },
  {
    item: 4, name: 'createStack', document: CHILD,
    what:
      'aws:createStack: IAM role and instance profile, launch template, helper instance, VPC, subnet, ' +
      'internet gateway, route; waits for CREATE_COMPLETE (the helper counted from the end, in item 5)',
    actions: [callAndWait('CloudFormationCreateStack', 'RunInstancesUntilOnline')],
  },
  {
    item: 5, name: 'waitForHelperOnline', document: CHILD,
    what: 'the helper boots and registers with Systems Manager; wait until Online',
    actions: [wait],
  },
  {
    item: 6, name: 'disableDeleteOnTermination', document: CHILD,
    what: 'ModifyInstanceAttribute: DeleteOnTermination=false on the root volume',
    actions: [api()],
  },
  {
    item: 7, name: 'stopInstanceAndWait', document: CHILD,
    what: 'stop the target (force-stop as fallback, not taken) and wait for stopped',
    actions: [callAndWait('StopInstances')],
  },
  {
    item: 8, name: 'createBackupImage', document: CHILD,
    what: 'CreateImage of the stopped target (not waited for)',
    actions: [api(1)],
  },
  {
    item: 9, name: 'installEC2Rescue', document: CHILD,
    what: 'AWS-ConfigureAWSPackage (Run Command) installs EC2Rescue for Linux on the helper; wait',
    actions: [callAndWait('ConfigureAWSPackageEC2Rescue')],
  },
  {
    item: 10, name: 'detachRootAndWait', document: CHILD,
    what: 'DetachVolume of the target root; wait for available',
    actions: [api(1, 'DetachVolume'), wait],
  },
  {
    item: 11, name: 'attachToHelperWaitAndSleep', document: CHILD,
    what: 'AttachVolume to the helper as /dev/sdf; wait for in-use; sleep a fixed 10 s',
    actions: [
      api(1, 'AttachVolume'),
      wait,
      {
        kind: 'sleep',
        seconds: REFERENCE_SLEEP_SECONDS,
        why:
          'the published step list has "aws:sleep - Sleep 10 seconds" after the attach ' +
          '(awsdocs/aws-systems-manager-user-guide, doc_source/automation-awssupport-startec2rescueworkflow.md)',
      },
    ],
  },
  {
    item: 12, name: 'runEC2RescueInjectKey', document: CHILD,
    what: 'Run Command: mount, chroot, ec2rl --inject-key-only (RSA 4096, SecureString); wait',
    actions: [callAndWait('RunCommand')],
  },
  {
    item: 13, name: 'stopHelperAndWait', document: CHILD,
    what: 'stop the helper (force-stop as fallback, not taken) and wait for stopped',
    actions: [callAndWait('StopInstances')],
  },
  {
    item: 14, name: 'detachFromHelperAndWait', document: CHILD,
    what: 'DetachVolume from the helper; wait for available',
    actions: [api(1, 'DetachVolume'), wait],
  },
  {
    item: 15, name: 'reattachRootAndWait', document: CHILD,
    what: 'AttachVolume back at the original device name; wait for in-use',
    actions: [api(1, 'AttachVolume'), wait],
  },
  {
    item: 16, name: 'restoreDeleteOnTermination', document: CHILD,
    what: 'optional post-script AMI (off by default, not charged); restore DeleteOnTermination',
    actions: [api()],
  },
  {
    item: 17, name: 'startInstanceAndWait', document: CHILD,
    what: 'restore the original state: start the target and wait for running',
    actions: [api(1, 'StartInstances'), wait],
    access: true,
  },
  {
    item: 18, name: 'deleteStack', document: CHILD,
    what: 'delete the CloudFormation stack and wait for DELETE_COMPLETE',
    actions: [callAndWait('CloudFormationDeleteStack')],
  },
  {
    item: 19, name: 'readWorkflowOutputs', document: PARENT,
    what: "read the child's outputs: the backup AMI id and the key parameter name",
    actions: [api()],
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

/** The number of Automation steps an action stands for. */
function stepsOf(a: ReferenceAction): number {
  return a.kind === 'api' || a.kind === 'script' ? (a.count ?? 1) : 1;
}

function describeActions(actions: readonly ReferenceAction[]): string {
  return actions
    .map((a) => {
      switch (a.kind) {
        case 'api':
          return `api${(a.count ?? 1) > 1 ? `×${a.count}` : ''}${a.starts ? ` (starts ${a.starts})` : ''}`;
        case 'wait':
          return 'wait';
        case 'callAndWait':
          return `${a.op}${a.thenStarts ? ` (then ${a.thenStarts} begins)` : ''}`;
        case 'script':
          return `script${(a.count ?? 1) > 1 ? `×${a.count}` : ''}`;
        case 'branch':
          return 'branch';
        case 'sleep':
          return `sleep ${a.seconds} s`;
      }
      return '';
    })
    .join(' + ');
}

/**
 * The reference's timeline under a latency function and a mean poll lateness (default: the
 * table's slow end and its lateness): the items one after the other, each action charged as the
 * runner charges it (see the header).
 */
export function modelReference(
  sequence: readonly ReferenceStep[] = REFERENCE_SEQUENCE,
  latency: (op: LatencyOp) => number = (op) => latencyOf(op, 'high'),
  lateness: number = latency('WaitPollInterval') / 2,
): ReferenceModel {
  const accessSteps = sequence.filter((s) => s.access);
  if (accessSteps.length !== 1) {
    throw new Error(`the reference sequence must mark exactly one access step, found ${accessSteps.length}`);
  }
  let t = 0;
  /** Completion time of work started by an `api` action and not yet awaited. */
  let pending: number | undefined;
  const steps: ModeledStep[] = [];
  for (const step of sequence) {
    const start = t;
    for (const a of step.actions) {
      for (let i = 0; i < stepsOf(a); i += 1) {
        t += latency('AutomationStepTransition');
        switch (a.kind) {
          case 'api':
            t += latency('ApiCall');
            if (a.starts && i === stepsOf(a) - 1) {
              if (pending !== undefined) throw new Error(`${step.name}: work started while other work is not awaited`);
              pending = t + latency(a.starts);
            }
            break;
          case 'wait':
            // a poll notices the completion on average half an interval late; nothing pending: no wait
            if (pending !== undefined && pending > t) t = pending + lateness;
            pending = undefined;
            t += latency('ApiCall');
            break;
          case 'callAndWait':
            t += latency('ApiCall') + latency(a.op) + lateness + latency('ApiCall');
            if (a.thenStarts) {
              if (pending !== undefined) throw new Error(`${step.name}: work started while other work is not awaited`);
              pending = t + latency(a.thenStarts);
            }
            break;
          case 'script':
            t += latency('LambdaWarmInvoke');
            break;
          case 'branch':
            break;
          case 'sleep':
            t += a.seconds;
            break;
        }
      }
    }
    steps.push({ item: step.item, name: step.name, startSeconds: start, endSeconds: t, seconds: t - start, charged: describeActions(step.actions) });
  }
  if (pending !== undefined) throw new Error('the reference sequence ends with work that nothing waited for');
  const access = steps.find((s) => s.item === accessSteps[0].item) as ModeledStep;
  return { steps, timeToAccessSeconds: access.endSeconds, totalSeconds: t };
}

/** The reference at one end of the latency table, waits charged their mean poll lateness. */
export function modelReferenceAt(end: LatencyEnd, sequence: readonly ReferenceStep[] = REFERENCE_SEQUENCE): ReferenceModel {
  return modelReference(sequence, (op) => latencyOf(op, end), meanPollLateness(end));
}
