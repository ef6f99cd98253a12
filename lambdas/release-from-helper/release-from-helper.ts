/**
 * Step `releaseFromHelper`: read the inject-key command's JSON report (the last line of its
 * standard output), throw if it failed, mark the key injected, detach the volume from the helper.
 */
import { DetachVolumeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { describeVolume, liveAttachment } from '@common/ec2';
import { InjectionFailedError, PlanError } from '@common/errors';
import type { Logger } from '@common/log';
import { loadOwnPlan, updatePlan } from '@common/plan';
import { parseReport, type InjectReport } from '@common/report';
import type { StepInput } from '@common/validation';

export { parseReport };

export interface ReleaseDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

export interface ReleaseResult {
  readonly usersChanged: string[];
  readonly filesChanged: string[];
  readonly report: InjectReport;
}

export async function releaseFromHelper(deps: ReleaseDeps, input: StepInput): Promise<ReleaseResult> {
  const { instanceId, executionId } = input;
  const plan = await loadOwnPlan(deps.ssm, instanceId, executionId);
  const helperId = plan.created.helperInstanceId;
  const commandId = plan.created.commandId;
  if (!helperId || !commandId) throw new PlanError(`The plan of ${instanceId} has no helper or no command: injectKey did not complete`);

  const inv = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: helperId }));
  const report = parseReport(inv.StandardOutputContent);
  if (inv.Status !== 'Success' || report?.status !== 'ok') {
    const why = report?.error ?? (report ? 'the report says error' : 'no JSON report on its standard output');
    throw new InjectionFailedError(
      `The inject-key command ${commandId} on helper ${helperId} ended ${inv.Status ?? 'with no status'}: ${why}. The root volume goes back unchanged by this step.`,
    );
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.keyInjected = true;
  });

  const volumeId = plan.instance.rootVolumeId;
  const attachment = liveAttachment(await describeVolume(deps.ec2, volumeId));
  if (attachment?.instanceId === helperId && attachment.state !== 'detaching') {
    await deps.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: helperId }));
    deps.log.info('detach from helper requested', { volumeId, helperId });
  }
  await updatePlan(deps.ssm, instanceId, executionId, (p) => {
    p.progress.phase = 'released-from-helper';
  });
  const changed = report.changes.filter((c) => c.action !== 'already-present');
  return {
    usersChanged: [...new Set(changed.map((c) => c.user))],
    filesChanged: [...new Set(changed.map((c) => c.file))],
    report,
  };
}
