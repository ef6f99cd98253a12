/**
 * Mocked AWS clients for every SDK the Lambdas use, and a view of every command they sent.
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';

export const ec2 = mockClient(EC2Client);
export const ssm = mockClient(SSMClient);
export const kms = mockClient(KMSClient);
export const asg = mockClient(AutoScalingClient);
export const lambda = mockClient(LambdaClient);

const all = { EC2: ec2, SSM: ssm, KMS: kms, AutoScaling: asg, Lambda: lambda } as const;

export function resetAll(): void {
  for (const m of Object.values(all)) m.reset();
}

export interface SentCommand {
  service: string;
  /** e.g. "RunInstances" (the Command class name without the "Command" suffix) */
  name: string;
  input: Record<string, unknown>;
}

/** Every command sent to any mocked client since the last reset, in order per client. */
export function sentCommands(): SentCommand[] {
  const out: SentCommand[] = [];
  for (const [service, m] of Object.entries(all)) {
    for (const call of m.calls()) {
      const cmd = call.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
      out.push({ service, name: cmd.constructor.name.replace(/Command$/, ''), input: cmd.input });
    }
  }
  return out;
}

/**
 * Calls that change something. The brief's list (PutParameter, StopInstances, RunInstances,
 * Create*, Attach*, Detach*, ModifyInstanceAttribute, SendCommand) and every other verb that
 * is not a read.
 */
const READ_VERBS = /^(Describe|Get|List|Search|Lookup)/;
export function isMutating(c: SentCommand): boolean {
  return !READ_VERBS.test(c.name);
}

export function mutatingCommands(): SentCommand[] {
  return sentCommands().filter(isMutating);
}

/** An SDK service exception of the given name (as the SDK would throw it). */
export function awsError(name: string, message = name): Error {
  const e = new Error(message) as Error & { $metadata: object; $fault: string };
  e.name = name;
  e.$metadata = { httpStatusCode: 400 };
  e.$fault = 'client';
  return e;
}
