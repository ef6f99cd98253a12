/**
 * On the twin (moto, the agent, the runner on the synthesized runbook, the real handler bundles).
 *
 * Hostile parameters: refused at the start (the document's patterns, as the runner applies them,
 * or preflight), with no call that changes anything and nothing left behind.
 *
 * Secret handling: after a full run and after a failed run, the private key (any
 * 32-character run of its base64 body) appears nowhere but the SecureString.
 *
 * Scanned: every AWS request and response, except the one PutParameter that stores the key and
 * the test's own GetParameter WithDecryption that reads it back: as bodies on the wire at the
 * twin's agent (the step Lambdas carry their own SDK in their bundles, so this is where their
 * calls are seen), and at Client.send of this process's SDK (the runner's wait steps, the twin's
 * own set-up, including calls that go to moto directly); the runner's step outputs and failure messages; the command's parameters, stdout and
 * stderr as the agent ran it; the Lambdas' log lines; the twin's and the runner's progress
 * lines; everything written to console and process.stdout/stderr during the runs.
 */
import { openSync, readSync, closeSync, statSync } from 'fs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { asText, leaks, RUN_LENGTH, secretBody, type Exhibit } from './support/secrets';
import { GOOD_ED25519, KEYS, PUBLIC_KEY_ROWS } from './support/hostile';
import { startTwin, type Twin } from '../../local/twin';
import type { WireExchange } from '../../local/agent';

jest.setTimeout(600_000);

interface SdkRecord {
  client: string;
  command: string;
  input: Record<string, unknown>;
  output?: unknown;
  error?: unknown;
}

const records: SdkRecord[] = [];
const testLog: string[] = [];
let twin: Twin;
let untap: (() => void) | undefined;

/** A wire exchange in the shape of an SDK record: the request's fields as input, the answer as output or error. */
function fromWire(x: WireExchange): SdkRecord {
  const parse = (text: string): Record<string, unknown> => {
    if (x.protocol === 'json') {
      try {
        return text.trim() === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        return { unparsed: text };
      }
    }
    return Object.fromEntries(new URLSearchParams(text));
  };
  const rec: SdkRecord = { client: `wire:${x.service}`, command: `${x.action}Command`, input: parse(x.request) };
  if (x.status < 400) rec.output = x.protocol === 'json' ? parse(x.response) : x.response;
  else rec.error = x.response;
  return rec;
}

// Every SDK v3 client shares one base class: its send sees every request and response.
const base = Object.getPrototypeOf(SSMClient.prototype) as { send: (...args: unknown[]) => Promise<unknown> };
const originalSend = base.send;

beforeAll(async () => {
  base.send = async function recordingSend(this: { constructor: { name: string } }, ...args: unknown[]): Promise<unknown> {
    const command = args[0] as { constructor: { name: string }; input: Record<string, unknown> };
    const rec: SdkRecord = { client: this.constructor.name, command: command?.constructor?.name ?? '?', input: command?.input ?? {} };
    records.push(rec);
    try {
      rec.output = await originalSend.apply(this, args);
      return rec.output;
    } catch (error) {
      rec.error = error;
      throw error;
    }
  };
  twin = await startTwin({ maxLifetimeSeconds: 900, log: (line) => testLog.push(line) });
  untap = twin.agent.tapWire((exchange) => records.push(fromWire(exchange)));
}, 600_000);

afterAll(async () => {
  untap?.();
  base.send = originalSend;
  await twin?.stop();
});

