/**
 * The plan record is the runbook's durable state, but it is an SSM String parameter: anyone
 * who may write `/reset-access/locks/*` can change it during a run. The steps must not let a
 * changed plan move a root volume somewhere it should not go.
 *
 * IAM already limits AttachVolume's instance side to instances tagged
 * `reset-access:managed-by` (test/security/iam.test.ts); in a fleet run that is every helper of
 * every execution. So attach-to-helper itself must check that the instance it attaches the
 * root volume to is *this* execution's helper.
 */
import './support/env';
import { AttachVolumeCommand, DescribeInstancesCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { join } from 'path';
import { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_VOLUME, HELPER_INSTANCE, makePlan } from './support/fixtures';
import { ec2, resetAll, sentCommands, ssm } from './support/mocks';
import { ParamStore } from './support/param-store';
import { REPO } from './support/patterns';

type Handler = (event: unknown) => Promise<unknown>;
const LOCK = `/reset-access/locks/${GOOD_INSTANCE}`;
const OTHER_EXECUTION = '99999999-8888-4777-8666-555555555555';

function tags(executionId: string, role = 'helper'): Array<{ Key: string; Value: string }> {
  return [
    { Key: 'reset-access:managed-by', Value: 'ec2-reset-access' },
    { Key: 'reset-access:execution-id', Value: executionId },
    { Key: 'reset-access:instance-id', Value: GOOD_INSTANCE },
    { Key: 'reset-access:role', Value: role },
  ];
}

function setUp(helperTags: Array<{ Key: string; Value: string }>): void {
  resetAll();
  ec2.onAnyCommand().resolves({});
  ssm.onAnyCommand().resolves({});
  const store = new ParamStore().install();
  store.putJson(LOCK, makePlan({ phase: 'root-detached', created: { helperInstanceId: HELPER_INSTANCE } }));
  ec2.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: GOOD_VOLUME, State: 'available', Attachments: [], AvailabilityZone: 'us-east-1a' }] });
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: [{ InstanceId: HELPER_INSTANCE, State: { Name: 'running' }, Tags: helperTags }] }],
  });
}

async function attach(): Promise<unknown> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { handler } = require(join(REPO, 'lambdas', 'attach-to-helper', 'handler')) as { handler: Handler };
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    return await handler({ ExecutionId: GOOD_EXECUTION, InstanceId: GOOD_INSTANCE });
  } catch (err) {
    return err;
  } finally {
    jest.restoreAllMocks();
  }
}

const attached = (): unknown[] => sentCommands().filter((c) => c.name === 'AttachVolume').map((c) => c.input);

test('positive control: the plan names this execution\'s helper: the root volume is attached to it', async () => {
  setUp(tags(GOOD_EXECUTION));
  const out = await attach();
  expect(out).not.toBeInstanceOf(Error);
  expect(attached()).toEqual([expect.objectContaining({ VolumeId: GOOD_VOLUME, InstanceId: HELPER_INSTANCE })]);
});

test.each([
  ['the helper of another execution', tags(OTHER_EXECUTION)],
  ['an instance of ours that is not a helper', tags(GOOD_EXECUTION, 'vpc')],
  ['an instance without our tags', [{ Key: 'Name', Value: 'prod-db' }]],
])('a plan that names %s: refused, nothing attached', async (_label, helperTags) => {
  setUp(helperTags);
  const out = await attach();
  expect(out).toBeInstanceOf(Error);
  expect((out as Error).message).toContain(HELPER_INSTANCE);
  expect(attached()).toEqual([]);
});

// keep the command import used (the mock matches on the class)
void AttachVolumeCommand;
