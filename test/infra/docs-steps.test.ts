/**
 * docs/architecture.md stays true to the runbooks: every step of every Automation document the stack
 * deploys has its row in a step table there (a table row whose second cell is the step's name in
 * backticks or plain, or a comma-separated list of them).
 */
import { readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..');
const doc = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');

/** Every Automation runbook (schemaVersion 0.3) in runbooks/, with its step names. */
const runbooks = readdirSync(join(ROOT, 'runbooks'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => ({ file: f, content: parse(readFileSync(join(ROOT, 'runbooks', f), 'utf8')) as { schemaVersion?: string; mainSteps?: { name: string }[] } }))
  .filter((r) => r.content.schemaVersion === '0.3');

/** The step names the document's tables give: the second cell of each row, a name or a comma-separated list (backticks dropped). */
const documented = new Set(
  doc
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .flatMap((line) => (line.split('|')[2] ?? '').split(','))
    .map((cell) => cell.trim().replace(/`/g, ''))
    .filter((name) => /^[A-Za-z][A-Za-z0-9]*$/.test(name)),
);

test('there are Automation runbooks to check', () => {
  expect(runbooks.map((r) => r.file)).toEqual(expect.arrayContaining(['reset-access.yaml', 'restore.yaml']));
});

test.each(runbooks.map((r) => [r.file, r.content.mainSteps?.map((s) => s.name) ?? []] as const))(
  '%s: every step has a row in docs/architecture.md',
  (_file, steps) => {
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.filter((s) => !documented.has(s))).toEqual([]);
  },
);
