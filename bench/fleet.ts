/**
 * `npx tsx bench/fleet.ts`: a fleet reset in the twin with EC2's account limits enforced
 * (`awsLimits`: the Region's VPC quota and the API token buckets, local/ec2-limits.ts), started
 * through the twin's Automation API with rate control as a user would start it
 * (`--targets Key=tag:...  --target-parameter-name InstanceId --max-concurrency C --max-errors 100%`).
 *
 * Reports the outcome of every target (and the error of each failure), the fleet's modeled wall
 * time on the twin's virtual clock, and the API calls made (by service and action, with the
 * throttled and quota-refused ones). Options: --targets N (default 20), --concurrency C (default
 * 10), --subnet CreateNewVPC|SelectedInstanceSubnet (default CreateNewVPC, the runbook's default),
 * --write (bench/results/fleet-<subnet>.json and the fleet section of docs/benchmarks.md), --render (only
 * rewrite that section from the results already in bench/results).
 *
 * The modeled wall time is an upper bound: executions running at once share the one virtual clock
 * and each advances it by its own step latencies (local/README.md, assumptions).
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateTagsCommand,
  DescribeRouteTablesCommand,
  DescribeVpcsCommand,
} from '@aws-sdk/client-ec2';
import { DescribeAutomationExecutionsCommand, GetAutomationExecutionCommand, SSMClient, StartAutomationExecutionCommand } from '@aws-sdk/client-ssm';
import { startTwin } from '../local/twin';
import { PROJECT_ROOT } from './keygen';

interface Options {
  targets: number;
  concurrency: number;
  subnet: 'CreateNewVPC' | 'SelectedInstanceSubnet';
  write: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { targets: 20, concurrency: 10, subnet: 'CreateNewVPC', write: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--write') o.write = true;
    else if (a === '--targets') o.targets = Number(argv[++i]);
    else if (a === '--concurrency') o.concurrency = Number(argv[++i]);
    else if (a === '--subnet') o.subnet = argv[++i] as Options['subnet'];
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.targets) || o.targets < 1 || o.targets > 50) throw new Error('--targets takes 1 to 50');
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1) throw new Error('--concurrency takes a whole number from 1');
  if (!['CreateNewVPC', 'SelectedInstanceSubnet'].includes(o.subnet)) throw new Error('--subnet takes CreateNewVPC or SelectedInstanceSubnet');
  return o;
}

export interface FleetResult {
  readonly version: 1;
  readonly date: string;
  readonly targets: number;
  readonly maxConcurrency: number;
  readonly subnetId: string;
  readonly parentStatus: string;
  readonly succeeded: number;
  readonly failed: number;
  /** The first failed step and its error, per failed target. */
  readonly failures: Array<{ target: string; step: string; message: string }>;
  /** Virtual seconds from the parent's start to its end (an upper bound, see the header). */
  readonly modeledWallSeconds: number;
  readonly apiCalls: number;
  readonly apiCallsByAction: Record<string, number>;
  readonly throttled: number;
  readonly vpcLimitExceeded: number;
  readonly realSeconds: number;
}

export async function measureFleet(o: Options, progress: (line: string) => void): Promise<FleetResult> {
  const realStart = Date.now();
  const twin = await startTwin({ transitions: 'settle', awsLimits: true, maxLifetimeSeconds: 1800, log: progress });
  try {
    {
      // A default VPC in AWS has an internet gateway and a 0.0.0.0/0 route to it
      // (https://docs.aws.amazon.com/vpc/latest/userguide/default-vpc.html); moto's has none, and
      // launch-helper refuses a subnet that cannot reach Systems Manager. Give it one, as
      // test/twin/success.test.ts does: the instances of the fleet live in it.
      const vpc = (await twin.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }))).Vpcs?.[0]?.VpcId as string;
      const igw = (await twin.ec2.send(new CreateInternetGatewayCommand({}))).InternetGateway?.InternetGatewayId as string;
      await twin.ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igw, VpcId: vpc }));
      for (const t of (await twin.ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: 'vpc-id', Values: [vpc] }] }))).RouteTables ?? []) {
        await twin.ec2.send(new CreateRouteCommand({ RouteTableId: t.RouteTableId, DestinationCidrBlock: '0.0.0.0/0', GatewayId: igw }));
      }
    }
    const ids: string[] = [];
    for (let i = 0; i < o.targets; i++) ids.push((await twin.createLockedOutInstance({})).instanceId);
    await twin.ec2.send(new CreateTagsCommand({ Resources: ids, Tags: [{ Key: 'fleet', Value: 'bench' }] }));
    twin.clock.advanceBy(600); // every bucket full again after the set-up
    const calls: Record<string, number> = {};
    let throttled = 0;
    let vpcLimitExceeded = 0;
    const stopTap = twin.agent.tapWire((x) => {
      const key = `${x.service}:${x.action}`;
      calls[key] = (calls[key] ?? 0) + 1;
      if (/RequestLimitExceeded/.test(x.response) && x.status !== 200) throttled++;
      if (/VpcLimitExceeded/.test(x.response) && x.status !== 200) vpcLimitExceeded++;
    });
    const ssm = new SSMClient({ endpoint: twin.agent.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
    try {
      const start = await ssm.send(
        new StartAutomationExecutionCommand({
          DocumentName: twin.documentName,
          Targets: [{ Key: 'tag:fleet', Values: ['bench'] }],
          TargetParameterName: 'InstanceId',
          MaxConcurrency: String(o.concurrency),
          MaxErrors: '100%',
          Parameters: { KeyType: ['ed25519'], SubnetId: [o.subnet] },
        }),
      );
      const parentId = start.AutomationExecutionId as string;
      await twin.automation.drain();
      stopTap();
      const parent = (await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: parentId }))).AutomationExecution;
      const children =
        (await ssm.send(new DescribeAutomationExecutionsCommand({ Filters: [{ Key: 'ParentExecutionId', Values: [parentId] }] }))).AutomationExecutionMetadataList ?? [];
      const failures: FleetResult['failures'] = [];
      for (const c of children.filter((x) => x.AutomationExecutionStatus !== 'Success')) {
        const detail = (await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: c.AutomationExecutionId }))).AutomationExecution;
        const step = detail?.StepExecutions?.find((s) => s.StepStatus === 'Failed' || s.StepStatus === 'TimedOut');
        failures.push({ target: c.Target ?? '', step: step?.StepName ?? '', message: (step?.FailureMessage ?? c.FailureMessage ?? '').slice(0, 200) });
      }
      const startT = parent?.ExecutionStartTime?.getTime() ?? 0;
      const endT = parent?.ExecutionEndTime?.getTime() ?? startT;
      return {
        version: 1,
        date: new Date().toISOString(),
        targets: o.targets,
        maxConcurrency: o.concurrency,
        subnetId: o.subnet,
        parentStatus: parent?.AutomationExecutionStatus ?? 'unknown',
        succeeded: children.filter((x) => x.AutomationExecutionStatus === 'Success').length,
        failed: failures.length,
        failures,
        modeledWallSeconds: Math.round((endT - startT) / 100) / 10,
        apiCalls: Object.values(calls).reduce((a, b) => a + b, 0),
        apiCallsByAction: Object.fromEntries(Object.entries(calls).sort(([, a], [, b]) => b - a)),
        throttled,
        vpcLimitExceeded,
        realSeconds: Math.round((Date.now() - realStart) / 1000),
      };
    } finally {
      ssm.destroy();
    }
  } finally {
    await twin.stop();
  }
}

