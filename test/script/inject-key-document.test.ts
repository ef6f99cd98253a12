/**
 * The inject-key Command document as deployed: its shape, its parameters' patterns (the first
 * gate for what reaches the helper), and that it carries the script byte for byte.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { goRegexpVerdicts } from '../../local/go-regexp';
import { assembleScript, injectKeyScriptFromDocument, InjectKeyDocumentError, loadInjectKeyDocument } from '../../lib/inject-key-document';

interface Parameter {
  type: string;
  description: string;
  default: string;
  allowedPattern: string;
  interpolationType?: string;
  maxChars?: number;
}

const doc = loadInjectKeyDocument();
const parameters = doc.parameters as Record<string, Parameter>;
const step = (doc.mainSteps as Array<{ action: string; name: string; inputs: Record<string, unknown> }>)[0];
// The script's source: runbooks/key-files.sh (shared with revoke-key) followed by runbooks/inject-key.sh.
const sourceText = assembleScript('inject-key.sh');

/** The SSM Agent's verdict: Go's regexp.Compile + MatchString (see local/go-regexp.ts). */
function accepts(name: string, value: string): boolean {
  const [verdict] = goRegexpVerdicts([[parameters[name].allowedPattern, value]]);
  if (verdict.compileError) throw new Error(`Go cannot compile the ${name} pattern: ${verdict.compileError}`);
  return verdict.match && value.length <= (parameters[name].maxChars ?? Infinity);
}

