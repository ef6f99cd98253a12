import { InvalidPublicKeyError } from '@common/keys';
import { requireEnv } from '@common/env';
import { awsErrorCode, isAwsError, LockHeldError, RefusedError } from '@common/errors';
import { createLogger } from '@common/log';
import { joinOrNone, outputFields } from '@common/outputs';
import { isOurs, tagSpec, tagsFor } from '@common/tags';
import {
  validateExecutionId,
  validateFlag,
  validateInstanceId,
  validateInstanceType,
  validatePublicKey,
  validateSubnetChoice,
  validateUsers,
} from '@common/validation';
import { awsError, EXECUTION_ID, INSTANCE_ID } from './helpers';

describe('validation', () => {
  it('accepts the documented instance ids and rejects others', () => {
    expect(validateInstanceId('i-0123abcd')).toBe('i-0123abcd');
    expect(validateInstanceId('i-0123456789abcdef0')).toBe('i-0123456789abcdef0');
    for (const bad of ['i-0123', 'i-0123456789ABCDEF0', 'mi-0123456789abcdef0', ' i-0123abcd', 42]) {
      expect(() => validateInstanceId(bad)).toThrow(/InstanceId/);
    }
  });

  it('accepts the three subnet choices', () => {
    expect(validateSubnetChoice('CreateNewVPC')).toBe('CreateNewVPC');
    expect(validateSubnetChoice('SelectedInstanceSubnet')).toBe('SelectedInstanceSubnet');
    expect(validateSubnetChoice('subnet-0123abcd')).toBe('subnet-0123abcd');
    expect(() => validateSubnetChoice('createnewvpc')).toThrow(/SubnetId must be/);
  });

  it('accepts instance types and rejects junk', () => {
    expect(validateInstanceType('m7i-flex.large')).toBe('m7i-flex.large');
    expect(() => validateInstanceType('t3')).toThrow(/HelperInstanceType/);
  });

  it('parses users, trims and de-duplicates, empty meaning default', () => {
    expect(validateUsers('')).toEqual([]);
    expect(validateUsers('ec2-user, ubuntu,ec2-user')).toEqual(['ec2-user', 'ubuntu']);
    expect(() => validateUsers('Root')).toThrow(/entry 1 is not one/);
    expect(() => validateUsers(Array.from({ length: 33 }, (_, i) => `u${i}`).join(','))).toThrow(/names 33 users/);
  });

  it('takes True/False only', () => {
    expect(validateFlag('True', 'F')).toBe(true);
    expect(validateFlag('False', 'F')).toBe(false);
    expect(() => validateFlag('true', 'AllowX')).toThrow(/AllowX must be True or False/);
  });

  it('accepts a UUID execution id and rejects an injection attempt', () => {
    expect(validateExecutionId(EXECUTION_ID)).toBe(EXECUTION_ID);
    expect(() => validateExecutionId('abc; rm -rf /')).toThrow(/ExecutionId/);
  });

  it('echoes a short plain rejected value, never a key pasted into the wrong field', () => {
    expect(() => validateInstanceId('i-xyz')).toThrow("got 'i-xyz'");
    const chunk = 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW';
    for (const f of [() => validateInstanceId(chunk), () => validateSubnetChoice(chunk), () => validateUsers(`ec2-user,${chunk}`), () => validateFlag(chunk, 'F')]) {
      let message = '';
      try {
        f();
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(chunk.slice(0, 20));
    }
  });

  it('never echoes a rejected public key', () => {
    const bad = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJ! x';
    let message = '';
    try {
      validatePublicKey(bad);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/PublicKey is not a valid OpenSSH public key/);
    expect(message).not.toContain('AAAAC3NzaC1lZDI1NTE5');
    expect(validatePublicKey('  ')).toEqual({ line: '' });
    expect(InvalidPublicKeyError).toBeDefined();
  });
});

describe('tags', () => {
  it('are the five of the contract', () => {
    expect(tagsFor('vpc', EXECUTION_ID, INSTANCE_ID)).toEqual([
      { Key: 'reset-access:managed-by', Value: 'ec2-reset-access' },
      { Key: 'reset-access:execution-id', Value: EXECUTION_ID },
      { Key: 'reset-access:instance-id', Value: INSTANCE_ID },
      { Key: 'reset-access:role', Value: 'vpc' },
      { Key: 'Name', Value: `reset-access-vpc-${INSTANCE_ID}` },
    ]);
    expect(tagSpec('instance', 'helper', EXECUTION_ID, INSTANCE_ID).ResourceType).toBe('instance');
  });

  it('recognise our resources and this execution', () => {
    const tags = tagsFor('helper', EXECUTION_ID, INSTANCE_ID);
    expect(isOurs(tags, EXECUTION_ID)).toBe(true);
    expect(isOurs(tags, 'other')).toBe(false);
    expect(isOurs([{ Key: 'Name', Value: 'x' }])).toBe(false);
  });
});

describe('errors', () => {
  it('are named', () => {
    expect(new RefusedError('x').name).toBe('RefusedError');
    expect(new LockHeldError('x')).toBeInstanceOf(RefusedError);
    expect(awsErrorCode(awsError('InvalidVolume.NotFound'))).toBe('InvalidVolume.NotFound');
    expect(isAwsError(new Error('x'), 'Error')).toBe(false);
  });
});

describe('env', () => {
  it('names a missing variable', () => {
    delete process.env.RESET_ACCESS_TEST_VAR;
    expect(() => requireEnv('RESET_ACCESS_TEST_VAR')).toThrow(/Missing environment variable RESET_ACCESS_TEST_VAR/);
    process.env.RESET_ACCESS_TEST_VAR = 'v';
    expect(requireEnv('RESET_ACCESS_TEST_VAR')).toBe('v');
  });
});

describe('log', () => {
  afterEach(() => jest.restoreAllMocks());

  it('writes one JSON line with the service name and redacts key material', () => {
    const spy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const log = createLogger('svc');
    log.info('hello', { instanceId: INSTANCE_ID, leaked: '-----BEGIN OPENSSH PRIVATE KEY-----\nabc' });
    const line = JSON.parse(String(spy.mock.calls[0][0])) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'INFO', service: 'svc', message: 'hello', instanceId: INSTANCE_ID, leaked: '[redacted]' });
  });
});

describe('outputs', () => {
  interface Out {
    A: string;
    B: boolean;
  }

  it('list every output key, checked by the compiler both ways', () => {
    expect(outputFields<Out>()(['A', 'B'])).toEqual(['A', 'B']);
    // tsc --noEmit fails if either line below stops being an error.
    // @ts-expect-error B is missing
    outputFields<Out>()(['A']);
    // @ts-expect-error C is not an output
    outputFields<Out>()(['A', 'B', 'C']);
  });

  it('join or say none', () => {
    expect(joinOrNone([])).toBe('none');
    expect(joinOrNone(['a', 'b'], ';')).toBe('a;b');
  });
});
