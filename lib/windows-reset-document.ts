/**
 * The windows-reset Command document (runbooks/windows-reset.yaml) with its script
 * (runbooks/windows-reset.sh) inlined as the runCommand lines, and the NewPassword boot action
 * (runbooks/windows-boot.ps1) inlined in the script as base64. The stack deploys this object and the
 * tests run the script taken back out of it, so the tests run the very text that is deployed.
 */
import { execFileSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';

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

interface RunShellScriptStep {
  action: string;
  name: string;
  inputs: { runCommand: unknown; [key: string]: unknown };
}

function runShellScriptStep(doc: Record<string, unknown>): RunShellScriptStep {
  const steps = doc.mainSteps;
  if (!Array.isArray(steps) || steps.length !== 1) {
    throw new WindowsResetDocumentError('the windows-reset document must have exactly one step');
  }
  const step = steps[0] as RunShellScriptStep;
  if (step.action !== 'aws:runShellScript' || typeof step.inputs !== 'object' || step.inputs === null) {
    throw new WindowsResetDocumentError('the windows-reset step must be aws:runShellScript with inputs');
  }
  return step;
}

/** Every parameter reaches the script as SSM_<Name> only with interpolationType ENV_VAR on the parameter (see lib/inject-key-document.ts). */
function checkInterpolation(doc: Record<string, unknown>, step: RunShellScriptStep): void {
  if ('interpolationType' in step.inputs) {
    throw new WindowsResetDocumentError('interpolationType belongs to each parameter, not to the step inputs');
  }
  const parameters = (doc.parameters ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, spec] of Object.entries(parameters)) {
    if (spec.interpolationType !== 'ENV_VAR') {
      throw new WindowsResetDocumentError(`parameter ${name} must have interpolationType: ENV_VAR (the script reads SSM_${name})`);
    }
  }
}

/**
 * The script's lines as deployed: without its full-line comments and blank lines (the shebang kept),
 * indentation untouched, because the script carries Python programs in single-quoted strings whose
 * indentation is syntax. This is the Windows document's own function, not the inject-key loader's,
 * so that a change of how that one trims its script cannot break this one. Refused when bash's own
 * parser reads a different program from the two texts (a dropped line inside a multi-line string
 * would show), or when the script has a here-document.
 */
export function windowsDeployedLines(script: string): string[] {
  const lines = script.replace(/\n$/, '').split('\n');
  const heredoc = lines.findIndex((line) => /(^|[^<])<<(?!<)/.test(line.replace(/^\s*#.*$/, '')));
  if (heredoc >= 0) {
    throw new WindowsResetDocumentError(`the script has a here-document at line ${heredoc + 1}: its comment lines cannot be dropped safely`);
  }
  const kept = lines.filter((line, i) => (i === 0 && line.startsWith('#!')) || !/^[ \t]*(#.*)?$/.test(line));
  if (parseTree(lines.join('\n')) !== parseTree(kept.join('\n'))) {
    throw new WindowsResetDocumentError('dropping the comment and blank lines would change the script (a multi-line string holds one): refusing');
  }
  return kept;
}

/** bash's normalised text of a script (comments dropped, strings as they are), read as the body of a function never run. */
function parseTree(text: string): string {
  try {
    return execFileSync('bash', ['--norc', '--noprofile', '-c', 'eval "__windows_reset_body() {\n:\n$1\n}" && declare -f __windows_reset_body', 'parse', text], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    });
  } catch (error) {
    throw new WindowsResetDocumentError(`bash cannot parse the script: ${String((error as { stderr?: string }).stderr ?? error).trim()}`);
  }
}

/** The script with the boot action inlined (base64 of the .ps1 with CRLF line ends, as Windows tools expect). */
export function windowsResetScript(runbooksDir: string = RUNBOOKS_DIR): string {
  const script = readFileSync(join(runbooksDir, 'windows-reset.sh'), 'utf8');
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
export function windowsResetScriptFromDocument(doc: Record<string, unknown>): string {
  const runCommand = runShellScriptStep(doc).inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.some((line) => typeof line !== 'string')) {
    throw new WindowsResetDocumentError('runCommand must be a list of strings');
  }
  return `${(runCommand as string[]).join('\n')}\n`;
}
