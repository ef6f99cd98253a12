import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Metafile } from 'esbuild';
import { EsbuildLambdaBundling } from '../../lib/bundling/local-bundling';
import { BUNDLE_TARGET, LAMBDA_ALIASES, REPO_ROOT } from '../../lib/step-function';

/**
 * lib/bundling: the SDK schema plugin, the source map reduced to our own files, and what a real
 * bundle holds (and leaves out). The bundles running against the emulator are the twin's tests.
 */

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bundler = require('../../lib/bundling/esbuild-lambda.cjs') as {
  inlineSchemaKeys(source: string, file: string): { text: string; replaced: number };
  keepOwnMappings(map: RawMap): RawMap;
  decodeVlq(segment: string): number[];
  encodeVlq(values: number[]): string;
  buildLambda(options: Record<string, unknown>): Promise<Metafile>;
  SCHEMA_FILE: RegExp;
};

interface RawMap {
  version: number;
  sources: string[];
  names: string[];
  mappings: string;
  sourcesContent?: unknown[];
}

jest.setTimeout(120_000);

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reset-access-bundling-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('inlineSchemaKeys', () => {
  const schema = [
    'const _xN = "xmlName";',
    'const _eQN = "ec2QueryName";',
    'const n0 = "com.amazonaws.ec2";',
    'export var A$ = [3, n0, "A", 0, [_xN], [[0, { [_eQN]: `Min`,',
    '                [_xN]: _m }]]];',
    'export var B$ = [3, n0, "B", 0, [], [[1, { [_xN]: "x" }]]];',
    '',
  ].join('\n');

  test('writes the literal of the constant into every computed key, first and following', () => {
    const out = bundler.inlineSchemaKeys(schema, 'schemas_0.js');
    expect(out.replaced).toBe(3);
    expect(out.text).toContain('{ ["ec2QueryName"]: `Min`,\n                ["xmlName"]: _m }');
    expect(out.text).toContain('{ ["xmlName"]: "x" }');
    expect(out.text).not.toMatch(/\[_\w+\]:/);
    // Nothing else moves: the references outside keys stay as they were.
    expect(out.text).toContain('[_xN], [[0,');
    expect(out.text.split('\n').slice(0, 3)).toEqual(schema.split('\n').slice(0, 3));
  });

  test('a key naming no top-level string constant stops the build, naming the file', () => {
    expect(() => bundler.inlineSchemaKeys('const _a = "a";\nexport var X = [{ [_b]: 1 }];\n', '/x/schemas_0.js')).toThrow(
      /\/x\/schemas_0\.js: computed keys that name no top-level string constant: _b/,
    );
  });

  test('resolves every computed key of the installed SDK clients the Lambdas use', () => {
    for (const client of ['client-ec2', 'client-ssm', 'client-kms', 'client-auto-scaling']) {
      const file = path.join(REPO_ROOT, 'node_modules', '@aws-sdk', client, 'dist-es', 'schemas', 'schemas_0.js');
      expect(bundler.SCHEMA_FILE.test(file)).toBe(true);
      const out = bundler.inlineSchemaKeys(fs.readFileSync(file, 'utf8'), file);
      expect(out.replaced).toBeGreaterThan(10);
      expect(out.text).not.toMatch(/\[_\w+\]:/);
    }
  });
});

