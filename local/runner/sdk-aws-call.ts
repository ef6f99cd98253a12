/**
 * The default `awsCall` for the runner: maps an Automation (Service, Api) pair to the AWS SDK
 * v3 client and its `${Api}Command`, loaded by name, with dummy credentials at a given
 * endpoint (moto, or the twin's agent in front of it). Parameters are passed as written in the
 * document (API names, PascalCase), and the answer comes back as plain JSON (dates as ISO
 * strings, no $metadata), as Automation's selectors see it.
 */
import type { AwsCall } from './runner';

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
    const { mod, client } = load(service);
    const name = `${api.charAt(0).toUpperCase()}${api.slice(1)}Command`;
    const Command = mod[name];
    if (typeof Command !== 'function') throw new UnsupportedAwsCall(`${service} has no API "${api}" (no ${name} in the SDK)`);
    const out = await client.send(new Command(params));
    const { $metadata: _metadata, ...rest } = out;
    return JSON.parse(JSON.stringify(rest)) as unknown;
  };
}
