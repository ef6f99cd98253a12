/**
 * The private key appears nowhere but the SecureString's Value.
 *
 * With mocked clients: inject-key (and restore after it) run while every console call, every
 * write to process.stdout/stderr, every SDK command input, the returned payloads and the thrown
 * errors are captured; no 32-character run of the private key's base64 body may appear in any
 * of them, except in the one PutParameter Value that stores it.
 *
 * The twin's whole-run checks are in test/security/secrets-twin.test.ts.
 */
import './support/env';
import { execFileSync } from 'child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_VOLUME, HELPER_INSTANCE, makePlan } from './support/fixtures';
import { KEY_ARN } from './support/env';
import { ec2, resetAll, sentCommands, ssm, type SentCommand } from './support/mocks';
import { ParamStore } from './support/param-store';
import { REPO } from './support/patterns';
import { asText, leaks, type Exhibit } from './support/secrets';
import { GOOD_ED25519 } from './support/hostile';

type Handler = (event: unknown) => Promise<unknown>;
function loadHandler(folder: string): Handler {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(join(REPO, 'lambdas', folder, 'handler')) as { handler: Handler }).handler;
}

const LOCK = `/reset-access/locks/${GOOD_INSTANCE}`;
const KEY_PARAMETER = `/ec2rl/openssh/${GOOD_INSTANCE}/key`;
const EVENT = { ExecutionId: GOOD_EXECUTION, InstanceId: GOOD_INSTANCE };

/** Everything a run let out: console, stdout/stderr, results, errors. SDK inputs are read from the mocks. */
class Capture {
  public readonly exhibits: Exhibit[] = [];
  private spies: jest.SpyInstance[] = [];

  public start(): void {
    for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
      this.spies.push(
        jest.spyOn(console, m).mockImplementation((...args: unknown[]) => {
          this.exhibits.push({ source: `console.${m}`, text: args.map(asText).join(' ') });
        }),
      );
    }
    for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]] as const) {
      this.spies.push(
        jest.spyOn(stream, 'write').mockImplementation(((chunk: unknown) => {
          this.exhibits.push({ source: `process.${name}`, text: asText(chunk) });
          return true;
        }) as never),
      );
    }
  }

  public stop(): void {
    for (const s of this.spies) s.mockRestore();
    this.spies = [];
  }

  public async run(label: string, handler: Handler, event: unknown): Promise<{ result?: unknown; error?: unknown }> {
    try {
      const result = await handler(event);
      this.exhibits.push({ source: `${label} result`, text: asText(result) });
      return { result };
    } catch (error) {
      this.exhibits.push({ source: `${label} error`, text: asText(error) });
      return { error };
    }
  }
}

/** Every SDK command input, with the one allowed place (the key's PutParameter Value) blanked. */
function sdkExhibits(): Exhibit[] {
  return sentCommands().map((c: SentCommand, i) => {
    const input = { ...c.input };
    if (c.name === 'PutParameter' && input.Name === KEY_PARAMETER && input.Type === 'SecureString') input.Value = '[the SecureString value]';
    return { source: `SDK #${i} ${c.service}:${c.name} input`, text: asText(input) };
  });
}

function storedPrivateKey(): string {
  const put = sentCommands().find((c) => c.name === 'PutParameter' && c.input.Name === KEY_PARAMETER);
  expect(put).toBeDefined();
  return String(put?.input.Value);
}

/** The public key ssh-keygen derives from the private key (proves the secret we scan for is the real one). */
function publicOf(privateKey: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sec-pk-'));
  try {
    const file = join(dir, 'k');
    writeFileSync(file, privateKey, { mode: 0o600 });
    return execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let store: ParamStore;
let capture: Capture;

beforeEach(() => {
  resetAll();
  ec2.onAnyCommand().resolves({});
  ssm.onAnyCommand().resolves({});
  store = new ParamStore().install();
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: '11111111-2222-3333-4444-555555555555', Status: 'Pending' } });
  capture = new Capture();
});

afterEach(() => capture.stop());

