/**
 * Named errors of the step Lambdas. Automation shows a failed step's error type and message, so
 * every message names the problem (and, for a refusal, the way out). No message ever carries key
 * material: callers pass ids, states and field names only.
 */

/** Preflight will not run on this instance as it is. The message names the cause and the way out. */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

/** An input does not match what the runbook accepts. The message names the field. */
export class InvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

/** Another execution that is still going (or unknown) holds the instance's lock. */
export class LockHeldError extends RefusedError {
  constructor(message: string) {
    super(message);
    this.name = 'LockHeldError';
  }
}

/** The plan record is missing, unreadable, or belongs to another execution. */
export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/** A resource is not in the state this step needs (the runbook's wait should have ensured it). */
export class UnexpectedStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnexpectedStateError';
  }
}

/** Work is still under way after the step's time budget; the step is meant to be retried. */
export class NotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotReadyError';
  }
}

/** The inject-key command on the helper failed or reported an error. */
export class InjectionFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InjectionFailedError';
  }
}

/** Restore could not put the root volume back. The message names the volume and its state. */
export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreError';
  }
}

/** The AWS error code of an SDK v3 error (`name`, or `Code` for some EC2 errors), or ''. */
export function awsErrorCode(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; Code?: unknown; code?: unknown };
    for (const v of [e.Code, e.code, e.name]) {
      if (typeof v === 'string' && v !== 'Error') return v;
    }
  }
  return '';
}

/** True when the error's AWS code is one of `codes`. */
export function isAwsError(err: unknown, ...codes: string[]): boolean {
  return codes.includes(awsErrorCode(err));
}
