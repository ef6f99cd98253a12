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
 * Synthesizes the app once (tests share the result within a file: bundling 12 functions costs a
 * few seconds). `skipBundling` replaces the esbuild bundles by placeholders, for tests that only
 * look at names.
 */
export function synthesize(props: CreateAppProps & { skipBundling?: boolean } = {}): Synthesized {
  const context: Record<string, unknown> = { ...props.context };
  if (props.skipBundling) {
    context['aws:cdk:bundling-stacks'] = [];
  }
  const fixture = process.env.RESET_ACCESS_TEST_FIXTURE;
  const stackProps = fixture
    ? {
        lambdasDir: `${fixture}/lambdas`,
        runbookFile: `${fixture}/reset-access.yaml`,
        ...props.stackProps,
      }
    : props.stackProps;
  const { stack } = createApp({ ...props, context, stackProps });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() };
}
