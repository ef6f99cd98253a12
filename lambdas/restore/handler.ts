/** Step `restore`. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { realClock } from '@common/ec2';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
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

/** Automation caps a step output value at 512 characters (AutomationParameterValue in the SSM API model). */
export const MESSAGE_CHARS = 512;

export async function handler(event: unknown): Promise<RestoreOutput> {
  const input = validateStepInput(event);
  const r = await restore({ ec2, ssm, log, clock: realClock }, input);
  const message = r.message.length <= MESSAGE_CHARS ? r.message : `${r.message.slice(0, MESSAGE_CHARS - 1)}…`;
  return { Restored: r.restored, Message: message, ForcedDetach: r.forcedDetach };
}
