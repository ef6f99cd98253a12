/**
 * The CLI's pure parts, each against a reference nobody here wrote: the SSM API model of the
 * preinstalled AWS CLI (botocore), the runbook the stack deploys, real ssh-keygen keys, and the
 * kernel's file modes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'yaml';
import type { AutomationExecutionStatus, StepExecution } from '@aws-sdk/client-ssm';
import { CANCEL_STEP, PREFLIGHT_STEP, RESTORE_STEPS, TERMINAL, judge } from '../../cli/execution';
import { stepNamesOf } from '../../cli/follow';
import { formatDuration } from '../../cli/format';
import { keyFilePath, writeKeyFile } from '../../cli/key-file';
import { buildPreview } from '../../cli/preview';
import { MAX_PARAMETER_VALUE, needsKeyParameter, parsePublicKeyFile, publicKeyParameterName } from '../../cli/public-key';
import { addressOf, firstUser, INSTANCE_ID, runbookParameters } from '../../cli/commands/reset';

const ROOT = join(__dirname, '..', '..');
const runbook = parse(readFileSync(join(ROOT, 'runbooks', 'reset-access.yaml'), 'utf8')) as {
  parameters: Record<string, { allowedPattern?: string; allowedValues?: string[] }>;
  mainSteps: { name: string; onFailure?: string; onCancel?: string; isEnd?: boolean; outputs?: { Name: string }[] }[];
};

/** The SSM service model shipped with the preinstalled AWS CLI v1 (botocore). */
function ssmModel(): { shapes: Record<string, { max?: number; min?: number; enum?: string[]; pattern?: string }> } {
  const dir = execFileSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' }).trim();
  const file = join(dir, 'data', 'ssm', '2014-11-06', 'service-2.json.gz');
  return JSON.parse(gunzipSync(readFileSync(file)).toString('utf8'));
}

const scratch = mkdtempSync(join(tmpdir(), 'cli-pure-'));

describe('parameters against the SSM API model and the runbook', () => {
  const model = ssmModel();

  it('the 512-character cap of a parameter value is the model AutomationParameterValue max', () => {
    expect(model.shapes.AutomationParameterValue.max).toBe(MAX_PARAMETER_VALUE);
  });

  it('every status the CLI treats as final is an AutomationExecutionStatus of the model', () => {
    for (const s of TERMINAL) expect(model.shapes.AutomationExecutionStatus.enum).toContain(s);
  });

  it('every parameter the CLI can pass is a parameter of the runbook and matches its pattern', () => {
    const p = runbookParameters('i-0123456789abcdef0', {
      documentName: 'ResetAccess',
      users: 'ec2-user,admin',
      keyType: 'ed25519',
      method: 'Online',
      subnet: 'SelectedInstanceSubnet',
      backup: 'Image',
      helperInstanceType: 't4g.small',
      allowEncryptedVolume: false,
      allowEphemeralDataLoss: true,
    }, { parameter: '/reset-access/public-keys/cli-i-0123456789abcdef0-0a1b2c3d' });
    for (const [name, [value]] of Object.entries(p)) {
      const decl = runbook.parameters[name];
      expect(decl).toBeDefined();
      if (decl.allowedValues) expect(decl.allowedValues).toContain(value);
      // Python's re plays the engine nobody here wrote (the runbook's patterns are plain ones).
      if (decl.allowedPattern) {
        const ok = execFileSync('python3', ['-c', 'import re,sys;print(bool(re.search(sys.argv[1],sys.argv[2])))', decl.allowedPattern, value], { encoding: 'utf8' }).trim();
        expect([name, ok]).toEqual([name, 'True']);
      }
    }
  });

  it('only what was given is passed: the runbook defaults stay the runbook defaults', () => {
    expect(runbookParameters('i-0123456789abcdef0', { documentName: 'ResetAccess' })).toEqual({ InstanceId: ['i-0123456789abcdef0'] });
  });

  it('the instance id pattern accepts what the runbook InstanceId pattern accepts', () => {
    const re = new RegExp(runbook.parameters.InstanceId.allowedPattern as string);
    for (const id of ['i-0123456789abcdef0', 'i-01234567', 'i-0123', 'I-01234567', 'i-0123456789abcdef01']) expect(INSTANCE_ID.test(id)).toBe(re.test(id));
  });

  it('the step names come from the document, in order', () => {
    const names = stepNamesOf(readFileSync(join(ROOT, 'runbooks', 'reset-access.yaml'), 'utf8'));
    expect(names).toEqual(runbook.mainSteps.map((s) => s.name));
  });

  it('the steps the CLI reads as preflight, restore and cancel play those roles in the runbook', () => {
    const step = (n: string) => runbook.mainSteps.find((s) => s.name === n);
    expect(step(PREFLIGHT_STEP)?.onFailure).toBeUndefined(); // a preflight failure ends the run: refused
    const onFailure = new Set(runbook.mainSteps.map((s) => s.onFailure).filter(Boolean));
    expect(onFailure).toEqual(new Set([`step:${RESTORE_STEPS[0]}`]));
    expect(step(RESTORE_STEPS[0])?.onFailure).toBeUndefined();
    expect(step(RESTORE_STEPS[1])).toBeDefined();
    const onCancel = new Set(runbook.mainSteps.map((s) => s.onCancel).filter(Boolean));
    expect(onCancel).toEqual(new Set([`step:${CANCEL_STEP}`]));
    expect(step(CANCEL_STEP)?.outputs?.map((o) => o.Name)).toEqual(['RestoreExecutionId']);
  });
});

