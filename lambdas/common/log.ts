/**
 * A tiny structured JSON logger. It accepts only scalar fields (ids, states, counts), never an
 * object, so a payload body (and with it a private key) cannot be logged by accident. As a last
 * guard, a value that looks like key material is replaced.
 */

export type LogValue = string | number | boolean | undefined;
export type LogFields = Readonly<Record<string, LogValue>>;

const KEY_MATERIAL = /PRIVATE KEY|openssh-key-v1|b3BlbnNzaC1rZXktdjE|AAAA[A-Za-z0-9+/]{40,}/;

function scrub(value: LogValue): LogValue {
  if (typeof value === 'string') {
    if (KEY_MATERIAL.test(value)) return '[redacted]';
    return value.length > 512 ? `${value.slice(0, 512)}…` : value;
  }
  return value;
}

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** A logger whose every line carries `service`. */
export function createLogger(service: string): Logger {
  const write = (level: string, message: string, fields: LogFields = {}): void => {
    const line: Record<string, LogValue> = { level, service, timestamp: new Date().toISOString() };
    line.message = scrub(message);
    for (const [k, v] of Object.entries(fields)) line[k] = scrub(v);
    // console.log is what the Lambda runtime ships to CloudWatch Logs.
    console.log(JSON.stringify(line));
  };
  return {
    info: (m, f) => write('INFO', m, f),
    warn: (m, f) => write('WARN', m, f),
    error: (m, f) => write('ERROR', m, f),
  };
}

/** The name and message of an error, for logging. */
export function errorFields(err: unknown): LogFields {
  if (err instanceof Error) return { errorName: err.name, errorMessage: err.message };
  return { errorName: typeof err };
}
