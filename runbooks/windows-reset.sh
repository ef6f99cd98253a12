#!/usr/bin/env bash
# windows-reset.sh: make a Windows root volume, attached to this Linux helper, give its Administrator a
# new password at its next boot. Finds the device by the volume id, the Windows NTFS volume on it,
# the launch agent from its files, and writes the agent's documented one-shot trigger:
# - Mode=EnablePasswordGeneration (what AWSSupport-ResetAccess does): the agent generates a password at
#   next boot, encrypted to the instance's key pair (GetPasswordData).
#   EC2Launch v2: delete %ProgramData%\Amazon\EC2Launch\state\.run-once
#   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Launchv2.html),
#   done as a rename in its folder (.run-once.ec2-reset-access-<RunId>), which Mode=Revert undoes;
#   EC2Config: plugin Ec2SetPassword State Enabled in Settings\config.xml
#   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Config.html);
#   EC2Launch v1: AWS documents only EC2Rescue's own offline reset
#   (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ResettingAdminPassword_EC2Launch.html): refused.
# - Mode=NewPassword (the key pair is lost too; EC2Launch v2 only): a one-shot executeScript task
#   (runbooks/windows-boot.ps1) that makes the password on the instance and writes it to the serial
#   console encrypted to the run's public key (SSM_PasswordKey). No password ever exists here.
# Inputs (environment only, interpolationType ENV_VAR): SSM_VolumeId, SSM_Mode, SSM_RunId,
# SSM_PasswordKey. Output: log on stderr; the last stdout line is one JSON report
# {"version":1,"status":"ok"|"error",...}; non-zero exit on error. Every refusal is decided before
# anything is written.
# The deployed script starts with the shared head of runbooks/key-files.sh (between its "shared head"
# markers: bash settings, the private mount namespace that the SSM Agent's SIGKILL of the process group
# (aws/amazon-ssm-agent, agent/executers/executers_unix.go: killProcess) tears down with whatever it
# mounted, the fds 3 and 4, and wait_for_device); lib/windows-reset-document.ts joins them.

readonly VOLUME_PATTERN='^vol-[0-9a-f]{8,17}$'
readonly RUN_ID_PATTERN='^[A-Za-z0-9-]{1,64}$'
readonly KEY_PATTERN='^[A-Za-z0-9+/]{360,1000}={0,2}$'
# The boot action of Mode=NewPassword (runbooks/windows-boot.ps1), inlined as base64 by
# lib/windows-reset-document.ts when it builds the Command document.
readonly BOOT_SCRIPT_B64='%%WindowsBootScript%%'
# Partition types that mean the volume is not a basic disk: MBR 0x42 (a dynamic disk, as the Linux
# kernel's LDM reader knows it: fs/partitions/ldm.c, LDM_PARTITION), GPT "Microsoft LDM metadata",
# "Microsoft LDM data" and "Microsoft Storage Spaces" (util-linux's sfdisk type table).
readonly DYNAMIC_TYPES=' 0x42 5808c8aa-7e8f-42e0-85d2-e1e90434cfb3 af9b60a0-1431-4f62-bc68-3311714a69ad '
readonly SPACES_TYPE=e75caf8f-f680-4cee-afa3-b001e56efc2d

VOLUME_ID="" MODE="" RUN_ID="" PASSWORD_KEY="" KEY_XML="" NTFS_DRIVER=""
NTFS_CANDIDATES=()
DISK="" WINDOWS_DEVICE="" WORK_DIR="" MNT="" REPORT_DONE=0
AGENT="" AGENT_VERSION=""
MOUNTS=() NTFS_PIDS=() CHANGES=() WARNINGS=() # NTFS_PIDS[i]: the ntfs-3g serving MOUNTS[i]

log() { printf 'windows-reset: %s\n' "$*" >&4; }

warn() {
  log "warning: $*"
  WARNINGS+=("$(json_string "$*")")
}

# change PATH ACTION [TO]: one entry of the report ("to": the new name of a renamed file).
change() {
  local to=""
  [[ -n ${3:-} ]] && to=$(printf ',"to":%s' "$(json_string "$3")")
  CHANGES+=("$(printf '{"path":%s,"action":%s%s}' "$(json_string "$1")" "$(json_string "$2")" "$to")")
}

print_report() {
  local status=$1 error=${2:-}
  REPORT_DONE=1
  local tail=""
  [[ $status == error ]] && tail=$(printf ',"error":%s' "$(json_string "$error")")
  printf '{"version":1,"status":%s,"agent":%s,"agentVersion":%s,"mode":%s,"changes":%s,"warnings":%s%s}\n' \
    "$(json_string "$status")" "$(json_string "$AGENT")" "$(json_string "$AGENT_VERSION")" "$(json_string "$MODE")" \
    "$(json_join "${CHANGES[@]}")" "$(json_join "${WARNINGS[@]}")" "$tail" >&3
}

# Wait (bounded) for an ntfs-3g process to end after its unmount: it writes the volume back and exits.
# Returns its exit status; one that does not end in 60 s is stopped and counts as a failure.
reap_ntfs() {
  local pid=$1 deadline=$((SECONDS + 60))
  [[ -n $pid ]] || return 0 # a kernel (ntfs3) mount has no process
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "ntfs-3g ($pid) did not end after its unmount; stopping it"
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null
}

unmount_all() {
  local i status=0
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    if mountpoint -q -- "${MOUNTS[i]}" 2>/dev/null; then
      umount -- "${MOUNTS[i]}" 2>/dev/null || { log "umount ${MOUNTS[i]} failed, detaching it lazily"; umount -l -- "${MOUNTS[i]}" || status=1; }
    fi
    reap_ntfs "${NTFS_PIDS[i]}" || status=1
  done
  MOUNTS=() NTFS_PIDS=()
  return "$status"
}

