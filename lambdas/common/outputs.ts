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

/** `items` comma-joined, or `none` when there are none. */
export function joinOrNone(items: readonly string[], separator = ','): string {
  return items.length > 0 ? items.join(separator) : 'none';
}
