import * as fs from 'fs';
import * as path from 'path';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { parse } from 'yaml';
import { REPO_ROOT } from './step-function';

/**
 * `'%%FunctionArn:<lambda-folder>%%'`, `'%%AutomationRoleArn%%'`, `'%%InjectDocumentName%%'`,
 * `'%%RestoreDocumentName%%'`, `'%%RevokeDocumentName%%'`, `'%%RevokeInstanceDocumentName%%'`,
 * `'%%WindowsDocumentName%%'`.
 */
const PLACEHOLDER = /^%%([A-Za-z]+)(?::([a-z0-9-]+))?%%$/;
/** Any `%%…%%` left in a string: a placeholder that is not a whole value, or misspelt. */
const PLACEHOLDER_ANYWHERE = /%%[^%\s]*%%/;

/** What the placeholders of the runbook YAML stand for (docs/architecture.md). */
export interface RunbookTokens {
  /** Function ARN by Lambda folder. */
  readonly functionArns: Readonly<Record<string, string>>;
  /** The automation role ARN (default of AutomationAssumeRole). */
  readonly automationRoleArn: string;
  /** The inject-key Command document's name. */
  readonly injectDocumentName: string;
  /**
   * The restore Automation document's name (started by the cancel path).
   * @default - none: a runbook naming it does not synthesize
   */
  readonly restoreDocumentName?: string;
  /**
   * The revoke Command document's name (RevokeKey, issue 14).
   * @default - none: a runbook naming it does not synthesize
   */
  readonly revokeDocumentName?: string;
  /**
   * The per-instance RevokeKey runbook's name (the fleet runbook's fan-out runs it).
   * @default - none: a runbook naming it does not synthesize
   */
  readonly revokeInstanceDocumentName?: string;
  /**
   * The windows-reset Command document's name (issue 15).
   * @default - none: a runbook naming it does not synthesize
   */
  readonly windowsDocumentName?: string;
}

/** Thrown at synth when the runbook has a placeholder the app does not know. */
export class UnknownPlaceholderError extends Error {
  public constructor(placeholder: string, where: string) {
    super(`Unknown placeholder ${placeholder} at ${where} in the runbook`);
    this.name = 'UnknownPlaceholderError';
  }
}

/**
 * Returns a copy of `content` with every placeholder string replaced by its token. A string that
 * is a placeholder nobody knows, or holds `%%…%%` inside other text, throws.
 */
export function replacePlaceholders(content: unknown, tokens: RunbookTokens, where = '$'): unknown {
  if (typeof content === 'string') {
    const m = PLACEHOLDER.exec(content);
    if (m) {
      const [, kind, arg] = m;
      if (kind === 'FunctionArn' && arg !== undefined && Object.prototype.hasOwnProperty.call(tokens.functionArns, arg)) {
        return tokens.functionArns[arg];
      }
      if (kind === 'AutomationRoleArn' && arg === undefined) {
        return tokens.automationRoleArn;
      }
      if (kind === 'InjectDocumentName' && arg === undefined) {
        return tokens.injectDocumentName;
      }
      if (kind === 'WindowsDocumentName' && arg === undefined && tokens.windowsDocumentName !== undefined) {
        return tokens.windowsDocumentName;
      }
      if (kind === 'RestoreDocumentName' && arg === undefined && tokens.restoreDocumentName !== undefined) {
        return tokens.restoreDocumentName;
      }
      if (kind === 'RevokeDocumentName' && arg === undefined && tokens.revokeDocumentName !== undefined) {
        return tokens.revokeDocumentName;
      }
      if (kind === 'RevokeInstanceDocumentName' && arg === undefined && tokens.revokeInstanceDocumentName !== undefined) {
        return tokens.revokeInstanceDocumentName;
      }
      throw new UnknownPlaceholderError(content, where);
    }
    const inside = PLACEHOLDER_ANYWHERE.exec(content);
    if (inside) {
      throw new UnknownPlaceholderError(inside[0], where);
    }
    return content;
  }
  if (Array.isArray(content)) {
    return content.map((item, i) => replacePlaceholders(item, tokens, `${where}[${i}]`));
  }
  if (content !== null && typeof content === 'object') {
    return Object.fromEntries(
      Object.entries(content).map(([k, v]) => [k, replacePlaceholders(v, tokens, `${where}.${k}`)]),
    );
  }
  return content;
}

/** Reads a YAML runbook into a plain object (throws when the file is not one YAML mapping). */
export function loadRunbookYaml(file: string): Record<string, unknown> {
  const parsed: unknown = parse(fs.readFileSync(file, 'utf8'));
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${file} is not a YAML mapping`);
  }
  return parsed as Record<string, unknown>;
}

export interface RunbookProps extends RunbookTokens {
  /** Automation document name. */
  readonly documentName: string;
  /**
   * The runbook YAML.
   * @default - `<repo>/runbooks/reset-access.yaml`
   */
  readonly runbookFile?: string;
}

/** The RevokeKey fleet runbook and its per-instance runbook (issue 14). */
export const REVOKE_FLEET_RUNBOOK_FILE = path.join(REPO_ROOT, 'runbooks', 'revoke-key-fleet.yaml');
export const REVOKE_INSTANCE_RUNBOOK_FILE = path.join(REPO_ROOT, 'runbooks', 'revoke-key-instance.yaml');

/** The restore runbook the cancel path starts (`runbooks/restore.yaml`). */
export const RESTORE_RUNBOOK_FILE = path.join(REPO_ROOT, 'runbooks', 'restore.yaml');

/** The Automation runbook (schemaVersion 0.3), loaded from YAML with its placeholders replaced. */
export class Runbook extends Construct {
  public readonly document: ssm.CfnDocument;

  public constructor(scope: Construct, id: string, props: RunbookProps) {
    super(scope, id);
    const file = props.runbookFile ?? path.join(REPO_ROOT, 'runbooks', 'reset-access.yaml');
    const content = replacePlaceholders(loadRunbookYaml(file), props);
    this.document = new ssm.CfnDocument(this, 'Document', {
      name: props.documentName,
      documentType: 'Automation',
      documentFormat: 'JSON',
      updateMethod: 'NewVersion',
      content,
    });
  }
}

export interface InjectKeyCommandDocumentProps {
  /** Command document name. */
  readonly documentName: string;
  /** The document content (schemaVersion 2.2), from lib/inject-key-document.ts. */
  readonly content: Record<string, unknown>;
}

/** A Command document the helper (or the instance itself) runs: inject-key, or revoke-key. */
export class InjectKeyCommandDocument extends Construct {
  public readonly document: ssm.CfnDocument;

  public constructor(scope: Construct, id: string, props: InjectKeyCommandDocumentProps) {
    super(scope, id);
    this.document = new ssm.CfnDocument(this, 'Document', {
      name: props.documentName,
      documentType: 'Command',
      documentFormat: 'JSON',
      updateMethod: 'NewVersion',
      content: props.content,
    });
  }
}