cleanup() {
  local status=0
  unmount_all || status=1
  if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
    rm -f -- "$WORK_DIR"/*.err "$WORK_DIR"/new.* "$WORK_DIR"/old.* 2>/dev/null || true
    find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type d -empty -delete 2>/dev/null || true
    rmdir -- "$WORK_DIR" 2>/dev/null || { log "left $WORK_DIR (not empty)"; status=1; }
  fi
  WORK_DIR=""
  return "$status"
}

die() {
  if [[ $BASHPID != "$$" ]]; then
    log "error (in a subshell): $*"
    exit 1
  fi
  log "error: $*"
  cleanup || true
  print_report error "$*"
  exit 1
}

on_exit() {
  local status=$?
  cleanup || true
  if ((!REPORT_DONE)); then
    print_report error "unexpected failure (exit $status) at line ${FAILED_LINE:-?}: ${FAILED_COMMAND:-?}"
    ((status)) || status=1
  fi
  exit "$status"
}

FAILED_LINE=""
FAILED_COMMAND=""
trap 'FAILED_LINE=$LINENO; FAILED_COMMAND=$BASH_COMMAND' ERR
trap on_exit EXIT
trap 'die "interrupted by a signal"' INT TERM HUP

# --- parameters
read_parameters() {
  VOLUME_ID=${SSM_VolumeId:-}
  MODE=${SSM_Mode:-EnablePasswordGeneration}
  RUN_ID=${SSM_RunId:-}
  PASSWORD_KEY=${SSM_PasswordKey:-}
  ((${#VOLUME_ID} <= 21 && ${#MODE} <= 32 && ${#RUN_ID} <= 64)) || die "a parameter is too long"
  ((${#PASSWORD_KEY} <= 1024)) || die "PasswordKey is longer than 1024 characters"
  [[ $VOLUME_ID =~ $VOLUME_PATTERN ]] || die "VolumeId is not a volume id (vol- and 8 to 17 hex digits)"
  case $MODE in
    EnablePasswordGeneration)
      [[ -z $PASSWORD_KEY ]] || die "PasswordKey is only for Mode=NewPassword"
      [[ -z $RUN_ID || $RUN_ID =~ $RUN_ID_PATTERN ]] || die "RunId must be letters, digits and dashes"
      ;;
    NewPassword)
      [[ $RUN_ID =~ $RUN_ID_PATTERN ]] || die "RunId (letters, digits and dashes) is required with Mode=NewPassword"
      [[ $PASSWORD_KEY =~ $KEY_PATTERN ]] || die "PasswordKey must be the run's RSA public key: base64 of a DER SubjectPublicKeyInfo"
      ;;
    Revert)
      [[ $RUN_ID =~ $RUN_ID_PATTERN ]] || die "RunId (letters, digits and dashes) is required with Mode=Revert"
      [[ -z $PASSWORD_KEY ]] || die "PasswordKey is only for Mode=NewPassword"
      ;;
    *) die "Mode must be EnablePasswordGeneration, NewPassword or Revert" ;;
  esac
}

need_tools() {
  local tool
  for tool in blkid lsblk python3 sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "the helper has no $tool (the helper image must ship util-linux and python3)"
  done
}

# The NTFS driver: ntfs-3g when the helper has it; else the kernel's ntfs3 (which "supports native
# journal replaying" and refuses a read-write mount of a volume marked dirty unless "force":
# https://www.kernel.org/doc/html/latest/filesystems/ntfs3.html; the script's own hiberfil.sys test and
# read-write check apply to both); else ntfs-3g from the distribution's archive, bounded in time; else
# a refusal before anything is mounted. That Canonical's image ships ntfs-3g or ntfs3 is not verified
# here (docs/architecture.md, "Windows: what rests on documentation").
readonly APT_SECONDS=240
# A program on PATH that is an executable regular file (bash's command -v also names a file it cannot run).
have() {
  local path
  path=$(command -v "$1" 2>/dev/null) && [[ -f $path && -x $path ]]
}

choose_driver() {
  if have ntfs-3g; then
    NTFS_DRIVER=ntfs-3g
  elif grep -qw ntfs3 /proc/filesystems 2>/dev/null ||
    { have modprobe && modprobe ntfs3 >/dev/null 2>&1 && grep -qw ntfs3 /proc/filesystems; }; then
    NTFS_DRIVER=ntfs3
  elif have apt-get &&
    timeout "$APT_SECONDS" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends ntfs-3g' >"$WORK_DIR/apt.err" 2>&1 &&
    hash -r && have ntfs-3g; then
    NTFS_DRIVER=ntfs-3g
    warn "ntfs-3g was installed on the helper from the distribution's archive"
  else
    die "this helper can mount NTFS neither with ntfs-3g nor with the kernel's ntfs3 driver, and ntfs-3g could not be installed (within ${APT_SECONDS} s): nothing was changed"
  fi
  log "NTFS driver: $NTFS_DRIVER"
}

# The run's public key as the RSAKeyValue XML that .NET's RSACryptoServiceProvider.FromXmlString reads
# (Modulus and Exponent, big-endian, base64): https://learn.microsoft.com/dotnet/api/system.security.cryptography.rsa.fromxmlstring.
# The DER is read as RFC 5280's SubjectPublicKeyInfo holding RFC 8017's RSAPublicKey; a key that is not
# RSA, shorter than 2048 bits, or has trailing bytes is refused.
readonly KEY_XML_PY='import base64, sys
def tlv(b, i, tag):
    if i >= len(b) or b[i] != tag:
        raise ValueError("unexpected DER tag")
    n = b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3:
            raise ValueError("bad DER length")
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    if i + n > len(b):
        raise ValueError("truncated DER")
    return b[i:i + n], i + n
der = base64.b64decode(sys.argv[1], validate=True)
spki, end = tlv(der, 0, 0x30)
if end != len(der):
    raise ValueError("trailing bytes")
alg, i = tlv(spki, 0, 0x30)
oid, _ = tlv(alg, 0, 0x06)
if oid != bytes.fromhex("2a864886f70d010101"):
    raise ValueError("not an RSA key")
bits, i = tlv(spki, i, 0x03)
if i != len(spki) or bits[:1] != b"\x00":
    raise ValueError("bad BIT STRING")
rsa, end = tlv(bits, 1, 0x30)
if end != len(bits):
    raise ValueError("trailing bytes in the key")
n, i = tlv(rsa, 0, 0x02)
e, i = tlv(rsa, i, 0x02)
if i != len(rsa):
    raise ValueError("trailing bytes in RSAPublicKey")
n = n.lstrip(b"\x00")
e = e.lstrip(b"\x00")
if len(n) * 8 < 2048 or len(n) * 8 > 4096 or not (n[0] & 0x80):
    raise ValueError("the modulus must be 2048 to 4096 bits")
if int.from_bytes(e, "big") < 3 or not (e[-1] & 1):
    raise ValueError("bad public exponent")
b64 = lambda x: base64.b64encode(x).decode("ascii")
print("<RSAKeyValue><Modulus>" + b64(n) + "</Modulus><Exponent>" + b64(e) + "</Exponent></RSAKeyValue>")'

convert_key() {
  [[ $MODE == NewPassword ]] || return 0
  KEY_XML=$(python3 -c "$KEY_XML_PY" "$PASSWORD_KEY" 2>"$WORK_DIR/key.err") ||
    die "PasswordKey is not an RSA public key of 2048 to 4096 bits: $(tail -n 1 "$WORK_DIR/key.err")"
}

# --- the device: wait_for_device, in the shared head (runbooks/key-files.sh)

# The first line of a tool's error output that is not blank (ntfs-3g prints its banner after the reason).
first_line() { grep -m 1 -v '^[[:space:]]*$' -- "$1" 2>/dev/null || true; }

probe() { blkid -p -o value -s "$2" -- "$1" 2>/dev/null || true; }

# The disk's partitions (or the disk itself when it has no partition table). Refuses dynamic disks,
# Storage Spaces and BitLocker before anything is mounted.
find_windows_candidates() {
  local -a names=() candidates=()
  local dev type part_type
  mapfile -t names < <(lsblk -lnpo NAME -- "$DISK")
  if ((${#names[@]} > 1)); then candidates=("${names[@]:1}"); else candidates=("$DISK"); fi
  NTFS_CANDIDATES=()
  for dev in "${candidates[@]}"; do
    part_type=$(probe "$dev" PART_ENTRY_TYPE)
    part_type=${part_type,,}
    if [[ -n $part_type && $DYNAMIC_TYPES == *" $part_type "* ]]; then
      die "the volume is a dynamic disk (partition $dev has type $part_type): Windows' Logical Disk Manager volumes cannot be changed from Linux safely; convert it to a basic disk, or reset the password from Windows (EC2Rescue for Windows Server)"
    fi
    [[ $part_type == "$SPACES_TYPE" ]] &&
      die "the volume belongs to a Storage Spaces pool (partition $dev): its data cannot be reached from Linux; reset the password from Windows (EC2Rescue for Windows Server)"
    type=$(probe "$dev" TYPE)
    # libblkid reports TYPE=BitLocker for the "-FVE-FS-" boot sector (util-linux, libblkid/src/superblocks/bitlocker.c).
    [[ $type == BitLocker ]] &&
      die "partition $dev is encrypted with BitLocker: its files cannot be changed without its recovery key; use the recovery key, or EC2Rescue for Windows Server on a Windows helper"
    [[ $type == ntfs ]] && NTFS_CANDIDATES+=("$dev")
  done
  ((${#NTFS_CANDIDATES[@]} > 0)) || die "no NTFS file system on volume $VOLUME_ID: is it a Windows root volume?"
}

# Mounts with ntfs-3g. "inspect" is read-only; "rw" uses norecover, so that a volume Windows did not
# unmount cleanly is never mounted by clearing its log (man ntfs-3g: recover, the default, "may cause
# inconsistencies"), and never remove_hiberfile; the mount is then checked to be read-write, since
# ntfs-3g falls back to read-only for a hibernated or Fast Startup volume (man ntfs-3g, "Windows
# hibernation and fast restarting"; libntfs-3g/volume.c).
mount_ntfs() {
  local device=$1 dir=$2 mode=$3 options=ro,no_detach pid deadline
  if [[ $NTFS_DRIVER == ntfs3 ]]; then
    # A kernel mount: it dies with this private namespace. Read-write without "force", so that a
    # volume marked dirty is not mounted read-write; -w: never a silent fall back to read-only.
    local writable=-r
    [[ $mode == rw ]] && writable=-w
    MOUNTS+=("$dir")
    NTFS_PIDS+=("")
    if ! mount "$writable" -t ntfs3 -- "$device" "$dir" 2>"$WORK_DIR/mount.err"; then
      unset 'MOUNTS[-1]' 'NTFS_PIDS[-1]'
      return 1
    fi
    if [[ $mode == rw && $(findmnt -n -o OPTIONS --mountpoint "$dir") != rw,* ]]; then
      unmount_last || true
      echo "mounted read-only" >"$WORK_DIR/mount.err"
      return 1
    fi
    return 0
  fi
  [[ $mode == rw ]] && options=rw,norecover,windows_names,no_detach
  # no_detach (man ntfs-3g): ntfs-3g stays a child of this script, in its process group, instead of
  # daemonizing into a session of its own. The SSM Agent's SIGKILL of the group (cancel, timeout) then
  # ends it too, and the mount with this private namespace; a detached ntfs-3g would keep the volume
  # mounted, read-write, in a namespace nobody can reach. And the script can wait for it to finish
  # writing at unmount. ntfs-3g takes no "--"; the device is an absolute /dev path.
  ntfs-3g -o "$options" "$device" "$dir" 2>"$WORK_DIR/mount.err" &
  pid=$!
  MOUNTS+=("$dir")
  NTFS_PIDS+=("$pid")
  deadline=$((SECONDS + 60))
  until mountpoint -q -- "$dir"; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      unset 'MOUNTS[-1]' 'NTFS_PIDS[-1]'
      return 1
    fi
    sleep 0.05
  done
  if [[ $mode == rw && $(findmnt -n -o OPTIONS --mountpoint "$dir") != rw,* ]]; then
    unmount_last || true
    echo "mounted read-only" >"$WORK_DIR/mount.err"
    return 1
  fi
}

# Unmount the last mount and wait until its ntfs-3g has written everything back and ended.
unmount_last() {
  local dir=${MOUNTS[-1]} pid=${NTFS_PIDS[-1]}
  umount -- "$dir" || return 1
  unset 'MOUNTS[-1]' 'NTFS_PIDS[-1]'
  reap_ntfs "$pid"
}

# A path inside the mounted volume, matched without regard to case as Windows does, never through
# a link (a junction or symbolic link could lead out of the volume). Prints the path; fails when a
# component is missing, ambiguous (names differing only in case) or a link.
ci_path() {
  local current=$1 rest=$2 component entry match count
  local -a parts=()
  IFS=/ read -r -a parts <<<"$rest"
  for component in "${parts[@]}"; do
    [[ -n $component ]] || continue
    [[ -d $current && ! -L $current ]] || return 1
    match="" count=0
    if [[ -e $current/$component || -L $current/$component ]]; then
      match=$component count=1
    fi
    for entry in "$current"/* "$current"/.[!.]*; do
      [[ -e $entry || -L $entry ]] || continue
      entry=${entry##*/}
      if [[ ${entry,,} == "${component,,}" && $entry != "$match" ]]; then
        [[ -z $match ]] && match=$entry
        count=$((count + 1))
      fi
    done
    ((count == 1)) || return 1
    [[ ! -L $current/$match ]] || return 1
    current=$current/$match
  done
  printf '%s' "$current"
}

