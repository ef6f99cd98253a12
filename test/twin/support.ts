/**
 * Shared checks of the end-to-end tests: what "nothing lost" means, asserted the same way in
 * every file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DescribeTagsCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import type { CallRecord } from '../../local/agent';
import type { ImageSnapshot } from '../../local/disk/images';
import type { InstanceSnapshot, LockedOutInstance, Twin } from '../../local/twin';

/** The runbook as synthesized (the steps the tests walk). */
export function stepNames(twin: Twin): string[] {
  return (twin.automationDocument.mainSteps as Array<{ name: string }>).map((s) => s.name);
}

/** The runbook's result: `summarize.Payload`, one JSON object of at most 512 characters. */
export function summaryOf(result: { outputs: Record<string, unknown> }): Record<string, string> {
  const text = String(result.outputs['summarize.Payload'] ?? '');
  expect(text.length).toBeLessThanOrEqual(512);
  return JSON.parse(text) as Record<string, string>;
}

/** Baseline of one instance: its description in moto and its disk image's bytes. */
export interface Baseline {
  readonly instance: LockedOutInstance;
  readonly snapshot: InstanceSnapshot;
  readonly image?: ImageSnapshot;
}

export async function baseline(twin: Twin, instance: LockedOutInstance, withImage = true): Promise<Baseline> {
  return {
    instance,
    snapshot: await twin.snapshotInstance(instance.instanceId),
    image: withImage && instance.imagePath ? await twin.disk.snapshotImage(instance.imagePath) : undefined,
  };
}

/**
 * The promise the runbook makes whatever happens: the original root volume on the original
 * instance at its original device name with its original DeleteOnTermination, the instance in
 * its original state, no helper, network or lock left, and the disk byte-identical outside the
 * key files (`allowedFiles`, paths inside the target).
 */
export async function expectNothingLost(twin: Twin, before: Baseline, allowedFiles: readonly string[] = []): Promise<void> {
  const now = await twin.snapshotInstance(before.instance.instanceId);
  expect(now).toEqual(before.snapshot);
  expect(now.rootVolumeId).toBe(before.instance.rootVolumeId);
  expect(now.rootDeviceName).toBe(before.instance.rootDeviceName);
  const volume = await twin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [before.instance.rootVolumeId] }));
  expect(volume.Volumes?.[0]?.Attachments).toEqual([
    expect.objectContaining({ InstanceId: before.instance.instanceId, Device: before.instance.rootDeviceName, State: 'attached' }),
  ]);
  expect(await twin.leftovers()).toEqual({
    helpers: [],
    vpcs: [],
    subnets: [],
    internetGateways: [],
    routeTables: [],
    securityGroups: [],
    locks: [],
    addresses: [],
  });
  // No run's lock tag left on the instance or its root volume (issue 11: removed last).
  const lockTags = await twin.ec2.send(
    new DescribeTagsCommand({
      Filters: [
        { Name: 'key', Values: ['reset-access:lock'] },
        { Name: 'resource-id', Values: [before.instance.instanceId, before.instance.rootVolumeId] },
      ],
    }),
  );
  expect(lockTags.Tags ?? []).toEqual([]);
  if (before.image && before.instance.imagePath) {
    const after = await twin.disk.snapshotImage(before.instance.imagePath);
    const changed = twin.disk.diffImage(before.image, after).map((d) => d.key);
    const outside = changed.filter((key) => !allowedFiles.some((f) => key.endsWith(`:${f}`)));
    expect(outside).toEqual([]);
  }
}

/** Calls of a run that succeeded and change something in AWS (`service:Action`). */
export function mutatingCalls(callLog: readonly CallRecord[]): string[] {
  const readOnly = /^(Describe|Get|List)/;
  return callLog.filter((c) => c.status === 200 && !readOnly.test(c.action)).map((c) => `${c.service}:${c.action}`);
}

const KEY_MATERIAL = /PRIVATE KEY|openssh-key-v1|b3BlbnNzaC1rZXktdjE/;

/** No private key material anywhere in these texts (a failure names the text, never prints it). */
export function expectNoKeyMaterial(texts: readonly string[]): void {
  const holding = texts.map((t, i) => (KEY_MATERIAL.test(t) ? i : -1)).filter((i) => i >= 0);
  expect(holding).toEqual([]);
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

/** The restore path's steps: reached only from a failure or a cancel. */
export const RESTORE_PATH_STEPS = ['restore', 'cleanupAfterRestore', 'startRestore'];

/**
 * The main steps of runbooks/reset-access.yaml, in order, read from the YAML: test.each needs them
 * before a twin exists; each fault test checks that the synthesized document has the same.
 */
export function runbookStepNames(): string[] {
  const doc = parseYaml(readFileSync(join(__dirname, '..', '..', 'runbooks', 'reset-access.yaml'), 'utf8')) as { mainSteps: Array<{ name: string }> };
  return doc.mainSteps.map((s) => s.name);
}

interface RunbookStep {
  name: string;
  nextStep?: string;
  isEnd?: boolean;
  inputs?: { Choices?: Array<{ NextStep: string; Contains?: string }> };
}

/**
 * branchOnMethod and the online path, in order: from branchOnMethod's `|method:Online|` choice along
 * each step's nextStep to the step that ends the run (read from the YAML, so that no other path's
 * steps, the Windows one's or UserData's, are taken for it). Only names in `all` are kept.
 */
export function onlineStepNames(all: readonly string[] = runbookStepNames()): string[] {
  const doc = parseYaml(readFileSync(join(__dirname, '..', '..', 'runbooks', 'reset-access.yaml'), 'utf8')) as { mainSteps: RunbookStep[] };
  const byName = new Map(doc.mainSteps.map((step) => [step.name, step]));
  const first = byName.get('branchOnMethod')?.inputs?.Choices?.find((c) => c.Contains === '|method:Online|')?.NextStep;
  const out = ['branchOnMethod'];
  for (let step = byName.get(first ?? ''); step && !out.includes(step.name); step = step.isEnd ? undefined : byName.get(step.nextStep ?? '')) {
    out.push(step.name);
  }
  return out.filter((n) => all.includes(n));
}
