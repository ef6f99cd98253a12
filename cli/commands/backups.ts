/**
 * `ec2-reset-access backups [--delete]`: what the product left on purpose (README, "What a run
 * costs and what it leaves behind"): backup snapshots and images, tagged
 * `reset-access:managed-by=ec2-reset-access` and `reset-access:role=backup`
 * (lambdas/common/tags.ts, lambdas/backup-and-detach), and the generated private keys under
 * /ec2rl/openssh/ whose description the inject-key step writes as `ec2-reset-access: ...`
 * (lambdas/inject-key/inject-key.ts; AWSSupport-ResetAccess uses the same path, so only ours are
 * listed). Key values are never read: DescribeParameters gives names and dates only.
 */
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Filter,
  type Image,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { DeleteParameterCommand, DescribeParametersCommand, GetAutomationExecutionCommand, GetParameterCommand, type ParameterMetadata, type SSMClient } from '@aws-sdk/client-ssm';
import { awsErrorName } from '../aws';
import { isTerminal } from '../execution';
import { EXECUTION_ID_KEY, INSTANCE_ID_KEY, MANAGED_BY_KEY, MANAGED_BY_VALUE, ROLE_KEY } from '../../lambdas/common/tags';
import { KEY_PATH, lockParameterName } from '../../lambdas/common/names';
import { formatAge, table } from '../format';
import { CliError, EXIT, type ExitCode } from '../exit-codes';
import type { CommonOptions, Io } from '../io';

export interface BackupsOptions extends CommonOptions {
  readonly delete?: boolean;
  readonly yes?: boolean;
}

export interface LeftItem {
  kind: 'snapshot' | 'image' | 'key-parameter';
  id: string;
  instanceId?: string;
  executionId?: string;
  created?: string;
  ageText: string;
  sizeGiB?: number;
  /** For an image: its snapshots (deleted with it). */
  snapshotIds?: string[];
}

const BACKUP_FILTERS: Filter[] = [
  { Name: `tag:${MANAGED_BY_KEY}`, Values: [MANAGED_BY_VALUE] },
  { Name: `tag:${ROLE_KEY}`, Values: ['backup'] },
];
const tag = (tags: { Key?: string; Value?: string }[] | undefined, k: string): string | undefined => tags?.find((t) => t.Key === k)?.Value;

/** The product's leftovers from the three listings; an image's snapshots go under the image. */
export function leftovers(images: Image[], snapshots: Snapshot[], keys: ParameterMetadata[], now: Date): LeftItem[] {
  const items: LeftItem[] = [];
  const ofImages = new Set<string>();
  for (const im of images) {
    const snaps = (im.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId).filter((s): s is string => !!s);
    snaps.forEach((s) => ofImages.add(s));
    const created = im.CreationDate ? new Date(im.CreationDate) : undefined;
    items.push({
      kind: 'image',
      id: im.ImageId ?? '?',
      instanceId: tag(im.Tags, INSTANCE_ID_KEY),
      executionId: tag(im.Tags, EXECUTION_ID_KEY),
      created: created?.toISOString(),
      ageText: formatAge(created, now),
      sizeGiB: (im.BlockDeviceMappings ?? []).reduce((n, b) => n + (b.Ebs?.VolumeSize ?? 0), 0),
      snapshotIds: snaps,
    });
  }
  for (const s of snapshots) {
    if (ofImages.has(s.SnapshotId ?? '')) continue;
    items.push({
      kind: 'snapshot',
      id: s.SnapshotId ?? '?',
      instanceId: tag(s.Tags, INSTANCE_ID_KEY),
      executionId: tag(s.Tags, EXECUTION_ID_KEY),
      created: s.StartTime?.toISOString(),
      ageText: formatAge(s.StartTime, now),
      sizeGiB: s.VolumeSize,
    });
  }
  for (const k of keys) {
    if (!(k.Description ?? '').startsWith('ec2-reset-access')) continue;
    items.push({
      kind: 'key-parameter',
      id: k.Name ?? '?',
      instanceId: (k.Name ?? '').split('/')[3],
      executionId: /execution ([0-9a-f-]{36})/.exec(k.Description ?? '')?.[1],
      created: k.LastModifiedDate?.toISOString(),
      ageText: formatAge(k.LastModifiedDate, now),
    });
  }
  return items;
}

