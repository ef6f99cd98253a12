/**
 * RevokeKey (issue 14): what a revoke run is asked to do, defined once for the fleet's resolve
 * step, the per-instance runbook's preflight, the inject-key step that sends the revoke command,
 * the per-instance report and the fleet's gather step.
 *
 * The keys to revoke are always OpenSSH SHA256 fingerprints of the key blob (what `ssh-keygen -l`
 * prints): a key pair name or a long public key line is turned into its fingerprint here, so the
 * command on the instance matches by the key itself, whatever the line's options or comment.
 */
import { DescribeKeyPairsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError, isAwsError } from './errors';
import { PUBLIC_KEY_PATH, REVOKE_PATH } from './names';
import { fingerprintOf, InvalidPublicKeyError } from './public-key';
import { requireString, shown, validatePublicKey, validateUsers } from './validation';

export const REVOKE_MODES = ['Audit', 'Revoke'] as const;
export type RevokeMode = (typeof REVOKE_MODES)[number];
export const REVOKE_METHODS = ['Auto', 'Online', 'VolumeSwap'] as const;
export type RevokeMethod = (typeof REVOKE_METHODS)[number];

/**
 * `SHA256:` and 43 characters of unpadded base64 (a SHA-256 digest is 32 bytes): the form
 * `ssh-keygen -l` prints and the revoke Command document's `Fingerprints` parameter takes
 * (its contract: runbooks/revoke-key.yaml).
 */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]$/;
/** The revoke document takes 1 to 20 fingerprints. */
export const MAX_FINGERPRINTS = 20;

/**
 * An EC2 key pair name: up to 255 ASCII characters (EC2 API model, CreateKeyPair KeyName). The
 * runbooks allow the printable ASCII characters but `,` and `|` (one name per parameter; `|`
 * never reaches a Payload the branches read).
 */
export const KEY_PAIR_NAME_PATTERN = /^[\x20-\x2b\x2d-\x7b\x7d\x7e]{1,255}$/;

/** What every instance of one revoke run is asked to do (the plan's `action`, the fleet's spec). */
export interface RevokeAction {
  kind: 'revoke';
  mode: RevokeMode;
  /** 1..20 SHA256 fingerprints, deduplicated, in the order given. */
  fingerprints: string[];
  /** Where each fingerprint came from (`Fingerprints`, `KeyPairName <name>`, `PublicKeyParameter <name>`). */
  sources: string[];
  /** One OpenSSH public key line, or ''. */
  replacementKey: string;
  /** False: a running instance without an Online agent is reported unreachable, never stopped. */
  allowStop: boolean;
}

/** The revoke inputs as the runbooks give them (strings; empty means not given). */
export interface RevokeKeyInputs {
  fingerprints: string;
  keyPairName: string;
  publicKeyParameter: string;
  replacementPublicKey: string;
  mode: string;
  allowStop: string;
}

function optionalString(o: Record<string, unknown>, field: string, maxChars = 512): string {
  const v = o[field];
  if (v === undefined) return '';
  return requireString(v, field, maxChars).trim();
}

/** The revoke fields of an InputPayload, as strings (absent: ''). */
export function revokeInputsOf(o: Record<string, unknown>): RevokeKeyInputs {
  return {
    fingerprints: optionalString(o, 'Fingerprints', 2048),
    keyPairName: optionalString(o, 'KeyPairName', 255),
    publicKeyParameter: optionalString(o, 'PublicKeyParameter', 160),
    replacementPublicKey: optionalString(o, 'ReplacementPublicKey', 3072),
    mode: optionalString(o, 'Mode') || 'Audit',
    allowStop: optionalString(o, 'AllowStop') || 'False',
  };
}

export function validateMode(value: string): RevokeMode {
  if ((REVOKE_MODES as readonly string[]).includes(value)) return value as RevokeMode;
  throw new InvalidInputError(`Mode must be Audit or Revoke; got ${shown(value)}`);
}

export function validateRevokeMethod(value: unknown): RevokeMethod {
  if (value === undefined || value === '') return 'Auto';
  const s = requireString(value, 'Method');
  if ((REVOKE_METHODS as readonly string[]).includes(s)) return s as RevokeMethod;
  throw new InvalidInputError(`Method must be one of ${REVOKE_METHODS.join(', ')}; got ${shown(s)}`);
}

/** A comma-separated list of fingerprints (empty: none). Entries are named by position, never echoed. */
export function parseFingerprints(text: string): string[] {
  if (text.trim() === '') return [];
  const list = text.split(',').map((f) => f.trim());
  list.forEach((f, i) => {
    if (!FINGERPRINT_PATTERN.test(f)) {
      throw new InvalidInputError(
        `Fingerprints must be comma-separated OpenSSH SHA256 fingerprints (SHA256: and 43 base64 characters, as ssh-keygen -l prints them); entry ${i + 1} is not one`,
      );
    }
  });
  return list;
}

