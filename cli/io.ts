/** What a command needs from its process, passed in so that tests can give their own. */
import * as os from 'os';
import * as readline from 'readline';
import type { Clients, AwsOptions } from './aws';
import { makeClients } from './aws';
import type { RendererChoice } from './follow';

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly stdinIsTTY: boolean;
  /** How progress is drawn when not --json: `auto` (listr2's default renderer on a TTY), `plain`, `silent`. */
  readonly renderer: RendererChoice;
  /** Asks a yes/no question on the terminal; resolves true only for an explicit yes. */
  readonly confirm: (question: string) => Promise<boolean>;
  readonly home: string;
  readonly clients: (opts: AwsOptions) => Clients;
  /** Milliseconds between two polls of an execution. */
  readonly pollMs: number;
  readonly now: () => number;
  /** While following: on Ctrl-C, print `message` and exit 130 (the execution goes on). Returns the undo. */
  readonly onInterrupt?: (message: string) => () => void;
}

export function processIo(): Io {
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    stdinIsTTY: !!process.stdin.isTTY,
    renderer: process.stdout.isTTY ? 'auto' : 'plain',
    confirm: async (question) => {
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
      try {
        // Ctrl-C at the prompt is a keypress readline turns into its 'SIGINT' event; without a
        // listener it only pauses and the process would end with exit 0 (Node readline,
        // https://nodejs.org/api/readline.html#event-sigint). It answers "no" here.
        const answer = await new Promise<string>((resolve) => {
          rl.on('SIGINT', () => {
            process.stderr.write('\n');
            resolve('');
          });
          rl.question(`${question} [y/N] `, resolve);
        });
        return /^(y|yes)$/i.test(answer.trim());
      } finally {
        rl.close();
      }
    },
    home: os.homedir(),
    clients: makeClients,
    // EC2_RESET_ACCESS_POLL_MS: for the local twin, whose clock is virtual; AWS is polled every 3 s.
    pollMs: Number(process.env.EC2_RESET_ACCESS_POLL_MS ?? 3000),
    now: Date.now,
    onInterrupt: (message) => {
      const handler = (): void => {
        process.stderr.write(`\n${message}\n`);
        process.exit(130);
      };
      process.once('SIGINT', handler);
      return () => void process.off('SIGINT', handler);
    },
  };
}

/** Options every command takes. */
export interface CommonOptions extends AwsOptions {
  readonly json?: boolean;
}
