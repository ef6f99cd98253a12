/**
 * AWS's own service models as shipped with the preinstalled AWS CLI v1 (botocore's data
 * directory), and a small generic validator driven by them: the twin checks each Automation API
 * request against the operation's input shape, and the tests check each answer against its
 * output shape, with the same limits AWS publishes (required members, types, enums, min/max
 * lengths, counts and values, patterns).
 *
 * The model's `pattern` strings are Java regular expressions (AWS's services are written in Java);
 * the ones the SSM Automation shapes use (character classes, `\p{L}`-style Unicode classes,
 * alternation, anchors) mean the same in JavaScript with the `u` flag. A pattern JavaScript cannot
 * compile is reported as a problem of the validator, never silently skipped. As the API reference
 * describes a pattern constraint, the value must match the whole pattern ("Pattern: ..."):
 * patterns without anchors are anchored here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface ShapeRef {
  readonly shape: string;
}
export interface Shape {
  readonly type: string;
  readonly members?: Record<string, ShapeRef>;
  readonly required?: readonly string[];
  readonly member?: ShapeRef;
  readonly key?: ShapeRef;
  readonly value?: ShapeRef;
  readonly enum?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly pattern?: string;
  readonly exception?: boolean;
}
export interface Operation {
  readonly input?: ShapeRef;
  readonly output?: ShapeRef;
  readonly errors?: readonly ShapeRef[];
}
export interface ServiceModel {
  readonly metadata: Record<string, unknown>;
  readonly operations: Record<string, Operation>;
  readonly shapes: Record<string, Shape>;
}

let dataDir: string | undefined;
const cache = new Map<string, ServiceModel>();

/** botocore's data directory (the AWS CLI's Python package). */
export function botocoreDataDir(): string {
  if (dataDir) return dataDir;
  const py = spawnSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`botocore (shipped with the AWS CLI) not found: ${py.stderr}`);
  dataDir = join(py.stdout.trim(), 'data');
  return dataDir;
}

/** The newest model of a service (`ssm`, `ec2`). */
export function serviceModel(service: string): ServiceModel {
  const known = cache.get(service);
  if (known) return known;
  const dir = join(botocoreDataDir(), service);
  const latest = readdirSync(dir).sort().pop() as string;
  const file = join(dir, latest, 'service-2.json');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : gunzipSync(readFileSync(`${file}.gz`)).toString('utf8');
  const model = JSON.parse(text) as ServiceModel;
  cache.set(service, model);
  return model;
}

/** One violation: where (a path like `Parameters.PublicKey[0]`) and what. */
export interface ShapeProblem {
  readonly path: string;
  readonly problem: string;
}

const patternCache = new Map<string, RegExp | Error>();

function compilePattern(pattern: string): RegExp | Error {
  const known = patternCache.get(pattern);
  if (known) return known;
  let re: RegExp | Error;
  try {
    re = new RegExp(`^(?:${pattern})$`, 'u');
  } catch (e) {
    re = e as Error;
  }
  patternCache.set(pattern, re);
  return re;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Every way `value` (JSON, as the JSON 1.1 protocol carries it: timestamps as epoch seconds,
 * blobs as base64) departs from `shapeName` in `model`. `direction` 'input' checks what a service
 * checks of a request; 'output' the same of an answer (AWS documents the same constraints for both).
 */
export function validateShape(model: ServiceModel, shapeName: string, value: unknown, path = ''): ShapeProblem[] {
  const problems: ShapeProblem[] = [];
  const here = (p: string) => problems.push({ path: path || '(top)', problem: p });
  const shape = model.shapes[shapeName];
  if (!shape) {
    here(`the model has no shape ${shapeName}`);
    return problems;
  }
  const lengthCheck = (n: number, what: string) => {
    if (shape.min !== undefined && n < shape.min) here(`${what} ${n} is under the minimum ${shape.min} (${shapeName})`);
    if (shape.max !== undefined && n > shape.max) here(`${what} ${n} is over the maximum ${shape.max} (${shapeName})`);
  };
  switch (shape.type) {
    case 'structure': {
      if (!isObject(value)) {
        here(`expected an object (${shapeName}), got ${Array.isArray(value) ? 'a list' : typeof value}`);
        break;
      }
      for (const r of shape.required ?? []) {
        if (value[r] === undefined || value[r] === null) problems.push({ path: join2(path, r), problem: `required member ${r} is missing (${shapeName})` });
      }
      for (const [k, v] of Object.entries(value)) {
        const m = shape.members?.[k];
        if (!m) {
          problems.push({ path: join2(path, k), problem: `${k} is not a member of ${shapeName}` });
          continue;
        }
        if (v === null || v === undefined) continue;
        problems.push(...validateShape(model, m.shape, v, join2(path, k)));
      }
      break;
    }
    case 'list': {
      if (!Array.isArray(value)) {
        here(`expected a list (${shapeName}), got ${typeof value}`);
        break;
      }
      lengthCheck(value.length, 'list length');
      value.forEach((v, i) => problems.push(...validateShape(model, (shape.member as ShapeRef).shape, v, `${path}[${i}]`)));
      break;
    }
    case 'map': {
      if (!isObject(value)) {
        here(`expected a map (${shapeName}), got ${Array.isArray(value) ? 'a list' : typeof value}`);
        break;
      }
      const entries = Object.entries(value);
      lengthCheck(entries.length, 'map size');
      for (const [k, v] of entries) {
        problems.push(...validateShape(model, (shape.key as ShapeRef).shape, k, `${path}{key ${k.slice(0, 60)}}`));
        problems.push(...validateShape(model, (shape.value as ShapeRef).shape, v, join2(path, k)));
      }
      break;
    }
    case 'string': {
      if (typeof value !== 'string') {
        here(`expected a string (${shapeName}), got ${typeof value}`);
        break;
      }
      // Lengths in characters as AWS counts them (Unicode code points).
      lengthCheck([...value].length, 'length');
      if (shape.enum && !shape.enum.includes(value)) here(`value is not one of ${shape.enum.join(', ')} (${shapeName})`);
      if (shape.pattern !== undefined) {
        const re = compilePattern(shape.pattern);
        if (re instanceof Error) here(`the validator cannot compile the pattern of ${shapeName}: ${re.message}`);
        else if (!re.test(value)) here(`value does not match the pattern ${shape.pattern} (${shapeName})`);
      }
      break;
    }
    case 'integer':
    case 'long': {
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        here(`expected an integer (${shapeName}), got ${JSON.stringify(value)?.slice(0, 40)}`);
        break;
      }
      lengthCheck(value, 'value');
      break;
    }
    case 'double':
    case 'float':
      if (typeof value !== 'number') here(`expected a number (${shapeName})`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') here(`expected a boolean (${shapeName}), got ${typeof value}`);
      break;
    case 'timestamp':
      // The JSON 1.1 protocol sends timestamps as epoch seconds (botocore's serializer; the
      // parser also reads ISO 8601 strings, which no service here sends).
      if (typeof value !== 'number' || !Number.isFinite(value)) here(`expected a timestamp in epoch seconds (${shapeName}), got ${typeof value}`);
      break;
    case 'blob':
      if (typeof value !== 'string') here(`expected base64 text (${shapeName})`);
      break;
    default:
      here(`the validator does not know the type ${shape.type} of ${shapeName}`);
  }
  return problems;
}

function join2(path: string, member: string): string {
  return path ? `${path}.${member}` : member;
}

/** The operation's input or output shape name. */
export function operationShape(model: ServiceModel, operation: string, which: 'input' | 'output'): string | undefined {
  return model.operations[operation]?.[which]?.shape;
}
