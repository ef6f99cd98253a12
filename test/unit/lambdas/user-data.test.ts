/**
 * The UserData method's step Lambdas (save, set, confirm, restore) against mocked EC2 and Parameter
 * Store, and the shapes they rely on checked against AWS's own models (botocore, shipped with the
 * AWS CLI) and the SDK's own wire encoding.
 */
import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { gzipSync } from 'zlib';
import {
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  ModifyInstanceAttributeCommand,
  StartInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetDocumentCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { generateKeyPair } from '@common/keys';
import { buildUserData, userDataParameterName, USER_DATA_MAX_BYTES } from '@common/user-data';
import { MAX_SAVED_USER_DATA_BYTES } from '@common/user-data-store';
import { confirmUserData, CONFIRM_BUDGET_MS } from '../../../lambdas/confirm-user-data/confirm-user-data';
import { convergeUserData, putBackUserData, restoreUserData } from '../../../lambdas/restore-user-data/restore-user-data';
import { saveUserData } from '../../../lambdas/save-user-data/save-user-data';
import { setUserData } from '../../../lambdas/set-user-data/set-user-data';
import { deployedScript } from '../../support/disk';
import { botocoreModel } from './botocore';
import {
  EXECUTION_ID,
  fakeClock,
  INSTANCE_ID,
  makePlan,
  OTHER_EXECUTION_ID,
  parameterStore,
  recordingLogger,
  STEP_INPUT,
  storedPlan,
  storePlan,
} from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const ec2 = new EC2Client({});
const ssm = new SSMClient({});
const config = { keyId: 'arn:aws:kms:us-east-1:111122223333:key/0b0c0d0e-1111-2222-3333-444455556666', documentName: 'ResetAccess-InjectKey' };
const SCRIPT = deployedScript();
const PARAM = userDataParameterName(INSTANCE_ID);

let store: ReturnType<typeof parameterStore>;
/** EC2's copy of the instance's user data (base64 as DescribeInstanceAttribute returns it, undefined: none). */
let userData: string | undefined;
let state: string;
let consoleOutput: string;

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  store = parameterStore(ssmMock);
  storePlan(store, makePlan());
  userData = undefined;
  state = 'stopped';
  consoleOutput = '';
  ssmMock.on(GetDocumentCommand).callsFake((input: { Name: string }) => ({
    Name: input.Name,
    DocumentFormat: 'JSON',
    Content: JSON.stringify({ schemaVersion: '2.2', mainSteps: [{ action: 'aws:runShellScript', name: 'injectKey', inputs: { runCommand: SCRIPT.replace(/\n$/, '').split('\n') } }] }),
  }));
  ec2Mock.on(DescribeInstanceAttributeCommand).callsFake(() => ({ InstanceId: INSTANCE_ID, UserData: userData === undefined ? {} : { Value: userData } }));
  ec2Mock.on(ModifyInstanceAttributeCommand).callsFake((input: { Attribute?: string; Value?: string }) => {
    if (state !== 'stopped') throw Object.assign(new Error('not stopped'), { name: 'IncorrectInstanceState', $metadata: {} });
    if (input.Attribute !== 'userData') throw new Error('the test expects Attribute userData');
    userData = input.Value === '' ? undefined : input.Value;
    return {};
  });
  ec2Mock.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: state } }] }] }));
  ec2Mock.on(GetConsoleOutputCommand).callsFake(() => ({ InstanceId: INSTANCE_ID, Output: Buffer.from(consoleOutput).toString('base64') }));
});

const log = recordingLogger();
const deps = { ec2, ssm, log, config };

