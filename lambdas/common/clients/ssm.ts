/**
 * The SSMClient, built once per Lambda container. One module per client: the SDK is external to the
 * bundle, so a Lambda loads only the SDK packages it imports (loading one costs hundreds of
 * milliseconds of cold start). No endpoint is configured: the SDK honours AWS_ENDPOINT_URL (the
 * local twin sets it) and AWS_REGION (Lambda sets it).
 */
import { SSMClient } from '@aws-sdk/client-ssm';

export const ssm = new SSMClient({});