describe('source map reduced to our own files', () => {
  test('VLQ: encode then decode gives the numbers back', () => {
    const values = [0, 1, -1, 15, -16, 16, 31, 32, -33, 1023, -4096, 123456, -987654];
    expect(bundler.decodeVlq(bundler.encodeVlq(values))).toEqual(values);
    expect(bundler.encodeVlq([0, 0, 16, 1])).toBe('AAgBC');
  });

  /**
   * Every mapped position of a map, absolute: generated line/column to source/line/column/name.
   * Written apart from keepOwnMappings on purpose: the test's own reading of the format.
   */
  function positions(map: RawMap): Map<string, string> {
    const out = new Map<string, string>();
    let src = 0;
    let line = 0;
    let col = 0;
    let name = 0;
    map.mappings.split(';').forEach((text, genLine) => {
      let genCol = 0;
      for (const seg of text ? text.split(',') : []) {
        const v = bundler.decodeVlq(seg);
        genCol += v[0];
        if (v.length < 4) continue;
        src += v[1];
        line += v[2];
        col += v[3];
        if (v.length >= 5) name += v[4];
        out.set(`${genLine}:${genCol}`, `${map.sources[src]}:${line}:${col}${v.length >= 5 ? `:${map.names[name]}` : ''}`);
      }
    });
    return out;
  }

  test('a bundle of our code and a package: same positions for ours, none for the package', async () => {
    const dir = path.join(tmp, 'map');
    fs.mkdirSync(path.join(dir, 'node_modules', 'pkg'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'node_modules', 'pkg', 'index.js'), 'exports.twice = function twice(n) { const doubled = n * 2; return doubled; };\n');
    fs.writeFileSync(path.join(dir, 'util.ts'), 'export function shout(s: string): string {\n  const loud = s.toUpperCase();\n  return loud + "!";\n}\n');
    fs.writeFileSync(
      path.join(dir, 'entry.ts'),
      'import { twice } from "pkg";\nimport { shout } from "./util";\nexport function handler(x: number): string {\n  return shout(String(twice(x)));\n}\n',
    );
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [path.join(dir, 'entry.ts')],
      outfile: path.join(dir, 'out.js'),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      minify: true,
      sourcemap: true,
      logLevel: 'silent',
    });
    const full = JSON.parse(fs.readFileSync(path.join(dir, 'out.js.map'), 'utf8')) as RawMap;
    const reduced = bundler.keepOwnMappings(full);
    expect(full.sources.some((s) => s.includes('node_modules'))).toBe(true);
    expect(reduced.sources.sort()).toEqual(full.sources.filter((s) => !s.includes('node_modules')).sort());
    expect(reduced.sourcesContent).toHaveLength(reduced.sources.length);

    const before = positions(full);
    const after = positions(reduced);
    const ours = [...before].filter(([, target]) => !target.includes('node_modules'));
    expect(ours.length).toBeGreaterThan(5);
    expect([...after].sort()).toEqual(ours.sort());
    // Renamed identifiers keep their original names (the map's `names`), re-indexed.
    const named = ours.filter(([, target]) => target.split(':').length === 4);
    expect(named.length).toBeGreaterThan(0);
    expect(reduced.names.length).toBeLessThanOrEqual(full.names.length);
  });
});

