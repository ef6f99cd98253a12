// @ts-check
/**
 * Bundles one step Lambda with esbuild, the AWS SDK included and tree-shaken. Run by
 * lib/bundling/local-bundling.ts in a child process at synth (esbuild plugins need its async API,
 * and CDK's local bundling is synchronous):
 *
 *   node lib/bundling/esbuild-lambda.cjs '<json: entry, outfile, tsconfig, target, sourceMap>'
 *
 * Why the SDK is bundled instead of left to the runtime: a Lambda that requires
 * `@aws-sdk/client-ec2` from the runtime loads the whole client, every one of EC2's ~800
 * operations, and that is most of a cold start (about 460 ms in a fresh Node 20 here). Bundled
 * from the SDK's ES modules, esbuild keeps only the operations and shapes a handler reaches.
 *
 * One obstacle, removed by the plugin below: the SDK's schema modules
 * (`dist-es/schemas/schemas_0.js`) describe each shape as an array that holds trait objects with
 * computed keys, `{ [_xN]: _m }`, where `_xN` is a module constant `const _xN = "xmlName"`.
 * esbuild cannot prove that a computed key has no side effect unless it can inline the constant,
 * and it inlines only strings short enough to save bytes; so it kept every shape of the service
 * (2,208 of EC2's 2,545). The plugin writes the constant's literal into the key,
 * `{ ["xmlName"]: _m }`, the same object, and esbuild then drops the shapes nothing references.
 * It touches only those schema files, only computed keys naming a top-level string constant, and
 * fails the build on a computed key it cannot resolve, so a new SDK layout stops the synth
 * instead of silently growing the bundles.
 *
 * Two more choices, both for the cold start:
 * - `alias`: the caller maps `@aws-sdk/credential-provider-node` (the default credential chain)
 *   to lambdas/common/lambda-credentials.ts, the sources a Lambda has (see that file).
 * - The source map keeps the mappings of the project's own files only. Node parses the whole map
 *   when the bundle loads (`--enable-source-maps`), and the SDK's mappings were most of it; a
 *   stack trace still names our TypeScript lines, and an SDK frame its bundle position.
 */
'use strict';

const fs = require('fs');
const path = require('path');

/** The SDK's generated schema modules, the only files the plugin rewrites. */
const SCHEMA_FILE = /[\\/]@aws-sdk[\\/][a-z0-9-]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/;

/**
 * Replace each computed key `[_name]:` by the literal of `const _name = "..."` in the same module.
 * @param {string} source the module text
 * @param {string} file its path, for the error message
 * @returns {{ text: string, replaced: number }}
 */
