/**
 * The UserData method (issue 12): the user data the runbook sets on a stopped instance so that the
 * inject-key script runs once more at its next boot, and the marker line the instance writes to its
 * serial console, which the runbook reads back with GetConsoleOutput.
 *
 * What the sources say, and what follows from it:
 * - EC2 user data is opaque bytes, at most 16 KB before base64; it can be modified only while an
 *   instance with an EBS root is stopped; user data modified on a stopped instance is not run by
 *   default at the next start (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html).
 *   So the limit is checked here, and what we set must be something cloud-init runs at every boot.
 * - cloud-init 22.4.2 (Debian package, cloudinit/config/cc_bootcmd.py): the `bootcmd` module has
 *   frequency PER_ALWAYS (every boot) and runs the shellified list with `/bin/sh <file>`, with
 *   INSTANCE_ID in the environment; a string item is written as is, so one item can be a whole
 *   POSIX shell program. A plain shell-script part of user data is run by `scripts_user`
 *   (cc_scripts_user.py), frequency PER_INSTANCE: once per instance id, so never again on an
 *   existing instance; `runcmd` is also PER_INSTANCE. Hence `#cloud-config` with `bootcmd`.
 *   test/script/user-data-boot.test.ts shows both with the real cloud-init.
 * - cloud-init decompresses gzip user data (cloudinit/user_data.py convert_string, util.decomp_gzip),
 *   so the cloud-config is gzip-compressed to fit the 16 KB.
 * - cloud-init writes what is meant for the console to /dev/console (cloudinit/util.py multi_log),
 *   which on EC2 Linux is the serial console that GetConsoleOutput returns: "the exact console output
 *   that would normally be displayed on a physical monitor"
 *   (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html), base64-encoded
 *   (botocore ec2 model, GetConsoleOutputResult.Output); `Latest` asks for the latest output rather
 *   than the last buffered snapshot.
 *
 * What we put in user data: the inject-key script exactly as the Command document deploys it (its
 * comment and blank lines left out: bash parses the same program, test/script/user-data.test.ts
 * checks it with `bash --pretty-print`), the public key line, the user names, the execution id and
 * the key's fingerprint. Never a private key. The values are not pasted into shell code: each is a
 * line of a quoted here-document (no expansion), read with `read -r`, and each was validated first.
 */
import { gunzipSync, gzipSync } from 'zlib';
import { InvalidInputError } from './errors';
import { fingerprintOf } from './public-key';
import { EXECUTION_ID_PATTERN, USER_NAME_PATTERN, validatePublicKey } from './validation';

/** EC2's limit on user data, in raw form before base64 (instancedata-add-user-data.html). */
export const USER_DATA_MAX_BYTES = 16 * 1024;
/**
 * The saved copy is the base64 text DescribeInstanceAttribute returns (byte-exact, whatever the
 * bytes are). A standard parameter holds 4 KB, an advanced one 8 KB
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html),
 * so the saved copy may be at most 8192 characters: user data of at most 6144 bytes.
 */
export const SAVED_USER_DATA_MAX_CHARS = 8192;
export const STANDARD_PARAMETER_MAX_CHARS = 4096;

export { USER_DATA_PATH, userDataParameterName } from './user-data-names';

/** The first line of our cloud-config after `#cloud-config`: how a run recognises its own user data. */
export const USER_DATA_SIGNATURE = '# ec2-reset-access: adds one SSH public key at boot (UserData method)';

/** The marker's fixed start on the console: `ec2-reset-access: user data <execution> <ok|failed> <fingerprint> users=<names> files=<paths>`. */
export const MARKER_PREFIX = 'ec2-reset-access: user data';
/** A failed boot's reason line, before its marker: `ec2-reset-access: user data reason <execution> <text>`. */
export const REASON_PREFIX = 'ec2-reset-access: user data reason';

