/**
 * RevokeKey's Lambdas (issue 14): the keys as fingerprints (OpenSSH's ssh-keygen is the reference),
 * the fleet's resolve step, the per-instance preflight of a revoke (Unreachable without a stop),
 * the revoke command sent by inject-key, the per-instance report and the fleet's gather step.
 */
import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mockClient } from 'aws-sdk-client-mock';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  DeleteKeyPairCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import {
  DeleteParametersCommand,
  DescribeAutomationExecutionsCommand,
  GetAutomationExecutionCommand,
  GetCommandInvocationCommand,
  GetParametersByPathCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
  StopAutomationExecutionCommand,
} from '@aws-sdk/client-ssm';
import { parseFingerprints, resolveRevokeAction, revokeResultName, revokeResultsPath, revokeSpecName, type RevokeKeyInputs, type RevokeSpec } from '../../../lambdas/common/revoke';
import { handler as preflightHandler } from '../../../lambdas/preflight/handler';
import { resolveFleet, selectionOf, type ResolveRequest } from '../../../lambdas/revoke-resolve/revoke-resolve';
import { parseResolveRequest } from '../../../lambdas/revoke-resolve/handler';
import { findRuns, fleetReport, gather, keepKeyPairReason, reportText, SCAN_SECONDS, STOP_WAIT_SECONDS } from '../../../lambdas/revoke-gather/revoke-gather';
import { handler as gatherHandler, OUTPUT_FIELDS as GATHER_FIELDS } from '../../../lambdas/revoke-gather/handler';
import { handler as reportHandler, OUTPUT_FIELDS as REPORT_FIELDS } from '../../../lambdas/revoke-report/handler';
import { injectKey } from '../../../lambdas/inject-key/inject-key';
import { mockPreflightWorld, type PreflightWorld } from '../preflight-world';
import { awsError, EXECUTION_ID, HELPER_ID, INSTANCE_ID, LOCK_NAME, makePlan, parameterStore, recordingLogger, ROOT_VOLUME_ID, storePlan } from '../helpers';

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const kmsMock = mockClient(KMSClient);
const asgMock = mockClient(AutoScalingClient);

/** Keys made by OpenSSH, and their fingerprints as `ssh-keygen -l` prints them: the reference. */
const dir = mkdtempSync(join(tmpdir(), 'revoke-unit-'));
function opensshKey(type: 'ed25519' | 'rsa', name: string): { line: string; fingerprint: string } {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', `${name}@test`, '-f', file]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1];
  return { line, fingerprint };
}
const LEAKED = opensshKey('rsa', 'leaked');
const OTHER = opensshKey('ed25519', 'other');
const REPLACEMENT = opensshKey('ed25519', 'replacement');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PARENT_ID = '11111111-2222-3333-4444-555555555555';
const FAN_OUT_ID = '66666666-2222-3333-4444-555555555555';
const IDS = ['i-00000000000000001', 'i-00000000000000002', 'i-00000000000000003'];

function keys(overrides: Partial<RevokeKeyInputs> = {}): RevokeKeyInputs {
  return { fingerprints: '', keyPairName: '', publicKeyParameter: '', replacementPublicKey: '', mode: 'Audit', allowStop: 'False', ...overrides };
}

let store: ReturnType<typeof parameterStore>;
beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  kmsMock.reset();
  asgMock.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  store = parameterStore(ssmMock);
  ec2Mock.on(DescribeKeyPairsCommand).callsFake((input: { KeyNames: string[]; IncludePublicKey?: boolean }) => {
    if (input.KeyNames[0] !== 'leaked') throw awsError('InvalidKeyPair.NotFound', `The key pair '${input.KeyNames[0]}' does not exist`);
    // Without IncludePublicKey, EC2 returns no PublicKey (DescribeKeyPairs, IncludePublicKey).
    return { KeyPairs: [{ KeyName: 'leaked', KeyPairId: 'key-0123456789abcdef0', ...(input.IncludePublicKey ? { PublicKey: `${LEAKED.line}\n` } : {}) }] };
  });
});
afterEach(() => jest.restoreAllMocks());

