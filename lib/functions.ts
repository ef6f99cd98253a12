import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  ArnBuilder,
  CFN_PARTS,
  NAG_PARTS,
  anyKmsKeyArn,
  automationExecutionArn,
  ec2Arn,
  parameterArn,
  publicParameterArn,
} from './arns';
import {
  CANONICAL_ACCOUNT_ID,
  HELPER_AMI_PARAMETER_PREFIX,
  WINDOWS_HELPER_AMI_PARAMETER,
  WINDOWS_HELPER_AMI_PATH,
  HELPER_ROLE_TAG_VALUE,
  KEY_PARAMETER_PATH,
  LOCK_PARAMETER_PATH,
  MANAGED_BY_TAG_KEY,
  MANAGED_BY_TAG_VALUE,
  ROLE_TAG_KEY,
  INJECT_KEY_MEMORY_MB,
  STEP_FOLDERS,
  StepFolder,
} from './constants';
import { StepFunction } from './step-function';
import { PUBLIC_KEY_PATH, REVOKE_PATH } from '../lambdas/common/names';
import { USER_DATA_PATH } from '../lambdas/common/user-data-names';
import { LOCK_TAG_KEY, REVOKE_RUN_TAG_KEY } from '../lambdas/common/tags';
import { WINDOWS_PASSWORD_PATH, WINDOWS_RUN_KEY_PATH } from '../lambdas/common/windows';

export interface StepFunctionsProps {
  /** The helper's instance profile: launch-helper passes its role to EC2. */
  readonly helperInstanceProfile: iam.IInstanceProfile;
  /** The helper's role (the only role launch-helper may pass). */
  readonly helperRole: iam.IRole;
  /** Encrypts the SecureString that holds a generated private key. */
  readonly parameterKey: kms.IKey;
  /** Name of the inject-key Command document (a token: its Ref). */
  readonly injectDocumentName: string;
  /** Name of the windows-reset Command document (a token: its Ref). */
  readonly windowsDocumentName: string;
  /**
   * Name of the revoke Command document (a token: its Ref), sent by inject-key for a revoke plan.
   * @default - none: inject-key cannot send a revoke command
   */
  readonly revokeDocumentName?: string;
  /**
   * The directory holding the Lambda folders.
   * @default - `<repo>/lambdas`
   */
  readonly lambdasDir?: string;
}

/** The resource tag condition every mutating call on a created resource carries. */
const MANAGED = { StringEquals: { [`aws:ResourceTag/${MANAGED_BY_TAG_KEY}`]: MANAGED_BY_TAG_VALUE } };
/** The request tag condition every create call carries (tags are given in the create call). */
const TAGGED_AT_CREATION = { StringEquals: { [`aws:RequestTag/${MANAGED_BY_TAG_KEY}`]: MANAGED_BY_TAG_VALUE } };

/**
 * The customer's instance and root volume may be changed only while they carry a run's lock tag
 * (issue 11): preflight adds `reset-access:lock=<execution id>` after it took the lock record, and
 * cleanup and restore remove it last. EC2 evaluates aws:ResourceTag/<key> on the instance and the
 * volume for every action below (Service Authorization Reference, list_amazonec2.html: instance and
 * volume of StopInstances, StartInstances, ModifyInstanceAttribute, AttachVolume, DetachVolume,
 * CreateSnapshot, CreateImage). `Null: false` means "the key is present".
 *
 * What it binds: a resource some run of this product has locked (only preflight can add the key,
 * see LOCK_TAGGING). What it cannot bind: which run. An IAM condition can compare a resource tag
 * with a request tag or a principal tag, never with the Lambda's payload (the ExecutionId); a
 * session tag (sts:AssumeRole with TagSession onto a worker role, ${aws:PrincipalTag/...}) would
 * carry the same ExecutionId the invoker gave the function, so anyone able to invoke a step with a
 * forged ExecutionId could forge the session tag too, at the price of an STS call per step. The
 * binding to this execution is the handlers' (the plan record names the execution, and every step
 * acts only when the plan is its own).
 */
const LOCKED = { Null: { [`aws:ResourceTag/${LOCK_TAG_KEY}`]: 'false' } };
/**
 * Preflight's tagging of the customer's instance and root volume: only the lock key, nothing else
 * in the same call (aws:TagKeys, ForAllValues with the key present: a request without tags would
 * pass ForAllValues on its own), with a value (aws:RequestTag). Tagging examples:
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-taggingresources;
 * ForAllValues with a missing key: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html.
 */
const LOCK_TAGGING = {
  'ForAllValues:StringEquals': { 'aws:TagKeys': [LOCK_TAG_KEY] },
  Null: { 'aws:TagKeys': 'false', [`aws:RequestTag/${LOCK_TAG_KEY}`]: 'false' },
};
/** Cleanup's and restore's untagging: only the lock key, and only where it is (DeleteTags takes aws:TagKeys, SAR). */
const LOCK_UNTAGGING = {
  'ForAllValues:StringEquals': { 'aws:TagKeys': [LOCK_TAG_KEY] },
  Null: { 'aws:TagKeys': 'false', [`aws:ResourceTag/${LOCK_TAG_KEY}`]: 'false' },
};

/** The create calls of launch-helper (network and helper instance). */
const NETWORK_CREATE_ACTIONS = [
  'CreateVpc',
  'CreateSubnet',
  'CreateInternetGateway',
  'CreateRouteTable',
  'CreateSecurityGroup',
  'RunInstances',
];
/** The create calls of backup-and-detach. */
const BACKUP_CREATE_ACTIONS = ['CreateSnapshot', 'CreateImage'];

