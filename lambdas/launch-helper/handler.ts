/** Step `launchHelper`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { MAX_OUTPUT_CHARS, outputFields } from '@common/outputs';
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
  windowsAmiParameter: requireEnv('WINDOWS_HELPER_AMI_PARAMETER'),
};
const log = createLogger('reset-access-launch-helper');

/**
 * The step's whole Payload is an output value, which Automation caps at MAX_OUTPUT_CHARS: the
 * HelperNetwork text is cut so that the JSON of the result fits.
 */
export function fitOutput(out: LaunchHelperOutput): LaunchHelperOutput {
  const fits = (text: string): boolean => JSON.stringify({ ...out, HelperNetwork: text }).length <= MAX_OUTPUT_CHARS;
  if (fits(out.HelperNetwork)) return out;
  let lo = 0;
  let hi = out.HelperNetwork.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(`${out.HelperNetwork.slice(0, mid)}…`)) lo = mid;
    else hi = mid - 1;
  }
  return { ...out, HelperNetwork: `${out.HelperNetwork.slice(0, lo)}…` };
}

export async function handler(event: unknown): Promise<LaunchHelperOutput> {
  const input = validateStepInput(event);
  const r = await launchHelper({ ec2, ssm, log, config }, input);
  return fitOutput({ HelperInstanceId: r.helperInstanceId, SubnetId: r.subnetId, VpcId: r.vpcId, NetworkCreated: r.networkCreated, HelperNetwork: r.helperNetwork });
}
