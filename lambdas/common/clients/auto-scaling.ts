/**
 * The AutoScalingClient, built once per Lambda container. One module per client: the SDK is external to the
 * bundle, so a Lambda loads only the SDK packages it imports (loading one costs hundreds of
 * milliseconds of cold start). No endpoint is configured: the SDK honours AWS_ENDPOINT_URL (the
 * local twin sets it) and AWS_REGION (Lambda sets it).
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';

export const autoScaling = new AutoScalingClient({});