/** The ids of items whose instance is locked or whose execution has not ended. */
async function inUseIds(ssm: SSMClient, items: LeftItem[]): Promise<Set<string>> {
  const locked = new Map<string, boolean>();
  const running = new Map<string, boolean>();
  const isLocked = async (instanceId: string | undefined): Promise<boolean> => {
    if (!instanceId) return false;
    if (!locked.has(instanceId)) {
      try {
        await ssm.send(new GetParameterCommand({ Name: lockParameterName(instanceId) }));
        locked.set(instanceId, true);
      } catch (err) {
        if (awsErrorName(err) !== 'ParameterNotFound') throw err;
        locked.set(instanceId, false);
      }
    }
    return locked.get(instanceId) as boolean;
  };
  const isRunning = async (executionId: string | undefined): Promise<boolean> => {
    if (!executionId) return false;
    if (!running.has(executionId)) {
      try {
        const e = await ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: executionId }));
        running.set(executionId, !isTerminal(e.AutomationExecution?.AutomationExecutionStatus));
      } catch (err) {
        if (awsErrorName(err) !== 'AutomationExecutionNotFoundException') throw err;
        running.set(executionId, false);
      }
    }
    return running.get(executionId) as boolean;
  };
  const ids = new Set<string>();
  for (const i of items) if ((await isLocked(i.instanceId)) || (await isRunning(i.executionId))) ids.add(i.id);
  return ids;
}

async function list(ssm: SSMClient, ec2: EC2Client): Promise<{ images: Image[]; snapshots: Snapshot[]; keys: ParameterMetadata[] }> {
  const images: Image[] = [];
  const snapshots: Snapshot[] = [];
  const keys: ParameterMetadata[] = [];
  let token: string | undefined;
  do {
    const out = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: BACKUP_FILTERS, NextToken: token }));
    images.push(...(out.Images ?? []));
    token = out.NextToken;
  } while (token);
  do {
    const out = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: BACKUP_FILTERS, NextToken: token }));
    snapshots.push(...(out.Snapshots ?? []));
    token = out.NextToken;
  } while (token);
  do {
    const out = await ssm.send(
      new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Path', Option: 'Recursive', Values: [`/${KEY_PATH}`] }], NextToken: token, MaxResults: 50 }),
    );
    keys.push(...(out.Parameters ?? []));
    token = out.NextToken;
  } while (token);
  return { images, snapshots, keys };
}

export async function backups(o: BackupsOptions, io: Io): Promise<ExitCode> {
  const { ssm, ec2 } = io.clients(o);
  const found = await list(ssm, ec2);
  const items = leftovers(found.images, found.snapshots, found.keys, new Date(io.now()));
  if (!o.json || !o.delete) {
    if (o.json) io.out(`${JSON.stringify({ items })}\n`);
    else if (items.length === 0) io.out('Nothing left: no backup snapshot or image, no key parameter of ec2-reset-access.\n');
    else
      io.out(
        `${table([
          ['kind', 'id', 'instance', 'age', 'size'],
          ...items.map((i) => [i.kind, i.id, i.instanceId ?? '?', i.ageText, i.sizeGiB !== undefined ? `${i.sizeGiB} GiB` : '']),
        ])}\n`,
      );
  }
  if (!o.delete || items.length === 0) {
    if (o.json && o.delete) io.out(`${JSON.stringify({ items, deleted: [] })}\n`);
    return EXIT.ok;
  }
  if (!o.yes) {
    if (!io.stdinIsTTY) throw new CliError('not deleting: stdin is not a terminal, so there is no one to confirm; pass --yes', EXIT.refused);
    if (!(await io.confirm(`Delete these ${items.length} backups and key parameters?`))) throw new CliError('not deleting: you declined', EXIT.refused);
  }
  // C2: never what a run still going may need: an item of an instance with a lock record, or of an
  // execution that has not ended.
  const inUse = await inUseIds(ssm, items);
  const deletable = items.filter((i) => !inUse.has(i.id));
  const deleted: string[] = [];
  // Images first: a snapshot that backs a registered image cannot be deleted before it.
  for (const i of deletable.filter((x) => x.kind === 'image')) {
    await ec2.send(new DeregisterImageCommand({ ImageId: i.id }));
    deleted.push(i.id);
    for (const s of i.snapshotIds ?? []) {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: s }));
      deleted.push(s);
    }
  }
  for (const i of deletable.filter((x) => x.kind === 'snapshot')) {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: i.id }));
    deleted.push(i.id);
  }
  for (const i of deletable.filter((x) => x.kind === 'key-parameter')) {
    await ssm.send(new DeleteParameterCommand({ Name: i.id }));
    deleted.push(i.id);
  }
  const skipped = [...inUse];
  if (o.json) io.out(`${JSON.stringify({ items, deleted, skippedInUse: skipped })}\n`);
  else io.out(`Deleted ${deleted.length}: ${deleted.join(', ')}${skipped.length ? `\nKept, in use by a run not finished: ${skipped.join(', ')}` : ''}\n`);
  return EXIT.ok;
}
