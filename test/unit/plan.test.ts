import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { createPlan, deletePlan, loadOwnPlan, lockParameterName, readPlan, updatePlan } from '@common/plan';
import { EXECUTION_ID, INSTANCE_ID, LOCK_NAME, makePlan, OTHER_EXECUTION_ID, parameterStore, storedPlan, storePlan } from './helpers';

const ssmMock = mockClient(SSMClient);
const ssm = new SSMClient({});
let store: ReturnType<typeof parameterStore>;

beforeEach(() => {
  ssmMock.reset();
  store = parameterStore(ssmMock);
});

describe('the plan record', () => {
  it('lives at /reset-access/locks/<instance-id>', () => {
    expect(lockParameterName(INSTANCE_ID)).toBe('/reset-access/locks/i-0123456789abcdef0');
  });

  it('is created without overwrite and refused when one exists', async () => {
    await createPlan(ssm, makePlan());
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK_NAME, Overwrite: false, Type: 'String' });
    await expect(createPlan(ssm, makePlan({ executionId: OTHER_EXECUTION_ID }))).rejects.toMatchObject({ name: 'LockHeldError' });
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
  });

  it('reads back what was written, and undefined when there is none', async () => {
    expect(await readPlan(ssm, INSTANCE_ID)).toBeUndefined();
    storePlan(store, makePlan());
    expect(await readPlan(ssm, INSTANCE_ID)).toEqual(makePlan());
  });

  it('refuses a record that is not a version 1 plan', async () => {
    store.set(LOCK_NAME, { value: JSON.stringify({ version: 2 }), type: 'String', version: 1 });
    await expect(readPlan(ssm, INSTANCE_ID)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringMatching(/not a version 1 plan/) });
  });

  it('is updated only by its own execution', async () => {
    storePlan(store, makePlan());
    const updated = await updatePlan(ssm, INSTANCE_ID, EXECUTION_ID, (p) => {
      p.created.vpcId = 'vpc-1';
    });
    expect(updated.created.vpcId).toBe('vpc-1');
    expect(storedPlan(store)?.created.vpcId).toBe('vpc-1');
    expect(ssmMock).toHaveReceivedCommandWith(PutParameterCommand, { Name: LOCK_NAME, Overwrite: true });

    ssmMock.resetHistory();
    await expect(
      updatePlan(ssm, INSTANCE_ID, OTHER_EXECUTION_ID, (p) => {
        p.created.vpcId = 'vpc-2';
      }),
    ).rejects.toMatchObject({ name: 'PlanError', message: expect.stringMatching(`belongs to execution ${EXECUTION_ID}, not ${OTHER_EXECUTION_ID}`) });
    expect(ssmMock).not.toHaveReceivedCommand(PutParameterCommand);
    expect(storedPlan(store)?.created.vpcId).toBe('vpc-1');
  });

  it('may not change hands in an update', async () => {
    storePlan(store, makePlan());
    await expect(
      updatePlan(ssm, INSTANCE_ID, EXECUTION_ID, (p) => {
        p.executionId = OTHER_EXECUTION_ID;
      }),
    ).rejects.toMatchObject({ name: 'PlanError' });
    expect(storedPlan(store)?.executionId).toBe(EXECUTION_ID);
  });

  it('cannot be updated when it is missing', async () => {
    await expect(loadOwnPlan(ssm, INSTANCE_ID, EXECUTION_ID)).rejects.toMatchObject({ name: 'PlanError', message: expect.stringMatching(/No plan record/) });
  });

  it('is deleted only by its own execution', async () => {
    storePlan(store, makePlan({ executionId: OTHER_EXECUTION_ID }));
    expect(await deletePlan(ssm, INSTANCE_ID, EXECUTION_ID)).toBe(false);
    expect(ssmMock).not.toHaveReceivedCommand(DeleteParameterCommand);
    storePlan(store, makePlan());
    expect(await deletePlan(ssm, INSTANCE_ID, EXECUTION_ID)).toBe(true);
    expect(store.has(LOCK_NAME)).toBe(false);
    expect(await deletePlan(ssm, INSTANCE_ID, EXECUTION_ID)).toBe(false);
  });
});