describe('a step bundle (preflight: the most clients)', () => {
  let meta: Metafile;
  let code: string;
  let outfile: string;

  beforeAll(async () => {
    outfile = path.join(tmp, 'preflight', 'index.js');
    meta = await bundler.buildLambda({
      entry: path.join(REPO_ROOT, 'lambdas', 'preflight', 'handler.ts'),
      outfile,
      tsconfig: path.join(REPO_ROOT, 'tsconfig.json'),
      target: BUNDLE_TARGET,
      sourceMap: true,
      alias: LAMBDA_ALIASES,
      projectRoot: REPO_ROOT,
    });
    code = fs.readFileSync(outfile, 'utf8');
  });

  const bytesFrom = (pattern: RegExp): number =>
    Object.entries(meta.outputs[Object.keys(meta.outputs).find((o) => o.endsWith('index.js')) as string].inputs)
      .filter(([file]) => pattern.test(file))
      .reduce((sum, [, v]) => sum + v.bytesInOutput, 0);

  test('holds the SDK, tree-shaken: EC2 brings the shapes of its few operations, not its 800', () => {
    expect(code).not.toMatch(/require\("@aws-sdk\//);
    // The whole EC2 schema module is about 540 KB minified; unused shapes would be most of it.
    const ec2 = bytesFrom(/@aws-sdk\/client-ec2\//);
    expect(ec2).toBeGreaterThan(5_000);
    expect(ec2).toBeLessThan(150_000);
    for (const unused of ['CreateVpnConnectionRequest', 'AcceptAddressTransferRequest', 'PurchaseReservedInstancesOffering']) {
      expect(code).not.toContain(unused);
    }
    expect(code).toContain('DescribeInstances');
  });

  test('carries the Lambda credential provider, not the default chain and its STS and SSO clients', () => {
    expect(bytesFrom(/lambdas\/common\/lambda-credentials\.ts$/)).toBeGreaterThan(0);
    expect(bytesFrom(/@aws-sdk\/credential-provider-env\//)).toBeGreaterThan(0);
    for (const left of [/credential-provider-node\//, /credential-provider-ini\//, /credential-provider-sso\//, /nested-clients\//, /credential-provider-imds\//]) {
      expect(bytesFrom(left)).toBe(0);
    }
  });

  test('is the same bytes wherever it is built: the map names sources from the project root', async () => {
    const elsewhere = path.join(tmp, 'deeper', 'still', 'preflight', 'index.js');
    await bundler.buildLambda({
      entry: path.join(REPO_ROOT, 'lambdas', 'preflight', 'handler.ts'),
      outfile: elsewhere,
      tsconfig: path.join(REPO_ROOT, 'tsconfig.json'),
      target: BUNDLE_TARGET,
      sourceMap: true,
      alias: LAMBDA_ALIASES,
      projectRoot: REPO_ROOT,
    });
    expect(fs.readFileSync(elsewhere, 'utf8')).toBe(code);
    const map = fs.readFileSync(`${elsewhere}.map`, 'utf8');
    expect(map).toBe(fs.readFileSync(`${outfile}.map`, 'utf8'));
    expect((JSON.parse(map) as RawMap).sources).toContain('lambdas/preflight/handler.ts');
  });

  test('a stack trace names our TypeScript file and line, through the map', () => {
    const { spawnSync } = require('child_process') as typeof import('child_process');
    const run = spawnSync(
      process.execPath,
      ['--enable-source-maps', '-e', "require(process.argv[1]).handler({}).catch((e) => process.stdout.write(e.stack))", outfile],
      { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' } },
    );
    expect(run.stdout).toMatch(/^InvalidInputError: /);
    expect(run.stdout).toMatch(/lambdas\/common\/validation\.ts:\d+:\d+/);
    expect(run.stdout).toMatch(/lambdas\/preflight\/handler\.ts:\d+:\d+/);
  });

  test('has no import(): the SDK\'s lazy loads of node:http are require() calls in a promise', () => {
    expect(code).not.toMatch(/[^\w.$]import\(/);
    expect(code).toMatch(/Promise\.resolve\(\)\.then\(\(\)=>\w+\(require\("node:http"\)\)\)/);
  });

  test('does not carry node-forge: preflight only checks a public key', () => {
    expect(bytesFrom(/node_modules\/node-forge\//)).toBe(0);
    expect(bytesFrom(/lambdas\/common\/public-key\.ts$/)).toBeGreaterThan(0);
  });

  test('loads and runs alone, with no node_modules beside it: a bad request is refused by our code', async () => {
    const lonely = path.join(os.tmpdir(), `reset-access-lonely-${process.pid}`);
    fs.mkdirSync(lonely, { recursive: true });
    try {
      fs.copyFileSync(outfile, path.join(lonely, 'index.js'));
      const { spawnSync } = await import('child_process');
      const run = spawnSync(
        process.execPath,
        ['-e', "require('./index.js').handler({}).then(() => process.stdout.write('accepted'), (e) => process.stdout.write(e.name + ': ' + e.message))"],
        { cwd: lonely, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1', NODE_PATH: '' } },
      );
      expect(run.stderr).not.toMatch(/Cannot find module/);
      expect(run.stdout).toMatch(/^InvalidInputError: /);
    } finally {
      fs.rmSync(lonely, { recursive: true, force: true });
    }
  });
});

describe('EsbuildLambdaBundling', () => {
  const bundlingOf = (entry: string, sourceMap: boolean): EsbuildLambdaBundling =>
    new EsbuildLambdaBundling({ entry, tsconfig: path.join(REPO_ROOT, 'tsconfig.json'), target: BUNDLE_TARGET, sourceMap, projectRoot: REPO_ROOT });

  test('a handler that does not compile fails the synth with esbuild\'s message, naming the file', () => {
    const dir = path.join(tmp, 'broken');
    fs.mkdirSync(dir, { recursive: true });
    const entry = path.join(dir, 'handler.ts');
    fs.writeFileSync(entry, 'export const handler = async ( => 1;\n');
    const bundling = bundlingOf(entry, false);
    const out = path.join(dir, 'out');
    expect(() => bundling.tryBundle(out)).toThrow(/bundling .*broken\/handler\.ts failed: .*handler\.ts:1/s);
    expect(fs.existsSync(path.join(out, 'index.js'))).toBe(false);
  });

  test('writes index.js and its map into the output folder and says it bundled', () => {
    const dir = path.join(tmp, 'ok');
    fs.mkdirSync(dir, { recursive: true });
    const entry = path.join(dir, 'handler.ts');
    fs.writeFileSync(entry, 'export const handler = async (): Promise<string> => "ok";\n');
    const bundling = bundlingOf(entry, true);
    const out = path.join(dir, 'out');
    expect(bundling.tryBundle(out)).toBe(true);
    expect(fs.readdirSync(out).sort()).toEqual(['index.js', 'index.js.map']);
  });
});
