/**
 * Validation of every input a step receives. Each function takes the raw value and the field's
 * name, returns the typed value, or throws InvalidInputError naming the field. A message never
 * echoes the value of a field that may hold key material (PublicKey).
 */
import type { KeyType } from '@common/keys';
import { InvalidPublicKeyError, parseOpenSshPublicKey, type ParsedPublicKey } from '@common/public-key';
import { InvalidInputError } from './errors';

export const INSTANCE_ID_PATTERN = /^i-[0-9a-f]{8,17}$/;
export const SUBNET_ID_PATTERN = /^subnet-[0-9a-f]{8,17}$/;
export const VOLUME_ID_PATTERN = /^vol-[0-9a-f]{8,17}$/;
/** An Automation execution id is a UUID; the twin may use other safe ids, so accept those too. */
export const EXECUTION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Instance type names: `t3.small`, `m7i-flex.large`, `u-6tb1.metal`. */
export const INSTANCE_TYPE_PATTERN = /^[a-z][a-z0-9-]{1,24}\.[a-z0-9]{2,16}$/;
/** One Linux user name, as the inject-key Command document accepts it. */
export const USER_NAME_PATTERN = /^[a-z_][a-z0-9_.-]{0,31}$/;

export const SUBNET_CREATE_NEW_VPC = 'CreateNewVPC';
export const SUBNET_SELECTED_INSTANCE_SUBNET = 'SelectedInstanceSubnet';
export type SubnetChoice = typeof SUBNET_CREATE_NEW_VPC | typeof SUBNET_SELECTED_INSTANCE_SUBNET | `subnet-${string}`;

export const KEY_TYPES: readonly KeyType[] = ['rsa', 'ed25519'];
export const BACKUP_METHODS = ['Snapshot', 'Image', 'None'] as const;
export type BackupMethod = (typeof BACKUP_METHODS)[number];

/** The runbook's Method parameter (allowedValues). */
export const METHODS = ['Auto', 'Online', 'VolumeSwap', 'UserData'] as const;
export type Method = (typeof METHODS)[number];

export const MAX_USERS = 32;
/** Longest PublicKey accepted (an RSA 8192 line is about 1.4 KB); keeps the plan record small. */
export const MAX_PUBLIC_KEY_CHARS = 3072;
const MAX_STRING_CHARS = 256;

/** A string field: present, a string, no NUL or line break, not oversized. */
export function requireString(value: unknown, field: string, maxChars = MAX_STRING_CHARS): string {
  if (typeof value !== 'string') {
    throw new InvalidInputError(`${field} is missing or not a string`);
  }
  if (value.includes('\0')) throw new InvalidInputError(`${field} contains a NUL character`);
  if (/[\r\n]/.test(value)) throw new InvalidInputError(`${field} contains a line break`);
  if (value.length > maxChars) {
    throw new InvalidInputError(`${field} is ${value.length} characters long; the limit is ${maxChars}`);
  }
  return value;
}

/**
 * How a rejected value appears in a message: quoted when it is short and plainly not a secret,
 * else only its length. A private key pasted into the wrong field is never echoed.
 */
export function shown(value: string): string {
  const plain = value.length <= 40 && /^[A-Za-z0-9._:-]*$/.test(value) && !/[A-Za-z0-9+/]{24,}/.test(value);
  return plain ? `'${value}'` : `a value of ${value.length} characters (not shown)`;
}

function matching(value: unknown, field: string, pattern: RegExp, what: string): string {
  const s = requireString(value, field);
  if (!pattern.test(s)) throw new InvalidInputError(`${field} must be ${what}; got ${shown(s)}`);
  return s;
}

export function validateInstanceId(value: unknown, field = 'InstanceId'): string {
  return matching(value, field, INSTANCE_ID_PATTERN, 'an EC2 instance id (i- and 8 to 17 hex digits)');
}

export function validateExecutionId(value: unknown, field = 'ExecutionId'): string {
  return matching(value, field, EXECUTION_ID_PATTERN, 'the Automation execution id');
}

export function validateSubnetChoice(value: unknown, field = 'SubnetId'): SubnetChoice {
  const s = requireString(value, field);
  if (s === SUBNET_CREATE_NEW_VPC || s === SUBNET_SELECTED_INSTANCE_SUBNET || SUBNET_ID_PATTERN.test(s)) {
    return s as SubnetChoice;
  }
  throw new InvalidInputError(
    `${field} must be CreateNewVPC, SelectedInstanceSubnet or a subnet id (subnet- and 8 to 17 hex digits); got ${shown(s)}`,
  );
}