/** A key pair name as the runbook allows it; throws naming the rule (the value is a name, not a secret). */
export function validateKeyPairName(name: string): string {
  if (name === '') return '';
  if (!KEY_PAIR_NAME_PATTERN.test(name)) {
    throw new InvalidInputError('KeyPairName must be 1 to 255 printable ASCII characters without "," or "|"');
  }
  return name;
}

/** The fingerprint of a public key line, the message never echoing the line. */
function lineFingerprint(line: string, what: string): string {
  const { line: checked } = validatePublicKey(line, what);
  if (checked === '') throw new InvalidInputError(`${what} is empty`);
  try {
    return fingerprintOf(checked);
  } catch (err) {
    if (err instanceof InvalidPublicKeyError) throw new InvalidInputError(`${what} is not a valid OpenSSH public key line: ${err.message}`);
    throw err;
  }
}

/**
 * The public key of an EC2 key pair, with DescribeKeyPairs `IncludePublicKey=true` ("If true, the
 * public key material is included in the response": EC2 API reference, DescribeKeyPairs,
 * https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeKeyPairs.html). The console's
 * fingerprint of a key pair EC2 created is not an OpenSSH one (an MD5 or SHA-1 of the private key
 * for RSA: "Verify your key pair's fingerprint", EC2 User Guide), so the fingerprint is computed
 * here from the public key itself.
 */
export async function keyPairFingerprint(ec2: EC2Client, name: string): Promise<string> {
  let publicKey: string | undefined;
  try {
    const out = await ec2.send(new DescribeKeyPairsCommand({ KeyNames: [name], IncludePublicKey: true }));
    publicKey = out.KeyPairs?.find((k) => k.KeyName === name)?.PublicKey;
  } catch (err) {
    if (isAwsError(err, 'InvalidKeyPair.NotFound')) throw new InvalidInputError(`KeyPairName ${name} is not a key pair in this account and Region`);
    throw err;
  }
  if (!publicKey) throw new InvalidInputError(`Key pair ${name} has no public key in DescribeKeyPairs; give its Fingerprints instead`);
  return lineFingerprint(publicKey.replace(/\r?\n$/, ''), `the public key of key pair ${name}`);
}

/** The name rule of PublicKeyParameter: under /reset-access/public-keys/, as ResetAccess's. */
const PUBLIC_KEY_PARAMETER = new RegExp(`^/${PUBLIC_KEY_PATH}/[A-Za-z0-9_.-]{1,128}$`);

/**
 * The fingerprint of the key line stored in the String parameter `name` (a key line may be
 * longer than the 512 characters of a parameter value). Only String parameters are read:
 * GetParameter returns a SecureString encrypted without WithDecryption
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html).
 */
export async function parameterFingerprint(ssm: SSMClient, name: string): Promise<string> {
  if (!PUBLIC_KEY_PARAMETER.test(name)) {
    throw new InvalidInputError(`PublicKeyParameter must name a parameter under /${PUBLIC_KEY_PATH}/ (letters, digits, "_", "-", ".")`);
  }
  let value: string | undefined;
  let type: string | undefined;
  try {
    const out = await ssm.send(new GetParameterCommand({ Name: name }));
    value = out.Parameter?.Value;
    type = out.Parameter?.Type;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) throw new InvalidInputError(`PublicKeyParameter ${name} does not exist`);
    throw err;
  }
  if (type !== 'String') throw new InvalidInputError(`PublicKeyParameter ${name} is a ${type ?? 'parameter of no type'}; store the key line as a String`);
  return lineFingerprint((value ?? '').replace(/\r?\n$/, ''), `PublicKeyParameter ${name}`);
}

export interface RevokeKeyDeps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
}

/**
 * Checks every revoke input and turns the keys to revoke into fingerprints. Throws
 * InvalidInputError, naming the field, for anything wrong; calls AWS only to read (a key pair's
 * public key, a stored key line).
 */
