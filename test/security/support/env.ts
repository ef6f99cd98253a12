/**
 * Environment the handlers read at module load (docs/architecture.md, "Environment variables").
 * Import this module before any handler.
 */
export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`;
export const INJECT_DOCUMENT_NAME = 'ResetAccessStack-InjectKey-ABC123';
export const HELPER_INSTANCE_PROFILE_ARN = `arn:aws:iam::${ACCOUNT}:instance-profile/ResetAccessHelperProfile`;
export const HELPER_AMI_PARAMETER_PREFIX = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-';

process.env.AWS_REGION = REGION;
process.env.AWS_DEFAULT_REGION = REGION;
process.env.AWS_ACCESS_KEY_ID = 'testing';
process.env.AWS_SECRET_ACCESS_KEY = 'testing';
process.env.KEY_ID = KEY_ARN;
process.env.INJECT_DOCUMENT_NAME = INJECT_DOCUMENT_NAME;
process.env.HELPER_INSTANCE_PROFILE_ARN = HELPER_INSTANCE_PROFILE_ARN;
process.env.HELPER_AMI_PARAMETER_PREFIX = HELPER_AMI_PARAMETER_PREFIX;
export const WINDOWS_HELPER_AMI_PARAMETER = '/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id';
export const WINDOWS_DOCUMENT_NAME = 'ResetAccessStack-WindowsReset-ABC123';
process.env.WINDOWS_HELPER_AMI_PARAMETER = WINDOWS_HELPER_AMI_PARAMETER;
process.env.WINDOWS_DOCUMENT_NAME = WINDOWS_DOCUMENT_NAME;
