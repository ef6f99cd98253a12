/** An Io for the CLI's tests: captured output, a temporary home, the mocked SDK clients. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Io } from '../../cli/io';
import type { RendererChoice } from '../../cli/follow';

export interface TestIo extends Io {
  readonly stdout: string[];
  readonly stderr: string[];
  readonly questions: string[];
}

export function testIo(over: { stdinIsTTY?: boolean; answer?: boolean; renderer?: RendererChoice; home?: string } = {}): TestIo {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const questions: string[] = [];
  return {
    stdout,
    stderr,
    questions,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    stdinIsTTY: over.stdinIsTTY ?? true,
    renderer: over.renderer ?? 'silent',
    confirm: async (q) => {
      questions.push(q);
      return over.answer ?? true;
    },
    home: over.home ?? mkdtempSync(join(tmpdir(), 'cli-home-')),
    clients: () => ({ ssm: new SSMClient({ region: 'us-east-1' }), ec2: new EC2Client({ region: 'us-east-1' }) }),
    pollMs: 1,
    now: Date.now,
  };
}