describe('the keys to revoke', () => {
  it('turns a key pair name into the fingerprint ssh-keygen -l gives its public key, asking EC2 for the public key', async () => {
    // Act
    const action = await resolveRevokeAction({ ec2: new EC2Client({}), ssm: new SSMClient({}) }, keys({ keyPairName: 'leaked' }));
    // Assess
    expect(action.fingerprints).toEqual([LEAKED.fingerprint]);
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeKeyPairsCommand, { KeyNames: ['leaked'], IncludePublicKey: true });
  });

  it('takes a long key line from a String parameter, and ssh-keygen\'s fingerprints as given, without duplicates', async () => {
    // Prepare
    store.set('/reset-access/public-keys/old', { value: `${LEAKED.line}\n`, type: 'String', version: 1 });
    // Act
    const action = await resolveRevokeAction(
      { ec2: new EC2Client({}), ssm: new SSMClient({}) },
      keys({ fingerprints: `${OTHER.fingerprint},${LEAKED.fingerprint}`, publicKeyParameter: '/reset-access/public-keys/old', replacementPublicKey: REPLACEMENT.line, mode: 'Revoke' }),
    );
    // Assess
    expect(action).toEqual({
      kind: 'revoke',
      mode: 'Revoke',
      fingerprints: [OTHER.fingerprint, LEAKED.fingerprint],
      sources: ['Fingerprints', 'Fingerprints'],
      replacementKey: REPLACEMENT.line,
      allowStop: false,
    });
  });

  it('refuses bad input naming the field, never echoing it', async () => {
    const deps = { ec2: new EC2Client({}), ssm: new SSMClient({}) };
    await expect(resolveRevokeAction(deps, keys())).rejects.toThrow(/Give the keys to revoke/);
    await expect(resolveRevokeAction(deps, keys({ keyPairName: 'missing' }))).rejects.toThrow(/KeyPairName missing is not a key pair/);
    await expect(resolveRevokeAction(deps, keys({ fingerprints: LEAKED.fingerprint, mode: 'Delete' }))).rejects.toThrow(/Mode must be Audit or Revoke/);
    await expect(resolveRevokeAction(deps, keys({ fingerprints: LEAKED.fingerprint, replacementPublicKey: LEAKED.line }))).rejects.toThrow(/one of the keys to revoke/);
    // A private key pasted as the replacement: refused, and not repeated.
    const pasted = '-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXktdjEAAAAA';
    const err = await resolveRevokeAction(deps, keys({ fingerprints: LEAKED.fingerprint, replacementPublicKey: pasted })).catch((e: Error) => e);
    expect(String(err)).toMatch(/private key/);
    expect(String(err)).not.toContain('b3BlbnNzaC1rZXktdjEAAAAA');
    // A fingerprint of the wrong length (an MD5 console fingerprint, say) is named by position only.
    expect(() => parseFingerprints(`${LEAKED.fingerprint},SHA256:abc`)).toThrow(/entry 2 is not one/);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
  });
});

function resolveRequest(overrides: Partial<ResolveRequest> = {}): ResolveRequest {
  return {
    executionId: PARENT_ID,
    instanceIds: [],
    tagKey: '',
    tagValue: '',
    keys: keys({ keyPairName: 'leaked' }),
    users: '',
    method: 'Auto',
    subnetId: 'CreateNewVPC',
    helperInstanceType: 't3.small',
    ...overrides,
  };
}

