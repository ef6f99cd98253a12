/**
 * The instance's user data as EC2 holds it, and the saved original in Parameter Store.
 *
 * - DescribeInstanceAttribute(userData) returns the user data base64-encoded in `UserData.Value`, a
 *   String (botocore ec2 model: InstanceAttribute.UserData is AttributeValue), absent when there is
 *   none. That text is what we keep: byte-exact whatever the bytes are (text, gzip, MIME).
 * - ModifyInstanceAttribute is called with `Attribute: userData` and the base64 text as `Value` (a
 *   String), the form AWS documents (writeUserData); it works only on a stopped instance with an EBS root
 *   (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html). Every
 *   write is read back and compared, so a service that stored something else is caught at once.
 * - The saved copy is a SecureString under the stack's KMS key (only the automation's roles may
 *   decrypt it), `base64:` followed by the base64 text (a parameter value cannot be empty, and an
 *   instance may have no user data): at most 8192 characters in all, the advanced tier's limit;
 *   standard (4096) when it fits
 *   (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html).
 */
import { DescribeInstanceAttributeCommand, ModifyInstanceAttributeCommand, StopInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import {
  DeleteParameterCommand,
  GetDocumentCommand,
  GetParameterCommand,
  PutParameterCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { describeInstance, pollUntil, type Clock } from './ec2';
import { isAwsError, RefusedError, RestoreError, UnexpectedStateError } from './errors';
import { isOurUserData, SAVED_USER_DATA_MAX_CHARS, userDataParameterName } from './user-data';

const SAVED_PREFIX = 'base64:';

/** The largest user data (raw bytes) whose saved copy fits an advanced parameter. */
export const MAX_SAVED_USER_DATA_BYTES = Math.floor((SAVED_USER_DATA_MAX_CHARS - SAVED_PREFIX.length) / 4) * 3;

/** The instance's user data as DescribeInstanceAttribute returns it: base64 text, '' for none. */
export async function readUserDataBase64(ec2: EC2Client, instanceId: string): Promise<string> {
  const out = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }));
  return out.UserData?.Value ?? '';
}

/**
 * Refuses (before any change) user data whose saved copy would not fit an advanced parameter.
 * Preflight calls it for Method=UserData; saveUserData checks again. Returns the size in bytes.
 */
export async function checkUserDataFits(ec2: EC2Client, instanceId: string): Promise<number> {
  const base64 = await readUserDataBase64(ec2, instanceId);
  const bytes = Buffer.from(base64, 'base64').length;
  if (SAVED_PREFIX.length + base64.length > SAVED_USER_DATA_MAX_CHARS) {
    throw new RefusedError(
      `Instance ${instanceId} has ${bytes} bytes of user data; Method=UserData keeps the original in an advanced SSM parameter (8 KB), which holds at most ${MAX_SAVED_USER_DATA_BYTES} bytes. Nothing was changed. Use Method=VolumeSwap, or shorten the user data`,
    );
  }
  return bytes;
}

export interface SavedUserData {
  /** The base64 text of the original ('' for none). */
  readonly base64: string;
  readonly version: number;
}

/** The saved original of `instanceId`, or undefined when none is saved. */
export async function readSavedUserData(ssm: SSMClient, instanceId: string): Promise<SavedUserData | undefined> {
  const name = userDataParameterName(instanceId);
  let value: string | undefined;
  let version = 0;
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    value = out.Parameter?.Value;
    version = out.Parameter?.Version ?? 0;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) return undefined;
    throw err;
  }
  if (value === undefined || !value.startsWith(SAVED_PREFIX)) {
    throw new UnexpectedStateError(`The saved user data ${name} is not in the form this product writes; it was left as it is`);
  }
  return { base64: value.slice(SAVED_PREFIX.length), version };
}

/** Saves `base64` (the original user data) as a SecureString under `keyId`; returns the tier asked for. */
export async function writeSavedUserData(
  ssm: SSMClient,
  instanceId: string,
  executionId: string,
  base64: string,
  keyId: string,
): Promise<'Intelligent-Tiering'> {
  const value = `${SAVED_PREFIX}${base64}`;
  // Intelligent-Tiering: Standard up to 4 KB, Advanced beyond, chosen by Parameter Store; an
  // explicit Standard would fail over an earlier Advanced copy, which cannot be downgraded
  // (parameter-store-advanced-parameters.html; review U2 addendum).
  const tier = 'Intelligent-Tiering';
  const name = userDataParameterName(instanceId);
  try {
    await ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: value,
        Type: 'SecureString',
        KeyId: keyId,
        Tier: tier,
        Overwrite: true,
        Description: `ec2-reset-access: original user data of ${instanceId} (execution ${executionId}), put back at the end of the run`,
      }),
    );
  } catch (err) {
    // Never the request's value in a message: it may hold the customer's secrets.
    const code = err instanceof Error ? err.name : 'error';
    throw new UnexpectedStateError(`Could not save the original user data in ${name}: ${code}; nothing was changed on the instance`);
  }
  return tier;
}

export async function deleteSavedUserData(ssm: SSMClient, instanceId: string): Promise<void> {
  try {
    await ssm.send(new DeleteParameterCommand({ Name: userDataParameterName(instanceId) }));
  } catch (err) {
    if (!isAwsError(err, 'ParameterNotFound')) throw err;
  }
}

/**
 * Sets the user data of a stopped instance to `bytes` and reads it back: throws
 * UnexpectedStateError when what EC2 holds afterwards is not exactly those bytes.
 */
