/** Step `resetWindows` (issue 15). */
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { resetWindows, type WindowsResetConfig } from './windows-reset';

export interface WindowsResetOutput {
  CommandId: string;
  Mode: string;
}

export const OUTPUT_FIELDS = outputFields<WindowsResetOutput>()(['CommandId', 'Mode']);

const config: WindowsResetConfig = { keyId: requireEnv('KEY_ID'), documentName: requireEnv('WINDOWS_DOCUMENT_NAME') };
const log = createLogger('reset-access-windows-reset');

export async function handler(event: unknown): Promise<WindowsResetOutput> {
  const input = validateStepInput(event);
  const r = await resetWindows({ ssm, log, config }, input);
  return { CommandId: r.commandId, Mode: r.mode };
}