describe('resolve (the fleet)', () => {
  beforeEach(() => {
    ec2Mock.on(DescribeInstancesCommand).callsFake((input: { Filters?: { Name: string; Values: string[] }[] }) => ({
      // Two pages, and a terminated instance that is not taken.
      Reservations: [{ Instances: IDS.slice(0, 2).map((id) => ({ InstanceId: id, State: { Name: 'running' } })) }],
      NextToken: (input as { NextToken?: string }).NextToken ? undefined : 'page2',
      ...((input as { NextToken?: string }).NextToken
        ? { Reservations: [{ Instances: [{ InstanceId: IDS[2], State: { Name: 'stopped' } }, { InstanceId: 'i-0000000000000000f', State: { Name: 'terminated' } }] }] }
        : {}),
    }));
    ec2Mock.on(CreateTagsCommand).resolves({});
  });

  it('chooses every instance launched with the key pair (key-name filter), writes the spec and tags each with the run', async () => {
    // Act
    const { spec, specName } = await resolveFleet({ ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger() }, resolveRequest());
    // Assess
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [{ Name: 'key-name', Values: ['leaked'] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }],
    });
    expect(spec?.instanceIds).toEqual(IDS);
    expect(specName).toBe(revokeSpecName(PARENT_ID));
    expect(JSON.parse(store.get(specName)?.value ?? '')).toMatchObject({ parentExecutionId: PARENT_ID, instanceIds: IDS, action: { fingerprints: [LEAKED.fingerprint], mode: 'Audit' } });
    expect(ec2Mock).toHaveReceivedCommandWith(CreateTagsCommand, { Resources: IDS, Tags: [{ Key: 'reset-access:revoke-run', Value: PARENT_ID }] });
  });

  it('chooses by tag (tag:<key> with a value, tag-key without) and refuses two selections or none', () => {
    expect(selectionOf(resolveRequest({ tagKey: 'Team', tagValue: 'web' })).filters?.[0]).toEqual({ Name: 'tag:Team', Values: ['web'] });
    expect(selectionOf(resolveRequest({ tagKey: 'Team' })).filters?.[0]).toEqual({ Name: 'tag-key', Values: ['Team'] });
    expect(() => selectionOf(resolveRequest({ tagKey: 'Team', instanceIds: [IDS[0]] }))).toThrow(/one way/);
    expect(() => selectionOf(resolveRequest({ keys: keys({ fingerprints: LEAKED.fingerprint }) }))).toThrow(/Choose the instances/);
    expect(parseResolveRequest({ ExecutionId: PARENT_ID, InstanceIds: `${IDS[0]},${IDS[1]}` }).instanceIds).toEqual(IDS.slice(0, 2));
  });

  it('a resource group: first every input checked and nothing written, then its tag query as DescribeInstances filters (keys ANDed, values ORed)', async () => {
    // Prepare
    const deps = { ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger() };
    // Act: before the group's query is read.
    const first = await resolveFleet(deps, resolveRequest({ resourceGroup: 'web-fleet' }));
    // Assess
    expect(first.spec).toBeUndefined();
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateTagsCommand);
    // Act: with the query (the Resource Groups API reference's own example: Stage in Test or Deploy, and
    // Version in 1 or 2; and a key with no values). A value holding "*" or "?" is literal for the group
    // but a wildcard for EC2 (review Q28): EC2 is asked for the keys only, the values compared exactly.
    const tagged = (id: string, tags: Record<string, string>) => ({ InstanceId: id, State: { Name: 'running' as const }, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) });
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            tagged(IDS[0], { Stage: 'Test', Version: '1', Owner: '' }),
            tagged(IDS[1], { Stage: 'Deploy', Version: '2*', Owner: 'x' }),
            tagged(IDS[2], { Stage: 'Deploy', Version: '2x', Owner: 'x' }),
            tagged('i-0000000000000000a', { Stage: 'Prod', Version: '1', Owner: 'x' }),
            tagged('i-0000000000000000b', { Stage: 'Test', Version: '1' }),
          ],
        },
      ],
    });
    const query = JSON.stringify({ ResourceTypeFilters: ['AWS::EC2::Instance'], TagFilters: [{ Key: 'Stage', Values: ['Test', 'Deploy'] }, { Key: 'Version', Values: ['1', '2*'] }, { Key: 'Owner' }] });
    const second = await resolveFleet(deps, resolveRequest({ resourceGroup: 'web-fleet', groupQuery: { type: 'TAG_FILTERS_1_0', query } }));
    // Assess
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'tag-key', Values: ['Stage'] },
        { Name: 'tag-key', Values: ['Version'] },
        { Name: 'tag-key', Values: ['Owner'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    });
    expect(second.spec?.selection).toBe('resource group web-fleet');
    // Every key, one of each key's values, exactly: not "2x" for "2*", not Stage=Prod, not without Owner.
    expect(second.spec?.instanceIds).toEqual([IDS[0], IDS[1]]);
    // The handler tells the runbook which step is next.
    const parsed = parseResolveRequest({ ExecutionId: PARENT_ID, ResourceGroupName: 'web-fleet', GroupQueryType: 'TAG_FILTERS_1_0', GroupQuery: query });
    expect(parsed.groupQuery).toEqual({ type: 'TAG_FILTERS_1_0', query });
  });

  it('refuses a CloudFormation stack group, a group without EC2 instances, a reserved or malformed name, and two selections', () => {
    const g = (type: string, query: string) => resolveRequest({ resourceGroup: 'g1', groupQuery: { type, query } });
    expect(() => selectionOf(g('CLOUDFORMATION_STACK_1_0', JSON.stringify({ ResourceTypeFilters: ['AWS::AllSupported'], StackIdentifier: 'arn:aws:cloudformation:us-east-1:123456789012:stack/s/1' })))).toThrow(/CloudFormation stack group/);
    expect(() => selectionOf(g('TAG_FILTERS_1_0', JSON.stringify({ ResourceTypeFilters: ['AWS::S3::Bucket'], TagFilters: [{ Key: 'a', Values: ['b'] }] })))).toThrow(/holds no EC2 instances/);
    expect(selectionOf(g('TAG_FILTERS_1_0', JSON.stringify({ ResourceTypeFilters: ['AWS::AllSupported'], TagFilters: [{ Key: 'a', Values: ['b'] }] }))).filters?.[0]).toEqual({ Name: 'tag-key', Values: ['a'] });
    for (const name of ['AWS-prod', 'awsfleet', 'a b', 'x'.repeat(301)]) expect(() => selectionOf(resolveRequest({ resourceGroup: name }))).toThrow(/ResourceGroupName must be/);
    expect(() => selectionOf(resolveRequest({ resourceGroup: 'g1', tagKey: 'Team' }))).toThrow(/one way/);
  });

  it('refuses DeleteKeyPair with an audit (an audit changes nothing, review P7), changing nothing', async () => {
    const run = resolveFleet({ ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger() }, resolveRequest({ deleteKeyPair: 'True' }));
    await expect(run).rejects.toThrow(/needs Mode=Revoke/);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateTagsCommand);
  });

  it('refuses a selection that matches nothing, changing nothing', async () => {
    // Prepare
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    // Act
    const run = resolveFleet({ ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger() }, resolveRequest({ tagKey: 'Team', tagValue: 'none' }));
    // Assess
    await expect(run).rejects.toThrow(/No instance matches \(tag Team=none\)/);
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(ec2Mock).not.toHaveReceivedCommand(CreateTagsCommand);
  });
});

