/**
 * Step `startInstance`: put DeleteOnTermination back as it was, start the instance if it was
 * running, and say what the user should know (warnings).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { Logger } from '@common/log';
import { loadOwnPlan, type Plan } from '@common/plan';
import { putBackAndStart } from '@common/start';
import type { StepInput } from '@common/validation';

export interface StartDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface StartResult {
  readonly started: boolean;
  readonly warnings: string[];
}

export async function startInstance(deps: StartDeps, input: StepInput): Promise<StartResult> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  // Started again only if it was running before the run; one already pending or running counts as started.
  const outcome = await putBackAndStart(deps, plan, {
    start: plan.instance.originalState === 'running',
    notStoppedReason: 'it must be stopped to be started again',
    logLine: 'start requested',
  });
  return { started: outcome !== 'left', warnings: warningsFor(plan) };
}

/** What changed for the user besides the key. No warning may contain ';', the separator. */
export function warningsFor(plan: Plan): string[] {
  const w: string[] = [];
  const i = plan.instance;
  if (i.originalState === 'running' && i.publicIpAddress && !i.elasticIp) {
    w.push(
      `public IP changed (was ${i.publicIpAddress})`,
    );
  }
  if (plan.inputs.allowEphemeralDataLoss) {
    w.push('data on instance-store volumes was lost when the instance stopped');
  }
  // The kept backup is not a warning: BackupId names it, and the description and README say it
  // stays (and is billed) until deleted. Its line would take the room of the lists within 512.
  return w;
}
