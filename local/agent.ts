/**
 * The twin's agent: an HTTP server on 127.0.0.1 in front of moto that plays the parts of AWS
 * moto lacks and keeps the books the tests read.
 *
 * - every request is parsed (EC2/autoscaling/IAM query protocol, SSM/KMS JSON 1.1) and counted
 *   by service and action;
 * - faults: an armed fault answers the nth matching call with an AWS-shaped error and forwards
 *   nothing;
 * - SSM Agent: DescribeInstanceInformation (helpers Online once their launch completed on the
 *   virtual clock), SendCommand (the document from moto; its parameters validated and passed as
 *   the SSM Agent does, see sendCommand; the script run for real on the attached volume's disk
 *   image), GetCommandInvocation, ListCommandInvocations, ListCommands, CancelCommand;
 * - GetAutomationExecution from the runner's execution registry;
 * - slow EC2 work (stop, start, run, terminate, attach, detach, image, snapshot) is scheduled on
 *   the virtual clock, and Describe* calls show the resource still changing while its completion
 *   is pending (an observer that sees it pending has waited: the clock moves to the completion);
 * - where moto differs from EC2: RunInstances honours ClientToken, an EBS mapping without a size
 *   takes the image's, DetachVolume gets its InstanceId filled in (moto answers 500 without it),
 *   CreateImage tags the image's snapshots, an instance-store image gives an instance-store root;
 * - everything else goes to moto unchanged.
 */
import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, request as httpRequest, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { CreateTagsCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { GetDocumentCommand, SSMClient } from '@aws-sdk/client-ssm';
import { parse as parseYaml } from 'yaml';
import { goRegexpVerdictsAsync } from './go-regexp';
import { createWindowsBootTwin, type WindowsBootTwin } from './windows-boot';
import { createUserDataTwin, IncorrectInstanceState } from './user-data-twin';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { KEYGEN_CHANNEL } from '../lambdas/common/names';
import { LambdaCharger, type ChargedCall } from './lambda-charge';
import { lambdaCommandPollLateness, latencyOf } from './latency';

/** The part of the runner's virtual clock the agent uses (local/runner/clock.ts). */
export interface AgentClock {
  now(): number;
  advanceTo(t: number): number;
  schedule(op: string, resourceIds: readonly string[], seconds?: number): { readonly completesAt: number };
  pending(resourceId: string): ReadonlyArray<{ readonly op: string; readonly completesAt: number }>;
}

/** What the disk side's runInjectScript takes and gives back (local/disk). */
export interface InjectScriptRun {
  readonly script: string;
  readonly env: Record<string, string>;
  readonly volumes: Record<string, string>;
  readonly timeoutMs: number;
  /**
   * The command runs on a managed target itself (the online method): this disk image (or loop
   * device) is that instance's live root, seen by the script at / (local/disk/run-inject.ts).
   */
  readonly liveRoot?: string;
}

/**
 * A target instance that is a managed node (the online method, issue 12): while it runs,
 * DescribeInstanceInformation lists it, and SendCommand to it runs the document on its own root.
 */
export interface ManagedTarget {
  /** @default '3.3.2746.0' (the first agent that passes parameters as environment variables) */
  readonly agentVersion?: string;
  /** @default 'Online' */
  readonly pingStatus?: 'Online' | 'ConnectionLost' | 'Inactive';
  /** @default 'Linux' */
  readonly platformType?: 'Linux' | 'Windows' | 'MacOS';
  /** The root volume whose image is the live root. */
  readonly rootVolumeId: string;
}
export interface InjectScriptResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}
export type RunInjectScript = (run: InjectScriptRun) => Promise<InjectScriptResult>;

/** An execution as GetAutomationExecution reports it. */
export interface KnownExecution {
  readonly status: string;
  readonly documentName?: string;
  readonly failureMessage?: string;
}
export type ExecutionLookup = (executionId: string) => KnownExecution | undefined;

/** A fault: the nth (and the following times-1) matching calls fail, nothing is forwarded. */
export interface AwsFault {
  /** `ec2`, `ssm`, `kms`, `autoscaling`, `iam`; any service when omitted. */
  readonly service?: string;
  readonly action: string;
  /** Which matching call (1-based, counted from when the fault is armed). @default 1 */
  readonly nth?: number;
  /** How many consecutive matching calls fail from the nth on. @default 1 */
  readonly times?: number;
  /** @default 'TwinInjectedFault' (not retryable by the SDK) */
  readonly code?: string;
  /** @default a message naming the call */
  readonly message?: string;
  /** @default 400 */
  readonly statusCode?: number;
}

export interface CallRecord {
  readonly service: string;
  readonly action: string;
  /** Virtual time of the call. */
  readonly at: number;
  readonly status: number;
  readonly faulted: boolean;
}

/** One request to the agent and the answer it gave, as bytes on the wire (text). */
export interface WireExchange {
  readonly service: string;
  readonly action: string;
  /** 'json' (SSM, KMS: the body is JSON), 'ec2' or 'query' (the body is a form). */
  readonly protocol: 'json' | 'ec2' | 'query';
  readonly status: number;
  /** The request body as the client sent it. */
  readonly request: string;
  /** The response body as the client received it. */
  readonly response: string;
  /** The access key id the request was signed with (SigV4 Credential scope): who made the call. */
  readonly accessKeyId?: string;
}

export interface CommandRecord {
  readonly commandId: string;
  readonly documentName: string;
  readonly instanceId: string;
  readonly parameters: Record<string, string>;
  readonly requestedAt: Date;
  readonly timeoutSeconds: number;
  readonly comment: string;
  /** Volume ids whose images the script ran on. */
  volumes: string[];
  status: 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'Cancelled' | 'TimedOut';
  exitCode: number;
  stdout: string;
  stderr: string;
  startedAt?: Date;
  endedAt?: Date;
  done: Promise<void>;
}

export interface AgentOptions {
  readonly motoEndpoint: string;
  readonly region: string;
  readonly clock: AgentClock;
  readonly runInjectScript: RunInjectScript;
  readonly executions?: ExecutionLookup;
  /** Wall-clock limit for one command's script. @default 120000 */
  readonly scriptTimeoutMs?: number;
  /** How a resource whose work is pending looks to an observer. @default 'show' */
  readonly transitions?: Transitions;
  /**
   * EC2's account limits (local/ec2-limits.ts): called before an EC2 request is served; throws
   * AwsErrorReply to refuse it. @default - none
   */
  readonly limits?: { admit(action: string, form: URLSearchParams): Promise<void> };
}

/**
 * 'show': the first observer sees it still changing (stopping, detaching, InProgress ...), and
 * the clock moves to the completion, so its next poll sees the end state. 'settle': the
 * observer sees the end state at once, the clock still moving to the completion (the same
 * modeled time, without the Lambdas' real-time sleeps between polls).
 */
export type Transitions = 'show' | 'settle';

export interface Agent {
  readonly endpoint: string;
  readonly port: number;
  /** Calls by `service:Action` since the last resetCalls. */
  calls(): Record<string, number>;
  callCount(service: string, action: string): number;
  callLog(): readonly CallRecord[];
  /**
   * Hear every exchange from now on, bodies included: what the bundled Lambdas and every other
   * client really sent and received. Returns the function that stops listening.
   */
  tapWire(listener: (exchange: WireExchange) => void): () => void;
  resetCalls(): void;
  injectFault(fault: AwsFault): void;
  clearFaults(): void;
  /** Faults armed that have not fired yet. */
  pendingFaults(): readonly AwsFault[];
  setClock(clock: AgentClock): void;
  setTransitions(mode: Transitions): void;
  setExecutionLookup(lookup: ExecutionLookup): void;
  /**
   * Serve more SSM JSON 1.1 actions (or replace one): the twin's Automation API
   * (local/automation-service.ts). A handler throws AwsErrorReply to answer with an AWS error.
   */
  addSsmHandlers(handlers: Record<string, SsmHandler>): void;
  /** The disk image (or loop device) backing an EBS volume. */
  registerVolume(volumeId: string, imagePath: string): void;
  /** Makes a target instance a managed node (ManagedTarget). */
  registerManaged(instanceId: string, target: ManagedTarget): void;
  volumeImage(volumeId: string): string | undefined;
  /** The Windows boots (issue 15, local/windows-boot.ts): key pairs as EC2 keeps them, boots so far. */
  readonly windows: WindowsBootTwin;
  commands(): readonly CommandRecord[];
  /** Waits for every command's script to end (none left running). */
  drainCommands(): Promise<void>;
  stop(): Promise<void>;
}