# The NTFS candidate that holds Windows\System32 (a "System Reserved" partition does not).
find_windows_volume() {
  local dev dir found=""
  for dev in "${NTFS_CANDIDATES[@]}"; do
    dir=$(mktemp -d -- "$WORK_DIR/m.XXXXXX")
    if ! mount_ntfs "$dev" "$dir" inspect; then
      warn "$dev could not be mounted read-only: $(first_line "$WORK_DIR/mount.err")"
      rmdir -- "$dir"
      continue
    fi
    if ci_path "$dir" Windows/System32 >/dev/null; then
      [[ -z $found ]] || die "two Windows volumes on $VOLUME_ID ($found and $dev): cannot tell which one boots"
      found=$dev
      MNT=$dir
    else
      unmount_last || die "could not unmount $dev"
      rmdir -- "$dir"
    fi
  done
  [[ -n $found ]] || die "no Windows installation (\\Windows\\System32) on the NTFS file systems of $VOLUME_ID"
  WINDOWS_DEVICE=$found
  log "Windows is on $WINDOWS_DEVICE"
}

# Hibernation and Fast Startup: hiberfil.sys whose header starts with "hibr" or "HIBR", or shorter
# than its 4096-byte header (the test of tuxera/ntfs-3g, libntfs-3g/volume.c, ntfs_volume_check_hiberfile).
# Writing to such a volume would be lost or corrupt Windows when it resumes.
check_hibernation() {
  local file magic size
  file=$(ci_path "$MNT" hiberfil.sys) || return 0
  [[ -f $file ]] || return 0
  size=$(stat -c %s -- "$file")
  magic=$(head -c 4 -- "$file" | tr -d '\000')
  if ((size < 4096)) || [[ ${magic,,} == hibr ]]; then
    die "Windows on $VOLUME_ID is hibernated or was shut down with Fast Startup (hiberfil.sys holds a saved session): a change made now would be lost or damage the volume when Windows resumes; start the instance, shut Windows down fully (shutdown /s /t 0, or disable Fast Startup: powercfg /h off), then run again"
  fi
}

