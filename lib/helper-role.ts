import * as iam from 'aws-cdk-lib/aws-iam';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/**
 * The helper instance's role and instance profile: AmazonSSMManagedInstanceCore and nothing
 * else, so the helper can register with Systems Manager and run the inject-key command. It never
 * writes parameters or touches KMS (the Lambda writes the key; the helper only sees the public
 * key).
 */
export class HelperRole extends Construct {
  public readonly role: iam.Role;
  public readonly instanceProfile: iam.InstanceProfile;

  public constructor(scope: Construct, id: string) {
    super(scope, id);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'Temporary ResetAccess helper instance: Systems Manager agent only',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.role });
    NagSuppressions.addResourceSuppressions(this.role, [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          'AmazonSSMManagedInstanceCore is the AWS-maintained minimum for an instance managed by Systems Manager; ' +
          'the helper needs exactly that to run the inject-key command, and nothing more.',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore'],
      },
    ]);
  }
}
