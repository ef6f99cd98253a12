/**
 * Step `startWindows` (issue 15): put DeleteOnTermination back as it was and start the instance,
 * also one that was stopped before the run: the launch agent sets the new Administrator password
 * only at a boot (the runbook's description says so). A stopped instance is stopped again only if
 * the run fails (restore); after a success it runs, and the output says it was stopped before.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { Clock } from '@common/ec2';
import { PlanError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, type Plan } from '@common/plan';
import { putBackAndStart } from '@common/start';
import type { StepInput } from '@common/validation';

export interface WindowsStartDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  /** @default realClock */
  readonly clock?: Clock;
}

export interface WindowsStartResult {
  readonly started: boolean;
  readonly warnings: string[];
}

export async function startWindows(deps: WindowsStartDeps, input: StepInput): Promise<WindowsStartResult> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  if (plan.instance.platform !== 'windows') throw new PlanError(`The plan of ${input.instanceId} is not a Windows target's: startWindows does not run for it`);
  // Always started; the time of the request goes into the plan first (waitForPassword, review W1).
  const outcome = await putBackAndStart(deps, plan, {
    start: true,
    recordStartTime: true,
    notStoppedReason: 'it must be stopped to be started',
    logLine: 'start requested (Windows: the new password is set at this boot)',
  });
  return { started: outcome === 'requested', warnings: windowsWarnings(plan) };
}

/** What changed for the user besides the password. No warning contains ';', the separator. */
export function windowsWarnings(plan: Plan): string[] {
  const w: string[] = [];
  const i = plan.instance;
  if (i.originalState === 'stopped') w.push('the instance was stopped before the run and now runs (the password is set at boot): stop it when done')
  else if (i.publicIpAddress && !i.elasticIp) w.push(`public IP changed (was ${i.publicIpAddress})`);
  if (plan.inputs.allowEphemeralDataLoss) w.push('data on instance-store volumes was lost when the instance stopped');
  return w;
}
