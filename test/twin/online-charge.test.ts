/**
 * The twin's charging of a Lambda handler's own work (local/lambda-charge.ts, issue 12 B2/B3):
 * serial calls cost the sum of their figures, calls in flight together cost the longest, and a
 * key generation overlaps only the work the handler does between its start and the call that
 * stores the key. Figures come from the latency table (local/latency.ts) at its high end.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { generateKeyPairAsync } from '../../lambdas/common/keys';
import { KEYGEN_CHANNEL } from '../../lambdas/common/names';
import { LambdaCharger } from '../../local/lambda-charge';
import { latencyOf, setLatencyModel, type LatencyModel } from '../../local/latency';

class FakeClock {
  t = 0;
  now(): number {
    return this.t;
  }
  advanceTo(t: number): number {
    if (t > this.t) this.t = t;
    return this.t;
  }
}

const api = (): number => latencyOf('ApiCall', 'high');
const keygen = (): number => latencyOf('LambdaRsa4096KeyGen', 'high');
let previous: LatencyModel;
beforeEach(() => {
  previous = setLatencyModel({ end: 'high', lambdaWork: true });
});
afterEach(() => {
  setLatencyModel(previous);
});

test('serial calls are charged one after the other: the sum of their figures', () => {
  const clock = new FakeClock();
  const c = new LambdaCharger(clock);
  for (const action of ['GetParameter', 'DescribeVolumes', 'CreateSnapshot', 'PutParameter']) c.answered('twin-A', c.arrived('twin-A', action));
  expect(clock.t).toBeCloseTo(3 * api() + latencyOf('CreateSnapshot', 'high'), 9);
});

test('calls in flight together cost the longest of them; a call after their answers starts after all of them', () => {
  const clock = new FakeClock();
  const c = new LambdaCharger(clock);
  const a = c.arrived('twin-A', 'DescribeInstances');
  const b = c.arrived('twin-A', 'CreateSnapshot');
  expect(b.start).toBe(a.start);
  c.answered('twin-A', a);
  c.answered('twin-A', b);
  expect(clock.t).toBeCloseTo(latencyOf('CreateSnapshot', 'high'), 9);
  const after = c.arrived('twin-A', 'SendCommand');
  expect(after.start).toBeCloseTo(latencyOf('CreateSnapshot', 'high'), 9);
  // another function's call is never taken as in flight with these
  const other = c.arrived('twin-B', 'GetParameter');
  expect(other.start).toBeCloseTo(clock.t - api(), 9);
});

test('a key generation overlaps the calls made between its start and the PutParameter that stores the key, and only those', () => {
  const clock = new FakeClock();
  const c = new LambdaCharger(clock);
  c.keygenStarted('twin-A');
  for (const action of ['DescribeVolumes', 'CreateSnapshot']) c.answered('twin-A', c.arrived('twin-A', action));
  const backupEnd = api() + latencyOf('CreateSnapshot', 'high');
  const put = c.arrived('twin-A', 'PutParameter', 'rsa');
  expect(put.start).toBeCloseTo(Math.max(backupEnd, keygen()), 9);
  c.answered('twin-A', put);
  expect(clock.t).toBeCloseTo(Math.max(backupEnd, keygen()) + api(), 9);
});

test('a generation followed at once by its PutParameter is charged in full, serially; with no start seen, before the call', () => {
  const clock = new FakeClock();
  const c = new LambdaCharger(clock);
  c.answered('twin-A', c.arrived('twin-A', 'GetParameter'));
  c.keygenStarted('twin-A');
  c.answered('twin-A', c.arrived('twin-A', 'PutParameter', 'rsa'));
  expect(clock.t).toBeCloseTo(api() + keygen() + api(), 9);
  // no announced start (the generation is charged right before the call)
  c.answered('twin-A', c.arrived('twin-A', 'PutParameter', 'rsa'));
  expect(clock.t).toBeCloseTo(api() + 2 * (keygen() + api()), 9);
  // Ed25519 costs nothing
  c.keygenStarted('twin-A');
  c.answered('twin-A', c.arrived('twin-A', 'PutParameter', 'ed25519'));
  expect(clock.t).toBeCloseTo(api() + 2 * (keygen() + api()) + api(), 9);
});

test('with lambdaWork off nothing moves the clock', () => {
  setLatencyModel({ lambdaWork: false });
  const clock = new FakeClock();
  const c = new LambdaCharger(clock);
  c.keygenStarted('twin-A');
  const a = c.arrived('twin-A', 'DescribeInstances');
  c.arrived('twin-A', 'PutParameter', 'rsa');
  c.answered('twin-A', a);
  expect(clock.t).toBe(0);
});

test('keys.ts announces an RSA generation on its channel before the work, and the async generation does not block the event loop', async () => {
  const seen: unknown[] = [];
  const listener = (m: unknown): void => {
    seen.push(m);
  };
  subscribe(KEYGEN_CHANNEL, listener);
  try {
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
    }, 1);
    const pending = generateKeyPairAsync('rsa');
    expect(seen).toEqual([{ phase: 'start', type: 'rsa' }]);
    const pair = await pending;
    clearInterval(timer);
    expect(pair.publicKey.startsWith('ssh-rsa ')).toBe(true);
    // the event loop ran while the key was made (the sync generator would have blocked it throughout)
    expect(ticks).toBeGreaterThan(0);
    expect(JSON.stringify(seen)).not.toContain('PRIVATE');
  } finally {
    unsubscribe(KEYGEN_CHANNEL, listener);
  }
});