describe('judge', () => {
  const t = (s: number) => new Date(1_700_000_000_000 + s * 1000);
  const step = (StepName: string, StepStatus: string, FailureMessage?: string): StepExecution => ({
    StepName,
    StepStatus: StepStatus as AutomationExecutionStatus,
    ExecutionStartTime: t(0),
    ExecutionEndTime: t(5),
    FailureMessage,
  });

  it('a failure restored, a failure not restored, a refusal, a cancel, a success', () => {
    const failed = [step('preflight', 'Success'), step('stopInstance', 'Failed', 'boom')];
    expect(judge({ execution: { AutomationExecutionStatus: 'Failed' as const }, steps: [...failed, step('restore', 'Success'), step('cleanupAfterRestore', 'Success')] })).toMatchObject({
      kind: 'failed-restored',
      failedStep: { name: 'stopInstance', message: 'boom', elapsedMs: 5000 },
    });
    expect(judge({ execution: { AutomationExecutionStatus: 'Failed' as const }, steps: [...failed, step('restore', 'Failed', 'volume vol-1 stays available')] }).kind).toBe('restore-failed');
    expect(judge({ execution: { AutomationExecutionStatus: 'Failed' as const }, steps: [step('preflight', 'Failed', 'RefusedError: Refused: instance i-1 has stop protection. Turn it off first.')] }).kind).toBe('refused');
    // A preflight that failed without refusing (a timeout, a throttled call) is no refusal.
    expect(judge({ execution: { AutomationExecutionStatus: 'Failed' as const }, steps: [step('preflight', 'TimedOut', 'Step timed out')] }).kind).toBe('preflight-failed');
    expect(
      judge({
        execution: { AutomationExecutionStatus: 'Cancelled', Outputs: { 'startRestore.RestoreExecutionId': ['0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'] } },
        steps: [step('preflight', 'Success'), step('stopInstance', 'Cancelled'), step('startRestore', 'Success')],
      }),
    ).toMatchObject({ kind: 'cancelled', restoreExecutionId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' });
    expect(judge({ execution: { AutomationExecutionStatus: 'Success' }, steps: [step('preflight', 'Success'), step('summarize', 'Success')] }).kind).toBe('success');
    expect(judge({ execution: { AutomationExecutionStatus: 'InProgress' }, steps: [step('preflight', 'Success')] }).kind).toBe('running');
  });
});

describe('--public-key', () => {
  const keygen = (type: string, bits?: number): { pub: string; priv: string } => {
    const file = join(scratch, `${type}-${bits ?? ''}-${Math.random().toString(36).slice(2)}`);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'me@laptop', '-f', file]);
    return { pub: `${file}.pub`, priv: file };
  };

  it('an ed25519 key line goes in PublicKey; an RSA 4096 line (over 512 characters) through PublicKeyParameter', () => {
    const ed = keygen('ed25519');
    const line = parsePublicKeyFile(readFileSync(ed.pub, 'utf8'), ed.pub);
    expect(line).toBe(readFileSync(ed.pub, 'utf8').trim());
    expect(needsKeyParameter(line)).toBe(false);
    expect(new RegExp(runbook.parameters.PublicKey.allowedPattern as string).test(line)).toBe(true);
    const rsa = keygen('rsa', 4096);
    const long = parsePublicKeyFile(readFileSync(rsa.pub, 'utf8'), rsa.pub);
    expect(long.length).toBeGreaterThan(512);
    expect(needsKeyParameter(long)).toBe(true);
    const name = publicKeyParameterName('i-0123456789abcdef0', '0a1b2c3d');
    expect(new RegExp(runbook.parameters.PublicKeyParameter.allowedPattern as string).test(name)).toBe(true);
  });

  it('a private key given by mistake is refused without repeating it', () => {
    const k = keygen('ed25519');
    const text = readFileSync(k.priv, 'utf8');
    let message = '';
    try {
      parsePublicKeyFile(text, k.priv);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/private key/);
    const body = text.split('\n')[1];
    expect(message).not.toContain(body.slice(0, 20));
  });

  it('two keys, or text that is no key, are refused', () => {
    const a = readFileSync(keygen('ed25519').pub, 'utf8');
    expect(() => parsePublicKeyFile(a + a, 'f')).toThrow(/exactly one/);
    expect(() => parsePublicKeyFile('hello world\n', 'f')).toThrow(/not an OpenSSH public key/);
  });
});

