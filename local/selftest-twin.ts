/**
 * The twin for the self-test (issue 16): what EC2 and Systems Manager do with the instance the
 * self-test launches, on top of a started twin (local/twin.ts), with only its public hooks.
 *
 * - RunInstances of the Amazon Linux 2023 AMI that the public parameter
 *   /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-<arch> names (moto serves the
 *   parameter from its copy of AWS's list) gives an instance whose root volume is a real Linux
 *   disk image (local/disk, as createLockedOutInstance makes them): ec2-user with no authorized
 *   key, as an instance launched without a key pair has;
 * - its SSM Agent registers it as a managed node only when its instance profile's role has the
 *   AWS managed policy AmazonSSMManagedInstanceCore (the permissions a managed node needs:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html);
 * - AWS-RunShellScript exists (an AWS-owned document in every account, its parameters as the
 *   plugin reference gives them:
 *   https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-runShellScript);
 * - an ssh to the instance's public address reaches a real sshd over its root image (sshRoute).
 * The runbook's helpers (tagged reset-access:role=helper) are left to the agent as before.
 * Start the twin with `awsManagedPolicies: true` (moto loads the AWS managed policies only when
 * MOTO_IAM_LOAD_MANAGED_POLICIES is true as it starts: moto/settings.py, load_iam_aws_managed_policies).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { CreateDocumentCommand, GetParameterCommand } from '@aws-sdk/client-ssm';
import { HELPER_AMI_PARAMETER_PREFIX } from '../lib/constants';
import type { ImageSpec } from './disk/images';
import { REGION, type Twin } from './twin';

/** A fresh Amazon Linux 2023 root launched with no key pair: ec2-user has no key at all. */
export const FRESH_AL2023_IMAGE: ImageSpec = {
  layout: 'ext4-whole',
  users: [{ name: 'ec2-user', uid: 1000, gid: 1000, authorizedKeys: null }],
  cloudInitDefaultUser: 'ec2-user',
};

export interface SelftestTwin {
  /** Instances the twin gave an image, by id. */
  readonly instances: ReadonlyMap<string, { readonly rootVolumeId: string; readonly imagePath: string; managed: boolean }>;
  /** Every registration started so far has ended. */
  settled(): Promise<void>;
  /** An IAM client on the twin's endpoint (through the agent, counted and faultable). */
  iam(): IAMClient;
  /** Routes an ssh to a self-test instance to a real sshd over its root image. */
  sshRoute(instance: Instance): Promise<{ host: string; port: number; release(): Promise<void> }>;
  /** Stops listening; removes the images (none may be in use). */
  stop(): Promise<void>;
}

const MANAGED_POLICY = /:iam::aws:policy\/AmazonSSMManagedInstanceCore$/;

