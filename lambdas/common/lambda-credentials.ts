/**
 * The credential provider the step Lambdas are bundled with. lib/bundling resolves
 * `@aws-sdk/credential-provider-node` (the SDK clients' default chain) to this module, so the
 * bundles do not carry the profile, SSO, web-identity, IMDS and login providers and the STS and
 * SSO clients they need: about 120 KB and a fifth of a cold start, for sources a Lambda never has.
 *
 * A Lambda function's credentials are its execution role's, given to the process as
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the first source the default
 * chain tries, so the credentials are the same. Where a runtime serves them from a container
 * endpoint instead (AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI, as with SnapStart), that
 * endpoint is used. With neither, the SDK's own error names the missing variables.
 *
 * The SDK client memoizes what this returns, and refreshes it when it expires, as it does for the
 * default chain.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';
import { fromHttp } from '@aws-sdk/credential-provider-http';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from '@smithy/types';

/** What the SDK passes to the default chain; only the logger is used. */
export interface ProviderInit {
  readonly logger?: Logger;
}

/** Same name and shape as the default chain's export, which the SDK clients import. */
export function defaultProvider(init: ProviderInit = {}): AwsCredentialIdentityProvider {
  const logger = init.logger;
  return async (): Promise<AwsCredentialIdentity> => {
    const env = process.env;
    const fromContainer =
      !(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) &&
      Boolean(env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI);
    return fromContainer ? fromHttp({ logger })() : fromEnv({ logger })();
  };
}
