/**
 * AWS's own API models, as shipped with the AWS CLI (botocore's data directory): the independent
 * reference for the statuses, errors, filters and fields the step Lambdas rely on.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Model = { operations: Record<string, any>; shapes: Record<string, any> };

const DATA = (() => {
  const py = spawnSync('python3', ['-c', 'import botocore,os;print(os.path.dirname(botocore.__file__))'], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`botocore (shipped with the AWS CLI) not found: ${py.stderr}`);
  return path.join(py.stdout.trim(), 'data');
})();

/** The newest model of a service (`ec2`, `ssm`). */
export function botocoreModel(service: string): Model {
  const dir = path.join(DATA, service);
  const latest = fs.readdirSync(dir).sort().pop() as string;
  const file = path.join(dir, latest, 'service-2.json');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : zlib.gunzipSync(fs.readFileSync(`${file}.gz`)).toString('utf8');
  return JSON.parse(text) as Model;
}

/** The filter names an operation's `Filters` member documents (`<code>name</code> - ...`). */
export function documentedFilters(model: Model, operation: string): string[] {
  const input = model.shapes[model.operations[operation].input.shape];
  const doc = String(input.members.Filters.documentation ?? '');
  return [...doc.matchAll(/<li>\s*<p>\s*<code>([a-z0-9.:-]+)<\/code>/g)].map((m) => m[1]);
}
