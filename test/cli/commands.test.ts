/**
 * The CLI's commands through main(argv), against aws-sdk-client-mock: what they send, what they
 * print, their exit codes, and that the private key reaches only the 0600 file.
 */
import { DescribeAddressesCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, DescribeVolumesCommand, DeleteSnapshotCommand, DeregisterImageCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  DescribeAutomationExecutionsCommand,
  DescribeInstanceInformationCommand,
  DescribeAutomationStepExecutionsCommand,
  DescribeParametersCommand,
  GetAutomationExecutionCommand,
  GetDocumentCommand,
  GetParameterCommand,
  PutParameterCommand,
  SSMClient,
  StartAutomationExecutionCommand,
  StopAutomationExecutionCommand,
  type AutomationExecutionStatus,
  type StepExecution,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main';
import { EXIT } from '../../cli/exit-codes';
import { testIo } from './support';

const ssm = mockClient(SSMClient);
const ec2 = mockClient(EC2Client);
const ROOT = join(__dirname, '..', '..');
const RUNBOOK = readFileSync(join(ROOT, 'runbooks', 'reset-access.yaml'), 'utf8');
const IID = 'i-0123456789abcdef0';
const EXEC = '11111111-2222-3333-4444-555555555555';
const RESTORE_EXEC = '66666666-7777-8888-9999-000000000000';
const KEY_NAME = `/ec2rl/openssh/${IID}/key`;
const PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk\n-----END OPENSSH PRIVATE KEY-----';
const t = (s: number) => new Date(1_700_000_000_000 + s * 1000);
const step = (StepName: string, status: string, start = 0, end = 5, FailureMessage?: string): StepExecution => ({
  StepName,
  StepStatus: status as AutomationExecutionStatus,
  ExecutionStartTime: t(start),
  ...(['InProgress', 'Pending'].includes(status) ? {} : { ExecutionEndTime: t(end) }),
  ...(FailureMessage ? { FailureMessage } : {}),
});
const instance = (state: 'running' | 'stopped', ip?: string) => ({
  InstanceId: IID,
  State: { Name: state },
  RootDeviceName: '/dev/xvda',
  BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: 'vol-0aaaaaaaaaaaaaaaa' } }],
  ...(ip ? { PublicIpAddress: ip, PublicDnsName: `ec2-${ip.replace(/\./g, '-')}.compute-1.amazonaws.com` } : {}),
  PrivateIpAddress: '172.31.0.10',
});
const SUMMARY = JSON.stringify({
  KeyParameterName: KEY_NAME,
  BackupId: 'snap-0bbbbbbbbbbbbbbbb',
  UsersChanged: 'ec2-user',
  FilesChanged: '/home/ec2-user/.ssh/authorized_keys',
  Fingerprint: 'SHA256:abc',
  Warnings: 'the public IP address changed',
  InstanceState: 'running',
  FullReport: 'command c on i-h',
});

/** An execution that goes InProgress → the given end, with the given steps at the end. */
function execution(end: string, finalSteps: StepExecution[], outputs: Record<string, string[]> = {}): void {
  ssm.on(GetAutomationExecutionCommand).resolvesOnce({ AutomationExecution: { AutomationExecutionId: EXEC, AutomationExecutionStatus: 'InProgress' } }).resolves({
    AutomationExecution: { AutomationExecutionId: EXEC, DocumentName: 'ResetAccess', AutomationExecutionStatus: end as AutomationExecutionStatus, Outputs: outputs },
  });
  ssm.on(DescribeAutomationStepExecutionsCommand).resolvesOnce({ StepExecutions: [step('preflight', 'InProgress')] }).resolves({ StepExecutions: finalSteps });
}

