/**
 * What the twin's clock charges for the work a Lambda handler does (local/latency.ts, `lambdaWork`):
 * each AWS call it makes and the key it generates, with overlap only where the handler's work
 * truly overlaps.
 *
 * - A call that arrives while none of the same function's calls is in flight is serial: it starts
 *   at the clock's now (which already holds everything before it) and ends its figure later.
 * - A call that arrives while another of the same function's calls is still in flight was issued
 *   before the handler saw that call's answer: it starts no later than the latest start among those
 *   in flight (and no earlier than the last answer the handler had), so concurrent calls cost the
 *   longest of them, not the sum. Its answer is taken to come at the clock's now when it is sent
 *   (never earlier than its own end), so whatever another call moved the clock by is not hidden.
 * - A key generation (keys.ts publishes its start on KEYGEN_CHANNEL) runs from the clock's now at its
 *   start; the call that stores the key (PutParameter of the SecureString) starts no earlier than
 *   the generation's end. Work the handler does between the start and that call overlaps it; a
 *   generation followed at once by the call is charged in full, serially. With no start seen, the
 *   generation is charged right before the call, as serial work.
 *
 * With `lambdaWork` off, every figure is 0 and the clock is never moved (the functional tests keep
 * their timings).
 */
import { lambdaCallSeconds, lambdaKeyGenSeconds, latencyModel } from './latency';

export interface ChargeClock {
  now(): number;
  advanceTo(t: number): number;
}

interface Flight {
  /** In-flight calls: token → start. */
  readonly inflight: Map<number, number>;
  /** The latest time at which an answer reached the handler. */
  frontier: number;
  /** The start of the latest key generation not yet stored. */
  keygenStartedAt?: number;
}

export interface ChargedCall {
  readonly token: number;
  readonly start: number;
  readonly end: number;
}

export class LambdaCharger {
  private readonly flights = new Map<string, Flight>();
  private next = 0;

  constructor(private readonly clock: ChargeClock) {}

  private flight(caller: string): Flight {
    let f = this.flights.get(caller);
    if (!f) {
      f = { inflight: new Map(), frontier: 0 };
      this.flights.set(caller, f);
    }
    return f;
  }

  /** keys.ts announced the start of a key generation by `caller` (the function's access key id). */
  keygenStarted(caller: string): void {
    if (!latencyModel().lambdaWork) return;
    this.flight(caller).keygenStartedAt = this.clock.now();
  }

  /**
   * A call of `caller` arrived: charge it and return its token (for `answered`). `generatedKeyType`:
   * the call stores a key the handler generated (rsa, ed25519), so it waits for the generation.
   */
  arrived(caller: string, action: string, generatedKeyType?: string): ChargedCall {
    const f = this.flight(caller);
    const token = ++this.next;
    let start = f.inflight.size > 0 ? Math.max(f.frontier, ...f.inflight.values()) : this.clock.now();
    if (generatedKeyType !== undefined) {
      const keygen = lambdaKeyGenSeconds(generatedKeyType);
      start = f.keygenStartedAt !== undefined ? Math.max(start, f.keygenStartedAt + keygen) : start + keygen;
      f.keygenStartedAt = undefined;
    }
    const end = start + lambdaCallSeconds(action);
    this.clock.advanceTo(end);
    f.inflight.set(token, start);
    return { token, start, end };
  }

  /** The answer to a charged call was sent back to `caller`. */
  answered(caller: string, call: ChargedCall): void {
    const f = this.flight(caller);
    f.inflight.delete(call.token);
    f.frontier = Math.max(f.frontier, call.end, this.clock.now());
  }
}
