/**
 * The local twin's Automation runner: executes a schemaVersion 0.3 document (the Content of
 * the synthesized AWS::SSM::Document) following the documented semantics of Systems Manager
 * Automation for the actions and fields it implements, on a virtual clock.
 *
 * It is a test double of Automation, not a second engine. What it does not implement it
 * refuses before running anything (see document.ts). It never prints payloads or outputs:
 * `log` receives only step names, statuses and virtual times.
 *
 * Semantics (AWS Systems Manager User Guide, "Automation actions reference", common properties):
 * - a step without nextStep goes to the next step in document order; the last one ends;
 * - isEnd ends the execution after the step; onFailure Abort (default) / Continue / step:X;
 *   onCancel Abort (default) / step:X; maxAttempts (default 1) retries the action;
 * - isCritical defaults to true, or to false when onFailure is Continue; a failed critical
 *   step makes the execution Failed even when the path after it succeeds;
 * - timeoutSeconds is measured on the virtual clock; waitForAwsResourceProperty defaults to 3600,
 *   invokeLambdaFunction to (and at most) 300;
 * - a branch with no true choice and no Default goes on to the next step in the document;
 * - the cancellation path (the steps after a cancel, by onCancel) runs for at most two minutes
 *   ("automation-actions.html", common properties, onCancel); what is still running then is
 *   cut short, and the execution ends Cancelled;
 * - every parameter value and step output value is at most 512 characters (the SSM API model:
 *   botocore data/ssm/2014-11-06/service-2.json, AutomationParameterValue);
 * - aws:executeAwsApi ssm StartAutomationExecution of a document the runner was given starts
 *   that execution and returns its id at once (the API's documented behaviour: it returns an
 *   AutomationExecutionId and does not wait); the started execution runs after this one, on the
 *   same clock, with its own start time and result (`startedExecutions`).
 */
import { randomUUID } from 'node:crypto';
import { latencyOf } from '../latency';
import { VirtualClock } from './clock';
import {
  BUILT_IN_OUTPUTS,
  findReferences,
  MAX_AUTOMATION_VALUE_CHARS,
  parseDocument,
  parseDuration,
  ParsedDocument,
  resolveParameters,
  StepSpec,
  UnsupportedDocument,
  VARIABLE_PATTERN,
  wholeReference,
} from './document';
import { select } from './selector';

export { VirtualClock } from './clock';
export { InvalidAutomationExecutionParameters, UnsupportedDocument } from './document';
export { sdkAwsCall } from './sdk-aws-call';

export type InvokeLambda = (functionNameValue: unknown, payload: unknown) => Promise<unknown>;
export type AwsCall = (service: string, api: string, params: Record<string, unknown>) => Promise<unknown>;

export type ExecutionStatus = 'Success' | 'Failed' | 'Cancelled' | 'TimedOut';
export type StepStatus = 'Success' | 'Failed' | 'Cancelled' | 'TimedOut';

export interface Fault {
  /** The step to fail. */
  step: string;
  /** before: the action does not run; after: the action runs, then the step is reported failed. */
  when: 'before' | 'after';
  message: string;
  /** How many attempts it fails (default: every attempt). */
  times?: number;
}

export interface StepResult {
  name: string;
  action: string;
  status: StepStatus;
  /** Virtual seconds. */
  startedAt: number;
  endedAt: number;
  attempts: number;
  outputs: Record<string, unknown>;
  failureMessage?: string;
}

export interface ExecutionResult {
  executionId: string;
  status: ExecutionStatus;
  steps: StepResult[];
  /** The document's outputs, keyed as written ('summarize.Payload'). */
  outputs: Record<string, unknown>;
  failureMessage?: string;
  /** Virtual seconds from start to end. */
  modeledSeconds: number;
  /** Executions this one started with StartAutomationExecution (run after it ends), in order. */
  startedExecutions: ExecutionResult[];
  /** True when the cancellation path ran out of its two minutes before it ended. */
  cancelPathCutShort?: boolean;
  /** assumeRole as resolved (recorded; the twin does not assume roles). */
  assumeRole?: unknown;
  /** The invocations cancelInFlight left running (top-level execution only), all landed. */
  inFlight?: InFlightInvocation[];
}

