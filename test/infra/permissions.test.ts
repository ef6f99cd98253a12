import * as fs from 'fs';
import * as path from 'path';
import { CfnElement } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { buildSync } from 'esbuild';
import { STEP_FOLDERS, StepFolder } from '../../lib/constants';
import { EBS_ENCRYPTION_KMS_ACTIONS, EBS_KMS_TRIGGERS } from '../../lib/functions';
import { REPO_ROOT } from '../../lib/step-function';
import { grants, statementsOf } from './iam';
import { synthesize } from './synth';

/**
 * The policies against the code: bundle each handler with the SDK left external (so that its
 * imports can be read; the stack bundles it in), let esbuild drop what the handler never
 * reaches, and read which SDK commands remain. Each must be granted to that function; each
 * action granted must be one the function calls (or one an AWS service needs on its behalf,
 * listed below).
 */

/** Granted without an SDK call of its own: the service asks for it during another call. */
const IMPLIED: Record<string, string> = {
  'logs:CreateLogStream': 'the Lambda runtime writing the function\'s logs',
  'logs:PutLogEvents': 'the Lambda runtime writing the function\'s logs',
  'ec2:CreateTags': 'TagSpecifications of a create call',
  'iam:PassRole': 'IamInstanceProfile of RunInstances',
  'ssm:GetParameters': 'resolving the public AMI parameter (GetParameter is the call made)',
  'kms:Encrypt': 'PutParameter of a SecureString',
  'kms:GenerateDataKey': 'PutParameter of an advanced-tier SecureString',
  'kms:Decrypt': 'GetParameter WithDecryption of a SecureString (the saved user data)',
};

/**
 * The KMS permissions EC2 uses with the caller's rights for an encrypted volume (AWS's EBS
 * encryption requirements, "Permissions for users": lib/functions.ts cites the pages), implied only
 * for a function that makes one of the EC2 calls that use a volume's key.
 */
const EBS_KMS: readonly string[] = EBS_ENCRYPTION_KMS_ACTIONS;
const VIA_EC2 = 'ec2.${AWS::Region}.amazonaws.com';

const SERVICE_PREFIX: Record<string, string> = { 'auto-scaling': 'autoscaling' };

/** The IAM actions of the SDK commands a bundled handler can reach. */
function actionsCalledBy(folder: StepFolder): Set<string> {
  const entry = path.join(REPO_ROOT, 'lambdas', folder, 'handler.ts');
  const out = buildSync({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    external: ['@aws-sdk/*'],
    tsconfig: path.join(REPO_ROOT, 'tsconfig.json'),
    logLevel: 'silent',
  });
  const text = out.outputFiles[0].text;
  const byLocalName = new Map<string, string>();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"@aws-sdk\/client-([a-z0-9-]+)"/g)) {
    const service = SERVICE_PREFIX[m[2]] ?? m[2];
    for (const part of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const [original, local] = part.split(/\s+as\s+/);
      if (original.endsWith('Command')) {
        byLocalName.set(local ?? original, `${service}:${original.slice(0, -'Command'.length)}`);
      }
    }
  }
  const called = new Set<string>();
  for (const m of text.matchAll(/new\s+([A-Za-z0-9_$]+)\(/g)) {
    const action = byLocalName.get(m[1]);
    if (action) {
      called.add(action);
    }
  }
  return called;
}

const { stack, json } = synthesize({ skipBundling: true });
const roleId = (folder: StepFolder): string =>
  stack.getLogicalId((stack.functions.byFolder[folder].role as iam.Role).node.defaultChild as CfnElement);

describe.each(STEP_FOLDERS.map((f) => [f]))('%s', (folder) => {
  const handler = path.join(REPO_ROOT, 'lambdas', folder, 'handler.ts');
  const called = fs.existsSync(handler) ? actionsCalledBy(folder) : new Set<string>();
  const policy = statementsOf(json, roleId(folder));
  const granted = new Set(policy.flatMap((s) => s.actions));

  test('the handler exists and calls AWS', () => {
    expect(fs.existsSync(handler)).toBe(true);
    expect(called.size).toBeGreaterThan(0);
  });

  test('every SDK call it makes is granted', () => {
    const missing = [...called].filter((a) => grants(policy, a).length === 0);
    expect(missing).toEqual([]);
  });

  const usesVolumeKeys = EBS_KMS_TRIGGERS.some((a) => called.has(a));

  test('every action granted is one it calls, or one a service needs on its behalf', () => {
    const unused = [...granted].filter((a) => !called.has(a) && !(a in IMPLIED) && !(usesVolumeKeys && EBS_KMS.includes(a)));
    expect(unused).toEqual([]);
  });

  test(`EBS encryption: every KMS permission AWS lists, only through EC2, exactly when it ${usesVolumeKeys ? 'attaches, starts, launches or backs up' : 'uses no volume key'}`, () => {
    for (const action of EBS_KMS) {
      // Through EC2 only: the statements that grant it carry kms:ViaService ec2.<region>.
      const viaEc2 = grants(policy, action).filter((s) => (s.condition?.StringEquals ?? {})['kms:ViaService'] === VIA_EC2);
      expect({ action, viaEc2: viaEc2.length > 0 }).toEqual({ action, viaEc2: usesVolumeKeys });
      if (action === 'kms:CreateGrant') {
        for (const s of viaEc2) expect(s.condition?.Bool).toEqual({ 'kms:GrantIsForAWSResource': 'true' });
      }
      // Without kms:ViaService only what the function calls itself (preflight's DescribeKey).
      const direct = grants(policy, action).filter((s) => !JSON.stringify(s.condition ?? {}).includes('kms:ViaService'));
      expect({ action, direct: direct.length > 0 }).toEqual({ action, direct: called.has(action) });
    }
  });
});
