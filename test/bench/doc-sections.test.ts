/**
 * docs/benchmarks.md has two writers (bench/run.ts, bench/fleet.ts): rewriting the page with
 * `npm run bench -- --write` keeps the fleet section that bench/fleet.ts wrote, once.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fleetSectionOf, withFleetSection, FLEET_BEGIN, FLEET_END } from '../../bench/doc-sections';

const committed = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'benchmarks.md'), 'utf8');

it('the committed page carries one fleet section', () => {
  expect(committed.split(FLEET_BEGIN).length - 1).toBe(1);
  expect(committed.split(FLEET_END).length - 1).toBe(1);
  expect(fleetSectionOf(committed)).toMatch(/## Fleets/);
});

it('a rewritten page keeps the old fleet section, once, and a page without one stays as it is', () => {
  // Prepare: a page as bench/run.ts renders it (no fleet section)
  const page = '# Benchmarks\n\nnew figures\n';
  // Act
  const once = withFleetSection(page, committed);
  const twice = withFleetSection(page, once);
  // Assess
  expect(once.startsWith(page)).toBe(true);
  expect(fleetSectionOf(once)).toBe(fleetSectionOf(committed));
  expect(twice).toBe(once);
  expect(withFleetSection(page, '# old page without a fleet section\n')).toBe(page);
});
