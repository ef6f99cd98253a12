/**
 * The twin's Automation API, served by the agent on the twin's endpoint (SSM JSON 1.1):
 * StartAutomationExecution, GetAutomationExecution, DescribeAutomationExecutions,
 * DescribeAutomationStepExecutions, StopAutomationExecution. Any client drives it as it drives
 * AWS: the AWS CLI, the SDKs, the project's own CLI.
 *
 * Requests are checked against the operation's input shape in the SSM service model of the
 * preinstalled AWS CLI (botocore data/ssm/2014-11-06/service-2.json: required members, types,
 * enums, lengths, counts, patterns, e.g. the 512-character AutomationParameterValue) and refused
 * with ValidationException as AWS does for a request that breaks the model's constraints
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/CommonErrors.html); the
 * operations' own errors are the model's (AutomationDefinitionNotFoundException,
 * InvalidAutomationExecutionParametersException, AutomationExecutionNotFoundException,
 * InvalidAutomationStatusUpdateException, InvalidFilterKey, InvalidFilterValue, InvalidNextToken,
 * InvalidTarget ...).
 *
 * StartAutomationExecution returns the id at once and runs the execution in the background with
 * the runner (local/runner/runner.ts) on the twin's virtual clock; executions run concurrently.
 *
 * Rate control (the StartAutomationExecution API reference, members Targets, TargetParameterName,
 * MaxConcurrency, MaxErrors, in the same model; "Control automations at scale",
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/running-automations-scale-controls.html):
 * one parent execution and one child execution per target, each child naming its parent
 * (ParentAutomationExecutionId) and its target; at most MaxConcurrency children run at once
 * (default 10), the queue starting with one target and growing exponentially up to that value; once
 * more than MaxErrors children have failed, no further target is started and the running ones
 * complete. Where the sources stop, local/README.md (assumptions) says what the twin does.
 */
import { randomUUID } from 'node:crypto';
import { AwsErrorReply, SsmHandler } from './agent';
import { operationShape, serviceModel, ServiceModel, validateShape } from './botocore-model';
import { parseDocument, resolveParameters } from './runner/document';
import type { ExecuteAutomationRequest, ExecuteAutomationResult, ExecutionResult, RunAutomationOptions, StepResult } from './runner/runner';
import { executions as runnerRegistry } from './runner/runner';
import type { VirtualClock } from './runner/clock';

/** What one execution run needs from the twin (its Lambdas, its AWS endpoint, its clock). */
export interface RunRequest {
  readonly document: Record<string, unknown>;
  readonly parameters: Record<string, unknown>;
  readonly executionId: string;
  readonly liveSteps: StepResult[];
  readonly stopRequest: { cancel: boolean };
  readonly onEnded: RunAutomationOptions['onEnded'];
  readonly onStarted: RunAutomationOptions['onStarted'];
  /** A child of a fleet: executions run concurrently on the one clock (runner, sharedClock). */
  readonly sharedClock: boolean;
}

export interface AutomationTarget {
  readonly Key: string;
  readonly Values: readonly string[];
}

export interface AutomationServiceOptions {
  readonly clock: VirtualClock;
  /** The deployed Automation documents by name. */
  readonly documents: Readonly<Record<string, Record<string, unknown>>>;
  readonly run: (request: RunRequest) => Promise<ExecutionResult>;
  /** The instance ids a `tag:<key>` target selects (the Region's instances not terminated). */
  readonly instancesByTag: (tagKey: string, values: readonly string[]) => Promise<string[]>;
  /** Wall-clock date that virtual time 0 stands for. @default now */
  readonly startDate?: Date;
  readonly accountId?: string;
  readonly region?: string;
}

type Status = 'Pending' | 'InProgress' | 'Cancelling' | 'Success' | 'Failed' | 'Cancelled' | 'TimedOut';
const TERMINAL = new Set<Status>(['Success', 'Failed', 'Cancelled', 'TimedOut']);

