/**
 * Every allowedPattern of every document the stack deploys, compiled and run by the two engines
 * that meet it on AWS:
 * - Go's `regexp`: the SSM Agent compiles each Command document parameter's pattern with
 *   `regexp.Compile` and tests the value with `MatchString` before any step runs, and fails the
 *   whole invocation when a pattern does not compile (aws/amazon-ssm-agent,
 *   agent/framework/docparser/paramvalidator/allowedregexparamvalidator/allowedregexparamvalidator.go,
 *   called from agent/framework/docparser/parameterstore/parameterstore.go ValidateSSMParameters);
 * - `java.util.regex`: the service side. CreateDocument accepted `{16,8000}`, which Go refuses
 *   (issue 10, defect 2), so the service's engine is not Go's; Java is the reference we have.
 * Each pattern must compile under both, and both must give the same verdict on a corpus of real
 * keys from ssh-keygen (every type and size the product accepts, with and without a comment) and of
 * hostile or malformed values. One difference is Java's by definition and is checked as such:
 * Java's `$` also matches before a final line terminator
 * (https://docs.oracle.com/en/java/javase/17/docs/api/java.base/java/util/regex/Pattern.html,
 * "Line terminators"), so `Matcher.find()` accepts "good\n" where Go's `$` (end of text,
 * https://pkg.go.dev/regexp/syntax) does not; `Matcher.matches()` must agree with Go everywhere.
 */
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { goRegexpVerdicts, type GoVerdict } from '../../local/go-regexp';
import { javaVerdicts, type JavaVerdict } from '../security/support/patterns';
import { loadRevokeKeyDocument } from '../../lib/inject-key-document';
import { synthesize } from './synth';

interface PatternSite {
  readonly where: string;
  readonly parameter: string;
  readonly pattern: string;
  readonly default?: unknown;
}

/** Every allowedPattern in the Content of every AWS::SSM::Document of the synthesized template. */
function patternSites(): PatternSite[] {
  const { json } = synthesize({ skipBundling: true });
  const sites: PatternSite[] = [];
  for (const [logicalId, resource] of Object.entries(json.Resources as Record<string, any>)) {
    if (resource.Type !== 'AWS::SSM::Document') continue;
    const content = resource.Properties.Content as Record<string, any>;
    const name = `${String(resource.Properties.Name ?? logicalId)} (${resource.Properties.DocumentType})`;
    for (const [parameter, spec] of Object.entries((content.parameters ?? {}) as Record<string, any>)) {
      if (typeof spec.allowedPattern === 'string') sites.push({ where: name, parameter, pattern: spec.allowedPattern, default: spec.default });
    }
    // allowedPattern anywhere else (a nested document, a step input) would be missed by the loop above
    const elsewhere = JSON.stringify(content.mainSteps ?? []).includes('"allowedPattern"');
    if (elsewhere) sites.push({ where: `${name} mainSteps`, parameter: '?', pattern: '(allowedPattern inside mainSteps: list it here)' });
  }
  // The revoke-key Command document, as its loader gives it to the stack (checked here whether or not
  // the stack deploys it yet).
  const revoke = loadRevokeKeyDocument();
  for (const [parameter, spec] of Object.entries((revoke.parameters ?? {}) as Record<string, any>)) {
    if (typeof spec.allowedPattern === 'string') sites.push({ where: 'runbooks/revoke-key.yaml (Command)', parameter, pattern: spec.allowedPattern, default: spec.default });
  }
  return sites;
}

