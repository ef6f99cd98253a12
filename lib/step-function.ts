import * as path from 'path';
import { AssetHashType, DockerImage, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { EsbuildLambdaBundling } from './bundling/local-bundling';

/** The repository root: package-lock.json, tsconfig.json (its `@common/*` path) and lambdas/. */
export const REPO_ROOT = path.resolve(__dirname, '..');

/** The esbuild target of the Lambda runtime below. */
export const BUNDLE_TARGET = 'node22';

/**
 * Modules the bundles take from elsewhere: the SDK's default credential chain becomes the
 * Lambda's own sources (lambdas/common/lambda-credentials.ts explains why and what it reads).
 */
export const LAMBDA_ALIASES: Readonly<Record<string, string>> = {
  '@aws-sdk/credential-provider-node': path.join(REPO_ROOT, 'lambdas', 'common', 'lambda-credentials.ts'),
};

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
 * - Bundled at synth by the project's esbuild, never Docker (lib/bundling/): minified, with
 *   source maps (`NODE_OPTIONS=--enable-source-maps` so stack traces name the TypeScript lines).
 *   The AWS SDK is bundled and tree-shaken, not taken from the runtime: only the operations a
 *   handler calls are in its bundle, which makes the cold start several times shorter than
 *   loading the runtime's full clients (docs/benchmarks.md), and pins the SDK version the tests
 *   ran with.
 * - Its own role with no managed policy: write access to its own log group only; each step
 *   adds the least it needs (lib/functions.ts).
 * - An explicit log group, one-month retention, deleted with the stack.
 */
export class StepFunction extends lambda.Function {
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
    const entry = path.join(lambdasDir, props.folder, 'handler.ts');
    super(scope, id, {
      // The folder is the asset's source; the asset itself is esbuild's output, hashed by content
      // (an unchanged bundle is not redeployed). `image` is required by the type and never used:
      // the local bundler returns true or throws.
      code: lambda.Code.fromAsset(path.join(lambdasDir, props.folder), {
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          image: DockerImage.fromRegistry('public.ecr.aws/sam/build-nodejs22.x'),
          local: new EsbuildLambdaBundling({
            entry,
            tsconfig: path.join(REPO_ROOT, 'tsconfig.json'),
            target: BUNDLE_TARGET,
            sourceMap: true,
            projectRoot: REPO_ROOT,
            alias: LAMBDA_ALIASES,
          }),
        },
      }),
      handler: 'index.handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout,
      memorySize: props.memorySize ?? 256,
      role,
      logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
    });
    this.folder = props.folder;
    logGroup.grantWrite(role);
  }
}