# --- the launch agents (files from AWS's pages cited at the top)
V2_CONFIG=ProgramData/Amazon/EC2Launch/config/agent-config.yml
V2_RUN_ONCE=ProgramData/Amazon/EC2Launch/state/.run-once
V2_STATE=ProgramData/Amazon/EC2Launch/state
EC2CONFIG_XML="Program Files/Amazon/Ec2ConfigService/Settings/config.xml"
V1_CONFIG=ProgramData/Amazon/EC2-Windows/Launch/Config/LaunchConfig.json

# An agent's version: the VS_FIXEDFILEINFO of its program's version resource (signature 0xFEEF04BD,
# dwStrucVersion 0x00010000, then dwFileVersionMS and dwFileVersionLS:
# https://learn.microsoft.com/windows/win32/api/verrsrc/ns-verrsrc-vs_fixedfileinfo). Empty when not found.
readonly VERSION_PY='import struct, sys
data = open(sys.argv[1], "rb").read(64 * 1024 * 1024)
i = data.find(b"\xbd\x04\xef\xfe")
while 0 <= i <= len(data) - 16:
    signature, structure, ms, ls = struct.unpack_from("<IIII", data, i)
    if structure == 0x10000:
        print("%d.%d.%d.%d" % (ms >> 16, ms & 0xFFFF, ls >> 16, ls & 0xFFFF))
        break
    i = data.find(b"\xbd\x04\xef\xfe", i + 1)'

