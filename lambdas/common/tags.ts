/** The tags on everything this product creates (docs/architecture.md, "Tags on everything created"). */
import type { ResourceType, Tag, TagSpecification } from '@aws-sdk/client-ec2';

export const MANAGED_BY_KEY = 'reset-access:managed-by';
export const MANAGED_BY_VALUE = 'ec2-reset-access';
export const EXECUTION_ID_KEY = 'reset-access:execution-id';
export const INSTANCE_ID_KEY = 'reset-access:instance-id';
export const ROLE_KEY = 'reset-access:role';

export type ResourceRole =
  | 'helper'
  | 'vpc'
  | 'subnet'
  | 'internet-gateway'
  | 'route-table'
  | 'security-group'
  | 'backup';

/** The five tags of a resource of `role` created by `executionId` for `instanceId`. */
export function tagsFor(role: ResourceRole, executionId: string, instanceId: string): Tag[] {
  return [
    { Key: MANAGED_BY_KEY, Value: MANAGED_BY_VALUE },
    { Key: EXECUTION_ID_KEY, Value: executionId },
    { Key: INSTANCE_ID_KEY, Value: instanceId },
    { Key: ROLE_KEY, Value: role },
    { Key: 'Name', Value: `reset-access-${role}-${instanceId}` },
  ];
}

/** One TagSpecification for a create call. */
export function tagSpec(
  resourceType: ResourceType,
  role: ResourceRole,
  executionId: string,
  instanceId: string,
): TagSpecification {
  return { ResourceType: resourceType, Tags: tagsFor(role, executionId, instanceId) };
}

/** Describe filters that find the resources of `role` created by `executionId`. */
export function ownedFilters(role: ResourceRole, executionId: string): { Name: string; Values: string[] }[] {
  return [
    { Name: `tag:${MANAGED_BY_KEY}`, Values: [MANAGED_BY_VALUE] },
    { Name: `tag:${EXECUTION_ID_KEY}`, Values: [executionId] },
    { Name: `tag:${ROLE_KEY}`, Values: [role] },
  ];
}

/** True when `tags` say the resource is this product's and (when given) of this execution. */
export function isOurs(tags: Tag[] | undefined, executionId?: string): boolean {
  const get = (k: string): string | undefined => tags?.find((t) => t.Key === k)?.Value;
  if (get(MANAGED_BY_KEY) !== MANAGED_BY_VALUE) return false;
  return executionId === undefined || get(EXECUTION_ID_KEY) === executionId;
}

/** True when `tags` mark the resource as this execution's resource of `role`. */
export function isOursWithRole(tags: Tag[] | undefined, executionId: string, role: ResourceRole): boolean {
  return isOurs(tags, executionId) && tags?.find((t) => t.Key === ROLE_KEY)?.Value === role;
}

/**
 * The run's lock tag on the customer's instance and its root volume (issue 11): its value is the
 * execution id. Preflight adds it right after it took the lock record; cleanup and restore remove
 * it last. The step roles may change the customer's instance or volume only while it carries this
 * key (IAM condition ec2:ResourceTag/reset-access:lock, lib/functions.ts).
 */
export const LOCK_TAG_KEY = 'reset-access:lock';

/** The lock tag's value on `tags`, or undefined. */
export function lockTagOf(tags: Tag[] | undefined): string | undefined {
  return tags?.find((t) => t.Key === LOCK_TAG_KEY)?.Value;
}

/**
 * The tag a RevokeKey fleet run puts on each instance it selected, `reset-access:revoke-run =
 * <fleet execution id>`: the target of its fan-out step (aws:executeAutomation Targets
 * `tag:reset-access:revoke-run`). The gather step removes it.
 */
export const REVOKE_RUN_TAG_KEY = 'reset-access:revoke-run';
