/** Environment variables, read once at module load so a missing one fails the cold start. */

/** The value of `name`; throws naming the variable when it is missing or empty. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') {
    throw new Error(`Missing environment variable ${name}: the stack sets it on this function`);
  }
  return value;
}