describe('preflight of a revoke', () => {
  let world: PreflightWorld;
  beforeEach(() => {
    world = mockPreflightWorld({ ec2: ec2Mock, ssm: ssmMock, asg: asgMock });
    ec2Mock.on(CreateTagsCommand).resolves({});
  });

  const revokeEvent = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
    ExecutionId: EXECUTION_ID,
    InstanceId: INSTANCE_ID,
    Action: 'Revoke',
    RevokeSpec: '',
    Fingerprints: LEAKED.fingerprint,
    KeyPairName: '',
    PublicKeyParameter: '',
    ReplacementPublicKey: '',
    Users: '',
    Mode: 'Revoke',
    Method: 'Auto',
    AllowStop: 'False',
    SubnetId: 'CreateNewVPC',
    HelperInstanceType: 't3.small',
    ...o,
  });

  it('answers Unreachable for a running instance without an Online agent and AllowStop=False: no lock, no tag, no stop', async () => {
    // Act
    const out = await preflightHandler(revokeEvent());
    // Assess
    expect(out.MethodToken).toBe('|method:Unreachable|');
    expect(out.MethodReason).toMatch(/not a managed node.*AllowStop=False/);
    expect(store.has(LOCK_NAME)).toBe(false);
    const changes = ec2Mock.calls().map((c) => c.args[0].constructor.name).filter((n) => !n.startsWith('Describe'));
    expect(changes).toEqual([]);
  });

  it('reports a Windows instance (reached through a key pair) without touching it: its launch password is the exposure (review F1)', async () => {
    // Prepare
    world.instance.Platform = 'Windows';
    world.instance.PlatformDetails = 'Windows';
    // Act
    const out = await preflightHandler(revokeEvent({ AllowStop: 'True' }));
    // Assess
    expect(out).toMatchObject({ Method: 'Windows', MethodToken: '|method:Unreachable|' });
    expect(out.MethodReason).toMatch(/GetPasswordData/);
    expect(store.has(LOCK_NAME)).toBe(false);
    expect(ec2Mock.calls().map((c) => c.args[0].constructor.name).filter((n) => !n.startsWith('Describe'))).toEqual([]);
    const report = await reportHandler({ ExecutionId: EXECUTION_ID, InstanceId: INSTANCE_ID, Unreachable: 'True', PreflightResult: JSON.stringify(out), RevokeSpec: '', Mode: 'Revoke' });
    expect(report).toMatchObject({ Outcome: 'windows', Mode: 'Revoke' });
  });

  it('with AllowStop=True takes the volume swap and records the revoke in the plan (Revoke: a snapshot first)', async () => {
    // Act
    const out = await preflightHandler(revokeEvent({ AllowStop: 'True', Users: 'ec2-user', ReplacementPublicKey: REPLACEMENT.line }));
    // Assess
    expect(out.MethodToken).toBe('|method:VolumeSwap|');
    const plan = JSON.parse(store.get(LOCK_NAME)?.value ?? '{}');
    expect(plan.inputs).toMatchObject({
      backupMethod: 'Snapshot',
      users: ['ec2-user'],
      action: { kind: 'revoke', mode: 'Revoke', fingerprints: [LEAKED.fingerprint], replacementKey: REPLACEMENT.line, allowStop: true },
    });
  });

  it('runs online where the agent is Online, an audit taking no backup; a fleet child reads the spec and nothing else', async () => {
    // Prepare
    world.online = true;
    const spec: RevokeSpec = {
      version: 1,
      parentExecutionId: PARENT_ID,
      action: { kind: 'revoke', mode: 'Audit', fingerprints: [LEAKED.fingerprint], sources: ['KeyPairName leaked'], replacementKey: '', allowStop: false },
      users: [],
      method: 'Auto',
      subnetId: 'CreateNewVPC',
      helperInstanceType: 't3.small',
      instanceIds: [INSTANCE_ID],
      selection: 'launched with key pair leaked',
    };
    store.set(revokeSpecName(PARENT_ID), { value: JSON.stringify(spec), type: 'String', version: 1 });
    // Act
    const out = await preflightHandler(revokeEvent({ RevokeSpec: revokeSpecName(PARENT_ID), Fingerprints: '', Mode: 'Audit' }));
    // Assess
    expect(out.MethodToken).toBe('|method:Online|');
    expect(JSON.parse(store.get(LOCK_NAME)?.value ?? '{}').inputs).toMatchObject({ backupMethod: 'None', action: { mode: 'Audit' } });
    // Both the spec and keys of its own: refused.
    await expect(preflightHandler(revokeEvent({ RevokeSpec: revokeSpecName(PARENT_ID) }))).rejects.toThrow(/not both/);
  });
});

describe('inject-key with a revoke plan', () => {
  it('sends the revoke document with the fingerprints, replacement, users and mode, and makes no key', async () => {
    // Prepare
    const plan = makePlan();
    plan.method = { chosen: 'VolumeSwap', reason: 'test' };
    plan.created.helperInstanceId = HELPER_ID;
    plan.inputs.users = ['ec2-user'];
    plan.inputs.action = { kind: 'revoke', mode: 'Revoke', fingerprints: [LEAKED.fingerprint, OTHER.fingerprint], sources: [], replacementKey: REPLACEMENT.line, allowStop: false };
    storePlan(store, plan);
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    // Act
    const r = await injectKey(
      { ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger(), config: { keyId: 'arn:aws:kms:us-east-1:123456789012:key/k', documentName: 'ResetAccess-InjectKey', revokeDocumentName: 'RevokeKey-Command' } },
      { executionId: plan.executionId, instanceId: plan.instanceId },
    );
    // Assess
    expect(ssmMock).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'RevokeKey-Command',
      InstanceIds: [HELPER_ID],
      Parameters: {
        VolumeId: [ROOT_VOLUME_ID],
        Root: [''],
        Fingerprints: [`${LEAKED.fingerprint},${OTHER.fingerprint}`],
        ReplacementKey: [REPLACEMENT.line],
        Users: ['ec2-user'],
        Mode: ['Revoke'],
      },
    });
    expect(r).toMatchObject({ commandId: 'cmd-1', keyParameterName: 'none', fingerprint: REPLACEMENT.fingerprint });
    expect([...store.keys()].filter((k) => k.startsWith('/ec2rl/'))).toEqual([]);
  });
});