export async function resolveRevokeAction(deps: RevokeKeyDeps, inputs: RevokeKeyInputs): Promise<RevokeAction> {
  const mode = validateMode(inputs.mode);
  if (inputs.allowStop !== 'True' && inputs.allowStop !== 'False') throw new InvalidInputError(`AllowStop must be True or False; got ${shown(inputs.allowStop)}`);
  const fingerprints: string[] = [];
  const sources: string[] = [];
  const add = (fp: string, source: string): void => {
    if (!fingerprints.includes(fp)) {
      fingerprints.push(fp);
      sources.push(source);
    }
  };
  for (const fp of parseFingerprints(inputs.fingerprints)) add(fp, 'Fingerprints');
  const keyPairName = validateKeyPairName(inputs.keyPairName);
  if (keyPairName) add(await keyPairFingerprint(deps.ec2, keyPairName), `KeyPairName ${keyPairName}`);
  if (inputs.publicKeyParameter) add(await parameterFingerprint(deps.ssm, inputs.publicKeyParameter), `PublicKeyParameter ${inputs.publicKeyParameter}`);
  if (fingerprints.length === 0) {
    throw new InvalidInputError('Give the keys to revoke: Fingerprints, KeyPairName or PublicKeyParameter (at least one)');
  }
  if (fingerprints.length > MAX_FINGERPRINTS) {
    throw new InvalidInputError(`${fingerprints.length} keys to revoke; the limit is ${MAX_FINGERPRINTS} per run`);
  }
  const replacementKey = validatePublicKey(inputs.replacementPublicKey, 'ReplacementPublicKey').line;
  if (replacementKey !== '' && fingerprints.includes(fingerprintOf(replacementKey))) {
    throw new InvalidInputError('ReplacementPublicKey is one of the keys to revoke');
  }
  return { kind: 'revoke', mode, fingerprints, sources, replacementKey, allowStop: inputs.allowStop === 'True' };
}

/** Users as the revoke runbooks give them: who gets the replacement even where no revoked key was. */
export function validateRevokeUsers(value: unknown): string[] {
  return value === undefined ? [] : validateUsers(value);
}

/** `/reset-access/revoke/<parent execution id>/spec`: what the fleet's children run (written by resolve). */
export function revokeSpecName(parentExecutionId: string): string {
  return `/${REVOKE_PATH}/${parentExecutionId}/spec`;
}

/** `/reset-access/revoke/<parent execution id>/report`: the fleet report (written by gather). */
export function revokeReportName(parentExecutionId: string): string {
  return `/${REVOKE_PATH}/${parentExecutionId}/report`;
}

/** The spec name rule (what a child accepts as RevokeSpec). */
export const REVOKE_SPEC_NAME = new RegExp(`^/${REVOKE_PATH}/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/spec$`);

/** The fleet execution id a spec name carries (the child's explicit RevokeSpec parameter), or undefined. */
export function parentOfSpecName(name: string): string | undefined {
  return REVOKE_SPEC_NAME.exec(name)?.[1];
}

/**
 * `/reset-access/revoke/<parent execution id>/results`: where each child of a fleet run writes its
 * own result (review P10), so that gather never has to find the children through a parent link.
 */
export function revokeResultsPath(parentExecutionId: string): string {
  return `/${REVOKE_PATH}/${parentExecutionId}/results`;
}

/** `/reset-access/revoke/<parent execution id>/results/<instance id>`: one child's result. */
export function revokeResultName(parentExecutionId: string, instanceId: string): string {
  return `${revokeResultsPath(parentExecutionId)}/${instanceId}`;
}

/** The fleet's spec: the action, and the choices every child makes the same way. */
export interface RevokeSpec {
  version: 1;
  parentExecutionId: string;
  action: RevokeAction;
  users: string[];
  method: RevokeMethod;
  subnetId: string;
  helperInstanceType: string;
  /** The instances resolve selected, in order. */
  instanceIds: string[];
  /** How they were selected (for the report). */
  selection: string;
}