const SCRIPT_END = 'EC2_RESET_ACCESS_END_OF_SCRIPT';
const VALUE_END = 'EC2_RESET_ACCESS_END_OF_VALUE';
const RUN_DIR = '/run/ec2-reset-access';
/**
 * Where the boot program records that it powered the instance off for an execution: cloud-init's
 * directory of the current instance (/var/lib/cloud/instance, a link to instances/<id>, kept across
 * boots like its per-instance semaphores, cloudinit/helpers.py Paths), on the root disk. One empty
 * file per UserData run stays there (docs/security.md).
 */
export const POWEROFF_FLAG_DIR = '/var/lib/cloud/instance';

/**
 * The script with its comment lines and blank lines left out (the first line, a shebang, kept).
 * Only whole lines go; a line inside a multi-line quoted string would change the string, which
 * test/script/user-data.test.ts rules out for the deployed script by comparing bash's own parse.
 */
export function compactScript(script: string): string {
  const lines = script.split('\n');
  const kept = lines.filter((line, i) => i === 0 || !/^[ \t]*(#.*)?$/.test(line));
  return `${withoutIndent(kept).join('\n')}\n`;
}

/**
 * The script for the boot only (user data size, issue 12): the functions only the offline method
 * can reach left out. The boot always runs the online method (Root=/), so `offline` is never called:
 * starting from the code outside any function, a function is kept when its name occurs as a word
 * (code, string or comment: more is kept, never less) in the top-level code or in a kept function,
 * `offline` excepted. Functions are `name() {` ... `}` at the start of a line, as the script writes
 * them. test/script/user-data-boot.test.ts runs this build under the real cloud-init.
 */
export function bootOnlyScript(script: string): string {
  const lines = script.split('\n');
  const fns = new Map<string, [number, number]>();
  for (let i = 0; i < lines.length; i++) {
    const m = /^([a-z_][a-z0-9_]*)\(\) \{$/.exec(lines[i]);
    if (!m) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '}') j++;
    if (j === lines.length) return script; // not the shape expected: keep everything
    fns.set(m[1], [i, j]);
    i = j;
  }
  if (!fns.has('offline')) return script;
  const inFunction = new Set<number>();
  for (const [a, b] of fns.values()) for (let k = a; k <= b; k++) inFunction.add(k);
  const kept = new Set<string>();
  const todo: string[] = [];
  const scan = (text: string): void => {
    for (const w of text.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []) {
      if (fns.has(w) && w !== 'offline' && !kept.has(w)) {
        kept.add(w);
        todo.push(w);
      }
    }
  };
  scan(lines.filter((_, k) => !inFunction.has(k)).join('\n'));
  for (let f = todo.pop(); f !== undefined; f = todo.pop()) {
    const [a, b] = fns.get(f) as [number, number];
    scan(lines.slice(a + 1, b).join('\n'));
  }
  const dropped = [...fns.entries()].filter(([name]) => !kept.has(name)).map(([, range]) => range);
  return lines.filter((_, k) => !dropped.some(([a, b]) => k >= a && k <= b)).join('\n');
}

/**
 * The lines with their leading blanks left out, except lines that begin inside a quoted string or
 * a here-document body, which stay as they are (user data size, issue 12). A small scan of bash's
 * quoting: single and double quotes, $'...', backslash escapes, comments from a `#` at a word's
 * start, `<<WORD` here-documents (a `<<` that is not one, e.g. an arithmetic shift, only keeps more
 * lines as they are). test/script/user-data.test.ts proves on the deployed script that bash parses
 * the result as the same program (bash --pretty-print of both agree).
 */
function withoutIndent(lines: readonly string[]): string[] {
  let quote: '' | "'" | '"' | "$'" = '';
  const heredocs: string[] = [];
  let inBody: { word: string; tabs: boolean } | undefined;
  const out: string[] = [];
  for (const line of lines) {
    if (inBody) {
      out.push(line);
      if ((inBody.tabs ? line.replace(/^\t+/, '') : line) === inBody.word) inBody = undefined;
      continue;
    }
    out.push(quote === '' ? line.replace(/^[ \t]+/, '') : line);
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quote === "'") {
        if (c === "'") quote = '';
        continue;
      }
      if (c === '\\') {
        i++;
        continue;
      }
      if (quote === '"' || quote === "$'") {
        if ((quote === '"' && c === '"') || (quote === "$'" && c === "'")) quote = '';
        continue;
      }
      if (c === '#' && (i === 0 || /[\s;&|()]/.test(line[i - 1]))) break;
      if (c === "'") quote = "'";
      else if (c === '"') quote = '"';
      else if (c === '$' && line[i + 1] === "'") {
        quote = "$'";
        i++;
      } else if (c === '<' && line[i + 1] === '<' && line[i + 2] !== '<') {
        const m = /^<<(-?)[ \t]*(['"]?)([A-Za-z0-9_]+)\2/.exec(line.slice(i));
        if (m) heredocs.push(`${m[1]}${m[3]}`);
        i++;
      } else if (c === '<' && line[i + 1] === '<') {
        i += 2;
      }
    }
    const next = heredocs.shift();
    if (next !== undefined) {
      inBody = { word: next.replace(/^-/, ''), tabs: next.startsWith('-') };
      // More than one here-document on a line: keep every line after it as it is (never met here).
      if (heredocs.length > 0) return [...out, ...lines.slice(out.length)];
    }
  }
  return out;
}

export interface UserDataInput {
  /** The inject-key script as deployed (runCommand lines joined with newlines). */
  readonly script: string;
  /** One OpenSSH public key line. */
  readonly publicKey: string;
  /** User names ([] for the script's default: the cloud-init default user, else every login user). */
  readonly users: readonly string[];
  readonly executionId: string;
}

export interface BuiltUserData {
  /** The cloud-config text (before compression). */
  readonly text: string;
  /** What is set on the instance: the gzip of `text`. */
  readonly bytes: Buffer;
  readonly fingerprint: string;
}

/** Thrown when our user data would exceed EC2's 16 KB. */
export class UserDataTooLargeError extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = 'UserDataTooLargeError';
  }
}