describe('the per-instance report', () => {
  it('reads the command\'s JSON report: cleaned when every found line was removed and verified, within 512 characters', async () => {
    // Prepare
    const plan = makePlan();
    plan.method = { chosen: 'Online', reason: 'test' };
    plan.created.commandId = 'cmd-2';
    plan.inputs.action = { kind: 'revoke', mode: 'Revoke', fingerprints: [LEAKED.fingerprint], sources: [], replacementKey: '', allowStop: false };
    storePlan(store, plan);
    const report = {
      version: 1,
      status: 'ok',
      mode: 'Revoke',
      files: [{ path: '/home/ec2-user/.ssh/authorized_keys', users: ['ec2-user'], matches: 2, removed: 2, added: 0, kept: 1 }, { path: '/root/.ssh/authorized_keys', users: ['root'], matches: 0, removed: 0, added: 0, kept: 1 }],
      found: 2,
      removed: 2,
      added: 0,
      usersWithoutKey: Array.from({ length: 40 }, (_, i) => `user${i}`),
      caLines: [{ path: '/etc/ssh/ca', line: 1 }],
      authorizedKeysCommand: '',
      verified: true,
      warnings: [],
    };
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: `progress\n${JSON.stringify(report)}\n` });
    // Act
    const out = await reportHandler({ ExecutionId: plan.executionId, InstanceId: plan.instanceId });
    // Assess
    expect(out).toMatchObject({ Outcome: 'cleaned', Found: 2, Removed: 2, Files: 1, CaLines: 1, Verified: true, CommandId: 'cmd-2', CommandTarget: INSTANCE_ID });
    expect(out.UsersWithoutKey).toMatch(/more\)$/);
    expect(Object.keys(out).sort()).toEqual([...REPORT_FIELDS].sort());
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
    expect(ssmMock).toHaveReceivedCommandWith(GetCommandInvocationCommand, { CommandId: 'cmd-2', InstanceId: INSTANCE_ID });
  });

  it('an unverified revoke is failed, an audit that finds keys is found, none found is clean, an unreadable key source is incomplete', async () => {
    const { outcomeOf } = await import('../../../lambdas/common/revoke');
    // sshd also asks a program for keys: the files alone cannot make it clean (review F2)...
    expect(outcomeOf({ version: 1, status: 'ok', found: 0, authorizedKeysCommand: 'AuthorizedKeysCommand /usr/local/bin/ldap-keys %u' }, 'Audit')).toBe('incomplete');
    expect(outcomeOf({ version: 1, status: 'ok', found: 1, removed: 1, verified: true, authorizedKeysCommand: '/usr/local/bin/ldap-keys %u' }, 'Revoke')).toBe('incomplete');
    // Files the command could not read (its report's complete: false) leave it open too.
    expect(outcomeOf({ version: 1, status: 'ok', found: 0, complete: false }, 'Audit')).toBe('incomplete');
    // ...except EC2 Instance Connect's, which serves only keys pushed for 60 seconds.
    expect(outcomeOf({ version: 1, status: 'ok', found: 0, authorizedKeysCommand: '/opt/aws/bin/eic_run_authorized_keys %u %f' }, 'Audit')).toBe('clean');
    expect(outcomeOf({ version: 1, status: 'ok', found: 1, removed: 1, verified: false }, 'Revoke')).toBe('failed');
    expect(outcomeOf({ version: 1, status: 'ok', found: 3, removed: 0 }, 'Audit')).toBe('found');
    expect(outcomeOf({ version: 1, status: 'ok', found: 0 }, 'Revoke')).toBe('clean');
    expect(outcomeOf({ version: 1, status: 'error', found: 0 }, 'Audit')).toBe('failed');
  });
});