describe.each(['rsa', 'ed25519'])('inject-key with a generated %s key', (keyType) => {
  beforeEach(() => {
    store.putJson(LOCK, makePlan({ keyType, phase: 'attached-to-helper', created: { helperInstanceId: HELPER_INSTANCE } }));
  });

  test('the private key is only in the SecureString: not in logs, stdout/stderr, other SDK inputs or the result', async () => {
    const inject = loadHandler('inject-key');
    capture.start();
    const { result, error } = await capture.run('inject-key', inject, EVENT);
    capture.stop();
    expect(error).toBeUndefined();

    const privateKey = storedPrivateKey();
    const put = sentCommands().find((c) => c.name === 'PutParameter' && c.input.Name === KEY_PARAMETER);
    expect({ Type: put?.input.Type, KeyId: put?.input.KeyId }).toEqual({ Type: 'SecureString', KeyId: KEY_ARN }); // never print the input: it holds the key
    // the secret is real: its public half is what the helper was sent
    const send = sentCommands().find((c) => c.name === 'SendCommand');
    const sentPublic = (send?.input.Parameters as Record<string, string[]>).PublicKey[0];
    expect(sentPublic.split(' ').slice(0, 2)).toEqual(publicOf(privateKey).split(' ').slice(0, 2));
    expect((result as Record<string, string>).KeyParameterName).toBe(KEY_PARAMETER);

    const pub = [sentPublic];
    expect(leaks([...capture.exhibits, ...sdkExhibits()], privateKey, pub)).toEqual([]);
    // and the plan record (a String parameter anyone with read access can see) holds no key
    expect(leaks([{ source: 'plan', text: store.params.get(LOCK)?.value ?? '' }], privateKey, pub)).toEqual([]);
  });

  test('a failed PutParameter (even one whose error echoed the value) throws an error without the key', async () => {
    const inject = loadHandler('inject-key');
    let attempted = '';
    ssm.on(require('@aws-sdk/client-ssm').PutParameterCommand, { Name: KEY_PARAMETER }).callsFake((input: { Value: string }) => {
      attempted = input.Value;
      const e = new Error(`ValidationException: value ${input.Value} is not valid`);
      e.name = 'ValidationException';
      throw e;
    });
    capture.start();
    const { error } = await capture.run('inject-key', inject, EVENT);
    capture.stop();
    expect(error).toBeInstanceOf(Error);
    expect(attempted.includes('PRIVATE KEY')).toBe(true); // a boolean: a failure never prints the key
    expect(leaks([...capture.exhibits, ...sdkExhibits().filter((e) => !e.source.includes('PutParameter'))], attempted)).toEqual([]);
    // nothing was sent to the helper
    expect(sentCommands().filter((c) => c.name === 'SendCommand')).toEqual([]);
  });

  test('SendCommand fails after the key was written: the error carries no key, the plan names the parameter, restore deletes it', async () => {
    const inject = loadHandler('inject-key');
    const restore = loadHandler('restore');
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('Instances not in a valid state for account'), { name: 'InvalidInstanceId' }));
    // restore reads the real state: the volume is attached to the helper, the instance stopped
    mockVolumeOnHelper();

    capture.start();
    const injected = await capture.run('inject-key', inject, EVENT);
    const privateKey = store.params.get(KEY_PARAMETER)?.value ?? '';
    const restored = await capture.run('restore', restore, EVENT);
    capture.stop();

    expect(injected.error).toBeInstanceOf(Error);
    expect(privateKey.includes('PRIVATE KEY')).toBe(true); // a boolean: a failure never prints the key
    // the plan named the key parameter before the command was sent
    const planWrites = sentCommands().filter((c) => c.name === 'PutParameter' && c.input.Name === LOCK);
    expect(planWrites.some((c) => JSON.parse(String(c.input.Value)).created.keyParameterName === KEY_PARAMETER)).toBe(true);
    // restore: the never-injected key is deleted, or the message names where it is
    const message = String((restored.result as Record<string, unknown> | undefined)?.Message ?? asText(restored.error));
    const deleted = sentCommands().some((c) => c.name === 'DeleteParameter' && c.input.Name === KEY_PARAMETER);
    expect({ deleted, named: message.includes(KEY_PARAMETER) }).toEqual({ deleted: true, named: true });
    expect(store.params.has(KEY_PARAMETER)).toBe(false);

    expect(leaks([...capture.exhibits, ...sdkExhibits()], privateKey, [publicOf(privateKey)])).toEqual([]);
  });

  test('a second run overwrote an earlier key: restore keeps the parameter and its message says where it is', async () => {
    const inject = loadHandler('inject-key');
    const restore = loadHandler('restore');
    // an earlier run's key (version 1) under the same name
    store.params.set(KEY_PARAMETER, { name: KEY_PARAMETER, type: 'SecureString', value: 'earlier run', version: 1 });
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('boom'), { name: 'InternalServerError' }));
    mockVolumeOnHelper();

    capture.start();
    await capture.run('inject-key', inject, EVENT);
    const privateKey = store.params.get(KEY_PARAMETER)?.value ?? '';
    const restored = await capture.run('restore', restore, EVENT);
    capture.stop();

    const message = String((restored.result as Record<string, unknown> | undefined)?.Message ?? asText(restored.error));
    const deleted = !store.params.has(KEY_PARAMETER);
    // one of the two, and never silently kept
    expect(deleted || message.includes(KEY_PARAMETER)).toBe(true);
    expect(leaks([...capture.exhibits, ...sdkExhibits()], privateKey, [publicOf(privateKey)])).toEqual([]);
  });
});