/** The POSIX shell program of our bootcmd item. Its inputs are the here-document lines after it. */
function bootProgram(script: string, values: { publicKey: string; users: string; executionId: string; fingerprint: string }): string {
  const value = (name: string, v: string): string => `read -r ${name} <<'${VALUE_END}' || ${name}=\n${v}\n${VALUE_END}`;
  return [
    `# ${MARKER_PREFIX}: the inject-key script (online, Root=/) with its inputs as environment variables, as the`,
    '# Command document gives them; then one marker line on the serial console. Runs at every boot',
    '# (bootcmd); a second run finds the key in place and changes nothing.',
    'umask 077',
    `d=${RUN_DIR}`,
    'mkdir -p "$d" && chmod 0700 "$d" || exit 1',
    `cat >"$d/inject-key.sh" <<'${SCRIPT_END}'`,
    script.replace(/\n$/, ''),
    SCRIPT_END,
    value('SSM_PublicKey', values.publicKey),
    value('SSM_Users', values.users),
    value('RESET_ACCESS_EXECUTION', values.executionId),
    value('RESET_ACCESS_FINGERPRINT', values.fingerprint),
    'SSM_Root=/',
    'SSM_VolumeId=',
    '# The script\'s work directory here, not in /tmp, which systemd may clean or mount over at this point of the boot.',
    'TMPDIR=$d',
    'export SSM_PublicKey SSM_Users SSM_Root SSM_VolumeId TMPDIR',
    // Review U3: bootcmd runs before network filesystems can be mounted (cloud-init.service is
    // Before=network-online.target, and a _netdev mount comes after it) and without an order
    // against local-fs.target. A home directory under a filesystem of /etc/fstab that is not the
    // one mounted there now would get the key in the directory underneath, which sshd never reads:
    // refuse, nothing written. (Running later, in cloud-final's scripts_per_boot, is no way out: that
    // unit is After=multi-user.target, so the workload would start with our user data, review U5.)
    '# Refuse when a home lies under an fstab filesystem that is not the one mounted there now.',
    'findmnt --fstab --evaluate -rn -o TARGET,SOURCE,OPTIONS >"$d/fstab" 2>/dev/null || :',
    'why=',
    'while read -r t src opts; do',
    '  case $t in /) continue ;; /*) ;; *) continue ;; esac',
    '  case ,$opts, in *,noauto,*) continue ;; esac',
    '  under=',
    '  while IFS=: read -r _ _ _ _ _ h _; do case $h/ in "${t%/}"/*) under=$h; break ;; esac; done </etc/passwd',
    '  [ -n "$under" ] || continue',
    '  cur=$(findmnt -rn -o SOURCE --mountpoint "$t" 2>/dev/null | tail -n 1)',
    '  case $src in /dev/*) src=$(readlink -f "$src") ;; esac',
    '  case $cur in /dev/*) cur=$(readlink -f "$cur") ;; esac',
    '  [ "$cur" = "$src" ] || { why="$t (home $under) is in /etc/fstab but not mounted when cloud-init runs bootcmd; use Method=VolumeSwap or Online"; break; }',
    'done <"$d/fstab"',
    'report=',
    '[ -n "$why" ] || report=$(/bin/bash "$d/inject-key.sh" 2>"$d/inject-key.log" | tail -n 1)',
    'case $report in',
    `  '{"version":1,"status":"ok"'*) result=ok ;;`,
    '  *) result=failed ;;',
    'esac',
    'rm -f "$d/inject-key.sh"',
    '# Who got the key and where, from the report (user names and paths, never key material).',
    `users=$(printf '%s\n' "$report" | grep -o '"user":"[^"]*"' | cut -d'"' -f4 | sort -u | paste -sd, -)`,
    `files=$(printf '%s\n' "$report" | grep -o '"file":"[^"]*"' | cut -d'"' -f4 | paste -sd, -)`,
    `line="${MARKER_PREFIX} $RESET_ACCESS_EXECUTION $result $RESET_ACCESS_FINGERPRINT users=$users files=$files"`,
    '# Why it failed, on the console before the marker (the log under /run does not survive the power-off).',
    `[ -n "$why" ] || why=$(printf '%s\n' "$report" | grep -o '"error":"[^"]*"' | cut -d'"' -f4)`,
    `[ "$result" = ok ] || printf '%s\n' "${REASON_PREFIX} $RESET_ACCESS_EXECUTION $why" >>/dev/console 2>/dev/null || :`,
    '# The serial console first (what GetConsoleOutput returns), else the kernel log, which reaches it too.',
    // (>> rather than >: the same on a device; the twin's console is a file, which > would empty.)
    `printf '%s\\n' "$line" >>/dev/console 2>/dev/null || printf '<5>%s\\n' "$line" >/dev/kmsg 2>/dev/null || true`,
    `printf '%s\\n' "$line"`,
    // Power off once per execution, right after the marker (review U5): the workload never starts
    // with this user data, and the console buffer EC2 posts at the stop holds the marker. bootcmd runs
    // in cloud-init.service, which is ordered Before=sysinit.target (/lib/systemd/system/cloud-init.service
    // of Debian's cloud-init 22.4.2), and every service with default dependencies is ordered after
    // sysinit.target (systemd.special(7)), so sshd and the workload have not started. `systemctl poweroff`
    // only enqueues the shutdown and returns (systemctl(1)); the instance then stops, since preflight
    // refuses shutdown behaviour terminate ("By default, when you initiate a shutdown from an Amazon
    // EBS backed instance (using a command such as shutdown or poweroff), the instance stops",
    // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_ChangingInstanceInitiatedShutdownBehavior.html).
    // The flag keeps a later boot with this user data (after a failed restore) from powering off again.
    `f=${POWEROFF_FLAG_DIR}/ec2-reset-access-poweroff-$RESET_ACCESS_EXECUTION`,
    '[ -e "$f" ] || { : >"$f" && systemctl poweroff; }',
    '[ "$result" = ok ]',
  ].join('\n');
}

