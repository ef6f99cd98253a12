/**
 * The Windows comparison of `npm run bench` (issue 15 item 6), from the model in bench/windows.ts
 * (its content: H2/issue 15): each side until the target's boot starts, at both ends of the
 * latency table, then the target's own boot until its password is ready added to both at the
 * same end. Judged by the rule of bench/result.ts (`speedupRatios`).
 */
import { LATENCY_ENDS, type LatencyEnd } from '../local/latency';
import { speedupRatios, type Range, type WindowsResult } from './result';
import { round } from './stats';
import { ours, reference, WINDOWS_FIGURES, windowsRatios } from './windows';

export function windowsResult(): WindowsResult {
  const at = (f: (end: LatencyEnd) => number): Range => ({ low: round(f('low'), 2), high: round(f('high'), 2) });
  const boot = at((e) => WINDOWS_FIGURES.WindowsBootUntilPassword[e]);
  const oursBeforeBoot = at((e) => ours(e).beforeBoot);
  const referenceBeforeBoot = at((e) => reference(e).beforeBoot);
  const oursTimeToAccess = at((e) => ours(e).beforeBoot + WINDOWS_FIGURES.WindowsBootUntilPassword[e]);
  const referenceTimeToAccess = at((e) => reference(e).beforeBoot + WINDOWS_FIGURES.WindowsBootUntilPassword[e]);
  const parts = (side: typeof ours) =>
    Object.fromEntries(LATENCY_ENDS.map((e) => [e, side(e).parts.map(([what, s]) => [what, round(s, 2)] as const)])) as unknown as WindowsResult['parts']['ours'];
  return {
    oursBeforeBoot,
    referenceBeforeBoot,
    bootUntilPassword: boot,
    oursTimeToAccess,
    referenceTimeToAccess,
    speedup: speedupRatios(referenceTimeToAccess, oursTimeToAccess),
    speedupBeforeBoot: speedupRatios(referenceBeforeBoot, oursBeforeBoot),
    parts: { ours: parts(ours), reference: parts(reference) },
    fastLaunchLowEnd: round(windowsRatios().fastLaunchLow, 2),
    figures: WINDOWS_FIGURES,
  };
}
