/** The JSON report the inject-key Command document prints as the last line of its output. */

export interface ReportChange {
  user: string;
  uid?: number;
  file: string;
  action: 'created' | 'appended' | 'already-present';
}

export interface InjectReport {
  version: number;
  status: 'ok' | 'error';
  error?: string;
  changes: ReportChange[];
  warnings?: string[];
  [other: string]: unknown;
}

/**
 * The report from the command's standard output: its last non-empty line, as JSON. Undefined when
 * there is none. (SSM truncates StandardOutputContent at 24,000 characters from the start; the
 * script prints little before its report.)
 */
export function parseReport(stdout: string | undefined): InjectReport | undefined {
  const last = (stdout ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '').pop();
  if (!last) return undefined;
  try {
    const value = JSON.parse(last) as InjectReport;
    if (!value || typeof value !== 'object' || (value.status !== 'ok' && value.status !== 'error')) return undefined;
    if (!Array.isArray(value.changes)) value.changes = [];
    return value;
  } catch {
    return undefined;
  }
}