export async function enableSelftestInstances(twin: Twin): Promise<SelftestTwin> {
  const amis = new Set<string>();
  for (const arch of ['x86_64', 'arm64']) {
    const v = (await twin.ssm.send(new GetParameterCommand({ Name: `${HELPER_AMI_PARAMETER_PREFIX}${arch}` }))).Parameter?.Value;
    if (v) amis.add(v);
  }
  const dir = mkdtempSync(join(tmpdir(), 'selftest-twin-'));
  const template = join(dir, 'al2023-template.img');
  await twin.disk.buildImage(template, FRESH_AL2023_IMAGE);
  // AWS-RunShellScript: commands (StringList), workingDirectory, executionTimeout (default 3600).
  await twin.ssm
    .send(
      new CreateDocumentCommand({
        Name: 'AWS-RunShellScript',
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        Content: JSON.stringify({
          schemaVersion: '2.2',
          description: 'twin copy of the AWS-owned document: run a shell script',
          parameters: {
            commands: { type: 'StringList', description: 'the commands' },
            workingDirectory: { type: 'String', default: '', description: 'working directory' },
            executionTimeout: { type: 'String', default: '3600', description: 'timeout in seconds' },
          },
          mainSteps: [
            { action: 'aws:runShellScript', name: 'runShellScript', inputs: { runCommand: '{{ commands }}', workingDirectory: '{{ workingDirectory }}', timeoutSeconds: '{{ executionTimeout }}' } },
          ],
        }),
      }),
    )
    .catch((err: Error) => {
      if (err.name !== 'DocumentAlreadyExists') throw err;
    });
  const direct = new IAMClient({ endpoint: twin.moto.endpoint, region: REGION, credentials: { accessKeyId: 'twin', secretAccessKey: 'twin' } });
  const clients: IAMClient[] = [direct];
  const instances = new Map<string, { rootVolumeId: string; imagePath: string; managed: boolean }>();
  const pending: Promise<void>[] = [];
  let counter = 0;

  const hasManagedPolicy = async (profileRef: string): Promise<boolean> => {
    const name = profileRef.startsWith('arn:') ? (profileRef.split('/').pop() as string) : profileRef;
    const profile = (await direct.send(new GetInstanceProfileCommand({ InstanceProfileName: name }))).InstanceProfile;
    for (const role of profile?.Roles ?? []) {
      const attached = await direct.send(new ListAttachedRolePoliciesCommand({ RoleName: role.RoleName }));
      if ((attached.AttachedPolicies ?? []).some((p) => MANAGED_POLICY.test(p.PolicyArn ?? ''))) return true;
    }
    return false;
  };

  const untap = twin.agent.tapWire((x) => {
    if (x.service !== 'ec2' || x.action !== 'RunInstances' || x.status !== 200) return;
    const form = new URLSearchParams(x.request);
    if (!amis.has(form.get('ImageId') ?? '')) return;
    if ([...form.entries()].some(([k, v]) => /^TagSpecification\.\d+\.Tag\.\d+\.Key$/.test(k) && v === 'reset-access:role')) return;
    const profile = form.get('IamInstanceProfile.Name') ?? form.get('IamInstanceProfile.Arn');
    // Each item of instancesSet has its fields in name order: blockDeviceMapping (the root's
    // volumeId) comes before instanceId, so each id's volume is the first one since the last id.
    const parts = x.response.split(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/);
    for (let k = 1; k < parts.length; k += 2) {
      const instanceId = parts[k];
      const rootVolumeId = /<volumeId>(vol-[0-9a-f]+)<\/volumeId>/.exec(parts[k - 1] ?? '')?.[1];
      if (!instanceId || !rootVolumeId || instances.has(instanceId)) continue;
      const imagePath = join(dir, `root-${++counter}.img`);
      execFileSync('cp', ['--sparse=always', template, imagePath]);
      twin.agent.registerVolume(rootVolumeId, imagePath);
      const entry = { rootVolumeId, imagePath, managed: false };
      instances.set(instanceId, entry);
      if (profile) {
        pending.push(
          hasManagedPolicy(profile).then((yes) => {
            if (!yes) return;
            entry.managed = true;
            twin.agent.registerManaged(instanceId, { rootVolumeId });
          }),
        );
      }
    }
  });

  return {
    instances,
    async settled() {
      await Promise.all(pending);
    },
    iam() {
      const c = new IAMClient({ endpoint: twin.agent.endpoint, region: REGION, credentials: { accessKeyId: 'twin-cli', secretAccessKey: 'twin-cli' } });
      clients.push(c);
      return c;
    },
    async sshRoute(instance: Instance) {
      const out = await twin.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instance.InstanceId as string] }));
      const i = out.Reservations?.[0]?.Instances?.[0];
      const rootVolumeId = i?.BlockDeviceMappings?.find((b) => b.DeviceName === i.RootDeviceName)?.Ebs?.VolumeId;
      const image = rootVolumeId ? twin.agent.volumeImage(rootVolumeId) : undefined;
      if (!image) throw new Error(`no disk image behind the root of ${instance.InstanceId}: it is not a self-test instance of the twin`);
      const sshd = await twin.disk.startSshd(image);
      return { host: '127.0.0.1', port: sshd.port, release: () => sshd.stop() };
    },
    async stop() {
      untap();
      await Promise.allSettled(pending);
      clients.forEach((c) => c.destroy());
      for (const { imagePath } of instances.values()) {
        const loops = execFileSync('losetup', ['-j', imagePath], { encoding: 'utf8' }).trim();
        if (loops) throw new Error(`loop device left on ${imagePath}: ${loops}`);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
