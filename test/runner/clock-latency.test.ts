import {
  LATENCY_TABLE,
  latencyEntry,
  latencyModel,
  latencyOf,
  meanPollLateness,
  setLatencyModel,
  UnknownLatencyOp,
  waitLateness,
} from '../../local/latency';
import { VirtualClock } from '../../local/runner/clock';
import { runAutomation } from '../../local/runner/runner';
import { fakeEc2, lambdas } from './helpers';

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

describe('VirtualClock.settleWait: a wait that polls', () => {
  afterEach(() => {
    setLatencyModel({ end: 'high', pollLateness: false });
  });

  it('notices a pending completion half a poll interval late on average, and charges nothing when nothing is pending', () => {
    const c = new VirtualClock();
    c.schedule('StopInstances', ['i-1'], 60);
    expect(c.settleWait(['i-1'], 2.5)).toBe(62.5);
    expect(c.settleWait(['i-1'], 2.5)).toBe(62.5); // done already: the first poll sees it
    expect(c.settleWait(['vol-unknown'], 7)).toBe(62.5);
    expect(() => c.settleWait(['i-1'], -1)).toThrow(RangeError);
  });

  it('takes the lateness from the latency model: none by default, the mean of the poll interval when charged', () => {
    // default: the twin's functional tests stay exact
    expect(latencyModel()).toEqual({ end: 'high', pollLateness: false });
    expect(waitLateness()).toBe(0);
    const a = new VirtualClock();
    a.schedule('AttachVolume', ['vol-1'], 5);
    expect(a.settleWait(['vol-1'])).toBe(5);

    // the bench's model: each end, lateness on
    for (const end of ['low', 'high'] as const) {
      setLatencyModel({ end, pollLateness: true });
      expect(waitLateness()).toBe(latencyOf('WaitPollInterval', end) / 2);
      const c = new VirtualClock();
      c.schedule('AttachVolume', ['vol-1']);
      expect(c.settleWait(['vol-1'])).toBeCloseTo(latencyOf('AttachVolume', end) + latencyOf('WaitPollInterval', end) / 2, 9);
    }
    expect(() => setLatencyModel({ end: 'middle' as 'low' })).toThrow(RangeError);
  });
});

