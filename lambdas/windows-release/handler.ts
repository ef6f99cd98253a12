/** Step `releaseWindows` (issue 15). */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { createLogger } from '@common/log';
import { joinWithin, outputFields } from '@common/outputs';
import { validateStepInput } from '@common/validation';
import { releaseWindows } from './windows-release';

/**
 * The Payload (at most 512 characters): the agent the script found and what it changed, cut with
 * `…(+N more)`. The full report is the command's output (CommandId on HelperInstanceId).
 */
export interface WindowsReleaseOutput {
  Agent: string;
  FilesChanged: string;
  Warnings: string;
  CommandId: string;
  HelperInstanceId: string;
}

export const OUTPUT_FIELDS = outputFields<WindowsReleaseOutput>()(['Agent', 'FilesChanged', 'Warnings', 'CommandId', 'HelperInstanceId']);

const log = createLogger('reset-access-windows-release');

/** Only printable ASCII and no '|' (the branch tokens' character) from the helper's report. */
function plain(text: string, max: number): string {
  const s = text.replace(/[^\x20-\x7e]/g, '?').replace(/\|/g, '/');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export async function handler(event: unknown): Promise<WindowsReleaseOutput> {
  const input = validateStepInput(event);
  const r = await releaseWindows({ ec2, ssm, log }, input);
  const agent = r.report.agent ? `${r.report.agent}${r.report.agentVersion ? ` ${r.report.agentVersion}` : ''}` : 'unknown';
  return {
    Agent: plain(agent, 60),
    FilesChanged: joinWithin(r.report.changes.map((c) => plain(`${c.action} ${c.path}`, 120)), 180),
    Warnings: joinWithin(r.report.warnings.map((w) => plain(w, 100)), 120, '; '),
    CommandId: r.commandId,
    HelperInstanceId: r.helperId,
  };
}
