/** Step `confirmUserData`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinWithin, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { confirmUserData } from './confirm-user-data';

/** The fields summarize reads from a ReleaseResult, filled from the instance's own report. */
export interface ConfirmUserDataOutput {
  Fingerprint: string;
  UsersChanged: string;
  FilesChanged: string;
}

export const OUTPUT_FIELDS = outputFields<ConfirmUserDataOutput>()(['Fingerprint', 'UsersChanged', 'FilesChanged']);

const log = createLogger('reset-access-confirm-user-data');

export async function handler(event: unknown): Promise<ConfirmUserDataOutput> {
  const input = validateStepInput(event);
  const out = await confirmUserData({ ec2, ssm, log }, input);
  // Both lists within 200 characters each: the Payload stays under Automation's 512.
  const list = (s: string): string => joinWithin(s ? s.split(',') : [], 200);
  return { Fingerprint: out.fingerprint, UsersChanged: list(out.users), FilesChanged: list(out.files) };
}
