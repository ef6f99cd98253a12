import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Match } from 'aws-cdk-lib/assertions';
import { CfnElement } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { STEP_FOLDERS, StepFolder } from '../../lib/constants';
import { ec2ArnPattern, FlatStatement, grants, statements, statementsOf } from './iam';
import { synthesize } from './synth';

// One synthesis for the whole file; bundling is skipped (the template is the same but for the
// asset hashes; test/infra/cfn-lint.test.ts bundles for real).
const { stack, template, json } = synthesize({ skipBundling: true });

const logicalId = (c: IConstruct): string =>
  stack.getLogicalId((c instanceof CfnElement ? c : c.node.defaultChild) as CfnElement);
const fnId = (folder: StepFolder): string => logicalId(stack.functions.byFolder[folder]);
const roleId = (folder: StepFolder): string => logicalId(stack.functions.byFolder[folder].role as iam.Role);
const policyOf = (folder: StepFolder): FlatStatement[] => statementsOf(json, roleId(folder));

const MANAGED = { StringEquals: { 'aws:ResourceTag/reset-access:managed-by': 'ec2-reset-access' } };
const REQUEST_TAGGED = { StringEquals: { 'aws:RequestTag/reset-access:managed-by': 'ec2-reset-access' } };
const ALL = statements(json);

function onlyWith(folder: StepFolder, action: string, resourceType: string): FlatStatement[] {
  const found = grants(policyOf(folder), action, ec2ArnPattern(resourceType));
  expect(found.length).toBeGreaterThan(0);
  return found;
}

