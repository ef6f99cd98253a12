/**
 * Following an Automation execution live: GetAutomationExecution + DescribeAutomationStepExecutions
 * every few seconds, one listr2 task per step of the document (in document order), its title the
 * step's state and elapsed time. listr2's default renderer draws them in place on a terminal; its
 * `simple` renderer prints one plain line per change when stdout is not a terminal
 * (fallbackRendererCondition, listr2's default: stdout is not a TTY).
 */
import { GetDocumentCommand, type SSMClient, type StepExecution } from '@aws-sdk/client-ssm';
import { Listr } from 'listr2';

/** The part of listr2's task wrapper a step task uses. */
interface StepTask {
  title: string;
  skip(message?: string): void;
}
import { parse as parseYaml } from 'yaml';
import { formatDuration } from './format';
import { isTerminal, readExecution, type Snapshot } from './execution';

export type RendererChoice = 'auto' | 'plain' | 'silent';

export interface FollowOptions {
  readonly ssm: SSMClient;
  readonly executionId: string;
  /** The document's step names in order; read with GetDocument when not given. */
  readonly stepNames?: string[];
  readonly documentName?: string;
  readonly renderer: RendererChoice;
  readonly intervalMs: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * Called with each snapshot read (awaited before the next poll; what it throws is its own
   * business: it must not throw). `reset` writes the key file from it as soon as the step
   * outputs say the key is in place.
   */
  readonly onSnapshot?: (snap: Snapshot) => Promise<void>;
}

const FAILED_STEP = new Set(['Failed', 'TimedOut', 'Cancelled']);

/** The step names of an Automation document's content (YAML or JSON, `mainSteps[].name`). */
export function stepNamesOf(content: string): string[] {
  const doc = parseYaml(content) as { mainSteps?: { name?: unknown }[] } | null;
  return (doc?.mainSteps ?? []).map((s) => s.name).filter((n): n is string => typeof n === 'string');
}

export async function documentStepNames(ssm: SSMClient, name: string, version?: string): Promise<string[]> {
  const out = await ssm.send(new GetDocumentCommand({ Name: name, ...(version ? { DocumentVersion: version } : {}) }));
  return stepNamesOf(out.Content ?? '');
}

/** A step's title: `name  Status  elapsed` (elapsed so far while it runs). */
export function stepTitle(name: string, s: StepExecution | undefined, nowMs: number): string {
  if (!s) return name;
  const start = s.ExecutionStartTime?.getTime();
  const end = s.ExecutionEndTime?.getTime() ?? (isTerminal(s.StepStatus) ? undefined : nowMs);
  const elapsed = start !== undefined && end !== undefined ? `  ${formatDuration(end - start)}` : '';
  return `${name.padEnd(24)} ${s.StepStatus ?? '?'}${elapsed}`;
}

/** Polls until the execution ends; waiters get each new snapshot. */
class Tracker {
  private latest?: Snapshot;
  private version = 0;
  private error?: unknown;
  private done = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly opts: FollowOptions) {}

  async run(): Promise<Snapshot> {
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    try {
      for (;;) {
        this.latest = await readExecution(this.opts.ssm, this.opts.executionId);
        await this.opts.onSnapshot?.(this.latest);
        this.version++;
        if (isTerminal(this.latest.execution.AutomationExecutionStatus)) break;
        this.wake();
        await sleep(this.opts.intervalMs);
      }
    } catch (err) {
      this.error = err;
    }
    this.done = true;
    this.wake();
    if (this.error) throw this.error;
    return this.latest as Snapshot;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  /** The next snapshot newer than `seen` (or the last one, once the execution ended). */
  async next(seen: number): Promise<{ snap: Snapshot; version: number; done: boolean }> {
    while (!this.done && this.version <= seen) await new Promise<void>((r) => this.waiters.push(r));
    if (this.error) throw this.error;
    return { snap: this.latest as Snapshot, version: this.version, done: this.done };
  }
}

function lastOf(steps: StepExecution[], name: string): StepExecution | undefined {
  for (let i = steps.length - 1; i >= 0; i--) if (steps[i].StepName === name) return steps[i];
  return undefined;
}

/** Follows the execution to its end and returns its last snapshot. */
export async function follow(opts: FollowOptions): Promise<Snapshot> {
  const now = opts.now ?? Date.now;
  const tracker = new Tracker(opts);
  const running = tracker.run();
  const names = opts.stepNames ?? [];
  if (opts.renderer === 'silent' || names.length === 0) {
    if (names.length === 0 && opts.renderer !== 'silent') return followPlain(tracker, running, now);
    return running;
  }
  const live = opts.renderer === 'auto';
  const stepTask = (name: string, index: number) => async (_: unknown, task: StepTask) => {
    let seen = 0;
    let last = '';
    for (;;) {
      const { snap, version, done } = await tracker.next(seen);
      seen = version;
      const mine = lastOf(snap.steps, name);
      if (mine) {
        const title = stepTitle(name, mine, now());
        const terminal = isTerminal(mine.StepStatus);
        // On a terminal, the title follows the clock; piped, a line only when the state changes.
        if (live || terminal || mine.StepStatus !== last) task.title = title;
        last = mine.StepStatus ?? '';
        if (terminal) {
          if (FAILED_STEP.has(mine.StepStatus ?? '')) throw new Error(`${title}${mine.FailureMessage ? `: ${mine.FailureMessage}` : ''}`);
          return;
        }
        continue;
      }
      const later = snap.steps.some((s) => names.indexOf(s.StepName ?? '') > index);
      if (done || later) {
        // On a terminal the skip message takes the title's place (collapseSkips): one line.
        task.skip(live ? `${name.padEnd(24)} not run` : 'not run');
        return;
      }
    }
  };
  const list = new Listr(
    names.map((name, i) => ({ title: name, task: stepTask(name, i) })),
    {
      concurrent: false,
      exitOnError: false,
      registerSignalListeners: false,
      renderer: 'default',
      fallbackRenderer: 'simple',
      ...(live ? {} : { fallbackRendererCondition: true }),
      rendererOptions: { collapseSkips: true, collapseErrors: false, showErrorMessage: true },
      fallbackRendererOptions: {},
    } as ConstructorParameters<typeof Listr>[1],
  );
  const [snap] = await Promise.all([running, list.run().catch(() => undefined)]);
  return snap;
}

/** Without the document's step list: one plain line per step state change. */
async function followPlain(tracker: Tracker, running: Promise<Snapshot>, now: () => number): Promise<Snapshot> {
  const printed = new Map<string, string>();
  let seen = 0;
  for (;;) {
    const { snap, version, done } = await tracker.next(seen);
    seen = version;
    for (const s of snap.steps) {
      const key = s.StepExecutionId ?? s.StepName ?? '';
      if (printed.get(key) !== s.StepStatus) {
        printed.set(key, s.StepStatus ?? '');
        process.stdout.write(`${stepTitle(s.StepName ?? '?', s, now())}\n`);
      }
    }
    if (done) return running;
  }
}