/** Real public key lines from ssh-keygen: every type and size, with and without a comment. */
function realKeys(): Array<{ label: string; line: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pattern-keys-'));
  try {
    const out: Array<{ label: string; line: string }> = [];
    const kinds: Array<[string, string]> = [
      ['ed25519', ''],
      ['ecdsa', '256'],
      ['ecdsa', '384'],
      ['ecdsa', '521'],
      ['rsa', '2048'],
      ['rsa', '3072'],
      ['rsa', '4096'],
    ];
    for (const [type, bits] of kinds) {
      const file = join(dir, `${type}${bits}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', bits] : []), '-N', '', '-C', 'admin@example-host.internal', '-f', file]);
      const line = readFileSync(`${file}.pub`, 'utf8').trim();
      out.push({ label: `${type}${bits} with comment`, line });
      out.push({ label: `${type}${bits} without comment`, line: line.split(' ').slice(0, 2).join(' ') });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An ssh-rsa line of 16384 bits (the largest the Lambda accepts), built from its wire format. */
function rsa16384Line(): string {
  const str = (b: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  const modulus = randomBytes(2048);
  modulus[0] |= 0x80;
  const blob = Buffer.concat([str(Buffer.from('ssh-rsa')), str(Buffer.from([0x01, 0x00, 0x01])), str(Buffer.concat([Buffer.from([0]), modulus]))]);
  return `ssh-rsa ${blob.toString('base64')} big@host`;
}

const sites = patternSites();
const keys = realKeys();
const ed = keys[0].line;
const edBare = keys[1].line;
const rsa4096 = keys.find((k) => k.label === 'rsa4096 with comment')!.line;
/** Real SHA256 fingerprints, as ssh-keygen -l prints them, of the real keys. */
const fingerprints = keys.filter((k) => k.label.endsWith('with comment')).map((k) => {
  const dir = mkdtempSync(join(tmpdir(), 'pattern-fp-'));
  try {
    execFileSync('bash', ['-c', 'printf "%s\\n" "$1" > "$2"', 'x', k.line, join(dir, 'k.pub')]);
    return /SHA256:[A-Za-z0-9+/]{43}/.exec(execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'k.pub')], { encoding: 'utf8' }))![0];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
const twentyFingerprints = Array.from({ length: 20 }, (_, i) => fingerprints[i % fingerprints.length]).join(',');

/** Values every pattern meets: good ones of every parameter kind, and hostile or malformed ones. */
const CORPUS: Array<{ label: string; value: string }> = [
  ...keys.map((k) => ({ label: k.label, value: k.line })),
  { label: 'rsa16384 (built)', value: rsa16384Line() },
  { label: 'empty', value: '' },
  { label: 'volume id', value: 'vol-0123456789abcdef0' },
  { label: 'short volume id', value: 'vol-01234567' },
  { label: 'instance id', value: 'i-0123456789abcdef0' },
  { label: 'subnet id', value: 'subnet-0123456789abcdef0' },
  { label: 'role arn', value: 'arn:aws:iam::123456789012:role/ResetAccess-Automation' },
  { label: 'instance type', value: 't3.medium' },
  { label: 'user list', value: 'ec2-user,ubuntu,admin' },
  { label: 'slash', value: '/' },
  { label: 'True', value: 'True' },
  { label: 'key + newline', value: `${ed}\n` },
  { label: 'key + CR', value: `${ed}\r` },
  { label: 'key + CRLF', value: `${ed}\r\n` },
  { label: 'key + U+2028', value: `${ed}\u2028` },
  { label: 'key + U+0085', value: `${ed}\u0085` },
  { label: 'volume id + newline', value: 'vol-0123456789abcdef0\n' },
  { label: 'instance id + newline', value: 'i-0123456789abcdef0\n' },
  { label: 'two keys on two lines', value: `${ed}\n${ed}` },
  { label: 'newline then key', value: `\n${ed}` },
  { label: 'key, command substitution', value: `${ed} $(reboot)` },
  { label: 'key, backticks', value: `${ed} \`id\`` },
  { label: 'key, double quote', value: `${ed} "x"` },
  { label: "key, single quote", value: `${ed} 'x'` },
  { label: 'key, semicolon', value: `${ed}; reboot` },
  { label: 'key, vertical tab', value: `${ed}\u000bx` },
  { label: 'key, tab', value: `${ed}\tx` },
  { label: 'key, NUL', value: `${ed}\u0000` },
  { label: 'key, emoji comment', value: `${ed} \u{1F600}` },
  { label: 'key, 256-char comment', value: `${edBare} ${'c'.repeat(256)}` },
  { label: 'key, 257-char comment', value: `${edBare} ${'c'.repeat(257)}` },
  { label: 'options before key', value: `command="/bin/sh" ${ed}` },
  { label: 'ssh-dss', value: 'ssh-dss AAAAB3NzaC1kc3MAAACBAP' },
  { label: 'private key header', value: '-----BEGIN OPENSSH PRIVATE KEY-----' },
  { label: 'template expression', value: '{{ssm:/x}}' },
  { label: 'volume id, uppercase', value: 'vol-0123456789ABCDEF0' },
  { label: 'volume id; reboot', value: 'vol-0123; reboot' },
  { label: 'user list with space', value: 'ec2-user root' },
  { label: 'user list, empty item', value: 'a,,b' },
  { label: 'path traversal', value: '../etc' },
  { label: 'dollar dollar', value: 'vol-$$0123' },
  { label: 'long base64 (9000)', value: `ssh-ed25519 ${'A'.repeat(9000)}` },
  { label: 'one fingerprint', value: fingerprints[0] },
  { label: 'two fingerprints', value: `${fingerprints[0]},${fingerprints[1]}` },
  { label: 'twenty fingerprints', value: twentyFingerprints },
  { label: 'twenty-one fingerprints', value: `${twentyFingerprints},${fingerprints[0]}` },
  { label: 'fingerprint with padding', value: `${fingerprints[0]}=` },
  { label: 'fingerprint, lowercase sha256', value: fingerprints[0].replace('SHA256', 'sha256') },
  { label: 'fingerprint, MD5 form', value: 'MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48' },
  { label: 'fingerprints, space after comma', value: `${fingerprints[0]}, ${fingerprints[1]}` },
  { label: 'fingerprint + newline', value: `${fingerprints[0]}\n` },
  { label: 'fingerprint; reboot', value: `${fingerprints[0]};reboot` },
];

/** Java's own end-of-input rule: `$` also matches before one of these at the very end. */
const JAVA_LINE_TERMINATOR_AT_END = /(\r\n|[\n\r\u0085\u2028\u2029])$/;

describe('every allowedPattern of every synthesized document', () => {
  let go: GoVerdict[] = [];
  let java: JavaVerdict[] = [];
  const pairs: Array<readonly [string, string]> = [];
  for (const s of sites) for (const c of CORPUS) pairs.push([s.pattern, c.value]);
  const at = (si: number, ci: number): number => si * CORPUS.length + ci;

  beforeAll(() => {
    go = goRegexpVerdicts(pairs);
    java = javaVerdicts(pairs);
  });

  test('the documents have patterns to check (Command and Automation)', () => {
    const where = new Set(sites.map((s) => s.where));
    expect([...where].some((w) => w.endsWith('(Command)'))).toBe(true);
    expect([...where].some((w) => w.endsWith('(Automation)'))).toBe(true);
    expect(sites.filter((s) => s.parameter === '?')).toEqual([]);
  });

  test.each(sites.map((s, i) => [`${s.where} ${s.parameter}`, i] as const))('%s compiles under Go regexp and java.util.regex', (_name, i) => {
    const s = sites[i];
    const v = at(i, 0);
    expect({ pattern: s.pattern, go: go[v].compileError ?? 'compiles' }).toEqual({ pattern: s.pattern, go: 'compiles' });
    expect({ pattern: s.pattern, java: java[v].compileError ?? 'compiles' }).toEqual({ pattern: s.pattern, java: 'compiles' });
  });

  test.each(sites.map((s, i) => [`${s.where} ${s.parameter}`, i] as const))('%s: Go and Java give the same verdict on every sample', (_name, i) => {
    const s = sites[i];
    const disagreements: string[] = [];
    CORPUS.forEach((c, ci) => {
      const g = go[at(i, ci)];
      const j = java[at(i, ci)];
      if (g.compileError || j.compileError) return; // reported by the compile test
      if (g.match !== j.matches) disagreements.push(`${c.label}: Go ${g.match}, Java matches() ${j.matches}`);
      if (g.match !== j.find) {
        const javaDollar = JAVA_LINE_TERMINATOR_AT_END.test(c.value) && !g.match && j.find;
        if (!javaDollar) disagreements.push(`${c.label}: Go ${g.match}, Java find() ${j.find}`);
      }
    });
    expect({ pattern: s.pattern, disagreements }).toEqual({ pattern: s.pattern, disagreements: [] });
  });

  test.each(sites.map((s, i) => [`${s.where} ${s.parameter}`, i] as const))('%s: Go accepts its default', (_name, i) => {
    const s = sites[i];
    if (typeof s.default !== 'string') return; // a token (GetAtt) or a non-string default: not a pattern's business
    expect(goRegexpVerdicts([[s.pattern, s.default]])[0]).toEqual({ match: true });
  });

  const keySites = sites.map((s, i) => [`${s.where} ${s.parameter}`, i] as const).filter(([, i]) => ['PublicKey', 'ReplacementKey'].includes(sites[i].parameter));
  test.each(keySites)('%s: Go accepts every real key line and refuses the hostile ones', (_name, i) => {
    const verdict = (label: string): boolean => go[at(i, CORPUS.findIndex((c) => c.label === label))].match;
    const accepted = [...keys.map((k) => k.label), 'rsa16384 (built)', 'key, 256-char comment'].filter((l) => !verdict(l));
    const refused = [
      'key + newline',
      'two keys on two lines',
      'key, command substitution',
      'key, backticks',
      'key, double quote',
      "key, single quote",
      'key, semicolon',
      'key, NUL',
      'key, 257-char comment',
      'options before key',
      'ssh-dss',
      'private key header',
      'template expression',
    ].filter((l) => verdict(l));
    expect({ notAccepted: accepted, notRefused: refused }).toEqual({ notAccepted: [], notRefused: [] });
  });

  test('the revoke-key document is checked: its key and fingerprint parameters are among the sites', () => {
    expect(keySites.map(([name]) => name)).toContain('runbooks/revoke-key.yaml (Command) ReplacementKey');
    expect(sites.some((s) => s.parameter === 'Fingerprints')).toBe(true);
  });

  const fingerprintSites = sites.map((s, i) => [`${s.where} ${s.parameter}`, i] as const).filter(([, i]) => sites[i].parameter === 'Fingerprints');
  test.each(fingerprintSites)('%s: Go accepts 1 to 20 real fingerprints from ssh-keygen and refuses the rest', (_name, i) => {
    const verdict = (label: string): boolean => go[at(i, CORPUS.findIndex((c) => c.label === label))].match;
    expect(fingerprints.length).toBeGreaterThanOrEqual(7);
    const accepted = ['empty', 'one fingerprint', 'two fingerprints', 'twenty fingerprints'].filter((l) => !verdict(l));
    const refused = [
      'twenty-one fingerprints', 'fingerprint with padding', 'fingerprint, lowercase sha256', 'fingerprint, MD5 form',
      'fingerprints, space after comma', 'fingerprint + newline', 'fingerprint; reboot', 'volume id', 'key + newline',
    ].filter((l) => verdict(l));
    expect({ notAccepted: accepted, notRefused: refused }).toEqual({ notAccepted: [], notRefused: [] });
  });

  test('an RSA 4096 key line is longer than the 512 characters Automation allows, and the Command document takes it', () => {
    expect(rsa4096.length).toBeGreaterThan(512);
    const command = sites.findIndex((s) => s.where.endsWith('(Command)') && s.parameter === 'PublicKey');
    expect(command).toBeGreaterThanOrEqual(0);
    expect(go[at(command, CORPUS.findIndex((c) => c.label === 'rsa4096 with comment'))].match).toBe(true);
  });
});

describe('the two engines really differ where defect 2 says (the check can fail)', () => {
  test('a repeat count over 1000 compiles in Java and not in Go', () => {
    const old = '^[A-Za-z0-9+/]{16,8000}={0,2}$';
    expect(javaVerdicts([[old, 'AAAAAAAAAAAAAAAA']])[0]).toEqual({ matches: true, find: true });
    expect(goRegexpVerdicts([[old, 'AAAAAAAAAAAAAAAA']])[0].compileError).toMatch(/invalid repeat count/);
  });

  test('Go multiplies nested repeat counts: (x{4}){4,750} is refused although each count is under 1000', () => {
    expect(goRegexpVerdicts([['^(?:[A-Z]{4}){4,750}$', 'AAAA']])[0].compileError).toMatch(/invalid repeat count/);
    expect(javaVerdicts([['^(?:[A-Z]{4}){4,750}$', 'AAAAAAAAAAAAAAAA']])[0].compileError).toBeUndefined();
  });
});
