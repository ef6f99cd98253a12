/**
 * Step `summarize`: the runbook's result. The plan record is gone by now (cleanup released the
 * lock before the instance finished starting), so the results come from the earlier steps'
 * `Payload` outputs, which the runbook passes whole (AWS documents `Payload` as an output of
 * aws:invokeLambdaFunction, "the JSON representation of the object returned by the Lambda
 * function", and no selector inside it); the instance's state is read live.
 *
 * The result is the step's own `Payload`, the runbook's output: at most 512 characters
 * (AutomationParameterValue, botocore ssm service-2.json), so long lists are cut with a marker and
 * `FullReport` names where the full inject report stays (the command's output).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { findInstance } from '@common/ec2';
import { InvalidInputError } from '@common/errors';
import type { Logger } from '@common/log';
import { MAX_OUTPUT_CHARS } from '@common/outputs';
import { requireObject, requireString, validateStepInput, type StepInput } from '@common/validation';

export interface SummaryInput extends StepInput {
  readonly keyParameterName: string;
  readonly backupId: string;
  readonly usersChanged: string;
  readonly filesChanged: string;
  readonly fingerprint: string;
  readonly warnings: string;
  /**
   * `command <id> on <helper-id>`: the inject command whose output holds the full report
   * (`aws ssm get-command-invocation --command-id <id> --instance-id <helper-id>`).
   */
  readonly fullReport: string;
  /** The method that ran (preflight's Payload: Method). */
  readonly method: string;
  /** Why (preflight's Payload: MethodReason). */
  readonly methodReason: string;
}

/**
 * One earlier step's `Payload`, parsed; `field` names it in errors. AWS documents it as "the JSON
 * representation of the object returned by the Lambda function"
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-lamb.html):
 * a string as the runner gives it, but should Automation hand over the object itself, that is
 * taken too (through its JSON), so that a successful run never fails here on the type alone.
 */
