import { latencyOf, waitLateness } from '../latency';

/**
 * The twin's virtual clock, in seconds since the execution began.
 *
 * Slow work (a stop, an attach, a command) is not waited for in real time: whoever starts it
 * (the agent in front of moto) calls `schedule(op, ids)`, which records a completion at
 * now + the latency table's figure. A wait step then calls `settle(ids)`, which moves the clock
 * to the latest completion touching those ids. The agent answers Describe* calls from
 * `pending(id)`: while an op is pending at the current time, the resource is still changing.
 *
 * A wait that polls (aws:waitForAwsResourceProperty) calls `settleWait(ids)` instead: it notices
 * the completion at its next poll, so the clock moves past the completion by the mean lateness
 * of a poll, half the poll interval (local/latency.ts, `waitLateness`; 0 unless the latency
 * model charges it). A wait that finds nothing pending has not waited and is charged nothing.
 */

export interface PendingOp {
  readonly op: string;
  readonly resourceIds: readonly string[];
  readonly startedAt: number;
  readonly completesAt: number;
}

export class VirtualClock {
  private t: number;
  private readonly ops: PendingOp[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  /** Moves the clock forward to t; never backwards. Returns the new time. */
  advanceTo(t: number): number {
    if (!Number.isFinite(t)) throw new RangeError(`advanceTo needs a finite time, got ${t}`);
    if (t > this.t) this.t = t;
    return this.t;
  }

  /** Moves the clock forward by s seconds (s ≥ 0). Returns the new time. */
  advanceBy(s: number): number {
    if (!Number.isFinite(s) || s < 0) throw new RangeError(`advanceBy needs a finite s ≥ 0, got ${s}`);
    this.t += s;
    return this.t;
  }

  /** Records slow work started now on these resources; completes after `seconds` (default: the latency table). */
  schedule(op: string, resourceIds: readonly string[], seconds?: number): PendingOp {
    const d = seconds ?? latencyOf(op);
    if (!Number.isFinite(d) || d < 0) throw new RangeError(`schedule(${op}) needs seconds ≥ 0, got ${d}`);
    const entry: PendingOp = { op, resourceIds: [...resourceIds], startedAt: this.t, completesAt: this.t + d };
    this.ops.push(entry);
    return entry;
  }

  /** Operations on this resource that have not completed at the current time. */
  pending(resourceId: string): PendingOp[] {
    return this.ops.filter((o) => o.completesAt > this.t && o.resourceIds.includes(resourceId));
  }

  /** The latest completion time among pending ops touching any of the ids, or undefined. */
  latestCompletion(resourceIds: readonly string[]): number | undefined {
    let latest: number | undefined;
    for (const o of this.ops) {
      if (o.completesAt <= this.t) continue;
      if (!o.resourceIds.some((id) => resourceIds.includes(id))) continue;
      if (latest === undefined || o.completesAt > latest) latest = o.completesAt;
    }
    return latest;
  }

  /** Advances to the latest completion among pending ops touching the ids; returns the new time. */
  settle(resourceIds: readonly string[]): number {
    const latest = this.latestCompletion(resourceIds);
    if (latest !== undefined) this.advanceTo(latest);
    return this.t;
  }

  /**
   * A polling wait on these resources: when work on them is still pending, advances to its latest
   * completion plus `lateness` (default: the latency model's mean poll lateness). Returns the new time.
   */
  settleWait(resourceIds: readonly string[], lateness: number = waitLateness()): number {
    if (!Number.isFinite(lateness) || lateness < 0) throw new RangeError(`settleWait needs a lateness ≥ 0, got ${lateness}`);
    const latest = this.latestCompletion(resourceIds);
    if (latest !== undefined) this.advanceTo(latest + lateness);
    return this.t;
  }

  /** Every op ever scheduled, in order (for reports and tests). */
  history(): readonly PendingOp[] {
    return [...this.ops];
  }
}
