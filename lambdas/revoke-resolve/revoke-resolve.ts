/**
 * Step `resolve` of the RevokeKey fleet runbook: check every input and refuse bad input before any
 * change; expand the instances (InstanceIds, a tag, or every instance launched with KeyPairName);
 * turn the keys into fingerprints; write the fleet's spec, which every child reads; and tag each
 * selected instance `reset-access:revoke-run=<this execution id>`, the one target the fan-out step
 * gives aws:executeAutomation (a parameter value or an output holds at most 512 characters, so a
 * list of instance ids cannot travel between steps; a tag target has no such limit).
 */
import { CreateTagsCommand, DescribeInstancesCommand, type EC2Client, type Filter, type Instance } from '@aws-sdk/client-ec2';
import { PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError, isAwsError } from '@common/errors';
import type { Logger } from '@common/log';
import {
  resolveRevokeAction,
  revokeSpecName,
  validateRevokeMethod,
  validateRevokeUsers,
  type RevokeKeyInputs,
  type RevokeSpec,
} from '@common/revoke';
import { REVOKE_RUN_TAG_KEY } from '@common/tags';
import { INSTANCE_ID_PATTERN, validateInstanceType, validateSubnetChoice } from '@common/validation';

/**
 * The most instances one fleet run takes: its spec (about 20 characters an id) must fit an
 * advanced parameter's 8 KB (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html);
 * a larger fleet is split by tag values or id lists.
 */
export const MAX_FLEET_INSTANCES = 250;
/** A tag key and value (EC2: 128 and 256 Unicode characters; the runbook allows no `,` or `|`). */
const TAG_KEY = /^[^,|]{1,128}$/;
const TAG_VALUE = /^[^,|]{0,256}$/;
/** The states a fleet run selects: a terminated or terminating instance has nothing to clean. */
export const SELECTED_STATES = ['pending', 'running', 'stopping', 'stopped'];

export interface ResolveRequest {
  readonly executionId: string;
  readonly instanceIds: string[];
  readonly tagKey: string;
  readonly tagValue: string;
  /** ResourceGroupName ('' when not given). */
  readonly resourceGroup?: string;
  /** The group's resource query, as the runbook's readGroup step read it (GetGroupQuery). */
  readonly groupQuery?: { readonly type: string; readonly query: string };
  readonly keys: RevokeKeyInputs;
  readonly users: unknown;
  readonly method: unknown;
  readonly subnetId: unknown;
  readonly helperInstanceType: unknown;
  /** DeleteKeyPair as given ('True' / 'False'). */
  readonly deleteKeyPair?: unknown;
}

export interface ResolveDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
}

/**
 * A resource group name as Resource Groups allows it: letters, digits, `_`, `.` and `-`, at most 300
 * characters, not starting with "AWS" in any capitalization (reserved) (botocore resource-groups
 * 2017-11-27 service-2.json, CreateGroupName and CreateGroupInput.Name).
 */
export const RESOURCE_GROUP_NAME = /^[a-zA-Z0-9_.-]{1,300}$/;

export function validateResourceGroupName(name: string): string {
  if (!RESOURCE_GROUP_NAME.test(name) || /^aws/i.test(name)) {
    throw new InvalidInputError('ResourceGroupName must be a resource group name: 1 to 300 letters, digits, "_", "." or "-", not starting with AWS');
  }
  return name;
}

/**
 * The DescribeInstances filters that select what a tag-based resource group holds (a query of type
 * TAG_FILTERS_1_0), with the semantics the Resource Groups API documents for it (botocore
 * resource-groups service-2.json, ResourceQuery.Query; https://docs.aws.amazon.com/ARG/latest/APIReference/API_ResourceQuery.html):
 * `ResourceTypeFilters` limits the types (`AWS::AllSupported` or a list, here it must take
 * `AWS::EC2::Instance`); with several tag keys a resource must match every key, and at least one
 * value of each. The query syntax is GetResources' (the same page), whose TagFilters say: "If you
 * don't specify a value for a key, the response returns all resources that are tagged with that
 * key, with any or no value" (botocore resourcegroupstaggingapi, GetResourcesInput.TagFilters).
 * DescribeInstances joins several filters with AND and a filter's values with OR ("If you specify
 * multiple filters, the filters are joined with an AND, and the request returns only results that
 * match all of the specified filters": botocore ec2 2016-11-15, shape Filter), so each tag key is one
 * `tag-key` filter, and the values are compared here (below: EC2 filter values are patterns).
 * A CloudFormation-stack group (CLOUDFORMATION_STACK_1_0) is refused: its members are the stack's
 * resources, which DescribeInstances cannot list.
 */
