/**
 * `ec2-reset-access`: the command line of the ResetAccess runbook (issue 13). Built to
 * cli/dist/main.cjs by `npm run build:cli` (esbuild), which package.json's `bin` names through
 * cli/ec2-reset-access.cjs.
 */
import { Command, CommanderError, Option } from 'commander';
import { backups } from './commands/backups';
import { cancel } from './commands/cancel';
import { reset } from './commands/reset';
import { revoke } from './commands/revoke';
import { selftest } from './commands/selftest';
import { status } from './commands/status';
import { CliError, EXIT, EXIT_CODES_HELP, type ExitCode } from './exit-codes';
import { processIo, type Io } from './io';

function common(cmd: Command): Command {
  return cmd
    .option('--region <region>', 'AWS Region (default: the SDK default chain, AWS_REGION, the profile)')
    .option('--profile <name>', 'shared config/credentials profile (default: AWS_PROFILE, else the default chain)')
    .option('--json', 'print one JSON object on stdout and nothing else there');
}

export function program(io: Io, done: (code: ExitCode) => void): Command {
  const prog = new Command('ec2-reset-access')
    .description('Regain SSH access to an EC2 Linux instance whose key is lost, with the ResetAccess runbook.')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(ec2-reset-access --help for usage and exit codes)')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);

  common(
    prog
      .command('reset')
      .description('reset SSH access to an instance: summary, confirmation, live progress, the key in ~/.ssh and the ssh command')
      .argument('<instance-id>', 'the instance, i-...')
      .option('--public-key <file>', 'your own OpenSSH public key file (.pub); no private key is made or stored')
      .option('--users <list>', 'comma-separated users to get the key (default: the image default user)')
      .addOption(new Option('--key-type <type>', 'type of the generated key').choices(['rsa', 'ed25519']))
      .addOption(new Option('--method <method>', 'how the key gets in (runbook parameter Method)').choices(['Auto', 'Online', 'VolumeSwap', 'UserData']))
      .option('--subnet <subnet>', 'where the helper runs: CreateNewVPC, SelectedInstanceSubnet or a subnet id')
      .addOption(new Option('--backup <method>', 'backup of the root volume').choices(['Snapshot', 'Image', 'None']))
      .option('--helper-instance-type <type>', 'the helper instance type (Nitro)')
      .option('--allow-encrypted-volume', 'accept an encrypted root volume (the runbook default)')
      .option('--no-allow-encrypted-volume', 'refuse an encrypted root volume')
      .option('--allow-ephemeral-data-loss', 'accept instance-store volumes, whose data is lost at stop')
      .option('--document-name <name>', 'the runbook', 'ResetAccess')
      .option('-y, --yes', 'do not ask for confirmation')
      .option('--keep-parameter', 'keep the SecureString with the private key (default: deleted once written to ~/.ssh)')
      .option('--force', 'replace an existing ~/.ssh/reset-access-<instance-id>'),
  ).action(async (id: string, opts) => done(await reset(id, opts, io)));

  common(
    prog
      .command('revoke')
      .description('a leaked key: find (Audit) or take out (Revoke) its public key on every instance, with the RevokeKey runbook; prints the fleet report')
      .argument('[instance-ids...]', 'the instances (at most 25); or --tag, or --resource-group, or --key-pair alone for every instance launched with it')
      .option('--tag <Key=Value>', 'every instance with this tag (Key alone: with the key)')
      .option('--resource-group <name>', 'the EC2 instances of this tag-based resource group (Resource Groups)')
      .option('--key-pair <name>', 'the EC2 key pair whose public key is revoked')
      .option('--fingerprint <SHA256:...>', 'a key to revoke by its OpenSSH SHA256 fingerprint (repeat for more)', (v: string, all: string[] = []) => [...all, v])
      .option('--public-key <file>', 'a key to revoke, its .pub file')
      .option('--replacement <file>', 'a public key (.pub) put where a revoked key was, and for --users')
      .option('--users <list>', 'comma-separated users who get the replacement even where no revoked key was')
      .addOption(new Option('--mode <mode>', 'Audit reports, changes nothing; Revoke removes').choices(['Audit', 'Revoke']).default('Audit'))
      .addOption(new Option('--method <method>', 'how the files are reached (runbook parameter Method)').choices(['Auto', 'Online', 'VolumeSwap']))
      .option('--allow-stop', 'let the volume swap stop running instances whose SSM Agent is not Online')
      .option('--max-concurrency <n>', 'instances at once (number or percentage)')
      .option('--max-errors <n>', 'failed instances before no new one starts (number or percentage)')
      .option('--delete-key-pair', 'delete the --key-pair at the end, only if every instance is clean or cleaned')
      .option('--document-name <name>', 'the fleet runbook', 'RevokeKey')
      .option('-y, --yes', 'do not ask for confirmation (asked for Revoke, --allow-stop, --delete-key-pair)'),
  ).action(async (ids: string[], opts) => done(await revoke(ids, opts, io)));

  common(
    prog
      .command('status')
      .description('an execution, an instance (lock record, lock tags, latest executions), or with no argument every lock left')
      .argument('[execution-id|instance-id]')
      .option('--document-name <name>', 'the runbook', 'ResetAccess'),
  ).action(async (target: string | undefined, opts) => done(await status(target, opts, io)));

  common(
    prog
      .command('cancel')
      .description('cancel an execution and follow the restore execution its cancel path starts')
      .argument('<execution-id>'),
  ).action(async (id: string, opts) => done(await cancel(id, opts, io)));

  common(
    prog
      .command('backups')
      .description('list the backup snapshots and images and the key parameters runs left, with age and size')
      .option('--delete', 'delete them all (after a confirmation)')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (opts) => done(await backups(opts, io)));

  // The self-test (issue 16): a throwaway instance, ResetAccess on it, a login, everything removed.
  common(
    prog
      .command('selftest')
      .description('prove the deployed stack works here: launch a throwaway instance, reset it, log in, remove everything (costs a few cents)')
      .addOption(new Option('--method <method>', 'the runbook parameter Method').choices(['Auto', 'Online', 'VolumeSwap', 'UserData']))
      .option('--subnet <subnet-id>', 'launch in this subnet (default: a temporary VPC and public subnet)')
      .addOption(new Option('--architecture <arch>', 'the instance architecture: t3.micro for x86_64, t4g.micro for arm64').choices(['x86_64', 'arm64']))
      .addOption(new Option('--check <how>', 'how the login is proven (default: ssh where it can work, else run-command)').choices(['ssh', 'run-command']))
      .option('--keep', 'leave everything for inspection and print how to remove it')
      .option('--cleanup <run-id>', 'remove what the self-test run <run-id> left (only what carries its tag)')
      .option('--document-name <name>', 'the runbook', 'ResetAccess')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (opts) => done(await selftest(opts, io)));

  for (const c of prog.commands) c.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err }).addHelpText('after', `\n${EXIT_CODES_HELP}`);
  return prog;
}

/** Runs the CLI on `argv` (without node and the script) and returns the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  try {
    await program(io, (c) => (code = c)).parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    // With --json, an error is one JSON object on stdout too (and its text on stderr).
    const json = argv.includes('--json');
    const fail = (message: string, exitCode: ExitCode): ExitCode => {
      if (json) io.out(`${JSON.stringify({ error: { message, exitCode } })}\n`);
      return exitCode;
    };
    if (err instanceof CommanderError) {
      if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code)) return EXIT.ok;
      return fail(err.message.replace(/^error: /, ''), EXIT.usage);
    }
    if (err instanceof CliError) {
      io.err(`ec2-reset-access: ${err.message}\n`);
      return fail(err.message, err.exitCode);
    }
    // An AWS or network error: its name and message (the SDK never puts a request's values in them).
    const e = err as Error;
    const text = `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
    io.err(`ec2-reset-access: ${text}\n`);
    return fail(text, EXIT.error);
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