export function validateInstanceType(value: unknown, field = 'HelperInstanceType'): string {
  return matching(value, field, INSTANCE_TYPE_PATTERN, 'an EC2 instance type such as t3.small');
}

export function validateKeyType(value: unknown, field = 'KeyType'): KeyType {
  const s = requireString(value, field);
  if ((KEY_TYPES as readonly string[]).includes(s)) return s as KeyType;
  throw new InvalidInputError(`${field} must be one of ${KEY_TYPES.join(', ')}; got ${shown(s)}`);
}

export function validateBackupMethod(value: unknown, field = 'BackupMethod'): BackupMethod {
  const s = requireString(value, field);
  if ((BACKUP_METHODS as readonly string[]).includes(s)) return s as BackupMethod;
  throw new InvalidInputError(`${field} must be one of ${BACKUP_METHODS.join(', ')}; got ${shown(s)}`);
}

/** The Method parameter; absent means its default, Auto. */
export function validateMethod(value: unknown, field = 'Method'): Method {
  if (value === undefined) return 'Auto';
  const s = requireString(value, field);
  if ((METHODS as readonly string[]).includes(s)) return s as Method;
  throw new InvalidInputError(`${field} must be one of ${METHODS.join(', ')}; got ${shown(s)}`);
}

/** `True`/`False` (the runbook's allowedValues) to a boolean. */
export function validateFlag(value: unknown, field: string): boolean {
  const s = requireString(value, field);
  if (s === 'True') return true;
  if (s === 'False') return false;
  throw new InvalidInputError(`${field} must be True or False; got ${shown(s)}`);
}

/** A comma-separated list of user names (empty: the default users). */
export function validateUsers(value: unknown, field = 'Users'): string[] {
  const s = requireString(value, field, MAX_USERS * 33);
  if (s.trim() === '') return [];
  const users = s.split(',').map((u) => u.trim());
  users.forEach((u, i) => {
    if (!USER_NAME_PATTERN.test(u)) {
      // The entry is named by its position only: a key pasted here must not be echoed.
      throw new InvalidInputError(
        `${field} must be comma-separated Linux user names (lower case letters, digits, _ . -; at most 32 characters each); entry ${i + 1} is not one`,
      );
    }
  });
  if (users.length > MAX_USERS) throw new InvalidInputError(`${field} names ${users.length} users; the limit is ${MAX_USERS}`);
  return [...new Set(users)];
}

/**
 * An optional OpenSSH public key line. Returns '' and no parse for an empty value. The message of
 * a rejection never contains the value.
 */
export function validatePublicKey(value: unknown, field = 'PublicKey'): { line: string; parsed?: ParsedPublicKey } {
  if (typeof value !== 'string') throw new InvalidInputError(`${field} is missing or not a string`);
  if (/PRIVATE KEY|openssh-key-v1/.test(value)) {
    throw new InvalidInputError(
      `${field} looks like a private key; give the public key line (ssh-ed25519 AAAA… or ssh-rsa AAAA…), and treat that private key as exposed`,
    );
  }
  if (value.includes('\0')) throw new InvalidInputError(`${field} contains a NUL character`);
  if (/[\r\n]/.test(value)) throw new InvalidInputError(`${field} contains a line break; give exactly one key line`);
  if (value.length > MAX_PUBLIC_KEY_CHARS) {
    throw new InvalidInputError(`${field} is ${value.length} characters long; the limit is ${MAX_PUBLIC_KEY_CHARS}`);
  }
  const line = value.trim();
  if (line === '') return { line: '' };
  try {
    return { line, parsed: parseOpenSshPublicKey(line) };
  } catch (err) {
    if (err instanceof InvalidPublicKeyError) {
      // keys.ts promises its messages never echo the key.
      throw new InvalidInputError(`${field} is not a valid OpenSSH public key line: ${err.message}`);
    }
    throw err;
  }
}

/** The object every step receives; throws when it is not one. */
export function requireObject(event: unknown): Record<string, unknown> {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new InvalidInputError('The InputPayload must be a JSON object');
  }
  return event as Record<string, unknown>;
}

/** The two fields every step's InputPayload carries. */
export interface StepInput {
  readonly executionId: string;
  readonly instanceId: string;
}

export function validateStepInput(event: unknown): StepInput {
  const o = requireObject(event);
  return { executionId: validateExecutionId(o.ExecutionId), instanceId: validateInstanceId(o.InstanceId) };
}