test('with a user-supplied public key no private key is made or stored', async () => {
  store.putJson(LOCK, makePlan({ publicKey: GOOD_ED25519, phase: 'attached-to-helper', created: { helperInstanceId: HELPER_INSTANCE } }));
  const inject = loadHandler('inject-key');
  capture.start();
  const { result, error } = await capture.run('inject-key', inject, EVENT);
  capture.stop();
  expect(error).toBeUndefined();
  expect((result as Record<string, string>).KeyParameterName).toBe('none');
  expect(sentCommands().filter((c) => c.name === 'PutParameter' && String(c.input.Name).startsWith('/ec2rl/'))).toEqual([]);
  const send = sentCommands().find((c) => c.name === 'SendCommand');
  expect((send?.input.Parameters as Record<string, string[]>).PublicKey).toEqual([GOOD_ED25519]);
});

test('the command sent to the helper carries only public material and our own document', async () => {
  store.putJson(LOCK, makePlan({ keyType: 'ed25519', phase: 'attached-to-helper', created: { helperInstanceId: HELPER_INSTANCE } }));
  const inject = loadHandler('inject-key');
  capture.start();
  await capture.run('inject-key', inject, EVENT);
  capture.stop();
  const send = sentCommands().find((c) => c.name === 'SendCommand');
  expect(send?.input).toMatchObject({ DocumentName: process.env.INJECT_DOCUMENT_NAME, InstanceIds: [HELPER_INSTANCE] });
  const params = send?.input.Parameters as Record<string, string[]>;
  expect(Object.keys(params).sort()).toEqual(['PublicKey', 'Root', 'Users', 'VolumeId']);
  expect(params.VolumeId).toEqual([GOOD_VOLUME]);
  expect(params.Root).toEqual(['']);
  expect(/PRIVATE KEY|b3BlbnNzaC1rZXktdjE/.test(asText(send?.input))).toBe(false);
});

/** DescribeVolumes: the root volume attached to the helper; the target stopped. */
function mockVolumeOnHelper(): void {
  const { DescribeVolumesCommand, DescribeInstancesCommand } = require('@aws-sdk/client-ec2') as typeof import('@aws-sdk/client-ec2');
  let attachedTo: string | undefined = HELPER_INSTANCE;
  ec2.on(DescribeVolumesCommand).callsFake(() => ({
    Volumes: [
      {
        VolumeId: GOOD_VOLUME,
        AvailabilityZone: 'us-east-1a',
        State: attachedTo ? 'in-use' : 'available',
        Attachments: attachedTo ? [{ InstanceId: attachedTo, Device: attachedTo === HELPER_INSTANCE ? '/dev/sdf' : '/dev/xvda', State: 'attached' }] : [],
      },
    ],
  }));
  ec2.on(require('@aws-sdk/client-ec2').DetachVolumeCommand).callsFake(() => {
    attachedTo = undefined;
    return {};
  });
  ec2.on(require('@aws-sdk/client-ec2').AttachVolumeCommand).callsFake((input: { InstanceId: string }) => {
    attachedTo = input.InstanceId;
    return {};
  });
  ec2.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => ({
    Reservations: [
      {
        Instances: (input.InstanceIds ?? [GOOD_INSTANCE]).map((id) => ({
          InstanceId: id,
          State: { Name: 'stopped' },
          RootDeviceName: '/dev/xvda',
          BlockDeviceMappings: attachedTo === GOOD_INSTANCE ? [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: GOOD_VOLUME, DeleteOnTermination: false } }] : [],
        })),
      },
    ],
  }));
}

// keep the EC2 client import used (the mocks patch its prototype)
void EC2Client;

describe('the generated keys', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const keys = (): typeof import('../../lambdas/common/keys') => require(join(REPO, 'lambdas', 'common', 'keys'));

  test.each([
    ['rsa', 4096, 'RSA'],
    ['ed25519', 256, 'ED25519'],
  ])('%s: %i bits, unique per call, the public half matches the private key', (type, bits, sshType) => {
    const a = keys().generateKeyPair(type as 'rsa' | 'ed25519');
    const b = keys().generateKeyPair(type as 'rsa' | 'ed25519');
    expect(a.privateKey).not.toBe(b.privateKey);
    expect(a.publicKey).not.toBe(b.publicKey);
    const dir = mkdtempSync(join(tmpdir(), 'sec-gen-'));
    try {
      const file = join(dir, 'k');
      writeFileSync(file, a.privateKey, { mode: 0o600 });
      const line = execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' }).trim();
      expect(line).toMatch(new RegExp(`^${bits} SHA256:\\S+ .*\\(${sshType}\\)$`));
      expect(line.split(' ')[1]).toBe(a.fingerprint);
      expect(publicOf(a.privateKey).split(' ').slice(0, 2)).toEqual(a.publicKey.split(' ').slice(0, 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // the public line's comment carries no secret, only a date
    expect(a.publicKey.split(' ')[2]).toMatch(/^reset-access-\d{4}-\d{2}-\d{2}$/);
  });
});
