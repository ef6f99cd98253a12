/**
 * What preflight reads of a healthy Linux instance with an EBS root (DescribeInstances,
 * DescribeVolumes, DescribeInstanceAttribute, DescribeInstanceTypes, DescribeAddresses, Auto
 * Scaling membership, DescribeInstanceInformation), as the mocks answer it: the preamble the unit
 * tests of preflight's callers share. Each test changes the returned world (the instance, whether
 * its agent is Online) before it acts.
 */
import { DescribeAutoScalingInstancesCommand, type AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import {
  DescribeAddressesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { INSTANCE_ID, ROOT_VOLUME_ID } from './helpers';

export interface PreflightWorld {
  instance: Instance;
  /** The instance's SSM Agent is Online (a managed node, agent 3.3.2746.0). */
  online: boolean;
}

/** A running t3.micro, Linux/UNIX, EBS root /dev/xvda, in a subnet, stop protection off, shutdown stop. */
export function linuxInstance(): Instance {
  return {
    InstanceId: INSTANCE_ID,
    InstanceType: 't3.micro',
    State: { Name: 'running', Code: 16 },
    RootDeviceType: 'ebs',
    RootDeviceName: '/dev/xvda',
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeId: ROOT_VOLUME_ID, DeleteOnTermination: true } }],
    Placement: { AvailabilityZone: 'us-east-1a' },
    PlatformDetails: 'Linux/UNIX',
    SubnetId: 'subnet-0123456789abcdef0',
  };
}

/** Installs the answers on the (reset) mocks; returns the world they read at each call. */
export function mockPreflightWorld(mocks: { ec2: AwsClientStub<EC2Client>; ssm: AwsClientStub<SSMClient>; asg: AwsClientStub<AutoScalingClient> }): PreflightWorld {
  const world: PreflightWorld = { instance: linuxInstance(), online: false };
  mocks.ec2.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [world.instance] }] }));
  mocks.ec2.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: ROOT_VOLUME_ID, Encrypted: false }] });
  mocks.ec2.on(DescribeInstanceAttributeCommand).callsFake((input: { Attribute: string }) =>
    input.Attribute === 'disableApiStop' ? { DisableApiStop: { Value: false } } : { InstanceInitiatedShutdownBehavior: { Value: 'stop' } },
  );
  mocks.ec2.on(DescribeInstanceTypesCommand).callsFake((input: { InstanceTypes: string[] }) => ({
    InstanceTypes: [{ InstanceType: input.InstanceTypes[0], Hypervisor: 'nitro', InstanceStorageSupported: false, ProcessorInfo: { SupportedArchitectures: ['x86_64'] } }],
  }));
  mocks.ec2.on(DescribeAddressesCommand).resolves({ Addresses: [] });
  mocks.asg.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [] });
  mocks.ssm.on(DescribeInstanceInformationCommand).callsFake(() => ({
    InstanceInformationList: world.online ? [{ InstanceId: INSTANCE_ID, PingStatus: 'Online', PlatformType: 'Linux', AgentVersion: '3.3.2746.0' }] : [],
  }));
  return world;
}
