/** Step `releaseFromHelper`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinOrNone, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { releaseFromHelper } from './release-from-helper';

export interface ReleaseFromHelperOutput {
  UsersChanged: string;
  FilesChanged: string;
  Report: string;
}

export const OUTPUT_FIELDS = outputFields<ReleaseFromHelperOutput>()(['UsersChanged', 'FilesChanged', 'Report']);

const log = createLogger('reset-access-release-from-helper');

export async function handler(event: unknown): Promise<ReleaseFromHelperOutput> {
  const input = validateStepInput(event);
  const r = await releaseFromHelper({ ec2, ssm, log }, input);
  return { UsersChanged: joinOrNone(r.usersChanged), FilesChanged: joinOrNone(r.filesChanged), Report: JSON.stringify(r.report) };
}