function awsReady(): void {
  ec2.on(DescribeInstancesCommand).resolvesOnce({ Reservations: [{ Instances: [instance('running', '3.3.3.3')] }] }).resolves({ Reservations: [{ Instances: [instance('running', '4.4.4.4')] }] });
  ec2.on(DescribeAddressesCommand).resolves({ Addresses: [] });
  ec2.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: 'vol-0aaaaaaaaaaaaaaaa', Size: 8 }] });
  ssm.on(GetDocumentCommand).resolves({ Content: RUNBOOK, DocumentFormat: 'YAML' });
  ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [] });
  ssm.on(StartAutomationExecutionCommand).resolves({ AutomationExecutionId: EXEC });
}

const okSteps = ['preflight', 'describeInstance', 'stopInstance', 'injectKey', 'cleanup', 'summarize'].map((n, i) => step(n, 'Success', i * 10, i * 10 + 7));

beforeEach(() => {
  ssm.reset();
  ec2.reset();
});

describe('reset', () => {
  it('success: the key lands 0600 in ~/.ssh, the parameter is deleted, the exact ssh command is printed, the key nowhere else', async () => {
    awsReady();
    execution('Success', okSteps, { 'summarize.Payload': [SUMMARY] });
    ssm.on(GetParameterCommand, { Name: KEY_NAME, WithDecryption: true }).resolves({ Parameter: { Name: KEY_NAME, Value: PRIVATE } });
    ssm.on(DeleteParameterCommand).resolves({});
    const io = testIo();
    const code = await main(['reset', IID], io);
    const out = io.stdout.join('');
    expect(code).toBe(EXIT.ok);
    expect(io.questions).toEqual([`Reset access to ${IID}?`]);
    expect(ssm).toHaveReceivedCommandWith(StartAutomationExecutionCommand, { DocumentName: 'ResetAccess', Parameters: { InstanceId: [IID] } });
    const file = join(io.home, '.ssh', `reset-access-${IID}`);
    expect(readFileSync(file, 'utf8')).toBe(`${PRIVATE}\n`);
    expect(lstatSync(file).mode & 0o777).toBe(0o600);
    expect(ssm).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: KEY_NAME });
    expect(out).toContain('will be STOPPED');
    expect(out).toContain('NEW public IP');
    expect(out).toContain(`ssh -i ${file} ec2-user@ec2-4-4-4-4.compute-1.amazonaws.com`);
    expect(out + io.stderr.join('')).not.toContain('c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1wcmludGVk');
  });

  it('--json: one JSON object on stdout, without the key; --keep-parameter keeps it', async () => {
    awsReady();
    execution('Success', okSteps, { 'summarize.Payload': [SUMMARY] });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: KEY_NAME, Value: PRIVATE } });
    const io = testIo();
    const code = await main(['reset', IID, '--json', '--yes', '--keep-parameter', '--users', 'ec2-user', '--key-type', 'ed25519', '--method', 'VolumeSwap', '--backup', 'None', '--no-allow-encrypted-volume'], io);
    expect(code).toBe(EXIT.ok);
    expect(io.stdout).toHaveLength(1);
    const json = JSON.parse(io.stdout[0]);
    expect(json).toMatchObject({ executionId: EXEC, instanceId: IID, address: 'ec2-4-4-4-4.compute-1.amazonaws.com', addressKind: 'public DNS', exitCode: 0 });
    expect(io.stdout[0]).not.toContain('c2VjcmV0');
    expect(io.questions).toEqual([]);
    expect(ssm).not.toHaveReceivedCommand(DeleteParameterCommand);
    expect(ssm).toHaveReceivedCommandWith(StartAutomationExecutionCommand, {
      Parameters: { InstanceId: [IID], Users: ['ec2-user'], KeyType: ['ed25519'], Method: ['VolumeSwap'], BackupMethod: ['None'], AllowEncryptedVolume: ['False'] },
    });
  });

  it('the summary says what preflight will choose: Auto takes Online (no stop) for a running managed node; --method Online refuses early when it cannot', async () => {
    awsReady();
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [{ InstanceId: IID, PingStatus: 'Online', PlatformType: 'Linux', AgentVersion: '3.3.2746.0' }],
    });
    const io = testIo({ answer: false });
    expect(await main(['reset', IID], io)).toBe(EXIT.refused);
    const out = io.stdout.join('');
    expect(out).toContain('method Online');
    expect(out).not.toContain('STOPPED');
    expect(out).not.toContain('NEW public IP');

    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [] });
    const io2 = testIo();
    expect(await main(['reset', IID, '--method', 'Online', '--yes'], io2)).toBe(EXIT.refused);
    expect(io2.stderr.join('')).toMatch(/--method Online cannot run.*not a managed node/);
    expect(ssm).not.toHaveReceivedCommand(StartAutomationExecutionCommand);
  });

  it('refuses to prompt without a terminal, and a "no" starts nothing: exit 3', async () => {
    awsReady();
    const noTty = testIo({ stdinIsTTY: false });
    expect(await main(['reset', IID], noTty)).toBe(EXIT.refused);
    expect(noTty.stderr.join('')).toMatch(/stdin is not a terminal.*--yes/);
    const declined = testIo({ answer: false });
    expect(await main(['reset', IID], declined)).toBe(EXIT.refused);
    expect(ssm).not.toHaveReceivedCommand(StartAutomationExecutionCommand);
  });

  it('usage errors: exit 2, nothing called', async () => {
    const io = testIo();
    expect(await main(['reset', 'i-xyz'], io)).toBe(EXIT.usage);
    expect(await main(['reset', IID, '--key-type', 'dsa'], io)).toBe(EXIT.usage);
    expect(await main(['frobnicate'], io)).toBe(EXIT.usage);
    expect(ssm).not.toHaveReceivedAnyCommand();
    expect(ec2).not.toHaveReceivedAnyCommand();
  });

  it('an existing key file is refused before anything starts, unless --force', async () => {
    awsReady();
    const io = testIo();
    const file = join(io.home, '.ssh', `reset-access-${IID}`);
    execFileSync('mkdir', ['-p', join(io.home, '.ssh')]);
    writeFileSync(file, 'old');
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.usage);
    expect(io.stderr.join('')).toMatch(/already exists.*--force/);
    expect(ssm).not.toHaveReceivedCommand(StartAutomationExecutionCommand);
  });

  it('preflight refusal: exit 3 with its message', async () => {
    awsReady();
    execution('Failed', [step('preflight', 'Failed', 0, 2, 'RefusedError: Refused: instance i-0123456789abcdef0 has stop protection. Turn it off first.')]);
    const io = testIo();
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.refused);
    expect(io.stderr.join('')).toMatch(/Refused, nothing changed: .*has stop protection/);
  });

  it('a preflight failure that is no refusal (throttled, timed out) is exit 1, not "refused"', async () => {
    awsReady();
    execution('Failed', [step('preflight', 'Failed', 0, 2, 'ThrottlingException: Rate exceeded')]);
    const io = testIo();
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.error);
    expect(io.stderr.join('')).toMatch(/Preflight failed \(not a refusal\): ThrottlingException/);
  });

  it('C4: a summary under another summarize step (summarizeUserData.Payload) is read; a success with no summary fails loudly, naming the parameter', async () => {
    awsReady();
    execution('Success', okSteps, { 'summarizeUserData.Payload': [SUMMARY] });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: KEY_NAME, Value: PRIVATE } });
    const io = testIo();
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.ok);
    expect(existsSync(join(io.home, '.ssh', `reset-access-${IID}`))).toBe(true);

    ssm.reset();
    ec2.reset();
    awsReady();
    execution('Success', okSteps, {});
    const io2 = testIo();
    expect(await main(['reset', IID, '--yes'], io2)).toBe(EXIT.error);
    expect(io2.stderr.join('')).toMatch(new RegExp(`no summary output.*${KEY_NAME}`));
  });

  it('C5: the key file appearing during the run: exit 1 naming the parameter, which is kept', async () => {
    awsReady();
    execution('Success', okSteps, { 'summarize.Payload': [SUMMARY] });
    const io = testIo();
    ssm.on(GetParameterCommand).callsFake(() => {
      execFileSync('mkdir', ['-p', '-m', '700', join(io.home, '.ssh')]);
      writeFileSync(join(io.home, '.ssh', `reset-access-${IID}`), 'someone else');
      return { Parameter: { Name: KEY_NAME, Value: PRIVATE } };
    });
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.error);
    expect(io.stderr.join('')).toMatch(new RegExp(`the reset succeeded, but .*already exists.*The key is still in ${KEY_NAME} \\(not deleted\\)`));
    expect(ssm).not.toHaveReceivedCommand(DeleteParameterCommand);
    expect(io.stderr.join('')).not.toContain('c2VjcmV0');
  });

  it('C9: with --json an error is one JSON object on stdout too', async () => {
    const io = testIo({ stdinIsTTY: false });
    expect(await main(['reset', 'i-xyz', '--json'], io)).toBe(EXIT.usage);
    expect(JSON.parse(io.stdout.join(''))).toEqual({ error: { message: expect.stringContaining('not an instance id'), exitCode: 2 } });
    awsReady();
    const io2 = testIo({ stdinIsTTY: false });
    expect(await main(['reset', IID, '--json'], io2)).toBe(EXIT.refused);
    expect(JSON.parse(io2.stdout.join(''))).toEqual({ error: { message: expect.stringContaining('stdin is not a terminal'), exitCode: 3 } });
    const io3 = testIo();
    expect(await main(['reset', IID, '--key-type', 'dsa', '--json'], io3)).toBe(EXIT.usage);
    expect(JSON.parse(io3.stdout.join('')).error.exitCode).toBe(2);
  });

  it('a failure restored: exit 4 naming the step, its message and restore; restore failed: exit 5', async () => {
    awsReady();
    const failed = [step('preflight', 'Success'), step('stopInstance', 'Failed', 5, 65, 'InsufficientInstanceCapacity')];
    const restored = { ...step('restore', 'Success', 70, 90), Outputs: { Payload: [JSON.stringify({ Restored: true, Message: 'root volume vol-0aaaaaaaaaaaaaaaa back at /dev/xvda; instance running', ForcedDetach: false })] } };
    execution('Failed', [...failed, restored, step('cleanupAfterRestore', 'Success', 90, 95)]);
    const io = testIo();
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.failedRestored);
    const err = io.stderr.join('');
    expect(err).toContain('The run failed at stopInstance Failed after 1m00s: InsufficientInstanceCapacity');
    expect(err).toContain('restore Success after 20s');
    expect(err).toContain('Restore put the root volume back');
    expect(err).toContain('Restore reported: root volume vol-0aaaaaaaaaaaaaaaa back at /dev/xvda; instance running');
    expect(existsSync(join(io.home, '.ssh', `reset-access-${IID}`))).toBe(false);

    ssm.reset();
    ec2.reset();
    awsReady();
    execution('Failed', [...failed, step('restore', 'Failed', 70, 90, 'volume vol-0aaaaaaaaaaaaaaaa stays available')]);
    const io2 = testIo();
    expect(await main(['reset', IID, '--yes'], io2)).toBe(EXIT.restoreFailed);
    expect(io2.stderr.join('')).toMatch(/restore Failed after 20s: volume vol-0aaaaaaaaaaaaaaaa stays available/);
  });

  it('cancelled while running: follows the restore execution named by startRestore.RestoreExecutionId', async () => {
    awsReady();
    ssm
      .on(GetAutomationExecutionCommand, { AutomationExecutionId: EXEC })
      .resolves({ AutomationExecution: { AutomationExecutionId: EXEC, AutomationExecutionStatus: 'Cancelled', Outputs: { 'startRestore.RestoreExecutionId': [RESTORE_EXEC] } } });
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: RESTORE_EXEC }).resolves({ AutomationExecution: { AutomationExecutionId: RESTORE_EXEC, DocumentName: 'ResetAccess-Restore', AutomationExecutionStatus: 'Success' } });
    ssm.on(DescribeAutomationStepExecutionsCommand, { AutomationExecutionId: EXEC }).resolves({ StepExecutions: [step('preflight', 'Success'), step('stopInstance', 'Cancelled'), step('startRestore', 'Success')] });
    ssm.on(DescribeAutomationStepExecutionsCommand, { AutomationExecutionId: RESTORE_EXEC }).resolves({ StepExecutions: [step('restore', 'Success'), step('cleanup', 'Success')] });
    const io = testIo();
    expect(await main(['reset', IID, '--yes'], io)).toBe(EXIT.failedRestored);
    expect(io.stderr.join('')).toContain(`Restore execution ${RESTORE_EXEC}: Success`);
  });

  it('a public key over 512 characters goes through a String parameter under /reset-access/public-keys/, deleted after', async () => {
    awsReady();
    execution('Success', okSteps, { 'summarize.Payload': [JSON.stringify({ KeyParameterName: 'none', UsersChanged: 'ec2-user' })] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    ssm.on(DeleteParameterCommand).resolves({});
    const dir = mkdtempSync(join(tmpdir(), 'cli-pub-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '4096', '-N', '', '-f', join(dir, 'id')]);
    const line = readFileSync(join(dir, 'id.pub'), 'utf8').trim();
    const io = testIo();
    const code = await main(['reset', IID, '--yes', '--public-key', join(dir, 'id.pub')], io);
    expect([code, io.stderr.join('')]).toEqual([EXIT.ok, '']);
    const put = ssm.commandCalls(PutParameterCommand)[0].args[0].input;
    expect(put).toMatchObject({ Type: 'String', Value: line });
    expect(put.Name).toMatch(new RegExp(`^/reset-access/public-keys/cli-${IID}-[0-9a-f]{8}$`));
    expect(ssm).toHaveReceivedCommandWith(StartAutomationExecutionCommand, { Parameters: { InstanceId: [IID], PublicKeyParameter: [put.Name as string] } });
    expect(ssm).toHaveReceivedCommandWith(DeleteParameterCommand, { Name: put.Name });
    expect(ssm).not.toHaveReceivedCommand(GetParameterCommand);
    expect(io.stdout.join('')).toContain(`ssh -i <your private key> ec2-user@ec2-4-4-4-4.compute-1.amazonaws.com`);
  });
});

describe('status, cancel, backups', () => {
  it('status with no argument lists every lock tag and lock record with its execution state', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: IID, Tags: [{ Key: 'reset-access:lock', Value: EXEC }] }] }] });
    ec2.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: 'vol-0aaaaaaaaaaaaaaaa', Tags: [{ Key: 'reset-access:lock', Value: EXEC }] }] });
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: `/reset-access/locks/${IID}` }] });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify({ version: 1, executionId: EXEC, progress: { phase: 'root-detached' } }) } });
    ssm.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Failed' } });
    const io = testIo();
    expect(await main(['status', '--json'], io)).toBe(EXIT.ok);
    expect(ec2).toHaveReceivedCommandWith(DescribeInstancesCommand, { Filters: [{ Name: 'tag-key', Values: ['reset-access:lock'] }] });
    expect(JSON.parse(io.stdout.join('')).locks).toEqual([
      { kind: 'instance tag', id: IID, executionId: EXEC, executionState: 'Failed' },
      { kind: 'volume tag', id: 'vol-0aaaaaaaaaaaaaaaa', executionId: EXEC, executionState: 'Failed' },
      { kind: 'lock record', id: IID, executionId: EXEC, executionState: 'Failed' },
    ]);
  });

  it('status <instance-id> finds its executions among the document executions by their InstanceId', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [instance('running')] }] });
    ec2.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: 'vol-0aaaaaaaaaaaaaaaa' }] });
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound', $metadata: {} }));
    ssm.on(DescribeAutomationExecutionsCommand).resolves({
      AutomationExecutionMetadataList: [
        { AutomationExecutionId: EXEC, DocumentName: 'ResetAccess', AutomationExecutionStatus: 'Success', ExecutionStartTime: t(10) },
        { AutomationExecutionId: RESTORE_EXEC, DocumentName: 'ResetAccess', AutomationExecutionStatus: 'Success', ExecutionStartTime: t(20) },
      ],
    });
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: EXEC }).resolves({ AutomationExecution: { Parameters: { InstanceId: [IID] } } });
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: RESTORE_EXEC }).resolves({ AutomationExecution: { Parameters: { InstanceId: ['i-0fffffffffffffff0'] } } });
    const io = testIo();
    expect(await main(['status', IID, '--json'], io)).toBe(EXIT.ok);
    const json = JSON.parse(io.stdout.join(''));
    expect(json).toMatchObject({ instanceId: IID, lockRecord: null, lockTags: { instance: null, rootVolume: null } });
    expect(json.executions.map((e: { executionId: string }) => e.executionId)).toEqual([EXEC]);
  });

  it('cancel: StopAutomationExecution Type Cancel, then the restore execution to its end', async () => {
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: EXEC }).resolves({
      AutomationExecution: { AutomationExecutionId: EXEC, DocumentName: 'ResetAccess', AutomationExecutionStatus: 'Cancelled', Outputs: { 'startRestore.RestoreExecutionId': [RESTORE_EXEC] } },
    });
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: RESTORE_EXEC }).resolves({ AutomationExecution: { DocumentName: 'ResetAccess-Restore', AutomationExecutionStatus: 'Failed' } });
    ssm.on(DescribeAutomationStepExecutionsCommand, { AutomationExecutionId: EXEC }).resolves({ StepExecutions: [step('preflight', 'Success'), step('startRestore', 'Success')] });
    ssm.on(DescribeAutomationStepExecutionsCommand, { AutomationExecutionId: RESTORE_EXEC }).resolves({ StepExecutions: [step('restore', 'Failed', 0, 30, 'attach failed')] });
    ssm.on(GetDocumentCommand).rejects(new Error('no access'));
    const io = testIo();
    expect(await main(['cancel', EXEC, '--json'], io)).toBe(EXIT.restoreFailed);
    expect(ssm).toHaveReceivedCommandWith(StopAutomationExecutionCommand, { AutomationExecutionId: EXEC, Type: 'Cancel' });
    expect(JSON.parse(io.stdout.join(''))).toMatchObject({ restoreExecutionId: RESTORE_EXEC, restore: { status: 'Failed', failedStep: { name: 'restore', message: 'attach failed' } }, exitCode: 5 });
  });

  it('backups lists what the product tagged and only its own keys; --delete deregisters images before their snapshots', async () => {
    const tags = [{ Key: 'reset-access:managed-by', Value: 'ec2-reset-access' }, { Key: 'reset-access:role', Value: 'backup' }, { Key: 'reset-access:instance-id', Value: IID }];
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0ccccccccccccccc0', CreationDate: t(0).toISOString(), Tags: tags, BlockDeviceMappings: [{ Ebs: { SnapshotId: 'snap-0image', VolumeSize: 8 } }] }] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-0image', Tags: tags, VolumeSize: 8 }, { SnapshotId: 'snap-0alone', Tags: tags, VolumeSize: 30, StartTime: t(0) }] });
    ssm.on(DescribeParametersCommand).resolves({
      Parameters: [
        { Name: KEY_NAME, Description: `ec2-reset-access: SSH private key (rsa, SHA256:x) for ${IID}, execution ${EXEC}`, LastModifiedDate: t(0) },
        { Name: '/ec2rl/openssh/i-0eeeeeeeeeeeeeee0/key', Description: 'AWSSupport-ResetAccess key' },
      ],
    });
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound', $metadata: {} }));
    ssm.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Success' } });
    const io = testIo();
    expect(await main(['backups', '--delete', '--yes', '--json'], io)).toBe(EXIT.ok);
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, { OwnerIds: ['self'], Filters: [{ Name: 'tag:reset-access:managed-by', Values: ['ec2-reset-access'] }, { Name: 'tag:reset-access:role', Values: ['backup'] }] });
    const json = JSON.parse(io.stdout.join(''));
    expect(json.items.map((i: { id: string }) => i.id)).toEqual(['ami-0ccccccccccccccc0', 'snap-0alone', KEY_NAME]);
    expect(json.deleted).toEqual(['ami-0ccccccccccccccc0', 'snap-0image', 'snap-0alone', KEY_NAME]);
    const calls = ec2.calls();
    const deregister = calls.findIndex((c) => c.args[0] instanceof DeregisterImageCommand);
    expect(deregister).toBeGreaterThanOrEqual(0);
    expect(deregister).toBeLessThan(calls.findIndex((c) => c.args[0] instanceof DeleteSnapshotCommand));
    expect(ssm).not.toHaveReceivedCommandWith(DeleteParameterCommand, { Name: '/ec2rl/openssh/i-0eeeeeeeeeeeeeee0/key' });
    // Only lock records are read, never a key parameter's value.
    for (const c of ssm.commandCalls(GetParameterCommand)) expect(c.args[0].input.Name).toMatch(/^\/reset-access\/locks\//);
  });

  it('C2: backups --delete keeps what a run not finished may need (a locked instance, an execution still going)', async () => {
    const tags = (iid: string, exec: string) => [
      { Key: 'reset-access:managed-by', Value: 'ec2-reset-access' },
      { Key: 'reset-access:role', Value: 'backup' },
      { Key: 'reset-access:instance-id', Value: iid },
      { Key: 'reset-access:execution-id', Value: exec },
    ];
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        { SnapshotId: 'snap-0locked', Tags: tags(IID, RESTORE_EXEC), VolumeSize: 8 },
        { SnapshotId: 'snap-0running', Tags: tags('i-0ddddddddddddddd0', EXEC), VolumeSize: 8 },
        { SnapshotId: 'snap-0old', Tags: tags('i-0ddddddddddddddd0', RESTORE_EXEC), VolumeSize: 8 },
      ],
    });
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: KEY_NAME, Description: `ec2-reset-access: SSH private key (rsa, SHA256:x) for ${IID}, execution ${RESTORE_EXEC}` }] });
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound', $metadata: {} }));
    ssm.on(GetParameterCommand, { Name: `/reset-access/locks/${IID}` }).resolves({ Parameter: { Value: '{}' } });
    ssm.on(GetAutomationExecutionCommand).resolves({ AutomationExecution: { AutomationExecutionStatus: 'Success' } });
    ssm.on(GetAutomationExecutionCommand, { AutomationExecutionId: EXEC }).resolves({ AutomationExecution: { AutomationExecutionStatus: 'InProgress' } });
    const io = testIo();
    expect(await main(['backups', '--delete', '--yes', '--json'], io)).toBe(EXIT.ok);
    const json = JSON.parse(io.stdout.join(''));
    expect(json.deleted).toEqual(['snap-0old']);
    expect(json.skippedInUse.sort()).toEqual([KEY_NAME, 'snap-0locked', 'snap-0running'].sort());
    expect(ec2).not.toHaveReceivedCommandWith(DeleteSnapshotCommand, { SnapshotId: 'snap-0locked' });
    expect(ssm).not.toHaveReceivedCommand(DeleteParameterCommand);
  });
});
