import { RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface ParameterKeyProps {
  /** The alias, without the `alias/` prefix. */
  readonly aliasName: string;
}

/**
 * The KMS key that encrypts the generated private keys (SecureString parameters under
 * /ec2rl/openssh/). Rotation on. Kept when the stack is deleted: the parameters it encrypts
 * outlive the stack, and their owners must still be able to decrypt them.
 */
export class ParameterKey extends Construct {
  public readonly key: kms.Key;

  public constructor(scope: Construct, id: string, props: ParameterKeyProps) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the private keys ResetAccess stores as SecureString parameters under /ec2rl/openssh/',
      enableKeyRotation: true,
      alias: `alias/${props.aliasName}`,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
