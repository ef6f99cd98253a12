/**
 * A healthy target instance and a plan record, as the mocked AWS APIs return them.
 *
 * The mocks answer for whatever instance id and execution id the handler asks about (they echo
 * the request), so that the only thing that can stop a hostile input is the handler's own
 * validation, never a mismatch in the fixtures.
 */
import { DescribeAutoScalingInstancesCommand } from '@aws-sdk/client-auto-scaling';
import {
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeSpotInstanceRequestsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
} from '@aws-sdk/client-ec2';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { GetParameterCommand, ParameterNotFound, PutParameterCommand } from '@aws-sdk/client-ssm';
import { ec2, ssm, kms, asg } from './mocks';
import { KEY_ARN } from './env';

import { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_SUBNET, GOOD_VOLUME, GOOD_VPC } from './ids';
export { GOOD_EXECUTION, GOOD_INSTANCE, GOOD_SUBNET, GOOD_VOLUME, GOOD_VPC, HELPER_INSTANCE } from './ids';

export interface PlanOptions {
  executionId?: string;
  instanceId?: string;
  subnetId?: string;
  publicKey?: string;
  users?: string[];
  keyType?: string;
  phase?: string;
  keyInjected?: boolean;
  created?: Record<string, unknown>;
}

export function makePlan(o: PlanOptions = {}): Record<string, unknown> {
  const instanceId = o.instanceId ?? GOOD_INSTANCE;
  return {
    version: 1,
    executionId: o.executionId ?? GOOD_EXECUTION,
    instanceId,
    createdAt: '2026-11-23T17:00:00.000Z',
    inputs: {
      method: 'Auto',
      subnetId: o.subnetId ?? 'CreateNewVPC',
      helperInstanceType: 't3.small',
      keyType: o.keyType ?? 'rsa',
      publicKey: o.publicKey ?? '',
      users: o.users ?? [],
      backupMethod: 'Snapshot',
      allowEncryptedVolume: true,
      allowEphemeralDataLoss: false,
    },
    method: { chosen: 'VolumeSwap', reason: 'Auto: not managed by Systems Manager' },
    instance: {
      originalState: 'running',
      rootVolumeId: GOOD_VOLUME,
      rootDeviceName: '/dev/xvda',
      deleteOnTermination: true,
      availabilityZone: 'us-east-1a',
      architecture: 'x86_64',
      subnetId: GOOD_SUBNET,
      vpcId: GOOD_VPC,
      publicIpAddress: '203.0.113.10',
      elasticIp: false,
    },
    created: o.created ?? {},
    progress: { keyInjected: o.keyInjected ?? false, phase: o.phase ?? 'preflight' },
  };
}

export function instanceDescription(instanceId: string, state = 'running'): Record<string, unknown> {
  return {
    InstanceId: instanceId,
    ImageId: 'ami-0123456789abcdef0',
    InstanceType: 't3.micro',
    Architecture: 'x86_64',
    PlatformDetails: 'Linux/UNIX',
    State: { Name: state, Code: state === 'running' ? 16 : 80 },
    Placement: { AvailabilityZone: 'us-east-1a', Tenancy: 'default' },
    SubnetId: GOOD_SUBNET,
    VpcId: GOOD_VPC,
    PublicIpAddress: '203.0.113.10',
    RootDeviceType: 'ebs',
    RootDeviceName: '/dev/xvda',
    BlockDeviceMappings: [
      { DeviceName: '/dev/xvda', Ebs: { VolumeId: GOOD_VOLUME, DeleteOnTermination: true, Status: 'attached' } },
    ],
    ProductCodes: [],
    Tags: [{ Key: 'Name', Value: 'web' }],
    NetworkInterfaces: [{ Association: { PublicIp: '203.0.113.10', IpOwnerId: 'amazon' } }],
    MetadataOptions: { HttpTokens: 'required' },
  };
}

/**
 * Answers for a healthy, unlocked, running EBS-backed Linux instance. With these, valid inputs
 * reach the mutating calls (the positive control in each test proves it).
 */