describe('functions', () => {
  test('one Lambda per step folder, arm64, Node.js 22, timeouts under the 300 s step limit', () => {
    template.resourceCountIs('AWS::Lambda::Function', STEP_FOLDERS.length);
    for (const fn of Object.values<any>(template.findResources('AWS::Lambda::Function'))) {
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(fn.Properties.Runtime).toBe(lambda.Runtime.NODEJS_22_X.name);
      expect(fn.Properties.Timeout).toBeLessThanOrEqual(290);
      expect(fn.Properties.Handler).toBe('index.handler');
    }
  });

  test('memory 256 MB; inject-key 1,769 MB, one whole vCPU for RSA 4096 (Lambda configuration-memory page); the user data key steps 1024 MB; cleanup 240 s', () => {
    for (const folder of STEP_FOLDERS) {
      const props = json.Resources[fnId(folder)].Properties;
      expect(props.MemorySize).toBe(folder === 'inject-key' ? 1769 : ['save-user-data', 'set-user-data'].includes(folder) ? 1024 : 256);
    }
    expect(json.Resources[fnId('cleanup')].Properties.Timeout).toBe(240);
  });

  test('each function logs to its own log group: one month, deleted with the stack', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', STEP_FOLDERS.length);
    template.allResources('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 30 },
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
    for (const folder of STEP_FOLDERS) {
      const logGroup = json.Resources[fnId(folder)].Properties.LoggingConfig.LogGroup;
      expect(logGroup).toEqual({ Ref: expect.stringMatching(/LogGroup/) });
      // The role writes to that log group only, and carries no managed policy.
      const logs = grants(policyOf(folder), 'logs:PutLogEvents');
      expect(logs).toHaveLength(1);
      expect(logs[0].resources).toEqual([`\${${logGroup.Ref}.Arn}`]);
      expect(json.Resources[roleId(folder)].Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  test('the environment of the contract: launch-helper and inject-key', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: {
          HELPER_INSTANCE_PROFILE_ARN: { 'Fn::GetAtt': [Match.stringLikeRegexp('HelperInstanceProfile'), 'Arn'] },
          HELPER_AMI_PARAMETER_PREFIX: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-',
          WINDOWS_HELPER_AMI_PARAMETER: '/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id',
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
    });
    expect(json.Resources[fnId('inject-key')].Properties.Environment.Variables).toEqual({
      KEY_ID: { 'Fn::GetAtt': [logicalId(stack.parameterKey.key), 'Arn'] },
      INJECT_DOCUMENT_NAME: { Ref: logicalId(stack.injectDocument.document) },
      // RevokeKey (issue 14): the revoke Command document, sent for a revoke plan.
      REVOKE_DOCUMENT_NAME: { Ref: logicalId(stack.revokeDocument.document) },
      NODE_OPTIONS: '--enable-source-maps',
    });
  });
});

describe('IAM: never a wildcard action', () => {
  test('no Action "*" nor a service wildcard, anywhere', () => {
    for (const s of ALL) {
      for (const a of s.actions) {
        expect(a).not.toBe('*');
        expect(a).not.toMatch(/^[a-z0-9-]+:\*$/);
      }
    }
  });

  test('no Deny-less trick: every statement is an Allow with at least one resource', () => {
    for (const s of ALL) {
      expect(s.effect).toBe('Allow');
      expect(s.resources.length).toBeGreaterThan(0);
    }
  });
});

describe('IAM: resources this product creates are changed or deleted only when tagged', () => {
  const TAG_GUARDED = [
    'ec2:TerminateInstances',
    'ec2:DeleteVpc',
    'ec2:DeleteSubnet',
    'ec2:DeleteInternetGateway',
    'ec2:DetachInternetGateway',
    'ec2:DeleteRouteTable',
    'ec2:DisassociateRouteTable',
    'ec2:DeleteSecurityGroup',
    'ec2:CreateRoute',
    'ec2:AttachInternetGateway',
    'ec2:AssociateRouteTable',
  ];

  test.each(TAG_GUARDED)('%s: only with aws:ResourceTag/reset-access:managed-by', (action) => {
    const found = ALL.filter((s) => s.actions.includes(action));
    expect(found.length).toBeGreaterThan(0);
    for (const s of found) {
      expect(s.condition).toEqual(MANAGED);
      expect(s.resources).not.toContain('*');
    }
  });

  test('security group egress: the group must be ours; the rule ARN alone is unconditioned', () => {
    for (const action of ['ec2:RevokeSecurityGroupEgress', 'ec2:AuthorizeSecurityGroupEgress']) {
      const found = ALL.filter((s) => s.actions.includes(action));
      expect(found.length).toBeGreaterThan(0);
      for (const s of found) {
        if (s.condition === undefined) {
          expect(s.resources).toEqual([ec2ArnPattern('security-group-rule')]);
        } else {
          expect(s.condition).toEqual(MANAGED);
          expect(s.resources).toContain(ec2ArnPattern('security-group'));
        }
      }
    }
  });

  test('only launch-helper builds the network and only cleanup deletes it', () => {
    const holders = (action: string): string[] => [...new Set(ALL.filter((s) => s.actions.includes(action)).map((s) => s.role))];
    expect(holders('ec2:CreateVpc')).toEqual([roleId('launch-helper')]);
    expect(holders('ec2:RunInstances')).toEqual([roleId('launch-helper')]);
    expect(holders('ec2:TerminateInstances')).toEqual([roleId('cleanup')]);
    expect(holders('ec2:DeleteVpc')).toEqual([roleId('cleanup')]);
  });
});

describe('IAM: create calls tag the created resource in the same call', () => {
  test.each([
    ['ec2:CreateVpc', 'vpc'],
    ['ec2:CreateSubnet', 'subnet'],
    ['ec2:CreateInternetGateway', 'internet-gateway'],
    ['ec2:CreateRouteTable', 'route-table'],
    ['ec2:CreateSecurityGroup', 'security-group'],
  ])('%s on %s requires aws:RequestTag', (action, type) => {
    for (const s of onlyWith('launch-helper', action, type)) {
      expect(s.condition).toEqual(REQUEST_TAGGED);
    }
  });

  test('CreateSubnet and CreateRouteTable only into a VPC of ours', () => {
    for (const action of ['ec2:CreateSubnet', 'ec2:CreateRouteTable']) {
      for (const s of onlyWith('launch-helper', action, 'vpc')) {
        expect(s.condition).toEqual(MANAGED);
      }
    }
  });

  test('RunInstances: the helper instance tagged, with the helper profile and IMDSv2; volume tagged; Amazon images only', () => {
    const [instance] = onlyWith('launch-helper', 'ec2:RunInstances', 'instance');
    expect(instance.condition).toEqual({
      StringEquals: {
        'aws:RequestTag/reset-access:managed-by': 'ec2-reset-access',
        'aws:RequestTag/reset-access:role': 'helper',
        'ec2:MetadataHttpTokens': 'required',
      },
      ArnEquals: { 'ec2:InstanceProfile': `\${${logicalId(stack.helper.instanceProfile)}.Arn}` },
    });
    for (const s of onlyWith('launch-helper', 'ec2:RunInstances', 'volume')) {
      expect(s.condition).toEqual(REQUEST_TAGGED);
    }
    for (const s of onlyWith('launch-helper', 'ec2:RunInstances', 'image')) {
      // Amazon's images (Amazon Linux 2023), or Canonical's (Ubuntu, the helper of a Windows target, issue 15).
      expect(s.condition).toEqual({ StringEquals: { 'ec2:Owner': ['amazon', '099720109477'] } });
    }
    for (const s of onlyWith('launch-helper', 'ec2:RunInstances', 'security-group')) {
      expect(s.condition).toEqual(MANAGED);
    }
    onlyWith('launch-helper', 'ec2:RunInstances', 'subnet');
    onlyWith('launch-helper', 'ec2:RunInstances', 'network-interface');
    // No key pair: the helper is reached through Systems Manager only.
    expect(grants(policyOf('launch-helper'), 'ec2:RunInstances').flatMap((s) => s.resources).join()).not.toContain('key-pair');
  });

  test('backups: CreateSnapshot / CreateImage create only tagged snapshots and images', () => {
    for (const [action, type] of [
      ['ec2:CreateSnapshot', 'snapshot'],
      ['ec2:CreateImage', 'image'],
      ['ec2:CreateImage', 'snapshot'],
    ]) {
      for (const s of onlyWith('backup-and-detach', action, type)) {
        expect(s.condition).toEqual(REQUEST_TAGGED);
      }
    }
  });

  test('ec2:CreateTags only as part of the create calls (ec2:CreateAction), but preflight\'s lock tag', () => {
    const lockTag = ALL.filter((s) => s.actions.includes('ec2:CreateTags') && s.role === roleId('preflight'));
    expect(lockTag.map((s) => [s.resources.map((r) => r.replace(/^.*:/, '')), s.condition])).toEqual([
      [
        ['instance/*', 'volume/*'],
        {
          'ForAllValues:StringEquals': { 'aws:TagKeys': ['reset-access:lock'] },
          Null: { 'aws:TagKeys': 'false', 'aws:RequestTag/reset-access:lock': 'false' },
        },
      ],
    ]);
    // RevokeKey's resolve tags the chosen instances with its run's key only, with a value (the fan-out's target).
    const revokeTag = ALL.filter((s) => s.actions.includes('ec2:CreateTags') && s.role === roleId('revoke-resolve'));
    expect(revokeTag.map((s) => [s.resources.map((r) => r.replace(/^.*:/, '')), s.condition])).toEqual([
      [
        ['instance/*'],
        {
          'ForAllValues:StringEquals': { 'aws:TagKeys': ['reset-access:revoke-run'] },
          Null: { 'aws:TagKeys': 'false', 'aws:RequestTag/reset-access:revoke-run': 'false' },
        },
      ],
    ]);
    const tagging = ALL.filter((s) => s.actions.includes('ec2:CreateTags') && s.role !== roleId('preflight') && s.role !== roleId('revoke-resolve'));
    // inject-key takes the online method's backup itself (issue 12: one step before the write).
    expect(new Set(tagging.map((s) => s.role))).toEqual(new Set([roleId('launch-helper'), roleId('backup-and-detach'), roleId('inject-key')]));
    for (const s of tagging) {
      expect(Object.keys(s.condition ?? {})).toEqual(['StringEquals']);
      const actions = s.condition!.StringEquals['ec2:CreateAction'] as string[];
      expect(actions.length).toBeGreaterThan(0);
      expect(
        actions.every((a) =>
          ['CreateVpc', 'CreateSubnet', 'CreateInternetGateway', 'CreateRouteTable', 'CreateSecurityGroup', 'RunInstances', 'CreateSnapshot', 'CreateImage'].includes(a),
        ),
      ).toBe(true);
    }
  });

  test('iam:PassRole: the helper role only, to EC2 only; the automation role itself only, to Systems Manager only', () => {
    const passing = ALL.filter((s) => s.actions.includes('iam:PassRole') && s.role !== logicalId(stack.automationRole.role));
    expect(passing).toHaveLength(1);
    const self = ALL.filter((s) => s.actions.includes('iam:PassRole') && s.role === logicalId(stack.automationRole.role));
    expect(self.map((s) => [s.resources, s.condition])).toEqual([
      [[`\${${logicalId(stack.automationRole.role)}.Arn}`], { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } }],
    ]);
    expect(passing[0].role).toBe(roleId('launch-helper'));
    expect(passing[0].resources).toEqual([`\${${logicalId(stack.helper.role)}.Arn}`]);
    expect(passing[0].condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });
  });
});

