/**
 * Which way back in runs (the runbook's Method parameter), decided in preflight before anything
 * changes. Auto takes Online when the instance can be fixed without a stop, else the volume swap;
 * Auto never takes UserData (it stops the instance twice, and the user chooses it).
 */
import { DescribeInstanceInformationCommand, type InstanceInformation, type SSMClient } from '@aws-sdk/client-ssm';
import { RefusedError } from '@common/errors';
import type { ChosenMethod, PlanMethod } from '@common/plan';
import type { Method } from '@common/validation';

/**
 * The first SSM Agent that passes Command document parameters as SSM_<Name> environment variables
 * (`interpolationType: ENV_VAR`), which the inject-key script reads and nothing else: "Verify SSM
 * Agent version is 3.3.2746.0 or later"
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-troubleshooting.html).
 * An older agent would run the script with no parameter at all.
 */
export const MIN_ONLINE_AGENT_VERSION = '3.3.2746.0';

/**
 * Compares two dotted agent versions numerically, component by component (3.3.10 > 3.3.9; a
 * missing component counts as 0). Returns undefined when either is not digits and dots.
 */
export function compareVersions(a: string, b: string): number | undefined {
  const parse = (v: string): number[] | undefined => (/^\d+(\.\d+)*$/.test(v) ? v.split('.').map((x) => Number(x)) : undefined);
  const x = parse(a.trim());
  const y = parse(b.trim());
  if (!x || !y) return undefined;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * The instance as Systems Manager knows it, or undefined when it is not a managed node.
 * DescribeInstanceInformation with the `InstanceIds` filter (InstanceInformationStringFilter,
 * botocore data/ssm/2014-11-06/service-2.json; the legacy InstanceInformationFilterList is not
 * used: the two cannot be combined).
 */
export async function managedInstance(ssm: SSMClient, instanceId: string): Promise<InstanceInformation | undefined> {
  const out = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] }));
  return out.InstanceInformationList?.find((i) => i.InstanceId === instanceId);
}

/**
 * A value an instance reports about itself (its agent may say anything), as it may appear in a
 * reason: one of the values the SSM model allows, or `(other)`. Keeps the preflight Payload free
 * of any character of the branch token (handler.ts).
 */
function known(value: string | undefined, allowed: readonly string[]): string {
  return value !== undefined && allowed.includes(value) ? value : '(other)';
}
/** An agent version as it may appear in a reason: digits and dots only. */
function shownVersion(version: string): string {
  return /^\d+(\.\d+){0,3}$/.test(version) ? version : '(not a version)';
}

/** What the online method lacks on this instance; empty when it can run. */
export function onlineGaps(state: string, info: InstanceInformation | undefined): string[] {
  const gaps: string[] = [];
  if (state !== 'running') gaps.push(`${known(state, ['pending', 'stopping', 'stopped', 'shutting-down', 'terminated'])}, not running`);
  if (!info) {
    gaps.push('not a managed node (no SSM Agent registered)');
    return gaps;
  }
  // PingStatus and PlatformType: the enums of the SSM service model (botocore data/ssm/2014-11-06/service-2.json).
  if (info.PingStatus !== 'Online') gaps.push(`SSM Agent ${known(info.PingStatus, ['ConnectionLost', 'Inactive'])}, not Online`);
  if (info.PlatformType !== 'Linux') gaps.push(`platform ${known(info.PlatformType, ['Windows', 'MacOS'])}, not Linux`);
  const version = info.AgentVersion ?? '';
  const cmp = compareVersions(version, MIN_ONLINE_AGENT_VERSION);
  if (cmp === undefined || cmp < 0) {
    gaps.push(`SSM Agent ${version ? shownVersion(version) : '(no version)'} is older than ${MIN_ONLINE_AGENT_VERSION} (parameters as environment variables)`);
  }
  return gaps;
}

/**
 * The method that runs and why. Throws RefusedError for an explicit Online the instance does not
 * qualify for (naming every gap). UserData runs only when asked for (its own checks are in
 * preflight: the user data's size; nothing else can tell whether the image runs cloud-init).
 */
export function chooseMethod(instanceId: string, asked: Method, state: string, info: InstanceInformation | undefined): PlanMethod {
  if (asked === 'UserData') {
    return { chosen: 'UserData', reason: 'asked for (Method=UserData): the key is added by cloud-init at the next boot; two stop/start cycles' };
  }
  if (asked === 'VolumeSwap') return { chosen: 'VolumeSwap', reason: 'asked for (Method=VolumeSwap)' };
  const gaps = onlineGaps(state, info);
  if (asked === 'Online') {
    if (gaps.length > 0) {
      throw new RefusedError(
        `Refused: instance ${instanceId} cannot use Method=Online: ${gaps.join('; ')}. Run with Method=VolumeSwap (or Auto) instead.`,
      );
    }
    return { chosen: 'Online', reason: `asked for (Method=Online); SSM Agent ${shownVersion(info?.AgentVersion ?? '')} Online on Linux` };
  }
  const chosen: ChosenMethod = gaps.length === 0 ? 'Online' : 'VolumeSwap';
  return chosen === 'Online'
    ? { chosen, reason: `Auto: running, SSM Agent ${shownVersion(info?.AgentVersion ?? '')} Online on Linux` }
    : { chosen, reason: `Auto: ${gaps.join('; ')}` };
}