describe('the AWS shapes the UserData Lambdas rely on (botocore models)', () => {
  const ec2Model = botocoreModel('ec2');
  const ssmModel = botocoreModel('ssm');
  it('DescribeInstanceAttribute gives user data as a String; ModifyInstanceAttribute takes Attribute userData with a String Value; GetConsoleOutput gives base64 text', () => {
    const shapes = ec2Model.shapes;
    expect(shapes.InstanceAttributeName.enum).toContain('userData');
    expect(shapes[shapes.InstanceAttribute.members.UserData.shape].members.Value.shape).toBe('String');
    expect(shapes[shapes.ModifyInstanceAttributeRequest.members.Value.shape].type).toBe('string');
    expect(shapes[shapes.ModifyInstanceAttributeRequest.members.Attribute.shape].enum).toContain('userData');
    expect(shapes.GetConsoleOutputResult.members.Output.documentation).toMatch(/base64/i);
    expect(Object.keys(shapes.GetConsoleOutputRequest.members)).toEqual(expect.arrayContaining(['InstanceId', 'Latest']));
  });
  it('PutParameter takes the tiers we use and a SecureString with a KMS key; GetDocument can return JSON', () => {
    const shapes = ssmModel.shapes;
    expect(shapes.ParameterTier.enum).toEqual(expect.arrayContaining(['Standard', 'Advanced']));
    expect(shapes.ParameterType.enum).toContain('SecureString');
    expect(Object.keys(shapes.PutParameterRequest.members)).toEqual(expect.arrayContaining(['KeyId', 'Tier', 'Overwrite']));
    expect(shapes.DocumentFormat.enum).toContain('JSON');
    expect(Object.keys(shapes.GetDocumentRequest.members)).toContain('DocumentFormat');
  });
});

describe('saveUserData', () => {
  it('keeps the original byte for byte in a SecureString under the stack key (Standard tier when small)', async () => {
    userData = Buffer.from('#!/bin/bash\necho secret=hunter2\n').toString('base64');
    const out = await saveUserData(deps, STEP_INPUT);
    expect(out).toMatchObject({ parameterName: PARAM, originalBytes: 32, tier: 'Intelligent-Tiering' });
    expect(out.ourBytes).toBeLessThanOrEqual(USER_DATA_MAX_BYTES);
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: PARAM, Type: 'SecureString', KeyId: config.keyId, Tier: 'Intelligent-Tiering', Overwrite: true, Value: `base64:${userData}` });
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
  });

  it('Intelligent-Tiering (Advanced past 4 KB, chosen by Parameter Store; never a downgrade that fails), and refuses past 8 KB before any change', async () => {
    userData = Buffer.alloc(4000, 7).toString('base64');
    expect((await saveUserData(deps, STEP_INPUT)).tier).toBe('Intelligent-Tiering');
    store.delete(PARAM);
    ssmMock.resetHistory();
    userData = Buffer.alloc(MAX_SAVED_USER_DATA_BYTES + 1, 7).toString('base64');
    await expect(saveUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'RefusedError', message: expect.stringMatching(/Method=VolumeSwap/) });
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
    // The largest that fits is kept.
    userData = Buffer.alloc(MAX_SAVED_USER_DATA_BYTES, 7).toString('base64');
    await expect(saveUserData(deps, STEP_INPUT)).resolves.toMatchObject({ tier: 'Intelligent-Tiering' });
    expect(`base64:${userData}`.length).toBeLessThanOrEqual(8192);
  });

  it('an instance with no user data is saved as empty', async () => {
    expect(await saveUserData(deps, STEP_INPUT)).toMatchObject({ originalBytes: 0 });
    expect(store.get(PARAM)?.value).toBe('base64:');
  });

  it('a second run after ours was set keeps the saved original instead of saving ours', async () => {
    userData = Buffer.from('original').toString('base64');
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    expect(await saveUserData(deps, STEP_INPUT)).toMatchObject({ tier: 'kept' });
    expect(store.get(PARAM)?.value).toBe(`base64:${Buffer.from('original').toString('base64')}`);
    // Ours with nothing saved: refused, nothing changed.
    store.delete(PARAM);
    await expect(saveUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'RefusedError', message: expect.stringMatching(/earlier ec2-reset-access run/) });
  });

  it("touches nothing for another execution's plan", async () => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID }));
    await expect(saveUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'PlanError' });
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
  });
});

