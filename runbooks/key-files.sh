#!/usr/bin/env bash
# key-files.sh: what the inject-key and revoke-key scripts share, written once: the target (offline:
# the volume SSM_VolumeId attached here, its one Linux root among the disk and its partitions
# (ext2/3/4, xfs, btrfs, LVM) and the filesystems its /etc/fstab puts the homes on; online,
# SSM_Root=/: the running system), its users, the AuthorizedKeysFile sshd reads for each (Match
# blocks, Include, tokens), the trust checks of sshd's StrictModes, the writes (as the user where the
# user controls the path; undone when one fails), the mounts and their cleanup.
# lib/inject-key-document.ts assembles a Command document's script from this file followed by the action's
# own part (runbooks/inject-key.sh or runbooks/revoke-key.sh), which defines SCRIPT_NAME,
# read_parameters, print_ok_report and main, and ends with `main "$@"`.
# Output: log on stderr; the last stdout line is one JSON report {"version":1,"status":"ok"|"error",...};
# non-zero exit on error. Every refusal is decided before anything is written; a failed write is undone.
# The file written is the one sshd reads for the user (Match blocks included), and only where sshd
# would trust it (StrictModes); under a directory the user controls the writes run with the user's
# uid/gid, so that the kernel refuses whatever the user could not write (a link of theirs cannot
# steer a root write).
# --- shared head: begin. lib/windows-reset-document.ts puts the lines from here to "shared head: end"
# at the head of the windows-reset script too: the shell settings, the private mount namespace (its
# variable keeps the inject-key name, which inject-key.sh and revoke-key.sh read), the device of a
# volume attached to the helper and the JSON helpers are written once for every helper script.
if [ -z "${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi
set +o posix
set -Eeuo pipefail
umask 077
export LC_ALL=C
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The SSM Agent stops a command on cancel and on timeout with SIGKILL to its whole process group
# (aws/amazon-ssm-agent, agent/executers/executers_unix.go: killProcess), which no trap sees. So the
# script runs in a private mount namespace of its own: whatever it has mounted dies with it.
if [[ -z ${INJECT_KEY_MNT_NS:-} && -f $0 ]] && command -v unshare >/dev/null 2>&1; then
  INJECT_KEY_MNT_NS=$(readlink /proc/self/ns/mnt) && export INJECT_KEY_MNT_NS &&
    exec unshare --mount --propagation private -- /bin/bash "$0" "$@"
fi
# The report goes to fd 3 and the log to fd 4: a signal handled while a step's output is
# redirected still reaches the caller.
exec 3>&1 4>&2

readonly DEVICE_WAIT_SECONDS=120
readonly BY_ID_PREFIX=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_

# The block device of the EBS volume VOLUME_ID attached to this (Nitro) helper, by its NVMe serial, into
# DISK; refuses the helper's own root disk.
wait_for_device() {
  local link="${BY_ID_PREFIX}vol${VOLUME_ID#vol-}"
  local deadline=$((SECONDS + DEVICE_WAIT_SECONDS))
  log "waiting for $link"
  until [[ -e $link ]]; do
    ((SECONDS < deadline)) || die "volume $VOLUME_ID did not appear as $link within ${DEVICE_WAIT_SECONDS} s: is it attached to this instance (a Nitro instance)?"
    sleep 1
  done
  DISK=$(readlink -f -- "$link")
  [[ -b $DISK ]] || die "$link does not lead to a block device"
  # Let udev finish creating the partitions' device nodes (bounded).
  if command -v udevadm >/dev/null 2>&1; then
    udevadm settle --timeout=30 >/dev/null 2>&1 || log "udevadm settle timed out; going on"
  fi
  local helper_root
  helper_root=$(findmnt -n -o SOURCE / 2>/dev/null || true)
  if [[ -n $helper_root && ( $helper_root == "$DISK" || $(lsblk -nrpo PKNAME -- "$helper_root" 2>/dev/null || true) == "$DISK" ) ]]; then
    die "volume $VOLUME_ID is this helper's own root disk"
  fi
  log "volume $VOLUME_ID is $DISK"
}
# A JSON string of $1 (control characters dropped), and a JSON array of JSON values.
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=$(printf '%s' "$s" | tr -d '\000-\037\177')
  printf '"%s"' "$s"
}

json_join() {
  local IFS=,
  printf '[%s]' "$*"
}
# --- shared head: end
export LVM_SUPPRESS_FD_WARNINGS=1

readonly SSH_HOME_LABEL=system_u:object_r:ssh_home_t:s0
readonly KEY_PATTERN='^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,2})( [A-Za-z0-9@._+=:,/ -]{0,256})?$'
readonly USERS_PATTERN='^([a-z_][a-z0-9_.-]{0,31}(,[a-z_][a-z0-9_.-]{0,31})*)?$'
readonly VOLUME_PATTERN='^(vol-[0-9a-f]{8,17})?$'
# LVM: no metadata backups or archives on the helper for the target's volume groups.
# Where nothing may be written (NO_WRITES), the action adds: global { metadata_read_only = 1 } (lvm.conf(5)).
LVM_CONFIG='backup { backup = 0 archive = 0 }'

KEY_PARAM=PublicKey # the parameter that gives the key written, for error messages
REPORT_EXTRA=""     # JSON members the action puts at the head of its error report ("mode":...,)
NO_WRITES=0        # 1: this run writes nothing to the target (no journal replay, no read-write mount)
INCOMPLETE=0       # 1: part of the target could not be read as the instance will see it (reported)
VOLUME_ID="" PUBLIC_KEY="" KEY_TYPE="" KEY_BASE64="" KEY_LINE="" REQUESTED_USERS=""
ONLINE=0 WORK_DIR="" DISK="" ROOT_DEVICE="" ROOT_FSTYPE="" ROOT_SUBVOL="" SELINUX=0 REPORT_DONE=0
ROOT=""   # the target's root as seen from here ("/" online, a mount point offline)
TARGET="" # prefix for paths inside the target: "" online, ROOT offline
HOME_DEVICE="" HOME_FSTYPE="" # the filesystem holding the first user's home, when not the root
# The target's other filesystems that hold a home or key file we write (from its fstab), outermost first.
EXTRA_POINTS=() EXTRA_DEVICES=() EXTRA_FSTYPES=() EXTRA_OPTIONS=()
MOUNTS=() ACTIVATED_VGS=() REPLAYED=()
REIMMUTABLE=()     # files whose immutable flag must be set again
CHANGES=() WARNINGS=() # JSON
CANDIDATE_NOTES=() # what each candidate turned out to be, for the error message
declare -A PASSWD_UID=() PASSWD_GID=() PASSWD_HOME=() PASSWD_SHELL=() GROUP_NAME=() MEMBER_GIDS=()
PASSWD_ORDER=()
WRITER=0 WGID=0
SELECTED_USERS=()   # the users whose homes and key files matter: the action's select_users sets it
SCAN_ALL_USERS=0    # 1: every user is scanned (revoke): a home the volume does not hold is warned of, not refused
WRITE_PATHS=()      # set by paths_to_write
FIRST_HOME_PATHS=() # the first user's home, as written and as resolved (paths_to_write)
readonly KEY_FILE_MAX=1048576 # the largest key file read
UNDO=()            # writes to undo when a later one fails: "uid gid op size path"
# shellcheck disable=SC2034 # BACKUP_WRITERS: used by revoke-key.sh only
BACKUPS=() BACKUP_WRITERS=() # hard links keeping the originals of rewritten files ("restore" undoes), and "uid gid" of each