describe('the runner charges a wait its poll lateness (aws:waitForAwsResourceProperty)', () => {
  const INSTANCE = 'i-0123456789abcdef0';
  const document = {
    schemaVersion: '0.3',
    parameters: { InstanceId: { type: 'String' } },
    mainSteps: [
      { name: 'stop', action: 'aws:executeAwsApi', inputs: { Service: 'ec2', Api: 'StopInstances', InstanceIds: ['{{ InstanceId }}'] } },
      {
        name: 'waitStopped',
        action: 'aws:waitForAwsResourceProperty',
        timeoutSeconds: 600,
        inputs: {
          Service: 'ec2',
          Api: 'DescribeInstances',
          InstanceIds: ['{{ InstanceId }}'],
          PropertySelector: '$.Reservations[0].Instances[0].State.Name',
          DesiredValues: ['stopped'],
        },
      },
    ],
  };

  let runs = 0;
  const waitEnd = async (): Promise<number> => {
    const clock = new VirtualClock();
    const ec2 = fakeEc2(clock, 60);
    runs += 1;
    const r = await runAutomation({ document, parameters: { InstanceId: INSTANCE }, executionId: `lateness-${runs}-${process.pid}`, clock, awsCall: ec2.awsCall, invokeLambda: lambdas({}).invoke });
    expect(r.status).toBe('Success');
    return r.steps[1].endedAt;
  };

  afterEach(() => {
    setLatencyModel({ end: 'high', pollLateness: false });
  });

  it('ends half a poll interval after the completion it waited for, at each end; exactly at it with lateness off', async () => {
    setLatencyModel({ pollLateness: false });
    const exact = await waitEnd();
    for (const end of ['low', 'high'] as const) {
      setLatencyModel({ end, pollLateness: true });
      const step = latencyOf('AutomationStepTransition', end);
      const api = latencyOf('ApiCall', end);
      // the stop is scheduled after the first step's transition and call; the wait sees it half an interval late, then polls
      expect(await waitEnd()).toBeCloseTo(step + api + 60 + latencyOf('WaitPollInterval', end) / 2 + api, 9);
    }
    setLatencyModel({ end: 'high', pollLateness: false });
    expect(exact).toBeCloseTo(latencyOf('AutomationStepTransition') + latencyOf('ApiCall') + 60 + latencyOf('ApiCall'), 9);
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

  it('gives every figure a range, not one number: 0 < low < high', () => {
    for (const e of LATENCY_TABLE) {
      expect([e.op, e.low > 0]).toEqual([e.op, true]);
      expect([e.op, e.low < e.high]).toEqual([e.op, true]);
    }
  });

  it('reads the end it is asked for, and the model\'s end by default', () => {
    const previous = setLatencyModel({ end: 'low' });
    try {
      expect(latencyOf('StopInstances')).toBe(latencyEntry('StopInstances').low);
      setLatencyModel({ end: 'high' });
      expect(latencyOf('StopInstances')).toBe(latencyEntry('StopInstances').high);
      expect(latencyOf('StopInstances', 'low')).toBe(latencyEntry('StopInstances').low);
      expect(meanPollLateness('low')).toBe(latencyEntry('WaitPollInterval').low / 2);
    } finally {
      setLatencyModel(previous);
    }
  });

  it('gives every figure its support: a measurement, an AWS statement, or an estimate reasoned at both ends', () => {
    for (const e of LATENCY_TABLE) {
      expect(e.what.length).toBeGreaterThan(10);
      const s = e.source;
      if (s.kind === 'measured') {
        expect(s.measurements.length).toBeGreaterThan(0);
        for (const m of s.measurements) {
          expect(m.url).toMatch(/^https?:\/\/[a-z0-9.-]+\.[a-z]+\//);
          expect(m.figures).toMatch(/\d/); // a measurement reports figures
        }
        expect(s.reading).toMatch(/[Ll]ow/);
        expect(s.reading).toMatch(/[Hh]igh/);
      } else if (s.kind === 'published') {
        expect(s.url).toMatch(/^https:\/\/docs\.aws\.amazon\.com\//);
        expect(s.statement.length).toBeGreaterThan(30);
        expect(s.reading).toMatch(/low|\d/);
      } else {
        expect(s.kind).toBe('estimate');
        // the reasoning covers both ends
        expect([e.op, /Low|low/.test(s.why) && /High|high/.test(s.why)]).toEqual([e.op, true]);
        if (s.related !== undefined) expect(s.related).toMatch(/^https?:\/\//);
      }
    }
  });

  it('keeps the figures consistent with each other, at both ends', () => {
    for (const end of ['low', 'high'] as const) {
      expect(latencyOf('LambdaWarmInvoke', end)).toBeLessThan(latencyOf('LambdaColdInvoke', end));
      expect(latencyOf('ApiCall', end)).toBeLessThan(latencyOf('LambdaWarmInvoke', end));
      expect(latencyOf('ConfigureAWSPackageEC2Rescue', end)).toBeGreaterThan(latencyOf('RunCommand', end));
      // a helper boots from nothing; a start only brings a stopped instance back to running
      expect(latencyOf('RunInstancesUntilOnline', end)).toBeGreaterThan(latencyOf('StartInstances', end));
    }
    expect(latencyEntry('CreateSnapshot').source.kind).toBe('published');
    // the poll interval is an assumption: its high end is AWS's own EC2 waiter interval (botocore)
    expect(latencyEntry('WaitPollInterval').high).toBe(15);
  });

  it('refuses an operation it has no figure for', () => {
    expect(() => latencyOf('Teleport')).toThrow(/No latency figure for "Teleport"/);
  });
});
