/**
 * The AWS clients of one CLI command: the SDK v3 clients with the default credential chain, and
 * `--region` / `--profile` as the AWS CLI takes them. The SDK reads AWS_REGION, AWS_PROFILE and
 * AWS_ENDPOINT_URL itself (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
 * for the endpoint; the client's `profile` option selects the shared-config profile:
 * https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/setting-credentials-node.html).
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';

export interface AwsOptions {
  readonly region?: string;
  readonly profile?: string;
}

export interface Clients {
  readonly ssm: SSMClient;
  readonly ec2: EC2Client;
}

export function makeClients(opts: AwsOptions): Clients {
  const config = {
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
  };
  return { ssm: new SSMClient(config), ec2: new EC2Client(config) };
}

/** The AWS error code (`name`) of `err`, or undefined. */
export function awsErrorName(err: unknown): string | undefined {
  return err instanceof Error && typeof (err as { $metadata?: unknown }).$metadata === 'object' ? err.name : undefined;
}