describe('setUserData', () => {
  it('sets ours on the stopped instance: the user\'s public key, never a private key, read back', async () => {
    const key = generateKeyPair('ed25519');
    storePlan(store, makePlan({ inputs: { ...makePlan().inputs, publicKey: key.publicKey, users: ['ec2-user'] } }));
    await saveUserData(deps, STEP_INPUT);
    const out = await setUserData(deps, STEP_INPUT);
    expect(out).toMatchObject({ fingerprint: key.fingerprint, keyParameterName: 'none' });
    const expected = buildUserData({ script: SCRIPT, publicKey: key.publicKey, users: ['ec2-user'], executionId: EXECUTION_ID });
    expect(userData).toBe(expected.bytes.toString('base64'));
    expect(ec2Mock).toHaveReceivedCommandWith(StartInstancesCommand, { InstanceIds: [INSTANCE_ID] });
    expect(ssmMock).not.toHaveReceivedCommandWith(PutParameterCommand, { Name: expect.stringContaining('/ec2rl/') });
  });

  it('with no key given, makes a pair: the private half only in its SecureString, the plan records it', async () => {
    const pair = generateKeyPair('ed25519');
    await saveUserData(deps, STEP_INPUT);
    const out = await setUserData({ ...deps, generate: () => pair }, STEP_INPUT);
    expect(out.fingerprint).toBe(pair.fingerprint);
    expect(store.get(out.keyParameterName)?.value).toBe(pair.privateKey);
    expect(storedPlan(store)?.created.keyParameterName).toBe(out.keyParameterName);
    const text = Buffer.from(userData ?? '', 'base64');
    expect(require('zlib').gunzipSync(text).toString()).not.toContain(pair.privateKey.split('\n')[1]);
  });

  it('refuses a running instance and an instance whose original is not saved, changing nothing', async () => {
    state = 'running';
    await saveUserData(deps, STEP_INPUT);
    await expect(setUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'UnexpectedStateError' });
    state = 'stopped';
    store.delete(PARAM);
    await expect(setUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'PlanError' });
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
  });

  it('fails when EC2 does not hold what was written', async () => {
    await saveUserData(deps, STEP_INPUT);
    ec2Mock.on(ModifyInstanceAttributeCommand).resolves({});
    await expect(setUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'UnexpectedStateError', message: expect.stringMatching(/not the \d+ bytes written/) });
    expect(ec2Mock).not.toHaveReceivedCommand(StartInstancesCommand);
  });
});

describe('confirmUserData', () => {
  const FP = 'SHA256:RMZZnJCX3P2yjIFg3YcY309NVuqD/b5L9RQBu8K+dd8';
  beforeEach(() => {
    state = 'running';
  });

  it('returns when the console carries this execution\'s ok marker (asks for the latest output)', async () => {
    consoleOutput = `[ 0.0] Linux\nec2-reset-access: user data ${OTHER_EXECUTION_ID} ok ${FP}\nec2-reset-access: user data ${EXECUTION_ID} ok ${FP} users=ec2-user files=/home/ec2-user/.ssh/authorized_keys\n`;
    expect(await confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).toEqual({ fingerprint: FP, users: 'ec2-user', files: '/home/ec2-user/.ssh/authorized_keys' });
    expect(ec2Mock).toHaveReceivedCommandWith(GetConsoleOutputCommand, { InstanceId: INSTANCE_ID, Latest: true });
  });

  it('waits for the marker, within its budget', async () => {
    let calls = 0;
    ec2Mock.on(GetConsoleOutputCommand).callsFake(() => {
      calls += 1;
      const text = calls < 4 ? '[ 1.0] booting\n' : `ec2-reset-access: user data ${EXECUTION_ID} ok ${FP}\n`;
      return { Output: Buffer.from(text).toString('base64') };
    });
    const clock = fakeClock();
    await confirmUserData({ ec2, ssm, log, clock }, STEP_INPUT);
    expect(calls).toBe(4);
    expect(clock.elapsed()).toBeLessThan(CONFIRM_BUDGET_MS);
  });

  it('a failed marker fails the step at once, with its reason; no marker: NotReadyError after the budget, also while stopped; a terminated instance: fails', async () => {
    consoleOutput = `ec2-reset-access: user data ${EXECUTION_ID} failed ${FP}\n`;
    await expect(confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).rejects.toMatchObject({ name: 'InjectionFailedError' });
    consoleOutput = `ec2-reset-access: user data ${OTHER_EXECUTION_ID} ok ${FP}\n`;
    const clock = fakeClock();
    await expect(confirmUserData({ ec2, ssm, log, clock }, STEP_INPUT)).rejects.toMatchObject({ name: 'NotReadyError' });
    expect(clock.elapsed()).toBeLessThanOrEqual(CONFIRM_BUDGET_MS);
    // Stopped (our boot powers off after its marker; the console is posted shortly after): polled to the budget.
    state = 'stopped';
    await expect(confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).rejects.toMatchObject({ name: 'NotReadyError' });
    consoleOutput = `ec2-reset-access: user data ${EXECUTION_ID} ok ${FP} users=ec2-user files=/home/ec2-user/.ssh/authorized_keys\n`;
    await expect(confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).resolves.toMatchObject({ users: 'ec2-user' });
    consoleOutput = '';
    state = 'terminated';
    await expect(confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).rejects.toMatchObject({ name: 'UnexpectedStateError' });
    // A failed boot's reason line is named in the error.
    consoleOutput = `ec2-reset-access: user data reason ${EXECUTION_ID} /home (home /home/ec2-user) is in /etc/fstab but not mounted\nec2-reset-access: user data ${EXECUTION_ID} failed ${FP} users= files=\n`;
    await expect(confirmUserData({ ec2, ssm, log, clock: fakeClock() }, STEP_INPUT)).rejects.toThrow(/failed at boot: \/home \(home \/home\/ec2-user\) is in \/etc\/fstab but not mounted/);
  });
});

