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
  /** `aws ssm get-command-invocation …` of the inject command: the full report. */
  readonly fullReport: string;
}

/** One earlier step's `Payload` (a JSON object as a string), parsed; `field` names it in errors. */
function payloadOf(value: unknown, field: string): Record<string, unknown> {
  const text = requireString(value, field, MAX_OUTPUT_CHARS);
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
  const start = payloadOf(o.StartResult, 'StartResult');
  const commandId = requireString(release.CommandId, 'ReleaseResult.CommandId');
  const helperId = requireString(release.HelperInstanceId, 'ReleaseResult.HelperInstanceId');
  return {
    ...base,
    keyParameterName: requireString(inject.KeyParameterName, 'InjectKeyResult.KeyParameterName'),
    fingerprint: requireString(inject.Fingerprint, 'InjectKeyResult.Fingerprint'),
    backupId: requireString(backup.BackupId, 'BackupResult.BackupId'),
    usersChanged: requireString(release.UsersChanged, 'ReleaseResult.UsersChanged', MAX_OUTPUT_CHARS),
    filesChanged: requireString(release.FilesChanged, 'ReleaseResult.FilesChanged', MAX_OUTPUT_CHARS),
    warnings: requireString(start.Warnings, 'StartResult.Warnings', MAX_OUTPUT_CHARS),
    fullReport: `aws ssm get-command-invocation --command-id ${commandId} --instance-id ${helperId}`,
  };
}

export interface SummarizeDeps {
  readonly ec2: EC2Client;
  readonly log: Logger;
}

/** The instance's state now (`unknown` when it cannot be described). */
export async function instanceState(deps: SummarizeDeps, instanceId: string): Promise<string> {
  const state = (await findInstance(deps.ec2, instanceId))?.State?.Name ?? 'unknown';
  deps.log.info('summary', { instanceId, state });
  return state;
}

/** Fields that may be cut to fit, longest first each round. */
const CUTTABLE = ['Warnings', 'FilesChanged', 'UsersChanged'] as const;

/**
 * Cuts the longest of Warnings, FilesChanged and UsersChanged, a little at a time and ending with
 * `…(cut)`, until the JSON of `out` fits `maxChars`. The other fields are short by construction.
 */
export function fitOutput<T extends Record<(typeof CUTTABLE)[number], string>>(out: T, maxChars = MAX_OUTPUT_CHARS): T {
  const fitted = { ...out };
  const marker = '…(cut)';
  while (JSON.stringify(fitted).length > maxChars) {
    const longest = [...CUTTABLE].sort((a, b) => fitted[b].length - fitted[a].length)[0];
    const text = fitted[longest];
    if (text.length <= marker.length) break;
    const base = text.endsWith(marker) ? text.slice(0, -marker.length) : text;
    const over = JSON.stringify(fitted).length - maxChars;
    fitted[longest] = `${base.slice(0, Math.max(0, base.length - Math.max(over, 8)))}${marker}` as T[typeof longest];
  }
  return fitted;
}
