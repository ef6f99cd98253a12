/**
 * The default `awsCall` for the runner: maps an Automation (Service, Api) pair to the AWS SDK
 * v3 client and its `${Api}Command`, loaded by name, with dummy credentials at a given
 * endpoint (moto, or the twin's agent in front of it). Parameters are passed as written in the
 * document (API names, PascalCase), and the answer comes back as plain JSON (dates as ISO
 * strings, no $metadata), as Automation's selectors see it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { AwsCall } from './runner';

/**
 * Services without an SDK v3 client in this project go through the preinstalled AWS CLI v1
 * (botocore: its service model checks the parameters, as the service would), the API's own
 * PascalCase JSON given as --cli-input-json. Today: resource-groups (RevokeKey's readGroup step).
 */
const CLI_SERVICES = new Set(['resource-groups']);
const run = promisify(execFile);

/** The CLI's operation name of an API name (GetGroupQuery -> get-group-query), as botocore derives it. */
export function cliOperation(api: string): string {
  return api
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase();
}

async function cliCall(endpoint: string, region: string, service: string, api: string, params: Record<string, unknown>): Promise<unknown> {
  try {
    const r = await run('aws', [service, cliOperation(api), '--cli-input-json', JSON.stringify(params), '--endpoint-url', endpoint, '--region', region, '--output', 'json'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_CONFIG_FILE: '/nonexistent',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
        AWS_PAGER: '',
        AWS_MAX_ATTEMPTS: '1',
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    return r.stdout.trim() === '' ? {} : (JSON.parse(r.stdout) as unknown);
  } catch (err) {
    // "An error occurred (NotFoundException) when calling the GetGroupQuery operation: ..."
    const text = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    const code = /An error occurred \(([^)]+)\)/.exec(text)?.[1];
    const e = new Error(text.split('\n').pop() ?? text);
    e.name = code ?? 'AwsCliError';
    throw e;
  }
}

const CLIENTS: Record<string, { pkg: string; client: string }> = {
  ec2: { pkg: '@aws-sdk/client-ec2', client: 'EC2Client' },
  ssm: { pkg: '@aws-sdk/client-ssm', client: 'SSMClient' },
  kms: { pkg: '@aws-sdk/client-kms', client: 'KMSClient' },
  iam: { pkg: '@aws-sdk/client-iam', client: 'IAMClient' },
  autoscaling: { pkg: '@aws-sdk/client-auto-scaling', client: 'AutoScalingClient' },
};

export class UnsupportedAwsCall extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedAwsCall';
  }
}

interface SdkClient {
  send(command: unknown): Promise<Record<string, unknown>>;
}
type SdkModule = Record<string, new (input: unknown) => unknown>;

export function sdkAwsCall(endpoint: string, region = 'us-east-1'): AwsCall {
  const clients = new Map<string, { mod: SdkModule; client: SdkClient }>();

  const load = (service: string) => {
    const key = service.toLowerCase();
    const known = clients.get(key);
    if (known) return known;
    const spec = CLIENTS[key];
    if (!spec) throw new UnsupportedAwsCall(`service "${service}" is not mapped (known: ${Object.keys(CLIENTS).join(', ')})`);
    let mod: SdkModule;
    try {
      // Loaded by name so that a service the twin never calls needs no installed package.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(spec.pkg) as SdkModule;
    } catch {
      throw new UnsupportedAwsCall(`service "${service}" needs the package ${spec.pkg}, which is not installed`);
    }
    const Client = mod[spec.client];
    const client = new Client({
      endpoint,
      region,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    }) as SdkClient;
    const entry = { mod, client };
    clients.set(key, entry);
    return entry;
  };

  return async (service, api, params) => {
    if (CLI_SERVICES.has(service.toLowerCase())) return cliCall(endpoint, region, service.toLowerCase(), api, params as Record<string, unknown>);
    const { mod, client } = load(service);
    const name = `${api.charAt(0).toUpperCase()}${api.slice(1)}Command`;
    const Command = mod[name];
    if (typeof Command !== 'function') throw new UnsupportedAwsCall(`${service} has no API "${api}" (no ${name} in the SDK)`);
    const out = await client.send(new Command(params));
    const { $metadata: _metadata, ...rest } = out;
    return JSON.parse(JSON.stringify(rest)) as unknown;
  };
}