describe('restoreUserData / putBackUserData', () => {
  it.each([
    ['text', Buffer.from('#!/bin/sh\necho hi\n')],
    ['gzip', gzipSync(Buffer.from('#cloud-config\nruncmd: [ls]\n'))],
    ['binary', Buffer.from([0, 255, 1, 254, 10, 13])],
  ])('puts %s user data back byte for byte and deletes the saved copy', async (_kind, original) => {
    userData = original.toString('base64');
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    expect(userData).not.toBe(original.toString('base64'));
    expect(await restoreUserData(deps, STEP_INPUT)).toEqual({ result: 'restored', bytes: original.length });
    expect(Buffer.from(userData ?? '', 'base64').equals(original)).toBe(true);
    expect(store.has(PARAM)).toBe(false);
    // Twice: nothing to do.
    expect(await restoreUserData(deps, STEP_INPUT)).toEqual({ result: 'nothing-saved', bytes: original.length });
  });

  it('an empty original stays empty', async () => {
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    await restoreUserData(deps, STEP_INPUT);
    expect(userData).toBeUndefined();
  });

  it('refuses a running instance; keeps the saved copy when EC2 does not take the original', async () => {
    userData = Buffer.from('orig').toString('base64');
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    state = 'running';
    await expect(restoreUserData(deps, STEP_INPUT)).rejects.toMatchObject({ name: 'UnexpectedStateError' });
    state = 'stopped';
    ec2Mock.on(ModifyInstanceAttributeCommand).resolves({});
    await expect(putBackUserData(ec2, ssm, INSTANCE_ID)).rejects.toMatchObject({ name: 'RestoreError', message: expect.stringContaining(PARAM) });
    expect(store.has(PARAM)).toBe(true);
  });

  it('ours on the instance and nothing saved: a loud RestoreError, nothing changed', async () => {
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    store.delete(PARAM);
    const before = userData;
    await expect(putBackUserData(ec2, ssm, INSTANCE_ID)).rejects.toMatchObject({ name: 'RestoreError' });
    expect(userData).toBe(before);
  });
});

