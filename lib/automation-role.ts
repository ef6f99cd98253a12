import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface AutomationRoleProps {
  /** The step functions the runbook invokes: the role may invoke these and no other. */
  readonly functions: lambda.IFunction[];
  /** The restore runbook the cancel path starts: the only document this role may start. */
  readonly restoreDocumentName: string;
  /**
   * The per-instance RevokeKey runbook, which the fleet runbook's fan-out starts
   * (aws:executeAutomation: the child runs as the role it is given, this one).
   * @default - none
   */
  readonly revokeInstanceDocumentName?: string;
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
        // The aws:waitForAwsResourceProperty and aws:executeAwsApi read steps. None of these four
        // supports resource-level permissions, so the resource must be '*'.
        actions: [
          'ec2:DescribeInstances',
          'ec2:DescribeVolumes',
          'ssm:DescribeInstanceInformation',
          'ssm:ListCommandInvocations',
        ],
        resources: ['*'],
      }),
    );
    // The cancel path (startRestore) starts the restore runbook with StartAutomationExecution,
    // and no other document. AWS's example policy for running an automation grants it on the
    // document and on automation-execution/* ("Setting up identity based policies examples",
    // Example 1: docs.aws.amazon.com/systems-manager/latest/userguide/automation-setup-identity-based-policies.html);
    // the Service Authorization Reference names the automation-definition resource
    // (arn:${Partition}:ssm:${Region}:${Account}:automation-definition/${Name}:${VersionId}).
    // All three, the document's for its name only.
    const ssmArn = `arn:${stack.partition}:ssm:${stack.region}:${stack.account}`;
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'StartRestoreRunbook',
        actions: ['ssm:StartAutomationExecution'],
        resources: [
          `${ssmArn}:document/${props.restoreDocumentName}`,
          `${ssmArn}:automation-definition/${props.restoreDocumentName}:*`,
          `${ssmArn}:automation-execution/*`,
        ],
      }),
    );
    if (props.revokeInstanceDocumentName) {
      // The RevokeKey fleet's fan-out (aws:executeAutomation) starts the per-instance runbook, with
      // rate control over a tag target; the same three resources as above, for that document only.
      // Resolving a tag target is Automation's own lookup; tag:GetResources (read-only, no resource-level
      // permissions) is granted in case it is made with this role (local/README.md, assumptions).
      this.role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'StartRevokeInstanceRunbook',
          actions: ['ssm:StartAutomationExecution'],
          resources: [
            `${ssmArn}:document/${props.revokeInstanceDocumentName}`,
            `${ssmArn}:automation-definition/${props.revokeInstanceDocumentName}:*`,
            `${ssmArn}:automation-execution/*`,
          ],
        }),
      );
      this.role.addToPolicy(new iam.PolicyStatement({ sid: 'ResolveTagTargets', actions: ['tag:GetResources'], resources: ['*'] }));
      // ResourceGroupName: the fleet's readGroup step (aws:executeAwsApi) reads the group's query,
      // read-only, on the group the user names at run time (Service Authorization Reference for
      // Resource Groups: GetGroupQuery on the group resource, arn:${Partition}:resource-groups:${Region}:${Account}:group/${GroupName}).
      this.role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'ReadResourceGroupQuery',
          actions: ['resource-groups:GetGroupQuery'],
          resources: [`arn:${stack.partition}:resource-groups:${stack.region}:${stack.account}:group/*`],
        }),
      );
    }
    // The restore execution runs as this role too (its AutomationAssumeRole), so starting it
    // passes this role to Systems Manager: itself, only to ssm.amazonaws.com.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PassSelfToRestore',
        actions: ['iam:PassRole'],
        resources: [this.role.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
      }),
    );
    // The restore runbook waits until the cancelled execution has ended.
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadCancelledExecution',
        actions: ['ssm:GetAutomationExecution'],
        resources: [`arn:${stack.partition}:ssm:${stack.region}:${stack.account}:automation-execution/*`],
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'ec2:DescribeInstances, ec2:DescribeVolumes, ssm:DescribeInstanceInformation and ssm:ListCommandInvocations ' +
            'do not support resource-level permissions; they are read-only and are what the wait and read steps call.',
          appliesTo: ['Resource::*'],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'StartAutomationExecution of the restore runbook, any version of that one document; GetAutomationExecution ' +
            'of the cancelled execution, whose id is known only at run time (read-only).',
          appliesTo: [
            `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-definition/${props.restoreDocumentName}:*`,
            ...(props.revokeInstanceDocumentName
              ? [`Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-definition/${props.revokeInstanceDocumentName}:*`]
              : []),
            'Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-execution/*',
          ],
        },
        ...(props.revokeInstanceDocumentName
          ? [
              {
                id: 'AwsSolutions-IAM5',
                reason: 'RevokeKey by ResourceGroupName: GetGroupQuery (read-only) of the group the user names, known only at run time.',
                appliesTo: ['Resource::arn:<AWS::Partition>:resource-groups:<AWS::Region>:<AWS::AccountId>:group/*'],
              },
            ]
          : []),
      ],
      true,
    );
  }
}
