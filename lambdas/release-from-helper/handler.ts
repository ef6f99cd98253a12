/** Step `releaseFromHelper`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinWithin, outputFields } from '@common/outputs';
import { loadOwnPlan } from '@common/plan';
import { validateStepInput } from '@common/validation';
import { releaseFromHelper } from './release-from-helper';

/**
 * The whole result is the step's `Payload` output, at most 512 characters (MAX_OUTPUT_CHARS):
 * long lists are cut with `…(+N more)`. The full JSON report stays in the command's output,
 * `aws ssm get-command-invocation --command-id <CommandId> --instance-id <HelperInstanceId>`.
 */
export interface ReleaseFromHelperOutput {
  UsersChanged: string;
  FilesChanged: string;
  CommandId: string;
  HelperInstanceId: string;
}

export const OUTPUT_FIELDS = outputFields<ReleaseFromHelperOutput>()(['UsersChanged', 'FilesChanged', 'CommandId', 'HelperInstanceId']);

/** Characters for each list: with the ids and the JSON around them, the Payload stays under 512. */
export const USERS_CHANGED_CHARS = 140;
export const FILES_CHANGED_CHARS = 220;

const log = createLogger('reset-access-release-from-helper');

export async function handler(event: unknown): Promise<ReleaseFromHelperOutput> {
  const input = validateStepInput(event);
  const r = await releaseFromHelper({ ec2, ssm, log }, input);
  // The command and helper the report came from, as the plan records them.
  const { created, method } = await loadOwnPlan(ssm, input.instanceId, input.executionId);
  return {
    UsersChanged: joinWithin(r.usersChanged, USERS_CHANGED_CHARS),
    FilesChanged: joinWithin(r.filesChanged, FILES_CHANGED_CHARS),
    CommandId: created.commandId ?? 'none',
    // Online: the command ran on the instance itself.
    HelperInstanceId: method.chosen === 'Online' ? input.instanceId : (created.helperInstanceId ?? 'none'),
  };
}
