import { LATENCY_TABLE, latencyEntry, latencyOf, UnknownLatencyOp } from '../../local/latency';
import { VirtualClock } from '../../local/runner/clock';

describe('VirtualClock', () => {
  it('moves forward only', () => {
    const c = new VirtualClock();
    expect(c.advanceBy(5)).toBe(5);
    expect(c.advanceTo(3)).toBe(5);
    expect(c.advanceTo(12.5)).toBe(12.5);
    expect(() => c.advanceBy(-1)).toThrow(RangeError);
    expect(() => c.advanceTo(Number.NaN)).toThrow(RangeError);
  });

  it('schedules completions from the latency table or an explicit figure, and answers pending per resource', () => {
    const c = new VirtualClock(100);
    const stop = c.schedule('StopInstances', ['i-1']);
    const attach = c.schedule('AttachVolume', ['vol-1', 'i-2'], 7);
    expect(stop).toEqual({ op: 'StopInstances', resourceIds: ['i-1'], startedAt: 100, completesAt: 100 + latencyOf('StopInstances') });
    expect(attach.completesAt).toBe(107);
    expect(c.pending('i-1').map((p) => p.op)).toEqual(['StopInstances']);
    expect(c.pending('i-2').map((p) => p.op)).toEqual(['AttachVolume']);
    expect(c.pending('vol-9')).toEqual([]);
    expect(() => c.schedule('Teleport', ['i-1'])).toThrow(UnknownLatencyOp);
  });

  it('settle advances to the latest pending completion touching the ids, and no further', () => {
    const c = new VirtualClock();
    c.schedule('A', ['vol-1'], 10);
    c.schedule('B', ['vol-1', 'i-1'], 30);
    c.schedule('C', ['i-9'], 500);
    expect(c.latestCompletion(['vol-1'])).toBe(30);
    expect(c.settle(['vol-1'])).toBe(30);
    expect(c.pending('vol-1')).toEqual([]);
    expect(c.pending('i-9')).toHaveLength(1);
    expect(c.settle(['vol-1'])).toBe(30); // nothing pending: time stands
    expect(c.settle(['i-9', 'vol-1'])).toBe(500);
    expect(c.history().map((o) => o.op)).toEqual(['A', 'B', 'C']);
  });
});

describe('latency table', () => {
  const required = [
    'StopInstances',
    'StartInstances',
    'RunInstancesUntilOnline',
    'AttachVolume',
    'DetachVolume',
    'CreateSnapshot',
    'CreateImage',
    'RunCommand',
    'LambdaColdInvoke',
    'LambdaWarmInvoke',
    'CloudFormationCreateStack',
    'CloudFormationDeleteStack',
    'ConfigureAWSPackageEC2Rescue',
    'ApiCall',
  ];

  it('has a figure for every slow operation the twin models', () => {
    for (const op of required) expect(latencyOf(op)).toBeGreaterThan(0);
    expect(new Set(LATENCY_TABLE.map((e) => e.op)).size).toBe(LATENCY_TABLE.length);
  });

  it('gives every figure a source: a published AWS page and sentence, or an estimate with its reason', () => {
    for (const e of LATENCY_TABLE) {
      expect(e.what.length).toBeGreaterThan(10);
      if (e.source.kind === 'published') {
        expect(e.source.url).toMatch(/^https:\/\/(docs\.aws\.amazon\.com|aws\.amazon\.com)\//);
        expect(e.source.statement.length).toBeGreaterThan(30);
        expect(e.source.reading.length).toBeGreaterThan(10);
      } else {
        expect(e.source.kind).toBe('estimate');
        expect(e.source.why.length).toBeGreaterThan(30);
        if (e.source.related !== undefined) expect(e.source.related).toMatch(/^https:\/\/docs\.aws\.amazon\.com\//);
      }
    }
  });

  it('keeps the figures consistent with each other', () => {
    expect(latencyOf('LambdaWarmInvoke')).toBeLessThan(latencyOf('LambdaColdInvoke'));
    expect(latencyOf('ApiCall')).toBeLessThan(latencyOf('LambdaWarmInvoke'));
    expect(latencyOf('ConfigureAWSPackageEC2Rescue')).toBeGreaterThan(latencyOf('RunCommand'));
    expect(latencyEntry('CreateSnapshot').source.kind).toBe('published');
  });

  it('refuses an operation it has no figure for', () => {
    expect(() => latencyOf('Teleport')).toThrow(/No latency figure for "Teleport"/);
  });
});