describe('gather (the fleet report)', () => {
  const CHILD_DOC = 'RevokeKey-Instance';
  const spec = (mode: 'Audit' | 'Revoke' = 'Revoke'): RevokeSpec => ({
    version: 1,
    parentExecutionId: PARENT_ID,
    action: { kind: 'revoke', mode, fingerprints: [LEAKED.fingerprint], sources: [], replacementKey: '', allowStop: false },
    users: [],
    method: 'Auto',
    subnetId: 'CreateNewVPC',
    helperInstanceType: 't3.small',
    instanceIds: IDS,
    selection: 'launched with key pair leaked',
  });
  /** A child's own result as lambdas/revoke-report writes it. */
  const result = (instanceId: string, outcome: string): void => {
    store.set(revokeResultName(PARENT_ID, instanceId), {
      value: JSON.stringify({ InstanceId: instanceId, Outcome: outcome, Found: 1, Removed: outcome === 'cleaned' ? 1 : 0, CommandId: 'c', CommandTarget: instanceId, ExecutionId: `exec-${instanceId}` }),
      type: 'String',
      version: 1,
    });
  };
  /** Executions of the child document, with their parameters (GetAutomationExecution) and status. */
  let executions: Array<{ id: string; instanceId?: string; spec: string; status: string; failure?: string; afterStop?: string }>;
  const req = (deleteKeyPair = true) => ({ executionId: PARENT_ID, deleteKeyPair, keyPairName: 'leaked', childDocument: CHILD_DOC });
  const deps = () => ({ ec2: new EC2Client({}), ssm: new SSMClient({}), log: recordingLogger(), sleep: async () => undefined });

  beforeEach(() => {
    executions = [];
    store.set(revokeSpecName(PARENT_ID), { value: JSON.stringify(spec()), type: 'String', version: 1 });
    // GetParametersByPath / DeleteParameters over the same store (one level, as Recursive=false).
    ssmMock.on(GetParametersByPathCommand).callsFake((input: { Path: string }) => ({
      Parameters: [...store.entries()]
        .filter(([k]) => k.startsWith(`${input.Path}/`) && !k.slice(input.Path.length + 1).includes('/'))
        .map(([k, v]) => ({ Name: k, Value: v.value, Type: v.type })),
    }));
    ssmMock.on(DeleteParametersCommand).callsFake((input: { Names: string[] }) => {
      for (const n of input.Names) store.delete(n);
      return { DeletedParameters: input.Names };
    });
    ssmMock.on(DescribeAutomationExecutionsCommand).callsFake(() => ({
      AutomationExecutionMetadataList: executions.map((e) => ({ AutomationExecutionId: e.id, DocumentName: CHILD_DOC, AutomationExecutionStatus: e.status })),
    }));
    ssmMock.on(GetAutomationExecutionCommand).callsFake((input: { AutomationExecutionId: string }) => {
      if (input.AutomationExecutionId === PARENT_ID) return { AutomationExecution: { AutomationExecutionId: PARENT_ID, AutomationExecutionStatus: 'InProgress' } };
      const e = executions.find((x) => x.id === input.AutomationExecutionId);
      if (!e) throw awsError('AutomationExecutionNotFoundException', 'not found');
      return {
        AutomationExecution: {
          AutomationExecutionId: e.id,
          AutomationExecutionStatus: e.status,
          FailureMessage: e.failure,
          Parameters: { RevokeSpec: [e.spec], ...(e.instanceId ? { InstanceId: [e.instanceId] } : {}) },
        },
      };
    });
    ssmMock.on(StopAutomationExecutionCommand).callsFake((input: { AutomationExecutionId: string }) => {
      const e = executions.find((x) => x.id === input.AutomationExecutionId);
      if (e?.afterStop) e.status = e.afterStop;
      return {};
    });
    ec2Mock.on(DeleteTagsCommand).resolves({});
    ec2Mock.on(DeleteKeyPairCommand).resolves({});
  });

  it('reads each child\'s own result, explains an instance without one from its execution, keeps the key pair, and removes results, spec and tags', async () => {
    // Prepare: one cleaned; one whose run failed (restore put it back: no result); one never started.
    result(IDS[0], 'cleaned');
    executions = [{ id: 'exec-2', instanceId: IDS[1], spec: revokeSpecName(PARENT_ID), status: 'Failed', failure: 'Step injectKey failed: no' }];
    // Act
    const out = await gatherHandler({ ExecutionId: PARENT_ID, DeleteKeyPair: 'True', KeyPairName: 'leaked', ChildDocument: CHILD_DOC });
    // Assess
    expect(out).toMatchObject({ Instances: 3, Cleaned: 1, Failed: 2, Cancelled: 0, Unknown: 0, KeyPair: expect.stringMatching(/^leaked kept: /) });
    expect(Object.keys(out).sort()).toEqual([...GATHER_FIELDS].sort());
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(512);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteKeyPairCommand);
    const report = JSON.parse(store.get(out.ReportParameter)?.value ?? '{}');
    expect(report.instances.map((e: { instanceId: string; outcome: string }) => [e.instanceId, e.outcome])).toEqual([
      [IDS[0], 'cleaned'],
      [IDS[1], 'failed'],
      [IDS[2], 'failed'],
    ]);
    expect(report.instances[0].execution).toBe(`exec-${IDS[0]}`);
    expect(report.instances[1]).toMatchObject({ execution: 'exec-2', reason: 'Failed: Step injectKey failed: no' });
    expect(report.instances[2].reason).toMatch(/no result and no execution found/);
    // No parent link between executions is asked for (review P10).
    for (const call of ssmMock.commandCalls(DescribeAutomationExecutionsCommand)) {
      expect(call.args[0].input.Filters).toEqual([{ Key: 'DocumentNamePrefix', Values: [CHILD_DOC] }]);
    }
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteTagsCommand, { Resources: IDS, Tags: [{ Key: 'reset-access:revoke-run', Value: PARENT_ID }] });
    expect(store.has(revokeSpecName(PARENT_ID))).toBe(false);
    expect([...store.keys()].filter((k) => k.startsWith(revokeResultsPath(PARENT_ID)))).toEqual([]);
    expect(ssmMock).not.toHaveReceivedCommand(StopAutomationExecutionCommand);
  });

  it('ignores a result that claims another instance, or an outcome only gather gives (cancelled, unknown): failed', async () => {
    // Prepare
    result(IDS[0], 'clean');
    store.set(revokeResultName(PARENT_ID, IDS[1]), { value: JSON.stringify({ InstanceId: IDS[0], Outcome: 'clean' }), type: 'String', version: 1 });
    result(IDS[2], 'unknown');
    // Act
    const r = await gather(deps(), req(false));
    // Assess
    expect(r.report.instances.map((e) => e.outcome)).toEqual(['clean', 'failed', 'failed']);
  });

  it('deletes the key pair when every instance is clean or cleaned and every instance launched with it was in the run', async () => {
    // Prepare
    result(IDS[0], 'cleaned');
    result(IDS[1], 'clean');
    result(IDS[2], 'cleaned');
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: IDS.map((id) => ({ InstanceId: id })) }] });
    // Act
    const r = await gather(deps(), req());
    // Assess
    expect(r.report.counts).toEqual({ clean: 1, cleaned: 2, found: 0, incomplete: 0, windows: 0, unreachable: 0, failed: 0, cancelled: 0, unknown: 0 });
    expect(ec2Mock).toHaveReceivedCommandWith(DescribeInstancesCommand, { Filters: [{ Name: 'key-name', Values: ['leaked'] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'] }] });
    expect(ec2Mock).toHaveReceivedCommandWith(DeleteKeyPairCommand, { KeyName: 'leaked' });
    expect(r.report.keyPair).toBe('leaked deleted');
  });

  it('keeps the key pair when an instance launched with it was not in the run, even if every selected one is clean (review F4)', async () => {
    // Prepare
    result(IDS[0], 'cleaned');
    result(IDS[1], 'clean');
    result(IDS[2], 'cleaned');
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [...IDS, 'i-0000000000000000e'].map((id) => ({ InstanceId: id })) }] });
    // Act
    const r = await gather(deps(), req());
    // Assess
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteKeyPairCommand);
    expect(r.report.keyPair).toMatch(/^leaked kept: launched with it but not clean in this run: i-0000000000000000e$/);
  });

  it('on a cancel, stops every run of this fleet still going (Type Cancel), waits a bounded time, and reports them cancelled or unknown, never failed or clean (review P9)', async () => {
    // Prepare: one done; one that ends Cancelled once stopped; one that keeps running; the fan-out's own
    // execution (no InstanceId); and another fleet's child, which is not ours to stop.
    result(IDS[0], 'cleaned');
    executions = [
      { id: 'fan-out', spec: revokeSpecName(PARENT_ID), status: 'InProgress', afterStop: 'Cancelled' },
      { id: 'exec-2', instanceId: IDS[1], spec: revokeSpecName(PARENT_ID), status: 'InProgress', afterStop: 'Cancelled' },
      { id: 'exec-3', instanceId: IDS[2], spec: revokeSpecName(PARENT_ID), status: 'InProgress' },
      { id: 'other', instanceId: IDS[2], spec: revokeSpecName(FAN_OUT_ID), status: 'InProgress' },
    ];
    let slept = 0;
    // Act
    const r = await gather({ ...deps(), sleep: async (s: number) => void (slept += s) }, req());
    // Assess
    const stopped = ssmMock.commandCalls(StopAutomationExecutionCommand).map((c) => [c.args[0].input.AutomationExecutionId, c.args[0].input.Type]);
    expect(stopped).toEqual([['fan-out', 'Cancel'], ['exec-2', 'Cancel'], ['exec-3', 'Cancel']]);
    expect(slept).toBeGreaterThanOrEqual(STOP_WAIT_SECONDS);
    expect(r.report.instances.map((e) => [e.outcome, e.execution])).toEqual([
      ['cleaned', `exec-${IDS[0]}`],
      ['cancelled', 'exec-2'],
      ['unknown', 'exec-3'],
    ]);
    expect(r.report.keyPair).toMatch(/^leaked kept: .*1 cancelled, 1 unknown/);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteKeyPairCommand);
  });

  it('bounds its search for the run\'s executions by time (the cancel path ends after two minutes, review Q27)', async () => {
    // Prepare
    executions = [{ id: 'exec-2', instanceId: IDS[1], spec: revokeSpecName(PARENT_ID), status: 'Failed' }];
    // Act
    const late = await findRuns(new SSMClient({}), CHILD_DOC, revokeSpecName(PARENT_ID), true, Date.now() - 1);
    const inTime = await findRuns(new SSMClient({}), CHILD_DOC, revokeSpecName(PARENT_ID), true, Date.now() + 60000);
    // Assess
    expect(late).toEqual([]);
    expect(inTime.map((r) => r.executionId)).toEqual(['exec-2']);
    expect(SCAN_SECONDS * 2 + STOP_WAIT_SECONDS).toBeLessThan(120);
  });

  it('on a cancel before an instance started: cancelled (not started), not failed', async () => {
    // Prepare: this execution is itself Cancelling; nothing ran for two instances.
    result(IDS[0], 'clean');
    ssmMock.on(GetAutomationExecutionCommand, { AutomationExecutionId: PARENT_ID }).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Cancelling' } });
    // Act
    const r = await gather(deps(), req(false));
    // Assess
    expect(r.report.instances.map((e) => e.outcome)).toEqual(['clean', 'cancelled', 'cancelled']);
    expect(r.report.instances[1].reason).toMatch(/not started: the fleet run was cancelled/);
  });

  it('without a spec: a retry after it finished answers its report again; a run that failed before resolve wrote one has nothing to gather', async () => {
    // Prepare
    result(IDS[0], 'clean');
    result(IDS[1], 'clean');
    result(IDS[2], 'clean');
    const first = await gather(deps(), req(false));
    ec2Mock.resetHistory();
    // Act: the step's second attempt (the spec is gone, the report written).
    const again = await gather(deps(), req(false));
    // Assess
    expect(again.report).toEqual(first.report);
    expect(again.reportName).toBe(first.reportName);
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteTagsCommand);
    // Act: a run whose resolve refused (nothing written).
    store.delete(first.reportName);
    const none = await gatherHandler({ ExecutionId: PARENT_ID, DeleteKeyPair: 'True', KeyPairName: 'leaked', ChildDocument: CHILD_DOC });
    // Assess
    expect(none).toMatchObject({ ReportParameter: 'none', Instances: 0 });
    expect(ec2Mock).not.toHaveReceivedCommand(DeleteKeyPairCommand);
    expect(store.has(first.reportName)).toBe(false);
  });

  it('never deletes the key pair after an audit that found it, nor for an unreachable instance', () => {
    const results = (o: string[]) => new Map(IDS.map((id, i) => [id, { result: { InstanceId: id, Outcome: o[i] } }]));
    const found = fleetReport(spec('Audit'), results(['found', 'clean', 'clean']), [], '');
    expect(keepKeyPairReason(found)).toMatch(/1 found/);
    const unreachable = fleetReport(spec(), results(['unreachable', 'clean', 'clean']), [], '');
    expect(keepKeyPairReason(unreachable)).toMatch(/1 unreachable/);
  });

  it('fits a large fleet\'s report into 8 KB by leaving entries out and counting them', () => {
    // Prepare
    const many = Array.from({ length: 250 }, (_, i) => `i-${String(i).padStart(17, '0')}`);
    const runs = many.map((id, i) => ({ executionId: `exec-${i}`, instanceId: id, status: 'Failed', failureMessage: 'Step injectKey failed', startTime: 0 }));
    const big = fleetReport({ ...spec(), instanceIds: many }, new Map(), runs, 'not asked');
    // Act
    const text = reportText(big);
    // Assess
    expect(text.length).toBeLessThanOrEqual(8192);
    const parsed = JSON.parse(text);
    expect(parsed.truncated + parsed.instances.length).toBe(250);
    expect(parsed.truncated).toBeGreaterThan(0);
    expect(keepKeyPairReason({ ...big, counts: { ...big.counts }, instances: [], truncated: 1 })).toBeDefined();
  });
});