const BEGIN = '<!-- fleet: written by bench/fleet.ts -->';
const END = '<!-- /fleet -->';

export function fleetSection(results: readonly FleetResult[]): string {
  const out = [BEGIN, '', '## Fleets (bench/fleet.ts)', ''];
  out.push(
    'A fleet started with rate control through the twin\'s Automation API, with EC2\'s VPC quota and API token buckets enforced ' +
      '(`startTwin({ awsLimits: true })`), the instances in a default VPC with an internet route as in AWS. `throttled` and ' +
      '`VpcLimitExceeded` count the refused requests (the SDK retried the first, launch-helper went to the instance subnet on the ' +
      'second). Modeled wall time: the parent execution\'s span on the virtual clock, an upper bound: concurrent executions share ' +
      'the one clock and each advances it (so the runner does not fail a fleet child\'s Lambda or API call on virtual time: ' +
      'local/README.md, assumptions). ' +
      '`npx tsx bench/fleet.ts --write [--subnet SelectedInstanceSubnet]`; `--render` rewrites this section from bench/results.',
  );
  out.push('');
  out.push('| targets | max concurrency | SubnetId | succeeded | failed by quota or throttling | failed otherwise | modeled wall time (upper bound) | API calls | throttled | VpcLimitExceeded |');
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const byLimits = r.failures.filter((f) => /VpcLimitExceeded|RequestLimitExceeded|Throttl/.test(f.message));
    const others = r.failures.filter((f) => !byLimits.includes(f));
    const otherText = others.length === 0 ? '0' : `${others.length} (${[...new Set(others.map((f) => `${f.step}: ${f.message.replace(/[0-9.]+s/g, 'N s').slice(0, 60)}`))].join('; ')})`;
    out.push(
      `| ${r.targets} | ${r.maxConcurrency} | ${r.subnetId} | ${r.succeeded} | ${byLimits.length} | ${otherText} | ${r.modeledWallSeconds} s | ${r.apiCalls} | ${r.throttled} | ${r.vpcLimitExceeded} |`,
    );
  }
  out.push('', END, '');
  return out.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const render = argv.includes('--render');
  const o = parse(argv.filter((a) => a !== '--render'));
  const dir = path.join(PROJECT_ROOT, 'bench', 'results');
  if (!render) {
    const result = await measureFleet(o, (line) => process.stderr.write(`${line}\n`));
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    if (o.write) fs.writeFileSync(path.join(dir, `fleet-${o.subnet}.json`), `${JSON.stringify(result, null, 2)}\n`);
  }
  if (o.write || render) {
    const all = fs
      .readdirSync(dir)
      .filter((f) => /^fleet-.*\.json$/.test(f))
      .sort()
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as FleetResult);
    const doc = path.join(PROJECT_ROOT, 'docs', 'benchmarks.md');
    const text = fs.readFileSync(doc, 'utf8');
    const a = text.indexOf(BEGIN);
    const b = text.indexOf(END);
    const kept = a >= 0 && b > a ? text.slice(0, a) + text.slice(b + END.length).replace(/^\n+/, '') : text;
    fs.writeFileSync(doc, `${kept.replace(/\n*$/, '\n\n')}${fleetSection(all)}`);
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
