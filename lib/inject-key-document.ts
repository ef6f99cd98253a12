/**
 * The Command documents that change a target's authorized keys, with their script inlined: the
 * inject-key document (runbooks/inject-key.yaml) and the revoke-key document
 * (runbooks/revoke-key.yaml). Each script is runbooks/key-files.sh (what both share: the target,
 * its users, the files sshd reads, the safe writes) followed by the action's own part
 * (runbooks/inject-key.sh, runbooks/revoke-key.sh); the document's runCommand is its lines. The
 * stack deploys these objects and the tests run the script taken back out of them, so the tests
 * run the very text that is deployed.
 */
import { execFileSync } from 'child_process';
import { readFileSync } from 'fs';
import { join } from 'path';
import { parse } from 'yaml';

/** The one runCommand entry of the inject-key YAML that stands for the script. */
export const INJECT_KEY_SCRIPT_PLACEHOLDER = '%%InjectKeyScript%%';
/** The one runCommand entry of the revoke-key YAML that stands for the script. */
export const REVOKE_KEY_SCRIPT_PLACEHOLDER = '%%RevokeKeyScript%%';
/** The shared part every script starts with. */
export const SHARED_SCRIPT = 'key-files.sh';

const RUNBOOKS_DIR = join(__dirname, '..', 'runbooks');

/** Thrown when the document or its script is not what the stack can deploy. */
export class InjectKeyDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InjectKeyDocumentError';
  }
}

export interface RunShellScriptStep {
  action: string;
  name: string;
  inputs: { runCommand: unknown; [key: string]: unknown };
}

export function runShellScriptStep(doc: Record<string, unknown>): RunShellScriptStep {
  const steps = doc.mainSteps;
  if (!Array.isArray(steps) || steps.length !== 1) {
    throw new InjectKeyDocumentError('the document must have exactly one step');
  }
  const step = steps[0] as RunShellScriptStep;
  if (step.action !== 'aws:runShellScript' || typeof step.inputs !== 'object' || step.inputs === null) {
    throw new InjectKeyDocumentError('the step must be aws:runShellScript with inputs');
  }
  return step;
}

/**
 * Every parameter reaches the script as `SSM_<Name>`: AWS documents `interpolationType: ENV_VAR` as a
 * property of each parameter (https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html,
 * "parameters"), needing SSM Agent 3.3.2746.0 or later. Placed in a step's inputs it means nothing to
 * the agent, no variable is set, and the script would stop with "PublicKey is empty" (issue 10, defect 1).
 */
export function checkInterpolation(doc: Record<string, unknown>, step: RunShellScriptStep): void {
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

/**
 * The script of an action as one text: the shared part (whose first line is the shebang) and the
 * action's part, each ending with a newline.
 */
export function assembleScript(action: string, runbooksDir: string = RUNBOOKS_DIR): string {
  const shared = readFileSync(join(runbooksDir, SHARED_SCRIPT), 'utf8');
  const own = readFileSync(join(runbooksDir, action), 'utf8');
  if (!shared.startsWith('#!')) throw new InjectKeyDocumentError(`${SHARED_SCRIPT} must start with the shebang`);
  if (own.startsWith('#!')) throw new InjectKeyDocumentError(`${action} is the second part of the script: no shebang`);
  const withNewline = (text: string): string => (text.endsWith('\n') ? text : `${text}\n`);
  return withNewline(shared) + withNewline(own);
}

function loadCommandDocument(yamlFile: string, action: string, placeholder: string, runbooksDir: string): Record<string, unknown> {
  const doc = parse(readFileSync(join(runbooksDir, yamlFile), 'utf8')) as Record<string, unknown>;
  const script = assembleScript(action, runbooksDir);
  if (script.includes(placeholder)) {
    throw new InjectKeyDocumentError('the script must not contain the placeholder');
  }
  const step = runShellScriptStep(doc);
  const runCommand = step.inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.length !== 1 || runCommand[0] !== placeholder) {
    throw new InjectKeyDocumentError(`runCommand must be exactly ['${placeholder}']`);
  }
  checkInterpolation(doc, step);
  step.inputs.runCommand = deployedLines(script, { compact: true });
  return doc;
}

/** The inject-key Command document object with its script inlined, ready for AWS::SSM::Document Content. */
export function loadInjectKeyDocument(runbooksDir: string = RUNBOOKS_DIR): Record<string, unknown> {
  return loadCommandDocument('inject-key.yaml', 'inject-key.sh', INJECT_KEY_SCRIPT_PLACEHOLDER, runbooksDir);
}

/** The revoke-key Command document object with its script inlined, ready for AWS::SSM::Document Content. */
export function loadRevokeKeyDocument(runbooksDir: string = RUNBOOKS_DIR): Record<string, unknown> {
  return loadCommandDocument('revoke-key.yaml', 'revoke-key.sh', REVOKE_KEY_SCRIPT_PLACEHOLDER, runbooksDir);
}

/**
 * The script's lines as deployed: without its full-line comments (a line whose first non-blank
 * character is `#`, except the shebang) and blank lines, to keep the documents under SSM's size
 * limit; with `compact`, also without the indentation of each line and a comment at the end of a
 * line (a blank, `#`, a blank, then no quote character): the two key documents use it (a script
 * whose multi-line strings need their indentation, such as embedded Python, must not). Safe only
 * where such text cannot be data: refused when the script has a here-document (`<<` not followed
 * by `<`), and refused unless bash's own parser reads the same program from both texts
 * (`declare -f` of each text as a function body prints the parse tree without comments, indented
 * its own way, with every string as it is; a dropped line or a dropped blank inside a multi-line
 * string would show).
 */
export function deployedLines(script: string, options: { readonly compact?: boolean } = {}): string[] {
  const lines = script.replace(/\n$/, '').split('\n');
  const heredoc = lines.findIndex((line) => /(^|[^<])<<(?!<)/.test(line.replace(/^\s*#.*$/, '')));
  if (heredoc >= 0) {
    throw new InjectKeyDocumentError(`the script has a here-document at line ${heredoc + 1}: its comment lines cannot be dropped safely`);
  }
  const kept = lines
    .filter((line, i) => (i === 0 && line.startsWith('#!')) || !/^[ \t]*(#.*)?$/.test(line))
    .map((line, i) => (i === 0 || !options.compact ? line : line.replace(/^[ \t]+/, '').replace(/[ \t]+#[ \t][^'"]*$/, '')));
  if (parseTree(lines.join('\n')) !== parseTree(kept.join('\n'))) {
    throw new InjectKeyDocumentError('dropping the comments, blank lines and indentation would change the script (a multi-line string holds one, or a # that is not a comment): refusing');
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

/** The script text a document runs (its runCommand lines joined), ending with a newline. */
export function scriptFromDocument(doc: Record<string, unknown>): string {
  const runCommand = runShellScriptStep(doc).inputs.runCommand;
  if (!Array.isArray(runCommand) || runCommand.some((line) => typeof line !== 'string')) {
    throw new InjectKeyDocumentError('runCommand must be a list of strings');
  }
  return `${(runCommand as string[]).join('\n')}\n`;
}

/** The inject-key script as deployed (its runCommand lines joined). */
export const injectKeyScriptFromDocument = scriptFromDocument;
/** The revoke-key script as deployed (its runCommand lines joined). */
export const revokeKeyScriptFromDocument = scriptFromDocument;
