/**
 * The console an operator meets at 3 a.m. (issue 13, item 8), checked on the synthesized
 * document, the JSON that CreateDocument receives.
 *
 * Assumption (local/README.md): the Systems Manager console lists an Automation document's input
 * parameters in the order the document declares them. AWS's pages do not say so; nothing but
 * the form's order depends on it.
 */
import { synthesize } from './synth';

const { stack, json } = synthesize({ skipBundling: true });
const content = json.Resources[stack.getLogicalId(stack.runbook.document)].Properties.Content;

describe('ResetAccess in the console', () => {
  it('lists what an operator changes first, the helper next, the Allow flags, the role last', () => {
    // Act
    const names = Object.keys(content.parameters);
    // Assess: every parameter is in exactly one group, and the groups come in this order.
    const groups: string[][] = [
      ['InstanceId'],
      ['PublicKey', 'PublicKeyParameter', 'Users', 'Method', 'Mode', 'KeyType', 'BackupMethod'],
      ['SubnetId', 'HelperInstanceType'],
      ['AllowEncryptedVolume', 'AllowEphemeralDataLoss'],
      ['AutomationAssumeRole'],
    ];
    expect([...names].sort()).toEqual(groups.flat().sort());
    const groupOf = (n: string): number => groups.findIndex((g) => g.includes(n));
    const order = names.map(groupOf);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(names[0]).toBe('InstanceId');
    expect(names[names.length - 1]).toBe('AutomationAssumeRole');
  });

  it('opens its description with "Before you run": what stops, what changes, what it costs', () => {
    const description: string = content.description;
    const before = description.indexOf('## Before you run');
    const what = description.indexOf('## What does this document do?');
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(what);
    const section = description.slice(before, what);
    expect(section).toMatch(/\*\*What stops\*\*/);
    expect(section).toMatch(/\*\*What changes\*\*/);
    expect(section).toMatch(/\*\*What it costs\*\*/);
  });
});
