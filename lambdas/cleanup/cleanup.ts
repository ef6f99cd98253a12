/**
 * Step `cleanup` (and `cleanupAfterRestore`): remove what this execution created, then release
 * the lock. Idempotent: what is gone already is skipped. Only resources named in this execution's
 * plan (or, for the helper, tagged with this execution's id) are touched.
 */
import {
  DeleteInternetGatewayCommand,
  DeleteRouteTableCommand,
  DeleteSecurityGroupCommand,
  DeleteSubnetCommand,
  DeleteVpcCommand,
  DescribeInstancesCommand,
  DescribeRouteTablesCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { findVolume, liveAttachment, pollUntil, type Clock } from '@common/ec2';
import { isAwsError, PlanError, RefusedError } from '@common/errors';
import type { Logger } from '@common/log';
import { removeLockTag } from '@common/lock-tag';
import { deletePlan, readPlan, type Plan } from '@common/plan';
import { isOurs, ownedFilters } from '@common/tags';
import type { StepInput } from '@common/validation';

export interface CleanupDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly log: Logger;
  readonly clock: Clock;
  /** How long to wait for the helper to terminate before throwing (the step then retries). */
  readonly terminateBudgetMs?: number;
  /** How long a delete may fail with DependencyViolation before throwing. */
  readonly dependencyBudgetMs?: number;
}

export const TERMINATE_BUDGET_MS = 180_000;
/**
 * How long a delete may keep failing with DependencyViolation: the helper's network interface can
 * outlive the instance's 'terminated' state for a while. 180 + 2 × 25 s stays within the Lambda's
 * timeout; past it the step fails and is retried (maxAttempts 3).
 */
export const DEPENDENCY_BUDGET_MS = 25_000;
const POLL_MS = 5_000;

/** Returns the ids removed by this call. */
export async function cleanup(deps: CleanupDeps, input: StepInput): Promise<string[]> {
  const plan = await readPlan(deps.ssm, input.instanceId);
  if (!plan) {
    deps.log.info('no plan: nothing to clean up', { instanceId: input.instanceId });
    return [];
  }
  if (plan.executionId !== input.executionId) {
    deps.log.warn('plan of another execution: not touched', { instanceId: input.instanceId, owner: plan.executionId });
    // Not a success: what this execution created is not known any more (its plan was replaced).
    throw new PlanError(`Cannot clean up for execution ${input.executionId}: the plan of ${input.instanceId} belongs to execution ${plan.executionId}; not touched. Look for a helper and network tagged with ${input.executionId}`);
  }
  const removed: string[] = [];
  await removeHelpers(deps, plan, removed);
  const c = plan.created;
  const { ec2 } = deps;
  if (c.securityGroupId) {
    await ignoreMissing(removed, c.securityGroupId, () => whenFree(deps, c.securityGroupId as string, () => ec2.send(new DeleteSecurityGroupCommand({ GroupId: c.securityGroupId }))), 'InvalidGroup.NotFound');
  }
  if (c.routeTableId) {
    await removeRouteTable(ec2, c.routeTableId, removed);
  }
  if (c.internetGatewayId) {
    if (c.vpcId) {
      try {
        await ec2.send(new DetachInternetGatewayCommand({ InternetGatewayId: c.internetGatewayId, VpcId: c.vpcId }));
      } catch (err) {
        if (!isAwsError(err, 'Gateway.NotAttached', 'InvalidInternetGatewayID.NotFound', 'InvalidVpcID.NotFound')) throw err;
      }
    }
    await ignoreMissing(removed, c.internetGatewayId, () => ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId: c.internetGatewayId })), 'InvalidInternetGatewayID.NotFound');
  }
  if (c.subnetId) {
    await ignoreMissing(removed, c.subnetId, () => whenFree(deps, c.subnetId as string, () => ec2.send(new DeleteSubnetCommand({ SubnetId: c.subnetId }))), 'InvalidSubnetID.NotFound');
  }
  if (c.vpcId) {
    await ignoreMissing(removed, c.vpcId, () => ec2.send(new DeleteVpcCommand({ VpcId: c.vpcId })), 'InvalidVpcID.NotFound');
  }
  // Last change to the customer's resources: this run's lock tag (only its own value is removed),
  // then the lock record. The tag goes while the record still refuses another run.
  await removeLockTag(ec2, plan.instanceId, plan.instance.rootVolumeId, plan.executionId);
  if (await deletePlan(deps.ssm, input.instanceId, input.executionId)) {
    deps.log.info('lock released', { instanceId: input.instanceId });
  }
  deps.log.info('cleaned up', { instanceId: input.instanceId, removed: removed.join(',') });
  return removed;
}

