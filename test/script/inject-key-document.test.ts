/**
 * The inject-key Command document as deployed: its shape, its parameters' patterns (the first
 * gate for what reaches the helper), and that it carries the script byte for byte.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { generateKeyPair } from '@common/keys';
import { injectKeyScriptFromDocument, InjectKeyDocumentError, loadInjectKeyDocument } from '../../lib/inject-key-document';

interface Parameter {
  type: string;
  description: string;
  default: string;
  allowedPattern: string;
}

const doc = loadInjectKeyDocument();
const parameters = doc.parameters as Record<string, Parameter>;
const step = (doc.mainSteps as Array<{ action: string; name: string; inputs: Record<string, unknown> }>)[0];
const scriptFile = join(__dirname, '..', '..', 'runbooks', 'inject-key.sh');

function accepts(name: string, value: string): boolean {
  return new RegExp(parameters[name].allowedPattern).test(value);
}

describe('the inject-key Command document', () => {
  it('is a 2.2 Command document with one aws:runShellScript step and ENV_VAR interpolation', () => {
    expect(doc.schemaVersion).toBe('2.2');
    expect(String(doc.description)).toMatch(/What does this document do\?/);
    expect(doc.mainSteps).toHaveLength(1);
    expect(step.action).toBe('aws:runShellScript');
    expect(step.inputs.interpolationType).toBe('ENV_VAR');
    expect(Object.keys(parameters).sort()).toEqual(['PublicKey', 'Root', 'Users', 'VolumeId']);
  });

  it.each(['VolumeId', 'PublicKey', 'Users', 'Root'])('parameter %s: a String with a description, a default and an allowedPattern that accepts it', (name) => {
    const p = parameters[name];
    expect(p.type).toBe('String');
    expect(p.description.length).toBeGreaterThan(20);
    expect(typeof p.default).toBe('string');
    expect(p.allowedPattern).toMatch(/^\^.*\$$/);
    expect(accepts(name, p.default)).toBe(true);
  });

  it('carries the script byte for byte (the tests run the deployed text)', () => {
    expect(injectKeyScriptFromDocument(doc)).toBe(readFileSync(scriptFile, 'utf8'));
    expect(step.inputs.runCommand).toEqual(readFileSync(scriptFile, 'utf8').replace(/\n$/, '').split('\n'));
  });

  it('holds no {{ }} (Systems Manager would interpolate it) and stays under the 64 KB document limit', () => {
    const script = injectKeyScriptFromDocument(doc);
    expect(script).not.toContain('{{');
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(64 * 1024);
  });

  it('the script is shellcheck clean and starts with strict mode', () => {
    const script = readFileSync(scriptFile, 'utf8');
    expect(script).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(script).toContain('set -Eeuo pipefail');
    expect(() => execFileSync('shellcheck', ['-x', scriptFile], { stdio: 'pipe' })).not.toThrow();
  });

  it('the script reads only the four SSM_ parameters from the environment, never pasted into its text', () => {
    const script = readFileSync(scriptFile, 'utf8');
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
        for (const [type, bits] of [['ecdsa', '256'], ['ecdsa', '384'], ['ecdsa', '521'], ['rsa', '3072'], ['ed25519', '']]) {
          const file = join(dir, `${type}${bits}`);
          execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', bits] : []), '-N', '', '-C', 'me@host', '-f', file]);
          expect(accepts('PublicKey', readFileSync(`${file}.pub`, 'utf8').trim())).toBe(true);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('the loader refuses a document without the placeholder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'doc-'));
    try {
      writeFileSync(join(dir, 'inject-key.yaml'), "schemaVersion: '2.2'\nmainSteps:\n  - action: aws:runShellScript\n    name: x\n    inputs:\n      runCommand: ['echo hi']\n");
      writeFileSync(join(dir, 'inject-key.sh'), '#!/bin/bash\n');
      expect(() => loadInjectKeyDocument(dir)).toThrow(InjectKeyDocumentError);
      expect(() => loadInjectKeyDocument(dir)).toThrow(/runCommand must be exactly/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
