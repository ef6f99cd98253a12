/**
 * The windows-reset Command document as deployed: its shape, its parameters' patterns as the SSM
 * Agent (Go's regexp) and the service (java.util.regex is our reference) judge them, and that it
 * carries the script and the boot action byte for byte.
 */
import { execFileSync } from 'child_process';
import { generateKeyPairSync } from 'crypto';
import { readFileSync } from 'fs';
import { join } from 'path';
import { goRegexpVerdicts } from '../../local/go-regexp';
import { loadWindowsResetDocument, sharedHead, windowsDeployedLines, windowsResetScript, windowsResetScriptFromDocument } from '../../lib/windows-reset-document';
import { assembleScript } from '../../lib/inject-key-document';
import { javaVerdicts } from '../security/support/patterns';

interface Parameter {
  type: string;
  description: string;
  default?: string;
  allowedPattern?: string;
  allowedValues?: string[];
  interpolationType?: string;
  maxChars?: number;
}

const doc = loadWindowsResetDocument();
const parameters = doc.parameters as Record<string, Parameter>;
const step = (doc.mainSteps as Array<{ action: string; name: string; inputs: Record<string, unknown> }>)[0];
const runbooks = join(__dirname, '..', '..', 'runbooks');
const spki = (bits: number): string => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

describe('the windows-reset Command document', () => {
  it('is a 2.2 Command document with one aws:runShellScript step and the four parameters of the contract', () => {
    expect(doc.schemaVersion).toBe('2.2');
    expect(String(doc.description)).toMatch(/## What does this document do\?[\s\S]*## Input parameters[\s\S]*## Output parameters/);
    expect(step.action).toBe('aws:runShellScript');
    expect(Object.keys(step.inputs).sort()).toEqual(['runCommand', 'timeoutSeconds']);
    expect(Object.keys(parameters).sort()).toEqual(['Mode', 'PasswordKey', 'RunId', 'VolumeId']);
    // https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html: interpolationType per parameter.
    for (const name of Object.keys(parameters)) expect([name, parameters[name].interpolationType]).toEqual([name, 'ENV_VAR']);
    expect(parameters.Mode.allowedValues).toEqual(['EnablePasswordGeneration', 'NewPassword', 'Revert']);
    expect(parameters.Mode.default).toBe('EnablePasswordGeneration');
  });

  it('every pattern compiles in Go and Java, and both engines give the expected verdict on real keys and hostile values', () => {
    const cases: Array<[string, string, boolean]> = [
      ['VolumeId', 'vol-0123456789abcdef0', true],
      ['VolumeId', 'vol-01234567', true],
      ['VolumeId', '', false],
      ['VolumeId', 'vol-0123456789abcdef0\n', false],
      ['VolumeId', 'vol-0123456789ABCDEF0', false],
      ['RunId', '', true],
      ['RunId', '3f2a9c4e-1b7d-4e8f-9a0b-5c6d7e8f9a0b', true],
      ['RunId', "x';Remove-Item C:\\", false],
      ['RunId', 'a'.repeat(65), false],
      ['PasswordKey', '', true],
      ['PasswordKey', spki(2048), true],
      ['PasswordKey', spki(3072), true],
      ['PasswordKey', spki(4096), true],
      ['PasswordKey', `${spki(2048)}\n`, false],
      ['PasswordKey', `-----BEGIN PUBLIC KEY-----${spki(2048)}`, false],
      ['PasswordKey', 'A'.repeat(1003), false],
    ];
    const pairs = cases.map(([name, value]) => [parameters[name].allowedPattern as string, value] as const);
    const go = goRegexpVerdicts(pairs);
    const java = javaVerdicts(pairs);
    cases.forEach(([name, value, expected], i) => {
      const within = value.length <= (parameters[name].maxChars ?? Infinity);
      expect([name, value.slice(0, 40), go[i].compileError, java[i].compileError]).toEqual([name, value.slice(0, 40), undefined, undefined]);
      expect([name, value.slice(0, 40), go[i].match && within, java[i].matches && within]).toEqual([name, value.slice(0, 40), expected, expected]);
    });
  });

  it('carries the script, comment and blank lines dropped, with the boot action inlined as base64 of its CRLF text', () => {
    const deployed = windowsResetScriptFromDocument(doc);
    const line = deployed.split('\n').find((l) => l.startsWith("readonly BOOT_SCRIPT_B64='")) as string;
    const boot = Buffer.from(line.slice("readonly BOOT_SCRIPT_B64='".length, -1), 'base64').toString('utf8');
    expect(boot).toBe(readFileSync(join(runbooks, 'windows-boot.ps1'), 'utf8').replace(/\n/g, '\r\n'));
    // bash reads the same program from the deployed text as from the source with the boot action filled in.
    const tree = (text: string): string => execFileSync('bash', ['-c', 'eval "f() {\n:\n$1\n}" && declare -f f', 'tree', text], { encoding: 'utf8' });
    expect(tree(deployed)).toBe(tree(windowsResetScript()));
    expect(deployed.length).toBeLessThan(windowsResetScript().length);
    // Indentation is kept: the embedded Python programs need it (an indented line of one of them is there as written).
    expect(deployed).toContain('\n    raise SystemExit("the Ec2SetPassword plugin is not laid out as Name then State")\n');
  });

  it('the loader refuses to drop lines from a script with a here-document or a multi-line string holding a comment line', () => {
    expect(() => windowsDeployedLines('#!/bin/bash\ncat <<EOF\n# data\nEOF\n')).toThrow(/here-document at line 2/);
    expect(() => windowsDeployedLines("#!/bin/bash\nx='a\n# data, not a comment\n'\necho \"$x\"\n")).toThrow(/would change the script/);
    expect(windowsDeployedLines('#!/bin/bash\n# a comment\n\nif true; then\n  echo "#not a comment"  # trailing\nfi\n')).toEqual(['#!/bin/bash', 'if true; then', '  echo "#not a comment"  # trailing', 'fi']);
  });

  it('holds no {{ }} and stays under the 64 KB document limit; the script is shellcheck clean', () => {
    expect(JSON.stringify(doc)).not.toContain('{{');
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(64 * 1024);
    expect(() => execFileSync('shellcheck', [join(runbooks, 'windows-reset.sh')], { stdio: 'pipe' })).not.toThrow();
    // The script as joined (shebang, key-files.sh's shared head, the rest), read by shellcheck on stdin.
    expect(() => execFileSync('shellcheck', ['-'], { input: windowsResetScript(), stdio: 'pipe' })).not.toThrow();
  });

  it('starts with the shared head of key-files.sh (the very lines inject-key and revoke-key run), and defines none of its functions again', () => {
    const head = sharedHead();
    const script = windowsResetScript();
    expect(script.startsWith(`#!/usr/bin/env bash\n${head}`)).toBe(true);
    expect(assembleScript('inject-key.sh')).toContain(head);
    expect(assembleScript('revoke-key.sh')).toContain(head);
    const defined = (text: string): string[] => [...text.matchAll(/^([a-z_]+)\(\) \{/gm)].map((m) => m[1]);
    expect(defined(head)).toEqual(['wait_for_device', 'json_string', 'json_join']);
    const own = defined(readFileSync(join(runbooks, 'windows-reset.sh'), 'utf8'));
    expect(own.filter((f) => defined(head).includes(f))).toEqual([]);
    // The private mount namespace is entered by the head only, before anything else runs.
    expect(script.match(/exec unshare --mount --propagation private/g)).toHaveLength(1);
  });
});