/** YAML block scalar of `text`, indented by `indent` spaces (every line non-empty or blank). */
function blockScalar(text: string, indent: number): string {
  const pad = ' '.repeat(indent);
  return text
    .split('\n')
    .map((line) => (line === '' ? '' : pad + line))
    .join('\n');
}

/**
 * Our user data for one run. Throws InvalidInputError for a bad key, user or execution id, and
 * UserDataTooLargeError when the result exceeds EC2's 16 KB.
 */
export function buildUserData(input: UserDataInput): BuiltUserData {
  const { line, parsed } = validatePublicKey(input.publicKey);
  if (!parsed) throw new InvalidInputError('PublicKey is empty: the user data needs one public key line');
  for (const [i, user] of input.users.entries()) {
    if (!USER_NAME_PATTERN.test(user)) throw new InvalidInputError(`Users entry ${i + 1} is not a Linux user name`);
  }
  if (!EXECUTION_ID_PATTERN.test(input.executionId)) throw new InvalidInputError('ExecutionId is not an execution id');
  const script = compactScript(bootOnlyScript(input.script));
  if (script.split('\n').includes(SCRIPT_END)) throw new InvalidInputError(`the inject-key script contains the line ${SCRIPT_END}`);
  const fingerprint = fingerprintOf(line);
  const program = bootProgram(script, { publicKey: line, users: input.users.join(','), executionId: input.executionId, fingerprint });
  // A YAML literal block keeps every line as it is; the program has no tab at a line start that
  // YAML would refuse in indentation (the script is indented with spaces: checked by the schema test).
  const text = ['#cloud-config', USER_DATA_SIGNATURE, 'bootcmd:', '  - |', blockScalar(program, 4), ''].join('\n');
  const bytes = gzipSync(Buffer.from(text, 'utf8'), { level: 9 });
  if (bytes.length > USER_DATA_MAX_BYTES) {
    throw new UserDataTooLargeError(
      `The user data that adds the key would be ${bytes.length} bytes compressed; EC2 accepts ${USER_DATA_MAX_BYTES}. Use a shorter public key (ed25519), or Method=VolumeSwap`,
    );
  }
  return { text, bytes, fingerprint };
}

