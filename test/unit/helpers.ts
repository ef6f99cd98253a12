/** Shared fixtures of the step Lambda tests: a plan, an in-memory parameter store, a free clock. */
import type { AwsClientStub } from 'aws-sdk-client-mock';
import {
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import type { Clock } from '@common/ec2';
import type { Logger } from '@common/log';
import { lockParameterName, type Plan } from '@common/plan';

export const EXECUTION_ID = '4105a4fc-f944-11e6-9d32-0123456789ab';
export const OTHER_EXECUTION_ID = '99999999-f944-11e6-9d32-0123456789ab';
export const INSTANCE_ID = 'i-0123456789abcdef0';
export const HELPER_ID = 'i-0fedcba9876543210';
export const ROOT_VOLUME_ID = 'vol-0123456789abcdef0';
export const LOCK_NAME = lockParameterName(INSTANCE_ID);
export const STEP_INPUT = { executionId: EXECUTION_ID, instanceId: INSTANCE_ID };
export const STEP_EVENT = { ExecutionId: EXECUTION_ID, InstanceId: INSTANCE_ID };

export function makePlan(overrides: Partial<Plan> = {}): Plan {
  return {
    version: 1,
    executionId: EXECUTION_ID,
    instanceId: INSTANCE_ID,
    createdAt: '2026-11-23T16:00:00.000Z',
    inputs: {
      method: 'Auto',
      subnetId: 'CreateNewVPC',
      helperInstanceType: 't3.small',
      keyType: 'ed25519',
      publicKey: '',
      users: [],
      backupMethod: 'Snapshot',
      allowEncryptedVolume: true,
      allowEphemeralDataLoss: false,
    },
    method: { chosen: 'VolumeSwap', reason: 'Auto: not managed by Systems Manager' },
    instance: {
      originalState: 'running',
      rootVolumeId: ROOT_VOLUME_ID,
      rootDeviceName: '/dev/xvda',
      deleteOnTermination: true,
      availabilityZone: 'us-east-1a',
      architecture: 'x86_64',
      subnetId: 'subnet-0123456789abcdef0',
      vpcId: 'vpc-0123456789abcdef0',
      publicIpAddress: '203.0.113.10',
      elasticIp: false,
    },
    created: {},
    progress: { keyInjected: false, phase: 'preflight' },
    ...overrides,
  };
}

export interface StoredParameter {
  value: string;
  type: string;
  version: number;
}

/**
 * Makes `ssmMock` behave like Parameter Store for Get/Put/Delete/DescribeParameters (Overwrite and
 * ParameterAlreadyExists included). Returns the backing map.
 */
export function parameterStore(ssmMock: AwsClientStub<SSMClient>, initial: Record<string, string> = {}): Map<string, StoredParameter> {
  const store = new Map<string, StoredParameter>();
  for (const [k, v] of Object.entries(initial)) store.set(k, { value: v, type: 'String', version: 1 });
  ssmMock.on(GetParameterCommand).callsFake((input: { Name: string }) => {
    const p = store.get(input.Name);
    if (!p) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return { Parameter: { Name: input.Name, Value: p.value, Type: p.type, Version: p.version } };
  });
  ssmMock.on(PutParameterCommand).callsFake((input: { Name: string; Value: string; Type?: string; Overwrite?: boolean }) => {
    const existing = store.get(input.Name);
    if (existing && !input.Overwrite) throw new ParameterAlreadyExists({ message: 'exists', $metadata: {} });
    const version = (existing?.version ?? 0) + 1;
    store.set(input.Name, { value: input.Value, type: input.Type ?? existing?.type ?? 'String', version });
    return { Version: version };
  });
  ssmMock.on(DeleteParameterCommand).callsFake((input: { Name: string }) => {
    if (!store.delete(input.Name)) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return {};
  });
  ssmMock.on(DescribeParametersCommand).callsFake((input: { ParameterFilters?: { Values?: string[] }[] }) => {
    const name = input.ParameterFilters?.[0]?.Values?.[0] ?? '';
    const p = store.get(name);
    return { Parameters: p ? [{ Name: name, Version: p.version, Type: p.type }] : [] };
  });
  return store;
}

export function storePlan(store: Map<string, StoredParameter>, plan: Plan): void {
  store.set(lockParameterName(plan.instanceId), { value: JSON.stringify(plan), type: 'String', version: 1 });
}

export function storedPlan(store: Map<string, StoredParameter>, instanceId = INSTANCE_ID): Plan | undefined {
  const p = store.get(lockParameterName(instanceId));
  return p ? (JSON.parse(p.value) as Plan) : undefined;
}

/** A logger that records its lines (as the JSON logger would print them). */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(JSON.stringify({ level, message, ...fields }));
  };
  return { lines, info: rec('INFO'), warn: rec('WARN'), error: rec('ERROR') };
}

/** A clock whose sleep advances time at once. */
export function fakeClock(start = 0): Clock & { elapsed: () => number } {
  let t = start;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
    elapsed: () => t - start,
  };
}

/** A typed EC2/SDK error, as the SDK raises it for an error code. */
export function awsError(name: string, message = name): Error {
  const err = new Error(message) as Error & { $metadata: object; Code: string };
  err.name = name;
  err.Code = name;
  err.$metadata = {};
  return err;
}

/** The names of the commands a mocked client was sent, in order (e.g. `AttachVolumeCommand`). */
export function sentCommands(mock: { calls: () => { args: unknown[] }[] }): string[] {
  return mock.calls().map((c) => (c.args[0] as object).constructor.name);
}