/** Timeout and memory of each step; every timeout stays below its runbook step's timeoutSeconds. */
const SIZING: Record<StepFolder, { timeout: Duration; memorySize?: number; description: string }> = {
  preflight: { timeout: Duration.seconds(60), description: 'Validate, refuse what is unsafe, take the lock, write the plan' },
  'stop-instance': { timeout: Duration.seconds(60), description: 'Keep the root volume on termination, stop the instance' },
  'launch-helper': { timeout: Duration.seconds(120), description: 'Build the temporary network and launch the helper' },
  'backup-and-detach': { timeout: Duration.seconds(120), description: 'Back up the root volume and detach it' },
  'attach-to-helper': { timeout: Duration.seconds(60), description: 'Attach the root volume to the helper' },
  // RSA 4096 key generation is CPU bound and single-threaded: INJECT_KEY_MEMORY_MB (1,769 MB) is
  // one whole vCPU (lib/constants.ts). Online: also starts the backup (Image: waits up to 60 s,
  // IMAGE_SNAPSHOTS_BUDGET_MS, for its snapshots) and then waits for the command's report up to
  // 120 s (ONLINE_CONFIRM_MS) but never past this timeout less 15 s (CONFIRM_MARGIN_MS, read from
  // the context's remaining time): the step then returns unconfirmed and the runbook's own wait
  // carries on. That wait is billed at this memory too (README, cost).
  'inject-key': { timeout: Duration.seconds(180), memorySize: INJECT_KEY_MEMORY_MB, description: 'Make or take the key, store it, send the inject-key command (online: back up first, read the report)' },
  // Waits up to 180 s for the inject command to end (InvocationDoesNotExist right after SendCommand included).
  'release-from-helper': { timeout: Duration.seconds(240), description: 'Wait for the inject command, read its report, detach the volume from the helper' },
  'reattach-root': { timeout: Duration.seconds(60), description: 'Attach the root volume back at its device name' },
  'start-instance': { timeout: Duration.seconds(60), description: 'Restore DeleteOnTermination, start the instance if it was running' },
  cleanup: { timeout: Duration.seconds(240), description: 'Terminate the helper, delete the network, release the lock' },
  summarize: { timeout: Duration.seconds(60), description: 'Read the final state and return the outputs' },
  restore: { timeout: Duration.seconds(290), description: 'Converge back to the original state from the plan and AWS' },
  // Method=UserData (issue 12). A stand-in key of the run's type is made to measure our user data.
  'save-user-data': { timeout: Duration.seconds(120), memorySize: 1024, description: 'Keep the original user data in a SecureString; check that ours fits' },
  'set-user-data': { timeout: Duration.seconds(120), memorySize: 1024, description: 'Set the user data that adds the key at boot, start the instance' },
  // Polls the console for up to 240 s (CONFIRM_BUDGET_MS).
  'confirm-user-data': { timeout: Duration.seconds(270), description: 'Read the instance\'s report of the key from its serial console' },
  'restore-user-data': { timeout: Duration.seconds(60), description: 'Put the original user data back, delete the saved copy' },
  // RevokeKey (issue 14).
  'revoke-resolve': { timeout: Duration.seconds(120), description: 'RevokeKey: check the inputs, choose the instances, compute the fingerprints, tag the fleet' },
  'revoke-report': { timeout: Duration.seconds(60), description: 'RevokeKey: the per-instance report from the revoke command' },
  'revoke-gather': { timeout: Duration.seconds(240), description: 'RevokeKey: the fleet report, untag, optionally delete the key pair' },
  // Windows targets (issue 15). RSA 2048 generation (NewPassword) takes well under a second at 256 MB.
  'windows-reset': { timeout: Duration.seconds(90), description: 'Windows: make the run key (NewPassword), send the windows-reset command' },
  // Waits up to 180 s for the command to end, as release-from-helper.
  'windows-release': { timeout: Duration.seconds(240), description: 'Windows: read the windows-reset report, detach the volume from the helper' },
  'windows-start': { timeout: Duration.seconds(60), description: 'Windows: restore DeleteOnTermination, start the instance for the password boot' },
  // Polls for up to 240 s (PASSWORD_BUDGET_MS).
  'windows-password': { timeout: Duration.seconds(270), description: 'Windows: wait for the new password, store it (NewPassword)' },
};

/** The memory (MB) a step's function is deployed with; undefined: lib/step-function.ts's default. */
export function stepMemoryMb(folder: StepFolder): number | undefined {
  return SIZING[folder].memorySize;
}

/**
 * Each function's timeout in seconds. The restore runbook waits longer than the longest of them
 * after a cancelled execution ends (runbooks/restore.yaml, waitForLambdasStopped).
 */
export function functionTimeoutSeconds(folder: StepFolder): number {
  return SIZING[folder].timeout.toSeconds();
}

/**
 * One step function's policy, built statement by statement. Every wildcard resource is
 * recorded with the reason it cannot be narrower, and acknowledged to cdk-nag (IAM5) on that
 * function's policy only, naming exactly that resource.
 */
class StepPolicy {
  private readonly suppressions = new Map<string, string>();

  public constructor(private readonly fn: StepFunction) {}

  /** Adds a statement on the given resources (ARN builders or literal '*'). */
  public allow(
    sid: string,
    actions: string[],
    resources: (ArnBuilder | '*')[],
    reason: string,
    conditions?: Record<string, Record<string, unknown>>,
  ): this {
    const arns = resources.map((r) => (r === '*' ? '*' : r(CFN_PARTS)));
    this.fn.addToRolePolicy(new iam.PolicyStatement({ sid, actions, resources: arns, conditions }));
    for (const r of resources) {
      const nag = r === '*' ? '*' : r(NAG_PARTS);
      if (nag.includes('*')) {
        const known = this.suppressions.get(nag);
        this.suppressions.set(nag, known && !known.includes(reason) ? `${known} ${reason}` : reason);
      }
    }
    for (const action of actions) {
      if (action.includes('*')) {
        this.suppressions.set(`Action::${action}`, reason);
      }
    }
    return this;
  }

  /** Adds a statement on concrete resources (tokens), no wildcard. */
  public allowOn(sid: string, actions: string[], resources: string[], conditions?: Record<string, Record<string, unknown>>): this {
    this.fn.addToRolePolicy(new iam.PolicyStatement({ sid, actions, resources, conditions }));
    return this;
  }

  /** Acknowledges the recorded wildcards to cdk-nag, on this function's role only. */
  public acknowledge(): void {
    if (this.suppressions.size === 0) {
      return;
    }
    NagSuppressions.addResourceSuppressions(
      this.fn.role!,
      [...this.suppressions.entries()].map(([appliesTo, reason]) => ({
        id: 'AwsSolutions-IAM5',
        reason,
        appliesTo: [appliesTo.startsWith('Action::') ? appliesTo : `Resource::${appliesTo}`],
      })),
      true,
    );
  }
}

const WHY_DESCRIBE = 'EC2 Describe calls do not support resource-level permissions (read-only).';
const WHY_USER_INSTANCE =
  'The target instance and its root volume are the user\'s, named only at run time; only while they carry a run\'s ' +
  'lock tag (condition aws:ResourceTag/reset-access:lock present), which only preflight adds and cleanup and restore remove.';
const WHY_LOCK_TAG =
  'The target instance and its root volume, named at run time: only the tag key reset-access:lock ' +
  '(conditions aws:TagKeys, aws:RequestTag / aws:ResourceTag).';
const WHY_LOCKS = 'The plan record / lock of any instance: /reset-access/locks/<instance-id>, named at run time.';
const WHY_KEYS = 'The SecureString of any instance: /ec2rl/openssh/<instance-id>/key, named at run time.';
const WHY_TAGGED =
  'Only resources this product created (condition aws:ResourceTag/reset-access:managed-by); their ids are known at run time only.';
const WHY_CREATED =
  'Resources created by the call, tagged in the same call (condition aws:RequestTag/reset-access:managed-by); ids do not exist before.';
const WHY_EBS_KMS =
  'An encrypted root volume (or the helper\'s root under the account\'s default EBS key) may use any key, the user\'s or ' +
  'aws/ebs, named only at run time; only when EC2 uses it on this role\'s behalf (kms:ViaService ec2.<region>), and grants ' +
  'only for AWS resources (kms:GrantIsForAWSResource).';

/** The step Lambdas of docs/architecture.md, each with its own least-privilege policy. */
export class StepFunctions extends Construct {
  /** The functions by Lambda folder. */
  public readonly byFolder: Record<StepFolder, StepFunction>;

