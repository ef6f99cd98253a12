/**
 * The inject-key Command document (runbooks/inject-key.yaml) with its script
 * (runbooks/inject-key.sh) inlined: the document's runCommand is the script's lines. The stack
 * deploys this object and the tests run the script taken back out of it, so the tests run the
 * very text that is deployed.
 */
import { execFileSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';

/** The one runCommand entry of the YAML that stands for the script. */
export const INJECT_KEY_SCRIPT_PLACEHOLDER = '%%InjectKeyScript%%';

const RUNBOOKS_DIR = join(__dirname, '..', 'runbooks');

/** Thrown when the document or its script is not what the stack can deploy. */
export class InjectKeyDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InjectKeyDocumentError';
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
    throw new InjectKeyDocumentError('the inject-key document must have exactly one step');
  }
  const step = steps[0] as RunShellScriptStep;
  if (step.action !== 'aws:runShellScript' || typeof step.inputs !== 'object' || step.inputs === null) {
    throw new InjectKeyDocumentError('the inject-key step must be aws:runShellScript with inputs');
  }
  return step;
}

/**
 * Every parameter reaches the script as `SSM_<Name>`: AWS documents `interpolationType: ENV_VAR` as a
 * property of each parameter (https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html,
 * "parameters"), needing SSM Agent 3.3.2746.0 or later. Placed in a step's inputs it means nothing to
 * the agent, no variable is set, and the script would stop with "PublicKey is empty" (issue 10, defect 1).
 */
function checkInterpolation(doc: Record<string, unknown>, step: RunShellScriptStep): void {
  if ('interpolationType' in step.inputs) {
    throw new InjectKeyDocumentError('interpolationType belongs to each parameter, not to the step inputs (the agent ignores it there)');
  }
  const parameters = (doc.parameters ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, spec] of Object.entries(parameters)) {
    if (spec.interpolationType !== 'ENV_VAR') {
      throw new InjectKeyDocumentError(`parameter ${name} must have interpolationType: ENV_VAR (the script reads SSM_${name})`);
    }
  }
}

/** The Command document object with the script inlined, ready for AWS::SSM::Document Content. */
export function loadInjectKeyDocument(runbooksDir: string = RUNBOOKS_DIR): Record<string, unknown> {
  const doc = parse(readFileSync(join(runbooksDir, 'inject-key.yaml'), 'utf8')) as Record<string, unknown>;
  const script = readFileSync(join(runbooksDir, 'inject-key.sh'), 'utf8');
  if (script.includes(INJECT_KEY_SCRIPT_PLACEHOLDER)) {
    throw new InjectKeyDocumentError('the script must not contain the placeholder');
  }
  const step = runShellScriptStep(doc);
  const runCommand = step.inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.length !== 1 || runCommand[0] !== INJECT_KEY_SCRIPT_PLACEHOLDER) {
    throw new InjectKeyDocumentError(`runCommand must be exactly ['${INJECT_KEY_SCRIPT_PLACEHOLDER}']`);
  }
  checkInterpolation(doc, step);
  step.inputs.runCommand = deployedLines(script);
  return doc;
}

/**
 * The script's lines as deployed: without its full-line comments (a line whose first non-blank
 * character is `#`, except the shebang) and blank lines, to keep the document under SSM's size
 * limit. Safe only where such a line cannot be data: refused when the script has a here-document
 * (`<<` not followed by `<`), and refused unless bash's own parser reads the same program from both
 * texts (`declare -f` of each text as a function body prints the parse tree without comments, with
 * every string as it is; a dropped line inside a multi-line string would show).
 */
export function deployedLines(script: string): string[] {
  const lines = script.replace(/\n$/, '').split('\n');
  const heredoc = lines.findIndex((line) => /(^|[^<])<<(?!<)/.test(line.replace(/^\s*#.*$/, '')));
  if (heredoc >= 0) {
    throw new InjectKeyDocumentError(`the script has a here-document at line ${heredoc + 1}: its comment lines cannot be dropped safely`);
  }
  const kept = lines.filter((line, i) => (i === 0 && line.startsWith('#!')) || !/^[ \t]*(#.*)?$/.test(line));
  if (parseTree(lines.join('\n')) !== parseTree(kept.join('\n'))) {
    throw new InjectKeyDocumentError('dropping the comment and blank lines would change the script (a multi-line string holds one): refusing');
  }
  return kept;
}

/** bash's normalised text of a script, read as the body of a function that is never run. */
function parseTree(text: string): string {
  try {
    return execFileSync('bash', ['--norc', '--noprofile', '-c', 'eval "__inject_key_body() {\n:\n$1\n}" && declare -f __inject_key_body', 'parse', text], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    });
  } catch (error) {
    throw new InjectKeyDocumentError(`bash cannot parse the script: ${String((error as { stderr?: string }).stderr ?? error).trim()}`);
  }
}

/** The script text the document runs (its runCommand lines joined), ending with a newline. */
export function injectKeyScriptFromDocument(doc: Record<string, unknown>): string {
  const runCommand = runShellScriptStep(doc).inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.some((line) => typeof line !== 'string')) {
    throw new InjectKeyDocumentError('runCommand must be a list of strings');
  }
  return `${(runCommand as string[]).join('\n')}\n`;
}