interface ExecutionRecord {
  readonly id: string;
  readonly documentName: string;
  readonly parameters: Record<string, string[]>;
  readonly startClock: number;
  endClock?: number;
  status: Status;
  readonly steps: StepResult[];
  readonly stepIds: Map<StepResult, string>;
  outputs?: Record<string, unknown>;
  failureMessage?: string;
  readonly stop: { cancel: boolean };
  /** Called once when StopAutomationExecution cancels this execution (an aws:executeAutomation step waiting on a secondary). */
  readonly cancelListeners: Array<() => void>;
  readonly parentId?: string;
  readonly target?: string;
  // rate control (parent only)
  readonly targets?: AutomationTarget[];
  readonly targetParameterName?: string;
  readonly maxConcurrency?: string;
  readonly maxErrors?: string;
  resolvedTargets?: string[];
  readonly tags: Array<{ Key: string; Value: string }>;
  /** Settles when this execution (and, for a parent, every child) has ended. */
  done: Promise<void>;
}

export interface AutomationService {
  readonly handlers: Record<string, SsmHandler>;
  /**
   * An aws:executeAutomation step of a running execution (runner): starts the secondary execution
   * as StartAutomationExecution does (the same checks, rate control with Targets), naming the
   * step's execution as its parent, and resolves once it (and every child) has ended, or at once
   * (`stepCancelled`) when the step's own execution is cancelled: the secondary keeps running.
   */
  executeAutomation(request: ExecuteAutomationRequest): Promise<ExecuteAutomationResult>;
  /** Waits until every execution started through the API has ended. */
  drain(): Promise<void>;
}

/** The AutomationParameterMap of a value map: every value a list of strings (JSON for the rest). */
function parameterMap(values: Record<string, unknown>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(values)) {
    const list = Array.isArray(v) ? v : [v];
    out[k] = list.map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
  }
  return out;
}

/**
 * An error of an Automation API operation. `__type` is the model's error shape name; the AWS CLI
 * prints it as "An error occurred (<code>) when calling the <Operation> operation: <message>".
 */
function fail(code: string, message: string, statusCode = 400): never {
  throw new AwsErrorReply(code, message, statusCode);
}

/**
 * A MaxConcurrency or MaxErrors value (patterns of the model) for `total` targets. A percentage of
 * the target set: "If you run an automation on 50 resources and set max-errors to 10%, then the
 * system stops running the automation on additional targets when the sixth error is received"
 * (model, MaxErrors): 10% of 50 allows 5, so a percentage is rounded down. For MaxConcurrency the
 * twin rounds down too and runs at least one (local/README.md, assumptions).
 */
export function rateValue(spec: string, total: number): number {
  if (spec.endsWith('%')) return Math.floor((total * Number(spec.slice(0, -1))) / 100);
  return Number(spec);
}