describe('the key file', () => {
  it('is created 0600 even with a umask of 000, and an existing file or a symlink is refused', () => {
    const home = mkdtempSync(join(tmpdir(), 'cli-key-'));
    const file = keyFilePath(home, 'i-0123456789abcdef0');
    const old = process.umask(0);
    try {
      writeKeyFile(file, 'KEY', false);
    } finally {
      process.umask(old);
    }
    expect(file).toBe(join(home, '.ssh', 'reset-access-i-0123456789abcdef0'));
    expect(lstatSync(file).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(home, '.ssh')).mode & 0o777).toBe(0o700);
    expect(() => writeKeyFile(file, 'OTHER', false)).toThrow(/already exists/);
    expect(readFileSync(file, 'utf8')).toBe('KEY\n');
    // --force: replaced by a new file, not written through
    writeKeyFile(file, 'NEW', true);
    expect(readFileSync(file, 'utf8')).toBe('NEW\n');
    // A symlink planted at the name is not followed (O_EXCL).
    const target = join(home, 'target');
    writeFileSync(target, 'untouched');
    const link = keyFilePath(home, 'i-0123456789abcdef1');
    symlinkSync(target, link);
    expect(() => writeKeyFile(link, 'KEY', false)).toThrow(/already exists/);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
  });
});

