/**
 * `ec2-reset-access revoke`: a leaked key, found (Audit) or taken out (Revoke) on a fleet with the
 * RevokeKey runbook; live progress of the fleet execution, then the fleet report (the parameter
 * gather writes) as a table, one row per instance.
 */
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, StartAutomationExecutionCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { awsErrorName } from '../aws';
import { outputOf, readExecution, type Snapshot } from '../execution';
import { CliError, EXIT, UsageError, type ExitCode } from '../exit-codes';
import { documentStepNames, follow } from '../follow';
import type { CommonOptions, Io } from '../io';
import { needsKeyParameter, parsePublicKeyFile } from '../public-key';
import { PUBLIC_KEY_PATH } from '../../lambdas/common/names';
import { FINGERPRINT_PATTERN, INSTANCE_OUTCOMES } from '../../lambdas/common/revoke';

export interface RevokeOptions extends CommonOptions {
  readonly tag?: string;
  readonly resourceGroup?: string;
  readonly keyPair?: string;
  readonly fingerprint?: string[];
  readonly publicKey?: string;
  readonly replacement?: string;
  readonly users?: string;
  readonly mode?: string;
  readonly method?: string;
  readonly allowStop?: boolean;
  readonly maxConcurrency?: string;
  readonly maxErrors?: string;
  readonly deleteKeyPair?: boolean;
  readonly documentName: string;
  readonly yes?: boolean;
}

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** One instance of the fleet report (lambdas/revoke-gather/revoke-gather.ts, FleetEntry). */
export interface ReportRow {
  instanceId: string;
  outcome: string;
  method?: string;
  found?: number;
  removed?: number;
  added?: number;
  usersWithoutKey?: string;
  caLines?: number;
  authorizedKeysCommand?: boolean;
  reason?: string;
  command?: string;
  execution?: string;
}

export interface FleetReportView {
  executionId: string;
  mode: string;
  keys: string[];
  selection: string;
  counts: Record<string, number>;
  instances: ReportRow[];
  truncated: number;
  keyPair: string;
}

/** Reads a file's one public key line; a line over 512 characters goes through a String parameter. */
function readKeyFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parsePublicKeyFile(text, file);
}

/** The runbook's parameters from the arguments; throws UsageError for what the runbook would refuse. */
export function revokeParameters(instanceIds: string[], o: RevokeOptions, keys: { publicKeyParameter?: string; replacement?: string }): Record<string, string[]> {
  const p: Record<string, string[]> = {};
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined && v !== '') p[k] = [v];
  };
  for (const id of instanceIds) if (!INSTANCE_ID.test(id)) throw new UsageError(`"${id}" is not an instance id (i- and 8 or 17 hex digits)`);
  if (instanceIds.length > 25) throw new UsageError(`${instanceIds.length} instance ids: at most 25 (the runbook's parameter holds 512 characters); use --tag for more`);
  if ([instanceIds.length > 0, o.tag !== undefined, o.resourceGroup !== undefined].filter(Boolean).length > 1) {
    throw new UsageError('choose the instances one way: instance ids, --tag or --resource-group');
  }
  if (o.resourceGroup !== undefined) {
    // A group name as Resource Groups allows it (CreateGroupName; names starting with AWS are reserved).
    if (!/^[a-zA-Z0-9_.-]{1,300}$/.test(o.resourceGroup) || /^aws/i.test(o.resourceGroup)) {
      throw new UsageError('--resource-group must be a resource group name: letters, digits, "_", "." or "-", not starting with AWS');
    }
    put('ResourceGroupName', o.resourceGroup);
  }
  if (instanceIds.length > 0) put('InstanceIds', instanceIds.join(','));
  if (o.tag) {
    const m = /^([^=,|]{1,128})(?:=([^,|]{0,256}))?$/.exec(o.tag);
    if (!m) throw new UsageError('--tag must be Key=Value or Key (no "," or "|")');
    put('TargetTagKey', m[1]);
    put('TargetTagValue', m[2]);
  }
  if (instanceIds.length === 0 && !o.tag && !o.resourceGroup && !o.keyPair) {
    throw new UsageError('choose the instances: instance ids, --tag Key=Value, --resource-group NAME, or --key-pair NAME (every instance launched with it)');
  }
  const fingerprints = o.fingerprint ?? [];
  for (const f of fingerprints) if (!FINGERPRINT_PATTERN.test(f)) throw new UsageError('--fingerprint must be an OpenSSH SHA256 fingerprint (SHA256: and 43 base64 characters: ssh-keygen -lf key.pub)');
  if (fingerprints.length > 10) throw new UsageError('at most 10 --fingerprint (the parameter holds 512 characters); use --public-key for more');
  put('Fingerprints', fingerprints.join(','));
  put('KeyPairName', o.keyPair);
  put('PublicKeyParameter', keys.publicKeyParameter);
  if (!o.keyPair && fingerprints.length === 0 && !keys.publicKeyParameter) throw new UsageError('give the key to revoke: --key-pair, --fingerprint or --public-key');
  put('ReplacementPublicKey', keys.replacement);
  put('Users', o.users);
  put('Mode', o.mode);
  put('Method', o.method);
  if (o.allowStop) put('AllowStop', 'True');
  put('MaxConcurrency', o.maxConcurrency);
  put('MaxErrors', o.maxErrors);
  if (o.deleteKeyPair) {
    if (!o.keyPair) throw new UsageError('--delete-key-pair needs --key-pair');
    if (o.mode !== 'Revoke') throw new UsageError('--delete-key-pair needs --mode Revoke: an audit changes nothing, the key pair included');
    put('DeleteKeyPair', 'True');
  }
  return p;
}