export function groupFilters(group: string, q: { type: string; query: string }): { filters: Filter[]; match: (i: Instance) => boolean } {
  if (q.type === 'CLOUDFORMATION_STACK_1_0') {
    throw new InvalidInputError(`ResourceGroupName ${group} is a CloudFormation stack group; choose its instances by InstanceIds or a tag`);
  }
  if (q.type !== 'TAG_FILTERS_1_0') throw new InvalidInputError(`ResourceGroupName ${group}: its query type is not TAG_FILTERS_1_0`);
  let parsed: { ResourceTypeFilters?: unknown; TagFilters?: unknown };
  try {
    parsed = JSON.parse(q.query) as typeof parsed;
  } catch {
    throw new InvalidInputError(`ResourceGroupName ${group}: its tag query is not JSON (a query over 512 characters cannot pass between the runbook's steps)`);
  }
  const types = parsed?.ResourceTypeFilters;
  if (!Array.isArray(types) || !types.some((t) => t === 'AWS::EC2::Instance' || t === 'AWS::AllSupported')) {
    throw new InvalidInputError(`ResourceGroupName ${group} holds no EC2 instances (its ResourceTypeFilters take neither AWS::EC2::Instance nor AWS::AllSupported)`);
  }
  const tagFilters = parsed.TagFilters;
  if (!Array.isArray(tagFilters) || tagFilters.length === 0) throw new InvalidInputError(`ResourceGroupName ${group}: its query has no TagFilters`);
  const wanted = tagFilters.map((f: { Key?: unknown; Values?: unknown }, i) => {
    const key = f?.Key;
    const values = f?.Values ?? [];
    if (typeof key !== 'string' || key === '' || !Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
      throw new InvalidInputError(`ResourceGroupName ${group}: TagFilters entry ${i + 1} is not {Key, Values}`);
    }
    return { key, values: values as string[] };
  });
  // EC2 filter values are patterns: "*" and "?" are wildcards and "\" escapes (EC2 Filter:
  // https://docs.aws.amazon.com/sdkfornet1/latest/apidocs/html/T_Amazon_EC2_Model_Filter.htm, "Wildcards can
  // be included in filter values ... Use a backslash to escape special characters"), while a group's
  // values are literal. So EC2 is asked only for the keys (`tag-key`, a superset; a key holding a
  // pattern character is left to the exact match), and the values are compared exactly here.
  const filters: Filter[] = wanted.filter((w) => !/[*?\\]/.test(w.key)).map((w) => ({ Name: 'tag-key', Values: [w.key] }));
  const match = (i: Instance): boolean =>
    wanted.every((w) => (i.Tags ?? []).some((t) => t.Key === w.key && (w.values.length === 0 || w.values.includes(t.Value ?? ''))));
  return { filters, match };
}

/** How the instances are chosen: ids, a tag, a resource group, or the key pair they were launched with. */
export function selectionOf(req: ResolveRequest): { text: string; filters?: Filter[]; ids?: string[]; group?: string; match?: (i: Instance) => boolean } {
  const byIds = req.instanceIds.length > 0;
  const byTag = req.tagKey !== '';
  const group = req.resourceGroup ?? '';
  if ([byIds, byTag, group !== ''].filter(Boolean).length > 1) {
    throw new InvalidInputError('Choose the instances one way: InstanceIds, TargetTagKey or ResourceGroupName, not two');
  }
  if (!byTag && req.tagValue !== '') throw new InvalidInputError('TargetTagValue needs TargetTagKey');
  const states: Filter = { Name: 'instance-state-name', Values: SELECTED_STATES };
  if (byIds) {
    req.instanceIds.forEach((id, i) => {
      if (!INSTANCE_ID_PATTERN.test(id)) throw new InvalidInputError(`InstanceIds entry ${i + 1} is not an EC2 instance id`);
    });
    return { text: `${req.instanceIds.length} instance ids`, ids: [...new Set(req.instanceIds)] };
  }
  if (byTag) {
    if (!TAG_KEY.test(req.tagKey) || !TAG_VALUE.test(req.tagValue)) throw new InvalidInputError('TargetTagKey/TargetTagValue: at most 128/256 characters, without "," or "|"');
    // "tag:<key> - The key/value combination of a tag assigned to the resource" (DescribeInstances filters,
    // https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html); no value: tag-key.
    const filter: Filter = req.tagValue !== '' ? { Name: `tag:${req.tagKey}`, Values: [req.tagValue] } : { Name: 'tag-key', Values: [req.tagKey] };
    return { text: `tag ${req.tagKey}${req.tagValue !== '' ? `=${req.tagValue}` : ''}`, filters: [filter, states] };
  }
  if (group !== '') {
    validateResourceGroupName(group);
    const states: Filter = { Name: 'instance-state-name', Values: SELECTED_STATES };
    if (!req.groupQuery) return { text: `resource group ${group}`, group };
    const { filters, match } = groupFilters(group, req.groupQuery);
    return { text: `resource group ${group}`, group, filters: [...filters, states], match };
  }
  if (req.keys.keyPairName !== '') {
    // "key-name - The name of the key pair used when the instance was launched" (same page).
    return { text: `launched with key pair ${req.keys.keyPairName}`, filters: [{ Name: 'key-name', Values: [req.keys.keyPairName] }, states] };
  }
  throw new InvalidInputError('Choose the instances: InstanceIds, TargetTagKey (and TargetTagValue), ResourceGroupName, or KeyPairName (every instance launched with it)');
}