describe('the inject-key Command document', () => {
  it('is a 2.2 Command document with one aws:runShellScript step', () => {
    expect(doc.schemaVersion).toBe('2.2');
    expect(String(doc.description)).toMatch(/What does this document do\?/);
    expect(doc.mainSteps).toHaveLength(1);
    expect(step.action).toBe('aws:runShellScript');
    expect(Object.keys(parameters).sort()).toEqual(['PublicKey', 'Root', 'Users', 'VolumeId']);
  });

  it('asks for ENV_VAR on each parameter, where AWS documents it, and not in the step inputs (issue 10, defect 1)', () => {
    // https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html: parameters.<Name>.interpolationType;
    // the runShellScript plugin reads runCommand, workingDirectory and timeoutSeconds from its inputs and
    // drops any other key (aws/amazon-ssm-agent, agent/plugins/runscript/runscript.go).
    expect(Object.keys(step.inputs).sort()).toEqual(['runCommand', 'timeoutSeconds']);
    for (const name of Object.keys(parameters)) expect([name, parameters[name].interpolationType]).toEqual([name, 'ENV_VAR']);
  });

  it.each(['VolumeId', 'PublicKey', 'Users', 'Root'])('parameter %s: a String with a description, a default, a maxChars and an allowedPattern that accepts it', (name) => {
    const p = parameters[name];
    expect(p.type).toBe('String');
    expect(p.description.length).toBeGreaterThan(20);
    expect(typeof p.default).toBe('string');
    expect(p.allowedPattern).toMatch(/^\^.*\$$/);
    expect(typeof p.maxChars).toBe('number');
    expect(accepts(name, p.default)).toBe(true);
  });

  it('carries the script line for line, less its full-line comments, blank lines and indentation (the tests run the deployed text)', () => {
    const source = sourceText.replace(/\n$/, '').split('\n');
    const code = source.filter((line, i) => i === 0 || !/^[ \t]*(#.*)?$/.test(line)).map((line) => line.trimStart().replace(/[ \t]+#[ \t][^'"]*$/, ''));
    expect(step.inputs.runCommand).toEqual(code);
    expect(code[0]).toBe('#!/usr/bin/env bash');
    expect(injectKeyScriptFromDocument(doc)).toBe(`${code.join('\n')}\n`);
    expect(code.length).toBeLessThan(source.length);
  });

  it('the deployed text is the same program as the source, as bash itself reads both', () => {
    // bash prints a function from its parse tree: comments dropped, every string as it is.
    const tree = (text: string): string =>
      execFileSync('bash', ['-c', 'eval "f() {\n:\n$1\n}" && declare -f f', 'tree', text], { encoding: 'utf8' });
    const source = sourceText;
    const deployed = injectKeyScriptFromDocument(doc);
    expect(deployed).not.toBe(source);
    expect(tree(deployed)).toBe(tree(source));
    // The measure can fail: one changed character shows.
    expect(tree(deployed.replace('refusing to guess', 'refusing to guesS'))).not.toBe(tree(source));
  });

  it.each([
    ['a here-document', '#!/bin/bash\ncat <<EOF\n# data\nEOF\n', /here-document at line 2/],
    ['a multi-line string holding a # line', '#!/bin/bash\nx="a\n# data, not a comment\n"\necho "$x"\n', /would change the script/],
    ['a multi-line string holding a blank line', "#!/bin/bash\nx='a\n\nb'\n", /would change the script/],
    ['a multi-line string whose line is indented', "#!/bin/bash\nx='a\n  b'\n", /would change the script/],
    ['a # that is data after an escaped blank', "#!/bin/bash\necho a\\ # b\necho c\n", /would change the script/],
  ])('the loader refuses to drop lines from a script with %s', (_name, script, message) => {
    const dir = mkdtempSync(join(tmpdir(), 'doc-'));
    try {
      writeFileSync(join(dir, 'inject-key.yaml'), "schemaVersion: '2.2'\nparameters: {}\nmainSteps:\n  - action: aws:runShellScript\n    name: x\n    inputs:\n      runCommand: ['%%InjectKeyScript%%']\n");
      writeFileSync(join(dir, 'key-files.sh'), '#!/bin/bash\n');
      writeFileSync(join(dir, 'inject-key.sh'), script.replace(/^#!\/bin\/bash\n/, ''));
      expect(() => loadInjectKeyDocument(dir)).toThrow(message);
      writeFileSync(join(dir, 'inject-key.sh'), '# a comment\n\necho "#not a comment"  # trailing\n');
      // a # inside quotes is data; a trailing comment goes
      expect(injectKeyScriptFromDocument(loadInjectKeyDocument(dir))).toBe('#!/bin/bash\necho "#not a comment"\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds no {{ }} (Systems Manager would interpolate it) and stays under the 64 KB document limit', () => {
    const script = injectKeyScriptFromDocument(doc);
    expect(script).not.toContain('{{');
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(64 * 1024);
  });

  it('the script is shellcheck clean and starts with strict mode', () => {
    const script = sourceText;
    expect(script).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(script).toContain('set -Eeuo pipefail');
    const dir = mkdtempSync(join(tmpdir(), 'doc-'));
    try {
      writeFileSync(join(dir, 'inject-key.sh'), script);
      expect(() => execFileSync('shellcheck', ['-x', join(dir, 'inject-key.sh')], { stdio: 'pipe' })).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the script reads only the four SSM_ parameters from the environment, never pasted into its text', () => {
    const script = sourceText;
    const ssmVariables = [...new Set(script.match(/SSM_[A-Za-z]+/g))].sort();
    expect(ssmVariables).toEqual(['SSM_PublicKey', 'SSM_Root', 'SSM_Users', 'SSM_VolumeId']);
    expect(script).not.toMatch(/\beval\b/);
  });

  describe('allowedPattern', () => {
    const ed = generateKeyPair('ed25519').publicKey;
    const rsa = generateKeyPair('rsa').publicKey;
    it.each([
      ['VolumeId', 'vol-0123456789abcdef0', true],
      ['VolumeId', 'vol-01234567', true],
      ['VolumeId', '', true],
      ['VolumeId', 'vol-0123456789ABCDEF0', false],
      ['VolumeId', 'vol-0123; reboot', false],
      ['VolumeId', '/dev/nvme1n1', false],
      ['Users', 'ec2-user', true],
      ['Users', 'ec2-user,root,ubuntu', true],
      ['Users', '', true],
      ['Users', 'ec2-user root', false],
      ['Users', 'a,,b', false],
      ['Users', '$(id)', false],
      ['Users', '../etc', false],
      ['Root', '/', true],
      ['Root', '', true],
      ['Root', '/mnt', false],
      ['PublicKey', ed, true],
      ['PublicKey', rsa, true],
      ['PublicKey', ed.replace(/ \S+$/, ''), true],
      ['PublicKey', `${ed} with spaces and user@host`, true],
      ['PublicKey', `command="/bin/sh" ${ed}`, false],
      ['PublicKey', `${ed}\n${ed}`, false],
      ['PublicKey', `${ed} $(reboot)`, false],
      ['PublicKey', `${ed} \`id\``, false],
      ['PublicKey', 'ssh-dss AAAAB3NzaC1kc3MAAACBAP', false],
      ['PublicKey', '-----BEGIN OPENSSH PRIVATE KEY-----', false],
    ])('%s case %# -> %s', (name, value, expected) => {
      expect(accepts(name, value)).toBe(expected);
    });

    it('accepts every key type the Lambda parser accepts, as ssh-keygen writes them', () => {
      const dir = mkdtempSync(join(tmpdir(), 'doc-keys-'));
      try {
        for (const [type, bits] of [['ecdsa', '256'], ['ecdsa', '384'], ['ecdsa', '521'], ['rsa', '3072'], ['rsa', '4096'], ['ed25519', '']]) {
          const file = join(dir, `${type}${bits}`);
          execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', bits] : []), '-N', '', '-C', 'me@host', '-f', file]);
          expect(accepts('PublicKey', readFileSync(`${file}.pub`, 'utf8').trim())).toBe(true);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('the loader refuses interpolationType in the step inputs, and a parameter without ENV_VAR', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doc-'));
    const yaml = (paramExtra: string, inputsExtra: string): string =>
      "schemaVersion: '2.2'\nparameters:\n  VolumeId:\n    type: String\n" + paramExtra +
      'mainSteps:\n  - action: aws:runShellScript\n    name: x\n    inputs:\n' + inputsExtra + "      runCommand: ['%%InjectKeyScript%%']\n";
    try {
      writeFileSync(join(dir, 'key-files.sh'), '#!/bin/bash\n');
      writeFileSync(join(dir, 'inject-key.sh'), '\n');
      writeFileSync(join(dir, 'inject-key.yaml'), yaml('', '      interpolationType: ENV_VAR\n'));
      expect(() => loadInjectKeyDocument(dir)).toThrow(/interpolationType belongs to each parameter/);
      writeFileSync(join(dir, 'inject-key.yaml'), yaml('', ''));
      expect(() => loadInjectKeyDocument(dir)).toThrow(/VolumeId must have interpolationType: ENV_VAR/);
      writeFileSync(join(dir, 'inject-key.yaml'), yaml('    interpolationType: ENV_VAR\n', ''));
      expect(() => loadInjectKeyDocument(dir)).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the loader refuses a document without the placeholder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doc-'));
    try {
      writeFileSync(join(dir, 'inject-key.yaml'), "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: x\n    inputs:\n      runCommand: ['echo hi']\n");
      writeFileSync(join(dir, 'key-files.sh'), '#!/bin/bash\n');
      writeFileSync(join(dir, 'inject-key.sh'), '\n');
      expect(() => loadInjectKeyDocument(dir)).toThrow(InjectKeyDocumentError);
      expect(() => loadInjectKeyDocument(dir)).toThrow(/runCommand must be exactly/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