describe('a fleet child\'s own result (review P10)', () => {
  const specName = revokeSpecName(PARENT_ID);
  const fleetSpec: RevokeSpec = {
    version: 1,
    parentExecutionId: PARENT_ID,
    action: { kind: 'revoke', mode: 'Audit', fingerprints: [LEAKED.fingerprint], sources: [], replacementKey: '', allowStop: false },
    users: [],
    method: 'Auto',
    subnetId: 'CreateNewVPC',
    helperInstanceType: 't3.small',
    instanceIds: [INSTANCE_ID],
    selection: '1 instance ids',
  };

  it('is written under the fleet id its RevokeSpec parameter names, with its execution id, only while the spec exists', async () => {
    // Prepare
    store.set(specName, { value: JSON.stringify(fleetSpec), type: 'String', version: 1 });
    const pre = JSON.stringify({ Method: 'Unreachable', MethodReason: 'running, no Online agent, AllowStop=False' });
    // Act
    const out = await reportHandler({ ExecutionId: EXECUTION_ID, InstanceId: INSTANCE_ID, Unreachable: 'True', PreflightResult: pre, RevokeSpec: specName });
    // Assess
    const written = JSON.parse(store.get(revokeResultName(PARENT_ID, INSTANCE_ID))?.value ?? '{}');
    expect(written).toEqual({ ...out, ExecutionId: EXECUTION_ID });
    expect(written.Outcome).toBe('unreachable');
    // After gather (the spec deleted) a late child writes nothing the run would leave behind.
    store.delete(revokeResultName(PARENT_ID, INSTANCE_ID));
    store.delete(specName);
    const { writeFleetResult } = await import('../../../lambdas/revoke-report/revoke-report');
    await expect(writeFleetResult({ ssm: new SSMClient({}) }, specName, out, EXECUTION_ID)).resolves.toBeUndefined();
    expect(store.has(revokeResultName(PARENT_ID, INSTANCE_ID))).toBe(false);
  });

  it('refuses to write for an instance the fleet did not choose', async () => {
    store.set(specName, { value: JSON.stringify({ ...fleetSpec, instanceIds: IDS }), type: 'String', version: 1 });
    const { writeFleetResult, unreachableReport } = await import('../../../lambdas/revoke-report/revoke-report');
    await expect(writeFleetResult({ ssm: new SSMClient({}) }, specName, unreachableReport(INSTANCE_ID, 'Audit', 'x'), EXECUTION_ID)).rejects.toThrow(/not one of the instances/);
    expect([...store.keys()].some((k) => k.includes('/results/'))).toBe(false);
  });
});