/** Captures console.* and process.stdout/stderr while `fn` runs. */
async function capturing<T>(fn: () => Promise<T>): Promise<{ value: T; exhibits: Exhibit[] }> {
  const exhibits: Exhibit[] = [];
  const spies: jest.SpyInstance[] = [];
  for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[m].bind(console);
    spies.push(
      jest.spyOn(console, m).mockImplementation((...a: unknown[]) => {
        exhibits.push({ source: `console.${m}`, text: a.map(asText).join(' ') });
        original(...(a as []));
      }),
    );
  }
  for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]] as const) {
    const original = stream.write.bind(stream);
    spies.push(
      jest.spyOn(stream, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
        exhibits.push({ source: `process.${name}`, text: asText(chunk) });
        return (original as (...x: unknown[]) => boolean)(chunk, ...rest);
      }) as never),
    );
  }
  try {
    return { value: await fn(), exhibits };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

/** The SDK records as exhibits, leaving out the two places the key may be. */
function sdkExhibits(from: number, keyName: string): Exhibit[] {
  return records.slice(from).flatMap((r, i): Exhibit[] => {
    const storesKey = r.command === 'PutParameterCommand' && r.input.Name === keyName;
    const readsKeyBack = r.command === 'GetParameterCommand' && r.input.Name === keyName && r.input.WithDecryption === true;
    const input = storesKey ? { ...r.input, Value: '[the SecureString value]' } : r.input;
    const out: Exhibit[] = [{ source: `SDK #${from + i} ${r.client}.${r.command} input`, text: asText(input) }];
    if (r.error !== undefined) out.push({ source: `SDK #${from + i} ${r.command} error`, text: asText(r.error) });
    if (!readsKeyBack && r.output !== undefined) out.push({ source: `SDK #${from + i} ${r.command} output`, text: asText(r.output) });
    return out;
  });
}

function agentExhibits(): Exhibit[] {
  return twin.agent.commands().flatMap((c) => [
    { source: `command ${c.commandId} parameters`, text: asText(c.parameters) },
    { source: `command ${c.commandId} stdout`, text: c.stdout ?? '' },
    { source: `command ${c.commandId} stderr`, text: c.stderr ?? '' },
    { source: `command ${c.commandId} comment`, text: c.comment ?? '' },
  ]);
}

function resultExhibits(result: unknown): Exhibit[] {
  const r = result as { steps?: Array<{ name: string; outputs: unknown; failureMessage?: string }>; outputs?: unknown; failureMessage?: string };
  return [
    { source: 'run outputs', text: asText(r.outputs) },
    { source: 'run failure message', text: r.failureMessage ?? '' },
    ...(r.steps ?? []).flatMap((s) => [
      { source: `step ${s.name} outputs`, text: asText(s.outputs) },
      { source: `step ${s.name} failure`, text: s.failureMessage ?? '' },
    ]),
  ];
}

function logExhibits(runnerLog: string[]): Exhibit[] {
  return [
    ...twin.lambdaLogs().map((l, i) => ({ source: `Lambda log #${i}`, text: l })),
    ...testLog.map((l, i) => ({ source: `twin log #${i}`, text: l })),
    ...runnerLog.map((l, i) => ({ source: `runner log #${i}`, text: l })),
  ];
}

/** The public key lines this run sent (SendCommand inputs recorded since `from`). */
function publicKeysSentSince(from: number): string[] {
  return records
    .slice(from)
    .filter((r) => r.command === 'SendCommandCommand')
    .flatMap((r) => ((r.input.Parameters as Record<string, string[]> | undefined)?.PublicKey ?? []) as string[]);
}

/** Every public key line sent to a helper: as the agent ran it, and as SendCommand asked (even a call that failed). */
function publicKeysSent(): string[] {
  const viaAgent = twin.agent.commands().map((c) => c.parameters.PublicKey ?? '');
  const viaSdk = records
    .filter((r) => r.command === 'SendCommandCommand')
    .flatMap((r) => ((r.input.Parameters as Record<string, string[]> | undefined)?.PublicKey ?? []) as string[]);
  return [...new Set([...viaAgent, ...viaSdk])].filter((k) => k !== '');
}

test('a full run: the private key is in the SecureString and nowhere else', async () => {
  const instance = await twin.createLockedOutInstance({});
  const keyName = `/ec2rl/openssh/${instance.instanceId}/key`;
  const from = records.length;
  const runnerLog: string[] = [];
  const { value: run, exhibits } = await capturing(() =>
    twin.runReset({ InstanceId: instance.instanceId, KeyType: 'rsa' }, { log: (l) => runnerLog.push(l) }),
  );
  expect(run.result.status).toBe('Success');
  expect(JSON.parse(String(run.result.outputs['summarize.Payload'])).KeyParameterName).toBe(keyName);
  const privateKey = (await twin.getParameter(keyName, true)) ?? '';
  expect(privateKey.includes('PRIVATE KEY')).toBe(true); // a boolean: a failure never prints the key
  // it was stored once, as a SecureString with the stack's key
  const stores = records.slice(from).filter((r) => r.command === 'PutParameterCommand' && r.input.Name === keyName);
  expect(stores).toHaveLength(1);
  expect({ Type: stores[0].input.Type, KeyId: stores[0].input.KeyId }).toEqual({ Type: 'SecureString', KeyId: twin.keyArn }); // never print the input: it holds the key
  // the detector sees the key where it is (so an empty result below means something)
  expect(leaks([{ source: 'the store call', text: asText(stores[0].input) }], privateKey).length).toBe(1);

  const all = [...sdkExhibits(from, keyName), ...resultExhibits(run.result), ...agentExhibits(), ...logExhibits(runnerLog), ...exhibits];
  expect(all.length).toBeGreaterThan(50);
  expect(leaks(all, privateKey, publicKeysSent())).toEqual([]);
  // and the private key never reached the target's disk (only the public line did)
  expect(diskHolds(instance.imagePath as string, privateKey, publicKeysSentSince(from))).toEqual({ privateRuns: 0, publicLine: true });
});

/**
 * Looks through a disk image for runs of the private key (outside its public part) and for
 * the public key line, with Buffer.indexOf over the raw bytes, in chunks.
 */
function diskHolds(imagePath: string, privateKey: string, publicLines: string[]): { privateRuns: number; publicLine: boolean } {
  const body = secretBody(privateKey);
  const publicRuns = new Set<string>();
  for (const pub of publicLines) for (let i = 0; i + RUN_LENGTH <= pub.length; i++) publicRuns.add(pub.slice(i, i + RUN_LENGTH));
  const needles: Buffer[] = [];
  for (let i = 0; i + RUN_LENGTH <= body.length && needles.length < 24; i += Math.max(1, Math.floor(body.length / 24))) {
    const run = body.slice(i, i + RUN_LENGTH);
    if (!publicRuns.has(run)) needles.push(Buffer.from(run, 'latin1'));
  }
  const publicNeedles = publicLines.map((l) => Buffer.from(l.split(' ').slice(0, 2).join(' '), 'latin1'));
  let privateRuns = 0;
  let publicLine = false;
  const size = statSync(imagePath).size;
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  const fd = openSync(imagePath, 'r');
  try {
    for (let pos = 0; pos < size; pos += chunk.length - 4096) {
      const n = readSync(fd, chunk, 0, chunk.length, pos);
      const view = chunk.subarray(0, n);
      for (const needle of needles) if (view.includes(needle)) privateRuns += 1;
      if (publicNeedles.some((p) => p.length > 0 && view.includes(p))) publicLine = true;
      if (n < chunk.length) break;
    }
  } finally {
    closeSync(fd);
  }
  return { privateRuns, publicLine };
}

test('a failed run after the key was written: no key anywhere else, and the parameter is deleted or named', async () => {
  const instance = await twin.createLockedOutInstance({});
  const keyName = `/ec2rl/openssh/${instance.instanceId}/key`;
  const from = records.length;
  const runnerLog: string[] = [];
  const { value: run, exhibits } = await capturing(() =>
    twin.runReset(
      { InstanceId: instance.instanceId, KeyType: 'ed25519' },
      { faults: [{ step: 'releaseFromHelper', when: 'before', message: 'security test: fail after the key was written' }], log: (l) => runnerLog.push(l) },
    ),
  );
  expect(run.result.status).not.toBe('Success');
  const stores = records.slice(from).filter((r) => r.command === 'PutParameterCommand' && r.input.Name === keyName);
  expect(stores).toHaveLength(1);
  const privateKey = String(stores[0].input.Value);
  expect(privateKey.includes('PRIVATE KEY')).toBe(true); // a boolean: a failure never prints the key

  const stillThere = (await twin.getParameter(keyName, true)) !== undefined;
  const messages = [run.result.failureMessage ?? '', ...run.result.steps.map((s) => `${s.failureMessage ?? ''} ${asText(s.outputs)}`)].join('\n');
  // It must be one of the two: deleted, or kept and named where the user reads the result. What
  // the code does here: the inject command had already put the key on the volume when the step
  // after it failed, so restore counts it as injected, keeps the private key and names it.
  expect(stillThere ? messages.includes(keyName) : true).toBe(true);
  expect({ kept: stillThere, named: messages.includes(keyName) }).toEqual({ kept: true, named: true });
  expect(diskHolds(instance.imagePath as string, privateKey, publicKeysSentSince(from)).publicLine).toBe(true);

  const all = [...sdkExhibits(from, keyName), ...resultExhibits(run.result), ...agentExhibits(), ...logExhibits(runnerLog), ...exhibits];
  expect(leaks(all, privateKey, publicKeysSent())).toEqual([]);
});

test.each([
  ['an AWS fault on SendCommand (inject-key throws after the key was written)', 'deleted', { awsFaults: [{ service: 'ssm', action: 'SendCommand' }] }],
  ['a failure at startInstance (the key was injected)', 'kept and named', { faults: [{ step: 'startInstance', when: 'before' as const, message: 'security test: fail after injection' }] }],
])('a failed run, %s: the key is %s, and nowhere else', async (_label, expected, options) => {
  const instance = await twin.createLockedOutInstance({});
  const keyName = `/ec2rl/openssh/${instance.instanceId}/key`;
  const from = records.length;
  const runnerLog: string[] = [];
  const { value: run, exhibits } = await capturing(() =>
    twin.runReset({ InstanceId: instance.instanceId, KeyType: 'ed25519' }, { ...options, log: (l: string) => runnerLog.push(l) }),
  );
  expect(run.result.status).not.toBe('Success');
  const stores = records.slice(from).filter((r) => r.command === 'PutParameterCommand' && r.input.Name === keyName);
  expect(stores.length).toBeGreaterThan(0);
  const privateKey = String(stores[0].input.Value);
  const stillThere = (await twin.getParameter(keyName, true)) !== undefined;
  const messages = [run.result.failureMessage ?? '', ...run.result.steps.map((s) => `${s.failureMessage ?? ''} ${asText(s.outputs)}`)].join('\n');
  if (expected === 'deleted') expect({ stillThere }).toEqual({ stillThere: false });
  else expect({ stillThere, named: messages.includes(keyName) }).toEqual({ stillThere: true, named: true });
  const all = [...sdkExhibits(from, keyName), ...resultExhibits(run.result), ...agentExhibits(), ...logExhibits(runnerLog), ...exhibits];
  expect(leaks(all, privateKey, publicKeysSent())).toEqual([]);
});

describe('hostile parameters on the twin are refused before any change', () => {
  const pk = (label: string): string => (PUBLIC_KEY_ROWS.find(([l]) => l === label) as [string, string])[1];
  const CASES: Array<[string, Record<string, unknown>]> = [
    ['Users with a path', { Users: '../root' }],
    ['Users with a command', { Users: 'ec2-user;reboot' }],
    ['SubnetId with a command', { SubnetId: 'CreateNewVPC;id' }],
    ['HelperInstanceType with a substitution', { HelperInstanceType: 't3.small$(id)' }],
    ['PublicKey with a command= option', { PublicKey: `command="id" ${GOOD_ED25519}` }],
    ['PublicKey: a private key', { PublicKey: KEYS.opensshPrivate }],
    // these pass the document's pattern: preflight's parser refuses them
    ['PublicKey whose type differs from its blob', { PublicKey: pk('type differs from the blob') }],
    ['PublicKey: RSA 1024', { PublicKey: pk('RSA 1024 (too weak)') }],
  ];

  test.each(CASES)('%s', async (_label, hostile) => {
    const instance = await twin.createLockedOutInstance({ image: false });
    const before = await twin.snapshotInstance(instance.instanceId);
    twin.agent.resetCalls();
    let status = 'threw';
    let message = '';
    try {
      const run = await twin.runReset({ InstanceId: instance.instanceId, ...hostile });
      status = run.result.status;
      message = [run.result.failureMessage ?? '', ...run.result.steps.map((s) => s.failureMessage ?? '')].join(' ');
    } catch (err) {
      message = asText(err);
    }
    expect(status).not.toBe('Success');
    // no private key in the message (first: a failing check below would print the message)
    expect(leaks([{ source: 'message', text: message }], KEYS.opensshPrivate)).toEqual([]);
    // the message names the parameter
    expect(message).toContain(Object.keys(hostile)[0]);
    // nothing that changes anything reached AWS
    const mutating = Object.keys(twin.agent.calls()).filter((k) => !/^[a-z]+:(Describe|Get|List)/.test(k));
    expect(mutating).toEqual([]);
    expect(await twin.snapshotInstance(instance.instanceId)).toEqual(before);
    expect((await twin.leftovers()).locks).toEqual([]);
  });
});