/** Runs `call`, again every 5 s while it fails with DependencyViolation, up to the budget. */
async function whenFree(deps: CleanupDeps, id: string, call: () => Promise<unknown>): Promise<void> {
  await pollUntil(deps.clock, `${id} to be free of dependencies`, deps.dependencyBudgetMs ?? DEPENDENCY_BUDGET_MS, POLL_MS, async () => {
    try {
      await call();
      return true;
    } catch (err) {
      if (isAwsError(err, 'DependencyViolation')) return undefined;
      throw err;
    }
  });
}

async function ignoreMissing(removed: string[], id: string, call: () => Promise<unknown>, ...missing: string[]): Promise<void> {
  try {
    await call();
    removed.push(id);
  } catch (err) {
    if (!isAwsError(err, ...missing)) throw err;
  }
}

async function helperInstances(ec2: EC2Client, plan: Plan): Promise<Instance[]> {
  const ids = new Set<string>();
  const found: Instance[] = [];
  const add = (list: Instance[]): void => {
    for (const i of list) {
      if (i.InstanceId && !ids.has(i.InstanceId)) {
        ids.add(i.InstanceId);
        found.push(i);
      }
    }
  };
  if (plan.created.helperInstanceId) {
    try {
      const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [plan.created.helperInstanceId] }));
      add(out.Reservations?.flatMap((r) => r.Instances ?? []) ?? []);
    } catch (err) {
      if (!isAwsError(err, 'InvalidInstanceID.NotFound')) throw err;
    }
  }
  // A helper launched just before its id reached the plan is found by its tags.
  const tagged = await ec2.send(new DescribeInstancesCommand({ Filters: ownedFilters('helper', plan.executionId) }));
  add(tagged.Reservations?.flatMap((r) => r.Instances ?? []) ?? []);
  return found;
}

async function removeHelpers(deps: CleanupDeps, plan: Plan, removed: string[]): Promise<void> {
  const { ec2 } = deps;
  const helpers = (await helperInstances(ec2, plan)).filter((i) => {
    if (isOurs(i.Tags, plan.executionId)) return true;
    deps.log.warn('helper id in the plan is not tagged as ours: not terminated', { helperId: i.InstanceId });
    return false;
  });
  const live = helpers.filter((i) => i.State?.Name !== 'terminated');
  if (live.length === 0) return;

  // Never terminate a helper that still holds the target's root volume.
  const volume = await findVolume(ec2, plan.instance.rootVolumeId);
  const holder = volume ? liveAttachment(volume) : undefined;
  if (holder && live.some((i) => i.InstanceId === holder.instanceId)) {
    throw new RefusedError(
      `Volume ${plan.instance.rootVolumeId} is ${holder.state} to helper ${holder.instanceId}; detach it (restore does) before the helper is terminated`,
    );
  }

  const ids = live.map((i) => i.InstanceId as string);
  const toTerminate = live.filter((i) => i.State?.Name !== 'shutting-down').map((i) => i.InstanceId as string);
  if (toTerminate.length > 0) await ec2.send(new TerminateInstancesCommand({ InstanceIds: toTerminate }));
  deps.log.info('terminating helper', { helperIds: ids.join(',') });
  await pollUntil(deps.clock, `helper ${ids.join(', ')} to terminate`, deps.terminateBudgetMs ?? TERMINATE_BUDGET_MS, POLL_MS, async () => {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
    const states = out.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.State?.Name) ?? [];
    return states.every((s) => s === 'terminated') ? true : undefined;
  });
  removed.push(...ids);
}

async function removeRouteTable(ec2: EC2Client, routeTableId: string, removed: string[]): Promise<void> {
  let associations: string[] = [];
  try {
    const out = await ec2.send(new DescribeRouteTablesCommand({ RouteTableIds: [routeTableId] }));
    associations = (out.RouteTables?.[0]?.Associations ?? [])
      .filter((a) => !a.Main && a.RouteTableAssociationId)
      .map((a) => a.RouteTableAssociationId as string);
  } catch (err) {
    if (isAwsError(err, 'InvalidRouteTableID.NotFound')) return;
    throw err;
  }
  for (const id of associations) {
    try {
      await ec2.send(new DisassociateRouteTableCommand({ AssociationId: id }));
    } catch (err) {
      if (!isAwsError(err, 'InvalidAssociationID.NotFound')) throw err;
    }
  }
  await ignoreMissing(removed, routeTableId, () => ec2.send(new DeleteRouteTableCommand({ RouteTableId: routeTableId })), 'InvalidRouteTableID.NotFound');
}
