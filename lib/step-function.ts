import * as path from 'path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The repository root: package-lock.json, tsconfig.json (its `@common/*` path) and lambdas/. */
export const REPO_ROOT = path.resolve(__dirname, '..');

/**
 * Longest timeout a step Lambda may have: an `aws:invokeLambdaFunction` step has at most 300 s
 * and the runbook gives each Lambda step a little more than its function.
 */
export const MAX_STEP_FUNCTION_TIMEOUT = Duration.seconds(290);

export interface StepFunctionProps {
  /** The Lambda folder under lambdas/ (docs/architecture.md), e.g. `preflight`. */
  readonly folder: string;
  /** What the function does, for the console. */
  readonly description: string;
  /**
   * The directory holding the Lambda folders.
   * @default - `<repo>/lambdas`
   */
  readonly lambdasDir?: string;
  /**
   * Must stay below the runbook step's `timeoutSeconds`.
   * @default Duration.seconds(120)
   */
  readonly timeout?: Duration;
  /**
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Environment variables beyond the defaults.
   * @default - none
   */
  readonly environment?: Record<string, string>;
}

/**
 * One step of the runbook: a TypeScript Lambda with the defaults written once.
 *
 * - Runtime Node.js 22 on arm64 (Graviton: cheaper for the same work).
 * - Bundled by the local esbuild, never Docker (`forceDockerBundling: false`; esbuild is a
 *   devDependency), minified, with source maps (`NODE_OPTIONS=--enable-source-maps` so stack
 *   traces name the TypeScript lines). `@aws-sdk/*` is external: the runtime provides SDK v3,
 *   which keeps every bundle small.
 * - Its own role with no managed policy: write access to its own log group only; each step
 *   adds the least it needs (lib/functions.ts).
 * - An explicit log group, one-month retention, deleted with the stack.
 */
export class StepFunction extends NodejsFunction {
  /** The folder under lambdas/ this function was built from. */
  public readonly folder: string;

  public constructor(scope: Construct, id: string, props: StepFunctionProps) {
    const timeout = props.timeout ?? Duration.seconds(120);
    if (timeout.toSeconds() > MAX_STEP_FUNCTION_TIMEOUT.toSeconds()) {
      throw new Error(
        `StepFunction ${props.folder}: timeout ${timeout.toSeconds()} s is over ${MAX_STEP_FUNCTION_TIMEOUT.toSeconds()} s, ` +
          'the limit below the runbook step timeout',
      );
    }
    const lambdasDir = props.lambdasDir ?? path.join(REPO_ROOT, 'lambdas');
    // The role and the log group must exist before super(); a construct's children can only be
    // created once `this` exists, so they are siblings in `scope` with the id as prefix.
    const logGroup = new logs.LogGroup(scope, `${id}LogGroup`, {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the ${props.folder} step of the ResetAccess runbook`,
    });
    super(scope, id, {
      entry: path.join(lambdasDir, props.folder, 'handler.ts'),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout,
      memorySize: props.memorySize ?? 256,
      role,
      logGroup,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      bundling: {
        forceDockerBundling: false,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: 'node22',
        format: OutputFormat.CJS,
        // The `@common/*` path of tsconfig.json resolves the shared code.
        tsconfig: path.join(REPO_ROOT, 'tsconfig.json'),
        externalModules: ['@aws-sdk/*'],
      },
    });
    this.folder = props.folder;
    logGroup.grantWrite(role);
  }
}