/** A run's lock tag on the resource (issue 11). */
const LOCKED = { Null: { 'aws:ResourceTag/reset-access:lock': 'false' } };

describe('IAM: the user\'s instance and volume', () => {
  test.each([
    ['stop-instance', 'ec2:StopInstances'],
    ['stop-instance', 'ec2:ModifyInstanceAttribute'],
    ['start-instance', 'ec2:StartInstances'],
    ['start-instance', 'ec2:ModifyInstanceAttribute'],
    ['restore', 'ec2:StartInstances'],
  ] as [StepFolder, string][])('%s: %s on an instance only while it carries a run\'s lock tag', (folder, action) => {
    const [s] = onlyWith(folder, action, 'instance');
    expect(s.condition).toEqual(LOCKED);
  });

  test('the volume moves only to and from an instance we tagged when the other end is the helper', () => {
    for (const [folder, action] of [
      ['attach-to-helper', 'ec2:AttachVolume'],
      ['release-from-helper', 'ec2:DetachVolume'],
    ] as [StepFolder, string][]) {
      for (const s of onlyWith(folder, action, 'instance')) {
        expect(s.condition).toEqual(MANAGED);
      }
      onlyWith(folder, action, 'volume');
    }
    // restore: off the helper (ours) and onto the locked target; for a Windows run's Mode=Revert
    // (review W2) also off the locked target and onto the helper: each end under its own condition.
    for (const action of ['ec2:DetachVolume', 'ec2:AttachVolume']) {
      expect(onlyWith('restore', action, 'instance').map((x) => x.condition)).toEqual(action === 'ec2:DetachVolume' ? [MANAGED, LOCKED] : [LOCKED, MANAGED]);
      onlyWith('restore', action, 'volume');
    }
    for (const [folder, action] of [
      ['backup-and-detach', 'ec2:DetachVolume'],
      ['reattach-root', 'ec2:AttachVolume'],
      ['restore', 'ec2:AttachVolume'],
    ] as [StepFolder, string][]) {
      expect(onlyWith(folder, action, 'instance')[0].condition).toEqual(LOCKED);
    }
    for (const [folder, action] of [
      ['attach-to-helper', 'ec2:AttachVolume'],
      ['release-from-helper', 'ec2:DetachVolume'],
      ['backup-and-detach', 'ec2:DetachVolume'],
      ['backup-and-detach', 'ec2:CreateSnapshot'],
      ['inject-key', 'ec2:CreateSnapshot'],
      ['reattach-root', 'ec2:AttachVolume'],
      ['restore', 'ec2:AttachVolume'],
      ['restore', 'ec2:DetachVolume'],
    ] as [StepFolder, string][]) {
      expect(onlyWith(folder, action, 'volume')[0].condition).toEqual(LOCKED);
    }
  });

  test('kms:CreateGrant only for AWS resources through EC2, only for the steps that attach, start, launch or back up', () => {
    const granting = ALL.filter((s) => s.actions.includes('kms:CreateGrant'));
    expect(new Set(granting.map((s) => s.role))).toEqual(
      new Set(['launch-helper', 'backup-and-detach', 'inject-key', 'attach-to-helper', 'reattach-root', 'start-instance', 'restore', 'set-user-data', 'windows-start'].map((f) => roleId(f as StepFolder))),
    );
    for (const s of granting) {
      expect(s.condition).toEqual({ StringEquals: { 'kms:ViaService': 'ec2.${AWS::Region}.amazonaws.com' }, Bool: { 'kms:GrantIsForAWSResource': 'true' } });
    }
  });
});

