/**
 * Each test file's CDK apps synthesize into one directory of the file's own, removed after the
 * file. An App made without `outdir` otherwise takes `CDK_OUTDIR`, else a new mkdtemp under the
 * system temporary directory that nothing ever removes (aws-cdk-lib App constructor; ~580
 * `/tmp/cdk.out*` had piled up). Apps of one file synthesize one after another (synth is
 * synchronous), and Template.fromStack reads its template as soon as it is written; another jest
 * worker's files have their own directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'jest-cdk-out-'));
const previous = process.env.CDK_OUTDIR;
process.env.CDK_OUTDIR = dir;

afterAll(() => {
  if (previous === undefined) delete process.env.CDK_OUTDIR;
  else process.env.CDK_OUTDIR = previous;
  rmSync(dir, { recursive: true, force: true });
});
