/**
 * Counting the self-test's own API calls: one SDK v3 middleware per client. The `initialize`
 * step runs once per operation; the `deserialize` step runs once per attempt, inside the retry
 * middleware of the `finalizeRequest` step (the SDK's middleware stack, initialize → serialize →
 * build → finalizeRequest → deserialize: https://aws.amazon.com/blogs/developer/middleware-stack-modular-aws-sdk-js/
 * and https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/middleware.html), so attempts
 * minus operations are the SDK's retries.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';

/** A client's middleware stack (the SDK's MiddlewareStack, as every v3 client exposes it). */
type Stack = EC2Client['middlewareStack'];

export interface OperationCount {
  /** Operations the self-test asked for. */
  calls: number;
  /** HTTP attempts (more than calls when the SDK retried). */
  attempts: number;
  /** Attempts that ended in an error (the service's or the network's). */
  attemptErrors: number;
  /** Operations that failed after the SDK's retries; the error names. */
  failed: number;
  errors: string[];
}

export class CallMeter {
  private readonly ops = new Map<string, OperationCount>();

  private entry(key: string): OperationCount {
    let e = this.ops.get(key);
    if (!e) {
      e = { calls: 0, attempts: 0, attemptErrors: 0, failed: 0, errors: [] };
      this.ops.set(key, e);
    }
    return e;
  }

  /** Adds the two middlewares to a client's stack; `service` names it in the counts (`ec2`, `ssm`, `iam`). */
  instrument(service: string, stack: Stack): void {
    const key = (ctx: { commandName?: string }): string => `${service}:${(ctx.commandName ?? 'Unknown').replace(/Command$/, '')}`;
    stack.add(
      (next, ctx) => async (args) => {
        const e = this.entry(key(ctx));
        e.calls++;
        try {
          return await next(args);
        } catch (err) {
          e.failed++;
          const name = err instanceof Error ? err.name : 'Error';
          if (!e.errors.includes(name)) e.errors.push(name);
          throw err;
        }
      },
      { step: 'initialize', name: 'selftestCallMeter', override: true },
    );
    stack.add(
      (next, ctx) => async (args) => {
        const e = this.entry(key(ctx));
        e.attempts++;
        try {
          const out = await next(args);
          // Below the deserializer this is the raw HTTP response: an error status is a failed attempt.
          const status = (out as { response?: { statusCode?: number } }).response?.statusCode;
          if (status !== undefined && status >= 300) e.attemptErrors++;
          return out;
        } catch (err) {
          e.attemptErrors++;
          throw err;
        }
      },
      { step: 'deserialize', name: 'selftestAttemptMeter', override: true },
    );
  }

  /** A failure the self-test handled itself (its own bounded retry): counted as a failed call. */
  noteHandled(key: string, errorName: string): void {
    const e = this.entry(key);
    if (!e.errors.includes(errorName)) e.errors.push(errorName);
  }

  snapshot(): Record<string, OperationCount> {
    return Object.fromEntries([...this.ops.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, { ...v, errors: [...v.errors] }]));
  }
}