export function createAutomationService(options: AutomationServiceOptions): AutomationService {
  const model: ServiceModel = serviceModel('ssm');
  const clock = options.clock;
  const startSeconds = (options.startDate ?? new Date()).getTime() / 1000;
  const records = new Map<string, ExecutionRecord>();
  /** Newest first (assumption: DescribeAutomationExecutions lists the newest first). */
  const order: string[] = [];

  const epoch = (clockSeconds: number): number => Math.round((startSeconds + clockSeconds) * 1000) / 1000;

  const validate = (operation: string, json: Record<string, unknown>): void => {
    const shape = operationShape(model, operation, 'input') as string;
    const problems = validateShape(model, shape, json);
    if (problems.length > 0) {
      // The service names the member and the constraint; the value itself is never echoed (it may
      // be a key someone pasted).
      const text = problems
        .slice(0, 5)
        .map((p) => `Value at '${p.path}' failed to satisfy constraint: ${p.problem}`)
        .join('; ');
      fail('ValidationException', `${problems.length} validation error${problems.length > 1 ? 's' : ''} detected: ${text}`);
    }
  };

  const register = (rec: ExecutionRecord): void => {
    records.set(rec.id, rec);
    order.unshift(rec.id);
  };

  /** True when the document has an aws:executeAutomation step. */
  const startsExecutions = (document: Record<string, unknown>): boolean =>
    Array.isArray(document.mainSteps) && document.mainSteps.some((st) => (st as { action?: unknown }).action === 'aws:executeAutomation');

  /** Starts one document run in the background; the record follows it. */
  const launch = (rec: ExecutionRecord, document: Record<string, unknown>): Promise<void> => {
    const childHooks: RunAutomationOptions['onStarted'] = (childId, info) => {
      // An execution the run started itself (the cancel path's restore runbook): listed too.
      const child: ExecutionRecord = {
        ...newRecord(info.documentName, parameterMap(info.parameters), []),
        id: childId,
      };
      register(child);
      return {
        liveSteps: child.steps,
        onEnded: (ended) => {
          child.status = ended.status;
          child.endClock = clock.now();
          child.outputs = ended.outputs;
          child.failureMessage = ended.failureMessage;
        },
      };
    };
    return options
      .run({
        document,
        parameters: rec.parameters,
        executionId: rec.id,
        liveSteps: rec.steps,
        stopRequest: rec.stop,
        onEnded: (ended) => {
          rec.status = ended.status;
          rec.endClock = clock.now();
          rec.outputs = ended.outputs;
          rec.failureMessage = ended.failureMessage;
        },
        onStarted: childHooks,
        // A fleet's children, and an execution that starts one (its aws:executeAutomation step's
        // secondary runs alongside it): all on the one clock.
        sharedClock: rec.parentId !== undefined || startsExecutions(document),
      })
      .then(
        () => undefined,
        (err: unknown) => {
          // The runner refused or broke: the execution failed, with its reason.
          rec.status = 'Failed';
          rec.endClock = clock.now();
          rec.failureMessage = `${(err as Error).name}: ${(err as Error).message}`.slice(0, 2000);
        },
      );
  };

  // ---- StartAutomationExecution ----------------------------------------------------------

  const unsupported = ['TargetMaps', 'TargetLocations', 'AlarmConfiguration', 'TargetLocationsURL'];

  async function startAutomationExecution(json: Record<string, unknown>, parentId?: string): Promise<{ AutomationExecutionId: string }> {
    validate('StartAutomationExecution', json);
    for (const m of unsupported) {
      if (json[m] !== undefined) fail('ValidationException', `the twin does not implement ${m} (local/README.md); use Targets`);
    }
    if (json.Mode === 'Interactive') {
      fail('ValidationException', 'the twin runs Mode Auto only: it has no SendAutomationSignal (local/README.md)');
    }
    const name = String(json.DocumentName);
    const document = options.documents[name];
    if (!document) fail('AutomationDefinitionNotFoundException', `An Automation document with the name ${name} was not found.`);
    const version = json.DocumentVersion as string | undefined;
    if (version !== undefined && !['$DEFAULT', '$LATEST', '1'].includes(version)) {
      fail('AutomationDefinitionVersionNotFoundException', `Version ${version} of document ${name} was not found (the twin has version 1).`);
    }
    const parsed = parseDocument(document);
    const given = (json.Parameters ?? {}) as Record<string, string[]>;
    const targets = json.Targets as AutomationTarget[] | undefined;
    const targetParameterName = json.TargetParameterName as string | undefined;
    const tags = ((json.Tags ?? []) as Array<{ Key: string; Value: string }>).map((t) => ({ Key: t.Key, Value: t.Value }));
    // "TargetParameterName ... Required if you specify targets"; "Targets ... Required if you
    // specify TargetParameterName" (model, StartAutomationExecutionRequest).
    const rateControlled = (targets !== undefined && targets.length > 0) || targetParameterName !== undefined;
    if (!rateControlled) {
      for (const m of ['MaxConcurrency', 'MaxErrors']) {
        if (json[m] !== undefined) fail('InvalidAutomationExecutionParametersException', `${m} applies to a rate-controlled execution: give Targets and TargetParameterName`);
      }
      try {
        resolveParameters(parsed, given);
      } catch (e) {
        fail('InvalidAutomationExecutionParametersException', (e as Error).message);
      }
      const rec = newRecord(name, given, tags, parentId !== undefined ? { parentId } : {});
      register(rec);
      rec.done = launch(rec, document);
      return { AutomationExecutionId: rec.id };
    }
    if (!targets || targets.length === 0) fail('InvalidAutomationExecutionParametersException', 'TargetParameterName needs Targets');
    if (targetParameterName === undefined) fail('InvalidAutomationExecutionParametersException', 'Targets needs TargetParameterName');
    if (!(targetParameterName in parsed.parameters)) {
      fail('InvalidAutomationExecutionParametersException', `TargetParameterName ${targetParameterName} is not a parameter of ${name}`);
    }
    if (given[targetParameterName] !== undefined) {
      fail('InvalidAutomationExecutionParametersException', `${targetParameterName} is the TargetParameterName: its values come from Targets`);
    }
    const values = await resolveTargets(targets);
    // Each child's parameters are the request's with the target's value: validated now, so that
    // a bad parameter is refused before anything runs (as for a single execution).
    for (const v of values.slice(0, 1)) {
      try {
        resolveParameters(parsed, { ...given, [targetParameterName]: [v] });
      } catch (e) {
        fail('InvalidAutomationExecutionParametersException', (e as Error).message);
      }
    }
    const parent: ExecutionRecord = {
      ...newRecord(name, given, tags, parentId !== undefined ? { parentId } : {}),
      targets: targets.map((t) => ({ Key: t.Key, Values: [...t.Values] })),
      targetParameterName,
      maxConcurrency: (json.MaxConcurrency as string | undefined) ?? '10',
      maxErrors: (json.MaxErrors as string | undefined) ?? '0',
      resolvedTargets: values,
    };
    register(parent);
    runnerRegistry.set(parent.id, 'InProgress');
    parent.done = runFleet(parent, document, values);
    return { AutomationExecutionId: parent.id };
  }

  function newRecord(documentName: string, parameters: Record<string, string[]>, tags: Array<{ Key: string; Value: string }>, extra: Partial<ExecutionRecord> = {}): ExecutionRecord {
    return {
      id: randomUUID(),
      documentName,
      parameters,
      startClock: clock.now(),
      status: 'InProgress',
      steps: [],
      stepIds: new Map(),
      stop: { cancel: false },
      cancelListeners: [],
      tags,
      done: Promise.resolve(),
      ...extra,
    };
  }

  /**
   * Target keys (model, Target; "Run automations at scale" / "Targets and rate controls"):
   * `tag:<key>` selects instances with that tag and one of the values; `InstanceIds` and
   * `ParameterValues` give the values themselves. ResourceGroup (and resource-groups:*) is not in
   * the twin: refused as InvalidTarget, nothing started.
   */
  async function resolveTargets(targets: readonly AutomationTarget[]): Promise<string[]> {
    const out: string[] = [];
    for (const t of targets) {
      const values = t.Values ?? [];
      if (values.length === 0) fail('InvalidTarget', `Target ${t.Key} has no Values`);
      if (t.Key.startsWith('tag:')) out.push(...(await options.instancesByTag(t.Key.slice(4), values)));
      else if (t.Key === 'InstanceIds' || t.Key === 'ParameterValues') out.push(...values);
      else fail('InvalidTarget', `the twin resolves Targets with Key tag:<key>, InstanceIds or ParameterValues, not ${t.Key}`);
    }
    const unique = [...new Set(out)];
    if (unique.length === 0) fail('InvalidTarget', 'The Targets resolve to no resource');
    return unique;
  }

  /**
   * The parent's scheduler: one child per target. The queue "sends the automation to a single
   * resource, waits for that first invocation to complete, then sends it to two more" and grows
   * exponentially up to MaxConcurrency (running-automations-scale-controls.html); once more than
   * MaxErrors children failed, nothing more starts and the running children complete (model,
   * MaxErrors).
   */
  async function runFleet(parent: ExecutionRecord, document: Record<string, unknown>, values: string[]): Promise<void> {
    const total = values.length;
    const maxConcurrency = Math.max(1, rateValue(parent.maxConcurrency as string, total));
    const allowedErrors = rateValue(parent.maxErrors as string, total);
    let window = 1;
    let failed = 0;
    let next = 0;
    let thresholdExceeded = false;
    const running = new Set<Promise<void>>();
    const children: ExecutionRecord[] = [];
    while (next < total || running.size > 0) {
      while (next < total && running.size < window && !thresholdExceeded && !parent.stop.cancel) {
        const value = values[next++];
        const child = newRecord(parent.documentName, { ...parent.parameters, [parent.targetParameterName as string]: [value] }, [], {
          parentId: parent.id,
          target: value,
        });
        register(child);
        children.push(child);
        const p: Promise<void> = launch(child, document).then(() => {
          running.delete(p);
          if (child.status !== 'Success') failed++;
          if (failed > allowedErrors) thresholdExceeded = true;
          window = Math.min(maxConcurrency, window * 2);
        });
        child.done = p;
        running.add(p);
      }
      if (running.size === 0) break;
      await Promise.race(running);
    }
    parent.endClock = clock.now();
    const anyCancelled = parent.stop.cancel;
    parent.status = anyCancelled ? 'Cancelled' : children.every((c) => c.status === 'Success') && children.length === total ? 'Success' : 'Failed';
    const notStarted = total - children.length;
    const failures = children.filter((c) => c.status !== 'Success');
    if (parent.status !== 'Success') {
      parent.failureMessage =
        `${failures.length} of ${total} target executions did not succeed` +
        (thresholdExceeded ? `; over MaxErrors ${parent.maxErrors}, ${notStarted} target${notStarted === 1 ? ' was' : 's were'} not started` : '') +
        (anyCancelled ? '; cancelled (StopAutomationExecution)' : '');
    }
    runnerRegistry.set(parent.id, parent.status === 'Cancelled' ? 'Cancelled' : parent.status === 'Success' ? 'Success' : 'Failed');
  }

  // ---- reading --------------------------------------------------------------------------

  const statusOf = (rec: ExecutionRecord): Status => (rec.status === 'InProgress' && rec.stop.cancel ? 'Cancelling' : rec.status);

  const stepIdOf = (rec: ExecutionRecord, s: StepResult): string => {
    let id = rec.stepIds.get(s);
    if (!id) {
      id = randomUUID();
      rec.stepIds.set(s, id);
    }
    return id;
  };

  /** A step as the API shows it; the last step of a running execution is still InProgress. */
  const stepView = (rec: ExecutionRecord, s: StepResult, i: number): Record<string, unknown> => {
    const running = !TERMINAL.has(rec.status) && i === rec.steps.length - 1;
    const out: Record<string, unknown> = {
      StepName: s.name,
      Action: s.action,
      StepExecutionId: stepIdOf(rec, s),
      StepStatus: running ? 'InProgress' : s.status,
      ExecutionStartTime: epoch(rec.startClock + s.startedAt),
      MaxAttempts: Math.max(1, s.attempts),
    };
    if (!running) {
      out.ExecutionEndTime = epoch(rec.startClock + s.endedAt);
      const outputs = parameterMap(s.outputs);
      if (Object.keys(outputs).length > 0) out.Outputs = outputs;
      if (s.failureMessage) out.FailureMessage = s.failureMessage;
    }
    return out;
  };

  const common = (rec: ExecutionRecord): Record<string, unknown> => {
    const status = statusOf(rec);
    const out: Record<string, unknown> = {
      AutomationExecutionId: rec.id,
      DocumentName: rec.documentName,
      DocumentVersion: '1',
      AutomationExecutionStatus: status,
      ExecutionStartTime: epoch(rec.startClock),
      Mode: 'Auto',
    };
    if (rec.endClock !== undefined && TERMINAL.has(status)) out.ExecutionEndTime = epoch(rec.endClock);
    if (rec.outputs && Object.keys(rec.outputs).length > 0) out.Outputs = parameterMap(rec.outputs);
    if (rec.failureMessage) out.FailureMessage = rec.failureMessage;
    if (rec.parentId) out.ParentAutomationExecutionId = rec.parentId;
    if (rec.target !== undefined) out.Target = rec.target;
    const last = rec.steps.at(-1);
    if (last && !TERMINAL.has(status)) {
      out.CurrentStepName = last.name;
      out.CurrentAction = last.action;
    }
    if (rec.targetParameterName !== undefined) {
      out.TargetParameterName = rec.targetParameterName;
      out.Targets = rec.targets;
      out.MaxConcurrency = rec.maxConcurrency;
      out.MaxErrors = rec.maxErrors;
      out.ResolvedTargets = { ParameterValues: rec.resolvedTargets ?? [], Truncated: false };
    }
    return out;
  };

  /** An id the registry of the runner knows but the API did not start (twin.runReset): status only. */
  const registryOnly = (id: string): Record<string, unknown> | undefined => {
    const status = runnerRegistry.get(id);
    return status === undefined ? undefined : { AutomationExecutionId: id, AutomationExecutionStatus: status };
  };

  function getAutomationExecution(json: Record<string, unknown>): unknown {
    validate('GetAutomationExecution', json);
    const id = String(json.AutomationExecutionId);
    const rec = records.get(id);
    if (!rec) {
      const known = registryOnly(id);
      if (!known) fail('AutomationExecutionNotFoundException', `Automation execution ${id} was not found`);
      return { AutomationExecution: known };
    }
    const view: Record<string, unknown> = {
      ...common(rec),
      StepExecutions: rec.steps.map((s, i) => stepView(rec, s, i)),
      StepExecutionsTruncated: false,
      Parameters: rec.parameters,
    };
    if (Object.keys(rec.parameters).length === 0) delete view.Parameters;
    const counters = { TotalSteps: rec.steps.length, SuccessSteps: 0, FailedSteps: 0, CancelledSteps: 0, TimedOutSteps: 0 };
    rec.steps.forEach((s, i) => {
      const st = stepView(rec, s, i).StepStatus;
      if (st === 'Success') counters.SuccessSteps++;
      else if (st === 'Failed') counters.FailedSteps++;
      else if (st === 'Cancelled') counters.CancelledSteps++;
      else if (st === 'TimedOut') counters.TimedOutSteps++;
    });
    view.ProgressCounters = counters;
    return { AutomationExecution: view };
  }

  // ---- paging -----------------------------------------------------------------------------

  const page = <T>(items: T[], json: Record<string, unknown>, key: string): Record<string, unknown> => {
    let from = 0;
    if (json.NextToken !== undefined) {
      const m = /^twin-(\d+)$/.exec(Buffer.from(String(json.NextToken), 'base64').toString('utf8'));
      if (!m || Number(m[1]) > items.length) fail('InvalidNextToken', 'The specified token isn\'t valid.');
      from = Number(m[1]);
    }
    // MaxResults: 1 to 50 (model); the twin's default when it is not given is 50 (assumption).
    const max = (json.MaxResults as number | undefined) ?? 50;
    const slice = items.slice(from, from + max);
    const out: Record<string, unknown> = { [key]: slice };
    if (from + max < items.length) out.NextToken = Buffer.from(`twin-${from + max}`).toString('base64');
    return out;
  };

  /** A StartTimeBefore/After value: the console and CLI send ISO 8601 ("2024-01-01T00:00:00Z"). */
  const timeValue = (key: string, v: string): number => {
    const t = Date.parse(v);
    if (Number.isNaN(t)) fail('InvalidFilterValue', `The value of filter ${key} is not a date and time (ISO 8601)`);
    return t / 1000;
  };

  function describeAutomationExecutions(json: Record<string, unknown>): unknown {
    validate('DescribeAutomationExecutions', json);
    const filters = (json.Filters ?? []) as Array<{ Key: string; Values: string[] }>;
    const statuses = model.shapes.AutomationExecutionStatus.enum as readonly string[];
    let list = order.map((id) => records.get(id) as ExecutionRecord);
    for (const f of filters) {
      const vals = f.Values;
      const test = (rec: ExecutionRecord): boolean => {
        const status = statusOf(rec);
        switch (f.Key) {
          case 'DocumentNamePrefix':
            return vals.some((v) => rec.documentName.startsWith(v));
          case 'ExecutionStatus':
            for (const v of vals) if (!statuses.includes(v)) fail('InvalidFilterValue', `${v} is not an AutomationExecutionStatus`);
            return vals.includes(status);
          case 'ExecutionId':
            return vals.includes(rec.id);
          case 'ParentExecutionId':
            return rec.parentId !== undefined && vals.includes(rec.parentId);
          case 'CurrentAction':
            return !TERMINAL.has(status) && vals.includes(rec.steps.at(-1)?.action ?? '');
          case 'StartTimeBefore':
            return vals.some((v) => epoch(rec.startClock) < timeValue(f.Key, v));
          case 'StartTimeAfter':
            return vals.some((v) => epoch(rec.startClock) > timeValue(f.Key, v));
          case 'AutomationType':
            for (const v of vals) if (v !== 'Local' && v !== 'CrossAccount') fail('InvalidFilterValue', `${v} is not an AutomationType`);
            return vals.includes('Local');
          case 'TagKey':
            return rec.tags.some((t) => vals.includes(t.Key));
          // Executions of the twin have no resource group, subtype or OpsItem.
          case 'TargetResourceGroup':
          case 'AutomationSubtype':
          case 'OpsItemId':
            return false;
        }
        return fail('InvalidFilterKey', `${f.Key} is not a filter key`);
      };
      list = list.filter(test);
    }
    const metadata = list.map((rec) => ({ ...common(rec), AutomationType: 'Local' }));
    return page(metadata, json, 'AutomationExecutionMetadataList');
  }

  function describeAutomationStepExecutions(json: Record<string, unknown>): unknown {
    validate('DescribeAutomationStepExecutions', json);
    const id = String(json.AutomationExecutionId);
    const rec = records.get(id);
    if (!rec) fail('AutomationExecutionNotFoundException', `Automation execution ${id} was not found`);
    let steps = rec.steps.map((s, i) => stepView(rec, s, i));
    const statuses = model.shapes.AutomationExecutionStatus.enum as readonly string[];
    for (const f of (json.Filters ?? []) as Array<{ Key: string; Values: string[] }>) {
      const vals = f.Values;
      steps = steps.filter((s) => {
        switch (f.Key) {
          case 'StepName':
            return vals.includes(s.StepName as string);
          case 'Action':
            return vals.includes(s.Action as string);
          case 'StepExecutionId':
            return vals.includes(s.StepExecutionId as string);
          case 'StepExecutionStatus':
            for (const v of vals) if (!statuses.includes(v)) fail('InvalidFilterValue', `${v} is not a step status`);
            return vals.includes(s.StepStatus as string);
          case 'StartTimeBefore':
            return vals.some((v) => (s.ExecutionStartTime as number) < timeValue(f.Key, v));
          case 'StartTimeAfter':
            return vals.some((v) => (s.ExecutionStartTime as number) > timeValue(f.Key, v));
          // The twin runs no aws:loop: no step has a parent step.
          case 'ParentStepExecutionId':
          case 'ParentStepIteration':
          case 'ParentStepIteratorValue':
            return false;
        }
        return fail('InvalidFilterKey', `${f.Key} is not a step filter key`);
      });
    }
    if (json.ReverseOrder === true) steps.reverse();
    return page(steps, json, 'StepExecutions');
  }

  // ---- StopAutomationExecution ----------------------------------------------------------------

  function stopAutomationExecution(json: Record<string, unknown>): unknown {
    validate('StopAutomationExecution', json);
    const id = String(json.AutomationExecutionId);
    const rec = records.get(id);
    if (!rec) {
      if (registryOnly(id)) fail('InvalidAutomationStatusUpdateException', `Execution ${id} was not started through the Automation API of the twin`);
      fail('AutomationExecutionNotFoundException', `Automation execution ${id} was not found`);
    }
    if (TERMINAL.has(rec.status)) fail('InvalidAutomationStatusUpdateException', `Execution ${id} has already ended (${rec.status})`);
    const type = (json.Type as string | undefined) ?? 'Cancel';
    if (type === 'Complete') {
      // AWS documents Complete only as a valid value (API reference); what it does to a running
      // Auto execution is not said. The twin refuses it rather than invent it (local/README.md).
      fail('InvalidAutomationStatusUpdateException', 'The twin does not model StopAutomationExecution Type Complete; use Cancel');
    }
    // Cancel: the next step to start is Cancelled and the document's onCancel path runs, for at
    // most two minutes (runner, CANCEL_PATH_SECONDS); an aws:executeAutomation step that is waiting
    // for its secondary execution is the step cancelled, and its onCancel runs ("onCancel: the step
    // to go to in the event that a user cancels the automation", automation-actions.html). A
    // rate-controlled parent starts no further target.
    // What a cancel does to executions already started (a rate-controlled execution's running
    // targets, the execution an aws:executeAutomation step started) no AWS source says (review P9):
    // the twin leaves them running, the reading the product must survive (local/README.md).
    rec.stop.cancel = true;
    for (const l of rec.cancelListeners.splice(0)) l();
    return {};
  }

  /**
   * aws:executeAutomation (automation-action-executeAutomation.html): its inputs are
   * StartAutomationExecution's (DocumentName, DocumentVersion, RuntimeParameters as Parameters,
   * Targets, TargetParameterName, MaxConcurrency, MaxErrors), and it waits for the execution. The
   * started execution names the step's execution as ParentAutomationExecutionId (local/README.md,
   * assumptions); a rate-controlled one's children name it in turn.
   */
  async function executeAutomation(request: ExecuteAutomationRequest): Promise<ExecuteAutomationResult> {
    const json: Record<string, unknown> = { DocumentName: request.documentName };
    if (request.documentVersion !== undefined) json.DocumentVersion = request.documentVersion;
    if (Object.keys(request.runtimeParameters).length > 0) json.Parameters = parameterMap(request.runtimeParameters);
    if (request.targets !== undefined) json.Targets = request.targets;
    if (request.targetParameterName !== undefined) json.TargetParameterName = request.targetParameterName;
    if (request.maxConcurrency !== undefined) json.MaxConcurrency = request.maxConcurrency;
    if (request.maxErrors !== undefined) json.MaxErrors = request.maxErrors;
    const { AutomationExecutionId: id } = await startAutomationExecution(json, request.parentExecutionId);
    const rec = records.get(id) as ExecutionRecord;
    // The step waits for the secondary execution, unless its own execution is cancelled first (an
    // execution started through this API; one run by twin.runReset cannot be stopped by the API).
    const caller = records.get(request.parentExecutionId);
    const stepCancelled = caller ? new Promise<'cancelled'>((r) => (caller.stop.cancel ? r('cancelled') : caller.cancelListeners.push(() => r('cancelled')))) : undefined;
    const first = await Promise.race([rec.done.then(() => 'ended' as const), ...(stepCancelled ? [stepCancelled] : [])]);
    if (first === 'cancelled' && !TERMINAL.has(rec.status)) {
      return { executionId: id, status: statusOf(rec), outputs: {}, stepCancelled: true };
    }
    return { executionId: id, status: rec.status, outputs: rec.outputs ?? {}, failureMessage: rec.failureMessage };
  }

  return {
    executeAutomation,
    handlers: {
      StartAutomationExecution: (json: Record<string, unknown>) => startAutomationExecution(json),
      GetAutomationExecution: getAutomationExecution,
      DescribeAutomationExecutions: describeAutomationExecutions,
      DescribeAutomationStepExecutions: describeAutomationStepExecutions,
      StopAutomationExecution: stopAutomationExecution,
    },
    async drain() {
      for (;;) {
        const pending = [...records.values()].map((r) => r.done);
        await Promise.all(pending);
        if ([...records.values()].length === pending.length) break;
      }
    },
  };
}
