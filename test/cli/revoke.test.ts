/**
 * `ec2-reset-access revoke`: the runbook parameters it builds (checked against the RevokeKey
 * runbook's own allowedPatterns, as synthesized), its refusals before anything starts, and the
 * fleet report as a table with the exit code scripts branch on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { fleetExitCode, reportTable, revokeParameters, type FleetReportView, type RevokeOptions } from '../../cli/commands/revoke';
import { EXIT } from '../../cli/exit-codes';

const FLEET = parse(readFileSync(join(__dirname, '..', '..', 'runbooks', 'revoke-key-fleet.yaml'), 'utf8')) as {
  parameters: Record<string, { allowedPattern?: string; allowedValues?: string[]; maxChars?: number }>;
};
const FP = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
const opts = (o: Partial<RevokeOptions> = {}): RevokeOptions => ({ documentName: 'RevokeKey', ...o });

/** Every value the CLI would send passes the runbook's own constraint for that parameter. */
function expectRunbookAccepts(p: Record<string, string[]>): void {
  for (const [name, [value]] of Object.entries(p)) {
    const spec = FLEET.parameters[name];
    expect([name, spec !== undefined]).toEqual([name, true]);
    if (spec.allowedPattern) expect([name, new RegExp(spec.allowedPattern).test(value)]).toEqual([name, true]);
    if (spec.allowedValues) expect(spec.allowedValues).toContain(value);
    expect(value.length).toBeLessThanOrEqual(spec.maxChars ?? 512);
  }
}

test('builds parameters the runbook accepts: ids, a tag, a key pair with deletion, fingerprints, rate control', () => {
  const byIds = revokeParameters(['i-0123456789abcdef0', 'i-00000000000000001'], opts({ fingerprint: [FP], mode: 'Revoke', maxConcurrency: '10%', maxErrors: '0' }), {});
  expect(byIds).toEqual({ InstanceIds: ['i-0123456789abcdef0,i-00000000000000001'], Fingerprints: [FP], Mode: ['Revoke'], MaxConcurrency: ['10%'], MaxErrors: ['0'] });
  expectRunbookAccepts(byIds);
  const byTag = revokeParameters([], opts({ tag: 'Team=web', keyPair: 'old key', deleteKeyPair: true, allowStop: true, mode: 'Revoke' }), {});
  expect(byTag).toEqual({ TargetTagKey: ['Team'], TargetTagValue: ['web'], KeyPairName: ['old key'], Mode: ['Revoke'], AllowStop: ['True'], DeleteKeyPair: ['True'] });
  expectRunbookAccepts(byTag);
  expectRunbookAccepts(revokeParameters([], opts({ keyPair: 'leaked' }), { publicKeyParameter: '/reset-access/public-keys/cli-revoke-0a1b2c3d4e5f' }));
  const byGroup = revokeParameters([], opts({ resourceGroup: 'web-fleet.prod_1', fingerprint: [FP] }), {});
  expect(byGroup).toEqual({ ResourceGroupName: ['web-fleet.prod_1'], Fingerprints: [FP] });
  expectRunbookAccepts(byGroup);
  expectRunbookAccepts(revokeParameters([], opts({ resourceGroup: 'g'.repeat(300), fingerprint: [FP] }), {}));
});

