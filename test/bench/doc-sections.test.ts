/**
 * docs/benchmarks.md has several writers (bench/run.ts, bench/fleet.ts, the self-test's hand-written
 * section): rewriting the page with `npm run bench -- --write` keeps every marked section, once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fleetSectionOf, sectionOf, withKeptSections, KEPT_SECTIONS, FLEET_BEGIN, FLEET_END } from '../../bench/doc-sections';

const committed = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'benchmarks.md'), 'utf8');

it('the committed page carries each kept section once', () => {
  expect(committed.split(FLEET_BEGIN).length - 1).toBe(1);
  expect(committed.split(FLEET_END).length - 1).toBe(1);
  expect(fleetSectionOf(committed)).toMatch(/## Fleets/);
  for (const section of KEPT_SECTIONS) {
    expect(committed.split(section.begin).length - 1).toBe(1);
    expect(sectionOf(committed, section)).not.toBe('');
  }
});

it('a rewritten page keeps every old kept section, once, and a page without them stays as it is', () => {
  // Prepare: a page as bench/run.ts renders it (no kept section)
  const page = '# Benchmarks\n\nnew figures\n';
  // Act
  const once = withKeptSections(page, committed);
  const twice = withKeptSections(page, once);
  const again = withKeptSections(once, once);
  // Assess
  expect(once.startsWith(page)).toBe(true);
  for (const section of KEPT_SECTIONS) expect(sectionOf(once, section)).toBe(sectionOf(committed, section));
  expect(twice).toBe(once);
  expect(again).toBe(once);
  expect(withKeptSections(page, '# old page without kept sections\n')).toBe(page);
});