const COLUMNS = ['INSTANCE', 'OUTCOME', 'METHOD', 'FOUND', 'REMOVED', 'ADDED', 'LEFT WITHOUT KEY', 'NOTE'];

/** The fleet report as a plain table (fixed-width columns), then the counts and the key pair. */
export function reportTable(r: FleetReportView): string {
  const rows = r.instances.map((e) => {
    const notes: string[] = [];
    if (e.caLines) notes.push(`${e.caLines} cert-authority line(s)`);
    if (e.authorizedKeysCommand) notes.push('AuthorizedKeysCommand: check it');
    if (e.reason) notes.push(e.reason);
    if (e.command && (e.outcome === 'found' || e.outcome === 'cleaned')) notes.push(`report: command ${e.command}`);
    if (e.execution && (e.outcome === 'unknown' || e.outcome === 'cancelled')) notes.push(`execution ${e.execution}`);
    const n = (v: number | undefined): string => (v === undefined ? '-' : String(v));
    return [e.instanceId, e.outcome, e.method || '-', n(e.found), n(e.removed), n(e.added), e.usersWithoutKey && e.usersWithoutKey !== 'none' ? e.usersWithoutKey : '-', notes.join('; ') || '-'];
  });
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((row) => (i === COLUMNS.length - 1 ? 0 : row[i].length))));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  const c = r.counts;
  const out = [line(COLUMNS), ...rows.map(line)];
  if (r.truncated > 0) out.push(`… ${r.truncated} more instance(s) left out of the report parameter (8 KB): see each child execution's report.Payload`);
  out.push(
    '',
    `${r.instances.length + r.truncated} instance(s) (${r.selection}), mode ${r.mode}: ${INSTANCE_OUTCOMES.map((o) => `${c[o] ?? 0} ${o}`).join(', ')}`,
    `key pair: ${r.keyPair}`,
  );
  return `${out.join('\n')}\n`;
}

/**
 * The exit code of a fleet: 1 when an instance's run was still going when the report was written
 * (`unknown`: its own execution says how it ended); 4 when any instance failed or was cancelled
 * (each such run restores its instance); else 0.
 */
export function fleetExitCode(r: FleetReportView): ExitCode {
  if ((r.counts.unknown ?? 0) > 0) return EXIT.error;
  return (r.counts.failed ?? 0) + (r.counts.cancelled ?? 0) > 0 ? EXIT.failedRestored : EXIT.ok;
}

async function readReport(ssm: SSMClient, snap: Snapshot): Promise<FleetReportView | undefined> {
  const text = outputOf(snap.execution, 'gather.Payload');
  if (!text) return undefined;
  let name: unknown;
  try {
    name = (JSON.parse(text) as { ReportParameter?: unknown }).ReportParameter;
  } catch {
    return undefined;
  }
  if (typeof name !== 'string' || !name.startsWith('/reset-access/revoke/')) return undefined;
  const got = await ssm.send(new GetParameterCommand({ Name: name }));
  try {
    return JSON.parse(got.Parameter?.Value ?? '') as FleetReportView;
  } catch {
    return undefined;
  }
}