agent_version() {
  local program="" file
  case $AGENT in
    "EC2Launch v2") program="Program Files/Amazon/EC2Launch/EC2Launch.exe" ;;
    "EC2Config") program="Program Files/Amazon/Ec2ConfigService/Ec2Config.exe" ;;
    *) return 0 ;;
  esac
  file=$(ci_path "$MNT" "$program") || return 0
  [[ -f $file ]] || return 0
  AGENT_VERSION=$(python3 -c "$VERSION_PY" "$file" 2>/dev/null || true)
  [[ -n $AGENT_VERSION ]] && log "$AGENT version $AGENT_VERSION"
  return 0
}

detect_agent() {
  local -a found=()
  ci_path "$MNT" "$V2_CONFIG" >/dev/null && found+=("EC2Launch v2")
  ci_path "$MNT" "$EC2CONFIG_XML" >/dev/null && found+=("EC2Config")
  ci_path "$MNT" "$V1_CONFIG" >/dev/null && found+=("EC2Launch v1")
  ((${#found[@]} > 0)) ||
    die "no known launch agent on the Windows volume (EC2Launch v2, EC2Launch v1 or EC2Config): nothing would generate a password at boot; reset it from Windows (EC2Rescue for Windows Server)"
  if ((${#found[@]} > 1)); then
    local IFS=,
    die "more than one launch agent is installed (${found[*]}): which one runs at boot cannot be told from the files; remove the one that is not in use (AWS: migrate to EC2Launch v2), or reset the password from Windows"
  fi
  AGENT=${found[0]}
  log "launch agent: $AGENT"
  agent_version
}

# EC2Launch v2's agent-config.yml: check that it sets a random password with setAdminAccount (else
# deleting .run-once would not make a password that GetPasswordData returns), or, with --add TASK_FILE,
# print it with one more executeScript entry (the file's content) in the postReady stage. A task
# cannot be repeated in a stage (ec2launch-v2-settings.html, "Schema: agent-config.yml"): an existing
# executeScript task of postReady gets the entry added to its inputs list.
readonly AGENT_CONFIG_PY='import sys, yaml
text = open(sys.argv[1], "rb").read().decode("utf-8-sig")
doc = yaml.safe_load(text)
if not isinstance(doc, dict) or not isinstance(doc.get("config"), list):
    raise SystemExit("agent-config.yml has no config list")
def stages():
    for stage in doc["config"]:
        if not isinstance(stage, dict) or not isinstance(stage.get("tasks", []), list):
            raise SystemExit("agent-config.yml has a stage that is not a map with a tasks list")
        yield stage
random = False
for stage in stages():
    for task in stage.get("tasks") or []:
        if isinstance(task, dict) and task.get("task") == "setAdminAccount":
            password = (task.get("inputs") or {}).get("password") or {}
            random = random or password.get("type") == "random"
pending = any(isinstance(task, dict) and task.get("task") == "executeScript" and isinstance(task.get("inputs"), list)
    and any(isinstance(i, dict) and "ec2-reset-access, Mode=NewPassword" in str(i.get("content", "")) for i in task["inputs"])
    for stage in stages() for task in (stage.get("tasks") or []))
if len(sys.argv) == 2:
    print("pending" if pending else "random" if random else "no-random")
    raise SystemExit(0)
content = open(sys.argv[3], encoding="utf-8").read()
entry = {"frequency": "always", "type": "powershell", "runAs": "localSystem", "content": content}
post = [s for s in stages() if str(s.get("stage", "")).lower() == "postready"]
if not post:
    post = [{"stage": "postReady", "tasks": []}]
    doc["config"].append(post[0])
tasks = post[0].setdefault("tasks", [])
if tasks is None:
    tasks = post[0]["tasks"] = []
existing = [t for t in tasks if isinstance(t, dict) and t.get("task") == "executeScript"]
if existing:
    inputs = existing[0].get("inputs")
    if not isinstance(inputs, list):
        raise SystemExit("the postReady executeScript task has no inputs list")
    inputs.append(entry)
else:
    tasks.append({"task": "executeScript", "inputs": [entry]})
def literal(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)
yaml.SafeDumper.add_representer(str, literal)
sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=4096))'

# EC2Config's config.xml (argv[1]): with argv[2] "enable", write to argv[3] the file with the
# Ec2SetPassword plugin's State set to Enabled and, right after it, a comment holding this run's id
# (argv[4]) and the State's exact former text (base64), so that Mode=Revert can give back the very
# bytes; everything else (line ends, encoding) kept. Prints "changed", or "already" when it is Enabled.
# With "revert": the file as it was before that run's change, or "none" when the run's comment is not
# there, or "booted" when EC2Config has set the plugin back (it disables it after generating a
# password: https://docs.aws.amazon.com/sdkfornet/latest/apidocs/items/MEC2EC2GetPasswordDataGetPasswordDataRequestNET35.html).
# Every result is parsed again and must differ from the original in that State alone.
readonly CONFIG_XML_PY='import base64, re, sys
import xml.etree.ElementTree as ET
raw = open(sys.argv[1], "rb").read()
def states(data):
    root = ET.fromstring(data)
    plugins = root.find("Plugins")
    if root.tag != "Ec2ConfigurationSettings" or plugins is None:
        raise SystemExit("config.xml is not an EC2Config settings file")
    return [((p.findtext("Name") or "").strip(), (p.findtext("State") or "").strip()) for p in plugins.findall("Plugin")]
def check(new, state):
    expected = [(n, state if n == "Ec2SetPassword" else s) for n, s in before]
    if states(new) != expected:
        raise SystemExit("changing Ec2SetPassword would change other settings")
before = states(raw)
matches = [s for n, s in before if n == "Ec2SetPassword"]
if len(matches) != 1:
    raise SystemExit("config.xml has no single Ec2SetPassword plugin")
head = rb"(<Plugin>\s*<Name>\s*Ec2SetPassword\s*</Name>\s*<State>)"
run = sys.argv[4].encode("ascii")
if sys.argv[2] == "revert":
    pattern = re.compile(head + rb"([A-Za-z\s]*)(</State>)<!-- ec2-reset-access:" + re.escape(run) + rb":([A-Za-z0-9+/=]*) -->")
    found = pattern.search(raw)
    if not found:
        print("none")
        raise SystemExit(0)
    if found.group(2).strip() != b"Enabled":
        print("booted")
        raise SystemExit(0)
    former = base64.b64decode(found.group(4), validate=True)
    if not re.fullmatch(rb"[A-Za-z\s]*", former):
        raise SystemExit("the saved State is not a State")
    new = raw[:found.start()] + found.group(1) + former + found.group(3) + raw[found.end():]
    check(new, former.decode("ascii").strip())
    open(sys.argv[3], "wb").write(new)
    print("reverted")
    raise SystemExit(0)
if matches[0] == "Enabled":
    print("already")
    raise SystemExit(0)
pattern = re.compile(head + rb"([A-Za-z\s]*)(</State>)")
found = list(pattern.finditer(raw))
if len(found) != 1:
    raise SystemExit("the Ec2SetPassword plugin is not laid out as Name then State")
m = found[0]
mark = b"<!-- ec2-reset-access:" + run + b":" + base64.b64encode(m.group(2)) + b" -->"
new = raw[:m.start()] + m.group(1) + b"Enabled" + m.group(3) + mark + raw[m.end():]
check(new, "Enabled")
open(sys.argv[3], "wb").write(new)
print("changed")'

# Write NEW over FILE in place (same file record, so the file keeps its ACL), then read it back.
# The file is truncated before the new bytes go in; if writing them fails (no space left, an I/O
# error), the original bytes (saved first, never larger than the new ones here) are written back the
# same way and checked, so that the file is never left half written.
write_in_place() {
  local file=$1 new=$2 saved="$WORK_DIR/old.$RANDOM"
  cp -- "$file" "$saved"
  if { cat -- "$new" >"$file" && { sync -f -- "$file" 2>/dev/null || sync; } && cmp -s -- "$new" "$file"; } 2>"$WORK_DIR/write.err"; then
    rm -f -- "$saved"
    return 0
  fi
  local reason
  reason=$(first_line "$WORK_DIR/write.err")
  if cat -- "$saved" >"$file" && cmp -s -- "$saved" "$file"; then
    rm -f -- "$saved"
    die "writing $(windows_path "$file") failed (${reason:-the bytes read back differ}); its original bytes were written back"
  fi
  die "writing $(windows_path "$file") failed (${reason:-the bytes read back differ}) and its original bytes could not be written back: the file is damaged; restore it from the run's snapshot"
}

# Refuse before the read-write mount when the volume lacks room for the files to grow (NewPassword adds
# several KB to agent-config.yml): statvfs of the read-only mount, a margin of 1 MiB for NTFS's own use.
check_free_space() {
  local item op path source growth=0 free
  for item in "${PLAN[@]}"; do
    IFS=$'\t' read -r op path source <<<"$item"
    [[ $op == replace ]] || continue
    growth=$((growth + $(stat -c %s -- "$source") - $(stat -c %s -- "$MNT/$path")))
  done
  ((growth > 0)) || return 0
  free=$(($(stat -f -c '%a * %S' -- "$MNT")))
  ((free >= growth + 1048576)) ||
    die "the Windows volume has $free bytes free, too few to write $growth more bytes safely (1 MiB margin): free some space on C: (or grow the volume), then run again"
}

windows_path() { local p=${1#"$MNT"}; p=${p//\//\\}; printf '%s' "$p"; }

# --- plans: everything is checked and prepared before the read-write mount; then only writes.
PLAN=() # tab-separated: "rename PATH NEWPATH" | "replace PATH NEWFILE" (a Windows name has no tab); nothing is ever created

# The name .run-once gets while the run is in flight (and keeps after the instance booted).
saved_run_once_name() {
  local name=.run-once.ec2-reset-access
  [[ -n $RUN_ID ]] && name+="-$RUN_ID"
  printf '%s' "$name"
}

plan_ec2launch_v2() {
  local config run_once verdict
  config=$(ci_path "$MNT" "$V2_CONFIG") || die "EC2Launch v2's agent-config.yml cannot be read"
  [[ -f $config ]] || die "EC2Launch v2's agent-config.yml is not a file"
  verdict=$(python3 -c "$AGENT_CONFIG_PY" "$config" 2>"$WORK_DIR/yaml.err") ||
    die "EC2Launch v2's agent-config.yml cannot be read as YAML: $(tail -n 1 "$WORK_DIR/yaml.err")"
  ci_path "$MNT" "$V2_STATE" >/dev/null || die "EC2Launch v2's state folder is missing"
  if [[ $MODE == EnablePasswordGeneration ]]; then
    [[ $verdict != pending ]] ||
      die "agent-config.yml holds the boot task of an earlier NewPassword run that has not booted yet: start the instance once, then run again"
    [[ $verdict == random ]] ||
      die "EC2Launch v2's agent-config.yml has no setAdminAccount task with password type random: a new run of its once-tasks would not generate a password that GetPasswordData returns; use Mode=NewPassword"
    if run_once=$(ci_path "$MNT" "$V2_RUN_ONCE"); then
      [[ -f $run_once ]] || die "EC2Launch v2's .run-once is not a file"
      # AWS's procedure deletes it; renaming it in its folder has the same effect for the agent (the
      # name .run-once is gone) and keeps the file (same MFT record, same ACL), so that Mode=Revert can
      # put it back when the run fails before the instance boots.
      local saved
      saved="${run_once%/*}/$(saved_run_once_name)"
      [[ ! -e $saved ]] || die "$(windows_path "$saved") exists: this run id was used before"
      PLAN+=("rename"$'\t'"${run_once#"$MNT/"}"$'\t'"${saved#"$MNT/"}")
      # AWS's page says so: "Any scripts set to run once will be triggered by this action."
      warn "EC2Launch v2 runs every task with frequency once again at next boot (setAdminAccount among them, and any script set to run once)"
    else
      warn "EC2Launch v2's state\\.run-once is already absent: the once-tasks run at next boot anyway"
    fi
    return 0
  fi
  # NewPassword: the boot action with this run's values (the original file's bytes among them), and
  # agent-config.yml with the task added, written over the file in place: nothing else is created.
  [[ $verdict != pending ]] ||
    die "agent-config.yml already holds the boot task of an earlier NewPassword run that has not booted yet: start the instance once, then run again"
  local template="$WORK_DIR/new.boot.ps1" boot="$WORK_DIR/new.boot"
  if ! { printf '%s' "$BOOT_SCRIPT_B64" | base64 -d >"$template" 2>/dev/null && grep -q '__KEY_XML__' "$template"; }; then
    die "this document's boot script is missing (the Command document was not built by lib/windows-reset-document.ts)"
  fi
  python3 -c 'import base64, sys
t = open(sys.argv[1], encoding="utf-8").read()
original = base64.b64encode(open(sys.argv[4], "rb").read()).decode("ascii")
for token, value in (("__RUN_ID__", sys.argv[2]), ("__KEY_XML__", sys.argv[3]), ("__ORIGINAL_CONFIG_B64__", original)):
    if t.count(token) != 1:
        raise SystemExit("token " + token)
    t = t.replace(token, value)
open(sys.argv[5], "w", encoding="utf-8").write(t)' "$template" "$RUN_ID" "$KEY_XML" "$config" "$boot" 2>"$WORK_DIR/boot.err" ||
    die "could not prepare the boot action: $(tail -n 1 "$WORK_DIR/boot.err")"
  python3 -c "$AGENT_CONFIG_PY" "$config" --add "$boot" >"$WORK_DIR/new.config" 2>"$WORK_DIR/yaml.err" ||
    die "could not add the boot action to agent-config.yml: $(tail -n 1 "$WORK_DIR/yaml.err")"
  python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1], encoding="utf-8"))' "$WORK_DIR/new.config" ||
    die "the new agent-config.yml is not valid YAML"
  PLAN+=("replace"$'\t'"${config#"$MNT/"}"$'\t'"$WORK_DIR/new.config")
}

# Mode=Revert: the original agent-config.yml that the pending NewPassword task of run argv[2] carries,
# written to argv[3]; prints "none" when no task of that run is pending.
# shellcheck disable=SC2016 # Python text, not shell
readonly REVERT_PY='import base64, re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1], "rb").read().decode("utf-8-sig"))
found = []
for stage in (doc.get("config") or []) if isinstance(doc, dict) else []:
    for task in (stage.get("tasks") or []) if isinstance(stage, dict) else []:
        if isinstance(task, dict) and task.get("task") == "executeScript" and isinstance(task.get("inputs"), list):
            for entry in task["inputs"]:
                content = str(entry.get("content", "")) if isinstance(entry, dict) else ""
                if "ec2-reset-access, Mode=NewPassword" in content and ("$RunId = \x27" + sys.argv[2] + "\x27") in content:
                    found.append(content)
if not found:
    print("none")
    raise SystemExit(0)
if len(found) != 1:
    raise SystemExit("more than one boot task of this run")
m = re.search(r"^\$OriginalConfig = \x27([A-Za-z0-9+/=]*)\x27\r?$", found[0], re.M)
if not m:
    raise SystemExit("the boot task carries no original agent-config.yml")
open(sys.argv[3], "wb").write(base64.b64decode(m.group(1), validate=True))
print("found")'

plan_revert() {
  if [[ $AGENT == EC2Config ]]; then
    plan_revert_ec2config
    return 0
  fi
  if [[ $AGENT != "EC2Launch v2" ]]; then
    warn "nothing to revert: this run changes nothing on $AGENT"
    return 0
  fi
  local config verdict state saved pending=0
  config=$(ci_path "$MNT" "$V2_CONFIG") || die "EC2Launch v2's agent-config.yml cannot be read"
  [[ -f $config ]] || die "EC2Launch v2's agent-config.yml is not a file"
  verdict=$(python3 -c "$REVERT_PY" "$config" "$RUN_ID" "$WORK_DIR/new.config" 2>"$WORK_DIR/yaml.err") ||
    die "cannot read the boot task back from agent-config.yml: $(tail -n 1 "$WORK_DIR/yaml.err")"
  if [[ $verdict != none ]]; then
    pending=1
    PLAN+=("replace"$'\t'"${config#"$MNT/"}"$'\t'"$WORK_DIR/new.config")
  fi
  # EnablePasswordGeneration's renamed .run-once goes back, unless the agent has made a new one (the
  # instance booted since: the password was generated; nothing to undo).
  state=$(ci_path "$MNT" "$V2_STATE") || die "EC2Launch v2's state folder is missing"
  if saved=$(ci_path "$state" "$(saved_run_once_name)"); then
    pending=1
    if ci_path "$state" .run-once >/dev/null; then
      warn "the instance has booted since run $RUN_ID (EC2Launch v2 made a new .run-once): nothing to revert there"
    else
      PLAN+=("rename"$'\t'"${saved#"$MNT/"}"$'\t'"${state#"$MNT/"}/.run-once")
    fi
  fi
  ((pending)) || warn "nothing of run $RUN_ID to revert (no pending boot task in agent-config.yml, no saved .run-once)"
  return 0
}

plan_revert_ec2config() {
  local config verdict
  config=$(ci_path "$MNT" "$EC2CONFIG_XML") || die "EC2Config's config.xml cannot be read"
  [[ -f $config ]] || die "EC2Config's config.xml is not a file"
  verdict=$(python3 -c "$CONFIG_XML_PY" "$config" revert "$WORK_DIR/new.config" "$RUN_ID" 2>"$WORK_DIR/xml.err") ||
    die "EC2Config's config.xml cannot be reverted safely: $(tail -n 1 "$WORK_DIR/xml.err")"
  case $verdict in
    reverted) PLAN+=("replace"$'\t'"${config#"$MNT/"}"$'\t'"$WORK_DIR/new.config") ;;
    booted) warn "the instance has booted since run $RUN_ID (EC2Config has set Ec2SetPassword back): nothing to revert" ;;
    *) warn "nothing of run $RUN_ID to revert (config.xml holds no change of that run)" ;;
  esac
}