  public constructor(scope: Construct, id: string, props: StepFunctionsProps) {
    super(scope, id);
    const fns = {} as Record<StepFolder, StepFunction>;
    for (const folder of STEP_FOLDERS) {
      const sizing = SIZING[folder];
      fns[folder] = new StepFunction(this, toId(folder), {
        folder,
        description: `ResetAccess ${folder}: ${sizing.description}`,
        lambdasDir: props.lambdasDir,
        timeout: sizing.timeout,
        memorySize: sizing.memorySize,
        environment: environmentFor(folder, props),
      });
    }
    this.byFolder = fns;

    const policies = Object.fromEntries(STEP_FOLDERS.map((f) => [f, new StepPolicy(fns[f])])) as Record<StepFolder, StepPolicy>;
    grantPreflight(policies.preflight);
    grantStopInstance(policies['stop-instance']);
    grantLaunchHelper(policies['launch-helper'], props);
    grantBackupAndDetach(policies['backup-and-detach']);
    grantAttachToHelper(policies['attach-to-helper']);
    grantInjectKey(policies['inject-key'], props);
    grantReleaseFromHelper(policies['release-from-helper']);
    grantReattachRoot(policies['reattach-root']);
    grantStartInstance(policies['start-instance']);
    grantCleanup(policies.cleanup);
    grantSummarize(policies.summarize);
    grantRestore(policies.restore, props);
    grantSaveUserData(policies['save-user-data'], props);
    grantSetUserData(policies['set-user-data'], props);
    grantConfirmUserData(policies['confirm-user-data']);
    grantRestoreUserData(policies['restore-user-data'], props);
    grantRevokeResolve(policies['revoke-resolve']);
    grantRevokeReport(policies['revoke-report']);
    grantRevokeGather(policies['revoke-gather']);
    grantWindowsReset(policies['windows-reset'], props);
    grantWindowsRelease(policies['windows-release']);
    grantWindowsStart(policies['windows-start']);
    grantWindowsPassword(policies['windows-password'], props);
    for (const policy of Object.values(policies)) {
      policy.acknowledge();
    }
  }

  /** All the functions, in runbook order. */
  public get all(): StepFunction[] {
    return STEP_FOLDERS.map((f) => this.byFolder[f]);
  }
}

