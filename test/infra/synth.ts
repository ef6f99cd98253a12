import { Template } from 'aws-cdk-lib/assertions';
import { createApp, CreateAppProps } from '../../lib/app';
import { ResetAccessStack } from '../../lib/reset-access-stack';

export interface Synthesized {
  readonly stack: ResetAccessStack;
  readonly template: Template;
  /** The template as plain JSON. */
  readonly json: Record<string, any>;
}

/**
 * Synthesizes the app once (tests share the result within a file). `skipBundling` leaves the
 * esbuild bundles out (CDK's `aws:cdk:bundling-stacks` context): the template is the same but
 * for asset hashes, and synthesis is several times faster. test/infra/cfn-lint.test.ts bundles.
 */
export function synthesize(props: CreateAppProps & { skipBundling?: boolean } = {}): Synthesized {
  const context: Record<string, unknown> = { ...props.context };
  if (props.skipBundling) {
    context['aws:cdk:bundling-stacks'] = [];
  }
  const { stack } = createApp({ ...props, context });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() };
}