plan_ec2config() {
  [[ $MODE == EnablePasswordGeneration ]] ||
    die "Mode=NewPassword needs EC2Launch v2 (a documented boot-time script task); this instance runs EC2Config: use Mode=EnablePasswordGeneration with the instance's key pair, or migrate to EC2Launch v2"
  local config verdict
  config=$(ci_path "$MNT" "$EC2CONFIG_XML") || die "EC2Config's config.xml cannot be read"
  [[ -f $config ]] || die "EC2Config's config.xml is not a file"
  verdict=$(python3 -c "$CONFIG_XML_PY" "$config" enable "$WORK_DIR/new.config" "${RUN_ID:-unnamed}" 2>"$WORK_DIR/xml.err") ||
    die "EC2Config's config.xml cannot be changed safely: $(tail -n 1 "$WORK_DIR/xml.err")"
  if [[ $verdict == already ]]; then
    warn "EC2Config's Ec2SetPassword is already Enabled: the password is generated at next boot"
  else
    PLAN+=("replace"$'\t'"${config#"$MNT/"}"$'\t'"$WORK_DIR/new.config")
  fi
}

plan() {
  if [[ $MODE == Revert ]]; then
    plan_revert
    return 0
  fi
  case $AGENT in
    "EC2Launch v2") plan_ec2launch_v2 ;;
    "EC2Config") plan_ec2config ;;
    "EC2Launch v1")
      die "EC2Launch v1 has no documented way to generate a new password from another instance (AWS documents only EC2Rescue's own offline reset): run AWSSupport-ResetAccess or EC2Rescue for Windows Server, or migrate the instance to EC2Launch v2"
      ;;
  esac
}

