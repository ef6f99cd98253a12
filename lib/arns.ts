import { Aws } from 'aws-cdk-lib';

/**
 * ARNs for IAM statements, written once in two spellings: with CloudFormation pseudo
 * parameters (for the policy) and in cdk-nag's notation (`<AWS::Partition>`, for the
 * `appliesTo` of a suppression), so that a suppression names exactly the resource it covers.
 */
export interface ArnParts {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}

/** Pseudo parameters, resolved by CloudFormation at deploy time. */
export const CFN_PARTS: ArnParts = { partition: Aws.PARTITION, region: Aws.REGION, account: Aws.ACCOUNT_ID };
/** How cdk-nag prints the same pseudo parameters in its findings. */
export const NAG_PARTS: ArnParts = {
  partition: '<AWS::Partition>',
  region: '<AWS::Region>',
  account: '<AWS::AccountId>',
};

/** Builds an ARN from the parts; the same builder serves the policy and the suppression. */
export type ArnBuilder = (p: ArnParts) => string;

/** EC2 resource types whose ARNs carry no account (public or shareable images and snapshots). */
const ACCOUNTLESS_EC2_TYPES = new Set(['image', 'snapshot']);

/** `arn:<partition>:ec2:<region>:<account>:<type>/*` (no account for images and snapshots). */
export function ec2Arn(type: string): ArnBuilder {
  return (p) => `arn:${p.partition}:ec2:${p.region}:${ACCOUNTLESS_EC2_TYPES.has(type) ? '' : p.account}:${type}/*`;
}

/** An SSM parameter ARN under a path (no leading slash), e.g. `reset-access/locks`. */
export function parameterArn(pathWithoutSlash: string): ArnBuilder {
  return (p) => `arn:${p.partition}:ssm:${p.region}:${p.account}:parameter/${pathWithoutSlash}/*`;
}

/** A public SSM parameter (owned by AWS: no account), e.g. the AMI aliases. */
export function publicParameterArn(pathWithoutSlash: string): ArnBuilder {
  return (p) => `arn:${p.partition}:ssm:${p.region}::parameter/${pathWithoutSlash}/*`;
}

/** Any Automation execution of this account and region. */
export const automationExecutionArn: ArnBuilder = (p) =>
  `arn:${p.partition}:ssm:${p.region}:${p.account}:automation-execution/*`;

/** Any KMS key in this region, of any account (an EBS volume may use another account's key). */
export const anyKmsKeyArn: ArnBuilder = (p) => `arn:${p.partition}:kms:${p.region}:*:key/*`;
