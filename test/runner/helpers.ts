import { VirtualClock } from '../../local/runner/clock';
import { AwsCall, InvokeLambda, runAutomation, RunAutomationOptions } from '../../local/runner/runner';

export type Handler = (event: Record<string, unknown>) => unknown;

/** An in-memory Lambda fleet: FunctionName (string or intrinsic, compared as JSON) → handler; records calls. */
export function lambdas(handlers: Record<string, Handler>) {
  const calls: { fn: unknown; event: Record<string, unknown> }[] = [];
  const invoke: InvokeLambda = async (fn, payload) => {
    const key = typeof fn === 'string' ? fn : JSON.stringify(fn);
    calls.push({ fn, event: payload as Record<string, unknown> });
    const h = handlers[key];
    if (!h) throw new Error(`no fake Lambda ${key}`);
    return h(payload as Record<string, unknown>);
  };
  return { invoke, calls, names: () => calls.map((c) => (typeof c.fn === 'string' ? c.fn : JSON.stringify(c.fn))) };
}

/**
 * A fake EC2 in the style of the twin's agent: StopInstances schedules its completion on the
 * clock, DescribeInstances answers "stopping" while the stop is pending and "stopped" after.
 */
export function fakeEc2(clock: VirtualClock, stopSeconds?: number) {
  const state = new Map<string, string>([['i-0123456789abcdef0', 'running']]);
  const calls: { service: string; api: string; params: Record<string, unknown> }[] = [];
  const awsCall: AwsCall = async (service, api, params) => {
    calls.push({ service, api, params });
    if (service !== 'ec2') throw new Error(`fake has no ${service}`);
    const ids = (params.InstanceIds as string[] | undefined) ?? [];
    if (api === 'StopInstances') {
      for (const id of ids) state.set(id, 'stopping');
      clock.schedule('StopInstances', ids, stopSeconds);
      return { StoppingInstances: ids.map((InstanceId) => ({ InstanceId })) };
    }
    if (api === 'DescribeInstances') {
      for (const id of ids) if (!state.has(id)) throw Object.assign(new Error(`The instance ID '${id}' does not exist`), { name: 'InvalidInstanceID.NotFound' });
      return {
        Reservations: [
          {
            Instances: ids.map((id) => {
              let s = state.get(id) as string;
              if (s === 'stopping' && clock.pending(id).length === 0) {
                s = 'stopped';
                state.set(id, s);
              }
              return { InstanceId: id, State: { Name: s }, CpuOptions: { CoreCount: 2 }, Tags: [{ Key: 'a', Value: 'b' }] };
            }),
          },
        ],
      };
    }
    throw new Error(`fake has no ec2 ${api}`);
  };
  return { awsCall, calls, state };
}

export const noAws: AwsCall = async (service, api) => {
  throw new Error(`unexpected AWS call ${service} ${api}`);
};

/** A schemaVersion 0.3 document from steps (and optional parameters/outputs). */
export function doc(mainSteps: Record<string, unknown>[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: '0.3', mainSteps, ...extra };
}

export function lambdaStep(name: string, fn: string, extra: Record<string, unknown> = {}, payload: Record<string, unknown> = {}) {
  return {
    name,
    action: 'aws:invokeLambdaFunction',
    inputs: { FunctionName: fn, InputPayload: { ExecutionId: '{{ automation:EXECUTION_ID }}', ...payload } },
    ...extra,
  };
}

export function run(opts: Partial<RunAutomationOptions> & Pick<RunAutomationOptions, 'document'>) {
  return runAutomation({ invokeLambda: lambdas({}).invoke, awsCall: noAws, ...opts });
}

let n = 0;
export function freshId(prefix = 'exec'): string {
  n += 1;
  return `${prefix}-${process.pid}-${n}-${Math.random().toString(36).slice(2, 8)}`;
}
