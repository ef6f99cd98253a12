/**
 * Step `summarize`: the runbook's outputs. The plan record is gone by now (cleanup released the
 * lock before the instance finished starting), so the results come in the InputPayload from the
 * earlier steps' outputs; the instance's state is read live.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { findInstance } from '@common/ec2';
import type { Logger } from '@common/log';
import { requireObject, requireString, validateStepInput, type StepInput } from '@common/validation';

export interface SummaryInput extends StepInput {
  readonly keyParameterName: string;
  readonly backupId: string;
  readonly usersChanged: string;
  readonly filesChanged: string;
  readonly fingerprint: string;
  readonly warnings: string;
}

export function parseSummaryInput(event: unknown): SummaryInput {
  const base = validateStepInput(event);
  const o = requireObject(event);
  return {
    ...base,
    keyParameterName: requireString(o.KeyParameterName, 'KeyParameterName'),
    backupId: requireString(o.BackupId, 'BackupId'),
    usersChanged: requireString(o.UsersChanged, 'UsersChanged', 4096),
    filesChanged: requireString(o.FilesChanged, 'FilesChanged', 8192),
    fingerprint: requireString(o.Fingerprint, 'Fingerprint'),
    warnings: requireString(o.Warnings, 'Warnings', 4096),
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