/** Every instance id DescribeInstances answers, all pages, in the states a fleet selects. */
async function describeIds(ec2: EC2Client, selection: { filters?: Filter[]; ids?: string[]; match?: (i: Instance) => boolean }): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({ InstanceIds: selection.ids, Filters: selection.filters, NextToken: token }),
    );
    for (const r of page.Reservations ?? []) {
      for (const i of r.Instances ?? []) {
        if (i.InstanceId && SELECTED_STATES.includes(i.State?.Name ?? '') && (selection.match?.(i) ?? true)) out.push(i.InstanceId);
      }
    }
    token = page.NextToken;
  } while (token);
  return [...new Set(out)];
}

export interface ResolveResult {
  /** Undefined when the group's query is still to be read (the runbook's readGroup step): nothing written yet. */
  readonly spec?: RevokeSpec;
  readonly specName: string;
  readonly selection: string;
}

export async function resolveFleet(deps: ResolveDeps, req: ResolveRequest): Promise<ResolveResult> {
  // Every input first, before any call that changes anything.
  const selection = selectionOf(req);
  const users = validateRevokeUsers(req.users);
  const method = validateRevokeMethod(req.method);
  const subnetId = validateSubnetChoice(req.subnetId);
  const helperInstanceType = validateInstanceType(req.helperInstanceType);
  const action = await resolveRevokeAction(deps, req.keys);
  // An audit changes nothing, the key pair included (review P7).
  if (req.deleteKeyPair === 'True' && action.mode !== 'Revoke') {
    throw new InvalidInputError('DeleteKeyPair=True needs Mode=Revoke: an audit changes nothing, the key pair included');
  }
  if (req.deleteKeyPair === 'True' && req.keys.keyPairName === '') throw new InvalidInputError('DeleteKeyPair=True needs KeyPairName');
  // A resource group: every input is checked now; the instances once the group's query is read.
  if (selection.group !== undefined && !selection.filters) return { specName: revokeSpecName(req.executionId), selection: selection.text };
  let instanceIds: string[];
  try {
    instanceIds = await describeIds(deps.ec2, selection);
  } catch (err) {
    if (isAwsError(err, 'InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed')) {
      throw new InvalidInputError(`InstanceIds: ${(err as Error).message}`);
    }
    throw err;
  }
  if (selection.ids) {
    const missing = selection.ids.filter((id) => !instanceIds.includes(id));
    if (missing.length > 0) throw new InvalidInputError(`InstanceIds: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ' …' : ''} not found, or terminated`);
  }
  if (instanceIds.length === 0) throw new InvalidInputError(`No instance matches (${selection.text}); nothing was changed`);
  if (instanceIds.length > MAX_FLEET_INSTANCES) {
    throw new InvalidInputError(`${instanceIds.length} instances match (${selection.text}); one run takes at most ${MAX_FLEET_INSTANCES}: split the fleet`);
  }
  const spec: RevokeSpec = {
    version: 1,
    parentExecutionId: req.executionId,
    action,
    users,
    method,
    subnetId,
    helperInstanceType,
    instanceIds,
    selection: selection.text,
  };
  const specName = revokeSpecName(req.executionId);
  await deps.ssm.send(
    new PutParameterCommand({
      Name: specName,
      Value: JSON.stringify(spec),
      Type: 'String',
      Overwrite: true,
      // Standard (free) up to 4 KB, advanced up to 8 KB for a large fleet.
      Tier: 'Intelligent-Tiering',
      Description: `ec2-reset-access RevokeKey fleet ${req.executionId}: what every instance's run does`,
    }),
  );
  // In batches of 100 ids (a bound of our own, far below any request size limit).
  for (let i = 0; i < instanceIds.length; i += 100) {
    await deps.ec2.send(
      new CreateTagsCommand({ Resources: instanceIds.slice(i, i + 100), Tags: [{ Key: REVOKE_RUN_TAG_KEY, Value: req.executionId }] }),
    );
  }
  deps.log.info('fleet resolved', { executionId: req.executionId, instances: instanceIds.length, keys: action.fingerprints.length, mode: action.mode });
  return { spec, specName, selection: selection.text };
}