export type SsmHandler = (json: Record<string, unknown>, fromLambda?: boolean) => Promise<unknown> | unknown;

/**
 * Canonical's public parameters of Ubuntu Server 24.04 AMIs (the helper of a Windows target,
 * issue 15), which moto does not carry: /aws/service/canonical/ubuntu/server/24.04/stable/current/
 * <amd64|arm64>/hvm/ebs-gp3/ami-id (https://discourse.ubuntu.com/t/finding-ubuntu-images-with-the-aws-ssm-parameter-store/15507),
 * answered with the one Canonical-owned (099720109477) image in moto's list, ami-1e749f67, as the
 * twin's stand-in: its release does not matter to the twin, its owner does (the launch's IAM).
 */
export const UBUNTU_HELPER_AMI = 'ami-1e749f67';
function ubuntuParameter(name: string): { Parameter: Record<string, unknown> } | undefined {
  const m = /^\/aws\/service\/canonical\/ubuntu\/server\/24\.04\/stable\/current\/(amd64|arm64)\/hvm\/ebs-gp3\/ami-id$/.exec(name);
  if (!m) return undefined;
  return { Parameter: { Name: name, Type: 'String', Value: UBUNTU_HELPER_AMI, Version: 1, DataType: 'aws:ec2:image', ARN: `arn:aws:ssm:us-east-1::parameter${name}` } };
}

export class AgentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentError';
  }
}

/** An error the agent answers with, shaped per protocol (also thrown by added handlers). */
export class AwsErrorReply extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode = 400,
  ) {
    super(message);
    this.name = 'AwsErrorReply';
  }
}

type Protocol = 'ec2' | 'query' | 'json';

interface ParsedRequest {
  readonly service: string;
  readonly action: string;
  readonly protocol: Protocol;
  readonly form?: URLSearchParams;
  readonly json?: Record<string, unknown>;
}

const STATE_CODES: Record<string, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

/** Output limits of Run Command (GetCommandInvocation: 24,000 / 8,000 characters). */
export const STDOUT_LIMIT = 24000;
export const STDERR_LIMIT = 8000;
const PLUGIN_OUTPUT_LIMIT = 2500;

function serviceFromAuthorization(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/.exec(header);
  return m?.[1];
}

function parseRequest(req: IncomingMessage, body: string): ParsedRequest {
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string' && target.includes('.')) {
    const [prefix, action] = target.split('.', 2) as [string, string];
    const service =
      prefix === 'AmazonSSM' ? 'ssm' : prefix === 'TrentService' ? 'kms' : (serviceFromAuthorization(req.headers.authorization) ?? prefix);
    let json: Record<string, unknown> = {};
    if (body.trim() !== '') json = JSON.parse(body) as Record<string, unknown>;
    return { service, action, protocol: 'json', json };
  }
  const form = new URLSearchParams(body);
  const action = form.get('Action') ?? '';
  const service = serviceFromAuthorization(req.headers.authorization) ?? (action ? 'ec2' : 'unknown');
  return { service, action: action || `${req.method} ${req.url}`, protocol: service === 'ec2' ? 'ec2' : 'query', form };
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function errorBody(protocol: Protocol, code: string, message: string): { body: string; contentType: string } {
  const requestId = randomUUID();
  if (protocol === 'json') {
    return { body: JSON.stringify({ __type: code, message }), contentType: 'application/x-amz-json-1.1' };
  }
  if (protocol === 'ec2') {
    return {
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
      contentType: 'text/xml',
    };
  }
  return {
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
    contentType: 'text/xml',
  };
}

/** Values of an EC2 query list parameter (`InstanceId.1`, `InstanceId.2`, ...). */
function formList(form: URLSearchParams, name: string): string[] {
  const out: string[] = [];
  for (let i = 1; ; i++) {
    const v = form.get(`${name}.${i}`);
    if (v === null) break;
    out.push(v);
  }
  return out;
}

function allMatches(text: string, re: RegExp): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(re)) if (m[1] !== undefined) out.push(m[1]);
  return out;
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) : s;
}

/** [start, end) of each top-level `<item>` directly inside every `<container>` element. */
function itemsOf(xml: string, container: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const open = `<${container}>`;
  let from = 0;
  for (;;) {
    const c = xml.indexOf(open, from);
    if (c < 0) break;
    let i = c + open.length;
    let depth = 0;
    let start = -1;
    const tag = /<(\/?)item>|<\/([A-Za-z]+)>/g;
    tag.lastIndex = i;
    for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
      if (m[2] === container && depth === 0) {
        i = m.index;
        break;
      }
      if (m[2] !== undefined) continue;
      if (m[1] === '') {
        if (depth === 0) start = m.index;
        depth++;
      } else {
        depth--;
        if (depth === 0) out.push([start, m.index + '</item>'.length]);
      }
      i = tag.lastIndex;
    }
    from = i;
  }
  return out;
}

/** Rewrites each top-level item inside `<container>` with `f`. */
function mapItems(xml: string, container: string, f: (item: string) => string): string {
  const ranges = itemsOf(xml, container);
  let out = '';
  let last = 0;
  for (const [a, b] of ranges) {
    out += xml.slice(last, a) + f(xml.slice(a, b));
    last = b;
  }
  return out + xml.slice(last);
}

interface AttachmentMemo {
  readonly instanceId: string;
  readonly device: string;
}

/** Reads a document's Content (JSON or YAML) as an object. */
function parseDocumentContent(content: string): Record<string, unknown> {
  const doc = parseYaml(content) as unknown;
  if (!doc || typeof doc !== 'object') throw new AgentError('the document content is not an object');
  return doc as Record<string, unknown>;
}

interface DocParameter {
  readonly type?: string;
  readonly default?: unknown;
  readonly allowedPattern?: string;
  readonly allowedValues?: unknown[];
  readonly minChars?: number | string;
  readonly maxChars?: number | string;
  /** Per parameter (AWS, https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html). */
  readonly interpolationType?: string;
}

/** SSM's document quota, runtime parameters included (CreateDocument Content, SSM API reference). */
const DOCUMENT_SIZE_LIMIT = 64 * 1024;

/**
 * Parameter names the agent keeps: it drops (and logs) any other name before validation
 * (aws/amazon-ssm-agent, agent/framework/docparser/parameters/parameters.go, ValidParameters).
 */
const AGENT_PARAMETER_NAME = /^[a-zA-Z0-9]+$/;

/** A document-level failure of the agent: nothing ran (see validateAsTheAgentDoes). */
class AgentValidationFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentValidationFailure';
  }
}

/**
 * The agent's mandatory parameter validation, before any step runs: for every parameter the
 * document declares, its value (the one given, else the default) is tested against its
 * allowedPattern with Go's regexp.Compile + MatchString; a pattern that does not compile fails
 * the invocation as surely as a value that does not match. All errors are gathered and the
 * document fails as a whole. (aws/amazon-ssm-agent: agent/framework/docparser/docparser.go
 * getValidatedParameters; agent/framework/docparser/parameterstore/parameterstore.go
 * ValidateSSMParameters; agent/framework/docparser/paramvalidator/allowedregexparamvalidator.)
 * allowedValues and min/maxChars are the agent's *optional* validators, applied only to documents
 * run through aws:runDocument (same parameterstore.go); SendCommand checks them here instead.
 * The real agent writes the offending value into its message; the twin writes its length only,
 * so that nothing a caller pasted (possibly a private key) reaches a log.
 */
