/** Step `confirmUserData`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { confirmUserData } from './confirm-user-data';

export interface ConfirmUserDataOutput {
  Fingerprint: string;
}

export const OUTPUT_FIELDS = outputFields<ConfirmUserDataOutput>()(['Fingerprint']);

const log = createLogger('reset-access-confirm-user-data');

export async function handler(event: unknown): Promise<ConfirmUserDataOutput> {
  const input = validateStepInput(event);
  return { Fingerprint: (await confirmUserData({ ec2, ssm, log }, input)).fingerprint };
}
