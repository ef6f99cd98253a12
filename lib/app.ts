import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DEFAULT_DOCUMENT_NAME, DEFAULT_STACK_NAME } from './constants';
import { ResetAccessStack, ResetAccessStackProps } from './reset-access-stack';

export interface CreateAppProps {
  /**
   * Where the cloud assembly goes.
   * @default - the CDK default (cdk.out, or the CLI's CDK_OUTDIR)
   */
  readonly outdir?: string;
  /**
   * Context values (e.g. `stackName`, `documentName`), merged over cdk.json and the CLI's.
   * @default - none
   */
  readonly context?: Record<string, unknown>;
  /**
   * Overrides for tests (lambdas directory, runbook file, Command document content).
   * @default - the repository's files
   */
  readonly stackProps?: Pick<ResetAccessStackProps, 'lambdasDir' | 'runbookFile' | 'injectKeyDocument' | 'revokeKeyDocument'>;
}

/**
 * The CDK app: one environment-agnostic stack (no lookups, no credentials needed to synthesize),
 * checked by cdk-nag's AwsSolutions pack at synth.
 *
 * Context: `stackName` (default ResetAccessStack), `documentName` (default ResetAccess),
 * `revokeDocumentName` (default RevokeKey).
 */
export function createApp(props: CreateAppProps = {}): { app: App; stack: ResetAccessStack } {
  const app = new App({ outdir: props.outdir, context: props.context });
  const stackName = contextString(app, 'stackName') ?? DEFAULT_STACK_NAME;
  const documentName = contextString(app, 'documentName') ?? DEFAULT_DOCUMENT_NAME;
  const revokeDocumentName = contextString(app, 'revokeDocumentName');
  const stack = new ResetAccessStack(app, stackName, {
    stackName,
    documentName,
    ...(revokeDocumentName ? { revokeDocumentName } : {}),
    description: 'ec2-reset-access: regain SSH access to an EC2 Linux instance whose key is lost (SSM Automation runbook)',
    ...props.stackProps,
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { app, stack };
}

function contextString(app: App, key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') {
    return undefined;
  }
  if (typeof value !== 'string') {
    throw new Error(`Context ${key} must be a string, got ${JSON.stringify(value)}`);
  }
  return value;
}