/** Reads and checks a fleet spec; throws InvalidInputError naming the parameter. */
export async function readRevokeSpec(ssm: SSMClient, name: string): Promise<RevokeSpec> {
  if (!REVOKE_SPEC_NAME.test(name)) throw new InvalidInputError(`RevokeSpec must be /${REVOKE_PATH}/<execution id>/spec`);
  let text: string | undefined;
  try {
    text = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (err) {
    if (isAwsError(err, 'ParameterNotFound')) throw new InvalidInputError(`RevokeSpec ${name} does not exist (has the fleet run ended?)`);
    throw err;
  }
  let spec: RevokeSpec;
  try {
    spec = JSON.parse(text ?? '') as RevokeSpec;
  } catch {
    throw new InvalidInputError(`RevokeSpec ${name} is not JSON`);
  }
  if (spec?.version !== 1 || spec.action?.kind !== 'revoke' || !Array.isArray(spec.action.fingerprints)) {
    throw new InvalidInputError(`RevokeSpec ${name} is not a version 1 revoke spec`);
  }
  // The same checks as for the inputs themselves: a spec is only as trusted as its parameter.
  parseFingerprints(spec.action.fingerprints.join(','));
  validateMode(spec.action.mode);
  validateRevokeMethod(spec.method);
  validateUsers(spec.users.join(','));
  if (spec.action.replacementKey) validatePublicKey(spec.action.replacementKey, 'the spec\'s replacement key');
  return spec;
}

/**
 * The JSON report of the revoke Command document: the last line of its standard output (the
 * contract with the document, runbooks/revoke-key.yaml). Readers ignore fields they do not know.
 */
export interface RevokeCommandReport {
  version: number;
  status: 'ok' | 'error';
  mode?: string;
  files?: Array<{ path: string; users?: string[]; matches?: number; removed?: number; added?: number; kept?: number }>;
  found?: number;
  removed?: number;
  added?: number;
  usersWithoutKey?: string[];
  caLines?: Array<{ path: string; line: number }>;
  authorizedKeysCommand?: string;
  verified?: boolean;
  /** false: the command could not read everything sshd reads (an unclean journal not replayed in Audit, a home elsewhere). */
  complete?: boolean;
  warnings?: string[];
  error?: string;
}

/** The report from the command's standard output (its last non-empty line), or undefined. */
export function parseRevokeReport(stdout: string | undefined): RevokeCommandReport | undefined {
  const last = (stdout ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '').pop();
  if (!last) return undefined;
  try {
    const value = JSON.parse(last) as RevokeCommandReport;
    if (!value || typeof value !== 'object' || (value.status !== 'ok' && value.status !== 'error')) return undefined;
    return value;
  } catch {
    return undefined;
  }
}

/**
 * EC2 Instance Connect's AuthorizedKeysCommand on Amazon Linux and Ubuntu
 * (`/opt/aws/bin/eic_run_authorized_keys %u %f`, "Install EC2 Instance Connect",
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-connect-set-up.html): it serves only
 * keys pushed with SendSSHPublicKey, valid for 60 seconds, so it cannot hold a leaked key for long.
 */
const EIC_COMMAND = /(^|\/)eic_run_authorized_keys(\s|$)/;

/** True when sshd also takes keys from a program the revoke cannot read (EC2 Instance Connect's aside). */
export function unreadableKeySource(report: RevokeCommandReport): boolean {
  const akc = (report.authorizedKeysCommand ?? '').trim().replace(/^AuthorizedKeysCommand\s+/i, '');
  return akc !== '' && akc.toLowerCase() !== 'none' && !EIC_COMMAND.test(akc.split(/\s+/)[0] ?? '');
}

/**
 * What one instance came to:
 * - `clean`: no revoked key was found;
 * - `cleaned`: revoked keys were found and removed, and the files read back without them;
 * - `found`: an audit found revoked keys (nothing was changed);
 * - `incomplete`: no revoked key in any file read, but sshd also takes keys from an
 *   AuthorizedKeysCommand the revoke cannot read (review F2): never counted clean;
 * - `windows`: a Windows instance (selected by key pair, say): nothing to revoke in files, but the
 *   leaked private key decrypts its launch password (GetPasswordData, "encrypted using the key pair
 *   that you specified when you launched the instance":
 *   https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetPasswordData.html; review F1);
 * - `unreachable`: running without an Online agent and AllowStop=False (never stopped, not read);
 * - `failed`: the run failed (restore put the instance back), never started, or no report could be read;
 * - `cancelled`: the fleet run was cancelled and this instance's run ended Cancelled (its own cancel
 *   path started its restore) or was never started (review P9);
 * - `unknown`: this instance's run was still going when the fleet report was written (a cancel:
 *   gather stopped it and waited a bounded time); its own execution says how it ended.
 */
export type InstanceOutcome = 'clean' | 'cleaned' | 'found' | 'incomplete' | 'windows' | 'unreachable' | 'failed' | 'cancelled' | 'unknown';

/** Every outcome, in the order reports count them. */
export const INSTANCE_OUTCOMES: readonly InstanceOutcome[] = ['clean', 'cleaned', 'found', 'incomplete', 'windows', 'unreachable', 'failed', 'cancelled', 'unknown'];

/** The outcome of a command report in `mode`. */
export function outcomeOf(report: RevokeCommandReport, mode: RevokeMode): InstanceOutcome {
  if (report.status !== 'ok') return 'failed';
  const found = report.found ?? 0;
  if (found > 0 && mode === 'Audit') return 'found';
  if (found > 0 && !(report.verified === true && (report.removed ?? 0) >= found)) return 'failed';
  // Clean (or cleaned) as far as the files go; a key source the revoke cannot read, or files it
  // could not read (the report's `complete: false`), leave it open.
  if (unreadableKeySource(report) || report.complete === false) return 'incomplete';
  return found === 0 ? 'clean' : 'cleaned';
}
