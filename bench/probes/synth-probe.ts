/**
 * Child-process probe for bench/bundles.ts: synthesizes the CDK app with lib/app.ts's
 * `createApp({ outdir, context })` and prints one JSON line naming the template files. Anything
 * the synth logs goes to stderr, so the parent's stdout stays clean.
 * Usage: tsx bench/probes/synth-probe.ts <outdir>
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import * as path from 'path';

interface AppModule {
  createApp(options: { outdir: string; context?: Record<string, unknown> }): {
    app: { synth(): { directory: string; stacks: Array<{ templateFullPath: string; stackName: string }> } };
  };
}

const outdir = path.resolve(process.argv[2] ?? '');
// Keep our stdout for the one JSON line.
const write = process.stdout.write.bind(process.stdout);
console.log = (...args: unknown[]) => process.stderr.write(`${args.map(String).join(' ')}\n`);
const { createApp } = require('../../lib/app') as AppModule;
// As the CDK CLI does: asset and path metadata on every resource (aws:asset:path names the bundle).
const { app } = createApp({ outdir, context: { 'aws:cdk:enable-asset-metadata': true, 'aws:cdk:enable-path-metadata': true } });
const assembly = app.synth();
write(`${JSON.stringify({ directory: assembly.directory, templates: assembly.stacks.map((s) => ({ stackName: s.stackName, path: s.templateFullPath })) })}\n`);