export function mockHealthyTarget(): void {
  ec2.onAnyCommand().resolves({});
  ssm.onAnyCommand().resolves({});
  kms.onAnyCommand().resolves({});
  asg.onAnyCommand().resolves({});

  ec2.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
    const ids = input.InstanceIds && input.InstanceIds.length > 0 ? input.InstanceIds : [GOOD_INSTANCE];
    return { Reservations: [{ Instances: ids.map((id) => instanceDescription(id)) }] };
  });
  ec2.on(DescribeInstanceAttributeCommand).callsFake((input: { InstanceId: string; Attribute: string }) => {
    const r: Record<string, unknown> = { InstanceId: input.InstanceId };
    switch (input.Attribute) {
      case 'instanceInitiatedShutdownBehavior':
        r.InstanceInitiatedShutdownBehavior = { Value: 'stop' };
        break;
      case 'disableApiStop':
        r.DisableApiStop = { Value: false };
        break;
      case 'disableApiTermination':
        r.DisableApiTermination = { Value: false };
        break;
      case 'productCodes':
        r.ProductCodes = [];
        break;
      default:
        break;
    }
    return r;
  });
  ec2.on(DescribeVolumesCommand).callsFake((input: { VolumeIds?: string[] }) => ({
    Volumes: (input.VolumeIds ?? [GOOD_VOLUME]).map((id) => ({
      VolumeId: id,
      Size: 8,
      AvailabilityZone: 'us-east-1a',
      Encrypted: false,
      State: 'in-use',
      Attachments: [{ InstanceId: GOOD_INSTANCE, Device: '/dev/xvda', State: 'attached', DeleteOnTermination: true }],
    })),
  }));
  ec2.on(DescribeImagesCommand).resolves({
    Images: [{ ImageId: 'ami-0123456789abcdef0', Platform: undefined, PlatformDetails: 'Linux/UNIX', ProductCodes: [] }],
  });
  ec2.on(DescribeSubnetsCommand).callsFake((input: { SubnetIds?: string[] }) => ({
    Subnets: (input.SubnetIds ?? [GOOD_SUBNET]).map((id) => ({
      SubnetId: id,
      VpcId: GOOD_VPC,
      AvailabilityZone: 'us-east-1a',
      MapPublicIpOnLaunch: true,
      State: 'available',
    })),
  }));
  ec2.on(DescribeInstanceTypesCommand).callsFake((input: { InstanceTypes?: string[] }) => ({
    InstanceTypes: (input.InstanceTypes ?? []).map((t) => ({
      InstanceType: t,
      InstanceStorageSupported: false,
      Hypervisor: 'nitro',
      ProcessorInfo: { SupportedArchitectures: ['x86_64'] },
    })),
  }));
  ec2.on(DescribeAddressesCommand).resolves({ Addresses: [] });
  ec2.on(DescribeSpotInstanceRequestsCommand).resolves({ SpotInstanceRequests: [] });
  asg.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [] });
  kms.on(DescribeKeyCommand).resolves({
    KeyMetadata: { KeyId: KEY_ARN, Arn: KEY_ARN, KeyState: 'Enabled', Enabled: true, KeyManager: 'CUSTOMER' },
  });
  // no lock yet
  ssm.on(GetParameterCommand).rejects(notFound());
  ssm.on(PutParameterCommand).resolves({ Version: 1, Tier: 'Standard' });
}

/** The plan record answers for whatever lock name is asked about, with ids echoed from the request. */
export function mockPlanEcho(base: PlanOptions = {}): void {
  ssm.on(GetParameterCommand).callsFake((input: { Name: string }) => {
    const m = /^\/reset-access\/locks\/(.*)$/s.exec(input.Name);
    if (!m) throw notFound();
    const instanceId = m[1];
    const plan = makePlan({ ...base, instanceId, executionId: currentExecutionId ?? base.executionId });
    return { Parameter: { Name: input.Name, Type: 'String', Value: JSON.stringify(plan), Version: 3 } };
  });
}

/** The execution id the plan echo answers with (set per test case). */
let currentExecutionId: string | undefined;
export function setPlanExecutionId(id: string | undefined): void {
  currentExecutionId = id;
}


export function notFound(): ParameterNotFound {
  return new ParameterNotFound({ message: 'Parameter not found', $metadata: {} });
}
