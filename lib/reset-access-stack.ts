import { CfnOutput, Fn, Stack, StackProps } from 'aws-cdk-lib';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { AutomationRole } from './automation-role';
import {
  DEFAULT_DOCUMENT_NAME,
  DEFAULT_REVOKE_DOCUMENT_NAME,
  INJECT_DOCUMENT_SUFFIX,
  REVOKE_COMMAND_DOCUMENT_SUFFIX,
  REVOKE_INSTANCE_DOCUMENT_SUFFIX,
  WINDOWS_DOCUMENT_SUFFIX,
} from './constants';
import { StepFunctions } from './functions';
import { HelperRole } from './helper-role';
import { loadInjectKeyDocument, loadRevokeKeyDocument } from './inject-key-document';
import { ParameterKey } from './key';
import {
  InjectKeyCommandDocument,
  RESTORE_RUNBOOK_FILE,
  REVOKE_FLEET_RUNBOOK_FILE,
  REVOKE_INSTANCE_RUNBOOK_FILE,
  Runbook,
} from './runbook';
import { loadWindowsResetDocument } from './windows-reset-document';

/** The restore runbook the cancel path starts is `<documentName><suffix>`. */
export const RESTORE_DOCUMENT_SUFFIX = '-Restore';

/** SSM document names: letters, digits, `_`, `-`, `.`; 3 to 128 characters; not an AWS prefix. */
const DOCUMENT_NAME = /^[a-zA-Z0-9_.-]{3,128}$/;
const RESERVED_DOCUMENT_PREFIX = /^(aws|amazon|amzn)/i;

export interface ResetAccessStackProps extends StackProps {
  /**
   * The Automation document's name; the Command document is `<documentName>-InjectKey`, the
   * restore runbook `<documentName>-Restore`.
   * @default 'ResetAccess'
   */
  readonly documentName?: string;
  /**
   * The directory holding the Lambda folders.
   * @default - `<repo>/lambdas`
   */
  readonly lambdasDir?: string;
  /**
   * The Automation runbook YAML.
   * @default - `<repo>/runbooks/reset-access.yaml`
   */
  readonly runbookFile?: string;
  /**
   * The inject-key Command document's content.
   * @default - loadInjectKeyDocument()
   */
  readonly injectKeyDocument?: Record<string, unknown>;
  /**
   * The RevokeKey fleet runbook's name; the per-instance runbook is `<revokeDocumentName>-Instance`,
   * the revoke Command document `<revokeDocumentName>-Command`.
   * @default 'RevokeKey'
   */
  readonly revokeDocumentName?: string;
  /**
   * The revoke Command document's content.
   * @default - loadRevokeKeyDocument() (runbooks/revoke-key.yaml with its script inlined)
   */
  readonly revokeKeyDocument?: Record<string, unknown>;
  /**
   * The windows-reset Command document's content (issue 15).
   * @default - loadWindowsResetDocument()
   */
  readonly windowsResetDocument?: Record<string, unknown>;
}


/**
 * Everything ResetAccess deploys: the Automation runbook, the restore runbook its cancel path
 * starts, and its Command document, the 12 step
 * Lambdas, the automation role, the helper's role and instance profile, and the KMS key of the
 * generated private keys. Environment-agnostic: no lookups, synthesizes offline.
 */
export class ResetAccessStack extends Stack {
  public readonly documentName: string;
  public readonly injectDocumentName: string;
  public readonly restoreDocumentName: string;
  public readonly functions: StepFunctions;
  public readonly automationRole: AutomationRole;
  public readonly helper: HelperRole;
  public readonly parameterKey: ParameterKey;
  public readonly runbook: Runbook;
  public readonly restoreRunbook: Runbook;
  public readonly injectDocument: InjectKeyCommandDocument;
  /** RevokeKey (issue 14): the fleet runbook, the per-instance runbook, the revoke Command document. */
  public readonly revokeDocumentName: string;
  public readonly revokeInstanceDocumentName: string;
  public readonly revokeCommandDocumentName: string;
  public readonly revokeRunbook: Runbook;
  public readonly revokeInstanceRunbook: Runbook;
  public readonly revokeDocument: InjectKeyCommandDocument;
  public readonly windowsDocumentName: string;
  /** The Command document the helper runs for a Windows target (issue 15). */
  public readonly windowsDocument: InjectKeyCommandDocument;

