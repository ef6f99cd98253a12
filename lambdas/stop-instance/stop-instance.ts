/**
 * Step `stopInstance`: keep the root volume on termination (DeleteOnTermination=false), then stop
 * the instance if it is running. It does not wait: the runbook waits later, so that the helper is
 * built while the instance stops.
 */
import { ModifyInstanceAttributeCommand, StopInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { describeInstance } from '@common/ec2';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import type { StepInput } from '@common/validation';

export interface StopDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

/** Returns the state the instance was in when this step saw it. */
export async function stopInstance(deps: StopDeps, input: StepInput): Promise<string> {
  const plan = await loadOwnPlan(deps.ssm, input.instanceId, input.executionId);
  const instance = await describeInstance(deps.ec2, input.instanceId);
  const state = instance.State?.Name ?? 'unknown';

  // Protects the root volume for the whole run: once detached and re-attached, a terminate of
  // the instance must never delete it. start-instance puts the original value back.
  await deps.ec2.send(
    new ModifyInstanceAttributeCommand({
      InstanceId: input.instanceId,
      BlockDeviceMappings: [{ DeviceName: plan.instance.rootDeviceName, Ebs: { DeleteOnTermination: false } }],
    }),
  );
  await updatePlan(deps.ssm, input.instanceId, input.executionId, (p) => {
    p.progress.phase = 'stop-requested';
  });
  if (state === 'running' || state === 'pending') {
    await deps.ec2.send(new StopInstancesCommand({ InstanceIds: [input.instanceId] }));
    deps.log.info('stop requested', { instanceId: input.instanceId, previousState: state });
  } else {
    deps.log.info('no stop needed', { instanceId: input.instanceId, previousState: state });
  }
  return state;
}