test('refuses, before anything starts, what the runbook would refuse', () => {
  expect(() => revokeParameters([], opts({ fingerprint: [FP] }), {})).toThrow(/choose the instances/);
  expect(() => revokeParameters(['i-0123456789abcdef0'], opts(), {})).toThrow(/give the key to revoke/);
  expect(() => revokeParameters(['i-0123456789abcdef0'], opts({ tag: 'a=b', fingerprint: [FP] }), {})).toThrow(/one way/);
  expect(() => revokeParameters([], opts({ tag: 'a=b', resourceGroup: 'g1', fingerprint: [FP] }), {})).toThrow(/one way/);
  // Resource Groups' name rule (CreateGroupName; AWS... reserved); the runbook's pattern would refuse the first two too.
  for (const bad of ['a b', 'g'.repeat(301), 'AWSfleet', 'aws-x']) expect(() => revokeParameters([], opts({ resourceGroup: bad, fingerprint: [FP] }), {})).toThrow(/--resource-group must be/);
  expect(new RegExp(FLEET.parameters.ResourceGroupName.allowedPattern as string).test('a b')).toBe(false);
  expect(() => revokeParameters(['i-0123456789abcdef0'], opts({ fingerprint: ['MD5:aa:bb'] }), {})).toThrow(/SHA256 fingerprint/);
  expect(() => revokeParameters(['i-0123456789abcdef0'], opts({ fingerprint: [FP], deleteKeyPair: true }), {})).toThrow(/needs --key-pair/);
  expect(() => revokeParameters(['nope'], opts({ fingerprint: [FP] }), {})).toThrow(/not an instance id/);
  expect(() => revokeParameters([], opts({ keyPair: 'leaked', deleteKeyPair: true, mode: 'Audit' }), {})).toThrow(/needs --mode Revoke/);
});

test('prints the fleet report as a table, one row per instance, with the counts and the key pair; exit 4 only when an instance failed', () => {
  // Prepare
  const report: FleetReportView = {
    executionId: 'e',
    mode: 'Revoke',
    keys: [FP],
    selection: 'launched with key pair leaked',
    counts: { clean: 1, cleaned: 1, found: 0, incomplete: 0, windows: 0, unreachable: 1, failed: 0 },
    instances: [
      { instanceId: 'i-00000000000000001', outcome: 'cleaned', method: 'Online', found: 2, removed: 2, added: 1, usersWithoutKey: 'none', command: 'c1 on i-00000000000000001' },
      { instanceId: 'i-00000000000000002', outcome: 'clean', method: 'VolumeSwap', found: 0, removed: 0, added: 0, usersWithoutKey: 'bob', caLines: 1 },
      { instanceId: 'i-00000000000000003', outcome: 'unreachable', reason: 'running and not a managed node; AllowStop=False' },
    ],
    truncated: 0,
    keyPair: 'leaked kept: 1 unreachable (every instance must be clean or cleaned)',
  };
  // Act
  const lines = reportTable(report).split('\n');
  // Assess
  expect(lines[0]).toMatch(/^INSTANCE +OUTCOME +METHOD +FOUND +REMOVED +ADDED +LEFT WITHOUT KEY +NOTE$/);
  expect(lines[1].split(/ {2,}/)).toEqual(['i-00000000000000001', 'cleaned', 'Online', '2', '2', '1', '-', 'report: command c1 on i-00000000000000001']);
  expect(lines[2].split(/ {2,}/)).toEqual(['i-00000000000000002', 'clean', 'VolumeSwap', '0', '0', '0', 'bob', '1 cert-authority line(s)']);
  expect(lines[3].split(/ {2,}/)).toEqual(['i-00000000000000003', 'unreachable', '-', '-', '-', '-', '-', 'running and not a managed node; AllowStop=False']);
  expect(lines).toContain('3 instance(s) (launched with key pair leaked), mode Revoke: 1 clean, 1 cleaned, 0 found, 0 incomplete, 0 windows, 1 unreachable, 0 failed, 0 cancelled, 0 unknown');
  expect(lines).toContain('key pair: leaked kept: 1 unreachable (every instance must be clean or cleaned)');
  expect(fleetExitCode(report)).toBe(EXIT.ok);
  expect(fleetExitCode({ ...report, counts: { ...report.counts, failed: 1 } })).toBe(EXIT.failedRestored);
  // A cancelled instance's run restored it; one still running when the report was written is not settled (review P9).
  expect(fleetExitCode({ ...report, counts: { ...report.counts, cancelled: 1 } })).toBe(EXIT.failedRestored);
  expect(fleetExitCode({ ...report, counts: { ...report.counts, cancelled: 1, unknown: 1 } })).toBe(EXIT.error);
});
