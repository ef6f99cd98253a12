/** Step `attachToHelper`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { attachToHelper } from './attach-to-helper';

export interface AttachToHelperOutput {
  HelperDeviceName: string;
}

export const OUTPUT_FIELDS = outputFields<AttachToHelperOutput>()(['HelperDeviceName']);

const log = createLogger('reset-access-attach-to-helper');

export async function handler(event: unknown): Promise<AttachToHelperOutput> {
  const input = validateStepInput(event);
  return { HelperDeviceName: await attachToHelper({ ec2, ssm, log }, input) };
}