/** The text of user data bytes: gunzipped when gzip, else as UTF-8. */
export function userDataText(bytes: Buffer): string {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes).toString('utf8');
    } catch {
      return '';
    }
  }
  return bytes.toString('utf8');
}

/** True when `bytes` is user data this product wrote (of any run). */
export function isOurUserData(bytes: Buffer): boolean {
  return userDataText(bytes).startsWith(`#cloud-config\n${USER_DATA_SIGNATURE}\n`);
}

export interface Marker {
  readonly result: 'ok' | 'failed';
  readonly fingerprint: string;
  /** The users who got the key (comma-separated, '' when none). */
  readonly users: string;
  /** The key files written or found (comma-separated). */
  readonly files: string;
}

const MARKER_LINE = /^ec2-reset-access: user data (\S+) (ok|failed) (SHA256:[A-Za-z0-9+/]+)(?: users=(\S*))?(?: files=(.*?))?\r?$/;

/** The last reason line of `executionId` in console text (a failed boot), or undefined. */
export function findReason(consoleText: string, executionId: string): string | undefined {
  let found: string | undefined;
  const start = `${REASON_PREFIX} ${executionId} `;
  for (const raw of consoleText.split('\n')) {
    const at = raw.indexOf(start);
    if (at >= 0) found = raw.slice(at + start.length).replace(/\r$/, '').slice(0, 300);
  }
  return found;
}

/**
 * The last marker of `executionId` in console text, or undefined. A marker may follow kernel text on
 * the same console line (concurrent writers), so the search is for the marker anywhere in a line.
 */
export function findMarker(consoleText: string, executionId: string): Marker | undefined {
  let found: Marker | undefined;
  for (const raw of consoleText.split('\n')) {
    const at = raw.indexOf(MARKER_PREFIX);
    if (at < 0) continue;
    const m = MARKER_LINE.exec(raw.slice(at));
    if (m && m[1] === executionId) found = { result: m[2] as 'ok' | 'failed', fingerprint: m[3], users: m[4] ?? '', files: m[5] ?? '' };
  }
  return found;
}
