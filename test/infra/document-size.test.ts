/**
 * SSM's document size limit, with room to spare (issue 10, defect 15).
 *
 * AWS: "The content of the document must not exceed 64KB. This quota also includes the content
 * specified for input parameters at runtime." (CreateDocument, Content:
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_CreateDocument.html; the same
 * text is in the SSM service model shipped with the AWS CLI, botocore data/ssm/2014-11-06), and
 * SendCommand and StartAutomationExecution can fail with MaxDocumentSizeExceeded ("The size limit
 * of a document is 64 KB"). So each document is measured as deployed, plus the largest parameter
 * values a run may give it, and must stay 8 KB under 64 KB (64 × 1024 bytes; AWS does not say
 * whether KB means 1000 or 1024 bytes here, so the margin covers the difference).
 *
 * The largest runtime value of a parameter:
 * - Command document: its `maxChars` (or its longest allowedValues entry); a parameter with
 *   neither is unbounded, and the test says so;
 * - Automation runbook: each value is at most 512 characters (AutomationParameterValue, max 512,
 *   in the SSM service model), less when `maxChars` says so, times at most 50 values for a list
 *   (AutomationParameterValueList, max 50) or its maxItems.
 * A CloudFormation token in the content (a function ARN, a role ARN, a document name) is counted
 * at 256 bytes once resolved: Lambda function ARNs are at most 140 characters and document names
 * at most 128 (CreateDocument Name).
 */
import { loadInjectKeyDocument, loadRevokeKeyDocument } from '../../lib/inject-key-document';
import { synthesize } from './synth';

const KB = 1024;
const LIMIT = 64 * KB;
const MARGIN = 8 * KB;
const TOKEN_BYTES = 256;
const AUTOMATION_VALUE_MAX = 512;
const AUTOMATION_LIST_MAX = 50;

/** The content as JSON with every intrinsic ({ Ref } / { Fn::… }) replaced by a 256-byte string. */
function resolvedBytes(content: unknown): number {
  const resolve = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) return 'x'.repeat(TOKEN_BYTES);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
    }
    return v;
  };
  return Buffer.byteLength(JSON.stringify(resolve(content)));
}

interface Measured {
  readonly name: string;
  readonly type: string;
  readonly content: number;
  readonly parameters: number;
  readonly unbounded: string[];
}

function runtimeParameterBytes(type: string, parameters: Record<string, Record<string, unknown>>): { bytes: number; unbounded: string[] } {
  let bytes = 0;
  const unbounded: string[] = [];
  for (const [name, spec] of Object.entries(parameters)) {
    const longestAllowed = Array.isArray(spec.allowedValues) ? Math.max(...spec.allowedValues.map((v) => Buffer.byteLength(String(v)))) : undefined;
    const maxChars = typeof spec.maxChars === 'number' ? spec.maxChars : undefined;
    let one: number | undefined = longestAllowed ?? maxChars;
    let count = 1;
    if (type === 'Automation') {
      one = Math.min(one ?? AUTOMATION_VALUE_MAX, AUTOMATION_VALUE_MAX);
      if (String(spec.type).startsWith('StringList') || String(spec.type).startsWith('MapList')) {
        count = Math.min(typeof spec.maxItems === 'number' ? spec.maxItems : AUTOMATION_LIST_MAX, AUTOMATION_LIST_MAX);
      }
    }
    if (one === undefined) {
      unbounded.push(name);
      continue;
    }
    // a character may take up to 4 bytes in UTF-8; the patterns here admit ASCII only, so 1 byte each,
    // plus the JSON around it: "Name":["value"],
    bytes += count * (one + 4) + Buffer.byteLength(name) + 6;
  }
  return { bytes, unbounded };
}

const { json } = synthesize({ skipBundling: true });
const documents: Measured[] = Object.entries(json.Resources as Record<string, any>)
  .filter(([, r]) => r.Type === 'AWS::SSM::Document')
  .map(([id, r]) => {
    const type = String(r.Properties.DocumentType);
    const content = r.Properties.Content as Record<string, any>;
    const { bytes, unbounded } = runtimeParameterBytes(type, (content.parameters ?? {}) as Record<string, Record<string, unknown>>);
    return { name: String(r.Properties.Name ?? id), type, content: resolvedBytes(content), parameters: bytes, unbounded };
  });

// The two Command documents that change authorized keys, measured from their loader too (the stack may not
// deploy the revoke-key document yet): both carry the shared script runbooks/key-files.sh.
for (const [name, content] of [['inject-key (loader)', loadInjectKeyDocument()], ['revoke-key (loader)', loadRevokeKeyDocument()]] as const) {
  const { bytes, unbounded } = runtimeParameterBytes('Command', (content.parameters ?? {}) as Record<string, Record<string, unknown>>);
  documents.push({ name, type: 'Command', content: resolvedBytes(content), parameters: bytes, unbounded });
}

const kb = (n: number): string => `${(n / KB).toFixed(1)} KB`;

describe('every synthesized document stays 8 KB under the 64 KB limit, runtime parameters included', () => {
  test('there are documents to measure (Command and Automation)', () => {
    expect(documents.map((d) => d.type).sort()).toEqual(expect.arrayContaining(['Automation', 'Command']));
  });

  test.each(documents.map((d) => [`${d.name} (${d.type}): ${kb(d.content)} content + ${kb(d.parameters)} parameters = ${kb(d.content + d.parameters)}`, d] as const))(
    '%s, at most 56 KB',
    (_title, d) => {
      expect({ name: d.name, unboundedParameters: d.unbounded }).toEqual({ name: d.name, unboundedParameters: [] });
      const total = d.content + d.parameters;
      const report = `${d.name}: ${total} bytes (${kb(d.content)} content + ${kb(d.parameters)} largest runtime parameters); ` +
        `the limit is ${LIMIT} bytes and this test keeps ${MARGIN} bytes free, so ${LIMIT - MARGIN - total} bytes remain`;
      expect({ report, withinMargin: total <= LIMIT - MARGIN }).toEqual({ report, withinMargin: true });
    },
  );

  test('the measure can fail: a document padded to 57 KB is over the line', () => {
    const padded = { schemaVersion: '2.2', description: 'd'.repeat(57 * KB), parameters: {}, mainSteps: [] };
    expect(resolvedBytes(padded) + runtimeParameterBytes('Command', {}).bytes).toBeGreaterThan(LIMIT - MARGIN);
    expect(runtimeParameterBytes('Command', { X: { type: 'String' } }).unbounded).toEqual(['X']);
  });
});
