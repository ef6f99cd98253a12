import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { createApp } from '../../lib/app';

// One app, one synthesis: the product stack, and a control stack holding one deliberate
// finding, which proves the checks really run on this app.
const { app, stack } = createApp({ context: { 'aws:cdk:bundling-stacks': [] } });
const control = new Stack(app, 'NagControl');
new iam.Role(control, 'TooBroad', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') }).addToPolicy(
  new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }),
);
const annotations = Annotations.fromStack(stack);
const json = Template.fromStack(stack).toJSON();

const NAG = Match.stringLikeRegexp('AwsSolutions-.*');

test('cdk-nag AwsSolutions is applied to the app as an Aspect', () => {
  expect(Aspects.of(app).all.some((a) => a instanceof AwsSolutionsChecks)).toBe(true);
});

test('the checks run: the control stack\'s wildcard is reported', () => {
  const found = Annotations.fromStack(control).findError('*', Match.stringLikeRegexp('AwsSolutions-IAM5'));
  expect(found.length).toBeGreaterThan(0);
});

test('zero unacknowledged AwsSolutions errors and warnings in the stack', () => {
  const describe = (xs: { id: string; entry: { data?: unknown } }[]): string[] => xs.map((x) => `${x.id}: ${String(x.entry.data).split('\n')[0]}`);
  expect(describe(annotations.findError('*', NAG))).toEqual([]);
  expect(describe(annotations.findWarning('*', NAG))).toEqual([]);
});

test('every acknowledgement is on a resource, with a reason; IAM4/IAM5 name what they cover', () => {
  expect(json.Metadata?.cdk_nag).toBeUndefined();
  let count = 0;
  for (const [id, res] of Object.entries<any>(json.Resources)) {
    for (const rule of res.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
      count += 1;
      expect(`${id} ${rule.id}: ${rule.reason}`).toMatch(/: .{40,}/);
      if (rule.id === 'AwsSolutions-IAM5' || rule.id === 'AwsSolutions-IAM4') {
        expect(rule.applies_to?.length).toBeGreaterThan(0);
      }
    }
  }
  expect(count).toBeGreaterThan(0);
});

test('the only managed policy acknowledged is AmazonSSMManagedInstanceCore, on the helper role', () => {
  const iam4 = Object.entries<any>(json.Resources).flatMap(([id, res]) =>
    (res.Metadata?.cdk_nag?.rules_to_suppress ?? [])
      .filter((r: { id: string }) => r.id === 'AwsSolutions-IAM4')
      .map((r: { applies_to: unknown[] }) => ({ id, appliesTo: r.applies_to })),
  );
  expect(iam4).toEqual([
    {
      id: expect.stringMatching(/^HelperRole/),
      appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore'],
    },
  ]);
});
