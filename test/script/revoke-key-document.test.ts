/**
 * The revoke-key Command document as deployed: its shape, its parameters (every one read from the
 * environment only, each pattern judged by Go's regexp as the SSM Agent does), and that its script
 * is the shared part the inject-key document runs too, followed by the revoke part, the same program
 * as bash reads the source.
 */
import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { goRegexpVerdicts } from '../../local/go-regexp';
import {
  assembleScript,
  injectKeyScriptFromDocument,
  loadInjectKeyDocument,
  loadRevokeKeyDocument,
  revokeKeyScriptFromDocument,
  SHARED_SCRIPT,
} from '../../lib/inject-key-document';

interface Parameter {
  type: string;
  description: string;
  default: string;
  allowedPattern?: string;
  allowedValues?: string[];
  interpolationType?: string;
  maxChars?: number;
}

const RUNBOOKS = join(__dirname, '..', '..', 'runbooks');
const doc = loadRevokeKeyDocument();
const parameters = doc.parameters as Record<string, Parameter>;
const step = (doc.mainSteps as Array<{ action: string; name: string; inputs: Record<string, unknown> }>)[0];
const source = assembleScript('revoke-key.sh');
const deployed = revokeKeyScriptFromDocument(doc);

function accepts(name: string, value: string): boolean {
  const [verdict] = goRegexpVerdicts([[parameters[name].allowedPattern as string, value]]);
  if (verdict.compileError) throw new Error(`Go cannot compile the ${name} pattern: ${verdict.compileError}`);
  return verdict.match && value.length <= (parameters[name].maxChars ?? Infinity);
}

/** bash's parse tree of a text read as a function body (comments dropped, strings as they are). */
const tree = (text: string): string => execFileSync('bash', ['-c', 'eval "f() {\n:\n$1\n}" && declare -f f', 'tree', text], { encoding: 'utf8' });

describe('the revoke-key Command document', () => {
  test('a 2.2 Command document with one aws:runShellScript step and the contract\'s six parameters', () => {
    expect(doc.schemaVersion).toBe('2.2');
    expect(String(doc.description)).toMatch(/What does this document do\?/);
    expect(String(doc.description)).toMatch(/"usersWithoutKey"/);
    expect(step.action).toBe('aws:runShellScript');
    expect(Object.keys(step.inputs).sort()).toEqual(['runCommand', 'timeoutSeconds']);
    expect(Object.keys(parameters).sort()).toEqual(['Fingerprints', 'Mode', 'ReplacementKey', 'Root', 'Users', 'VolumeId']);
    for (const [name, p] of Object.entries(parameters)) {
      expect([name, p.type, p.interpolationType]).toEqual([name, 'String', 'ENV_VAR']);
      expect([name, typeof p.allowedPattern === 'string' || Array.isArray(p.allowedValues)]).toEqual([name, true]);
    }
    expect(parameters.Mode).toMatchObject({ default: 'Audit', allowedValues: ['Audit', 'Revoke'] });
  });

  test('the same key and target patterns as inject-key (one definition of a key line, a volume, a user list)', () => {
    const inject = loadInjectKeyDocument().parameters as Record<string, Parameter>;
    expect(parameters.ReplacementKey.allowedPattern).toBe(inject.PublicKey.allowedPattern);
    for (const name of ['VolumeId', 'Root', 'Users']) expect([name, parameters[name].allowedPattern]).toEqual([name, inject[name].allowedPattern]);
  });

  const twenty = Array.from({ length: 20 }, () => `SHA256:${'a/+9'.repeat(10)}abc`).join(',');
  test.each([
    ['one fingerprint', 'Fingerprints', `SHA256:${'A'.repeat(43)}`, true],
    ['twenty fingerprints', 'Fingerprints', twenty, true],
    ['twenty-one fingerprints', 'Fingerprints', `${twenty},SHA256:${'A'.repeat(43)}`, false],
    ['42 characters', 'Fingerprints', `SHA256:${'A'.repeat(42)}`, false],
    ['padding', 'Fingerprints', `SHA256:${'A'.repeat(43)}=`, false],
    ['MD5 form', 'Fingerprints', `MD5:${'ab:'.repeat(15)}ab`, false],
    ['a command after it', 'Fingerprints', `SHA256:${'A'.repeat(43)};reboot`, false],
    ['two users', 'Users', 'ec2-user,root', true],
    ['a blank', 'Users', 'a b', false],
    ['slash', 'Root', '/', true],
    ['a directory', 'Root', '/mnt', false],
  ])('parameter pattern: %s (%s) -> %s', (_label, name, value, expected) => {
    expect(accepts(name as string, value as string)).toBe(expected);
  });

  test('the script: the shared part (the very text inject-key runs first), then the revoke part; the deployed text is the same program', () => {
    const shared = readFileSync(join(RUNBOOKS, SHARED_SCRIPT), 'utf8');
    expect(source.startsWith(shared)).toBe(true);
    expect(assembleScript('inject-key.sh').startsWith(shared)).toBe(true);
    expect(source.slice(shared.length)).toBe(readFileSync(join(RUNBOOKS, 'revoke-key.sh'), 'utf8'));
    // The shared part is written once: no function of it is defined again in either action's part.
    const defined = (text: string): string[] => [...text.matchAll(/^([a-z_]+)\(\) \{/gm)].map((m) => m[1]);
    const sharedFunctions = defined(shared);
    expect(sharedFunctions.length).toBeGreaterThan(40);
    for (const action of ['revoke-key.sh', 'inject-key.sh']) {
      const own = defined(readFileSync(join(RUNBOOKS, action), 'utf8'));
      expect([action, own.filter((f) => sharedFunctions.includes(f))]).toEqual([action, []]);
    }
    expect(deployed).not.toBe(source);
    expect(tree(deployed)).toBe(tree(source));
    expect(tree(deployed.replace('cert-authority line with a revoked key', 'cert-authority line with a revoked keY'))).not.toBe(tree(source));
    expect(injectKeyScriptFromDocument(loadInjectKeyDocument())).not.toBe(deployed);
  });

  test('shellcheck clean, strict mode, no {{ }}, and only its six SSM_ parameters read from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'revoke-doc-'));
    try {
      writeFileSync(join(dir, 'revoke-key.sh'), source);
      expect(() => execFileSync('shellcheck', ['-x', join(dir, 'revoke-key.sh')], { stdio: 'pipe' })).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(source).toMatch(/^#!\/usr\/bin\/env bash\n/);
    expect(source).toContain('set -Eeuo pipefail');
    expect(deployed).not.toContain('{{');
    expect([...new Set(source.match(/SSM_[A-Za-z]+/g))].sort()).toEqual(['SSM_Fingerprints', 'SSM_Mode', 'SSM_ReplacementKey', 'SSM_Root', 'SSM_Users', 'SSM_VolumeId']);
    expect(source).not.toMatch(/\beval\b/);
  });
});