function toId(folder: string): string {
  return folder
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

function environmentFor(folder: StepFolder, props: StepFunctionsProps): Record<string, string> {
  switch (folder) {
    case 'launch-helper':
      return {
        HELPER_INSTANCE_PROFILE_ARN: props.helperInstanceProfile.instanceProfileArn,
        HELPER_AMI_PARAMETER_PREFIX,
        WINDOWS_HELPER_AMI_PARAMETER,
      };
    case 'inject-key':
      return {
        KEY_ID: props.parameterKey.keyArn,
        INJECT_DOCUMENT_NAME: props.injectDocumentName,
        ...(props.revokeDocumentName ? { REVOKE_DOCUMENT_NAME: props.revokeDocumentName } : {}),
      };
    case 'save-user-data':
    case 'set-user-data':
      return { KEY_ID: props.parameterKey.keyArn, INJECT_DOCUMENT_NAME: props.injectDocumentName };
    case 'windows-reset':
      return { KEY_ID: props.parameterKey.keyArn, WINDOWS_DOCUMENT_NAME: props.windowsDocumentName };
    // A Windows run's writes are undone with the same document, Mode=Revert (review W2).
    case 'restore':
      return { WINDOWS_DOCUMENT_NAME: props.windowsDocumentName };
    case 'windows-password':
      return { KEY_ID: props.parameterKey.keyArn };
    default:
      return {};
  }
}

// ---- building blocks -------------------------------------------------------------------------

function describe(p: StepPolicy, actions: string[]): StepPolicy {
  return p.allow('Describe', actions.map((a) => `ec2:${a}`), ['*'], WHY_DESCRIBE);
}

function locks(p: StepPolicy, actions: ('GetParameter' | 'PutParameter' | 'DeleteParameter')[]): StepPolicy {
  return p.allow('PlanRecord', actions.map((a) => `ssm:${a}`), [parameterArn(LOCK_PARAMETER_PATH)], WHY_LOCKS);
}

/**
 * The KMS permissions AWS lists for using EBS encryption ("Permissions for users",
 * https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html): kms:CreateGrant,
 * kms:Decrypt, kms:DescribeKey, kms:GenerateDataKeyWithoutPlainText and kms:ReEncrypt. "ReEncrypt" is
 * granted as its two IAM actions, kms:ReEncryptFrom and kms:ReEncryptTo (Service Authorization
 * Reference, https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html),
 * because no policy here uses an action wildcard.
 */
export const EBS_ENCRYPTION_KMS_ACTIONS = [
  'kms:CreateGrant',
  'kms:Decrypt',
  'kms:DescribeKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
] as const;

/**
 * The EC2 calls of ours after which EC2 uses the key of an encrypted volume with the caller's
 * permissions: attaching an encrypted volume and starting an instance with one (EC2 creates a grant
 * and decrypts the volume's data key: https://docs.aws.amazon.com/ebs/latest/userguide/how-ebs-encryption-works.html),
 * launching with an encrypted root (GenerateDataKeyWithoutPlaintext, CreateGrant, Decrypt in the
 * RunInstances example, https://docs.aws.amazon.com/kms/latest/developerguide/ct-ec2two.html), and
 * backing up an encrypted volume (CreateSnapshot, CreateImage: no AWS page says these need none of
 * the permissions above, so they get them too rather than depend on that).
 */
export const EBS_KMS_TRIGGERS = ['ec2:AttachVolume', 'ec2:StartInstances', 'ec2:RunInstances', 'ec2:CreateSnapshot', 'ec2:CreateImage'] as const;

/**
 * The EBS encryption permissions, on any key (the volume's key is the user's choice, of any account),
 * only when EC2 makes the request on this role's behalf: kms:ViaService ec2.<region>.amazonaws.com
 * (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service),
 * and CreateGrant only for AWS resources (kms:GrantIsForAWSResource, the Tip of the EBS requirements
 * page above). A role holding these cannot decrypt anything itself: a direct call carries no
 * kms:ViaService, and a SecureString's decryption comes through ssm, not ec2.
 */
function ebsEncryption(p: StepPolicy): StepPolicy {
  const viaEc2 = { 'kms:ViaService': `ec2.${CFN_PARTS.region}.amazonaws.com` };
  const [grant, ...use] = EBS_ENCRYPTION_KMS_ACTIONS;
  p.allow('EbsEncryptionKeyUse', [...use], [anyKmsKeyArn], WHY_EBS_KMS, { StringEquals: viaEc2 });
  return p.allow('EbsEncryptionGrant', [grant], [anyKmsKeyArn], WHY_EBS_KMS, {
    StringEquals: viaEc2,
    Bool: { 'kms:GrantIsForAWSResource': 'true' },
  });
}

/** Attach or detach: the user's volume, and an instance (the user's, or only our helper). */
function volumeMove(p: StepPolicy, sid: string, action: 'AttachVolume' | 'DetachVolume', helperOnly: boolean): StepPolicy {
  p.allow(`${sid}Volume`, [`ec2:${action}`], [ec2Arn('volume')], WHY_USER_INSTANCE, LOCKED);
  if (helperOnly) {
    // The instance side is the helper, which we tagged: the volume can only move to or from it.
    return p.allow(`${sid}Helper`, [`ec2:${action}`], [ec2Arn('instance')], WHY_TAGGED, MANAGED);
  }
  return p.allow(`${sid}Instance`, [`ec2:${action}`], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
}

/** ec2:CreateTags, only as part of the named create calls (tags given in the create call). */
function tagOnCreate(p: StepPolicy, createActions: string[], types: string[]): StepPolicy {
  return p.allow('TagOnCreate', ['ec2:CreateTags'], types.map(ec2Arn), WHY_CREATED, {
    StringEquals: { 'ec2:CreateAction': createActions },
  });
}

// ---- per step --------------------------------------------------------------------------------

function grantPreflight(p: StepPolicy): void {
  // Method=Auto/Online: is the instance a managed node, Online, Linux, with a recent enough agent?
  p.allow('ManagedInstanceInfo', ['ssm:DescribeInstanceInformation'], ['*'], 'ssm:DescribeInstanceInformation does not support resource-level permissions (read-only).');
  describe(p, [
    'DescribeInstances',
    'DescribeVolumes',
    'DescribeInstanceAttribute',
    'DescribeInstanceTypes',
    'DescribeSubnets',
    'DescribeAddresses',
    'DescribeSpotInstanceRequests',
    // RevokeKey-Instance run alone with KeyPairName: its public key (read-only).
    'DescribeKeyPairs',
  ]);
  p.allow(
    'AutoScalingMembership',
    ['autoscaling:DescribeAutoScalingInstances'],
    ['*'],
    'autoscaling:DescribeAutoScalingInstances does not support resource-level permissions (read-only).',
  );
  // Refuse an encrypted root whose key is not enabled: the key may be anyone's.
  p.allow('RootVolumeKey', ['kms:DescribeKey'], [anyKmsKeyArn], 'The encrypted root volume\'s key is the user\'s, named only at run time (read-only).');
  // Lock take-over: is the execution that holds the lock finished?
  p.allow('LockHolderStatus', ['ssm:GetAutomationExecution'], [automationExecutionArn], 'The execution holding a lock is named only in the lock (read-only).');
  locks(p, ['GetParameter', 'PutParameter', 'DeleteParameter']);
  // PublicKeyParameter: a user's long public key line, read only under its own path (issue 10, defect 8).
  p.allow('PublicKeyParameter', ['ssm:GetParameter'], [parameterArn(PUBLIC_KEY_PATH)], 'A public key line the user stored for the run (read-only, one path).');
  // The run's lock tag on the instance and its root volume: the only tagging of the customer's
  // resources, the one that starts a run (and its undoing when tagging fails half-way).
  p.allow('LockTag', ['ec2:CreateTags'], [ec2Arn('instance'), ec2Arn('volume')], WHY_LOCK_TAG, LOCK_TAGGING);
  lockUntag(p);
  // RevokeKey-Instance as a fleet's child reads the fleet's spec (RevokeSpec).
  revokeSpecRead(p);
}

/** ec2:DeleteTags of the lock key only, where it is (cleanup, restore; preflight's undo). */
function lockUntag(p: StepPolicy): StepPolicy {
  return p.allow('LockUntag', ['ec2:DeleteTags'], [ec2Arn('instance'), ec2Arn('volume')], WHY_LOCK_TAG, LOCK_UNTAGGING);
}

/**
 * ModifyInstanceAttribute (DeleteOnTermination of the root volume): the SAR lists instance
 * (required) and volume (optional) for the action, and no page we found says which request
 * parameters bring the volume in; both are granted under the lock tag, which both carry
 * (local/README.md, assumptions).
 */
function modifyTarget(p: StepPolicy, sid: string, actions: string[]): StepPolicy {
  p.allow(sid, actions, [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  return p.allow(`${sid}RootVolume`, ['ec2:ModifyInstanceAttribute'], [ec2Arn('volume')], WHY_USER_INSTANCE, LOCKED);
}

function grantStopInstance(p: StepPolicy): void {
  describe(p, ['DescribeInstances']);
  modifyTarget(p, 'StopTarget', ['ec2:ModifyInstanceAttribute', 'ec2:StopInstances']);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantLaunchHelper(p: StepPolicy, props: StepFunctionsProps): void {
  describe(p, [
    'DescribeInstances',
    'DescribeInstanceTypes',
    'DescribeImages',
    'DescribeSubnets',
    'DescribeVpcs',
    'DescribeSecurityGroups',
    'DescribeRouteTables',
    'DescribeInternetGateways',
    // Whether a chosen subnet's VPC has Systems Manager endpoints (helper-network.ts).
    'DescribeVpcEndpoints',
  ]);
  // The helper's root is encrypted under the account's default EBS key, which may be a customer key.
  ebsEncryption(p);
  // Create calls: the created resource must carry our tag in the request.
  // One statement per create call and its created type: a statement pairing CreateSubnet with
  // vpc/* under a request-tag condition would let a tagged subnet go into any VPC.
  for (const [action, type] of [
    ['CreateVpc', 'vpc'],
    ['CreateSubnet', 'subnet'],
    ['CreateInternetGateway', 'internet-gateway'],
    ['CreateRouteTable', 'route-table'],
    ['CreateSecurityGroup', 'security-group'],
  ]) {
    p.allow(action, [`ec2:${action}`], [ec2Arn(type)], WHY_CREATED, TAGGED_AT_CREATION);
  }
  // CreateSubnet and CreateRouteTable also authorize on the VPC they go into: ours (tagged).
  // CreateSecurityGroup also authorizes on its VPC: ours, or the VPC of the subnet the user named,
  // so that one is on any VPC (a group with no inbound rules in it changes nothing).
  p.allow('CreateInOurVpc', ['ec2:CreateSubnet', 'ec2:CreateRouteTable'], [ec2Arn('vpc')], WHY_TAGGED, MANAGED);
  p.allow(
    'SecurityGroupInAnyVpc',
    ['ec2:CreateSecurityGroup'],
    [ec2Arn('vpc')],
    'With a SubnetId the helper\'s security group goes into the user\'s VPC; the group itself must be tagged ours.',
  );
  // Wiring the network: every resource involved (gateway, VPC, route table, subnet, group) is ours.
  p.allow(
    'WireOurNetwork',
    [
      'ec2:AttachInternetGateway',
      'ec2:CreateRoute',
      'ec2:AssociateRouteTable',
      'ec2:RevokeSecurityGroupEgress',
      'ec2:AuthorizeSecurityGroupEgress',
    ],
    [ec2Arn('internet-gateway'), ec2Arn('vpc'), ec2Arn('route-table'), ec2Arn('subnet'), ec2Arn('security-group')],
    WHY_TAGGED,
    MANAGED,
  );
  // Egress rule changes also name the rule (security-group-rule): a rule has no tag of ours (the
  // default egress rule, or a new one), so the rule ARN is unconditioned; the group itself must be
  // ours (statement above). Assumption: IAM evaluates the rule ARN only when rules are named.
  p.allow(
    'EgressRules',
    ['ec2:RevokeSecurityGroupEgress', 'ec2:AuthorizeSecurityGroupEgress'],
    [ec2Arn('security-group-rule')],
    'A security group rule carries none of our tags; the rule can only change on a group we tagged (see WireOurNetwork).',
  );
  // RunInstances: created resources tagged in the request; the helper must get the helper profile
  // and IMDSv2 (ec2:InstanceProfile and ec2:MetadataHttpTokens are evaluated on the instance).
  p.allow('LaunchHelperVolume', ['ec2:RunInstances'], [ec2Arn('volume')], WHY_CREATED, TAGGED_AT_CREATION);
  // The helper's network interface is tagged in the same request, like the volume.
  p.allow('LaunchHelperNetworkInterface', ['ec2:RunInstances'], [ec2Arn('network-interface')], WHY_CREATED, TAGGED_AT_CREATION);
  p.allow('LaunchHelperInstance', ['ec2:RunInstances'], [ec2Arn('instance')], WHY_CREATED, {
    StringEquals: {
      [`aws:RequestTag/${MANAGED_BY_TAG_KEY}`]: MANAGED_BY_TAG_VALUE,
      [`aws:RequestTag/${ROLE_TAG_KEY}`]: HELPER_ROLE_TAG_VALUE,
      'ec2:MetadataHttpTokens': 'required',
    },
    ArnEquals: { 'ec2:InstanceProfile': props.helperInstanceProfile.instanceProfileArn },
  });
  // The AMI comes from the public Amazon Linux parameter (only Amazon-owned images), or for a
  // Windows target (issue 15) from Canonical's Ubuntu parameter (only Canonical's images).
  p.allow('LaunchHelperImage', ['ec2:RunInstances'], [ec2Arn('image')], 'Amazon Linux 2023 images published by Amazon, or Ubuntu images published by Canonical for a Windows target (condition ec2:Owner); the id changes with every release.', {
    StringEquals: { 'ec2:Owner': ['amazon', CANONICAL_ACCOUNT_ID] },
  });
  // The AMI's own snapshot: the Service Authorization Reference lists `snapshot` as an optional
  // resource type of ec2:RunInstances (list_amazonec2.html) and no AWS page says whether a launch
  // from an EBS-backed AMI is authorized on it. Rather than depend on either reading, it is
  // granted on Amazon-owned snapshots only (ec2:Owner is a condition key of `snapshot` in the same
  // reference): RunInstances can read a snapshot only to launch from it.
  p.allow('LaunchHelperImageSnapshot', ['ec2:RunInstances'], [ec2Arn('snapshot')], 'The snapshot behind the helper AMI, published by Amazon or Canonical (condition ec2:Owner), in case IAM evaluates it for the launch.', {
    StringEquals: { 'ec2:Owner': ['amazon', CANONICAL_ACCOUNT_ID] },
  });
  // Into our subnet or the one the user named, with our security group (tagged).
  p.allow('LaunchHelperSubnet', ['ec2:RunInstances'], [ec2Arn('subnet')], 'The helper goes into our temporary subnet or the subnet the user named (SubnetId).');
  p.allow('LaunchHelperSecurityGroup', ['ec2:RunInstances'], [ec2Arn('security-group')], WHY_TAGGED, MANAGED);
  tagOnCreate(p, NETWORK_CREATE_ACTIONS, [
    'vpc',
    'subnet',
    'internet-gateway',
    'route-table',
    'security-group',
    'instance',
    'volume',
    'network-interface',
  ]);
  p.allowOn('PassHelperRole', ['iam:PassRole'], [props.helperRole.roleArn], {
    StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' },
  });
  p.allow(
    'HelperImageParameter',
    ['ssm:GetParameter', 'ssm:GetParameters'],
    [publicParameterArn(HELPER_AMI_PARAMETER_PREFIX.split('/').slice(1, -1).join('/'))],
    'The public Amazon Linux AMI parameters (owned by AWS, read-only); the architecture is chosen at run time.',
  );
  p.allow(
    'WindowsHelperImageParameter',
    ['ssm:GetParameter'],
    [publicParameterArn(WINDOWS_HELPER_AMI_PATH)],
    'The public Ubuntu 24.04 AMI parameters (Canonical\'s, read-only) for a Windows target\'s helper; the architecture is chosen at run time.',
  );
  locks(p, ['GetParameter', 'PutParameter']);
}

/**
 * The backup calls (lambdas/common/backup.ts): backup-and-detach, and inject-key for the online
 * method. The caller grants BACKUP_DESCRIBE among its Describe calls (one Describe statement per role).
 */
function backup(p: StepPolicy): void {
  // The source of the backup is the user's volume or instance; the backup is created tagged.
  p.allow('BackupSource', ['ec2:CreateSnapshot'], [ec2Arn('volume')], WHY_USER_INSTANCE, LOCKED);
  p.allow('BackupSourceInstance', ['ec2:CreateImage'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  p.allow('SnapshotCreated', ['ec2:CreateSnapshot'], [ec2Arn('snapshot')], WHY_CREATED, TAGGED_AT_CREATION);
  // CreateImage makes the image and a snapshot per volume; the backup tags both.
  p.allow('ImageCreated', ['ec2:CreateImage'], [ec2Arn('image'), ec2Arn('snapshot')], WHY_CREATED, TAGGED_AT_CREATION);
  tagOnCreate(p, BACKUP_CREATE_ACTIONS, ['snapshot', 'image']);
  ebsEncryption(p);
}

const BACKUP_DESCRIBE = ['DescribeVolumes', 'DescribeSnapshots', 'DescribeImages'];

function grantBackupAndDetach(p: StepPolicy): void {
  describe(p, ['DescribeInstances', ...BACKUP_DESCRIBE]);
  backup(p);
  volumeMove(p, 'DetachRoot', 'DetachVolume', false);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantAttachToHelper(p: StepPolicy): void {
  // DescribeInstances: the handler checks that the target of the attach is this execution's
  // tagged helper before it attaches the root volume (security finding f479105).
  describe(p, ['DescribeVolumes', 'DescribeInstances']);
  volumeMove(p, 'AttachToHelper', 'AttachVolume', true);
  ebsEncryption(p);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantInjectKey(p: StepPolicy, props: StepFunctionsProps): void {
  // The online method starts its backup in the same step, before the command (issue 12); it reads
  // the instance's lock tag right before SendCommand (DescribeInstances, review P6/O1) and, for an
  // image, waits for the image's snapshots (DescribeImages, DescribeSnapshots, review P5).
  describe(p, ['DescribeInstances', ...BACKUP_DESCRIBE]);
  backup(p);
  // The SecureString holding a generated private key.
  p.allow('KeyParameter', ['ssm:PutParameter'], [parameterArn(KEY_PARAMETER_PATH)], WHY_KEYS);
  // Encrypt only through Systems Manager (PutParameter of the SecureString), never directly.
  // Assumption: SSM calls Encrypt for a standard parameter and GenerateDataKey for an advanced one.
  p.allowOn('EncryptKeyParameter', ['kms:Encrypt', 'kms:GenerateDataKey'], [props.parameterKey.keyArn], {
    StringEquals: { 'kms:ViaService': `ssm.${CFN_PARTS.region}.amazonaws.com` },
  });
  // SendCommand authorizes on the document and on each target instance: our document only, and
  // only instances tagged as our helper. (ssm:resourceTag is the SSM spelling of the key for
  // managed-instance tags; assumption: it is evaluated on the EC2 instance ARN.)
  p.allowOn('SendInjectCommand', ['ssm:SendCommand'], [
    `arn:${CFN_PARTS.partition}:ssm:${CFN_PARTS.region}:${CFN_PARTS.account}:document/${props.injectDocumentName}`,
    ...(props.revokeDocumentName ? [`arn:${CFN_PARTS.partition}:ssm:${CFN_PARTS.region}:${CFN_PARTS.account}:document/${props.revokeDocumentName}`] : []),
  ]);
  p.allow('SendToHelperOnly', ['ssm:SendCommand'], [ec2Arn('instance')], 'Only instances tagged as our helper (condition ssm:resourceTag/reset-access:role).', {
    StringEquals: { [`ssm:resourceTag/${ROLE_TAG_KEY}`]: HELPER_ROLE_TAG_VALUE },
  });
  // The online method sends the same document to the customer's instance itself: only while it
  // carries a lock tag (issue 11). The Service Authorization Reference lists document and
  // instance as SendCommand's resource types and ssm:resourceTag/${TagKey} as a condition key of
  // the instance (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html).
  // What it binds (review O1/P6): the presence of the key `reset-access:lock`, of any run, not this
  // run's value. SendCommand's condition keys on the instance are its tags (ssm:resourceTag/${TagKey},
  // aws:ResourceTag/${TagKey}: same reference); a policy could compare a tag with the caller's own
  // session tag (${aws:PrincipalTag/...}), but this role's sessions carry none and one role serves every
  // run, so no policy of it can know the execution id. The binding to this run is the handler's: it
  // sends only to its plan's instance, and reads the instance's lock tag right before SendCommand,
  // sending only when the value is its own execution id (lambdas/common/lock-tag.ts requireOwnLockTag).
  // Assumption (local/README.md): SSM sees the tag preflight wrote seconds before; if it does
  // not yet, SendCommand is denied and the run fails into restore, changing nothing.
  p.allow('SendToLockedTarget', ['ssm:SendCommand'], [ec2Arn('instance')], 'Only an instance carrying a run\'s lock tag (condition ssm:resourceTag/reset-access:lock present); the handler sends only to its plan\'s instance.', {
    Null: { [`ssm:resourceTag/${LOCK_TAG_KEY}`]: 'false' },
  });
  // The sent command's invocation must be visible before the runbook waits on it (issue 10, defect 7).
  p.allow('InjectInvocationVisible', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantReleaseFromHelper(p: StepPolicy): void {
  describe(p, ['DescribeVolumes']);
  p.allow('InjectReport', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  volumeMove(p, 'DetachFromHelper', 'DetachVolume', true);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantReattachRoot(p: StepPolicy): void {
  describe(p, ['DescribeVolumes']);
  volumeMove(p, 'ReattachRoot', 'AttachVolume', false);
  ebsEncryption(p);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantStartInstance(p: StepPolicy): void {
  describe(p, ['DescribeInstances', 'DescribeVolumes']);
  modifyTarget(p, 'StartTarget', ['ec2:ModifyInstanceAttribute', 'ec2:StartInstances']);
  ebsEncryption(p);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantCleanup(p: StepPolicy): void {
  describe(p, ['DescribeInstances', 'DescribeVolumes', 'DescribeRouteTables']);
  p.allow('TerminateHelper', ['ec2:TerminateInstances'], [ec2Arn('instance')], WHY_TAGGED, MANAGED);
  // Every resource each delete names is one we created: gateway and VPC for the detach, route
  // table and subnet for the disassociation.
  p.allow(
    'DeleteOurNetwork',
    [
      'ec2:DeleteSecurityGroup',
      'ec2:DetachInternetGateway',
      'ec2:DeleteInternetGateway',
      'ec2:DisassociateRouteTable',
      'ec2:DeleteRouteTable',
      'ec2:DeleteSubnet',
      'ec2:DeleteVpc',
    ],
    [ec2Arn('security-group'), ec2Arn('internet-gateway'), ec2Arn('vpc'), ec2Arn('route-table'), ec2Arn('subnet')],
    WHY_TAGGED,
    MANAGED,
  );
  // Last change to the customer's resources: the run's lock tag.
  lockUntag(p);
  // Cleanup reads the plan and releases the lock; it never rewrites it.
  locks(p, ['GetParameter', 'DeleteParameter']);
}

function grantSummarize(p: StepPolicy): void {
  // Summarize reads the final state only (the lock is released by then).
  describe(p, ['DescribeInstances']);
}

function grantRestore(p: StepPolicy, props: StepFunctionsProps): void {
  describe(p, ['DescribeInstances', 'DescribeVolumes']);
  // Take the volume off the helper (ours, tagged), put it back on the user's instance.
  volumeMove(p, 'DetachFromHelper', 'DetachVolume', true);
  volumeMove(p, 'ReattachRoot', 'AttachVolume', false);
  modifyTarget(p, 'RestoreTarget', ['ec2:ModifyInstanceAttribute', 'ec2:StartInstances']);
  // Last, once the volume is back and the instance restored: the run's lock tag.
  lockUntag(p);
  ebsEncryption(p);
  // Windows, Mode=NewPassword (issue 15): the run's own key is deleted when the run fails.
  p.allow('DeleteWindowsRunKey', ['ssm:DeleteParameter'], [parameterArn(WINDOWS_RUN_KEY_PATH)], WHY_RUN_KEYS);
  // Windows (review W2): what the windows-reset command wrote is undone with the same document,
  // Mode=Revert, on our helper only; the volume goes back to the helper for it (off the locked,
  // stopped instance, onto the helper we tagged).
  p.allowOn('SendWindowsRevert', ['ssm:SendCommand'], [
    `arn:${CFN_PARTS.partition}:ssm:${CFN_PARTS.region}:${CFN_PARTS.account}:document/${props.windowsDocumentName}`,
  ]);
  p.allow('SendToHelperOnly', ['ssm:SendCommand'], [ec2Arn('instance')], 'Only instances tagged as our helper (condition ssm:resourceTag/reset-access:role).', {
    StringEquals: { [`ssm:resourceTag/${ROLE_TAG_KEY}`]: HELPER_ROLE_TAG_VALUE },
  });
  // (The volume side of both calls is granted above: DetachFromHelperVolume, ReattachRootVolume.)
  p.allow('RevertDetachFromTarget', ['ec2:DetachVolume'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  p.allow('RevertAttachToHelper', ['ec2:AttachVolume'], [ec2Arn('instance')], WHY_TAGGED, MANAGED);
  // A key written but never injected is deleted (DescribeParameters tells whether it exists).
  p.allow('DeleteUnusedKey', ['ssm:DeleteParameter'], [parameterArn(KEY_PARAMETER_PATH)], WHY_KEYS);
  p.allow('FindUnusedKey', ['ssm:DescribeParameters'], ['*'], 'ssm:DescribeParameters does not support resource-level permissions (read-only, names and metadata, never values).');
  // Settle the inject command before moving the volume: read its status, cancel it if it still runs.
  p.allow('InjectCommandStatus', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  // Assumption (not checked against AWS): CancelCommand names no resource type in the service
  // authorization reference, so it is granted on *. It can only stop a command, never start one.
  p.allow('CancelInjectCommand', ['ssm:CancelCommand'], ['*'], 'ssm:CancelCommand does not support resource-level permissions; it can only stop a running command.');
  locks(p, ['GetParameter', 'PutParameter']);
  // Method=UserData: stop the instance if it runs with our user data, put the original back.
  p.allow('StopForUserData', ['ec2:StopInstances'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  readUserDataAttribute(p);
  savedUserData(p, props, ['GetParameter', 'DeleteParameter']);
}

// ---- Method=UserData (issue 12) ---------------------------------------------------------------

const WHY_USER_DATA = 'The saved original user data of any instance: /reset-access/user-data/<instance-id>, named at run time.';

/** DescribeInstanceAttribute (userData) of the customer's instance, only while it carries a run's lock tag. */
function readUserDataAttribute(p: StepPolicy): StepPolicy {
  return p.allow('ReadUserData', ['ec2:DescribeInstanceAttribute'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
}

/**
 * The SecureString holding the original user data, and the stack key through Systems Manager only
 * (kms:ViaService ssm.<region>): Decrypt for GetParameter WithDecryption; Encrypt and
 * GenerateDataKey for PutParameter (assumption, as for the private key: SSM calls Encrypt for a
 * standard parameter and GenerateDataKey for an advanced one).
 */
function savedUserData(p: StepPolicy, props: StepFunctionsProps, actions: ('GetParameter' | 'PutParameter' | 'DeleteParameter')[]): StepPolicy {
  p.allow('SavedUserData', actions.map((a) => `ssm:${a}`), [parameterArn(USER_DATA_PATH)], WHY_USER_DATA);
  // Through Systems Manager only. What a role can decrypt this way is what it may GetParameter:
  // these parameters alone (no role has GetParameter on /ec2rl/openssh/, test/security/iam.test.ts).
  // Parameter Store's encryption context (PARAMETER_ARN) could bind it further, but the offline IAM
  // evaluator of the replay ignores kms:EncryptionContext:<key> conditions, so nothing here depends
  // on one that could not be checked.
  const viaSsm = { StringEquals: { 'kms:ViaService': `ssm.${CFN_PARTS.region}.amazonaws.com` } };
  const kmsActions = [
    ...(actions.includes('GetParameter') ? ['kms:Decrypt'] : []),
    ...(actions.includes('PutParameter') ? ['kms:Encrypt', 'kms:GenerateDataKey'] : []),
  ];
  if (kmsActions.length > 0) p.allowOn('SavedUserDataKey', kmsActions, [props.parameterKey.keyArn], viaSsm);
  return p;
}

/** GetDocument of the inject-key Command document: its script goes into our user data. */
function readInjectDocument(p: StepPolicy, props: StepFunctionsProps): StepPolicy {
  return p.allowOn('ReadInjectDocument', ['ssm:GetDocument'], [
    `arn:${CFN_PARTS.partition}:ssm:${CFN_PARTS.region}:${CFN_PARTS.account}:document/${props.injectDocumentName}`,
  ]);
}

function grantSaveUserData(p: StepPolicy, props: StepFunctionsProps): void {
  readUserDataAttribute(p);
  savedUserData(p, props, ['GetParameter', 'PutParameter']);
  readInjectDocument(p, props);
  locks(p, ['GetParameter']);
}

function grantSetUserData(p: StepPolicy, props: StepFunctionsProps): void {
  describe(p, ['DescribeInstances']);
  readUserDataAttribute(p);
  // The user data change and the first start, only on the locked instance.
  modifyTarget(p, 'SetUserData', ['ec2:ModifyInstanceAttribute', 'ec2:StartInstances']);
  ebsEncryption(p);
  savedUserData(p, props, ['GetParameter']);
  readInjectDocument(p, props);
  // A generated key pair's private half, as injectKey stores it.
  p.allow('KeyParameter', ['ssm:PutParameter'], [parameterArn(KEY_PARAMETER_PATH)], WHY_KEYS);
  p.allowOn('EncryptKeyParameter', ['kms:Encrypt', 'kms:GenerateDataKey'], [props.parameterKey.keyArn], {
    StringEquals: { 'kms:ViaService': `ssm.${CFN_PARTS.region}.amazonaws.com` },
  });
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantConfirmUserData(p: StepPolicy): void {
  describe(p, ['DescribeInstances']);
  // The instance's serial console (read-only), only while it carries a run's lock tag.
  p.allow('ReadConsole', ['ec2:GetConsoleOutput'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  locks(p, ['GetParameter']);
}

function grantRestoreUserData(p: StepPolicy, props: StepFunctionsProps): void {
  describe(p, ['DescribeInstances']);
  readUserDataAttribute(p);
  modifyTarget(p, 'RestoreUserData', ['ec2:ModifyInstanceAttribute']);
  savedUserData(p, props, ['GetParameter', 'DeleteParameter']);
  locks(p, ['GetParameter']);
}

// ---- RevokeKey (issue 14) ---------------------------------------------------------------

const WHY_REVOKE_RUN = 'A RevokeKey fleet run\'s parameters: /reset-access/revoke/<execution id>/spec, /report and /results/<instance id>, named at run time.';
const WHY_REVOKE_RESULT = 'A RevokeKey fleet child\'s result: /reset-access/revoke/<fleet execution id>/results/<instance id>, named at run time.';
const WHY_REVOKE_TAG =
  'The instances a RevokeKey fleet run chose, named at run time: only the tag key reset-access:revoke-run ' +
  '(conditions aws:TagKeys, aws:RequestTag / aws:ResourceTag); the tag grants nothing (no policy keys on it).';

/**
 * resolve's tagging of the chosen instances: only the run's key, with a value; gather's untagging:
 * only that key, where it is (as LOCK_TAGGING / LOCK_UNTAGGING for the lock tag).
 */
const REVOKE_TAGGING = {
  'ForAllValues:StringEquals': { 'aws:TagKeys': [REVOKE_RUN_TAG_KEY] },
  Null: { 'aws:TagKeys': 'false', [`aws:RequestTag/${REVOKE_RUN_TAG_KEY}`]: 'false' },
};
const REVOKE_UNTAGGING = {
  'ForAllValues:StringEquals': { 'aws:TagKeys': [REVOKE_RUN_TAG_KEY] },
  Null: { 'aws:TagKeys': 'false', [`aws:ResourceTag/${REVOKE_RUN_TAG_KEY}`]: 'false' },
};

/** GetParameter of a fleet's spec (read-only). */
function revokeSpecRead(p: StepPolicy): StepPolicy {
  return p.allow('RevokeSpec', ['ssm:GetParameter'], [parameterArn(REVOKE_PATH)], WHY_REVOKE_RUN);
}

function grantRevokeResolve(p: StepPolicy): void {
  describe(p, ['DescribeInstances', 'DescribeKeyPairs']);
  p.allow('PublicKeyParameter', ['ssm:GetParameter'], [parameterArn(PUBLIC_KEY_PATH)], 'A public key line the user stored for the run (read-only, one path).');
  p.allow('RevokeSpecWrite', ['ssm:PutParameter'], [parameterArn(REVOKE_PATH)], WHY_REVOKE_RUN);
  p.allow('RevokeRunTag', ['ec2:CreateTags'], [ec2Arn('instance')], WHY_REVOKE_TAG, REVOKE_TAGGING);
}

function grantRevokeReport(p: StepPolicy): void {
  p.allow('RevokeCommandReport', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  locks(p, ['GetParameter']);
  revokeSpecRead(p);
  // A fleet child's own result (review P10): only under a run's results/ path, never its spec or report.
  p.allow('RevokeChildResult', ['ssm:PutParameter'], [parameterArn(`${REVOKE_PATH}/*/results`)], WHY_REVOKE_RESULT);
}

function grantRevokeGather(p: StepPolicy): void {
  // DeleteKeyPair=True: every instance launched with the key pair must be in the report (key-name filter).
  describe(p, ['DescribeInstances']);
  p.allow(
    'FleetChildren',
    ['ssm:DescribeAutomationExecutions'],
    ['*'],
    'ssm:DescribeAutomationExecutions does not support resource-level permissions (read-only: the children of this run).',
  );
  p.allow(
    'FleetChildRuns',
    ['ssm:GetAutomationExecution', 'ssm:StopAutomationExecution'],
    [(q) => `arn:${q.partition}:ssm:${q.region}:${q.account}:automation-execution/*`],
    'The run\'s child executions, known only at run time: read to explain an instance without a result, stopped (Type Cancel) when the run is cancelled (review P9).',
  );
  p.allow(
    'RevokeRunParameters',
    ['ssm:GetParameter', 'ssm:GetParametersByPath', 'ssm:PutParameter', 'ssm:DeleteParameter', 'ssm:DeleteParameters'],
    [parameterArn(REVOKE_PATH)],
    WHY_REVOKE_RUN,
  );
  p.allow('RevokeRunUntag', ['ec2:DeleteTags'], [ec2Arn('instance')], WHY_REVOKE_TAG, REVOKE_UNTAGGING);
  p.allow(
    'DeleteLeakedKeyPair',
    ['ec2:DeleteKeyPair'],
    [ec2Arn('key-pair')],
    'The key pair the user named (KeyPairName, DeleteKeyPair=True), known only at run time; deleted only when every instance is clean or cleaned.',
  );
}

// ---- Windows targets (issue 15) -----------------------------------------------------------------

const WHY_RUN_KEYS = 'A run\'s own key for a new Windows password: /reset-access/windows-run-keys/<instance-id>, named at run time.';
const WHY_PASSWORDS = 'The SecureString with the new Windows password of any instance: /ec2rl/windows/<instance-id>/password, named at run time.';

/** The stack key through Systems Manager only (kms:ViaService ssm.<region>), as for the private keys. */
function parameterKeyViaSsm(p: StepPolicy, sid: string, props: StepFunctionsProps, actions: string[]): StepPolicy {
  return p.allowOn(sid, actions, [props.parameterKey.keyArn], { StringEquals: { 'kms:ViaService': `ssm.${CFN_PARTS.region}.amazonaws.com` } });
}

function grantWindowsReset(p: StepPolicy, props: StepFunctionsProps): void {
  // Mode=NewPassword: the run's private key, written once (PutParameter SecureString).
  p.allow('WindowsRunKey', ['ssm:PutParameter'], [parameterArn(WINDOWS_RUN_KEY_PATH)], WHY_RUN_KEYS);
  parameterKeyViaSsm(p, 'EncryptWindowsRunKey', props, ['kms:Encrypt', 'kms:GenerateDataKey']);
  // The windows-reset document only, and only to instances tagged as our helper (as inject-key).
  p.allowOn('SendWindowsCommand', ['ssm:SendCommand'], [
    `arn:${CFN_PARTS.partition}:ssm:${CFN_PARTS.region}:${CFN_PARTS.account}:document/${props.windowsDocumentName}`,
  ]);
  p.allow('SendToHelperOnly', ['ssm:SendCommand'], [ec2Arn('instance')], 'Only instances tagged as our helper (condition ssm:resourceTag/reset-access:role).', {
    StringEquals: { [`ssm:resourceTag/${ROLE_TAG_KEY}`]: HELPER_ROLE_TAG_VALUE },
  });
  p.allow('WindowsInvocationVisible', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantWindowsRelease(p: StepPolicy): void {
  describe(p, ['DescribeVolumes']);
  p.allow('WindowsReport', ['ssm:GetCommandInvocation'], ['*'], 'ssm:GetCommandInvocation does not support resource-level permissions (read-only).');
  volumeMove(p, 'DetachFromHelper', 'DetachVolume', true);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantWindowsStart(p: StepPolicy): void {
  describe(p, ['DescribeInstances', 'DescribeVolumes']);
  modifyTarget(p, 'StartWindowsTarget', ['ec2:ModifyInstanceAttribute', 'ec2:StartInstances']);
  ebsEncryption(p);
  locks(p, ['GetParameter', 'PutParameter']);
}

function grantWindowsPassword(p: StepPolicy, props: StepFunctionsProps): void {
  describe(p, ['DescribeInstances']);
  // Read-only calls on the customer's instance, only while it carries a run's lock tag: the
  // Service Authorization Reference lists `instance` as the resource type of ec2:GetPasswordData
  // and ec2:GetConsoleOutput, with aws:ResourceTag/${TagKey}
  // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
  p.allow('ReadPasswordData', ['ec2:GetPasswordData'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  p.allow('ReadConsole', ['ec2:GetConsoleOutput'], [ec2Arn('instance')], WHY_USER_INSTANCE, LOCKED);
  // Mode=NewPassword: read and delete the run's key, write the password.
  p.allow('WindowsRunKey', ['ssm:GetParameter', 'ssm:DeleteParameter'], [parameterArn(WINDOWS_RUN_KEY_PATH)], WHY_RUN_KEYS);
  parameterKeyViaSsm(p, 'DecryptWindowsRunKey', props, ['kms:Decrypt']);
  p.allow('WindowsPassword', ['ssm:PutParameter'], [parameterArn(WINDOWS_PASSWORD_PATH)], WHY_PASSWORDS);
  parameterKeyViaSsm(p, 'EncryptWindowsPassword', props, ['kms:Encrypt', 'kms:GenerateDataKey']);
  locks(p, ['GetParameter', 'PutParameter']);
}
