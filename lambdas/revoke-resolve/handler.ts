/** Step `resolve` of the RevokeKey fleet runbook. */
import { ec2 } from '@common/clients/ec2';
import { ssm } from '@common/clients/ssm';
import { InvalidInputError } from '@common/errors';
import { createLogger } from '@common/log';
import { joinWithin, outputFields } from '@common/outputs';
import { revokeInputsOf } from '@common/revoke';
import { requireObject, validateExecutionId } from '@common/validation';
import { resolveFleet, type ResolveRequest } from './revoke-resolve';

export interface ResolveOutput {
  /** How many instances the run takes, and how they were chosen. */
  Instances: number;
  Selection: string;
  /** The instance ids (cut to fit: the spec parameter holds them all). */
  InstanceIds: string;
  /** How many keys are revoked, and the mode. */
  Keys: number;
  Mode: string;
  /** `/reset-access/revoke/<execution id>/spec`, which every child reads. */
  SpecParameter: string;
  /** What the runbook does next: `|next:readGroup|` (a resource group's query to read) or `|next:fanOut|`. */
  Next: string;
}

export const OUTPUT_FIELDS = outputFields<ResolveOutput>()(['Instances', 'Selection', 'InstanceIds', 'Keys', 'Mode', 'SpecParameter', 'Next']);

const log = createLogger('reset-access-revoke-resolve');

/** InstanceIds as the runbook passes a StringList: a JSON list, or one comma-separated string. */
export function instanceIdsOf(value: unknown): string[] {
  if (value === undefined || value === '') return [];
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
  if (!list || !list.every((x) => typeof x === 'string')) throw new InvalidInputError('InstanceIds must be a list of instance ids');
  return (list as string[]).map((x) => x.trim()).filter((x) => x !== '');
}

export function parseResolveRequest(event: unknown): ResolveRequest {
  const o = requireObject(event);
  const text = (field: string): string => {
    const v = o[field];
    if (v === undefined) return '';
    if (typeof v !== 'string') throw new InvalidInputError(`${field} is not a string`);
    return v.trim();
  };
  const groupQueryType = text('GroupQueryType');
  return {
    executionId: validateExecutionId(o.ExecutionId),
    instanceIds: instanceIdsOf(o.InstanceIds),
    tagKey: text('TargetTagKey'),
    tagValue: text('TargetTagValue'),
    resourceGroup: text('ResourceGroupName'),
    // resolveGroup's input: the query readGroup read with GetGroupQuery (its Type and Query).
    ...(groupQueryType !== '' ? { groupQuery: { type: groupQueryType, query: typeof o.GroupQuery === 'string' ? o.GroupQuery : '' } } : {}),
    keys: revokeInputsOf(o),
    users: o.Users ?? '',
    method: o.Method ?? 'Auto',
    subnetId: o.SubnetId ?? 'CreateNewVPC',
    helperInstanceType: o.HelperInstanceType ?? 't3.small',
    deleteKeyPair: o.DeleteKeyPair ?? 'False',
  };
}

export async function handler(event: unknown): Promise<ResolveOutput> {
  const request = parseResolveRequest(event);
  const { spec, specName, selection } = await resolveFleet({ ec2, ssm, log }, request);
  if (!spec) {
    return { Instances: 0, Selection: selection.slice(0, 120), InstanceIds: '', Keys: 0, Mode: '', SpecParameter: specName, Next: '|next:readGroup|' };
  }
  return {
    Instances: spec.instanceIds.length,
    Selection: spec.selection.slice(0, 120),
    InstanceIds: joinWithin(spec.instanceIds, 200),
    Keys: spec.action.fingerprints.length,
    Mode: spec.action.mode,
    SpecParameter: specName,
    Next: '|next:fanOut|',
  };
}
