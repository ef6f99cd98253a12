/**
 * SDK v3 clients, built once per Lambda container. No endpoint is configured here: the SDK
 * honours AWS_ENDPOINT_URL (the local twin sets it) and AWS_REGION (Lambda sets it).
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SSMClient } from '@aws-sdk/client-ssm';

export const ec2 = new EC2Client({});
export const ssm = new SSMClient({});
export const kms = new KMSClient({});
export const autoScaling = new AutoScalingClient({});

