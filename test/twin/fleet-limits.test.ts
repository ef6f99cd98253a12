/**
 * EC2's account limits in the twin (`awsLimits`, local/ec2-limits.ts), driven by the AWS CLI v1:
 * the Region's VPC quota (5, the default VPC included) and the RunInstances request token bucket
 * (5, refilled at 2 per second on the twin's virtual clock); then a fleet meeting the quota: the
 * execution that cannot get a VPC fails at launchHelper and restores, nothing lost.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateTagsCommand,
  CreateVpcCommand,
  DeleteVpcCommand,
  DescribeRouteTablesCommand,
  DescribeVpcsCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { LINUX_AMI, LockedOutInstance, startTwin, Twin } from '../../local/twin';
import { baseline, expectNothingLost } from './support';

jest.setTimeout(600000);

const run = promisify(execFile);
let twin: Twin;
let scratch: string;

beforeAll(async () => {
  twin = await startTwin({ maxLifetimeSeconds: 900, transitions: 'settle', awsLimits: true });
  scratch = mkdtempSync(join(tmpdir(), 'twin-limits-'));
}, 600000);

afterAll(async () => {
  rmSync(scratch ?? '/nonexistent', { recursive: true, force: true });
  await twin?.stop();
});

async function aws(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    PATH: process.env.PATH,
    HOME: scratch,
    AWS_ACCESS_KEY_ID: 'twin-cli',
    AWS_SECRET_ACCESS_KEY: 'twin-cli',
    AWS_CONFIG_FILE: join(scratch, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch, 'none'),
    AWS_PAGER: '',
    // One attempt: the CLI's own retry would meet the same bucket (the virtual clock stands still).
    AWS_MAX_ATTEMPTS: '1',
    AWS_RETRY_MODE: 'standard',
  };
  try {
    const r = await run('aws', ['--endpoint-url', twin.agent.endpoint, '--region', 'us-east-1', '--output', 'json', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

async function vpcCount(): Promise<number> {
  return (await twin.ec2.send(new DescribeVpcsCommand({}))).Vpcs?.length ?? 0;
}

test('the Region holds 5 VPCs, the default one included: the next CreateVpc is VpcLimitExceeded until one is deleted', async () => {
  const made: string[] = [];
  try {
    expect(await vpcCount()).toBe(1); // moto's default VPC
    for (let i = 0; i < 4; i++) {
      const r = await aws('ec2', 'create-vpc', '--cidr-block', `10.${10 + i}.0.0/16`);
      expect([r.code, r.stderr]).toEqual([0, '']);
      made.push((JSON.parse(r.stdout) as { Vpc: { VpcId: string } }).Vpc.VpcId);
    }
    const over = await aws('ec2', 'create-vpc', '--cidr-block', '10.20.0.0/16');
    expect(over.code).not.toBe(0);
    expect(over.stderr).toMatch(/\(VpcLimitExceeded\) when calling the CreateVpc operation/);
    expect(await vpcCount()).toBe(5);
    await twin.ec2.send(new DeleteVpcCommand({ VpcId: made.pop() }));
    const again = await aws('ec2', 'create-vpc', '--cidr-block', '10.20.0.0/16');
    expect(again.code).toBe(0);
    made.push((JSON.parse(again.stdout) as { Vpc: { VpcId: string } }).Vpc.VpcId);
  } finally {
    for (const v of made) await twin.ec2.send(new DeleteVpcCommand({ VpcId: v }));
  }
});

test('RunInstances: 5 requests at one instant, the 6th RequestLimitExceeded; 0.5 virtual seconds later one more token', async () => {
  const launch = () => aws('ec2', 'run-instances', '--image-id', LINUX_AMI, '--instance-type', 't3.micro', '--count', '1');
  const ids: string[] = [];
  const t0 = twin.clock.now();
  try {
    for (let i = 0; i < 5; i++) {
      const r = await launch();
      expect([r.code, r.stderr]).toEqual([0, '']);
      ids.push((JSON.parse(r.stdout) as { Instances: Array<{ InstanceId: string }> }).Instances[0].InstanceId);
    }
    expect(twin.clock.now()).toBe(t0); // nothing moved the virtual clock
    const sixth = await launch();
    expect(sixth.stderr).toMatch(/\(RequestLimitExceeded\) when calling the RunInstances operation/);
    twin.clock.advanceBy(0.5); // 2 tokens per second
    const refilled = await launch();
    expect(refilled.code).toBe(0);
    ids.push((JSON.parse(refilled.stdout) as { Instances: Array<{ InstanceId: string }> }).Instances[0].InstanceId);
    expect((await launch()).stderr).toMatch(/\(RequestLimitExceeded\)/);
  } finally {
    twin.clock.advanceBy(5);
    if (ids.length > 0) await twin.ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  }
});

test('a fleet meeting the VPC quota (no VPC free, SubnetId CreateNewVPC) where the instance subnet has no way to Systems Manager: every run fails at launchHelper and restores; nothing lost', async () => {
  // Four VPCs of someone else's: with the default VPC, the Region's five are taken.
  const others: string[] = [];
  for (let i = 0; i < 4; i++) others.push((await twin.ec2.send(new CreateVpcCommand({ CidrBlock: `10.${30 + i}.0.0/16` }))).Vpc?.VpcId as string);
  try {
    twin.clock.advanceBy(60); // buckets full again
    const instances: LockedOutInstance[] = [];
    for (let i = 0; i < 3; i++) instances.push(await twin.createLockedOutInstance({}));
    await twin.ec2.send(new CreateTagsCommand({ Resources: instances.map((i) => i.instanceId), Tags: [{ Key: 'fleet', Value: 'green' }] }));
    const befores = [];
    for (const i of instances) befores.push(await baseline(twin, i));

    const start = await aws(
      'ssm',
      'start-automation-execution',
      '--document-name',
      twin.documentName,
      '--targets',
      'Key=tag:fleet,Values=green',
      '--target-parameter-name',
      'InstanceId',
      '--max-concurrency',
      '2',
      '--max-errors',
      '100%',
      '--parameters',
      'KeyType=ed25519',
    );
    expect([start.code, start.stderr]).toEqual([0, '']);
    const parentId = (JSON.parse(start.stdout) as { AutomationExecutionId: string }).AutomationExecutionId;
    await twin.automation.drain();
    const list = await aws('ssm', 'describe-automation-executions', '--filters', `Key=ParentExecutionId,Values=${parentId}`);
    const children = (JSON.parse(list.stdout) as { AutomationExecutionMetadataList: Array<{ AutomationExecutionId: string; AutomationExecutionStatus: string; Target: string }> })
      .AutomationExecutionMetadataList;
    expect(children).toHaveLength(3);
    expect(children.map((c) => c.AutomationExecutionStatus)).toEqual(['Failed', 'Failed', 'Failed']);
    for (const c of children) {
      const detail = await aws('ssm', 'get-automation-execution', '--automation-execution-id', c.AutomationExecutionId);
      const steps = (JSON.parse(detail.stdout) as { AutomationExecution: { StepExecutions: Array<{ StepName: string; StepStatus: string; FailureMessage?: string }> } })
        .AutomationExecution.StepExecutions;
      const launch = steps.find((s) => s.StepName === 'launchHelper');
      expect(launch?.StepStatus).toBe('Failed');
      expect(launch?.FailureMessage).toMatch(/VpcLimitExceeded/);
      expect(launch?.FailureMessage).toMatch(/cannot reach Systems Manager/);
      expect(steps.find((s) => s.StepName === 'restore')?.StepStatus).toBe('Success');
    }
    for (let i = 0; i < 3; i++) await expectNothingLost(twin, befores[i]);
    expect(await vpcCount()).toBe(5);
  } finally {
    for (const v of others) await twin.ec2.send(new DeleteVpcCommand({ VpcId: v }));
  }
});

test('the same fleet where the instance subnet reaches Systems Manager (as a default VPC does in AWS): the runs without a VPC slot use that subnet; all reset, nothing lost', async () => {
  // An internet route for moto's default VPC, whose subnets map public IPs (test/twin/success.test.ts).
  const defaultVpc = (await twin.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }))).Vpcs?.[0]?.VpcId as string;
  const igw = (await twin.ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId as string;
  await twin.ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: defaultVpc }));
  for (const t of (await twin.ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: 'vpc-id', Values: [defaultVpc] }] }))).RouteTables ?? []) {
    await twin.ec2.send(new CreateRouteCommand({ RouteTableId: t.RouteTableId, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igw }));
  }
  const others: string[] = [];
  for (let i = 0; i < 4; i++) others.push((await twin.ec2.send(new CreateVpcCommand({ CidrBlock: `10.${40 + i}.0.0/16` }))).Vpc?.VpcId as string);
  try {
    twin.clock.advanceBy(60);
    const instances: LockedOutInstance[] = [];
    for (let i = 0; i < 3; i++) instances.push(await twin.createLockedOutInstance({}));
    await twin.ec2.send(new CreateTagsCommand({ Resources: instances.map((i) => i.instanceId), Tags: [{ Key: 'fleet', Value: 'blue' }] }));
    const befores = [];
    for (const i of instances) befores.push(await baseline(twin, i));
    const start = await aws(
      'ssm', 'start-automation-execution', '--document-name', twin.documentName,
      '--targets', 'Key=tag:fleet,Values=blue', '--target-parameter-name', 'InstanceId',
      '--max-concurrency', '2', '--max-errors', '0', '--parameters', 'KeyType=ed25519',
    );
    expect([start.code, start.stderr]).toEqual([0, '']);
    const parentId = (JSON.parse(start.stdout) as { AutomationExecutionId: string }).AutomationExecutionId;
    await twin.automation.drain();
    const parent = JSON.parse((await aws('ssm', 'get-automation-execution', '--automation-execution-id', parentId)).stdout) as {
      AutomationExecution: { AutomationExecutionStatus: string; FailureMessage?: string };
    };
    expect([parent.AutomationExecution.AutomationExecutionStatus, parent.AutomationExecution.FailureMessage]).toEqual(['Success', undefined]);
    const list = await aws('ssm', 'describe-automation-executions', '--filters', `Key=ParentExecutionId,Values=${parentId}`);
    const children = (JSON.parse(list.stdout) as { AutomationExecutionMetadataList: Array<{ AutomationExecutionId: string }> }).AutomationExecutionMetadataList;
    expect(children).toHaveLength(3);
    // The helper network each run reports: the instance subnet, for want of a VPC slot.
    const networks: string[] = [];
    for (const c of children) {
      const d = JSON.parse((await aws('ssm', 'get-automation-execution', '--automation-execution-id', c.AutomationExecutionId)).stdout) as {
        AutomationExecution: { StepExecutions: Array<{ StepName: string; Outputs?: Record<string, string[]> }> };
      };
      const payload = d.AutomationExecution.StepExecutions.find((x) => x.StepName === 'launchHelper')?.Outputs?.Payload?.[0] ?? '{}';
      networks.push(String((JSON.parse(payload) as { HelperNetwork?: string }).HelperNetwork));
    }
    expect(networks).toEqual([0, 1, 2].map(() => expect.stringMatching(/^VPC quota reached, instance subnet subnet-.*internet gateway igw-/)));
    for (let i = 0; i < 3; i++) await expectNothingLost(twin, befores[i], ['/home/ec2-user/.ssh/authorized_keys']);
    expect(await vpcCount()).toBe(5);
  } finally {
    for (const v of others) await twin.ec2.send(new DeleteVpcCommand({ VpcId: v }));
  }
});