  public constructor(scope: Construct, id: string, props: ResetAccessStackProps = {}) {
    super(scope, id, props);
    this.documentName = props.documentName ?? DEFAULT_DOCUMENT_NAME;
    this.injectDocumentName = `${this.documentName}${INJECT_DOCUMENT_SUFFIX}`;
    this.restoreDocumentName = `${this.documentName}${RESTORE_DOCUMENT_SUFFIX}`;
    this.windowsDocumentName = `${this.documentName}${WINDOWS_DOCUMENT_SUFFIX}`;
    this.revokeDocumentName = props.revokeDocumentName ?? DEFAULT_REVOKE_DOCUMENT_NAME;
    this.revokeInstanceDocumentName = `${this.revokeDocumentName}${REVOKE_INSTANCE_DOCUMENT_SUFFIX}`;
    this.revokeCommandDocumentName = `${this.revokeDocumentName}${REVOKE_COMMAND_DOCUMENT_SUFFIX}`;
    for (const name of [
      this.documentName,
      this.injectDocumentName,
      this.restoreDocumentName,
      this.revokeDocumentName,
      this.revokeInstanceDocumentName,
      this.revokeCommandDocumentName,
      this.windowsDocumentName,
    ]) {
      if (!DOCUMENT_NAME.test(name) || RESERVED_DOCUMENT_PREFIX.test(name)) {
        throw new Error(
          `Invalid document name "${name}": use 3 to 128 letters, digits, "_", "-" or "." ` +
            '(the Command document adds "-InjectKey", the restore runbook "-Restore", RevokeKey\'s "-Instance" and "-Command"), not starting with aws, amazon or amzn',
        );
      }
    }

    this.injectDocument = new InjectKeyCommandDocument(this, 'InjectKey', {
      documentName: this.injectDocumentName,
      content: props.injectKeyDocument ?? loadInjectKeyDocument(),
    });
    // Ref of a document is its name: referencing it orders the deployment.
    const injectDocumentName = this.injectDocument.document.ref;
    this.revokeDocument = new InjectKeyCommandDocument(this, 'RevokeKeyCommand', {
      documentName: this.revokeCommandDocumentName,
      content: props.revokeKeyDocument ?? loadRevokeKeyDocument(),
    });
    const revokeDocumentRef = this.revokeDocument.document.ref;
    this.windowsDocument = new InjectKeyCommandDocument(this, 'WindowsReset', {
      documentName: this.windowsDocumentName,
      content: props.windowsResetDocument ?? loadWindowsResetDocument(),
    });
    const windowsDocumentName = this.windowsDocument.document.ref;

    this.parameterKey = new ParameterKey(this, 'ParameterKey', { aliasName: `reset-access/${this.documentName}` });
    this.helper = new HelperRole(this, 'Helper');
    this.functions = new StepFunctions(this, 'Steps', {
      helperInstanceProfile: this.helper.instanceProfile,
      helperRole: this.helper.role,
      parameterKey: this.parameterKey.key,
      injectDocumentName,
      revokeDocumentName: revokeDocumentRef,
      windowsDocumentName,
      lambdasDir: props.lambdasDir,
    });
    this.automationRole = new AutomationRole(this, 'Automation', {
      functions: this.functions.all,
      restoreDocumentName: this.restoreDocumentName,
      revokeInstanceDocumentName: this.revokeInstanceDocumentName,
    });

    const functionArns = Object.fromEntries(this.functions.all.map((fn) => [fn.folder, fn.functionArn]));
    // The restore runbook first: the main runbook's cancel path starts it by name.
    this.restoreRunbook = new Runbook(this, 'RestoreRunbook', {
      documentName: this.restoreDocumentName,
      runbookFile: RESTORE_RUNBOOK_FILE,
      functionArns,
      automationRoleArn: this.automationRole.role.roleArn,
      injectDocumentName,
    });
    this.runbook = new Runbook(this, 'Runbook', {
      documentName: this.documentName,
      runbookFile: props.runbookFile,
      functionArns,
      automationRoleArn: this.automationRole.role.roleArn,
      injectDocumentName,
      windowsDocumentName,
      // Ref of a document is its name: referencing it orders the deployment.
      restoreDocumentName: this.restoreRunbook.document.ref,
    });

    // RevokeKey (issue 14): the per-instance runbook (ResetAccess's steps and functions, its
    // restore runbook for a cancel), then the fleet runbook that fans out to it.
    this.revokeInstanceRunbook = new Runbook(this, 'RevokeInstanceRunbook', {
      documentName: this.revokeInstanceDocumentName,
      runbookFile: REVOKE_INSTANCE_RUNBOOK_FILE,
      functionArns,
      automationRoleArn: this.automationRole.role.roleArn,
      injectDocumentName,
      revokeDocumentName: revokeDocumentRef,
      restoreDocumentName: this.restoreRunbook.document.ref,
    });
    this.revokeRunbook = new Runbook(this, 'RevokeRunbook', {
      documentName: this.revokeDocumentName,
      runbookFile: REVOKE_FLEET_RUNBOOK_FILE,
      functionArns,
      automationRoleArn: this.automationRole.role.roleArn,
      injectDocumentName,
      revokeInstanceDocumentName: this.revokeInstanceRunbook.document.ref,
    });

    const documentRef = this.runbook.document.ref;
    new CfnOutput(this, 'DocumentName', { value: documentRef, description: 'The Automation runbook' });
    new CfnOutput(this, 'AutomationRoleArn', {
      value: this.automationRole.role.roleArn,
      description: 'The role the runbook assumes (the default of AutomationAssumeRole)',
    });
    new CfnOutput(this, 'RestoreDocumentName', {
      value: this.restoreRunbook.document.ref,
      description: 'The restore runbook a cancelled run starts (run it yourself for an execution that did not clean up)',
    });
    new CfnOutput(this, 'InjectKeyDocumentName', { value: injectDocumentName, description: 'The Command document the helper runs' });
    new CfnOutput(this, 'RevokeDocumentName', {
      value: this.revokeRunbook.document.ref,
      description: 'RevokeKey: a leaked key, found and revoked on a fleet (its children run the -Instance runbook)',
    });
    new CfnOutput(this, 'RevokeInstanceDocumentName', { value: this.revokeInstanceRunbook.document.ref, description: 'RevokeKey on one instance' });
    new CfnOutput(this, 'RevokeCommandDocumentName', { value: revokeDocumentRef, description: 'The Command document that finds and revokes keys' });
    new CfnOutput(this, 'RevokeAuditCommand', {
      description: 'Audit every instance launched with a key pair (replace the name): where its public key is, nothing changed',
      value: Fn.sub('aws ssm start-automation-execution --region ${AWS::Region} --document-name ${Doc} --parameters KeyPairName=my-leaked-key', {
        Doc: this.revokeRunbook.document.ref,
      }),
    });
    new CfnOutput(this, 'WindowsResetDocumentName', { value: windowsDocumentName, description: 'The Command document the helper runs for a Windows target' });
    new CfnOutput(this, 'KeyArn', {
      value: this.parameterKey.key.keyArn,
      description: 'The KMS key of the SecureString parameters /ec2rl/openssh/<instance-id>/key',
    });
    new CfnOutput(this, 'StartCommand', {
      description: 'Reset access on one instance (replace the instance id)',
      value: Fn.sub(
        'aws ssm start-automation-execution --region ${AWS::Region} --document-name ${Doc} --parameters InstanceId=i-0123456789abcdef0',
        { Doc: documentRef },
      ),
    });
    new CfnOutput(this, 'FleetCommand', {
      description: 'Reset access on every instance tagged ResetAccess=true, five at a time, stopping at the first error',
      value: Fn.sub(
        'aws ssm start-automation-execution --region ${AWS::Region} --document-name ${Doc} ' +
          '--targets Key=tag:ResetAccess,Values=true --target-parameter-name InstanceId --max-concurrency 5 --max-errors 1',
        { Doc: documentRef },
      ),
    });

    for (const fn of this.functions.all) {
      NagSuppressions.addResourceSuppressions(fn, [
        {
          id: 'AwsSolutions-L1',
          reason:
            'Node.js 22 is the runtime the project pins (an LTS with Lambda support until 2027); the code, its bundles and its ' +
            'tests target it. Moving to a newer runtime is a deliberate change, not an automatic one.',
        },
      ]);
    }
  }
}
