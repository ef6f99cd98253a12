import { spawnSync } from 'child_process';
import * as path from 'path';
import type { ILocalBundling } from 'aws-cdk-lib';

/** The child that runs esbuild with the SDK schema plugin (see its header for why). */
export const ESBUILD_LAMBDA_SCRIPT = path.join(__dirname, 'esbuild-lambda.cjs');

export interface EsbuildLambdaProps {
  /** The handler's TypeScript file. */
  readonly entry: string;
  /** tsconfig.json: its `@common/*` path resolves the shared code. */
  readonly tsconfig: string;
  /** The esbuild target matching the Lambda runtime, e.g. `node22`. */
  readonly target: string;
  /** Write index.js.map beside the bundle (without the sources' text). */
  readonly sourceMap: boolean;
  /** Where esbuild and the SDK are resolved from: the project root. */
  readonly projectRoot: string;
  /**
   * Modules resolved to another file, e.g. the SDK's default credential chain to the Lambda's.
   * @default - none
   */
  readonly alias?: Readonly<Record<string, string>>;
}

/**
 * CDK local bundling for a step Lambda: `index.js` (+ `index.js.map`) in the asset folder, built
 * by the project's own esbuild in a child process. Never Docker: a failure throws with esbuild's
 * message instead of falling back to a container. The properties are part of the asset's cache
 * key (CDK serializes the bundling options), so a change of entry or target rebuilds.
 */
export class EsbuildLambdaBundling implements ILocalBundling {
  public readonly entry: string;
  public readonly tsconfig: string;
  public readonly target: string;
  public readonly sourceMap: boolean;
  public readonly projectRoot: string;
  public readonly alias: Readonly<Record<string, string>>;

  public constructor(props: EsbuildLambdaProps) {
    this.entry = props.entry;
    this.tsconfig = props.tsconfig;
    this.target = props.target;
    this.sourceMap = props.sourceMap;
    this.projectRoot = props.projectRoot;
    this.alias = props.alias ?? {};
  }

  public tryBundle(outputDir: string): boolean {
    const options = {
      entry: this.entry,
      outfile: path.join(outputDir, 'index.js'),
      tsconfig: this.tsconfig,
      target: this.target,
      sourceMap: this.sourceMap,
      alias: this.alias,
      projectRoot: this.projectRoot,
    };
    const run = spawnSync(process.execPath, [ESBUILD_LAMBDA_SCRIPT, JSON.stringify(options)], {
      cwd: this.projectRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 5 * 60_000,
    });
    if (run.error || run.status !== 0) {
      const why = run.error ? run.error.message : (run.stderr || run.stdout || `exit ${run.status}`).trim();
      throw new Error(`bundling ${path.relative(this.projectRoot, this.entry)} failed: ${why}`);
    }
    return true;
  }
}
