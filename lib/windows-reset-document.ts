/**
 * The windows-reset Command document (runbooks/windows-reset.yaml) with its script
 * (runbooks/windows-reset.sh) inlined as the runCommand lines, and the NewPassword boot action
 * (runbooks/windows-boot.ps1) inlined in the script as base64. The stack deploys this object and the
 * tests run the script taken back out of it, so the tests run the very text that is deployed.
 */
import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';
import { checkInterpolation, deployedLines, runShellScriptStep, scriptFromDocument, SHARED_SCRIPT } from './inject-key-document';

/** The one runCommand entry of the YAML that stands for the script. */
export const WINDOWS_RESET_SCRIPT_PLACEHOLDER = '%%WindowsResetScript%%';
/** The script's one line that receives the boot action, as base64. */
export const WINDOWS_BOOT_SCRIPT_PLACEHOLDER = '%%WindowsBootScript%%';

const RUNBOOKS_DIR = join(__dirname, '..', 'runbooks');

/** Thrown when the document or its scripts are not what the stack can deploy. */
export class WindowsResetDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WindowsResetDocumentError';
  }
}

/**
 * The script's lines as deployed: deployedLines without `compact` (full-line comments and blank
 * lines dropped, the shebang kept, indentation untouched: the script carries Python programs in
 * single-quoted strings whose indentation is syntax), checked by bash's parse tree there.
 */
export function windowsDeployedLines(script: string): string[] {
  return deployedLines(script);
}

/** The markers of the lines of runbooks/key-files.sh that every helper script starts with. */
export const SHARED_HEAD_BEGIN = '# --- shared head: begin';
export const SHARED_HEAD_END = '# --- shared head: end';

/**
 * The shared head of runbooks/key-files.sh (the lines from its begin marker to its end marker): the
 * shell settings, the private mount namespace and wait_for_device, written once for the inject-key,
 * revoke-key and windows-reset scripts.
 */
export function sharedHead(runbooksDir: string = RUNBOOKS_DIR): string {
  const lines = readFileSync(join(runbooksDir, SHARED_SCRIPT), 'utf8').split('\n');
  const begin = lines.findIndex((l) => l.startsWith(SHARED_HEAD_BEGIN));
  const end = lines.findIndex((l) => l === SHARED_HEAD_END);
  if (begin < 0 || end <= begin || lines.filter((l) => l.startsWith(SHARED_HEAD_BEGIN) || l === SHARED_HEAD_END).length !== 2) {
    throw new WindowsResetDocumentError(`${SHARED_SCRIPT} must hold the shared head between one '${SHARED_HEAD_BEGIN}' and one '${SHARED_HEAD_END}' line`);
  }
  return `${lines.slice(begin, end + 1).join('\n')}\n`;
}

/**
 * The script with the boot action inlined (base64 of the .ps1 with CRLF line ends, as Windows tools
 * expect): windows-reset.sh's shebang, the shared head of key-files.sh, then the rest of windows-reset.sh.
 */
export function windowsResetScript(runbooksDir: string = RUNBOOKS_DIR): string {
  const own = readFileSync(join(runbooksDir, 'windows-reset.sh'), 'utf8');
  const newline = own.indexOf('\n');
  if (!own.startsWith('#!') || newline < 0) throw new WindowsResetDocumentError('windows-reset.sh must start with the shebang');
  const script = own.slice(0, newline + 1) + sharedHead(runbooksDir) + own.slice(newline + 1);
  const boot = readFileSync(join(runbooksDir, 'windows-boot.ps1'), 'utf8');
  if (script.includes(WINDOWS_RESET_SCRIPT_PLACEHOLDER)) {
    throw new WindowsResetDocumentError('the script must not contain the document placeholder');
  }
  const line = `readonly BOOT_SCRIPT_B64='${WINDOWS_BOOT_SCRIPT_PLACEHOLDER}'`;
  if (script.split('\n').filter((l) => l === line).length !== 1 || script.split(WINDOWS_BOOT_SCRIPT_PLACEHOLDER).length !== 2) {
    throw new WindowsResetDocumentError(`the script must have the line ${line} exactly once`);
  }
  for (const token of ['__RUN_ID__', '__KEY_XML__', '__ORIGINAL_CONFIG_B64__']) {
    if (boot.split(token).length !== 2) {
      throw new WindowsResetDocumentError(`the boot script must hold ${token} exactly once`);
    }
  }
  const encoded = Buffer.from(boot.replace(/\r?\n/g, '\r\n'), 'utf8').toString('base64');
  return script.replace(WINDOWS_BOOT_SCRIPT_PLACEHOLDER, encoded);
}

/** The Command document object with the script inlined, ready for AWS::SSM::Document Content. */
export function loadWindowsResetDocument(runbooksDir: string = RUNBOOKS_DIR): Record<string, unknown> {
  const doc = parse(readFileSync(join(runbooksDir, 'windows-reset.yaml'), 'utf8')) as Record<string, unknown>;
  const step = runShellScriptStep(doc);
  const runCommand = step.inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.length !== 1 || runCommand[0] !== WINDOWS_RESET_SCRIPT_PLACEHOLDER) {
    throw new WindowsResetDocumentError(`runCommand must be exactly ['${WINDOWS_RESET_SCRIPT_PLACEHOLDER}']`);
  }
  checkInterpolation(doc, step);
  step.inputs.runCommand = windowsDeployedLines(windowsResetScript(runbooksDir));
  return doc;
}

/** The script text the document runs (its runCommand lines joined), ending with a newline. */
export const windowsResetScriptFromDocument = scriptFromDocument;
