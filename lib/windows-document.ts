/**
 * The windows-reset Command document the stack deploys (issue 15). Helper H4 builds the document
 * and its loader (lib/windows-reset-document.ts, runbooks/windows-reset.yaml); until that is merged
 * this returns a document of the agreed shape (its parameters, ENV_VAR) whose script refuses with
 * an error report, so that a run fails closed and restores. It becomes a re-export of H4's loader.
 */
export function windowsResetDocumentContent(): Record<string, unknown> {
  const param = (description: string, extra: Record<string, unknown>) => ({ type: 'String', description, interpolationType: 'ENV_VAR', ...extra });
  return {
    schemaVersion: '2.2',
    description: 'ec2-reset-access: make the Windows launch agent set a new Administrator password at the next boot (not yet built: refuses).',
    parameters: {
      VolumeId: param('The Windows root volume attached to this helper.', { allowedPattern: '^vol-[0-9a-f]{8,17}$' }),
      Mode: param('EnablePasswordGeneration or NewPassword.', { allowedValues: ['EnablePasswordGeneration', 'NewPassword'] }),
      RunId: param('The Automation execution id.', { allowedPattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' }),
      PasswordKey: param('NewPassword: the run public key (base64 DER SubjectPublicKeyInfo); empty otherwise.', { default: '', allowedPattern: '^([A-Za-z0-9+/]{300,600}={0,2})?$' }),
    },
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: 'windowsReset',
        inputs: {
          timeoutSeconds: '240',
          runCommand: ['echo \'{"version":1,"status":"error","changes":[],"warnings":[],"error":"the windows-reset script is not in this build"}\'', 'exit 1'],
        },
      },
    ],
  };
}
