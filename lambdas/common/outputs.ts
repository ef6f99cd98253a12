/** Helpers for the flat outputs every handler returns. */

type Missing<T, K extends readonly PropertyKey[]> = Exclude<keyof T, K[number]>;

/**
 * The list of a handler's output keys, checked against its output interface both ways: a key not
 * in `T` does not compile, and neither does a list that misses one of `T`'s keys.
 *
 *     export const OUTPUT_FIELDS = outputFields<PreflightOutput>()(['RootVolumeId', ...]);
 */
export function outputFields<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    keys: K & (Missing<T, K> extends never ? unknown : { missingOutputFields: Missing<T, K> }),
  ): readonly (keyof T & string)[] => keys;
}

/**
 * Every Automation step output value is at most 512 characters (the SSM API model, botocore
 * data/ssm/2014-11-06/service-2.json: AutomationParameterValue), `Payload` of a Lambda step
 * included: a handler's whole JSON result must fit.
 */
export const MAX_OUTPUT_CHARS = 512;

/**
 * `items` comma-joined within `maxChars`: as many whole items as fit, then `…(+N more)`;
 * `none` when there are none.
 */
export function joinWithin(items: readonly string[], maxChars: number, separator = ','): string {
  const all = joinOrNone(items, separator);
  if (all.length <= maxChars) return all;
  for (let n = items.length - 1; n >= 0; n--) {
    const marker = `…(+${items.length - n} more)`;
    const head = items.slice(0, n).join(separator);
    const text = n > 0 ? `${head}${separator}${marker}` : marker;
    if (text.length <= maxChars) return text;
  }
  return `…(+${items.length} more)`.slice(0, maxChars);
}

/** `items` comma-joined, or `none` when there are none. */
export function joinOrNone(items: readonly string[], separator = ','): string {
  return items.length > 0 ? items.join(separator) : 'none';
}