# --- writing
apply() {
  local item op path source file
  unmount_last || die "could not unmount the read-only mount of $WINDOWS_DEVICE"
  mount_ntfs "$WINDOWS_DEVICE" "$MNT" rw ||
    die "the Windows volume cannot be mounted read-write: $(first_line "$WORK_DIR/mount.err") (Windows was not shut down cleanly: start the instance, shut it down fully, and run again)"
  for item in "${PLAN[@]}"; do
    IFS=$'\t' read -r op path source <<<"$item"
    file="$MNT/$path"
    case $op in
      rename)
        [[ -f $file && ! -L $file && ! -e $MNT/$source ]] || die "$(windows_path "$file") changed under us"
        mv -T -- "$file" "$MNT/$source"
        [[ ! -e $file && -f $MNT/$source ]] || die "could not rename $(windows_path "$file")"
        change "$(windows_path "$file")" renamed "$(windows_path "$MNT/$source")"
        ;;
      replace)
        [[ -f $file && ! -L $file ]] || die "$(windows_path "$file") changed under us"
        write_in_place "$file" "$source"
        change "$(windows_path "$file")" rewritten
        ;;
    esac
  done
  unmount_last || die "could not unmount the Windows volume cleanly (ntfs-3g reported an error writing it back)"
}

# A process that holds this private mount namespace until every other process in it has ended, in a
# session of its own so that the agent's SIGKILL of our process group spares it. Without it, an
# ntfs-3g killed together with the script can be the last process of the namespace: its exit then
# unmounts its own FUSE file system and waits for its own answer to FUSE's DESTROY request, forever,
# in uninterruptible sleep, holding the volume (seen in test/script/windows-reset.test.ts).
start_namespace_holder() {
  [[ -n ${INJECT_KEY_MNT_NS:-} ]] || return 0
  # shellcheck disable=SC2016 # the holder's own script
  setsid bash -c 'while :; do
  others=0
  for p in /proc/[0-9]*; do
    if [[ $p != /proc/$$ && $p/ns/mnt -ef /proc/$$/ns/mnt ]]; then others=1; break; fi
  done
  ((others)) || exit 0
  sleep 0.2
done' namespace-holder </dev/null >/dev/null 2>&1 &
}

main() {
  read_parameters
  need_tools
  WORK_DIR=$(mktemp -d -t windows-reset.XXXXXX)
  start_namespace_holder
  convert_key
  choose_driver
  wait_for_device
  find_windows_candidates
  find_windows_volume
  check_hibernation
  detect_agent
  plan
  check_free_space
  if ((${#PLAN[@]} > 0)); then apply; fi
  cleanup || die "could not clean up"
  print_report ok
}

main "$@"
