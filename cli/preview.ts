/**
 * What a reset will do to an instance, read from AWS before it starts: the summary the user
 * confirms. Pure: built from the DescribeInstances / DescribeAddresses / DescribeVolumes answers.
 */
import type { Instance, Volume } from '@aws-sdk/client-ec2';
import { CliError, EXIT } from './exit-codes';

/**
 * Order of magnitude of EBS snapshot storage, US dollars per GB-month: the standard tier in
 * us-east-1 on https://aws.amazon.com/ebs/pricing/ (about $0.05; other Regions differ a little).
 * A volume's first snapshot holds every block written to it ("When you have only one snapshot of
 * a volume, the snapshot is always the same size as the blocks written to the volume",
 * https://docs.aws.amazon.com/ebs/latest/userguide/archiving-guidelines.html), so the volume's
 * size is an upper bound; a later one holds only the blocks changed since.
 */
export const SNAPSHOT_USD_PER_GB_MONTH = 0.05;

export type BackupMethod = 'Snapshot' | 'Image' | 'None';

/** The way in the run will take, as preflight will decide it (lambdas/preflight/method.ts). */
export interface MethodGuess {
  readonly chosen: 'Online' | 'VolumeSwap' | 'UserData' | 'unknown';
  readonly reason: string;
}

export interface Preview {
  instanceId: string;
  name?: string;
  state: string;
  willStop: boolean;
  publicIp?: string;
  elasticIp: boolean;
  newPublicIp: boolean;
  rootVolumeId?: string;
  rootVolumeSizeGiB?: number;
  backup: BackupMethod;
  method: MethodGuess;
  /** Upper bound of the backup's monthly storage cost, USD (0 for None). */
  backupUsdPerMonthAtMost: number;
  lockedBy?: string;
}

export function buildPreview(
  instance: Instance,
  elasticIp: boolean,
  rootVolume: Volume | undefined,
  backup: BackupMethod,
  method: MethodGuess = { chosen: 'VolumeSwap', reason: '' },
): Preview {
  const id = instance.InstanceId ?? '?';
  const state = instance.State?.Name ?? 'unknown';
  if (state !== 'running' && state !== 'stopped') {
    throw new CliError(`instance ${id} is ${state}: a reset needs it running or stopped; wait for it to settle`, EXIT.refused);
  }
  const size = rootVolume?.Size;
  const publicIp = instance.PublicIpAddress;
  return {
    instanceId: id,
    name: instance.Tags?.find((t) => t.Key === 'Name')?.Value,
    state,
    // The online method adds the key through Run Command on the running instance: no stop.
    willStop: state === 'running' && method.chosen !== 'Online',
    publicIp,
    elasticIp,
    // An instance without an Elastic IP gets a new public IPv4 address when it starts again
    // (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html#concepts-public-addresses:
    // "We release the public IP address for your instance when it's stopped").
    newPublicIp: state === 'running' && method.chosen !== 'Online' && !!publicIp && !elasticIp,
    rootVolumeId: rootVolume?.VolumeId,
    rootVolumeSizeGiB: size,
    backup,
    method,
    backupUsdPerMonthAtMost: backup === 'None' || size === undefined ? 0 : round2(size * SNAPSHOT_USD_PER_GB_MONTH),
    lockedBy: instance.Tags?.find((t) => t.Key === 'reset-access:lock')?.Value,
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The summary's lines, for a person. */
export function previewLines(p: Preview): string[] {
  const lines = [`Instance ${p.instanceId}${p.name ? ` (${p.name})` : ''}: ${p.state}`];
  if (p.method.chosen === 'Online') lines.push(`  - method Online: the key goes in through Run Command on the running instance, no stop (${p.method.reason})`);
  else if (p.method.chosen === 'unknown') lines.push(`  - method: preflight decides (${p.method.reason})`);
  else lines.push(`  - method ${p.method.chosen}${p.method.reason ? ` (${p.method.reason})` : ''}`);
  if (p.method.chosen !== 'Online') lines.push(
    p.willStop
      ? '  - it will be STOPPED while its root volume is repaired on a helper instance, then started again'
      : '  - it is stopped and stays stopped; its root volume is repaired on a helper instance',
  );
  if (p.newPublicIp) lines.push(`  - its public IP ${p.publicIp} is released at stop; it gets a NEW public IP at start (no Elastic IP)`);
  else if (p.elasticIp) lines.push('  - it keeps its address (Elastic IP)');
  const vol = p.rootVolumeId ? `root volume ${p.rootVolumeId}${p.rootVolumeSizeGiB !== undefined ? `, ${p.rootVolumeSizeGiB} GiB` : ''}` : 'root volume';
  if (p.backup === 'None') lines.push(`  - no backup of the ${vol} (BackupMethod None)`);
  else
    lines.push(
      `  - backup: ${p.backup === 'Image' ? 'an AMI' : 'an EBS snapshot'} of the ${vol}, kept until you delete it (\`ec2-reset-access backups\`): at most about $${p.backupUsdPerMonthAtMost.toFixed(2)} per month`,
    );
  lines.push('  - cost of the run itself: the helper instance and a temporary VPC for a few minutes (cents)');
  if (p.lockedBy) lines.push(`  - NOTE: it carries the lock tag of execution ${p.lockedBy}; preflight refuses if that run is still going`);
  return lines;
}
