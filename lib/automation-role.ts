import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface AutomationRoleProps {
  /** The step functions the runbook invokes: the role may invoke these and no other. */
  readonly functions: lambda.IFunction[];
}

/**
 * The role Systems Manager Automation assumes to run the runbook (the default of its
 * AutomationAssumeRole parameter). It holds almost nothing itself: it invokes the step
 * functions, which hold the power, and makes the read calls of the wait steps.
 */
export class AutomationRole extends Construct {
  public readonly role: iam.Role;

  public constructor(scope: Construct, id: string, props: AutomationRoleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      description: 'Assumed by Systems Manager Automation to run the ResetAccess runbook',
      // Confused-deputy guard: only Automation executions of this account may assume the role
      // (the conditions AWS documents for an Automation service role).
      assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': `arn:${stack.partition}:ssm:*:${stack.account}:automation-execution/*` },
        },
      }),
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeStepFunctions',
        actions: ['lambda:InvokeFunction'],
        resources: props.functions.map((fn) => fn.functionArn),
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WaitStepReads',
        // The aws:waitForAwsResourceProperty steps. None of these four supports resource-level
        // permissions, so the resource must be '*'.
        actions: [
          'ec2:DescribeInstances',
          'ec2:DescribeVolumes',
          'ssm:DescribeInstanceInformation',
          'ssm:GetCommandInvocation',
        ],
        resources: ['*'],
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'ec2:DescribeInstances, ec2:DescribeVolumes, ssm:DescribeInstanceInformation and ssm:GetCommandInvocation ' +
            'do not support resource-level permissions; they are read-only and are what the wait steps poll.',
          appliesTo: ['Resource::*'],
        },
      ],
      true,
    );
  }
}
