/**
 * The volume swap's steps that test/twin/faults.test.ts (a failure after each) and
 * test/twin/faults-cancel.test.ts (a cancel at each) walk: every step of the runbook but
 * preflight, the restore path, the UserData path (test/twin/user-data.test.ts), the Windows path
 * (test/twin/windows.test.ts) and the online path (test/twin/online-faults.test.ts). test.each
 * needs them before a twin exists, so they are read from the runbook YAML; each file checks that
 * the synthesized document has exactly these.
 */
import type { Twin } from '../../local/twin';
import { onlineStepNames, RESTORE_PATH_STEPS, runbookStepNames } from './support';

export const KEY_FILE = '/home/ec2-user/.ssh/authorized_keys';

/** The steps only a Windows target runs (after branchOnPlatform). */
export function isWindowsStep(name: string): boolean {
  return /Windows|^waitForPassword$/.test(name);
}

/** Every step but preflight, the restore path, the UserData and the Windows path, in runbook order. */
export const ALL_STEPS = runbookStepNames()
  .filter((n) => n !== 'preflight' && !RESTORE_PATH_STEPS.includes(n))
  // The UserData path's steps: a fault after each is in test/twin/user-data.test.ts (Method=UserData).
  .filter((n) => !n.includes('UserData'))
  // The Windows path's steps (issue 15): test/twin/windows.test.ts, on a Windows instance.
  .filter((n) => !isWindowsStep(n));
/**
 * The online path (issue 12) and the step that chooses it run on a managed instance, in
 * test/twin/online-faults.test.ts; the volume swap's steps here, on an instance that is not one.
 * (The online steps follow summarize in the runbook; branchOnMethod runs on both paths and is
 * tested on the online one.)
 */
export const ONLINE_STEPS = onlineStepNames(ALL_STEPS);
export const STEPS = ALL_STEPS.filter((n) => !ONLINE_STEPS.includes(n));

/** The check both files start with: the steps under test are the synthesized runbook's. */
export function expectStepsMatchSynthesized(twin: Twin): void {
  expect(STEPS.length).toBeGreaterThan(15);
  expect(ONLINE_STEPS).toEqual(['branchOnMethod', 'injectKeyOnline', 'waitForOnlineInjection', 'reportOnline', 'cleanupOnline', 'summarizeOnline']);
  const names = (twin.automationDocument.mainSteps as Array<{ name: string }>).map((s) => s.name);
  expect(names.filter((n) => !['preflight', 'restore', 'cleanupAfterRestore', 'startRestore'].includes(n) && !n.includes('UserData') && !isWindowsStep(n))).toEqual(ALL_STEPS);
}
