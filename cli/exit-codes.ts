/**
 * The CLI's exit codes, one meaning each, so that a script can branch on them (STYLE.md item 15:
 * "exit codes that scripts can trust"). Printed by `--help` and listed in README.md.
 */
export const EXIT = {
  /** The command did what it was asked: the reset succeeded, the cancel ended restored, ... */
  ok: 0,
  /** An error the CLI did not expect: an AWS API error, a network error, a bug. */
  error: 1,
  /** Bad arguments or options: nothing was done. */
  usage: 2,
  /** Refused before anything changed: preflight refused, the user declined, or no terminal to ask on. */
  refused: 3,
  /** The run failed (or was cancelled) and restore put the instance back. */
  failedRestored: 4,
  /** The run failed and restore did not finish: the instance needs attention. */
  restoreFailed: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The text `--help` prints after the options. */
export const EXIT_CODES_HELP = [
  'Exit codes:',
  '  0  success',
  '  1  unexpected error (AWS API, network)',
  '  2  usage error: bad arguments, nothing done',
  '  3  refused before anything changed: preflight refused, you declined, or no terminal to confirm on (use --yes)',
  '  4  the run failed or was cancelled, and restore put the instance back',
  '  5  restore failed or did not finish: the instance needs attention',
].join('\n');

/** An error that ends the command with `exitCode` and `message` on stderr (never a secret in it). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A usage error: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}