export async function revoke(instanceIds: string[], o: RevokeOptions, io: Io): Promise<ExitCode> {
  // Every argument checked before anything is written or started.
  const leaked = o.publicKey !== undefined ? readKeyFile(o.publicKey, '--public-key') : undefined;
  const replacement = o.replacement !== undefined ? readKeyFile(o.replacement, '--replacement') : undefined;
  if (replacement && needsKeyParameter(replacement)) throw new UsageError('--replacement is over 512 characters (an RSA key over 2048 bits): use an ed25519 or ECDSA key');
  const probe = revokeParameters(instanceIds, o, { publicKeyParameter: leaked ? '/reset-access/public-keys/x' : undefined, replacement });
  const mode = o.mode ?? 'Audit';
  const changes = mode === 'Revoke' || o.allowStop || o.deleteKeyPair;
  if (!o.json) {
    io.out(
      `RevokeKey (${o.documentName}), mode ${mode}: ${mode === 'Revoke' ? 'every line holding the key is removed' + (replacement ? ' and the replacement key added' : '') : 'where the key is found is reported, nothing is changed on any disk'}.\n` +
        `${o.allowStop ? 'Running instances without an Online SSM Agent are STOPPED and started again (AllowStop).\n' : 'Running instances without an Online SSM Agent are reported unreachable, never stopped.\n'}` +
        `${o.deleteKeyPair ? `The key pair ${o.keyPair} is deleted at the end if every instance is clean or cleaned.\n` : ''}`,
    );
  }
  if (changes && !o.yes) {
    if (!io.stdinIsTTY) throw new CliError('not starting: stdin is not a terminal, so there is no one to confirm; pass --yes to run without asking', EXIT.refused);
    if (!(await io.confirm(`Start RevokeKey in ${mode} mode?`))) throw new CliError('not starting: you declined', EXIT.refused);
  }

  const { ssm } = io.clients(o);
  let keyParameter: string | undefined;
  try {
    if (leaked) {
      // Always through a parameter: the runbook takes a key line to revoke only that way.
      keyParameter = `/${PUBLIC_KEY_PATH}/cli-revoke-${randomBytes(6).toString('hex')}`;
      await ssm.send(new PutParameterCommand({ Name: keyParameter, Type: 'String', Value: leaked, Overwrite: false, Description: 'ec2-reset-access CLI: a public key to revoke' }));
    }
    const params = { ...probe, ...(keyParameter ? { PublicKeyParameter: [keyParameter] } : {}) };
    const started = await ssm.send(new StartAutomationExecutionCommand({ DocumentName: o.documentName, Parameters: params }));
    const executionId = started.AutomationExecutionId as string;
    if (!o.json) io.out(`Started execution ${executionId} of ${o.documentName} (cancel: ec2-reset-access cancel ${executionId})\n`);
    const stepNames = await documentStepNames(ssm, o.documentName).catch(() => undefined);
    const snap = await follow({ ssm, executionId, stepNames, renderer: o.json ? 'silent' : io.renderer, intervalMs: io.pollMs, now: io.now });
    const final = snap.execution.AutomationExecutionStatus ? snap : await readExecution(ssm, executionId);
    const report = await readReport(ssm, final);
    if (!report) {
      const why = final.execution.FailureMessage ?? 'no fleet report (gather.Payload) in its outputs';
      if (o.json) io.out(`${JSON.stringify({ executionId, status: final.execution.AutomationExecutionStatus, error: why, exitCode: EXIT.error })}\n`);
      else io.err(`ec2-reset-access: execution ${executionId} ended ${final.execution.AutomationExecutionStatus ?? ''}: ${why}\n`);
      // A refusal of resolve (bad input, no instance matched) changed nothing.
      const refused = final.steps.some((s) => s.StepName === 'resolve' && s.StepStatus === 'Failed');
      return refused ? EXIT.refused : EXIT.error;
    }
    const code = fleetExitCode(report);
    if (o.json) io.out(`${JSON.stringify({ executionId, status: final.execution.AutomationExecutionStatus, report, exitCode: code })}\n`);
    else io.out(reportTable(report));
    return code;
  } finally {
    if (keyParameter) {
      try {
        await ssm.send(new DeleteParameterCommand({ Name: keyParameter }));
      } catch (err) {
        io.err(`ec2-reset-access: could not delete ${keyParameter} (${awsErrorName(err) ?? 'error'}): delete it with aws ssm delete-parameter --name ${keyParameter}\n`);
      }
    }
  }
}