export interface RunAutomationOptions {
  document: unknown;
  parameters?: Record<string, unknown>;
  executionId?: string;
  invokeLambda: InvokeLambda;
  awsCall: AwsCall;
  clock?: VirtualClock;
  faults?: Fault[];
  /** Cancel the execution when this step starts (its onCancel routes the cancellation). */
  cancelAt?: string;
  /**
   * Cancel the execution while this aws:invokeLambdaFunction step's Lambda runs: the step is
   * Cancelled at once and its onCancel routes, but the invocation goes on. A synchronous Invoke
   * runs until the function returns or times out; nothing stops it
   * (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), and Lambda stops a function
   * at its timeout (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
   * The runner models the worst case: the function's work lands `runsForSeconds` after the step
   * started (give its timeout), at the first step boundary of any execution on the clock at or
   * after that time, or when everything has ended.
   */
  cancelInFlight?: { step: string; runsForSeconds: number };
  /** Invocations still running after a cancel; shared with the executions this one starts. */
  inFlight?: InFlightInvocation[];
  log?: (line: string) => void;
  /** Resolves a CloudFormation token found as a parameter default (e.g. the AutomationAssumeRole ARN). */
  resolveIntrinsic?: (value: unknown) => unknown;
  /** Functions already warm (keyed by JSON of the FunctionName value); shared across executions if given. */
  warmFunctions?: Set<string>;
  accountId?: string;
  region?: string;
  /** Wall-clock date that virtual time 0 stands for (global:DATE, global:DATE_TIME). */
  startDate?: Date;
  /**
   * Documents by name that an aws:executeAwsApi ssm StartAutomationExecution step may start
   * (the twin's deployed Automation documents). @default - none: such a call goes to awsCall
   */
  documents?: Record<string, unknown>;
  /**
   * The twin's Automation API (local/automation-service.ts): the array the runner records steps
   * into as they start and end, so that GetAutomationExecution shows a running execution's steps.
   * @default - a new array
   */
  liveSteps?: StepResult[];
  /**
   * StopAutomationExecution Type Cancel on a running execution: once `cancel` is true, the next
   * step to start is Cancelled and its onCancel routes the cancellation, as with cancelAt.
   */
  stopRequest?: { cancel: boolean };
  /**
   * Executions run concurrently on this clock (a fleet): each advances the one clock, so the time
   * a Lambda invocation or an API call appears to take includes the others' time. With this set,
   * those two actions are not failed on virtual time (a function's own timeout still applies, on
   * the wall clock, in the twin); waits keep their timeouts. @default false
   */
  sharedClock?: boolean;
  /**
   * aws:executeAutomation: starts the secondary execution (with rate control when Targets are
   * given) through the twin's Automation API and resolves when it has ended, children included
   * (local/automation-service.ts, executeAutomation). @default - none: the action fails the step
   */
  executeAutomation?: (request: ExecuteAutomationRequest) => Promise<ExecuteAutomationResult>;
  /** Called once when this execution has ended (before the executions it started run). */
  /**
   * For an execution this one started (StartAutomationExecution in a step): the onEnded hook of
   * the child, given its id when it starts running. @default - none
   */
  onStarted?: (
    childId: string,
    child: { documentName: string; parameters: Record<string, unknown> },
  ) => { liveSteps?: StepResult[]; onEnded?: RunAutomationOptions['onEnded'] } | undefined;
  onEnded?: (ended: { status: ExecutionStatus; outputs: Record<string, unknown>; failureMessage?: string; modeledSeconds: number; startedIds: string[] }) => void;
}

/** What an aws:executeAutomation step asks for, its inputs resolved (automation-action-executeAutomation.html). */
export interface ExecuteAutomationRequest {
  parentExecutionId: string;
  documentName: string;
  documentVersion?: string;
  runtimeParameters: Record<string, unknown>;
  targets?: Array<{ Key: string; Values: string[] }>;
  targetParameterName?: string;
  maxConcurrency?: string;
  maxErrors?: string;
}

/** How the secondary execution of an aws:executeAutomation step came out, for the step. */
export interface ExecuteAutomationResult {
  executionId: string;
  status: string;
  outputs: Record<string, unknown>;
  failureMessage?: string;
  /** The step's own execution was cancelled while it waited: the step is Cancelled (the secondary runs on). */
  stepCancelled?: boolean;
}

export interface InFlightInvocation {
  step: string;
  executionId: string;
  fn: unknown;
  payload: unknown;
  /** Absolute clock times: invoked, and the end of its run (when its work lands). */
  startedAt: number;
  endsAt: number;
  /** Absolute clock time at which its work was applied; undefined until then. */
  landedAt?: number;
  /** How it ended, when it threw. */
  error?: string;
}

export type RegistryStatus = ExecutionStatus | 'InProgress';

/** Every execution this process has run or is running: id → status (for GetAutomationExecution). */
export const executions = new Map<string, RegistryStatus>();

/**
 * Documented defaults: "Each aws:invokeLambdaFunction action can run up to a maximum duration of
 * 300 seconds"; "The default timeout value for this action [aws:waitForAwsResourceProperty] is
 * 3600 seconds". The others have none documented.
 */
const DEFAULT_TIMEOUTS: Partial<Record<StepSpec['action'], number>> = {
  'aws:invokeLambdaFunction': 300,
  'aws:waitForAwsResourceProperty': 3600,
};
const MAX_STEP_RUNS = 10000;

/**
 * "The cancellation path ... runs for a maximum of two minutes": Automation actions reference,
 * common properties, onCancel (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html).
 */
export const CANCEL_PATH_SECONDS = 120;

/** Throttling error codes that Automation retries by itself ("Configuring automatic retry for throttled operations"). */
const THROTTLING_CODES = ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'ThrottledException'];

/** Ids handed out by StartAutomationExecution whose execution has not started running yet. */
const reservedIds = new Set<string>();