function payloadOf(value: unknown, field: string): Record<string, unknown> {
  const text = requireString(value !== null && typeof value === 'object' && !Array.isArray(value) ? JSON.stringify(value) : value, field, MAX_OUTPUT_CHARS);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new InvalidInputError(`${field} is not the JSON Payload of a step`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidInputError(`${field} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

export function parseSummaryInput(event: unknown): SummaryInput {
  const base = validateStepInput(event);
  const o = requireObject(event);
  const inject = payloadOf(o.InjectKeyResult, 'InjectKeyResult');
  const backup = payloadOf(o.BackupResult, 'BackupResult');
  const release = payloadOf(o.ReleaseResult, 'ReleaseResult');
  // The online path starts nothing (the instance never stopped): no StartResult there.
  const start = o.StartResult === undefined ? { Warnings: '' } : payloadOf(o.StartResult, 'StartResult');
  const preflight = payloadOf(o.PreflightResult, 'PreflightResult');
  // The user data path's ReleaseResult is confirmUserData's: the report came from the instance's
  // own serial console, not from a command.
  const fromConsole = release.CommandId === undefined;
  const commandId = fromConsole ? '' : requireString(release.CommandId, 'ReleaseResult.CommandId');
  const helperId = fromConsole ? '' : requireString(release.HelperInstanceId, 'ReleaseResult.HelperInstanceId');
  return {
    ...base,
    keyParameterName: requireString(inject.KeyParameterName, 'InjectKeyResult.KeyParameterName'),
    fingerprint: requireString(inject.Fingerprint, 'InjectKeyResult.Fingerprint'),
    backupId: requireString(backup.BackupId, 'BackupResult.BackupId'),
    usersChanged: requireString(release.UsersChanged, 'ReleaseResult.UsersChanged', MAX_OUTPUT_CHARS),
    filesChanged: requireString(release.FilesChanged, 'ReleaseResult.FilesChanged', MAX_OUTPUT_CHARS),
    warnings: requireString(start.Warnings, 'StartResult.Warnings', MAX_OUTPUT_CHARS),
    fullReport: fromConsole ? `aws ec2 get-console-output --latest --instance-id ${base.instanceId}` : `command ${commandId} on ${helperId}`,
    method: requireString(preflight.Method, 'PreflightResult.Method'),
    methodReason: requireString(preflight.MethodReason, 'PreflightResult.MethodReason', MAX_OUTPUT_CHARS),
  };
}

export interface SummarizeDeps {
  readonly ec2: EC2Client;
  readonly log: Logger;
}

/** The instance now: its state, and the address to ssh to. */
export interface InstanceView {
  readonly state: string;
  /**
   * `<public IP> (public)`, else `<private IP> (private)`, else `none`: what a user connects to.
   * DescribeInstances returns PublicIpAddress only while the instance has a public address, and a
   * stopped instance has none unless it holds an Elastic IP
   * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html). The IP,
   * not the public DNS name (up to about 60 characters), so that the whole summary keeps its lists
   * within the 512 characters of an output value.
   */
  readonly address: string;
}

/** The instance's state and address now (`unknown` and `none` when it cannot be described). */
export async function instanceView(deps: SummarizeDeps, instanceId: string): Promise<InstanceView> {
  const instance = await findInstance(deps.ec2, instanceId);
  const state = instance?.State?.Name ?? 'unknown';
  const publicAddress = instance?.PublicIpAddress;
  const address = publicAddress ? `${publicAddress} (public)` : instance?.PrivateIpAddress ? `${instance.PrivateIpAddress} (private)` : 'none';
  deps.log.info('summary', { instanceId, state, address });
  return { state, address };
}

/** Warnings are cut first (down to WARNINGS_FLOOR characters), then the longer of the two lists. */
const LISTS = ['FilesChanged', 'UsersChanged'] as const;
/** MethodReason is cut to this before anything else (it is short by construction: preflight's method.ts). */
export const METHOD_REASON_CHARS = 100;
/** MethodReason is cut down to this after Warnings, before the lists. */
const METHOD_REASON_FLOOR = 0;
const WARNINGS_FLOOR = 60;
const MARKER = '…(cut)';

type Cuttable = Record<'Warnings' | (typeof LISTS)[number], string> & { MethodReason?: string };

/** `text` shortened by at least `by` characters (never under `floor`), ending with the marker. */
function cut(text: string, by: number, floor: number): string {
  const base = text.endsWith(MARKER) ? text.slice(0, -MARKER.length) : text;
  return `${base.slice(0, Math.max(floor, base.length - Math.max(by, 8)))}${MARKER}`;
}

/**
 * Cuts Warnings, then the longer of FilesChanged and UsersChanged, then Warnings again, each ending
 * with `…(cut)`, until the JSON of `out` fits `maxChars`. The other fields are short by construction.
 */
export function fitOutput<T extends Cuttable>(out: T, maxChars = MAX_OUTPUT_CHARS): T {
  const fitted = { ...out };
  if (fitted.MethodReason !== undefined && fitted.MethodReason.length > METHOD_REASON_CHARS) {
    fitted.MethodReason = `${fitted.MethodReason.slice(0, METHOD_REASON_CHARS - MARKER.length)}${MARKER}`;
  }
  const over = (): number => JSON.stringify(fitted).length - maxChars;
  for (let guard = 0; over() > 0 && guard < 1000; guard++) {
    if (fitted.Warnings.length > WARNINGS_FLOOR + MARKER.length) {
      fitted.Warnings = cut(fitted.Warnings, over(), WARNINGS_FLOOR) as T['Warnings'];
      continue;
    }
    // Then the method's reason (the method itself is never cut), before the lists: shortened,
    // and left out altogether when even its marker does not fit.
    if (fitted.MethodReason !== undefined && fitted.MethodReason.length > METHOD_REASON_FLOOR + MARKER.length) {
      fitted.MethodReason = cut(fitted.MethodReason, over(), METHOD_REASON_FLOOR);
      continue;
    }
    if (fitted.MethodReason !== undefined) {
      delete fitted.MethodReason;
      continue;
    }
    const longest = [...LISTS].sort((a, b) => fitted[b].length - fitted[a].length)[0];
    if (fitted[longest].length > MARKER.length * 2) {
      fitted[longest] = cut(fitted[longest], over(), 0) as T[typeof longest];
    } else {
      fitted.Warnings = cut(fitted.Warnings, over(), 0) as T['Warnings'];
    }
  }
  return fitted;
}
