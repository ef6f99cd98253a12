/** Step `launchHelper`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { launchHelper, type LaunchConfig } from './launch-helper';

export interface LaunchHelperOutput {
  HelperInstanceId: string;
  SubnetId: string;
  VpcId: string;
  NetworkCreated: boolean;
  /** How the helper reaches Systems Manager: public IP, NAT or other route, or VPC endpoints (with a warning when unverified). */
  HelperNetwork: string;
}

export const OUTPUT_FIELDS = outputFields<LaunchHelperOutput>()(['HelperInstanceId', 'SubnetId', 'VpcId', 'NetworkCreated', 'HelperNetwork']);

const config: LaunchConfig = {
  instanceProfileArn: requireEnv('HELPER_INSTANCE_PROFILE_ARN'),
  amiParameterPrefix: requireEnv('HELPER_AMI_PARAMETER_PREFIX'),
};
const log = createLogger('reset-access-launch-helper');

export async function handler(event: unknown): Promise<LaunchHelperOutput> {
  const input = validateStepInput(event);
  const r = await launchHelper({ ec2, ssm, log, config }, input);
  return { HelperInstanceId: r.helperInstanceId, SubnetId: r.subnetId, VpcId: r.vpcId, NetworkCreated: r.networkCreated, HelperNetwork: r.helperNetwork };
}