/**
 * StartAutomationExecution ClientToken: "User-provided idempotency token. The token must be
 * unique, is case insensitive, enforces the UUID format, and can't be reused" (IdempotencyToken:
 * 36 characters, a UUID pattern), and IdempotentParameterMismatch is the error "when an
 * idempotent operation is retried and the parameters don't match the original call" (botocore
 * data/ssm/2014-11-06/service-2.json). A retry with the same parameters answering the first
 * execution's id is an assumption (local/README.md); either way no second execution starts.
 */
const IDEMPOTENCY_TOKEN = /^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$/;
const clientTokens = new Map<string, { id: string; request: string }>();

class StepFailure extends Error {
  constructor(
    message: string,
    readonly status: 'Failed' | 'TimedOut' = 'Failed',
  ) {
    super(message);
    this.name = 'StepFailure';
  }
}

/** The execution was cancelled while this step ran (an aws:executeAutomation step waiting): its onCancel routes it. */
class StepCancelled extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StepCancelled';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message;
  return String(e);
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function fmt(t: number): string {
  return `${Math.round(t * 10) / 10}s`;
}

export async function runAutomation(opts: RunAutomationOptions): Promise<ExecutionResult> {
  const doc: ParsedDocument = parseDocument(opts.document);
  const clock = opts.clock ?? new VirtualClock();
  const log = opts.log ?? (() => undefined);
  const executionId = opts.executionId ?? cryptoRandomId();
  const faults = (opts.faults ?? []).map((f) => ({ ...f, left: f.times ?? Infinity }));
  for (const f of faults) {
    if (!doc.stepIndex.has(f.step)) throw new UnsupportedDocument(`fault names step "${f.step}", which is not in the document`);
    if (f.when !== 'before' && f.when !== 'after') throw new UnsupportedDocument(`fault on ${f.step}: when must be before or after`);
  }
  if (opts.cancelInFlight !== undefined) {
    const s = doc.steps[doc.stepIndex.get(opts.cancelInFlight.step) ?? -1];
    if (!s || s.action !== 'aws:invokeLambdaFunction') {
      throw new UnsupportedDocument(`cancelInFlight names step "${opts.cancelInFlight.step}", which is no aws:invokeLambdaFunction step of the document`);
    }
  }
  const topLevel = opts.inFlight === undefined;
  const inFlight: InFlightInvocation[] = opts.inFlight ?? [];
  /** Applies the work of every in-flight invocation whose run has ended by now. */
  const land = async (all = false): Promise<void> => {
    for (const f of inFlight) {
      if (f.landedAt !== undefined || (!all && f.endsAt > clock.now())) continue;
      f.landedAt = clock.now();
      try {
        await opts.invokeLambda(f.fn, f.payload);
      } catch (e) {
        f.error = errorMessage(e);
      }
      log(`[${fmt(clock.now() - startedAt)}] the Lambda of cancelled step ${f.step} (${f.executionId.slice(0, 8)}) ended`);
    }
  };
  if (opts.cancelAt !== undefined && !doc.stepIndex.has(opts.cancelAt)) {
    throw new UnsupportedDocument(`cancelAt names step "${opts.cancelAt}", which is not in the document`);
  }
  if (executions.has(executionId) && !reservedIds.has(executionId)) throw new UnsupportedDocument(`execution id ${executionId} was already used`);
  reservedIds.delete(executionId);
  const params = resolveParameters(doc, opts.parameters ?? {}, opts.resolveIntrinsic);

  const startedAt = clock.now();
  const startDate = opts.startDate ?? new Date();
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '123456789012';
  const warm = opts.warmFunctions ?? new Set<string>();
  const stepOutputs = new Map<string, Record<string, unknown>>();

  const variable = (ref: string): unknown => {
    const date = new Date(startDate.getTime() + (clock.now() - startedAt) * 1000);
    const ymd = `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
    switch (ref) {
      case 'automation:EXECUTION_ID':
        return executionId;
      case 'global:ACCOUNT_ID':
        return accountId;
      case 'global:REGION':
        return region;
      case 'global:AWS_PARTITION':
        return region.startsWith('cn-') ? 'aws-cn' : region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws';
      case 'global:DATE':
        return ymd;
      case 'global:DATE_TIME':
        return `${ymd}_${pad(date.getUTCHours())}.${pad(date.getUTCMinutes())}.${pad(date.getUTCSeconds())}`;
    }
    if (ref.includes('.')) {
      const [stepName, outputName] = ref.split('.');
      const outs = stepOutputs.get(stepName);
      if (!outs || !(outputName in outs)) {
        throw new StepFailure(`{{ ${ref} }} did not resolve: step ${stepName} ${outs ? `has no output ${outputName}` : 'has not succeeded'}`);
      }
      return outs[outputName];
    }
    if (ref in params) return params[ref];
    throw new StepFailure(`{{ ${ref} }} did not resolve`);
  };

  const resolve = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const whole = wholeReference(v);
      if (whole !== undefined) return variable(whole);
      return v.replace(VARIABLE_PATTERN, (_m, ref: string) => {
        const x = variable(ref);
        return typeof x === 'string' ? x : Array.isArray(x) && x.every((i) => typeof i === 'string') ? x.join(',') : JSON.stringify(x);
      });
    }
    if (Array.isArray(v)) return v.map(resolve);
    if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
    return v;
  };

  let assumeRole: unknown;
  if (doc.assumeRole !== undefined) {
    try {
      assumeRole = resolve(doc.assumeRole);
    } catch (e) {
      throw new UnsupportedDocument(`assumeRole: ${errorMessage(e)}`);
    }
  }

  executions.set(executionId, 'InProgress');
  log(`[${fmt(0)}] execution ${executionId} started`);

  const steps: StepResult[] = opts.liveSteps ?? [];
  const failures: string[] = [];
  let criticalFailure: StepStatus | undefined;
  let abortStatus: StepStatus | undefined;
  let cancelled = false;
  let cancelFired = false;
  /** Virtual time of the cancel; the cancellation path ends CANCEL_PATH_SECONDS after it. */
  let cancelledAt: number | undefined;
  let cancelPathCutShort = false;
  const started: { id: string; name: string; document: unknown; parameters: Record<string, unknown> }[] = [];
  let current: number | undefined = 0;
  let runs = 0;

  const rel = (): number => clock.now() - startedAt;

  const nextInOrder = (step: StepSpec, index: number): number | undefined => {
    if (step.isEnd) return undefined;
    if (step.nextStep !== undefined) return doc.stepIndex.get(step.nextStep);
    return index + 1 < doc.steps.length ? index + 1 : undefined;
  };

  try {
    while (current !== undefined) {
      if (++runs > MAX_STEP_RUNS) throw new Error(`more than ${MAX_STEP_RUNS} step runs: the document loops`);
      const index: number = current;
      const step: StepSpec = doc.steps[index];
      if (cancelledAt !== undefined && clock.now() >= cancelledAt + CANCEL_PATH_SECONDS) {
        cancelPathCutShort = true;
        failures.push(`The cancellation path ran out of its ${CANCEL_PATH_SECONDS} seconds before step ${step.name}`);
        log(`[${fmt(rel())}] cancellation path over ${CANCEL_PATH_SECONDS}s: ${step.name} and the rest do not run`);
        break;
      }
      clock.advanceBy(latencyOf('AutomationStepTransition'));
      await land();
      const record: StepResult = {
        name: step.name,
        action: step.action,
        status: 'Success',
        startedAt: rel(),
        endedAt: rel(),
        attempts: 0,
        outputs: {},
      };
      steps.push(record);

      if (!cancelFired && (opts.cancelAt === step.name || opts.stopRequest?.cancel === true)) {
        cancelFired = true;
        cancelled = true;
        cancelledAt = clock.now();
        record.status = 'Cancelled';
        record.failureMessage =
          opts.stopRequest?.cancel === true ? 'The execution was cancelled (StopAutomationExecution)' : 'The execution was cancelled when this step started';
        log(`[${fmt(rel())}] ${step.name} Cancelled (onCancel ${step.onCancel})`);
        current = step.onCancel === 'Abort' ? undefined : doc.stepIndex.get(step.onCancel.slice(5));
        continue;
      }
      if (!cancelFired && opts.cancelInFlight?.step === step.name) {
        cancelFired = true;
        cancelled = true;
        const fn = resolve(step.inputs.FunctionName);
        const payload = step.inputs.InputPayload === undefined ? {} : resolve(step.inputs.InputPayload);
        const invokedAt = clock.now() + latencyOf(warm.has(JSON.stringify(fn)) ? 'LambdaWarmInvoke' : 'LambdaColdInvoke');
        inFlight.push({ step: step.name, executionId, fn, payload, startedAt: invokedAt, endsAt: invokedAt + opts.cancelInFlight.runsForSeconds });
        clock.advanceTo(invokedAt);
        cancelledAt = clock.now();
        record.status = 'Cancelled';
        record.failureMessage = 'The execution was cancelled while this step\'s Lambda function ran';
        record.endedAt = rel();
        log(`[${fmt(rel())}] ${step.name} Cancelled in flight (onCancel ${step.onCancel})`);
        current = step.onCancel === 'Abort' ? undefined : doc.stepIndex.get(step.onCancel.slice(5));
        continue;
      }

      let outcome: { outputs: Record<string, unknown>; next?: number; branched: boolean } | undefined;
      let failure: StepFailure | undefined;
      let stepCancel: StepCancelled | undefined;
      for (let attempt = 1; attempt <= step.maxAttempts; attempt++) {
        record.attempts = attempt;
        const attemptStart = clock.now();
        try {
          const fault = (when: 'before' | 'after') => {
            const f = faults.find((x) => x.step === step.name && x.when === when && x.left > 0);
            if (f) {
              f.left--;
              throw new StepFailure(f.message);
            }
          };
          fault('before');
          const result = await runAction(step, attemptStart);
          fault('after');
          outcome = result;
          failure = undefined;
          break;
        } catch (e) {
          if (e instanceof StepCancelled) {
            stepCancel = e;
            break;
          }
          failure = e instanceof StepFailure ? e : new StepFailure(errorMessage(e));
          log(`[${fmt(rel())}] ${step.name} attempt ${attempt}/${step.maxAttempts} ${failure.status}: ${failure.message.slice(0, 300)}`);
        }
      }
      record.endedAt = rel();

      if (stepCancel) {
        if (!cancelFired) cancelledAt = clock.now();
        cancelFired = true;
        cancelled = true;
        record.status = 'Cancelled';
        record.failureMessage = stepCancel.message;
        log(`[${fmt(record.endedAt)}] ${step.name} Cancelled while running (onCancel ${step.onCancel})`);
        current = step.onCancel === 'Abort' ? undefined : doc.stepIndex.get(step.onCancel.slice(5));
        continue;
      }

      // On a shared clock the virtual time a Lambda invocation or an API call appears to take is the
      // other executions' time (sharedClock): such a step is not judged on it, as for its deadline.
      const ownTime = !(opts.sharedClock && (step.action === 'aws:invokeLambdaFunction' || step.action === 'aws:executeAwsApi'));
      if (cancelledAt !== undefined && ownTime && clock.now() >= cancelledAt + CANCEL_PATH_SECONDS) {
        // The step ran past the two minutes: Automation stops the path here. What the action
        // already did stays done (a Lambda invocation is not undone); nothing after it runs.
        cancelPathCutShort = true;
        record.status = 'Cancelled';
        record.failureMessage = `The cancellation path ran out of its ${CANCEL_PATH_SECONDS} seconds during this step`;
        failures.push(`Step ${step.name}: ${record.failureMessage}`);
        log(`[${fmt(record.endedAt)}] ${step.name} Cancelled (cancellation path over ${CANCEL_PATH_SECONDS}s)`);
        break;
      }

      if (outcome && !failure) {
        record.outputs = outcome.outputs;
        stepOutputs.set(step.name, outcome.outputs);
        log(`[${fmt(record.endedAt)}] ${step.name} Success`);
        current = step.isEnd ? undefined : outcome.branched ? outcome.next : nextInOrder(step, index);
        continue;
      }

      const f = failure as StepFailure;
      record.status = f.status;
      record.failureMessage = f.message;
      failures.push(`Step ${step.name} ${f.status === 'TimedOut' ? 'timed out' : 'failed'}: ${f.message}`);
      const critical = step.isCritical ?? step.onFailure !== 'Continue';
      if (critical && criticalFailure === undefined) criticalFailure = f.status;
      log(`[${fmt(record.endedAt)}] ${step.name} ${f.status} (onFailure ${step.onFailure})`);
      if (step.onFailure === 'Abort') {
        abortStatus = f.status;
        current = undefined;
      } else if (step.onFailure === 'Continue') {
        current = nextInOrder(step, index);
      } else {
        current = doc.stepIndex.get(step.onFailure.slice(5));
      }
    }
  } catch (e) {
    executions.set(executionId, 'Failed');
    throw e;
  }

  let status: ExecutionStatus;
  if (cancelled) status = 'Cancelled';
  else if (criticalFailure !== undefined) status = criticalFailure === 'TimedOut' ? 'TimedOut' : 'Failed';
  else if (abortStatus !== undefined) status = abortStatus === 'TimedOut' ? 'TimedOut' : 'Failed';
  else status = 'Success';

  const outputs: Record<string, unknown> = {};
  for (const o of doc.outputs) {
    const [stepName, outputName] = o.split('.');
    const outs = stepOutputs.get(stepName);
    if (outs && outputName in outs) outputs[o] = outs[outputName];
  }

  executions.set(executionId, status);
  const modeledSeconds = rel();
  log(`[${fmt(modeledSeconds)}] execution ${executionId} ${status}`);
  opts.onEnded?.({
    status,
    outputs,
    failureMessage: failures.length > 0 ? failures.join(' ') : cancelled ? 'The execution was cancelled' : undefined,
    modeledSeconds,
    startedIds: started.map((c) => c.id),
  });

  // The executions this one started run now, each with its own start time on the same clock
  // (the agent schedules every slow operation on it).
  const startedExecutions: ExecutionResult[] = [];
  for (const child of started) {
    const hooks = opts.onStarted?.(child.id, { documentName: child.name, parameters: child.parameters });
    startedExecutions.push(
      await runAutomation({
        ...opts,
        document: child.document,
        parameters: child.parameters,
        executionId: child.id,
        clock,
        faults: [],
        cancelAt: undefined,
        cancelInFlight: undefined,
        liveSteps: hooks?.liveSteps,
        stopRequest: undefined,
        onEnded: hooks?.onEnded,
        inFlight,
        log: (line) => log(`  ${child.id.slice(0, 8)} ${line}`),
      }),
    );
  }
  // Whatever is still in flight when every execution has ended still ends (and does its work).
  if (topLevel) await land(true);
  return {
    executionId,
    status,
    steps,
    outputs,
    failureMessage: failures.length > 0 ? failures.join(' ') : cancelled ? 'The execution was cancelled' : undefined,
    modeledSeconds,
    assumeRole,
    startedExecutions,
    ...(cancelPathCutShort ? { cancelPathCutShort } : {}),
    ...(topLevel && inFlight.length > 0 ? { inFlight } : {}),
  };

  // ---- actions -------------------------------------------------------------------------

  async function runAction(step: StepSpec, attemptStart: number): Promise<{ outputs: Record<string, unknown>; next?: number; branched: boolean }> {
    let timeout = step.timeoutSeconds ?? DEFAULT_TIMEOUTS[step.action];
    if (step.action === 'aws:invokeLambdaFunction') timeout = Math.min(timeout as number, 300);
    const stepDeadline = timeout === undefined ? Infinity : attemptStart + timeout;
    // On the cancellation path, nothing waits past its two minutes.
    const deadline = cancelledAt === undefined ? stepDeadline : Math.min(stepDeadline, cancelledAt + CANCEL_PATH_SECONDS);
    const checkDeadline = (what: string) => {
      if (clock.now() > deadline) throw new StepFailure(`${what} took ${fmt(clock.now() - attemptStart)}, over timeoutSeconds ${timeout}`, 'TimedOut');
    };
    switch (step.action) {
      case 'aws:invokeLambdaFunction': {
        const fn = resolve(step.inputs.FunctionName);
        let payload: unknown = {};
        if (step.inputs.InputPayload !== undefined) payload = resolve(step.inputs.InputPayload);
        if (step.inputs.Payload !== undefined) {
          try {
            payload = JSON.parse(resolve(step.inputs.Payload) as string);
          } catch (e) {
            throw new StepFailure(`Payload is not JSON: ${errorMessage(e)}`);
          }
        }
        const key = JSON.stringify(fn);
        const cost = latencyOf(warm.has(key) ? 'LambdaWarmInvoke' : 'LambdaColdInvoke');
        warm.add(key);
        // The invocation's figure is charged before the handler runs, so that the slow work it
        // starts (scheduled by the agent at the current time) begins at the end of the
        // invocation: the conservative reading, never earlier than in AWS.
        clock.advanceBy(cost);
        let returned: unknown;
        try {
          returned = await opts.invokeLambda(fn, payload);
        } catch (e) {
          throw new StepFailure(errorMessage(e));
        }
        if (!opts.sharedClock) checkDeadline('the Lambda invocation');
        const json = returned === undefined ? null : JSON.parse(JSON.stringify(returned));
        // Payload: "The JSON representation of the object returned by the Lambda function"
        // (automation-action-lamb.html, Output): a string, capped like every output value.
        const payloadText = JSON.stringify(json);
        const response = { Payload: payloadText, StatusCode: 200 };
        checkOutputSize(step, 'Payload', payloadText);
        return { outputs: { Payload: payloadText, StatusCode: 200, ...selectOutputs(step, response) }, branched: false };
      }
      case 'aws:executeAwsApi': {
        const { Service, Api, ...rest } = step.inputs;
        const params = resolve(rest) as Record<string, unknown>;
        clock.advanceBy(latencyOf('ApiCall'));
        let response: unknown;
        try {
          const child = startAutomation(Service as string, Api as string, params);
          response = child ?? (await opts.awsCall(Service as string, Api as string, params));
        } catch (e) {
          if (e instanceof StepFailure) throw e;
          throw new StepFailure(`${Service} ${Api}: ${errorMessage(e)}`);
        }
        if (!opts.sharedClock) checkDeadline(`${Service} ${Api}`);
        return { outputs: selectOutputs(step, response), branched: false };
      }
      case 'aws:waitForAwsResourceProperty': {
        const { Service, Api, PropertySelector, DesiredValues, ...rest } = step.inputs;
        const params = resolve(rest) as Record<string, unknown>;
        const desired = (resolve(DesiredValues) as unknown[]).map(String);
        const ids = stringsIn(params);
        let last = 'no answer yet';
        for (;;) {
          const completion = clock.latestCompletion(ids);
          if (completion !== undefined && completion > deadline) {
            clock.advanceTo(deadline);
            const ops = ids.flatMap((id) => clock.pending(id).map((p) => p.op));
            throw new StepFailure(
              `timed out after ${timeout}s waiting for ${PropertySelector} in [${desired.join(', ')}]: ` +
                `${[...new Set(ops)].join(', ')} modeled to complete at ${fmt(completion - startedAt)}`,
              'TimedOut',
            );
          }
          clock.settleWait(ids); // a poll notices the completion late: the model's mean poll lateness (local/latency.ts)
          clock.advanceBy(latencyOf('ApiCall'));
          try {
            const response = await opts.awsCall(Service as string, Api as string, params);
            const sel = select(response, PropertySelector as string);
            if (sel.found && desired.includes(typeof sel.value === 'string' ? sel.value : JSON.stringify(sel.value))) {
              return { outputs: {}, branched: false };
            }
            last = sel.found ? `last value ${JSON.stringify(sel.value)}` : `${PropertySelector} not found in the response`;
          } catch (e) {
            // Throttling is retried by Automation ("Configuring automatic retry for throttled
            // operations"). Any other API error: AWS documents nothing for this action, and the
            // twin takes the reading that never hides a failure: the attempt fails
            // (local/README.md, assumptions; maxAttempts retries it).
            const code = e instanceof Error ? e.name : '';
            if (!THROTTLING_CODES.includes(code)) throw new StepFailure(`${Service} ${Api}: ${errorMessage(e)}`);
            last = `last call throttled: ${errorMessage(e)}`;
          }
          const poll = latencyOf('WaitPollInterval');
          if (clock.now() + poll > deadline) {
            clock.advanceTo(Math.max(deadline, clock.now()));
            throw new StepFailure(`timed out after ${timeout}s waiting for ${PropertySelector} in [${desired.join(', ')}]; ${last}`, 'TimedOut');
          }
          clock.advanceBy(poll);
        }
      }
      case 'aws:branch': {
        const choices = step.inputs.Choices as Record<string, unknown>[];
        for (const c of choices) {
          if (evaluate(c)) return { outputs: {}, next: doc.stepIndex.get(c.NextStep as string), branched: true };
        }
        if (step.inputs.Default !== undefined) return { outputs: {}, next: doc.stepIndex.get(step.inputs.Default as string), branched: true };
        // "If no default value is specified for the step, then the automation processes the next step in the runbook."
        return { outputs: {}, branched: false };
      }
      case 'aws:executeAutomation': {
        // "Runs a secondary automation" and waits for it; its outputs are ExecutionId, Status and
        // Output (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-executeAutomation.html).
        // With Targets, TargetParameterName, MaxConcurrency and MaxErrors the secondary execution is
        // rate-controlled, as StartAutomationExecution's (the twin's Automation API runs it).
        if (!opts.executeAutomation) throw new StepFailure('aws:executeAutomation runs only through the twin\'s Automation API');
        const i = resolve(step.inputs) as Record<string, unknown>;
        clock.advanceBy(latencyOf('ApiCall'));
        let ended: ExecuteAutomationResult;
        try {
          ended = await opts.executeAutomation({
            parentExecutionId: executionId,
            documentName: String(i.DocumentName),
            documentVersion: i.DocumentVersion as string | undefined,
            runtimeParameters: (i.RuntimeParameters ?? {}) as Record<string, unknown>,
            targets: i.Targets as ExecuteAutomationRequest['targets'],
            targetParameterName: i.TargetParameterName as string | undefined,
            maxConcurrency: i.MaxConcurrency as string | undefined,
            maxErrors: i.MaxErrors as string | undefined,
          });
        } catch (e) {
          throw new StepFailure(`StartAutomationExecution: ${errorMessage(e)}`);
        }
        if (ended.stepCancelled) throw new StepCancelled(`The execution was cancelled (StopAutomationExecution) while this step waited for the secondary automation ${ended.executionId}, which was ${ended.status} and was not stopped`);
        checkDeadline('the secondary automation');
        if (ended.status !== 'Success') {
          throw new StepFailure(`the secondary automation ${ended.executionId} ended ${ended.status}${ended.failureMessage ? `: ${ended.failureMessage}` : ''}`);
        }
        const output = JSON.stringify(ended.outputs);
        // Output over 512 characters (AutomationParameterValue): left out, as a selector that selects nothing.
        return { outputs: { ExecutionId: ended.executionId, Status: ended.status, ...(output.length <= MAX_AUTOMATION_VALUE_CHARS ? { Output: output } : {}) }, branched: false };
      }
      case 'aws:sleep': {
        const seconds = parseDuration(`step ${step.name}`, resolve(step.inputs.Duration) as string);
        if (attemptStart + seconds > deadline) {
          clock.advanceTo(deadline);
          throw new StepFailure(`sleeping ${seconds}s exceeds timeoutSeconds ${timeout}`, 'TimedOut');
        }
        clock.advanceBy(seconds);
        return { outputs: {}, branched: false };
      }
    }
  }

  /**
   * ssm StartAutomationExecution of a document the runner knows: validated as the API would
   * (the document exists, the parameters satisfy it), registered InProgress, run after this
   * execution ends. Returns the API's answer, or undefined for any other call.
   */
  function startAutomation(service: string, api: string, params: Record<string, unknown>): { AutomationExecutionId: string } | undefined {
    if (service.toLowerCase() !== 'ssm' || api !== 'StartAutomationExecution' || !opts.documents) return undefined;
    const name = String(params.DocumentName ?? '');
    const document = opts.documents[name];
    if (document === undefined) throw new StepFailure(`InvalidAutomationExecutionParametersException: no Automation document ${name} in the twin`);
    const parameters = (params.Parameters ?? {}) as Record<string, unknown>;
    try {
      resolveParameters(parseDocument(document), parameters, opts.resolveIntrinsic);
    } catch (e) {
      throw new StepFailure(`InvalidAutomationExecutionParametersException: ${errorMessage(e)}`);
    }
    let token: string | undefined;
    if (params.ClientToken !== undefined) {
      token = String(params.ClientToken).toLowerCase();
      if (!IDEMPOTENCY_TOKEN.test(token)) throw new StepFailure('ValidationException: ClientToken is not a UUID (IdempotencyToken)');
      const request = JSON.stringify({ name, parameters });
      const known = clientTokens.get(token);
      if (known) {
        if (known.request !== request) throw new StepFailure('IdempotentParameterMismatch: ClientToken was used with other parameters');
        return { AutomationExecutionId: known.id };
      }
    }
    const id = cryptoRandomId();
    if (token !== undefined) clientTokens.set(token, { id, request: JSON.stringify({ name, parameters }) });
    reservedIds.add(id);
    executions.set(id, 'InProgress');
    started.push({ id, name, document, parameters });
    return { AutomationExecutionId: id };
  }

  function evaluate(c: Record<string, unknown>): boolean {
    if ('Not' in c) return !evaluate(c.Not as Record<string, unknown>);
    if ('And' in c) return (c.And as Record<string, unknown>[]).every(evaluate);
    if ('Or' in c) return (c.Or as Record<string, unknown>[]).some(evaluate);
    const value = resolve(c.Variable);
    const op = Object.keys(c).find((k) => k !== 'Variable' && k !== 'NextStep') as string;
    const operand = resolve(c[op]);
    const text = (what: unknown): string => {
      if (typeof what === 'string') return what;
      if (typeof what === 'number' || typeof what === 'boolean') return String(what);
      throw new StepFailure(`${op}: ${c.Variable as string} is not a string`);
    };
    const num = (what: unknown, name: string): number => {
      const n = typeof what === 'number' ? what : typeof what === 'string' && what.trim() !== '' ? Number(what) : NaN;
      if (Number.isNaN(n)) throw new StepFailure(`${op}: ${name} is not a number`);
      return n;
    };
    switch (op) {
      case 'StringEquals':
        return typeof value === 'string' && value === operand;
      case 'EqualsIgnoreCase':
        return text(value).toLowerCase() === text(operand).toLowerCase();
      case 'StartsWith':
        return text(value).startsWith(text(operand));
      case 'EndsWith':
        return text(value).endsWith(text(operand));
      case 'Contains':
        return Array.isArray(value) ? value.map(String).includes(text(operand)) : text(value).includes(text(operand));
      case 'BooleanEquals': {
        const have = typeof value === 'string' && /^(true|false)$/i.test(value) ? value.toLowerCase() === 'true' : value;
        if (typeof have !== 'boolean') throw new StepFailure(`BooleanEquals: ${c.Variable as string} is not a Boolean`);
        return have === operand;
      }
      case 'NumericEquals':
        return num(value, c.Variable as string) === num(operand, op);
      case 'NumericGreater':
        return num(value, c.Variable as string) > num(operand, op);
      case 'NumericLesser':
        return num(value, c.Variable as string) < num(operand, op);
      case 'NumericGreaterOrEquals':
        return num(value, c.Variable as string) >= num(operand, op);
      case 'NumericLesserOrEquals':
        return num(value, c.Variable as string) <= num(operand, op);
    }
    throw new StepFailure(`unknown choice ${JSON.stringify(Object.keys(c))}`);
  }
}

/** Outputs declared with a Selector, typed as declared; a selector that matches nothing yields no output. */
function selectOutputs(step: StepSpec, response: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const o of step.outputs) {
    const sel = select(response, o.path);
    if (!sel.found) continue;
    const v = sel.value;
    const ok =
      o.Type === 'String'
        ? typeof v === 'string'
        : o.Type === 'Integer'
          ? typeof v === 'number' && Number.isInteger(v)
          : o.Type === 'Boolean'
            ? typeof v === 'boolean'
            : o.Type === 'StringList'
              ? Array.isArray(v) && v.every((x) => typeof x === 'string')
              : o.Type === 'StringMap'
                ? isObject(v)
                : Array.isArray(v) && v.every(isObject);
    if (!ok) {
      throw new StepFailure(`output ${o.Name} (${o.Selector}) is declared ${o.Type} but selected ${Array.isArray(v) ? 'a list' : typeof v}`);
    }
    checkOutputSize(step, o.Name, v);
    out[o.Name] = v;
  }
  return out;
}

/**
 * A step output value is an AutomationParameterValue: at most 512 characters (botocore
 * data/ssm/2014-11-06/service-2.json). What Automation does with a longer one is not documented;
 * the twin fails the step (local/README.md, assumptions), so a runbook that relies on it shows.
 */
function checkOutputSize(step: StepSpec, name: string, v: unknown): void {
  const values = Array.isArray(v) ? v : [v];
  for (const x of values) {
    const text = typeof x === 'string' ? x : JSON.stringify(x);
    if (text.length > MAX_AUTOMATION_VALUE_CHARS) {
      throw new StepFailure(
        `output ${name} of step ${step.name} is ${text.length} characters, over the ${MAX_AUTOMATION_VALUE_CHARS} of an AutomationParameterValue`,
      );
    }
  }
}

/** Every string value inside v: the resource ids a wait may be waiting on. */
function stringsIn(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => stringsIn(x, out));
  else if (isObject(v)) Object.values(v).forEach((x) => stringsIn(x, out));
  return out;
}

function cryptoRandomId(): string {
  return randomUUID();
}

/**
 * Time to access: the end (virtual seconds) of the first of the given steps, in the order
 * given, that succeeded; undefined when none did.
 */
export function timeToAccess(result: ExecutionResult, stepNames: readonly string[]): number | undefined {
  for (const name of stepNames) {
    const s = result.steps.find((x) => x.name === name && x.status === 'Success');
    if (s) return s.endedAt;
  }
  return undefined;
}

/** For tests and tooling: every `{{ }}` reference in a value. */
export { findReferences, BUILT_IN_OUTPUTS };
