/** Step `reattachRoot`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { reattachRoot } from './reattach-root';

export interface ReattachRootOutput {
  DeviceName: string;
}

export const OUTPUT_FIELDS = outputFields<ReattachRootOutput>()(['DeviceName']);

const log = createLogger('reset-access-reattach-root');

export async function handler(event: unknown): Promise<ReattachRootOutput> {
  const input = validateStepInput(event);
  return { DeviceName: await reattachRoot({ ec2, ssm, log }, input) };
}