export async function writeUserData(ec2: EC2Client, instanceId: string, bytes: Buffer): Promise<void> {
  // The documented form: Attribute userData with the base64 text as Value (EC2 user guide, "User
  // data and the AWS CLI": `base64 my_script.txt > my_script_base64.txt` then `aws ec2
  // modify-instance-attribute --attribute userData --value file://my_script_base64.txt`,
  // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html). Value is a String in the
  // model, so no SDK encodes it again; the read-back below checks what EC2 holds.
  await ec2.send(new ModifyInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData', Value: bytes.toString('base64') }));
  const now = await readUserDataBase64(ec2, instanceId);
  if (now !== bytes.toString('base64')) {
    throw new UnexpectedStateError(
      `After ModifyInstanceAttribute, instance ${instanceId} holds ${Buffer.from(now, 'base64').length} bytes of user data, not the ${bytes.length} bytes written`,
    );
  }
}

/**
 * The inject-key script exactly as the deployed Command document runs it: its runCommand lines
 * joined (lib/inject-key-document.ts builds the document from runbooks/inject-key.sh).
 */
export async function readInjectScript(ssm: SSMClient, documentName: string): Promise<string> {
  const out = await ssm.send(new GetDocumentCommand({ Name: documentName, DocumentFormat: 'JSON' }));
  let doc: { mainSteps?: { inputs?: { runCommand?: unknown } }[] };
  try {
    doc = JSON.parse(out.Content ?? '') as typeof doc;
  } catch {
    throw new UnexpectedStateError(`The Command document ${documentName} is not JSON`);
  }
  const lines = doc.mainSteps?.[0]?.inputs?.runCommand;
  if (!Array.isArray(lines) || lines.length === 0 || lines.some((l) => typeof l !== 'string')) {
    throw new UnexpectedStateError(`The Command document ${documentName} has no runCommand script`);
  }
  return `${(lines as string[]).join('\n')}\n`;
}

/** What putBackUserData did. */
export type PutBackResult = 'restored' | 'nothing-saved';

/**
 * Puts the saved original back on the stopped instance and deletes the saved copy. The caller
 * makes sure the instance is stopped. Throws RestoreError (keeping the saved copy) when EC2 does
 * not hold exactly the original afterwards.
 */
export async function putBackUserData(ec2: EC2Client, ssm: SSMClient, instanceId: string): Promise<{ result: PutBackResult; bytes: number }> {
  const name = userDataParameterName(instanceId);
  const saved = await readSavedUserData(ssm, instanceId);
  if (!saved) {
    const current = Buffer.from(await readUserDataBase64(ec2, instanceId), 'base64');
    if (isOurUserData(current)) {
      throw new RestoreError(
        `Instance ${instanceId} still carries the user data of ec2-reset-access and no original is saved in ${name}: set its own user data again by hand (stopped: aws ec2 modify-instance-attribute)`,
      );
    }
    return { result: 'nothing-saved', bytes: current.length };
  }
  const original = Buffer.from(saved.base64, 'base64');
  try {
    await writeUserData(ec2, instanceId, original);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new RestoreError(`Could not put the original user data of ${instanceId} back (${why}); it stays saved in ${name}`);
  }
  await deleteSavedUserData(ssm, instanceId);
  return { result: 'restored', bytes: original.length };
}

/**
 * For the converging restore (lambdas/restore). Acts only when this product's user data is on the
 * instance: then it stops the instance if it runs (user data changes only while stopped), waits for
 * it within `stopBudgetMs`, and puts the saved original back. When the user data on the instance is
 * not ours, nothing on the instance changes whatever is saved (review U1, U2): a copy byte-equal
 * to it is this run's copy of an unchanged instance and is deleted; a different one (an earlier
 * run's, the user data changed since) is kept and named, never written over newer user data.
 * Appends what it did to `done`. The caller then starts the instance if it was running before.
 */
export async function convergeUserData(
  deps: { ec2: EC2Client; ssm: SSMClient; clock: Clock },
  instanceId: string,
  stopBudgetMs: number,
  done: string[],
): Promise<void> {
  const { ec2, ssm } = deps;
  const currentBase64 = await readUserDataBase64(ec2, instanceId);
  if (!isOurUserData(Buffer.from(currentBase64, 'base64'))) {
    const saved = await readSavedUserData(ssm, instanceId);
    if (!saved) return;
    if (saved.base64 === currentBase64) {
      await deleteSavedUserData(ssm, instanceId);
      done.push(`the user data of ${instanceId} was never changed; deleted its saved copy`);
    } else {
      done.push(
        `left ${userDataParameterName(instanceId)} as it is: it differs from the user data on ${instanceId}, which is not this product's (an earlier run's copy, or the user data changed since); nothing was written`,
      );
    }
    return;
  }
  let state = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
  if (state === 'running' || state === 'pending') {
    await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    done.push(`stopped ${instanceId} to put its user data back`);
    state = 'stopping';
  }
  if (state === 'stopping') {
    state = await pollUntil(deps.clock, `instance ${instanceId} to stop before its user data is put back`, stopBudgetMs, 5_000, async () => {
      const s = (await describeInstance(ec2, instanceId)).State?.Name ?? 'unknown';
      return s === 'stopping' || s === 'running' || s === 'pending' ? undefined : s;
    });
  }
  if (state !== 'stopped') {
    throw new RestoreError(`Cannot put the user data of ${instanceId} back: the instance is ${state}; the original stays saved in ${userDataParameterName(instanceId)}`);
  }
  const out = await putBackUserData(ec2, ssm, instanceId);
  if (out.result === 'restored') done.push(`put the original user data of ${instanceId} back (${out.bytes} bytes)`);
}
