/**
 * docs/benchmarks.md is written by two programs: `npm run bench -- --write` (bench/run.ts) writes
 * the whole page, bench/fleet.ts its fleet section between these markers. Each keeps the other's.
 */
export const FLEET_BEGIN = '<!-- fleet: written by bench/fleet.ts -->';
export const FLEET_END = '<!-- /fleet -->';

/** The fleet section of `text` (markers included), or '' when it has none. */
export function fleetSectionOf(text: string): string {
  const a = text.indexOf(FLEET_BEGIN);
  const b = text.indexOf(FLEET_END);
  return a >= 0 && b > a ? text.slice(a, b + FLEET_END.length) : '';
}

/** `page` (a whole new page without a fleet section) with the fleet section of `old` appended. */
export function withFleetSection(page: string, old: string): string {
  const fleet = fleetSectionOf(old);
  return fleet === '' ? page : `${page.replace(/\n*$/, '\n\n')}${fleet}\n`;
}
