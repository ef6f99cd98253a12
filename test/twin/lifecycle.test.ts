/**
 * The twin's own servers: on 127.0.0.1, on ports picked at run time, under a time limit, and
 * gone after stop (process, ports, images).
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { startTwin } from '../../local/twin';

jest.setTimeout(300000);

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('moto and the agent listen on 127.0.0.1 at picked ports, moto runs under timeout, and stop leaves nothing', async () => {
  const twin = await startTwin({ maxLifetimeSeconds: 120 });
  let stopped = false;
  try {
    expect(twin.moto.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(twin.agent.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(twin.agent.port).not.toBe(twin.moto.port);
    const args = execFileSync('ps', ['-o', 'args=', '-p', String(twin.moto.pid)], { encoding: 'utf8' });
    expect(args).toMatch(/^timeout .*\b120 moto_server -H 127\.0\.0\.1 -p \d+/);
    const instance = await twin.createLockedOutInstance({});
    expect(instance.imagePath).toBeDefined();

    await twin.stop();
    stopped = true;

    expect(alive(twin.moto.pid)).toBe(false);
    expect(await refuses(twin.moto.port)).toBe(true);
    expect(await refuses(twin.agent.port)).toBe(true);
    expect(execFileSync('losetup', ['-a'], { encoding: 'utf8' })).not.toContain(instance.imagePath as string);
  } finally {
    if (!stopped) await twin.stop();
  }
});