describe('convergeUserData (the converging restore)', () => {
  it('a running instance with ours set: stops it, waits, puts the original back, deletes the copy', async () => {
    userData = Buffer.from('orig').toString('base64');
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    state = 'running';
    let polls = 0;
    ec2Mock.on(StopInstancesCommand).callsFake(() => {
      state = 'stopping';
      return {};
    });
    ec2Mock.on(DescribeInstancesCommand).callsFake(() => {
      if (state === 'stopping' && ++polls > 2) state = 'stopped';
      return { Reservations: [{ Instances: [{ InstanceId: INSTANCE_ID, State: { Name: state } }] }] };
    });
    const done: string[] = [];
    await convergeUserData({ ec2, ssm, clock: fakeClock() }, INSTANCE_ID, 60_000, done);
    expect(Buffer.from(userData ?? '', 'base64').toString()).toBe('orig');
    expect(store.has(PARAM)).toBe(false);
    expect(done).toEqual([`stopped ${INSTANCE_ID} to put its user data back`, `put the original user data of ${INSTANCE_ID} back (4 bytes)`]);
  });

  it('review U1: a copy saved but our user data never set (a failure before setUserData): no stop, the copy deleted', async () => {
    userData = Buffer.from('orig').toString('base64');
    state = 'running';
    await saveUserData(deps, STEP_INPUT);
    const done: string[] = [];
    await convergeUserData({ ec2, ssm, clock: fakeClock() }, INSTANCE_ID, 60_000, done);
    expect(ec2Mock).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
    expect(store.has(PARAM)).toBe(false);
    expect(done).toEqual([`the user data of ${INSTANCE_ID} was never changed; deleted its saved copy`]);
  });

  it("review U2: a stale copy (an earlier run's) and newer user data that is not ours: nothing written, the copy kept and named", async () => {
    userData = Buffer.from('old').toString('base64');
    await saveUserData(deps, STEP_INPUT);
    userData = Buffer.from('newer, set by hand').toString('base64');
    state = 'running';
    const done: string[] = [];
    await convergeUserData({ ec2, ssm, clock: fakeClock() }, INSTANCE_ID, 60_000, done);
    expect(Buffer.from(userData, 'base64').toString()).toBe('newer, set by hand');
    expect(ec2Mock).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(store.has(PARAM)).toBe(true);
    expect(done[0]).toMatch(/left \/reset-access\/user-data\/.* as it is/);
  });

  it('nothing saved and not ours (the other methods): no call that changes anything', async () => {
    state = 'running';
    const done: string[] = [];
    await convergeUserData({ ec2, ssm, clock: fakeClock() }, INSTANCE_ID, 60_000, done);
    expect(done).toEqual([]);
    expect(ec2Mock).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(ModifyInstanceAttributeCommand);
  });

  it('an instance that does not stop within the budget: NotReadyError, the copy kept (the step is retried)', async () => {
    await saveUserData(deps, STEP_INPUT);
    await setUserData(deps, STEP_INPUT);
    state = 'stopping';
    await expect(convergeUserData({ ec2, ssm, clock: fakeClock() }, INSTANCE_ID, 30_000, [])).rejects.toMatchObject({ name: 'NotReadyError' });
    expect(store.has(PARAM)).toBe(true);
  });
});

describe('handlers', () => {
  it('each returns exactly its declared flat output fields', async () => {
    process.env.KEY_ID = config.keyId;
    process.env.INJECT_DOCUMENT_NAME = config.documentName;
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const event = { ExecutionId: EXECUTION_ID, InstanceId: INSTANCE_ID };
    const save = await import('../../../lambdas/save-user-data/handler');
    const set = await import('../../../lambdas/set-user-data/handler');
    const confirm = await import('../../../lambdas/confirm-user-data/handler');
    const restore = await import('../../../lambdas/restore-user-data/handler');
    const saved = await save.handler(event);
    expect(Object.keys(saved)).toEqual([...save.OUTPUT_FIELDS]);
    const setOut = await set.handler(event);
    expect(Object.keys(setOut)).toEqual([...set.OUTPUT_FIELDS]);
    state = 'running';
    consoleOutput = `ec2-reset-access: user data ${EXECUTION_ID} ok ${setOut.Fingerprint}\n`;
    const confirmed = await confirm.handler(event);
    expect(confirmed).toEqual({ Fingerprint: setOut.Fingerprint, UsersChanged: 'none', FilesChanged: 'none' });
    expect(Object.keys(confirmed)).toEqual([...confirm.OUTPUT_FIELDS]);
    state = 'stopped';
    const restored = await restore.handler(event);
    expect(restored).toEqual({ UserDataRestored: 'restored', UserDataBytes: 0 });
    expect(Object.keys(restored)).toEqual([...restore.OUTPUT_FIELDS]);
    await expect(save.handler({ ExecutionId: 'x', InstanceId: 'vol-1' })).rejects.toMatchObject({ name: 'InvalidInputError' });
    jest.restoreAllMocks();
  });
});