async function validateAsTheAgentDoes(declared: Record<string, DocParameter>, values: Record<string, string>): Promise<void> {
  const names = Object.keys(declared).filter((n) => typeof declared[n].allowedPattern === 'string' && declared[n].allowedPattern !== '');
  const verdicts = await goRegexpVerdictsAsync(names.map((n) => [declared[n].allowedPattern as string, values[n] ?? ''] as const));
  const errors: string[] = [];
  names.forEach((name, i) => {
    const v = verdicts[i];
    const pattern = declared[name].allowedPattern as string;
    if (v.compileError !== undefined) {
      errors.push(
        `error thrown in 'AllowedRegexParamValidator' while validating parameter /${name}/: ` +
          `encountered error while compiling allowed pattern - internal error: ${v.compileError}`,
      );
    } else if (!v.match) {
      errors.push(
        `error thrown in 'AllowedRegexParamValidator' while validating parameter /${name}/: ` +
          `parameter value /<${(values[name] ?? '').length} characters, withheld by the twin>/ does not match the allowed pattern /${pattern}/`,
      );
    }
  });
  if (errors.length > 0) throw new AgentValidationFailure(`all errors during param validation errors: ${errors.join('\n')}`);
}

/**
 * What the agent does with `{{ Name }}` in a step's text for a parameter *without* ENV_VAR: a
 * string that is only `{{ Name }}` becomes the value; elsewhere each `{{ Name }}` (spaces allowed)
 * becomes the value with every `$$` turned into `$`, all in one pass (aws/amazon-ssm-agent,
 * agent/framework/docparser/parameters/parameters.go, ReplaceParameters / ReplaceParameter).
 * For a parameter *with* ENV_VAR no source we hold says what the agent does with `{{ Name }}`
 * (the agent source we have, 3.3.1142.0, predates ENV_VAR): the twin refuses such a document, so
 * the product cannot come to depend on either reading (local/README.md, assumptions).
 */
function interpolateAsTheAgentDoes(line: string, declared: Record<string, DocParameter>, values: Record<string, string>): string {
  const escape = (n: string): string => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const name of Object.keys(declared)) {
    if (new RegExp(`^\\{\\{${GO_SPACE}*${escape(name)}${GO_SPACE}*\\}\\}$`).test(line)) {
      if (declared[name].interpolationType === 'ENV_VAR') throw new AgentError(ENV_VAR_AND_BRACES(name));
      return values[name] ?? '';
    }
  }
  let out = '';
  let rest = line;
  const token = new RegExp(`\\{\\{${GO_SPACE}*([a-zA-Z0-9]+)${GO_SPACE}*\\}\\}`);
  for (;;) {
    const m = token.exec(rest);
    if (!m) break;
    const name = m[1];
    out += rest.slice(0, m.index);
    if (name in declared) {
      if (declared[name].interpolationType === 'ENV_VAR') throw new AgentError(ENV_VAR_AND_BRACES(name));
      out += (values[name] ?? '').split('$$').join('$');
    } else {
      out += m[0];
    }
    rest = rest.slice(m.index + m[0].length);
  }
  return out + rest;
}

/** Go's `\s` (https://pkg.go.dev/regexp/syntax): the agent's `{{\s*Name\s*}}` means these only. */
const GO_SPACE = '[\\t\\n\\f\\r ]';

const ENV_VAR_AND_BRACES = (name: string): string =>
  `the document has {{ ${name} }} in a step although ${name} has interpolationType ENV_VAR: no source settles what the ` +
  `SSM Agent does then, so the twin refuses it; read "$SSM_${name}" instead`;

/**
 * The runCommand lines of a Command document's aws:runShellScript steps, and its parameters. The
 * plugin reads runCommand (and workingDirectory, timeoutSeconds) from the step's inputs; any other
 * key there, an `interpolationType` included, means nothing to it (aws/amazon-ssm-agent,
 * agent/plugins/runscript/runscript.go, RunScriptPluginInput).
 */