describe('IAM: Systems Manager', () => {
  const LOCKS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/locks/*';
  const KEYS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ec2rl/openssh/*';
  const USER_DATA = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/user-data/*';
  /** RevokeKey's fleet spec and report (issue 14). */
  const REVOKE = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/revoke/*';
  /** A RevokeKey fleet child's own result (review P10): written by revoke-report only. */
  const REVOKE_RESULTS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/revoke/*/results/*';
  // Windows targets (issue 15): the helper's Ubuntu AMI parameters, a run's own key, the new passwords.
  const WINDOWS_AMI = 'arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/canonical/ubuntu/server/24.04/stable/current/*';
  const RUN_KEYS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/windows-run-keys/*';
  const PASSWORDS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/ec2rl/windows/*';

  test('Put/Get/DeleteParameter only on the lock path, /ec2rl/openssh/ and the saved user data (and the public AMI path, read)', () => {
    const AMI = 'arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/ami-amazon-linux-latest/*';
    const PUBLIC_KEYS = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/reset-access/public-keys/*';
    for (const s of ALL.filter((st) => st.actions.some((a) => /^ssm:(Put|Get|Delete)Parameters?$/.test(a)))) {
      for (const r of s.resources) {
        expect([LOCKS, KEYS, AMI, PUBLIC_KEYS, USER_DATA, REVOKE, REVOKE_RESULTS, WINDOWS_AMI, RUN_KEYS, PASSWORDS]).toContain(r);
      }
      if (s.resources.includes(WINDOWS_AMI)) expect([s.role, s.actions]).toEqual([roleId('launch-helper'), ['ssm:GetParameter']]);
      // A user's long public key (PublicKeyParameter): read by preflight and RevokeKey's resolve only.
      if (s.resources.includes(PUBLIC_KEYS)) expect([[roleId('preflight'), roleId('revoke-resolve')].includes(s.role), s.actions]).toEqual([true, ['ssm:GetParameter']]);
      if (s.resources.includes(AMI)) {
        expect(s.actions.sort()).toEqual(['ssm:GetParameter', 'ssm:GetParameters']);
        expect(s.role).toBe(roleId('launch-helper'));
      }
    }
  });

  test('each function only the parameter calls it needs', () => {
    const on = (folder: StepFolder, path: string): string[] =>
      policyOf(folder)
        .filter((s) => s.resources.includes(path))
        .flatMap((s) => s.actions)
        .sort();
    expect(on('preflight', LOCKS)).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter', 'ssm:PutParameter']);
    expect(on('cleanup', LOCKS)).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter']);
    expect(on('summarize', LOCKS)).toEqual([]);
    expect(on('inject-key', KEYS)).toEqual(['ssm:PutParameter']);
    expect(on('restore', KEYS)).toEqual(['ssm:DeleteParameter']);
    // The UserData steps that only read the plan.
    const planReaders = ['save-user-data', 'confirm-user-data', 'restore-user-data', 'revoke-report'];
    for (const folder of planReaders) expect(on(folder as StepFolder, LOCKS)).toEqual(['ssm:GetParameter']);
    // RevokeKey's fleet steps never touch a plan; they write the fleet's spec and report.
    for (const folder of ['revoke-resolve', 'revoke-gather'] as StepFolder[]) expect(on(folder, LOCKS)).toEqual([]);
    expect(on('revoke-resolve', REVOKE)).toEqual(['ssm:PutParameter']);
    expect(on('revoke-gather', REVOKE)).toEqual(['ssm:DeleteParameter', 'ssm:DeleteParameters', 'ssm:GetParameter', 'ssm:GetParametersByPath', 'ssm:PutParameter']);
    expect(on('revoke-report', REVOKE)).toEqual(['ssm:GetParameter']);
    expect(on('revoke-report', REVOKE_RESULTS)).toEqual(['ssm:PutParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => f !== 'revoke-report')) expect(on(folder, REVOKE_RESULTS)).toEqual([]);
    expect(on('preflight', REVOKE)).toEqual(['ssm:GetParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => !['preflight', 'cleanup', 'summarize', 'revoke-resolve', 'revoke-gather', ...planReaders].includes(f))) {
      expect(on(folder, LOCKS)).toEqual(['ssm:GetParameter', 'ssm:PutParameter']);
    }
    // set-user-data makes a key pair when no public key is given, as inject-key does.
    expect(on('set-user-data', KEYS)).toEqual(['ssm:PutParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => !['inject-key', 'restore', 'set-user-data'].includes(f))) {
      expect(on(folder, KEYS)).toEqual([]);
    }
    // The saved user data: saved, read back, put back and deleted by exactly these.
    expect(on('save-user-data', USER_DATA)).toEqual(['ssm:GetParameter', 'ssm:PutParameter']);
    expect(on('set-user-data', USER_DATA)).toEqual(['ssm:GetParameter']);
    expect(on('restore-user-data', USER_DATA)).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter']);
    expect(on('restore', USER_DATA)).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => !['save-user-data', 'set-user-data', 'restore-user-data', 'restore'].includes(f))) {
      expect(on(folder, USER_DATA)).toEqual([]);
    }
    // Windows, Mode=NewPassword: the run's key written by windows-reset, read and deleted by
    // windows-password (deleted by restore on failure); the password written by windows-password alone.
    expect(on('windows-reset', RUN_KEYS)).toEqual(['ssm:PutParameter']);
    expect(on('windows-password', RUN_KEYS)).toEqual(['ssm:DeleteParameter', 'ssm:GetParameter']);
    expect(on('restore', RUN_KEYS)).toEqual(['ssm:DeleteParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => !['windows-reset', 'windows-password', 'restore'].includes(f))) expect(on(folder, RUN_KEYS)).toEqual([]);
    expect(on('windows-password', PASSWORDS)).toEqual(['ssm:PutParameter']);
    for (const folder of STEP_FOLDERS.filter((f) => f !== 'windows-password')) expect(on(folder, PASSWORDS)).toEqual([]);
  });

  test('ssm:SendCommand: the inject-key document, and instances tagged as our helper or carrying a run\'s lock tag', () => {
    const sending = ALL.filter((s) => s.actions.includes('ssm:SendCommand'));
    // windows-reset sends the windows-reset document to the helper only (issue 15).
    const windows = sending.filter((s) => s.role === roleId('windows-reset'));
    expect(windows.map((s) => [s.resources, s.condition])).toEqual([
      [[`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:document/\${${logicalId(stack.windowsDocument.document)}}`], undefined],
      [[ec2ArnPattern('instance')], { StringEquals: { 'ssm:resourceTag/reset-access:role': 'helper' } }],
    ]);
    // restore sends the same document, Mode=Revert, to the helper only (review W2).
    expect(sending.filter((s) => s.role === roleId('restore')).map((s) => [s.resources, s.condition])).toEqual(windows.map((s) => [s.resources, s.condition]));
    sending.splice(0, sending.length, ...sending.filter((s) => s.role !== roleId('windows-reset') && s.role !== roleId('restore')));
    expect(new Set(sending.map((s) => s.role))).toEqual(new Set([roleId('inject-key')]));
    const docRef = `\${${logicalId(stack.injectDocument.document)}}`;
    const onDoc = sending.filter((s) => s.resources.some((r) => r.includes(':document/')));
    expect(onDoc).toHaveLength(1);
    // The inject-key document, and RevokeKey's Command document (issue 14): no other.
    const revokeRef = `\${${logicalId(stack.revokeDocument.document)}}`;
    expect(onDoc[0].resources).toEqual([
      `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:document/${docRef}`,
      `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:document/${revokeRef}`,
    ]);
    const onInstances = sending.filter((s) => s !== onDoc[0]);
    // The helper (volume swap), and the customer's instance itself while it carries a run's lock
    // tag (the online method, issue 12).
    expect(onInstances).toHaveLength(2);
    for (const s of onInstances) expect(s.resources).toEqual([ec2ArnPattern('instance')]);
    expect(onInstances.map((s) => s.condition)).toEqual([
      { StringEquals: { 'ssm:resourceTag/reset-access:role': 'helper' } },
      { Null: { 'ssm:resourceTag/reset-access:lock': 'false' } },
    ]);
  });

  test('preflight: GetAutomationExecution on this account\'s executions, kms:DescribeKey, DescribeAutoScalingInstances', () => {
    const p = policyOf('preflight');
    expect(grants(p, 'ssm:GetAutomationExecution')[0].resources).toEqual([
      'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:automation-execution/*',
    ]);
    expect(grants(p, 'kms:DescribeKey')[0].resources).toEqual(['arn:${AWS::Partition}:kms:${AWS::Region}:*:key/*']);
    expect(grants(p, 'autoscaling:DescribeAutoScalingInstances')[0].resources).toEqual(['*']);
  });

  test('the KMS key is used only through Systems Manager: to store a private key (inject-key, set-user-data), and for the saved user data alone', () => {
    // (kms:Decrypt through EC2 is EBS encryption of a volume, on the volume's key: see the CreateGrant test)
    const viaEc2 = (s: (typeof ALL)[number]) => (s.condition?.StringEquals ?? {})['kms:ViaService'] === 'ec2.${AWS::Region}.amazonaws.com';
    const encrypting = ALL.filter((s) => s.actions.some((a) => ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'].includes(a)) && !viaEc2(s));
    const viaSsm = { 'kms:ViaService': 'ssm.${AWS::Region}.amazonaws.com' };
    for (const s of encrypting) {
      expect(s.resources).toEqual([`\${${logicalId(stack.parameterKey.key)}.Arn}`]);
      expect(s.condition?.StringEquals).toEqual(viaSsm);
    }
    // Storing a generated private key: encrypt only, never decrypt.
    const keyStores = encrypting.filter((s) => s.sid === 'EncryptKeyParameter');
    expect(new Set(keyStores.map((s) => s.role))).toEqual(new Set([roleId('inject-key'), roleId('set-user-data')]));
    for (const s of keyStores) expect(s.actions.sort()).toEqual(['kms:Encrypt', 'kms:GenerateDataKey']);
    // Windows (issue 15): the run's key written (encrypt) by windows-reset and read (decrypt) by
    // windows-password, which writes the password (encrypt); neither reads an /ec2rl/ parameter.
    const windowsSids: Record<string, [string, string[]]> = {
      EncryptWindowsRunKey: ['windows-reset', ['kms:Encrypt', 'kms:GenerateDataKey']],
      DecryptWindowsRunKey: ['windows-password', ['kms:Decrypt']],
      EncryptWindowsPassword: ['windows-password', ['kms:Encrypt', 'kms:GenerateDataKey']],
    };
    for (const s of encrypting.filter((x) => (x.sid ?? '') in windowsSids)) {
      const [folder, actions] = windowsSids[s.sid ?? ''];
      expect([s.role, s.actions.sort()]).toEqual([roleId(folder as StepFolder), actions]);
    }
    // Everything else is the saved user data's, by roles that may read no private key.
    const userDataRoles = new Set(['save-user-data', 'set-user-data', 'restore-user-data', 'restore'].map((f) => roleId(f as StepFolder)));
    for (const s of encrypting.filter((x) => x.sid !== 'EncryptKeyParameter' && !((x.sid ?? '') in windowsSids))) {
      expect([s.sid, userDataRoles.has(s.role)]).toEqual(['SavedUserDataKey', true]);
    }
  });

  test('resource "*" only for calls without resource-level permissions', () => {
    const unscopable = new Set([
      'autoscaling:DescribeAutoScalingInstances',
      'ssm:GetCommandInvocation',
      'ssm:DescribeInstanceInformation',
      'ssm:ListCommandInvocations',
      'ssm:DescribeParameters',
      // A write, but it can only stop a command; restore uses it on the inject command it settles.
      'ssm:CancelCommand',
      // RevokeKey's gather lists the fleet's children (read-only); the automation role may resolve
      // the fan-out's tag target (read-only).
      'ssm:DescribeAutomationExecutions',
      'tag:GetResources',
    ]);
    for (const s of ALL.filter((st) => st.resources.includes('*'))) {
      for (const a of s.actions) {
        expect(a.startsWith('ec2:Describe') || unscopable.has(a)).toBe(true);
      }
    }
  });
});

describe('automation role', () => {
  const roleLogicalId = logicalId(stack.automationRole.role);

  test('assumed by Systems Manager of this account only', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: 'sts:AssumeRole',
            Effect: 'Allow',
            Principal: { Service: 'ssm.amazonaws.com' },
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: { 'aws:SourceArn': Match.anyValue() },
            },
          },
        ],
      },
    });
    expect(json.Resources[roleLogicalId].Properties.ManagedPolicyArns).toBeUndefined();
  });

  test('may invoke exactly the 12 step functions, and read what the wait steps poll', () => {
    const stmts = statementsOf(json, roleLogicalId);
    const invoke = grants(stmts, 'lambda:InvokeFunction');
    expect(invoke).toHaveLength(1);
    expect(invoke[0].actions).toEqual(['lambda:InvokeFunction']);
    expect(invoke[0].resources.sort()).toEqual(STEP_FOLDERS.map((f) => `\${${fnId(f)}.Arn}`).sort());
    const other = stmts.filter((s) => s !== invoke[0]);
    expect(other.flatMap((s) => s.actions).sort()).toEqual([
      'ec2:DescribeInstances',
      'ec2:DescribeVolumes',
      'iam:PassRole',
      'resource-groups:GetGroupQuery',
      'ssm:DescribeInstanceInformation',
      'ssm:GetAutomationExecution',
      'ssm:ListCommandInvocations',
      'ssm:StartAutomationExecution',
      'ssm:StartAutomationExecution',
      'tag:GetResources',
    ]);
    // RevokeKey's readGroup: the group's query only (read-only), on any group of the account's Region.
    expect(grants(stmts, 'resource-groups:GetGroupQuery').map((s) => s.resources)).toEqual([
      ['arn:${AWS::Partition}:resource-groups:${AWS::Region}:${AWS::AccountId}:group/*'],
    ]);
    // The cancel path may start the restore runbook, and RevokeKey's fan-out its per-instance
    // runbook (issue 14), and no other document.
    expect(grants(stmts, 'ssm:StartAutomationExecution').map((s) => s.resources)).toEqual([
      [
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/ResetAccess-Restore',
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:automation-definition/ResetAccess-Restore:*',
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:automation-execution/*',
      ],
      [
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/RevokeKey-Instance',
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:automation-definition/RevokeKey-Instance:*',
        'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:automation-execution/*',
      ],
    ]);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: roleLogicalId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 'lambda:InvokeFunction', Resource: Match.arrayWith([{ 'Fn::GetAtt': [fnId('preflight'), 'Arn'] }]) }),
        ]),
      },
    });
  });

  test('no other principal may invoke the functions', () => {
    const invokers = new Set(ALL.filter((s) => s.actions.includes('lambda:InvokeFunction')).map((s) => s.role));
    expect(invokers).toEqual(new Set([roleLogicalId]));
    template.resourceCountIs('AWS::Lambda::Permission', 0);
  });
});

describe('helper role, key', () => {
  test('the helper role: EC2 trust, AmazonSSMManagedInstanceCore only, no inline policy', () => {
    const id = logicalId(stack.helper.role);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] },
      ManagedPolicyArns: [
        { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore']] },
      ],
    });
    expect(json.Resources[id].Properties.ManagedPolicyArns).toHaveLength(1);
    expect(json.Resources[id].Properties.Policies).toBeUndefined();
    expect(ALL.filter((s) => s.role === id)).toEqual([]);
    template.hasResourceProperties('AWS::IAM::InstanceProfile', { Roles: [{ Ref: id }] });
  });

  test('the KMS key rotates, has an alias, and is kept when the stack goes', () => {
    template.hasResource('AWS::KMS::Key', {
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::KMS::Alias', {
      AliasName: 'alias/reset-access/ResetAccess',
      TargetKeyId: { 'Fn::GetAtt': [logicalId(stack.parameterKey.key), 'Arn'] },
    });
  });
});

describe('stack outputs', () => {
  test('document, role, Command document, key', () => {
    template.hasOutput('DocumentName', { Value: { Ref: Match.stringLikeRegexp('RunbookDocument') } });
    template.hasOutput('AutomationRoleArn', { Value: { 'Fn::GetAtt': [logicalId(stack.automationRole.role), 'Arn'] } });
    template.hasOutput('InjectKeyDocumentName', { Value: { Ref: Match.stringLikeRegexp('InjectKeyDocument') } });
    template.hasOutput('KeyArn', { Value: { 'Fn::GetAtt': [logicalId(stack.parameterKey.key), 'Arn'] } });
  });

  test('ready-to-paste commands for one instance and for a fleet', () => {
    const start = json.Outputs.StartCommand.Value['Fn::Sub'];
    expect(start[0]).toBe(
      'aws ssm start-automation-execution --region ${AWS::Region} --document-name ${Doc} --parameters InstanceId=i-0123456789abcdef0',
    );
    expect(start[1]).toEqual({ Doc: { Ref: expect.stringMatching(/RunbookDocument/) } });
    const fleet = json.Outputs.FleetCommand.Value['Fn::Sub'][0];
    expect(fleet).toContain('--targets Key=tag:ResetAccess,Values=true --target-parameter-name InstanceId');
    expect(fleet).toContain('--max-concurrency 5 --max-errors 1');
  });
});

// Asset hashes change with every edit of a Lambda, and the documents' contents are asserted in
// documents.test.ts: the snapshot keeps the shape of the infrastructure only.
expect.addSnapshotSerializer({
  test: (v) => typeof v === 'string' && (/[0-9a-f]{64}/.test(v) || v === '__DOCUMENT_CONTENT__'),
  print: (v) => JSON.stringify((v as string).replace(/[0-9a-f]{64}/g, '<asset-hash>')),
});

test('snapshot of the template (asset hashes and document contents stripped)', () => {
  const copy = JSON.parse(JSON.stringify(json));
  for (const res of Object.values<any>(copy.Resources)) {
    if (res.Type === 'AWS::SSM::Document') {
      res.Properties.Content = '__DOCUMENT_CONTENT__';
    }
  }
  expect(copy).toMatchSnapshot();
});
