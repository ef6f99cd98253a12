/**
 * The documents' own parameter constraints, applied the way Systems Manager could apply them.
 *
 * Systems Manager checks `allowedPattern` on the service side. We do not know whether it uses
 * a whole-input match or a search, so a value counts as *accepted* by a pattern when any of
 * JavaScript `RegExp.test`, Java `Matcher.matches()` or Java `Matcher.find()` accepts it: a
 * hostile value must be refused under all three. (Java's `$` also matches before a final line
 * terminator, which JavaScript's does not: a `^…$` pattern can let "value\n" through.)
 */
import { execFileSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';

export const REPO = join(__dirname, '..', '..', '..');

export interface DocParameter {
  type?: string;
  default?: unknown;
  allowedPattern?: string;
  allowedValues?: unknown[];
  description?: string;
  [k: string]: unknown;
}

export function loadDocParameters(file: string): Record<string, DocParameter> {
  const doc = parse(readFileSync(join(REPO, 'runbooks', file), 'utf8')) as { parameters?: Record<string, DocParameter> };
  if (!doc || !doc.parameters) throw new Error(`${file} has no parameters`);
  return doc.parameters;
}

export interface Verdict {
  js: boolean;
  javaMatches: boolean;
  javaFind: boolean;
}

/** Java's answer for one (pattern, value); `compileError` when Pattern.compile refuses the pattern. */
export interface JavaVerdict {
  matches: boolean;
  find: boolean;
  compileError?: string;
}

/** Java's verdicts for many (pattern, value) pairs at once (one JVM start). */
export function javaVerdicts(pairs: ReadonlyArray<readonly [string, string]>): JavaVerdict[] {
  if (pairs.length === 0) return [];
  const input = pairs
    .map(([p, v]) => `${Buffer.from(p, 'utf8').toString('base64')} ${Buffer.from(v, 'utf8').toString('base64')}`)
    .join('\n');
  const out = execFileSync('java', [join(__dirname, 'PatternCheck.java')], {
    input: input + '\n',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  const lines = out.split('\n').filter((l) => l.length > 0);
  if (lines.length !== pairs.length) throw new Error(`PatternCheck answered ${lines.length} of ${pairs.length}`);
  return lines.map((l) =>
    l.startsWith('E ')
      ? { matches: false, find: false, compileError: Buffer.from(l.slice(2), 'base64').toString('utf8') }
      : { matches: l[0] === '1', find: l[1] === '1' },
  );
}

/** A value longer than the parameter's maxChars is refused whatever its pattern says. */
export function withinMaxChars(p: DocParameter, value: string): boolean {
  return typeof p.maxChars !== 'number' || value.length <= p.maxChars;
}

/** Parameters of type Boolean take JSON booleans; a string is refused by the type itself. */
export function acceptedByType(p: DocParameter, value: string): boolean | undefined {
  if (p.type === 'Boolean') return false; // every hostile value in the table is a string
  if (p.allowedValues) return p.allowedValues.map(String).includes(value);
  return undefined; // decided by allowedPattern
}