function commandScript(doc: Record<string, unknown>): { lines: string[]; parameters: Record<string, DocParameter> } {
  const parameters = (doc.parameters ?? {}) as Record<string, DocParameter>;
  const steps = doc.mainSteps;
  if (!Array.isArray(steps) || steps.length === 0) throw new AgentError('the Command document has no mainSteps');
  const lines: string[] = [];
  for (const step of steps as Array<Record<string, unknown>>) {
    if (step.action !== 'aws:runShellScript') {
      throw new AgentError(`the twin's agent runs aws:runShellScript only, not ${String(step.action)}`);
    }
    const inputs = (step.inputs ?? {}) as Record<string, unknown>;
    const run = inputs.runCommand;
    if (Array.isArray(run)) lines.push(...run.map(String));
    else if (typeof run === 'string') lines.push(run);
    else throw new AgentError('aws:runShellScript without runCommand');
  }
  return { lines, parameters };
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const motoUrl = new URL(options.motoEndpoint);
  const credentials = { accessKeyId: 'twin', secretAccessKey: 'twin' };
  const motoEc2 = new EC2Client({ endpoint: options.motoEndpoint, region: options.region, credentials });
  const motoSsm = new SSMClient({ endpoint: options.motoEndpoint, region: options.region, credentials });
  const scriptTimeoutMs = options.scriptTimeoutMs ?? 120000;

  let clock = options.clock;
  let transitions: Transitions = options.transitions ?? 'show';
  let executions: ExecutionLookup = options.executions ?? (() => undefined);
  let counts = new Map<string, number>();
  let log: CallRecord[] = [];
  const wireListeners = new Set<(exchange: WireExchange) => void>();
  interface ArmedFault {
    readonly fault: AwsFault;
    seen: number;
    fired: number;
  }
  let faults: ArmedFault[] = [];
  const volumeImages = new Map<string, string>();
  // Method=UserData (issue 12): what EC2 and the instance do with user data (local/user-data-twin.ts).
  const userDataTwin = createUserDataTwin({
    ec2: motoEc2,
    volumeImage: (id) => volumeImages.get(id),
    // The boot powered the instance off: it stops once its start has completed, after the
    // StopInstances figure of the latency table (an OS shutdown, the same as a stop's).
    onPoweroff: async (id) => {
      const start = pendingOp(id, ['StartInstances']);
      await motoEc2.send(new StopInstancesCommand({ InstanceIds: [id] }));
      clock.schedule('StopInstances', [id], (start ? start.completesAt - clock.now() : 0) + latencyOf('StopInstances'));
    },
  });
  const windowsBoot = createWindowsBootTwin({ ec2: motoEc2, volumeImage: (id) => volumeImages.get(id) });
  const managedTargets = new Map<string, ManagedTarget>();
  // A Lambda's key generation starts: the twin sets each invocation's AWS_ACCESS_KEY_ID (local/twin.ts).
  const charger = new LambdaCharger(clock);
  const onKeygen = (): void => charger.keygenStarted(process.env.AWS_ACCESS_KEY_ID ?? '');
  subscribe(KEYGEN_CHANNEL, onKeygen);
  const commandList: CommandRecord[] = [];
  const clientTokens = new Map<string, string>();
  /** What a DetachVolume detached, so a pending detach still shows the attachment. */
  const detaching = new Map<string, AttachmentMemo>();

  const pendingOp = (id: string, ops: string[]): { op: string; completesAt: number } | undefined =>
    clock.pending(id).find((p) => ops.includes(p.op));

  /**
   * An observer met work still going: it has waited for it, so the clock moves to the
   * completion. True when the answer shows the resource still changing ('show'); with 'settle'
   * the observer sees the end state at once (no real-time poll in the Lambdas).
   */
  const observed = (p: { completesAt: number }): boolean => {
    clock.advanceTo(p.completesAt);
    return transitions === 'show';
  };

  function matchFault(service: string, action: string): AwsFault | undefined {
    for (const armed of faults) {
      const f = armed.fault;
      if (f.action !== action) continue;
      if (f.service !== undefined && f.service !== service) continue;
      armed.seen += 1;
      const nth = f.nth ?? 1;
      const times = f.times ?? 1;
      if (armed.seen >= nth && armed.fired < times) {
        armed.fired += 1;
        return f;
      }
    }
    return undefined;
  }

  function forward(req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || k === 'host' || k === 'content-length' || k === 'connection') continue;
        headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
      headers['content-length'] = String(body.length);
      const out = httpRequest(
        { host: motoUrl.hostname, port: motoUrl.port, method: req.method, path: req.url, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const h: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v === undefined || k === 'content-length' || k === 'connection' || k === 'transfer-encoding') continue;
              h[k] = Array.isArray(v) ? v.join(', ') : v;
            }
            resolve({ status: res.statusCode ?? 500, headers: h, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });
  }

  // ---- EC2: before forwarding ----

  async function describeVolume(volumeId: string) {
    const out = await motoEc2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return out.Volumes?.[0];
  }

  async function imageRootSize(imageId: string, deviceName: string): Promise<number> {
    const out = await motoEc2.send(new DescribeImagesCommand({ ImageIds: [imageId] })).catch(() => undefined);
    const mappings = out?.Images?.[0]?.BlockDeviceMappings ?? [];
    const m = mappings.find((b) => b.DeviceName === deviceName) ?? mappings[0];
    return m?.Ebs?.VolumeSize ?? 8;
  }

  /** Tags of a CreateImage's `snapshot` TagSpecification, applied after the call. */
  let snapshotTagsOfImage: Array<{ Key: string; Value: string }> = [];

  /** Removes the TagSpecification of `resourceType` from an EC2 query (renumbering the rest); returns its tags. */
  function takeTagSpecification(form: URLSearchParams, resourceType: string): Array<{ Key: string; Value: string }> {
    const specs: Array<{ type: string; tags: Array<{ Key: string; Value: string }> }> = [];
    for (let i = 1; form.get(`TagSpecification.${i}.ResourceType`) !== null; i++) {
      const tags: Array<{ Key: string; Value: string }> = [];
      for (let j = 1; form.get(`TagSpecification.${i}.Tag.${j}.Key`) !== null; j++) {
        tags.push({ Key: form.get(`TagSpecification.${i}.Tag.${j}.Key`) ?? '', Value: form.get(`TagSpecification.${i}.Tag.${j}.Value`) ?? '' });
      }
      specs.push({ type: form.get(`TagSpecification.${i}.ResourceType`) ?? '', tags });
    }
    for (const key of [...form.keys()]) if (key.startsWith('TagSpecification.')) form.delete(key);
    const kept = specs.filter((s) => s.type !== resourceType);
    kept.forEach((spec, n) => {
      form.set(`TagSpecification.${n + 1}.ResourceType`, spec.type);
      spec.tags.forEach((t, m) => {
        form.set(`TagSpecification.${n + 1}.Tag.${m + 1}.Key`, t.Key);
        form.set(`TagSpecification.${n + 1}.Tag.${m + 1}.Value`, t.Value);
      });
    });
    return specs.filter((s) => s.type === resourceType).flatMap((s) => s.tags);
  }

  async function tagImageSnapshots(responseBody: string): Promise<void> {
    const imageId = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(responseBody)?.[1];
    const tags = snapshotTagsOfImage;
    snapshotTagsOfImage = [];
    if (!imageId || tags.length === 0) return;
    const out = await motoEc2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const snapshots = (out.Images?.[0]?.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId).filter((x): x is string => !!x);
    if (snapshots.length > 0) await motoEc2.send(new CreateTagsCommand({ Resources: snapshots, Tags: tags }));
  }

  async function prepareEc2(form: URLSearchParams, action: string): Promise<string | undefined> {
    if (action === 'ModifyInstanceAttribute' && (form.get('UserData.Value') !== null || form.get('Attribute') === 'userData')) {
      const id = form.get('InstanceId') ?? '';
      try {
        await userDataTwin.refuseUnlessStopped(id, async (i) => {
          const out = await motoEc2.send(new DescribeInstancesCommand({ InstanceIds: [i] }));
          const name = out.Reservations?.[0]?.Instances?.[0]?.State?.Name ?? 'unknown';
          // A stop still pending on the virtual clock is a stopping instance.
          return name === 'stopped' && pendingOp(i, ['StopInstances']) ? 'stopping' : name;
        });
      } catch (err) {
        if (err instanceof IncorrectInstanceState) throw new AwsErrorReply('IncorrectInstanceState', err.message);
        throw err;
      }
    }
    if (action === 'GetPasswordData') {
      // A Windows instance's password data after the twin booted it (local/windows-boot.ts).
      const xml = windowsBoot.passwordDataXml(form.get('InstanceId') ?? '', randomUUID());
      if (xml !== undefined) return xml;
    }
    if (action === 'GetConsoleOutput') {
      const xml = userDataTwin.consoleOutputXml(form.get('InstanceId') ?? '', randomUUID());
      if (xml !== undefined) return xml;
      // A Windows boot's console lines (local/windows-boot.ts), in the same response shape.
      const id = form.get('InstanceId') ?? '';
      const text = windowsBoot.consoleText(id);
      if (text !== undefined) {
        return [
          '<?xml version="1.0" encoding="UTF-8"?>',
          '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
          `<requestId>${randomUUID()}</requestId>`,
          `<instanceId>${id}</instanceId>`,
          `<timestamp>${new Date().toISOString()}</timestamp>`,
          `<output>${Buffer.from(text).toString('base64')}</output>`,
          '</GetConsoleOutputResponse>',
        ].join('');
      }
    }
    if (action === 'RunInstances') {
      const token = form.get('ClientToken');
      if (token && clientTokens.has(token)) return clientTokens.get(token);
      // AWS takes a mapping's size from the image's snapshot; moto wants it spelled out.
      for (let i = 1; form.get(`BlockDeviceMapping.${i}.DeviceName`) !== null; i++) {
        const p = `BlockDeviceMapping.${i}.Ebs`;
        const hasEbs = [...form.keys()].some((k) => k.startsWith(`${p}.`));
        if (hasEbs && form.get(`${p}.VolumeSize`) === null && form.get(`${p}.SnapshotId`) === null) {
          form.set(`${p}.VolumeSize`, String(await imageRootSize(form.get('ImageId') ?? '', form.get(`BlockDeviceMapping.${i}.DeviceName`) ?? '')));
        }
      }
    }
    if (action === 'CreateImage') {
      // moto cannot tag the image's snapshots in the call (EC2 can): keep those tags aside and
      // put them on the snapshots once the image exists.
      snapshotTagsOfImage = takeTagSpecification(form, 'snapshot');
    }
    if (action === 'DetachVolume' && !form.get('InstanceId')) {
      const volumeId = form.get('VolumeId') ?? '';
      const vol = await describeVolume(volumeId).catch(() => undefined);
      const instanceId = vol?.Attachments?.[0]?.InstanceId;
      if (instanceId) form.set('InstanceId', instanceId);
      else throw new AwsErrorReply('IncorrectState', `Volume '${volumeId}' is in the 'available' state.`);
    }
    if (action === 'DetachVolume') {
      const volumeId = form.get('VolumeId') ?? '';
      const vol = await describeVolume(volumeId).catch(() => undefined);
      const att = vol?.Attachments?.find((a) => a.InstanceId === form.get('InstanceId'));
      if (att?.InstanceId && att.Device) detaching.set(volumeId, { instanceId: att.InstanceId, device: att.Device });
    }
    return undefined;
  }

  // ---- EC2: after a successful forward ----

  function afterEc2(form: URLSearchParams, action: string, responseBody: string): void {
    switch (action) {
      case 'StopInstances':
        clock.schedule('StopInstances', formList(form, 'InstanceId'));
        break;
      case 'StartInstances':
        clock.schedule('StartInstances', formList(form, 'InstanceId'));
        break;
      case 'TerminateInstances':
        clock.schedule('TerminateInstances', formList(form, 'InstanceId'));
        break;
      case 'RunInstances': {
        const ids = allMatches(responseBody, /<instanceId>(i-[0-9a-f]+)<\/instanceId>/g);
        clock.schedule('RunInstancesUntilOnline', ids);
        const token = form.get('ClientToken');
        if (token) clientTokens.set(token, responseBody);
        break;
      }
      case 'AttachVolume':
        clock.schedule('AttachVolume', [form.get('VolumeId') ?? '', form.get('InstanceId') ?? ''].filter(Boolean));
        break;
      case 'DetachVolume':
        clock.schedule('DetachVolume', [form.get('VolumeId') ?? '', form.get('InstanceId') ?? ''].filter(Boolean));
        break;
      case 'CreateImage': {
        const imageId = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(responseBody)?.[1];
        clock.schedule('CreateImage', [form.get('InstanceId') ?? '', ...(imageId ? [imageId] : [])]);
        break;
      }
      case 'CreateSnapshot': {
        const snapshotId = /<snapshotId>(snap-[0-9a-f]+)<\/snapshotId>/.exec(responseBody)?.[1];
        clock.schedule('CreateSnapshot', [form.get('VolumeId') ?? '', ...(snapshotId ? [snapshotId] : [])]);
        break;
      }
      default:
        break;
    }
  }

  /** Root device type of each image (moto gives every instance an EBS root). */
  const imageRootTypes = new Map<string, string>();
  async function learnImages(body: string): Promise<void> {
    const ids = [...new Set(allMatches(body, /<imageId>(ami-[0-9a-z]+)<\/imageId>/g))].filter((id) => !imageRootTypes.has(id));
    if (ids.length === 0) return;
    const out = await motoEc2.send(new DescribeImagesCommand({ ImageIds: ids })).catch(() => undefined);
    for (const id of ids) imageRootTypes.set(id, 'ebs');
    for (const image of out?.Images ?? []) if (image.ImageId) imageRootTypes.set(image.ImageId, image.RootDeviceType ?? 'ebs');
  }

  /** An instance launched from an instance-store image has an instance-store root, no EBS root. */
  function instanceStoreRoots(body: string): string {
    return mapItems(body, 'instancesSet', (item) => {
      const imageId = /<imageId>([^<]+)<\/imageId>/.exec(item)?.[1] ?? '';
      if (imageRootTypes.get(imageId) !== 'instance-store') return item;
      const rootDevice = /<rootDeviceName>([^<]+)<\/rootDeviceName>/.exec(item)?.[1];
      const withType = item.replace('<rootDeviceType>ebs</rootDeviceType>', '<rootDeviceType>instance-store</rootDeviceType>');
      return mapItems(withType, 'blockDeviceMapping', (bdm) => (bdm.includes(`<deviceName>${rootDevice}</deviceName>`) ? '' : bdm));
    });
  }

  /** Rewrites each top-level `<item>` of `<set>` (items nest: an image's block device mappings are items too). */
  function topLevelItems(body: string, set: string, f: (item: string) => string): string {
    const open = body.indexOf(`<${set}>`);
    const close = body.lastIndexOf(`</${set}>`);
    if (open < 0 || close < 0) return body;
    const inner = body.slice(open + set.length + 2, close);
    const out: string[] = [];
    let depth = 0;
    let start = 0;
    const tag = /<(\/?)item>/g;
    for (let m = tag.exec(inner); m; m = tag.exec(inner)) {
      if (m[1] === '') {
        if (depth === 0) start = m.index;
        depth += 1;
      } else {
        depth -= 1;
        if (depth === 0) out.push(f(inner.slice(start, m.index + m[0].length)));
      }
    }
    return `${body.slice(0, open + set.length + 2)}${out.join('')}${body.slice(close)}`;
  }

  /** Shows instances and volumes still changing while their completion is pending. */
  function maskEc2(action: string, input: string): string {
    let body = input;
    if (action === 'DescribeInstances') {
      body = instanceStoreRoots(body);
      return body.replace(
        /(<instanceId>(i-[0-9a-f]+)<\/instanceId>(?:(?!<instanceId>)[\s\S])*?<instanceState>)<code>\d+<\/code><name>([a-z-]+)<\/name>/g,
        (whole, head: string, id: string, name: string) => {
          let shown = name;
          const stop = pendingOp(id, ['StopInstances']);
          const start = pendingOp(id, ['StartInstances']);
          const term = pendingOp(id, ['TerminateInstances']);
          if (term && name === 'terminated') {
            if (observed(term)) shown = 'shutting-down';
          } else if (stop && name === 'stopped') {
            if (observed(stop)) shown = 'stopping';
          } else if (start && name === 'running') {
            if (observed(start)) shown = 'pending';
          }
          if (shown === name) return whole;
          return `${head}<code>${STATE_CODES[shown]}</code><name>${shown}</name>`;
        },
      );
    }
    if (action === 'DescribeVolumes') {
      return body.replace(/<item><volumeType>[\s\S]*?<\/item><\/attachmentSet>|<item><volumeType>[\s\S]*?<attachmentSet\/>/g, (item) => {
        const id = /<volumeId>(vol-[0-9a-f]+)<\/volumeId>/.exec(item)?.[1];
        if (!id) return item;
        const detach = pendingOp(id, ['DetachVolume']);
        const attach = pendingOp(id, ['AttachVolume']);
        if (detach && /<status>available<\/status>/.test(item)) {
          const memo = detaching.get(id);
          if (!observed(detach) || !memo) return item;
          const att = `<attachmentSet><item><volumeId>${id}</volumeId><instanceId>${memo.instanceId}</instanceId><device>${memo.device}</device><status>detaching</status></item></attachmentSet>`;
          return item
            .replace('<status>available</status>', '<status>in-use</status>')
            .replace(/<attachmentSet\/>|<attachmentSet><\/attachmentSet>/, att);
        }
        if (attach && /<attachmentSet><item>/.test(item)) {
          if (!observed(attach)) return item;
          return item.replace(/(<attachmentSet><item>[\s\S]*?)<status>attached<\/status>/, '$1<status>attaching</status>');
        }
        return item;
      });
    }
    if (action === 'DescribeImages') {
      // An image whose CreateImage is still pending on the clock is shown pending, its EBS mappings
      // without snapshot ids yet (CreateImage's snapshots are made after the call: "crash-consistent
      // snapshots that include only the data that has been written to the volumes at the time the
      // snapshots are created", NoReboot, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html).
      // When the ids appear is not documented: at the CreateImage row's completion (local/README.md).
      return topLevelItems(body, 'imagesSet', (item) => {
        const id = /<imageId>(ami-[0-9a-z]+)<\/imageId>/.exec(item.replace(/<blockDeviceMapping>[\s\S]*<\/blockDeviceMapping>/, ''))?.[1];
        const creating = id ? pendingOp(id, ['CreateImage']) : undefined;
        if (!creating || !observed(creating)) return item;
        return item.replace(/<imageState>[a-z]+<\/imageState>/, '<imageState>pending</imageState>').replace(/<snapshotId>snap-[0-9a-z]+<\/snapshotId>/g, '');
      });
    }
    return body;
  }

  // ---- SSM: what the agent answers itself ----

  async function describeInstanceInformation(json: Record<string, unknown>): Promise<unknown> {
    const wanted = new Set<string>();
    for (const f of (json.InstanceInformationFilterList ?? []) as Array<{ key?: string; valueSet?: string[] }>) {
      if (f.key === 'InstanceIds') for (const v of f.valueSet ?? []) wanted.add(v);
    }
    for (const f of (json.Filters ?? []) as Array<{ Key?: string; Values?: string[] }>) {
      if (f.Key === 'InstanceIds') for (const v of f.Values ?? []) wanted.add(v);
    }
    const out = await motoEc2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:reset-access:role', Values: ['helper'] },
          { Name: 'instance-state-name', Values: ['running'] },
        ],
      }),
    );
    const list: unknown[] = [];
    for (const r of out.Reservations ?? []) {
      for (const i of r.Instances ?? []) {
        const id = i.InstanceId ?? '';
        if (wanted.size > 0 && !wanted.has(id)) continue;
        const launching = pendingOp(id, ['RunInstancesUntilOnline']);
        if (launching && observed(launching)) continue; // not registered yet
        list.push({
          InstanceId: id,
          PingStatus: 'Online',
          LastPingDateTime: Date.now() / 1000,
          AgentVersion: '3.3.0.0',
          IsLatestVersion: true,
          PlatformType: 'Linux',
          PlatformName: 'Amazon Linux',
          PlatformVersion: '2023',
          ResourceType: 'EC2Instance',
          IPAddress: i.PrivateIpAddress ?? '10.0.0.10',
          ComputerName: i.PrivateDnsName ?? id,
        });
      }
    }
    // Managed targets, while they run (EC2 state from moto; a stop or start still pending counts
    // as not running). The shape: InstanceInformation of the SSM service model (botocore
    // data/ssm/2014-11-06/service-2.json): PingStatus Online | ConnectionLost | Inactive,
    // PlatformType Windows | Linux | MacOS, ResourceType EC2Instance.
    const targets = [...managedTargets.keys()].filter((id) => wanted.size === 0 || wanted.has(id));
    if (targets.length > 0) {
      const described = await motoEc2.send(new DescribeInstancesCommand({ InstanceIds: targets }));
      for (const r of described.Reservations ?? []) {
        for (const i of r.Instances ?? []) {
          const id = i.InstanceId ?? '';
          const target = managedTargets.get(id);
          if (!target || i.State?.Name !== 'running') continue;
          if (pendingOp(id, ['StopInstances', 'StartInstances', 'TerminateInstances'])) continue;
          list.push({
            InstanceId: id,
            PingStatus: target.pingStatus ?? 'Online',
            LastPingDateTime: Date.now() / 1000,
            AgentVersion: target.agentVersion ?? '3.3.2746.0',
            IsLatestVersion: false,
            PlatformType: target.platformType ?? 'Linux',
            PlatformName: 'Amazon Linux',
            PlatformVersion: '2023',
            ResourceType: 'EC2Instance',
            IPAddress: i.PrivateIpAddress ?? '10.0.0.20',
            ComputerName: i.PrivateDnsName ?? id,
          });
        }
      }
    }
    return { InstanceInformationList: list };
  }

  /** Online: the agent of a managed node answers only while it pings Online. */
  async function isOnline(instanceId: string): Promise<boolean> {
    const info = (await describeInstanceInformation({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] })) as {
      InstanceInformationList: Array<{ PingStatus?: string }>;
    };
    return info.InstanceInformationList.some((i) => i.PingStatus === 'Online');
  }

  async function sendCommand(json: Record<string, unknown>): Promise<unknown> {
    const documentName = String(json.DocumentName ?? '');
    const instanceIds = (json.InstanceIds ?? []) as string[];
    if (instanceIds.length !== 1) throw new AwsErrorReply('InvalidInstanceId', 'the twin runs a command on exactly one instance id');
    const instanceId = instanceIds[0] as string;
    let doc: Record<string, unknown>;
    let documentVersion = '1';
    try {
      const got = await motoSsm.send(new GetDocumentCommand({ Name: documentName }));
      doc = parseDocumentContent(got.Content ?? '');
      documentVersion = got.DocumentVersion ?? '1';
    } catch (err) {
      if (err instanceof AgentError) throw new AwsErrorReply('InvalidDocumentContent', err.message);
      throw new AwsErrorReply('InvalidDocument', `Document ${documentName} does not exist`);
    }
    let lines: string[];
    let declared: Record<string, DocParameter>;
    try {
      ({ lines, parameters: declared } = commandScript(doc));
    } catch (err) {
      throw new AwsErrorReply('InvalidDocumentContent', (err as Error).message);
    }
    // The service: "You must specify values for all required parameters ... You can only supply
    // values to parameters defined in the SSM document" (InvalidParameters, SSM service model), and
    // the 64 KB quota counts the runtime parameters (MaxDocumentSizeExceeded; CreateDocument Content).
    const given = (json.Parameters ?? {}) as Record<string, unknown>;
    const values: Record<string, string> = {};
    for (const name of Object.keys(given)) {
      if (!(name in declared)) throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" is not defined in the document`);
    }
    for (const [name, spec] of Object.entries(declared)) {
      const raw = given[name];
      let value: string;
      if (raw === undefined) {
        if (spec.default === undefined) throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" is required`);
        // the agent fills each missing parameter with its default before validating (docparser.go getValidatedParameters)
        value = String(spec.default);
      } else if (Array.isArray(raw)) {
        if (raw.length !== 1) throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" takes one value`);
        value = String(raw[0]);
      } else {
        value = String(raw);
      }
      // Assumption (local/README.md): the service enforces allowedValues and min/maxChars of a
      // top-level Command document (the agent does so only under aws:runDocument). Never echo the value.
      if (spec.allowedValues !== undefined && !spec.allowedValues.map(String).includes(value)) {
        throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" is not one of its allowedValues`);
      }
      if (spec.maxChars !== undefined && value.length > Number(spec.maxChars)) {
        throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" is longer than its maxChars (${String(spec.maxChars)})`);
      }
      if (spec.minChars !== undefined && value.length < Number(spec.minChars)) {
        throw new AwsErrorReply('InvalidParameters', `Parameter "${name}" is shorter than its minChars (${String(spec.minChars)})`);
      }
      values[name] = value;
    }
    const size = Buffer.byteLength(JSON.stringify(doc)) + Buffer.byteLength(JSON.stringify(given));
    if (size > DOCUMENT_SIZE_LIMIT) {
      throw new AwsErrorReply('MaxDocumentSizeExceeded', `The document with its parameters is ${size} bytes; the limit is 64 KB`);
    }
    // The agent, on the instance, before any step: names it cannot use are dropped, then every
    // declared parameter is validated with Go's regexp (validateAsTheAgentDoes). A failure there is a
    // failed invocation, not a refused SendCommand.
    const agentValues = Object.fromEntries(Object.entries(values).filter(([n]) => AGENT_PARAMETER_NAME.test(n)));
    for (const name of Object.keys(declared)) if (!(name in agentValues)) agentValues[name] = String(declared[name].default ?? '');
    let validation: string | undefined;
    try {
      await validateAsTheAgentDoes(declared, agentValues);
    } catch (err) {
      if (!(err instanceof AgentValidationFailure)) throw err;
      validation = err.message;
    }
    let script: string;
    try {
      script = lines.map((line) => interpolateAsTheAgentDoes(line, declared, agentValues)).join('\n');
    } catch (err) {
      if (err instanceof AgentError) throw new AwsErrorReply('InvalidDocumentContent', `twin: ${err.message}`);
      throw err;
    }
    if (!(await isOnline(instanceId))) {
      throw new AwsErrorReply('InvalidInstanceId', `Instance ${instanceId} is not in a valid state for this command (not Online in Systems Manager)`);
    }
    const attached = await motoEc2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }] }),
    );
    const volumes: Record<string, string> = {};
    for (const v of attached.Volumes ?? []) {
      const image = v.VolumeId ? volumeImages.get(v.VolumeId) : undefined;
      if (v.VolumeId && image) volumes[v.VolumeId] = image;
    }
    // A managed target runs the document on its own root, live (the online method).
    const target = managedTargets.get(instanceId);
    const liveRoot = target ? volumeImages.get(target.rootVolumeId) : undefined;
    if (target && !liveRoot) throw new AgentError(`managed target ${instanceId} has no disk image for its root volume ${target.rootVolumeId}`);
    const timeoutSeconds = Number(json.TimeoutSeconds ?? 3600);
    const record: CommandRecord = {
      commandId: randomUUID(),
      documentName,
      instanceId,
      parameters: values,
      requestedAt: new Date(),
      timeoutSeconds,
      comment: String(json.Comment ?? ''),
      volumes: Object.keys(volumes),
      status: 'InProgress',
      exitCode: -1,
      stdout: '',
      stderr: '',
      done: Promise.resolve(),
    };
    // ENV_VAR, per parameter: the agent gives the step SSM_<Name> holding the value as is (AWS,
    // "Data elements and parameters", https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-doc-syntax.html;
    // SSM Agent 3.3.2746.0 or later, https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-troubleshooting.html).
    // Names need no escaping: the agent keeps only names of letters and digits (AGENT_PARAMETER_NAME).
    // A parameter without ENV_VAR sets nothing, wherever else an interpolationType is written.
    // (The runShellScript plugin also sets SSM_COMMAND_ID, agent/plugins/runscript/runscript.go; the
    // twin leaves it out: the script does not read it, and disk/run-inject.ts passes parameters only.)
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(agentValues)) {
      if (declared[name]?.interpolationType === 'ENV_VAR') env[`SSM_${name}`] = value;
    }
    if (validation !== undefined) {
      // A document-level failure: the agent replies Failed with the error as the document's trace
      // output and runs no step (agent/messageservice/interactor/mdsinteractor/mdsinteractor.go,
      // processMessage / sendDocLevelResponse). Where GetCommandInvocation shows that text is an
      // assumption (local/README.md): here, StandardErrorContent.
      record.status = 'Failed';
      record.stderr = validation;
      record.startedAt = new Date();
      record.endedAt = record.startedAt;
      commandList.push(record);
      return sendCommandReply(record, documentVersion, values);
    }
    record.startedAt = new Date();
    record.done = options
      .runInjectScript({ script, env, volumes: liveRoot ? {} : volumes, liveRoot, timeoutMs: Math.min(scriptTimeoutMs, timeoutSeconds * 1000) })
      .then(
        (r) => {
          record.exitCode = r.exitCode;
          record.stdout = r.stdout;
          record.stderr = r.stderr;
          if (record.status === 'InProgress') record.status = r.exitCode === 0 ? 'Success' : 'Failed';
        },
        (err: unknown) => {
          record.exitCode = 1;
          record.stderr = `the twin could not run the script: ${(err as Error).message}`;
          if (record.status === 'InProgress') record.status = 'Failed';
        },
      )
      .finally(() => {
        record.endedAt = new Date();
      });
    commandList.push(record);
    // On a managed target (the online method) the command runs on the instance itself: its own row.
    clock.schedule(target ? 'RunCommandOnline' : 'RunCommand', [record.commandId, instanceId]);
    return sendCommandReply(record, documentVersion, values);
  }

  function sendCommandReply(record: CommandRecord, documentVersion: string, values: Record<string, string>): unknown {
    const { documentName, instanceId, timeoutSeconds } = record;
    return {
      Command: {
        CommandId: record.commandId,
        DocumentName: documentName,
        DocumentVersion: documentVersion,
        Comment: record.comment,
        ExpiresAfter: record.requestedAt.getTime() / 1000 + timeoutSeconds,
        Parameters: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, [v]])),
        InstanceIds: [instanceId],
        Targets: [],
        RequestedDateTime: record.requestedAt.getTime() / 1000,
        Status: 'Pending',
        StatusDetails: 'Pending',
        MaxConcurrency: '50',
        MaxErrors: '0',
        TargetCount: 1,
        CompletedCount: 0,
        ErrorCount: 0,
        DeliveryTimedOutCount: 0,
        TimeoutSeconds: timeoutSeconds,
      },
    };
  }

  function findCommand(commandId: string, instanceId?: string): CommandRecord {
    const c = commandList.find((x) => x.commandId === commandId && (instanceId === undefined || x.instanceId === instanceId));
    if (!c) throw new AwsErrorReply('InvocationDoesNotExist', `Command ${commandId} has no invocation on ${instanceId ?? 'any instance'}`);
    return c;
  }

  /** Status as seen now: the script must have ended, and the clock passed its completion. */
  async function commandStatus(c: CommandRecord, lambdaPoll = false): Promise<string> {
    await c.done;
    const running = pendingOp(c.commandId, ['RunCommand', 'RunCommandOnline']);
    if (running && c.status !== 'Cancelled') {
      const shown = observed(running);
      // A Lambda polling the command notices its end up to one poll interval late.
      if (lambdaPoll) clock.advanceTo(clock.now() + lambdaCommandPollLateness());
      if (shown) return 'InProgress';
    }
    return c.status;
  }

  async function getCommandInvocation(json: Record<string, unknown>, fromLambda = false): Promise<unknown> {
    const c = findCommand(String(json.CommandId ?? ''), String(json.InstanceId ?? ''));
    const status = await commandStatus(c, fromLambda);
    const finished = status !== 'InProgress';
    return {
      CommandId: c.commandId,
      InstanceId: c.instanceId,
      Comment: c.comment,
      DocumentName: c.documentName,
      DocumentVersion: '1',
      PluginName: 'injectKey',
      ResponseCode: finished ? c.exitCode : -1,
      ExecutionStartDateTime: c.startedAt?.toISOString() ?? '',
      ExecutionElapsedTime: '',
      ExecutionEndDateTime: finished ? (c.endedAt?.toISOString() ?? '') : '',
      Status: status,
      StatusDetails: status,
      StandardOutputContent: finished ? truncate(c.stdout, STDOUT_LIMIT) : '',
      StandardOutputUrl: '',
      StandardErrorContent: finished ? truncate(c.stderr, STDERR_LIMIT) : '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  async function listCommandInvocations(json: Record<string, unknown>): Promise<unknown> {
    const list: unknown[] = [];
    for (const c of commandList) {
      if (json.CommandId !== undefined && c.commandId !== json.CommandId) continue;
      if (json.InstanceId !== undefined && c.instanceId !== json.InstanceId) continue;
      const status = await commandStatus(c);
      const finished = status !== 'InProgress';
      list.push({
        CommandId: c.commandId,
        InstanceId: c.instanceId,
        InstanceName: '',
        Comment: c.comment,
        DocumentName: c.documentName,
        DocumentVersion: '1',
        RequestedDateTime: c.requestedAt.getTime() / 1000,
        Status: status,
        StatusDetails: status,
        StandardOutputUrl: '',
        StandardErrorUrl: '',
        CommandPlugins: json.Details
          ? [
              {
                Name: 'injectKey',
                Status: status,
                StatusDetails: status,
                ResponseCode: finished ? c.exitCode : -1,
                Output: finished ? truncate(c.stdout, PLUGIN_OUTPUT_LIMIT) : '',
              },
            ]
          : [],
      });
    }
    return { CommandInvocations: list };
  }

  async function listCommands(json: Record<string, unknown>): Promise<unknown> {
    const list: unknown[] = [];
    for (const c of commandList) {
      if (json.CommandId !== undefined && c.commandId !== json.CommandId) continue;
      if (json.InstanceId !== undefined && c.instanceId !== json.InstanceId) continue;
      const status = await commandStatus(c);
      list.push({
        CommandId: c.commandId,
        DocumentName: c.documentName,
        Comment: c.comment,
        InstanceIds: [c.instanceId],
        RequestedDateTime: c.requestedAt.getTime() / 1000,
        Status: status,
        StatusDetails: status,
        TargetCount: 1,
        CompletedCount: status === 'InProgress' ? 0 : 1,
        ErrorCount: status === 'Failed' ? 1 : 0,
      });
    }
    return { Commands: list };
  }

  function cancelCommand(json: Record<string, unknown>): unknown {
    const id = String(json.CommandId ?? '');
    const matching = commandList.filter((c) => c.commandId === id);
    if (matching.length === 0) throw new AwsErrorReply('InvalidCommandId', `Command ${id} does not exist`);
    for (const c of matching) if (c.status === 'InProgress' || c.status === 'Pending') c.status = 'Cancelled';
    return {};
  }

  function getAutomationExecution(json: Record<string, unknown>): unknown {
    const id = String(json.AutomationExecutionId ?? '');
    const found = executions(id);
    if (!found) throw new AwsErrorReply('AutomationExecutionNotFoundException', `Automation execution ${id} was not found`);
    return {
      AutomationExecution: {
        AutomationExecutionId: id,
        DocumentName: found.documentName ?? '',
        AutomationExecutionStatus: found.status,
        ...(found.failureMessage ? { FailureMessage: found.failureMessage } : {}),
      },
    };
  }

  const ssmHandlers: Record<string, SsmHandler> = {
    DescribeInstanceInformation: describeInstanceInformation,
    SendCommand: sendCommand,
    GetCommandInvocation: getCommandInvocation,
    ListCommandInvocations: listCommandInvocations,
    ListCommands: listCommands,
    CancelCommand: cancelCommand,
    GetAutomationExecution: getAutomationExecution,
  };

  // ---- the server ----

  function replyRaw(res: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: Record<string, string> = {}): void {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { ...extra, 'content-type': contentType, 'content-length': String(buf.length), 'x-amzn-requestid': randomUUID() });
    res.end(buf);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let raw = Buffer.concat(chunks);
    const requestText = raw.toString('utf8');
    const parsed = parseRequest(req, requestText);
    const reply = (r: ServerResponse, status: number, contentType: string, body: string | Buffer, extra: Record<string, string> = {}): void => {
      if (wireListeners.size > 0) {
        const exchange: WireExchange = {
          service: parsed.service,
          action: parsed.action,
          protocol: parsed.protocol,
          status,
          request: requestText,
          response: typeof body === 'string' ? body : body.toString('utf8'),
          accessKeyId: /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ''))?.[1],
        };
        for (const listener of wireListeners) listener(exchange);
      }
      if (charged) charger.answered(caller, charged);
      replyRaw(r, status, contentType, body, extra);
    };
    const key = `${parsed.service}:${parsed.action}`;
    // A bundled Lambda signs with its own key id (`twin-<logicalId>`, local/twin.ts): what its
    // handler does is charged on the clock when the latency model says so (local/latency.ts,
    // `lambdaWork`; off by default): the key it generated just before storing it, then the call.
    // Overlap is charged only where the handler's work truly overlaps (local/lambda-charge.ts).
    const caller = /Credential=([^/,\s]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
    const fromLambda = caller.startsWith('twin-');
    let charged: ChargedCall | undefined;
    if (fromLambda) {
      const generated =
        parsed.service === 'ssm' && parsed.action === 'PutParameter' && parsed.json?.Type === 'SecureString'
          ? /^ec2-reset-access: SSH private key \((\w+),/.exec(String(parsed.json.Description ?? ''))?.[1]
          : undefined;
      charged = charger.arrived(caller, parsed.action, generated);
    }
    const at = charged?.start ?? clock.now();
    const record = (status: number, faulted: boolean) => {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      log.push({ service: parsed.service, action: parsed.action, at, status, faulted });
    };
    try {
      const fault = matchFault(parsed.service, parsed.action);
      if (fault) {
        const e = errorBody(
          parsed.protocol,
          fault.code ?? 'TwinInjectedFault',
          fault.message ?? `fault injected by the twin on ${key}`,
        );
        record(fault.statusCode ?? 400, true);
        reply(res, fault.statusCode ?? 400, e.contentType, e.body, parsed.protocol === 'json' ? { 'x-amzn-errortype': fault.code ?? 'TwinInjectedFault' } : {});
        return;
      }
      const publicParameter = parsed.service === 'ssm' && parsed.action === 'GetParameter' ? ubuntuParameter(String(parsed.json?.Name ?? '')) : undefined;
      if (publicParameter) {
        record(200, false);
        reply(res, 200, 'application/x-amz-json-1.1', JSON.stringify(publicParameter));
        return;
      }
      if (parsed.service === 'ssm' && parsed.protocol === 'json' && ssmHandlers[parsed.action]) {
        const result = await ssmHandlers[parsed.action]!(parsed.json ?? {}, fromLambda);
        record(200, false);
        reply(res, 200, 'application/x-amz-json-1.1', JSON.stringify(result));
        return;
      }
      if (parsed.service === 'ec2' && parsed.form) {
        await options.limits?.admit(parsed.action, parsed.form);
        const cached = await prepareEc2(parsed.form, parsed.action);
        if (cached !== undefined) {
          record(200, false);
          reply(res, 200, 'text/xml', cached);
          return;
        }
        raw = Buffer.from(parsed.form.toString());
      }
      const out = await forward(req, raw);
      record(out.status, false);
      let body: Buffer = out.body;
      if (parsed.service === 'ec2' && parsed.form && out.status === 200) {
        const text = out.body.toString('utf8');
        afterEc2(parsed.form, parsed.action, text);
        if (parsed.action === 'DescribeInstances') await learnImages(text);
        if (parsed.action === 'StartInstances') await userDataTwin.afterStart(formList(parsed.form, 'InstanceId'));
        if (parsed.action === 'StartInstances') await windowsBoot.afterStart(formList(parsed.form, 'InstanceId'));
        if (parsed.action === 'CreateImage') await tagImageSnapshots(text);
        const masked = maskEc2(parsed.action, text);
        if (masked !== text) body = Buffer.from(masked);
      }
      reply(res, out.status, out.headers['content-type'] ?? 'text/xml', body, out.headers);
    } catch (err) {
      const e =
        err instanceof AwsErrorReply
          ? err
          : new AwsErrorReply('InternalFailure', `twin agent: ${(err as Error).message}`, 500);
      record(e.statusCode, false);
      const b = errorBody(parsed.protocol, e.code, e.message);
      reply(res, e.statusCode, b.contentType, b.body, parsed.protocol === 'json' ? { 'x-amzn-errortype': e.code } : {});
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) replyRaw(res, 500, 'text/plain', `twin agent: ${(err as Error).message}`);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;

  return {
    endpoint,
    port,
    calls: () => Object.fromEntries(counts),
    callCount: (service, action) => counts.get(`${service}:${action}`) ?? 0,
    callLog: () => [...log],
    tapWire(listener) {
      wireListeners.add(listener);
      return () => {
        wireListeners.delete(listener);
      };
    },
    resetCalls() {
      counts = new Map();
      log = [];
    },
    injectFault(fault) {
      faults.push({ fault, seen: 0, fired: 0 });
    },
    clearFaults() {
      faults = [];
    },
    pendingFaults: () => faults.filter((f) => f.fired < (f.fault.times ?? 1)).map((f) => f.fault),
    setClock(c) {
      clock = c;
    },
    setTransitions(mode) {
      transitions = mode;
    },
    setExecutionLookup(lookup) {
      executions = lookup;
    },
    addSsmHandlers(handlers) {
      Object.assign(ssmHandlers, handlers);
    },
    registerManaged(instanceId, target) {
      managedTargets.set(instanceId, target);
    },
    registerVolume(volumeId, imagePath) {
      volumeImages.set(volumeId, imagePath);
    },
    volumeImage: (volumeId) => volumeImages.get(volumeId),
    windows: windowsBoot,
    commands: () => [...commandList],
    async drainCommands() {
      await Promise.all(commandList.map((c) => c.done));
    },
    async stop() {
      unsubscribe(KEYGEN_CHANNEL, onKeygen);
      await Promise.all(commandList.map((c) => c.done));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      motoEc2.destroy();
      motoSsm.destroy();
    },
  };
}
