/**
 * docs/benchmarks.md is written by several hands: `npm run bench -- --write` (bench/run.ts) writes
 * the whole page; bench/fleet.ts writes its fleet section, and the self-test's section is written by
 * hand. Each kept section lies between its own begin and end markers, and a rewrite of the page
 * keeps every one of them, once, in this order.
 */
export interface KeptSection {
  readonly begin: string;
  readonly end: string;
}

export const FLEET_BEGIN = '<!-- fleet: written by bench/fleet.ts -->';
export const FLEET_END = '<!-- /fleet -->';
export const SELFTEST_BEGIN = '<!-- selftest: hand-written (issue 16); bench/run.ts --write must keep it -->';
export const SELFTEST_END = '<!-- /selftest -->';

export const KEPT_SECTIONS: readonly KeptSection[] = [
  { begin: FLEET_BEGIN, end: FLEET_END },
  { begin: SELFTEST_BEGIN, end: SELFTEST_END },
];

/** The section of `text` between `section`'s markers (markers included), or '' when it has none. */
export function sectionOf(text: string, section: KeptSection): string {
  const a = text.indexOf(section.begin);
  const b = text.indexOf(section.end, a);
  return a >= 0 && b > a ? text.slice(a, b + section.end.length) : '';
}

/** The fleet section of `text` (markers included), or '' when it has none. */
export function fleetSectionOf(text: string): string {
  return sectionOf(text, KEPT_SECTIONS[0]);
}

/** `page` (a whole new page without kept sections) with every kept section of `old` appended. */
export function withKeptSections(page: string, old: string): string {
  let out = page;
  for (const section of KEPT_SECTIONS) {
    const kept = sectionOf(old, section);
    if (kept !== '' && sectionOf(out, section) === '') out = `${out.replace(/\n*$/, '\n\n')}${kept}\n`;
  }
  return out;
}