function inlineSchemaKeys(source, file) {
  /** @type {Map<string, string>} */
  const constants = new Map();
  for (const m of source.matchAll(/^const (_\w+) = ("[^"\\\n]*");$/gm)) constants.set(m[1], m[2]);
  let replaced = 0;
  /** @type {Set<string>} */
  const unresolved = new Set();
  // A trait object's first key follows its brace, the others a comma (and maybe a line break).
  const text = source.replace(/(\{ |,\s*)\[(_\w+)\]: /g, (/** @type {string} */ whole, /** @type {string} */ before, /** @type {string} */ name) => {
    const literal = constants.get(name);
    if (literal === undefined) {
      unresolved.add(name);
      return whole;
    }
    replaced += 1;
    return `${before}[${literal}]: `;
  });
  if (unresolved.size > 0) {
    throw new Error(
      `${file}: computed keys that name no top-level string constant: ${[...unresolved].slice(0, 5).join(', ')}; ` +
        'the SDK schema layout changed, update lib/bundling/esbuild-lambda.cjs',
    );
  }
  return { text, replaced };
}

/** @type {import('esbuild').Plugin} */
const schemaKeysPlugin = {
  name: 'inline-sdk-schema-keys',
  setup(build) {
    build.onLoad({ filter: SCHEMA_FILE }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      return { contents: inlineSchemaKeys(source, args.path).text, loader: 'js' };
    });
  },
};

/**
 * @typedef {object} LambdaBuild
 * @property {string} entry the handler's TypeScript file
 * @property {string} outfile where the bundle goes (its map beside it)
 * @property {string} tsconfig resolves the `@common/*` path
 * @property {string} target e.g. node22
 * @property {boolean} sourceMap write index.js.map (no sources content; own files only)
 * @property {Record<string, string>} [alias] module name to replacement file
 * @property {string} [projectRoot] the map names sources from here (default: the working directory)
 */

/**
 * @param {LambdaBuild} options
 * @returns {Promise<import('esbuild').Metafile>}
 */
async function buildLambda(options) {
  const esbuild = require('esbuild');
  const result = await esbuild.build({
    entryPoints: [options.entry],
    outfile: options.outfile,
    bundle: true,
    platform: 'node',
    target: options.target,
    format: 'cjs',
    // The SDK's ES modules: esbuild tree-shakes ESM, not the SDK's one-file CommonJS build.
    mainFields: ['module', 'main'],
    minify: true,
    sourcemap: options.sourceMap,
    sourcesContent: false,
    tsconfig: options.tsconfig,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [schemaKeysPlugin],
    alias: options.alias,
    // The SDK loads `node:http` and `node:async_hooks` with import() when first needed. In a
    // CommonJS bundle, a require() in a promise does the same without going through the ES
    // module loader (and runs where import() is unavailable, as in the twin's test sandbox).
    supported: { 'dynamic-import': false },
  });
  if (options.sourceMap) {
    const mapFile = `${options.outfile}.map`;
    const map = keepOwnMappings(JSON.parse(fs.readFileSync(mapFile, 'utf8')));
    // Name each source from the project root (lambdas/preflight/handler.ts), not from wherever
    // the bundle was written: the same code gives the same asset on every machine, and a stack
    // trace in Lambda reads /var/task/lambdas/... instead of the build machine's folders.
    const projectRoot = options.projectRoot ?? process.cwd();
    map.sources = map.sources.map((s) => path.relative(projectRoot, path.resolve(path.dirname(options.outfile), s)).split(path.sep).join('/'));
    fs.writeFileSync(mapFile, JSON.stringify(map));
  }
  return result.metafile;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Decode one mappings segment (base64 VLQ) into its numbers.
 * @param {string} segment
 * @returns {number[]}
 */
function decodeVlq(segment) {
  /** @type {number[]} */
  const values = [];
  let value = 0;
  let shift = 0;
  for (const ch of segment) {
    const digit = BASE64.indexOf(ch);
    if (digit < 0) throw new Error(`source map: invalid mapping character ${JSON.stringify(ch)}`);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

/**
 * @param {number[]} values
 * @returns {string}
 */
function encodeVlq(values) {
  let out = '';
  for (const v of values) {
    let rest = v < 0 ? (-v << 1) | 1 : v << 1;
    do {
      let digit = rest & 31;
      rest >>>= 5;
      if (rest > 0) digit |= 32;
      out += BASE64[digit];
    } while (rest > 0);
  }
  return out;
}

/**
 * A source map (version 3) reduced to the segments whose source is not under node_modules, with
 * `sources` and `names` compacted to what those segments use.
 * @param {{ version: number, sources: string[], names: string[], mappings: string, [k: string]: unknown }} map
 */
function keepOwnMappings(map) {
  const own = map.sources.map((s) => !/(^|\/)node_modules\//.test(s));
  /** @type {Map<number, number>} */
  const sourceIndex = new Map();
  /** @type {Map<number, number>} */
  const nameIndex = new Map();
  // Absolute state while reading, and the last written state for the relative encoding.
  let src = 0;
  let line = 0;
  let col = 0;
  let name = 0;
  let outSrc = 0;
  let outLine = 0;
  let outCol = 0;
  let outName = 0;
  const lines = map.mappings.split(';').map((text) => {
    let genCol = 0;
    let outGenCol = 0;
    /** @type {string[]} */
    const kept = [];
    for (const segment of text === '' ? [] : text.split(',')) {
      const v = decodeVlq(segment);
      genCol += v[0];
      if (v.length < 4) continue;
      src += v[1];
      line += v[2];
      col += v[3];
      if (v.length >= 5) name += v[4];
      if (!own[src]) continue;
      if (!sourceIndex.has(src)) sourceIndex.set(src, sourceIndex.size);
      const s = /** @type {number} */ (sourceIndex.get(src));
      const out = [genCol - outGenCol, s - outSrc, line - outLine, col - outCol];
      if (v.length >= 5) {
        if (!nameIndex.has(name)) nameIndex.set(name, nameIndex.size);
        const n = /** @type {number} */ (nameIndex.get(name));
        out.push(n - outName);
        outName = n;
      }
      kept.push(encodeVlq(out));
      outGenCol = genCol;
      outSrc = s;
      outLine = line;
      outCol = col;
    }
    return kept.join(',');
  });
  const content = /** @type {unknown[] | undefined} */ (map.sourcesContent);
  return {
    ...map,
    ...(Array.isArray(content) ? { sourcesContent: [...sourceIndex.keys()].map((i) => content[i]) } : {}),
    sources: [...sourceIndex.keys()].map((i) => map.sources[i]),
    names: [...nameIndex.keys()].map((i) => map.names[i]),
    mappings: lines.join(';'),
  };
}

module.exports = { inlineSchemaKeys, buildLambda, keepOwnMappings, decodeVlq, encodeVlq, SCHEMA_FILE };

if (require.main === module) {
  /** @type {LambdaBuild} */
  const options = JSON.parse(process.argv[2] ?? '{}');
  for (const key of ['entry', 'outfile', 'tsconfig', 'target']) {
    if (typeof (/** @type {Record<string, unknown>} */ (options))[key] !== 'string') {
      process.stderr.write(`esbuild-lambda: missing option ${key}\n`);
      process.exit(2);
    }
  }
  fs.mkdirSync(path.dirname(options.outfile), { recursive: true });
  buildLambda(options).then(
    () => process.exit(0),
    (/** @type {Error} */ err) => {
      process.stderr.write(`esbuild-lambda: ${err.message}\n`);
      process.exit(1);
    },
  );
}
