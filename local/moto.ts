/**
 * moto's server as the twin's embedded AWS API: started under `timeout` on a free loopback
 * port, so a crashed test run cannot leave it behind for long, and killed on stop or on exit.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { freePort } from './ports';

export interface MotoOptions {
  /** Hard limit on the server's life, in seconds (`timeout` kills it after). @default 900 */
  readonly maxLifetimeSeconds?: number;
  /** How long to wait for it to answer, in milliseconds. @default 20000 */
  readonly startTimeoutMs?: number;
  /** More environment for moto_server, e.g. MOTO_IAM_LOAD_MANAGED_POLICIES (moto/settings.py). @default - none */
  readonly env?: Readonly<Record<string, string>>;
}

export interface MotoServer {
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  /** Wipes every resource (moto's /moto-api/reset). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export class MotoStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MotoStartError';
  }
}

function httpStatus(url: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAll(): void {
  for (const child of live) {
    try {
      // The process group: `timeout` and the python server under it.
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAll);
  // A signal ends the process without 'exit': kill the servers, then die of the same signal.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

export async function startMoto(options: MotoOptions = {}): Promise<MotoServer> {
  const lifetime = options.maxLifetimeSeconds ?? 900;
  const startTimeoutMs = options.startTimeoutMs ?? 20000;
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      'timeout',
      ['--kill-after=5', String(lifetime), 'moto_server', '-H', '127.0.0.1', '-p', String(port)],
      { detached: true, stdio: ['ignore', 'ignore', 'pipe'], ...(options.env ? { env: { ...process.env, ...options.env } } : {}) },
    );
    installExitHook();
    live.add(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    let exited = false;
    const exitedPromise = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        live.delete(child);
        resolve();
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + startTimeoutMs;
    let up = false;
    while (!exited && Date.now() < deadline) {
      try {
        if ((await httpStatus(`${endpoint}/moto-api/`)) === 200) {
          up = true;
          break;
        }
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!up) {
      killGroup(child, 'SIGKILL');
      await exitedPromise;
      lastError = `moto_server did not answer on ${endpoint}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      continue;
    }
    child.stderr?.removeAllListeners('data');
    child.stderr?.resume();
    const pid = child.pid as number;
    return {
      endpoint,
      port,
      pid,
      async reset() {
        const status = await httpStatus(`${endpoint}/moto-api/reset`, 'POST');
        if (status !== 200) throw new Error(`moto reset answered ${status}`);
      },
      async stop() {
        if (exited) return;
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exitedPromise;
        clearTimeout(timer);
      },
    };
  }
  throw new MotoStartError(lastError || 'moto_server did not start');
}
