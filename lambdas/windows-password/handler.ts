/** Step `waitForPassword` (issue 15): its Payload is the Windows path's result (waitForPassword.Payload). */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { requireEnv } from '@common/env';
import { createLogger } from '@common/log';
import { MAX_OUTPUT_CHARS, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { nextStep, waitForPassword } from './windows-password';

/** The run's result for a Windows target (at most 512 characters); never a password or a key. */
export interface WindowsPasswordOutput {
  Mode: string;
  /** The SecureString with the new password (NewPassword), or `none`. */
  PasswordParameterName: string;
  /** What the user runs next to read the password. */
  NextStep: string;
  InstanceState: string;
  Address: string;
  BackupId: string;
}

export const OUTPUT_FIELDS = outputFields<WindowsPasswordOutput>()(['Mode', 'PasswordParameterName', 'NextStep', 'InstanceState', 'Address', 'BackupId']);

const config = { keyId: requireEnv('KEY_ID') };
const log = createLogger('reset-access-windows-password');

export async function handler(event: unknown): Promise<WindowsPasswordOutput> {
  const input = validateStepInput(event);
  const r = await waitForPassword({ ec2, ssm, log, config }, input);
  const out: WindowsPasswordOutput = {
    Mode: r.mode,
    PasswordParameterName: r.passwordParameterName,
    NextStep: nextStep(input.instanceId, r),
    InstanceState: r.instanceState,
    Address: r.address,
    BackupId: r.backupId,
  };
  if (JSON.stringify(out).length > MAX_OUTPUT_CHARS) out.NextStep = out.NextStep.slice(0, 200);
  return out;
}
