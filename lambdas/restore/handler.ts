/** Step `restore`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { realClock } from '@common/ec2';
import { createLogger } from '@common/log';
import { MAX_OUTPUT_CHARS, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { restore } from './restore';

export interface RestoreOutput {
  Restored: boolean;
  Message: string;
  /** True when the root volume had to be detached from the helper with Force (Message says to check its filesystem). */
  ForcedDetach: boolean;
}

export const OUTPUT_FIELDS = outputFields<RestoreOutput>()(['Restored', 'Message', 'ForcedDetach']);

const log = createLogger('reset-access-restore');
/**
 * The windows-reset Command document (review W2: a Windows run's Mode=Revert), set by the stack
 * (lib/functions.ts). Not required at load: restore must still put a Linux run back without it; a
 * Windows revert without it is reported as not done (windows-revert.ts).
 */
const WINDOWS_DOCUMENT_NAME = process.env.WINDOWS_DOCUMENT_NAME || undefined;

/**
 * The whole result may be a step output (the restore runbook outputs `restore.Payload`), and
 * Automation caps an output value at MAX_OUTPUT_CHARS: the Message is cut so that the JSON of the
 * whole result fits. A forced detach's advice comes first in the Message, so a cut keeps it.
 */
export function fitPayload(out: RestoreOutput): RestoreOutput {
  const fits = (m: string): boolean => JSON.stringify({ ...out, Message: m }).length <= MAX_OUTPUT_CHARS;
  if (fits(out.Message)) return out;
  // The longest cut that fits (JSON escapes make the length not linear in the cut).
  let lo = 0;
  let hi = out.Message.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(`${out.Message.slice(0, mid)}…`)) lo = mid;
    else hi = mid - 1;
  }
  return { ...out, Message: `${out.Message.slice(0, lo)}…` };
}

export async function handler(event: unknown): Promise<RestoreOutput> {
  const input = validateStepInput(event);
  const r = await restore({ ec2, ssm, log, clock: realClock, windowsDocumentName: WINDOWS_DOCUMENT_NAME }, input);
  return fitPayload({ Restored: r.restored, Message: r.message, ForcedDetach: r.forcedDetach });
}