log() { printf '%s: %s\n' "${SCRIPT_NAME:-key-files}" "$*" >&4; }

warn() {
  local w
  w=$(json_string "$*")
  [[ " ${WARNINGS[*]} " == *" $w "* ]] && return 0
  log "warning: $*"
  WARNINGS+=("$w")
}

print_error_report() {
  REPORT_DONE=1
  printf '{"version":1,"status":"error",%s"error":%s,"changes":%s,"warnings":%s}\n' "$REPORT_EXTRA" \
    "$(json_string "$1")" "$(json_join "${CHANGES[@]}")" "$(json_join "${WARNINGS[@]}")" >&3
}

# Refuse or fail: clean up, print the error report, exit 1.
die() {
  if [[ $BASHPID != "$$" ]]; then
    # A subshell must not clean up or report: say so and let the parent fail.
    log "error (in a subshell): $*"
    exit 1
  fi
  log "error: $*"
  ((${#UNDO[@]} == 0)) || undo_all
  cleanup || true
  print_error_report "$*"
  exit 1
}

restore_immutable() {
  local file
  for file in "${REIMMUTABLE[@]}"; do
    chattr +i -- "$file" || log "could not set the immutable flag again on $file"
  done
  REIMMUTABLE=()
}

# MOUNTS may name a directory that is not (or no longer) mounted: a signal can arrive between
# a mount and its bookkeeping. Only what is mounted is unmounted; a failure does not stop the others.
unmount_all() {
  local i mountpoint status=0
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    mountpoint=${MOUNTS[i]}
    mountpoint -q -- "$mountpoint" 2>/dev/null || continue
    if ! umount -- "$mountpoint" 2>/dev/null; then
      log "umount $mountpoint failed, detaching it lazily"
      umount -l -- "$mountpoint" || status=1
    fi
  done
  MOUNTS=()
  return "$status"
}

deactivate_vgs() {
  local vg
  for vg in "${ACTIVATED_VGS[@]}"; do
    lvm vgchange --config "$LVM_CONFIG" -an -- "$vg" >/dev/null 2>&1 || log "could not deactivate volume group $vg"
  done
  ACTIVATED_VGS=()
}

cleanup() {
  local status=0
  restore_immutable
  unmount_all || status=1
  deactivate_vgs
  if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
    # Only files of this run's own directory (never into a mount point, which is a directory).
    find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type f -delete 2>/dev/null || true
    find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type d -empty -delete 2>/dev/null || true
    rmdir -- "$WORK_DIR" 2>/dev/null || { log "left $WORK_DIR (not empty)"; status=1; }
  fi
  WORK_DIR=""
  return "$status"
}

on_exit() {
  local status=$?
  ((${#UNDO[@]} == 0 || REPORT_DONE)) || undo_all
  cleanup || true
  if ((!REPORT_DONE)); then
    print_error_report "unexpected failure (exit $status) at line ${FAILED_LINE:-?}: ${FAILED_COMMAND:-?}"
    ((status)) || status=1
  fi
  exit "$status"
}

FAILED_LINE=""
FAILED_COMMAND=""
trap 'FAILED_LINE=$LINENO; FAILED_COMMAND=$BASH_COMMAND' ERR
trap on_exit EXIT
trap 'die "interrupted by a signal"' INT TERM HUP

hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# Next SSH wire-format string of BLOB (hex) at POS into S; 1 when truncated.
BLOB="" POS=0 S=""
next_string() {
  ((POS + 8 <= ${#BLOB})) || return 1
  local n=$((2 * 16#${BLOB:POS:8}))
  POS=$((POS + 8))
  ((POS + n <= ${#BLOB})) || return 1
  S=${BLOB:POS:n}
  POS=$((POS + n))
}

# The key blob must be a public key of its type (RFC 4253 6.6, RFC 5656 3.1, RFC 8709 4, OpenSSH
# PROTOCOL.u2f): the inner type, the fields and their sizes, nothing after.
check_blob() {
  local bad="$KEY_PARAM is not a valid $KEY_TYPE public key:" n
  [[ $(printf '%s' "$KEY_BASE64" | base64 -d 2>/dev/null | base64 -w0) == "$KEY_BASE64" ]] || die "$bad the base64 is not canonical"
  BLOB=$(printf '%s' "$KEY_BASE64" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  POS=0
  { next_string && [[ $S == "$(hex "$KEY_TYPE")" ]]; } || die "$bad the key data does not begin with its type"
  case $KEY_TYPE in
    *ed25519*) { next_string && ((${#S} == 64)); } || die "$bad not a 32-byte Ed25519 key" ;;
    ssh-rsa)
      { next_string && ((${#S} >= 2 && ${#S} <= 16)); } || die "$bad bad exponent"
      next_string || die "$bad truncated"
      while [[ $S == 00* ]]; do S=${S:2}; done
      [[ $S == 0* ]] && S=${S:1}
      n=$((${#S} * 4))
      ((n)) && { ((16#${S:0:1} < 8)) && n=$((n - 1)); ((16#${S:0:1} < 4)) && n=$((n - 1)); ((16#${S:0:1} < 2)) && n=$((n - 1)); }
      ((n >= 2048 && n <= 16384)) || die "$bad the modulus has $n bits (2048 to 16384 accepted)" ;;
    *)
      n=${KEY_TYPE#*nistp}; n=${n%%@*}
      { next_string && [[ $S == "$(hex "nistp$n")" ]]; } || die "$bad the curve does not match the type"
      n=$((((n + 7) >> 3) * 4 + 2))
      { next_string && ((${#S} == n)) && [[ $S == 04* ]]; } || die "$bad not an uncompressed point of its curve" ;;
  esac
  if [[ $KEY_TYPE == sk-* ]]; then { next_string && [[ $S == 7373683a* ]]; } || die "$bad the application does not begin with ssh:"; fi
  ((POS == ${#BLOB})) || die "$bad trailing bytes after the key"
}

# Disk and partitions: the partitions when there is a partition table, else the disk.
list_block_devices() {
  local -a names=()
  mapfile -t names < <(lsblk -lnpo NAME -- "$DISK")
  if ((${#names[@]} > 1)); then
    printf '%s\n' "${names[@]:1}"
  else
    printf '%s\n' "$DISK"
  fi
}

fs_type() { blkid -p -o value -s TYPE -- "$1" 2>/dev/null || true; }

# --- mounting
new_mount_dir() {
  local dir
  dir=$(mktemp -d -- "$WORK_DIR/m.XXXXXX")
  printf '%s' "$dir"
}

# mount_fs DEVICE FSTYPE DIR inspect|rw [SUBVOL]: "inspect" never writes (no journal replay).
mount_fs() {
  local device=$1 fstype=$2 dir=$3 mode=$4 subvol=${5:-} options
  case "$fstype:$mode" in
    xfs:inspect) options=ro,nouuid,norecovery ;;
    xfs:rw) options=rw,nouuid ;;
    ext2:inspect | ext3:inspect | ext4:inspect) options=ro,noload ;;
    ext*:rw) options=rw ;;
    # nologreplay: a read-only btrfs mount would otherwise replay the log tree, a write (btrfs(5))
    btrfs:inspect) options=ro; ((NO_WRITES)) && options+=,nologreplay ;;
    btrfs:rw) options=rw ;;
    *) return 1 ;;
  esac
  [[ -n $subvol ]] && options+=",$subvol"
  # Registered before mounting, so that a signal right after the mount still unmounts it.
  MOUNTS+=("$dir")
  # rw: -w, so that mount never falls back to read-only on a write-protected device (util-linux
  # mount(8), -w); and the mount checked to be read-write.
  local writable=-r
  [[ $mode == rw ]] && writable=-w
  if ! mount "$writable" -t "$fstype" -o "$options" -- "$device" "$dir" 2>"$WORK_DIR/mount.err"; then
    unset 'MOUNTS[-1]'
    return 1
  fi
  if [[ $mode == rw && $(findmnt -n -o OPTIONS --mountpoint "$dir") != rw,* ]]; then
    echo "$device is read-only" >"$WORK_DIR/mount.err"
    return 1
  fi
}

unmount_last() {
  local last=$((${#MOUNTS[@]} - 1))
  umount -- "${MOUNTS[last]}"
  rmdir -- "${MOUNTS[last]}" 2>/dev/null || true
  unset 'MOUNTS[last]'
}

journal_dirty() {
  case $2 in
    ext3 | ext4) [[ $(dumpe2fs -h -- "$1" 2>/dev/null) == *"features:"*needs_recovery* ]] ;;
    xfs) [[ $({ xfs_logprint -t -- "$1" 2>/dev/null || true; } | head -c 2048) == *"state: <DIRTY>"* ]] ;;
    *) return 1 ;;
  esac
}

# A Linux root has /etc/passwd and /etc/ssh, and its top, /etc, /etc/passwd and /etc/ssh belong to
# root and are writable by root only: a user's mkdir on a world-writable filesystem (a separate /tmp)
# makes no root.
is_linux_root() {
  local p owner mode
  [[ -f $1/etc/passwd && ! -L $1/etc/passwd && -d $1/etc/ssh ]] || return 1
  for p in "$1" "$1/etc" "$1/etc/passwd" "$1/etc/ssh"; do
    read -r owner mode < <(stat -c '%u %a' -- "$p")
    [[ $owner == 0 ]] && ((!(8#$mode & 8#22))) || return 1
  done
}

# Activate the volume group on an LVM physical volume; set LVM_LVS to its logical volumes.
LVM_LVS=()
lvm_candidates() {
  local pv=$1 vg err
  LVM_LVS=()
  if ! command -v lvm >/dev/null 2>&1; then
    CANDIDATE_NOTES+=("$pv: LVM physical volume, but lvm2 is not installed on this helper")
    return 0
  fi
  vg=$(lvm pvs --config "$LVM_CONFIG" --noheadings -o vg_name -- "$pv" 2>/dev/null | tr -d ' ' || true)
  if [[ -z $vg ]]; then
    CANDIDATE_NOTES+=("$pv: LVM physical volume without a volume group")
    return 0
  fi
  if ! err=$(lvm vgchange --config "$LVM_CONFIG" -ay -- "$vg" 2>&1 >/dev/null); then
    err=$(printf '%s' "$err" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/^[[:space:]]*//')
    CANDIDATE_NOTES+=("$pv: LVM physical volume of volume group $vg, which could not be activated, so its logical volumes cannot be searched for the root (${err:-no message})")
    lvm vgchange --config "$LVM_CONFIG" -an -- "$vg" >/dev/null 2>&1 || true
    return 0
  fi
  ACTIVATED_VGS+=("$vg")
  mapfile -t LVM_LVS < <(lvm lvs --config "$LVM_CONFIG" --noheadings -o lv_path -- "$vg" 2>/dev/null | tr -d ' ')
}

# Mount each candidate read-only and keep the one Linux root. Leaves it mounted (inspect mode).
find_root() {
  local -a candidates=() found=() found_types=() found_subvols=()
  local device fstype dir sub
  mapfile -t candidates < <(list_block_devices)
  local i=0
  while ((i < ${#candidates[@]})); do
    device=${candidates[i]}
    i=$((i + 1))
    fstype=$(fs_type "$device")
    case "$fstype" in
      ext2 | ext3 | ext4 | xfs | btrfs) ;;
      LVM2_member)
        lvm_candidates "$device"
        candidates+=("${LVM_LVS[@]}")
        continue
        ;;
      "") CANDIDATE_NOTES+=("$device: no filesystem"); continue ;;
      *) CANDIDATE_NOTES+=("$device: $fstype"); continue ;;
    esac
    dir=$(new_mount_dir)
    if ((NO_WRITES)) && journal_dirty "$device" "$fstype"; then
      warn "the journal of $device ($fstype) is not clean and was not replayed (this mode writes nothing): its last writes are not seen"
      # shellcheck disable=SC2034 # read by revoke-key.sh's report only
      INCOMPLETE=1
    elif journal_dirty "$device" "$fstype"; then
      # The instance's kernel replays the journal when it mounts the filesystem at the next boot:
      # judge (and write to) that state. A read-write mount replays it as the kernel does.
      mount_fs "$device" "$fstype" "$dir" rw || die "cannot replay the journal of $device ($fstype): $(tail -n 1 "$WORK_DIR/mount.err")"
      umount -- "$dir"
      unset 'MOUNTS[-1]'
      REPLAYED+=("$device")
      warn "the journal of $device ($fstype) was not clean: it was replayed, as the instance's kernel would at its next boot"
    fi
    if ! mount_fs "$device" "$fstype" "$dir" inspect; then
      CANDIDATE_NOTES+=("$device: $fstype that could not be mounted ($(tail -n 1 "$WORK_DIR/mount.err"))")
      rmdir -- "$dir"
      continue
    fi
    if is_linux_root "$dir"; then
      found+=("$device"); found_types+=("$fstype"); found_subvols+=("")
    elif [[ $fstype == btrfs ]]; then
      # A btrfs root usually lives in a subvolume (Fedora: root, openSUSE/Ubuntu: @).
      for sub in "$dir"/*/; do
        sub=${sub%/}
        [[ -L $sub ]] && continue
        if is_linux_root "$sub"; then
          found+=("$device"); found_types+=("$fstype"); found_subvols+=("subvol=${sub##*/}")
        fi
      done
    fi
    CANDIDATE_NOTES+=("$device: $fstype")
    unmount_last
  done
  if ((${#found[@]} == 0)); then
    local notes="" note
    for note in "${CANDIDATE_NOTES[@]}"; do notes+="${notes:+; }$note"; done
    die "no Linux root (a filesystem with /etc/passwd and /etc/ssh) on $DISK; found: ${notes:-nothing}"
  fi
  ((${#found[@]} > 1)) && drop_mounted_elsewhere
  if ((${#found[@]} > 1)); then
    local list="" j
    for j in "${!found[@]}"; do
      list+="${list:+, }${found[j]}${found_subvols[j]:+ (${found_subvols[j]})}"
    done
    die "more than one Linux root on $DISK: $list; refusing to guess"
  fi
  ROOT_DEVICE=${found[0]}
  ROOT_FSTYPE=${found_types[0]}
  ROOT_SUBVOL=${found_subvols[0]}
  log "root filesystem: $ROOT_DEVICE ($ROOT_FSTYPE${ROOT_SUBVOL:+, $ROOT_SUBVOL})"
}

# Several roots (find_root's found, found_types, found_subvols): drop each that another one's
# /etc/fstab mounts somewhere other than / (a copy of a root kept on a data filesystem is no root).
drop_mounted_elsewhere() {
  local j k dir spec mountpoint fstype options rest device
  local -A dropped=()
  for j in "${!found[@]}"; do
    dir=$(new_mount_dir)
    if ! mount_fs "${found[j]}" "${found_types[j]}" "$dir" inspect "${found_subvols[j]}"; then
      rmdir -- "$dir"
      continue
    fi
    if [[ -f $dir/etc/fstab && ! -L $dir/etc/fstab ]]; then
      while read -r spec mountpoint fstype options rest; do
        [[ -z $spec || $spec == \#* || $mountpoint != /?* ]] && continue
        device=$(device_for_spec "$spec")
        for k in "${!found[@]}"; do
          [[ $k != "$j" && -n $device && ${found[k]} == "$device" ]] || continue
          [[ -z ${found_subvols[k]} || ,$options, == *",${found_subvols[k]},"* ]] && dropped[$k]=1
        done
      done <"$dir/etc/fstab"
    fi
    unmount_last
  done
  : "$fstype" "$rest"
  ((${#dropped[@]} < ${#found[@]})) || return 0
  for k in "${!dropped[@]}"; do
    log "${found[k]}${found_subvols[k]:+ (${found_subvols[k]})}: another root's /etc/fstab mounts it elsewhere, so it is not the root"
    unset 'found[k]' 'found_types[k]' 'found_subvols[k]'
  done
  found=("${found[@]}") found_types=("${found_types[@]}") found_subvols=("${found_subvols[@]}")
}

# mount_target inspect|rw: mount the root at $ROOT and, in it, the target's filesystems that
# hold what we write (find_mounts), outermost first.
mount_target() {
  local mode=$1 i
  ROOT=$WORK_DIR/root
  mkdir -p -- "$ROOT"
  mount_fs "$ROOT_DEVICE" "$ROOT_FSTYPE" "$ROOT" "$mode" "$ROOT_SUBVOL" ||
    die "cannot mount the root $ROOT_DEVICE ($mode): $(tail -n 1 "$WORK_DIR/mount.err")"
  TARGET=$ROOT
  for i in "${!EXTRA_POINTS[@]}"; do
    resolve_in_root "${EXTRA_POINTS[i]}"
    [[ -d $TARGET$RESOLVED ]] || die "the target's ${EXTRA_POINTS[i]} mount point does not exist on the root filesystem"
    mount_fs "${EXTRA_DEVICES[i]}" "${EXTRA_FSTYPES[i]}" "$TARGET$RESOLVED" "$mode" "${EXTRA_OPTIONS[i]}" ||
      die "cannot mount the target's ${EXTRA_POINTS[i]} ${EXTRA_DEVICES[i]} ($mode): $(tail -n 1 "$WORK_DIR/mount.err")"
  done
}

# --- the target's /etc/fstab

# Print the device among the disk's block devices (and activated LVs) that an fstab spec names.
device_for_spec() {
  local spec=$1 device key value number
  case "$spec" in
    UUID=* | LABEL=* | PARTUUID=* | PARTLABEL=*) key=${spec%%=*}; value=${spec#*=} ;;
    /dev/disk/by-uuid/*) key=UUID; value=${spec##*/} ;;
    /dev/disk/by-label/*) key=LABEL; value=${spec##*/} ;;
    /dev/disk/by-partuuid/*) key=PARTUUID; value=${spec##*/} ;;
    /dev/mapper/* | /dev/[a-z]*/[a-z]*)
      if [[ -b $spec ]] && [[ " $(lvm_paths) " == *" $(readlink -f -- "$spec") "* ]]; then
        readlink -f -- "$spec"
      fi
      return 0
      ;;
    /dev/*)
      # /dev/xvda3, /dev/nvme0n1p3, /dev/sda3: the target's names differ from ours; match the
      # partition number.
      [[ $spec =~ [^0-9]([0-9]+)$ ]] || return 0
      number=${BASH_REMATCH[1]}
      for device in "${DISK}p$number" "$DISK$number"; do
        if [[ -b $device && $device != "$DISK" ]]; then
          printf '%s\n' "$device"
          return 0
        fi
      done
      return 0
      ;;
    *) return 0 ;;
  esac
  value=${value//\"/}
  while read -r device; do
    [[ -b $device ]] || continue
    local probed
    probed=$(blkid -p -o export -- "$device" 2>/dev/null || true)
    case "$key" in
      UUID) grep -qx "UUID=$value" <<<"$probed" && { printf '%s\n' "$device"; return 0; } ;;
      LABEL) grep -qxF "LABEL=$value" <<<"$probed" && { printf '%s\n' "$device"; return 0; } ;;
      PARTUUID) grep -qix "PART_ENTRY_UUID=$value" <<<"$probed" && { printf '%s\n' "$device"; return 0; } ;;
      PARTLABEL) grep -qxF "PART_ENTRY_NAME=$value" <<<"$probed" && { printf '%s\n' "$device"; return 0; } ;;
    esac
  done < <(list_block_devices; lvm_paths | tr ' ' '\n')
  return 0
}

lvm_paths() {
  local vg
  for vg in "${ACTIVATED_VGS[@]}"; do
    lvm lvs --config "$LVM_CONFIG" --noheadings -o lv_path -- "$vg" 2>/dev/null | tr -d ' ' | tr '\n' ' '
  done
}

# The paths the plan will write: each selected user's home and key file, as written and as
# resolved through the root's symbolic links (/home -> var/home). Sets WRITE_PATHS.
paths_to_write() {
  local user t
  local -a saved=("${WARNINGS[@]}")
  read_target
  select_users
  WRITE_PATHS=() FIRST_HOME_PATHS=()
  for user in "${SELECTED_USERS[@]}"; do
    resolve_in_root "${PASSWD_HOME[$user]}"
    WRITE_PATHS+=("${PASSWD_HOME[$user]}" "$RESOLVED")
    ((${#FIRST_HOME_PATHS[@]})) || FIRST_HOME_PATHS=("${PASSWD_HOME[$user]}" "$RESOLVED")
    authorized_keys_files "$user"
    for t in "${AKF[@]}"; do
      [[ ${t,,} == none ]] && continue
      expand_tokens "$t" "$user"
      resolve_in_root "$EXPANDED"
      WRITE_PATHS+=("$EXPANDED" "$RESOLVED")
    done
  done
  # plan() reads the same and warns again.
  WARNINGS=("${saved[@]}")
}

# Find, in the target's /etc/fstab, the filesystems that hold a path we will write (a separate
# /home; /var with the homes in /var/home; nested mounts too): sets EXTRA_* outermost first, and
# HOME_DEVICE/HOME_FSTYPE to the one holding the first user's home. A filesystem that is not on
# this volume (another disk, NFS, EFS) would hide what we write under its mount point: refused.
find_mounts() {
  local fstab=$TARGET/etc/fstab spec mountpoint fstype options rest device subvol option path holds i j
  EXTRA_POINTS=(); EXTRA_DEVICES=(); EXTRA_FSTYPES=(); EXTRA_OPTIONS=()
  HOME_DEVICE=""; HOME_FSTYPE=""
  [[ -f $fstab ]] || return 0
  paths_to_write
  while read -r spec mountpoint fstype options rest; do
    [[ -z $spec || $spec == \#* ]] && continue
    [[ $mountpoint == /?* ]] || continue
    mountpoint=${mountpoint%/}
    holds=0
    for path in "${WRITE_PATHS[@]}"; do
      [[ $path == "$mountpoint" || $path == "$mountpoint"/* ]] && holds=1
    done
    ((holds)) || continue
    device=$(device_for_spec "$spec")
    fstype=""
    [[ -n $device ]] && fstype=$(fs_type "$device")
    if ((SCAN_ALL_USERS)) && [[ -z $device || ! $fstype =~ ^(ext[234]|xfs|btrfs)$ ]]; then
      # Scanning every user: one whose home is elsewhere (another disk, NFS) is not read, and said.
      warn "the target's /etc/fstab mounts $mountpoint from $spec, not readable on volume $VOLUME_ID: key files under it are not searched"
      # shellcheck disable=SC2034 # read by revoke-key.sh's report only
      INCOMPLETE=1
      continue
    fi
    [[ -n $device ]] || die "the target's /etc/fstab mounts $mountpoint from $spec, which is not on volume $VOLUME_ID: the keys would be hidden under it"
    case "$fstype" in
      ext2 | ext3 | ext4 | xfs | btrfs) ;;
      *) die "the target's $mountpoint ($spec, $device) has an unsupported filesystem: ${fstype:-none}" ;;
    esac
    subvol=""
    local -a opts=()
    IFS=, read -ra opts <<<"$options"
    for option in "${opts[@]}"; do
      case "$option" in subvol=* | subvolid=*) subvol=$option ;; esac
    done
    [[ ,$options, == *,noauto,* ]] && warn "the target's /etc/fstab mounts $mountpoint with noauto: what is written there is seen only when something mounts it"
    EXTRA_POINTS+=("$mountpoint"); EXTRA_DEVICES+=("$device"); EXTRA_FSTYPES+=("$fstype"); EXTRA_OPTIONS+=("$subvol")
    log "separate $mountpoint: $device ($fstype${subvol:+, $subvol}) from fstab $spec"
  done <"$fstab"
  # Outermost first: a mount point holding another is shorter than it.
  for ((i = 1; i < ${#EXTRA_POINTS[@]}; i++)); do
    for ((j = i; j > 0 && ${#EXTRA_POINTS[j - 1]} > ${#EXTRA_POINTS[j]}; j--)); do
      swap_extra "$((j - 1))" "$j"
    done
  done
  # For the report: the deepest one that holds the first user's home.
  for i in "${!EXTRA_POINTS[@]}"; do
    for path in "${FIRST_HOME_PATHS[@]}"; do
      if [[ $path == "${EXTRA_POINTS[i]}" || $path == "${EXTRA_POINTS[i]}"/* ]]; then
        # shellcheck disable=SC2034 # read by inject-key.sh's report only
        HOME_DEVICE=${EXTRA_DEVICES[i]} HOME_FSTYPE=${EXTRA_FSTYPES[i]}
      fi
    done
  done
  return 0
}

swap_extra() {
  local a=$1 b=$2 t
  t=${EXTRA_POINTS[a]}; EXTRA_POINTS[a]=${EXTRA_POINTS[b]}; EXTRA_POINTS[b]=$t
  t=${EXTRA_DEVICES[a]}; EXTRA_DEVICES[a]=${EXTRA_DEVICES[b]}; EXTRA_DEVICES[b]=$t
  t=${EXTRA_FSTYPES[a]}; EXTRA_FSTYPES[a]=${EXTRA_FSTYPES[b]}; EXTRA_FSTYPES[b]=$t
  t=${EXTRA_OPTIONS[a]}; EXTRA_OPTIONS[a]=${EXTRA_OPTIONS[b]}; EXTRA_OPTIONS[b]=$t
}

# --- paths inside the target
# resolve_in_root PATH: set RESOLVED to PATH resolved inside the target as the target would
# (chroot semantics): an absolute symlink restarts at the target's root, ".." stops at it.
# Components that do not exist are kept as they are.
RESOLVED=""
VISITED=() # directories looked into
resolve_in_root() {
  local -a todo=() parts=()
  local current="" component link hops=0
  IFS=/ read -ra todo <<<"$1"
  while ((${#todo[@]})); do
    component=${todo[0]}
    todo=("${todo[@]:1}")
    case "$component" in
      "" | .) continue ;;
      ..) current=${current%/*}; continue ;;
    esac
    VISITED+=("${current:-/}")
    if [[ -L $TARGET$current/$component ]]; then
      hops=$((hops + 1))
      ((hops <= 40)) || die "too many symbolic links resolving $1 in the target"
      link=$(readlink -- "$TARGET$current/$component")
      [[ $link == /* ]] && current=""
      IFS=/ read -ra parts <<<"$link"
      todo=("${parts[@]}" "${todo[@]}")
    else
      current+="/$component"
    fi
  done
  RESOLVED=${current:-/}
}

# --- the target's configuration
read_target() {
  local name password uid gid gecos home shell members
  PASSWD_UID=() PASSWD_GID=() PASSWD_HOME=() PASSWD_SHELL=() PASSWD_ORDER=() GROUP_NAME=() MEMBER_GIDS=()
  local -a list=()
  [[ -f $TARGET/etc/passwd ]] || die "the target has no /etc/passwd"
  while IFS=: read -r name password uid gid gecos home shell || [[ -n $name ]]; do
    [[ -z $name || $name == [+-]* || $name == \#* ]] && continue
    [[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]] || continue
    [[ -n ${PASSWD_UID[$name]+set} ]] && continue
    PASSWD_UID[$name]=$uid
    PASSWD_GID[$name]=$gid
    PASSWD_HOME[$name]=$home
    # shellcheck disable=SC2034 # read by inject-key.sh only
    PASSWD_SHELL[$name]=$shell
    PASSWD_ORDER+=("$name")
  done <"$TARGET/etc/passwd"
  if [[ -f $TARGET/etc/group ]]; then
    while IFS=: read -r name password gid members || [[ -n $name ]]; do
      [[ $gid =~ ^[0-9]+$ ]] || continue
      [[ -n ${GROUP_NAME[$gid]+set} ]] || GROUP_NAME[$gid]=$name
      IFS=, read -ra list <<<"$members"
      for name in "${list[@]}"; do [[ -n $name ]] && MEMBER_GIDS[$name]+=" $gid"; done
    done <"$TARGET/etc/group"
  fi
  : "$password" "$gecos"
  read_selinux
}

# AuthorizedKeysFile for USER as sshd computes it (openssh-portable servconf.c): at start-up the
# config is read with only global lines (and Match all) active; for a connection it is read again
# with only Match blocks active, evaluated for the user, and the first value set there overrides.
# In each pass the first active value wins. Include: in place, relative to /etc/ssh, glob sorted;
# a Match in an included file ends with it; an Include in a block that is not active adds nothing,
# except before the first Match of a file in the second pass (its Match blocks still count).
# Sets AKF (default .ssh/authorized_keys .ssh/authorized_keys2) and STRICT_MODES.
# Sets AKC to the text of the AuthorizedKeysCommand line that applies to the user ('' when none).
AKF=() STRICT_MODES="" AKC=""
authorized_keys_files() {
  local active=0 unknown=0 set=0 pass=match
  AKF=() STRICT_MODES="" AKC=""
  sshd_config_file /etc/ssh/sshd_config 0 "$1" 1
  active=1 pass=global
  sshd_config_file /etc/ssh/sshd_config 0 "$1" 0
  ((set)) || AKF=(.ssh/authorized_keys .ssh/authorized_keys2)
}

# sshd_config_file PATH DEPTH USER MATCH_ONLY: uses active, unknown, set and pass of authorized_keys_files.
sshd_config_file() {
  local line keyword pattern file oactive monly=$4
  local -a w=() files=()
  ((${2} <= 16)) || die "sshd_config Include nests deeper than 16 levels"
  resolve_in_root "$1"
  [[ -f $TARGET$RESOLVED ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*([A-Za-z]+)[[:space:]]*(=[[:space:]]*|[[:space:]]+)(.*)$ ]] || continue
    keyword=${BASH_REMATCH[1],,}
    case $keyword in match | include | authorizedkeysfile | strictmodes | authorizedkeyscommand) ;; *) continue ;; esac
    split_args "${BASH_REMATCH[3]}" || die "$1 has an unterminated quote in $keyword: sshd would not start"
    w=("${WORDS[@]}")
    case $keyword in
      match)
        unknown=0 monly=0 active=0
        if [[ $pass == global ]]; then
          [[ ${w[0],,} == all ]] && active=1
        elif match_line "$3" "${w[@]}"; then
          active=1
        else
          [[ $? == 2 ]] && unknown=1
        fi ;;
      include)
        ((active || monly)) || continue
        for pattern in "${w[@]}"; do
          [[ $pattern == /* ]] || pattern=/etc/ssh/$pattern
          glob_in_target "$pattern"
          files=("${GLOB_MATCHES[@]}")
          for file in "${files[@]}"; do
            oactive=$active
            sshd_config_file "$file" $(($2 + 1)) "$3" "$monly"
            active=$oactive unknown=0
          done
        done ;;
      authorizedkeysfile)
        ((set)) && continue
        if ((active)); then
          AKF=() set=1
          for pattern in "${w[@]}"; do tilde "$pattern"; AKF+=("$TILDED"); done
        elif ((unknown)); then
          warn "$1 sets AuthorizedKeysFile in a Match block on Address, Host, LocalAddress, LocalPort or RDomain, which cannot be known offline: assumed not to apply"
        fi ;;
      authorizedkeyscommand)
        # sshd asks this program for keys as well (sshd_config(5)): reported, never run here.
        if ((active)) && [[ -z $AKC ]]; then AKC="${w[*]}"; fi ;;
      strictmodes) [[ $pass == global ]] && ((active)) && [[ -z $STRICT_MODES ]] && STRICT_MODES=${w[0],,} ;;
    esac
  done <"$TARGET$RESOLVED"
  return 0
}

# split_args TEXT: WORDS, the arguments of a configuration line as sshd's argv_split (misc.c) makes
# them: blanks separate, '...' and "..." quote, \' \" \\ and (unquoted) "\ " stand for the character,
# a word that starts with # ends the line. 1 on an unterminated quote.
WORDS=()
split_args() {
  local s=$1 i=0 c q arg
  WORDS=()
  while ((i < ${#s})); do
    c=${s:i:1}
    if [[ $c == [[:blank:]] ]]; then i=$((i + 1)); continue; fi
    [[ $c == '#' ]] && break
    q="" arg=""
    while ((i < ${#s})); do
      c=${s:i:1}
      if [[ $c == "\\" ]]; then
        case ${s:i+1:1} in
          "'" | '"' | "\\") i=$((i + 1)) ;;
          ' ') [[ -n $q ]] || i=$((i + 1)) ;;
        esac
        arg+=${s:i:1}
      elif [[ -z $q && $c == [[:blank:]] ]]; then
        break
      elif [[ -z $q && ($c == '"' || $c == "'") ]]; then
        q=$c
      elif [[ -n $q && $c == "$q" ]]; then
        q=""
      else
        arg+=$c
      fi
      i=$((i + 1))
    done
    [[ -z $q ]] || return 1
    WORDS+=("$arg")
  done
}

# tilde WORD: TILDED, WORD with a leading ~ expanded as sshd does when it reads AuthorizedKeysFile
# (servconf.c: tilde_expand_filename(arg, getuid()); misc.c): ~ is the home of the user sshd runs
# as (root, the first uid 0 of the target's /etc/passwd), ~name that of name.
TILDED=""
tilde() {
  local name=${1:1} rest="" u
  TILDED=$1
  [[ $1 == '~'* ]] || return 0
  [[ $name == */* ]] && rest=${name#*/} name=${name%%/*}
  if [[ -z $name ]]; then
    for u in "${PASSWD_ORDER[@]}"; do ((PASSWD_UID[$u] == 0)) && name=$u && break; done
  fi
  [[ -n $name && -n ${PASSWD_HOME[$name]+set} ]] || die "AuthorizedKeysFile $1 names no user of the target's /etc/passwd: sshd would not start"
  TILDED=${PASSWD_HOME[$name]%/}/$rest
}

# match_line USER CRITERIA...: 0 all match, 1 one does not, 2 only criteria that cannot be known
# offline are left (User and Group are known; patterns as sshd's match_pattern_list).
match_line() {
  local user=$1 r=0 a v
  shift
  while (($#)); do
    a=$1
    shift
    case ${a,,} in all) continue ;; invalid-user) r=1; continue ;; esac
    if [[ $a == *=* ]]; then v=${a#*=} a=${a%%=*}; else v=${1-}; (($#)) && shift; fi
    case ${a,,} in
      user) pattern_list "$user" "$v" || r=1 ;;
      group) group_match "$user" "$v" || r=1 ;;
      *) ((r)) || r=2 ;;
    esac
  done
  return "$r"
}

# pattern_list STRING LIST: 0 when a pattern matches and no negated one does, 2 when a negated
# one matches, 1 otherwise (* and ?, case-sensitive).
pattern_list() {
  local p r=1
  local -a list=()
  IFS=, read -ra list <<<"$2"
  for p in "${list[@]}"; do
    if [[ $p == '!'* ]]; then
      pattern_re "${p:1}"
      [[ $1 =~ $RE ]] && return 2
    else
      pattern_re "$p"
      [[ $1 =~ $RE ]] && r=0
    fi
  done
  return "$r"
}

# pattern_re PATTERN: RE, an anchored regular expression for sshd's match_pattern (match.c): * any
# string, ? one character, every other character itself (never bash's extended globs).
RE=""
pattern_re() {
  local i c
  RE="^"
  for ((i = 0; i < ${#1}; i++)); do
    c=${1:i:1}
    case $c in
      '*') RE+='.*' ;;
      '?') RE+='.' ;;
      [[:alnum:]]) RE+=$c ;;
      "\\" | '^') RE+="\\$c" ;;
      *) RE+="[$c]" ;;
    esac
  done
  RE+='$'
}

# group_match USER LIST: as sshd's ga_init and ga_match_pattern_list (openssh-portable groupaccess.c):
# the user's group ids (getgrouplist: the primary one and each group listing the user), each named
# by the first /etc/group entry with that id (getgrgid).
group_match() {
  local gid matched=1
  for gid in "${PASSWD_GID[$1]}" ${MEMBER_GIDS[$1]-}; do
    [[ -n ${GROUP_NAME[$gid]+set} ]] || continue
    if pattern_list "${GROUP_NAME[$gid]}" "$2"; then matched=0; elif [[ $? == 2 ]]; then return 1; fi
  done
  return "$matched"
}

# Expand an Include pattern inside the target into GLOB_MATCHES as glob(3) does for sshd: a pattern
# in any component, each matched inside the target, the whole list sorted.
GLOB_MATCHES=()
glob_in_target() {
  local part dir match
  local -a parts=() current=("") next=() matches=()
  IFS=/ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    [[ -n $part ]] || continue
    next=()
    for dir in "${current[@]}"; do
      if [[ $part == *[*?[]* ]]; then
        resolve_in_root "${dir:-/}"
        shopt -s nullglob
        # shellcheck disable=SC2206 # the pattern must expand
        matches=("$TARGET${RESOLVED%/}"/$part)
        shopt -u nullglob
        for match in "${matches[@]}"; do next+=("$dir/${match##*/}"); done
      else
        next+=("$dir/$part")
      fi
    done
    current=("${next[@]}")
  done
  GLOB_MATCHES=()
  ((${#current[@]})) || return 0
  mapfile -t GLOB_MATCHES < <(printf '%s\n' "${current[@]}" | sort)
}

# expand_tokens TEMPLATE USER: set EXPANDED (%h %u %U %% as sshd; relative: under the home), and
# PER_USER to 1 when the path names the user (a token of the user's, or relative).
EXPANDED="" PER_USER=0
expand_tokens() {
  local template=$1 user=$2 out="" c
  local i=0
  PER_USER=0
  [[ $template == /* ]] || PER_USER=1
  # shellcheck disable=SC2034 # read by inject-key.sh only
  [[ ${template//%%/} == *%[hUu]* ]] && PER_USER=1
  while ((i < ${#template})); do
    c=${template:i:1}
    if [[ $c == % ]]; then
      i=$((i + 1))
      case "${template:i:1}" in
        h) out+=${PASSWD_HOME[$user]} ;;
        u) out+=$user ;;
        U) out+=${PASSWD_UID[$user]} ;;
        %) out+=% ;;
        *) die "AuthorizedKeysFile has an unknown token %${template:i:1}" ;;
      esac
    else
      out+=$c
    fi
    i=$((i + 1))
  done
  [[ $out == /* ]] || out=${PASSWD_HOME[$user]%/}/$out
  EXPANDED=$out
}

read_selinux() {
  SELINUX=0
  local config=$TARGET/etc/selinux/config line
  [[ -f $config ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*SELINUX[[:space:]]*=[[:space:]]*[\"\']?(enforcing|permissive)[\"\']?[[:space:]]*$ ]] && SELINUX=1
  done <"$config"
  ((SELINUX)) && log "the target uses SELinux: new files get $SSH_HOME_LABEL"
  return 0
}

# Options given to sshd on its command line (-o, -f) override or replace /etc/ssh/sshd_config, and
# are not read here: warn where the usual places pass any (RHEL /etc/sysconfig/sshd OPTIONS,
# Debian /etc/default/ssh SSHD_OPTS, a systemd unit or drop-in for sshd or ssh).
command_line_warning() {
  local pattern file content re='(^|[[:space:]"'\''=])-[fo]'
  for pattern in /etc/sysconfig/sshd /etc/default/ssh /etc/systemd/system/sshd.service /etc/systemd/system/ssh.service \
    '/etc/systemd/system/sshd.service.d/*.conf' '/etc/systemd/system/ssh.service.d/*.conf'; do
    glob_in_target "$pattern"
    for file in "${GLOB_MATCHES[@]}"; do
      resolve_in_root "$file"
      [[ -f $TARGET$RESOLVED ]] || continue
      content=$(grep -v '^[[:space:]]*#' -- "$TARGET$RESOLVED" || true)
      if [[ ${content,,} == *authorizedkeysfile* || $content =~ $re ]]; then
        warn "$file may give sshd options on its command line (-o, -f), which are not read here: the file written is the one /etc/ssh/sshd_config names"
      fi
    done
  done
}

# trusted USER FILE HOME WRITTEN: refuse what sshd's StrictModes would not read (openssh-portable misc.c
# safe_path: the file and each directory up to the home, or to /, owned by root or the user and
# not group or world writable, on the path with every link resolved). Sets WRITER: 0 when only root
# can have made the path (no directory looked into on the way is another user's or writable by
# others), else the user's uid: those writes run as the user and the kernel checks them.
# With a fifth argument (soft), a path sshd would not trust sets UNTRUSTED to the reason and returns 1
# instead of refusing.
UNTRUSTED=""
trusted() {
  local uid=${PASSWD_UID[$1]} p=$2 owner mode
  UNTRUSTED=""
  if [[ $STRICT_MODES != no ]]; then
    while :; do
      if [[ -e $TARGET$p ]]; then
        read -r owner mode < <(stat -c '%u %a' -- "$TARGET$p")
        if [[ ! (($owner == 0 || $owner == "$uid") && $((8#$mode & 8#22)) == 0) ]]; then
          # shellcheck disable=SC2034 # read by revoke-key.sh only
          UNTRUSTED="$p is owned by uid $owner with mode $mode, sshd (StrictModes) would not read the key file $2 of user $1 there"
          [[ -n ${5-} ]] && return 1
          die "refusing $p for user $1: owned by uid $owner with mode $mode, sshd (StrictModes) would not read the key file $2 there"
        fi
      fi
      [[ $p == "$3" || $p == / ]] && break
      p=${p%/*}
      p=${p:-/}
    done
  fi
  VISITED=()
  resolve_in_root "$4"
  WRITER=0
  for p in "${VISITED[@]}"; do
    [[ -e $TARGET$p ]] || continue
    read -r owner mode < <(stat -c '%u %a' -- "$TARGET$p")
    [[ $owner == 0 && $((8#$mode & 8#22)) == 0 ]] || WRITER=$uid
  done
}

# user_can_open USER FILE: sshd opens the key file with the user's uid and groups (openssh-portable
# auth2-pubkeyfile.c, uidswap.c temporarily_use_uid: the primary group and each group listing the
# user): open FILE so, with the ids of the target's /etc/passwd and /etc/group.
user_can_open() {
  local gids=${PASSWD_GID[$1]} g
  for g in ${MEMBER_GIDS[$1]-}; do gids+=",$g"; done
  (
    cd -- "${TARGET:-/}"
    exec setpriv --reuid="${PASSWD_UID[$1]}" --regid="${PASSWD_GID[$1]}" --groups="$gids" -- head -c 0 -- ".$2"
  ) 2>"$WORK_DIR/w.err"
}

# check_mode PATH MODE OWNER: what was made has exactly that mode and owner (a default ACL of the
# directory can widen a new file's mode past the umask; sshd's StrictModes would then refuse it).
# (The permission bits only: a set-group-id bit inherited from the directory is no concern of sshd's.)
check_mode() {
  local mode owner
  read -r mode owner < <(stat -c '%a %u' -- "$TARGET$1")
  [[ $(printf '%o' $((8#$mode & 8#777))) == "$2" && $owner == "$3" ]] ||
    die "$1 was made with mode $mode and owner $owner, not $2 and $3: refusing; nothing was changed"
}

is_immutable() {
  local flags
  flags=$(lsattr -d -- "$1" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ $flags == *i* ]]
}

# make_mutable PATH: clear the immutable flag for the write; cleanup sets it again.
make_mutable() {
  if is_immutable "$1"; then
    log "clearing the immutable flag of ${1#"$TARGET"} for the write"
    # Recorded first: a signal right after chattr must still set it again.
    REIMMUTABLE+=("$1")
    chattr -i -- "$1" || die "cannot clear the immutable flag of ${1#"$TARGET"}"
  fi
}

# as_writer UID GID COMMAND...: run COMMAND in the target's root directory, as that user unless
# UID is 0 (paths are given relative: ./home/...).
as_writer() {
  local uid=$1 gid=$2
  shift 2
  (
    cd -- "${TARGET:-/}"
    exec 3>&- 4>&-
    if ((uid)); then
      command -v setpriv >/dev/null || { echo ": setpriv (util-linux) is not on this helper" >&2; exit 127; }
      exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
    fi
    exec "$@"
  )
}

# write_step USER WHAT COMMAND...: one write of the plan; on failure undo every write so far and
# refuse, naming the path.
write_step() {
  local user=$1 what=$2 err
  shift 2
  as_writer "$WRITER" "$WGID" "$@" >/dev/null 2>"$WORK_DIR/w.err" && return 0
  err=$(tail -n 1 "$WORK_DIR/w.err")
  undo_all
  if [[ $err == *"No space left"* || $err == *"Disk quota"* ]]; then
    die "no space left on the target's filesystem (writing $what for user $user); nothing was changed"
  fi
  die "cannot write $what for user $user as uid $WRITER (${err##*: }): refusing; nothing was changed (a link of the user's may lead there)"
}

# Undo the writes of this run, last first (a later write failed).
undo_all() {
  local i uid gid op size path
  for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do
    read -r uid gid op size path <<<"${UNDO[i]}"
    [[ -e $TARGET$path ]] || continue
    case $op in
      dir) as_writer "$uid" "$gid" rmdir -- ".$path" ;;
      file) as_writer "$uid" "$gid" rm -f -- ".$path" ;;
      size) as_writer "$uid" "$gid" truncate -s "$size" -- ".$path" ;;
      # a rewritten file: SIZE is the hard link that keeps the original; put it back
      restore) as_writer "$uid" "$gid" mv -fT -- ".${BACKUPS[size]}" ".$path" ;;
    esac || log "could not undo $op $path"
  done
  UNDO=() CHANGES=()
}

