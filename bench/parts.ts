/**
 * Loading the parts of the project the benchmark measures, each on its own: when one is missing
 * or broken, the figures that need it are reported as not measured, with the reason, and the
 * others are still measured. (A static import would make one missing part stop the whole run.)
 */
import * as fs from 'fs';
import * as path from 'path';
import { PROJECT_ROOT } from './keygen';

export class PartMissing extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartMissing';
  }
}

/** require() a project module by its path without extension, e.g. `local/twin`. */
export function loadPart<T>(relative: string, exportsNeeded: readonly string[]): T {
  const base = path.join(PROJECT_ROOT, relative);
  if (!['.ts', '.js', '/index.ts'].some((ext) => fs.existsSync(base + ext))) {
    throw new PartMissing(`${relative}.ts is not in the tree yet`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(base) as Record<string, unknown>;
  const missing = exportsNeeded.filter((name) => mod[name] === undefined);
  if (missing.length > 0) {
    throw new PartMissing(`${relative}.ts does not export ${missing.join(', ')} yet`);
  }
  return mod as T;
}
