/**
 * The JSONPath subset Automation selectors use here: `$`, `.Name`, `[n]`, `['Name']`.
 * Anything else (wildcards, filters, recursive descent) is refused when the document is read.
 */

export type PathSegment = string | number;

export class SelectorSyntaxError extends Error {
  constructor(selector: string, why: string) {
    super(`Selector "${selector}" is not in the supported JSONPath subset ($.A[0].B): ${why}`);
    this.name = 'SelectorSyntaxError';
  }
}

export function parseSelector(selector: string): PathSegment[] {
  if (typeof selector !== 'string' || !selector.startsWith('$')) {
    throw new SelectorSyntaxError(String(selector), 'it must start with $');
  }
  const segments: PathSegment[] = [];
  let i = 1;
  while (i < selector.length) {
    const c = selector[i];
    if (c === '.') {
      const m = /^[A-Za-z0-9_-]+/.exec(selector.slice(i + 1));
      if (!m) throw new SelectorSyntaxError(selector, `expected a name after "." at ${i}`);
      segments.push(m[0]);
      i += 1 + m[0].length;
    } else if (c === '[') {
      const rest = selector.slice(i);
      const index = /^\[(\d+)\]/.exec(rest);
      const quoted = /^\['([^']+)'\]/.exec(rest);
      if (index) {
        segments.push(Number(index[1]));
        i += index[0].length;
      } else if (quoted) {
        segments.push(quoted[1]);
        i += quoted[0].length;
      } else {
        throw new SelectorSyntaxError(selector, `unsupported bracket expression at ${i}`);
      }
    } else {
      throw new SelectorSyntaxError(selector, `unexpected "${c}" at ${i}`);
    }
  }
  return segments;
}

export interface Selection {
  found: boolean;
  value?: unknown;
}

export function select(root: unknown, selector: string | PathSegment[]): Selection {
  const path = typeof selector === 'string' ? parseSelector(selector) : selector;
  let cur: unknown = root;
  for (const seg of path) {
    if (typeof seg === 'number') {
      if (!Array.isArray(cur) || seg >= cur.length) return { found: false };
      cur = cur[seg];
    } else {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return { found: false };
      if (!Object.prototype.hasOwnProperty.call(cur, seg)) return { found: false };
      cur = (cur as Record<string, unknown>)[seg];
    }
  }
  if (cur === undefined) return { found: false };
  return { found: true, value: cur };
}
