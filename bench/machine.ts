/** The machine a benchmark ran on, as docs/benchmarks.md reports it. */
import { execFileSync } from 'child_process';
import * as os from 'os';

export interface MachineInfo {
  /** `nproc` */
  readonly nproc: number;
  /** The `Mem:` line of `free -h`, e.g. `total 23Gi`. */
  readonly memory: string;
  readonly cpuModel: string;
  /** `node --version` of the process that ran the benchmark. */
  readonly node: string;
  /** `uname -r` */
  readonly kernel: string;
  readonly platform: string;
  /** `os.loadavg()` (1, 5, 15 minutes) when the benchmark started: a busy machine slows real timings. */
  readonly loadAverageAtStart: readonly number[];
}

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function machineInfo(): MachineInfo {
  const nproc = Number(run('nproc', [])) || os.cpus().length;
  const memLine = run('free', ['-h']).split('\n').find((l) => l.startsWith('Mem:')) ?? '';
  const total = memLine.split(/\s+/)[1];
  return {
    nproc,
    memory: total ? `${total} total (free -h)` : `${Math.round(os.totalmem() / 2 ** 30)} GiB total`,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    kernel: run('uname', ['-r']) || os.release(),
    platform: `${os.platform()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** The code a benchmark measured: the commit, and the paths changed since it (outside the benchmark's own output). */
export interface SourceState {
  readonly commit: string;
  /** Paths with uncommitted changes when the run started; empty: the commit is exactly what ran. */
  readonly uncommitted: readonly string[];
}

const OWN_OUTPUT = ['bench/results/', 'docs/benchmarks.md'];

export function sourceState(projectRoot: string): SourceState {
  const git = (args: string[]): string => {
    try {
      // trimEnd only: a porcelain status line may begin with a space.
      return execFileSync('git', args, { cwd: projectRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd();
    } catch {
      return '';
    }
  };
  const uncommitted = git(['status', '--porcelain', '--untracked-files=no'])
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.slice(3))
    .filter((p) => !OWN_OUTPUT.some((o) => p.startsWith(o)));
  return { commit: git(['rev-parse', 'HEAD']) || 'unknown', uncommitted };
}