describe('the key file, when the disk says no', () => {
  it('C1: a short write (a file-size limit) fails loudly and leaves no truncated key, instead of returning as if written', () => {
    const home = mkdtempSync(join(tmpdir(), 'cli-short-'));
    const file = keyFilePath(home, 'i-0123456789abcdef0');
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${'A'.repeat(3300)}\n-----END OPENSSH PRIVATE KEY-----\n`;
    // The kernel's RLIMIT_FSIZE (ulimit -f, 1024-byte blocks): write(2) stops at 2048 bytes.
    const script = `const {writeKeyFile}=require(${JSON.stringify(join(ROOT, 'cli', 'key-file.ts'))});try{writeKeyFile(process.argv[1],process.argv[2],false);console.log('RETURNED')}catch(e){console.log('THREW '+e.message)}`;
    const out = execFileSync('sh', ['-c', 'ulimit -f 2; exec "$TSX" -e "$SCRIPT" "$FILE" "$KEY"'], {
      encoding: 'utf8',
      env: { ...process.env, TSX: join(ROOT, 'node_modules', '.bin', 'tsx'), SCRIPT: script, FILE: file, KEY: key },
    });
    expect(out).toMatch(/^THREW could not write .* \(EFBIG\); the partial file was removed/m);
    expect(() => lstatSync(file)).toThrow(/ENOENT/);
  });

  it('C6: an existing ~/.ssh writable by others, or a symlink, is refused before anything', () => {
    const home = mkdtempSync(join(tmpdir(), 'cli-sshdir-'));
    execFileSync('install', ['-d', '-m', '777', join(home, '.ssh')]);
    expect(() => writeKeyFile(keyFilePath(home, 'i-0123456789abcdef0'), 'KEY', false)).toThrow(/writable by group or others/);
    const other = mkdtempSync(join(tmpdir(), 'cli-sshdir-'));
    const shared = mkdtempSync(join(tmpdir(), 'cli-shared-'));
    symlinkSync(shared, join(other, '.ssh'));
    expect(() => writeKeyFile(keyFilePath(other, 'i-0123456789abcdef0'), 'KEY', false)).toThrow(/symbolic link/);
    expect(() => lstatSync(join(shared, 'reset-access-i-0123456789abcdef0'))).toThrow(/ENOENT/);
  });
});

describe('the confirmation prompt in a terminal', () => {
  it('C8: Ctrl-C at the prompt answers no (the promise settles), rather than ending the process with nothing decided', async () => {
    const script = `const {processIo}=require(${JSON.stringify(join(ROOT, 'cli', 'io.ts'))});processIo().confirm('Reset access to i-0123456789abcdef0?').then((a)=>console.log('ANSWER='+a))`;
    // A pseudo-terminal (util-linux script): readline reads keys raw there, ^C included.
    const child = spawn('script', ['-qfec', `"$TSX" -e "$SCRIPT"`, '/dev/null'], {
      env: { ...process.env, TSX: join(ROOT, 'node_modules', '.bin', 'tsx'), SCRIPT: script },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += String(d);
      if (out.includes('[y/N]') && !out.includes('SENT')) {
        out += 'SENT';
        child.stdin.write('\u0003');
      }
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(out).toContain('[y/N]');
    expect(out).toMatch(/ANSWER=false/);
    expect(code).toBe(0);
  });
});

describe('summary and result', () => {
  it('a running instance without an Elastic IP is stopped and gets a new public IP; with one it keeps it', () => {
    const inst = { InstanceId: 'i-0123456789abcdef0', State: { Name: 'running' as const }, PublicIpAddress: '3.3.3.3' };
    const p = buildPreview(inst, false, { VolumeId: 'vol-1', Size: 8 }, 'Snapshot');
    expect(p).toMatchObject({ willStop: true, newPublicIp: true, backupUsdPerMonthAtMost: 0.4 });
    expect(buildPreview(inst, true, { VolumeId: 'vol-1', Size: 8 }, 'None')).toMatchObject({ newPublicIp: false, backupUsdPerMonthAtMost: 0 });
    expect(() => buildPreview({ ...inst, State: { Name: 'stopping' } }, false, undefined, 'Snapshot')).toThrow(/settle/);
  });

  it('the address: public DNS, else public IP, else private IP', () => {
    expect(addressOf({ PublicDnsName: 'ec2-3-3-3-3.compute-1.amazonaws.com', PublicIpAddress: '3.3.3.3', PrivateIpAddress: '10.0.0.5' })).toEqual({ address: 'ec2-3-3-3-3.compute-1.amazonaws.com', kind: 'public DNS' });
    expect(addressOf({ PublicDnsName: '', PublicIpAddress: '3.3.3.3' })).toEqual({ address: '3.3.3.3', kind: 'public IP' });
    expect(addressOf({ PrivateIpAddress: '10.0.0.5' })).toEqual({ address: '10.0.0.5', kind: 'private IP' });
  });

  it('the user of the ssh command is the first user changed, also from a cut list', () => {
    expect(firstUser('ec2-user')).toBe('ec2-user');
    expect(firstUser('admin,ubuntu…(+3 more)')).toBe('admin');
    expect(firstUser('')).toBeUndefined();
    expect(formatDuration(125_000)).toBe('2m05s');
  });
});
