# shellcheck shell=bash
# revoke-key.sh: the revoke-key action, run after runbooks/key-files.sh in one script
# (lib/inject-key-document.ts joins them): find every line of every file sshd reads for every user
# of the target (root included) whose key is one of the revoked keys, and, in Revoke mode, remove it,
# keeping every other line byte for byte and in order, and add a replacement key where one was removed
# (and for the users named).
# Inputs (environment only, interpolationType ENV_VAR): SSM_VolumeId, SSM_Root, SSM_Fingerprints
# (comma-separated SHA256:<43 base64> fingerprints, 1 to 20), SSM_ReplacementKey (optional, one
# public key line), SSM_Users (optional, comma-separated: they get the replacement key even where no
# revoked key was), SSM_Mode (Audit: change nothing; Revoke). Output: the last stdout line is one JSON
# report (see runbooks/revoke-key.yaml); non-zero exit on error.
SCRIPT_NAME=revoke-key
SCAN_ALL_USERS=1

readonly FINGERPRINTS_PATTERN='^SHA256:[A-Za-z0-9+/]{43}(,SHA256:[A-Za-z0-9+/]{43}){0,19}$'
# The key types a line of an authorized keys file can hold (openssh-portable sshkey.c, keytypes),
# certificates included: the first word of a key, after the options if there are any.
readonly LINE_TYPE_PATTERN='^((ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521))(-cert-v01@openssh\.com)?|(sk-ssh-ed25519|sk-ecdsa-sha2-nistp256|ssh-xmss)(-cert-v01)?@openssh\.com|webauthn-sk-ecdsa-sha2-nistp256@openssh\.com)$'
# GetCommandInvocation returns only the first 24,000 characters of standard output
# (StandardOutputContent: https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html,
# and the SSM service model in botocore data/ssm/2014-11-06): the report's lists are capped so that
# it stays well under that, and a capped list is said to be ("truncated" in warnings).
readonly REPORT_FILES_MAX=40 REPORT_USERS_MAX=8 REPORT_CA_MAX=20 REPORT_WARNINGS_MAX=20 REPORT_TEXT_MAX=300

MODE="" REPLACEMENT=0
declare -A REVOKED=() # fingerprint -> 1
# One entry per key file found, in the order found: path in the target, the users sshd reads it for
# (space-separated), the uid writes run as, the counts, and the planned content (a file in WORK_DIR).
F_PATH=() F_USERS=() F_WRITER=() F_MATCHES=() F_REMOVED=() F_ADDED=() F_KEPT=() F_NEW=() F_REMOVE=() F_HAS=()
declare -A F_INDEX=()   # path -> index
declare -A USER_LOST=() USER_LEFT=() # user -> 1 when a revoked key of theirs was found / a key remains
CA_LINES=() # JSON
AKC_TEXT=""
VERIFIED=false

read_parameters() {
  VOLUME_ID=${SSM_VolumeId:-}
  PUBLIC_KEY=${SSM_ReplacementKey:-}
  REQUESTED_USERS=${SSM_Users:-}
  MODE=${SSM_Mode:-}
  KEY_PARAM=ReplacementKey
  local root=${SSM_Root:-} fingerprints=${SSM_Fingerprints:-} fp
  local -a list=()
  if ((${#MODE} > 6)) || [[ $MODE != Audit && $MODE != Revoke ]]; then die "Mode must be Audit or Revoke"; fi
  REPORT_EXTRA="\"mode\":\"$MODE\","
  [[ $MODE == Audit ]] && NO_WRITES=1
  ((${#VOLUME_ID} <= 21)) || die "VolumeId is too long"
  ((${#REQUESTED_USERS} <= 512)) || die "Users is longer than 512 characters"
  ((${#root} <= 1)) || die "Root must be empty (offline method) or / (online method)"
  ((${#PUBLIC_KEY} <= 8192)) || die "ReplacementKey is longer than 8192 characters"
  ((${#fingerprints} <= 1100)) || die "Fingerprints is too long: at most 20 fingerprints"
  [[ $VOLUME_ID =~ $VOLUME_PATTERN ]] || die "VolumeId is not a volume id (vol- and 8 to 17 hex digits)"
  [[ $REQUESTED_USERS =~ $USERS_PATTERN ]] || die "Users must be comma-separated user names"
  [[ $root == "" || $root == / ]] || die "Root must be empty (offline method) or / (online method)"
  [[ $fingerprints =~ $FINGERPRINTS_PATTERN ]] || die "Fingerprints must be 1 to 20 comma-separated SHA256:<43 base64> fingerprints"
  IFS=, read -ra list <<<"$fingerprints"
  for fp in "${list[@]}"; do REVOKED[$fp]=1; done
  if [[ -n $PUBLIC_KEY ]]; then
    [[ $PUBLIC_KEY != *"PRIVATE KEY"* ]] || die "ReplacementKey is a private key; paste the .pub line"
    [[ $PUBLIC_KEY =~ $KEY_PATTERN ]] || die "ReplacementKey is not one OpenSSH public key line (type, base64, optional comment of safe characters)"
    KEY_TYPE=${BASH_REMATCH[1]}
    KEY_BASE64=${BASH_REMATCH[3]}
    local comment=${BASH_REMATCH[4]# }
    KEY_LINE="$KEY_TYPE $KEY_BASE64"
    [[ -n ${comment// /} ]] && KEY_LINE+=" $comment"
    check_blob
    key_fingerprint "$KEY_TYPE" "$KEY_BASE64"
    [[ -z ${REVOKED[$FP]+set} ]] || die "ReplacementKey is one of the keys to revoke"
    REPLACEMENT=1
  fi
  [[ -z $REQUESTED_USERS || -n $PUBLIC_KEY ]] || die "Users is given without ReplacementKey"
  if [[ $root == / ]]; then
    [[ -z $VOLUME_ID ]] || die "give either VolumeId (offline method) or Root=/ (online method), not both"
    ONLINE=1
  else
    [[ -n $VOLUME_ID ]] || die "VolumeId is required for the offline method (or set Root=/)"
  fi
}

# key_fingerprint TYPE BASE64: FP, the key's OpenSSH SHA256 fingerprint as ssh-keygen -l prints it
# (openssh-portable sshkey.c sshkey_fingerprint: SHA-256 of the key blob, base64 without padding), or
# '' when the blob does not decode or does not begin with TYPE as an SSH string (RFC 4253 6.6; sshd
# then does not accept the line: sshkey_read compares the two types).
FP=""
key_fingerprint() {
  local head digest escaped="" j
  FP=""
  head=$({ printf '%s' "$2" | base64 -d 2>/dev/null || true; } | od -An -v -tx1 -N $((4 + ${#1})) | tr -d ' \n')
  [[ $head == "$(printf '%08x' "${#1}")$(hex "$1")" ]] || return 0
  digest=$({ printf '%s' "$2" | base64 -d 2>/dev/null || true; } | sha256sum)
  digest=${digest%% *}
  for ((j = 0; j < ${#digest}; j += 2)); do escaped+="\\x${digest:j:2}"; done
  # shellcheck disable=SC2059 # the digest as \xHH escapes, made here from hex digits only
  FP=$(printf "$escaped" | base64 -w0)
  FP="SHA256:${FP%%=*}"
}

# key_lines FILE: one line per line of FILE that holds a key as sshd reads it (blank and # lines
# skipped; the key at the start, else after the options, which end at the first blank outside double
# quotes: openssh-portable auth2-pubkeyfile.c, sshkey_advance_past_options): "NUMBER CA TYPE BASE64",
# CA 1 when the options hold cert-authority (options are case-insensitive: auth-options.c opt_flag).
# A trailing carriage return is not part of the key.
key_lines() {
  # The pattern through the environment: awk -v would read its backslashes as escapes.
  # shellcheck disable=SC2016 # awk's own $
  TYPES=$LINE_TYPE_PATTERN awk '
BEGIN { types = ENVIRON["TYPES"] }
{ line = $0; sub(/\r$/, "", line); sub(/^[ \t]+/, "", line) }
line == "" || substr(line, 1, 1) == "#" { next }
{
split(line, w, /[ \t]+/)
if (w[1] ~ types) { print NR, 0, w[1], w[2]; next }
q = 0
for (i = 1; i <= length(line); i++) {
c = substr(line, i, 1)
if (c == "\\" && substr(line, i + 1, 1) == "\"") i++
else if (c == "\"") q = !q
else if (!q && (c == " " || c == "\t")) break
}
options = tolower(substr(line, 1, i - 1))
rest = substr(line, i)
sub(/^[ \t]+/, "", rest)
split(rest, w, /[ \t]+/)
if (w[1] ~ types) print NR, (("," options ",") ~ /,cert-authority,/ ? 1 : 0), w[1], w[2]
}' "$1"
}

# --- scan: every file sshd reads for every user, read as the writer
# add_file USER FILE HOME WRITTEN: count FILE once, for each user sshd reads it for.
add_file() {
  local user=$1 file=$2 i
  if [[ -n ${F_INDEX[$file]+set} ]]; then
    i=${F_INDEX[$file]}
    [[ " ${F_USERS[i]} " == *" $user "* ]] || F_USERS[i]+=" $user"
    ((F_WRITER[i] == WRITER)) || F_WRITER[i]=-1
    return 0
  fi
  F_INDEX[$file]=${#F_PATH[@]}
  F_PATH+=("$file") F_USERS+=("$user") F_WRITER+=("$WRITER") F_MATCHES+=(0) F_REMOVED+=(0) F_ADDED+=(0) F_KEPT+=(0) F_NEW+=("") F_REMOVE+=("") F_HAS+=(0)
}

# select_users (called by key-files.sh's paths_to_write): every user with an absolute home, root included.
select_users() {
  local name
  SELECTED_USERS=()
  for name in "${PASSWD_ORDER[@]}"; do
    [[ ${PASSWD_HOME[$name]} == /* ]] && SELECTED_USERS+=("$name")
  done
  return 0
}

scan_users() {
  local user home t file owner mode
  F_PATH=() F_USERS=() F_WRITER=() F_MATCHES=() F_REMOVED=() F_ADDED=() F_KEPT=() F_NEW=() F_REMOVE=() F_HAS=() F_INDEX=()
  AKC_TEXT=""
  read_target
  select_users
  command_line_warning
  for user in "${SELECTED_USERS[@]}"; do
    resolve_in_root "${PASSWD_HOME[$user]}"
    home=$RESOLVED
    authorized_keys_files "$user"
    if [[ -n $AKC && ${AKC,,} != none ]]; then
      [[ -z $AKC_TEXT ]] && AKC_TEXT="AuthorizedKeysCommand $AKC"
      warn "AuthorizedKeysCommand $AKC gives sshd keys for user $user: not searched"
    fi
    for t in "${AKF[@]}"; do
      [[ ${t,,} == none ]] && continue
      expand_tokens "$t" "$user"
      resolve_in_root "$EXPANDED"
      file=$RESOLVED
      [[ -e $TARGET$file || -L $TARGET$file ]] || continue
      if [[ ! -f $TARGET$file ]]; then
        warn "the key file $file of user $user is not a regular file: not searched"
        continue
      fi
      if ! trusted "$user" "$file" "$home" "$EXPANDED" soft; then
        warn "$UNTRUSTED: it is not searched for that user"
        continue
      fi
      if ! user_can_open "$user" "$file"; then
        warn "user $user cannot open $file as sshd does: sshd reads no key there for that user"
        continue
      fi
      # The file is rewritten where it is (a link of the user's that leads to it stays as it is), so the
      # writer depends on the directories that hold it: root when only root can change them, else the user.
      WRITER=0
      t=${file%/*}
      while [[ -n $t ]]; do
        read -r owner mode < <(stat -c '%u %a' -- "$TARGET$t")
        [[ $owner == 0 && $((8#$mode & 8#22)) == 0 ]] || WRITER=${PASSWD_UID[$user]}
        t=${t%/*}
      done
      add_file "$user" "$file"
    done
  done
}

# read_file I: read key file I as its writer into WORK_DIR/f.I; F_MATCHES, F_KEPT (key lines left),
# F_REMOVE (the numbers of the lines to remove) and F_HAS (1 when it holds the replacement without options).
read_file() {
  local i=$1 file=${F_PATH[$1]} copy="$WORK_DIR/f.$1" number ca type b64 size user
  WRITER=${F_WRITER[i]} WGID=0
  ((WRITER >= 0)) || die "the key file $file would be written as different users: refusing"
  ((WRITER)) && WGID=${PASSWD_GID[${F_USERS[i]%% *}]}
  size=$(stat -c %s -- "$TARGET$file")
  ((size <= KEY_FILE_MAX)) || die "the key file $file has $size bytes, more than 1 MiB: refusing"
  as_writer "$WRITER" "$WGID" cat -- ".$file" >"$copy" 2>"$WORK_DIR/w.err" ||
    die "cannot read the key file $file as uid $WRITER ($(tail -n 1 "$WORK_DIR/w.err")): refusing"
  while read -r number ca type b64; do
    key_fingerprint "$type" "$b64"
    if [[ -n $FP && -n ${REVOKED[$FP]+set} ]]; then
      if ((ca)); then
        warn "line $number of $file is a cert-authority line with a revoked key: reported, not edited"
      else
        F_MATCHES[i]=$((F_MATCHES[i] + 1)) F_REMOVE[i]+=" $number"
        continue
      fi
    fi
    ((ca)) && CA_LINES+=("$(printf '{"path":%s,"line":%s}' "$(json_string "$file")" "$number")")
    ((ca)) && continue
    F_KEPT[i]=$((F_KEPT[i] + 1))
    ((REPLACEMENT)) && [[ $type == "$KEY_TYPE" && $b64 == "$KEY_BASE64" ]] && F_HAS[i]=1
  done < <(key_lines "$copy")
  for user in ${F_USERS[i]}; do
    ((F_MATCHES[i])) && USER_LOST[$user]=1
    ((F_KEPT[i])) && USER_LEFT[$user]=1
  done
  F_REMOVED[i]=${F_MATCHES[i]}
}

# new_content I ADD: WORK_DIR/f.I.new, file I without the lines to remove (every other byte kept, each
# line with its own end, the last one keeping its lack of one), and the replacement key at the end when ADD.
new_content() {
  local i=$1 copy="$WORK_DIR/f.$1" ends=0 user
  [[ $(tail -c 1 -- "$copy" | wc -l) -eq 1 ]] && ends=1
  # shellcheck disable=SC2016 # awk's own $
  awk -v remove="${F_REMOVE[i]} " -v ends="$ends" '
NR > 1 && keep { printf "%s\n", previous }
{ previous = $0; keep = index(remove, " " NR " ") == 0 }
END { if (NR && keep) printf "%s%s", previous, (ends ? "\n" : "") }' "$copy" >"$copy.new"
  if (($2)); then
    [[ -s $copy.new && $(tail -c 1 -- "$copy.new" | wc -l) -eq 0 ]] && printf '\n' >>"$copy.new"
    printf '%s\n' "$KEY_LINE" >>"$copy.new"
    F_ADDED[i]=1
    for user in ${F_USERS[i]}; do USER_LEFT[$user]=1; done
  fi
  F_NEW[i]="$copy.new"
}

# The replacement goes where a revoked key was removed, and into the first key file sshd reads for
# each user Users names (a user with none is refused: the inject-key document creates one).
plan_revoke() {
  local i add user
  local -a named=()
  CA_LINES=() USER_LOST=() USER_LEFT=()
  scan_users
  for i in "${!F_PATH[@]}"; do read_file "$i"; done
  declare -A first=()
  IFS=, read -ra named <<<"$REQUESTED_USERS"
  for user in "${named[@]}"; do
    [[ -n ${PASSWD_UID[$user]+set} ]] || die "user $user is not in the target's /etc/passwd"
    for i in "${!F_PATH[@]}"; do
      [[ " ${F_USERS[i]} " == *" $user "* ]] && first[$i]=1 && continue 2
    done
    die "user $user has no key file sshd reads, to add the replacement key to (inject-key creates one)"
  done
  for i in "${!F_PATH[@]}"; do
    add=0
    ((REPLACEMENT && !F_HAS[i])) && ((F_REMOVED[i] || ${first[$i]:-0})) && add=1
    ((F_REMOVED[i] || add)) && new_content "$i" "$add"
  done
  for i in "${!F_PATH[@]}"; do
    [[ -n ${F_NEW[i]} ]] || continue
    # Written as the user who controls the path, a file must be theirs: they could not give it back another owner.
    ((F_WRITER[i] == 0)) || [[ $(stat -c %u -- "$TARGET${F_PATH[i]}") == "${F_WRITER[i]}" ]] ||
      die "the key file ${F_PATH[i]} is not owned by uid ${F_WRITER[i]}, whose directory holds it: refusing"
    ((!SELINUX)) || command -v getfattr >/dev/null || die "getfattr (attr) is missing: the SELinux label of ${F_PATH[i]} cannot be kept"
  done
}

# rewrite I: replace file I by its planned content in one rename, with the original's owner, group,
# mode and SELinux label; its immutable flag (and its directory's) cleared for the write and set again.
# The original stays as a hard link (BACKUPS) until every write is done, and is put back if one fails.
rewrite() {
  local i=$1 file=${F_PATH[$1]} dir tmp owner group mode context="" user=${F_USERS[$1]%% *}
  dir=${file%/*}
  dir=${dir:-/}
  WRITER=${F_WRITER[i]} WGID=0
  ((WRITER)) && WGID=${PASSWD_GID[$user]}
  read -r owner group mode < <(stat -c '%u %g %a' -- "$TARGET$file")
  if ((SELINUX)); then
    context=$(getfattr -h --only-values --absolute-names -n security.selinux -- "$TARGET$file" 2>/dev/null | tr -d '\000' || true)
  fi
  make_mutable "$TARGET$dir"
  make_mutable "$TARGET$file"
  tmp=$(as_writer "$WRITER" "$WGID" mktemp -- ".${dir%/}/.revoke-key.XXXXXX" 2>"$WORK_DIR/w.err") ||
    { undo_all; die "cannot write in $dir for user $user as uid $WRITER ($(tail -n 1 "$WORK_DIR/w.err")): refusing; nothing was changed"; }
  tmp=${tmp#.}
  UNDO+=("$WRITER $WGID file 0 $tmp")
  write_step "$user" "$file" tee -- ".$tmp" <"${F_NEW[i]}"
  write_step "$user" "$file" chmod "$mode" -- ".$tmp"
  ((WRITER)) || chown -- "$owner:$group" "$TARGET$tmp"
  [[ -z $context ]] || setfattr -h -n security.selinux -v "$context" -- "$TARGET$tmp"
  check_mode "$tmp" "$(printf '%o' $((8#$mode & 8#777)))" "$owner"
  BACKUPS+=("$tmp.orig") BACKUP_WRITERS+=("$WRITER $WGID")
  UNDO+=("$WRITER $WGID restore $((${#BACKUPS[@]} - 1)) $file")
  write_step "$user" "$file" ln -- ".$file" ".$tmp.orig"
  write_step "$user" "$file" mv -fT -- ".$tmp" ".$file"
  write_step "$user" "$file" sync -- ".$file"
  log "$file: removed ${F_REMOVED[i]} line(s)$( ((F_ADDED[i])) && printf ', added the replacement key')"
}

# verify: read every rewritten file back as its writer: exactly the planned bytes, and no line left
# that holds a revoked key (but cert-authority lines, never edited).
verify() {
  local i number ca type b64
  for i in "${!F_PATH[@]}"; do
    [[ -n ${F_NEW[i]} ]] || continue
    WRITER=${F_WRITER[i]} WGID=0
    ((WRITER)) && WGID=${PASSWD_GID[${F_USERS[i]%% *}]}
    as_writer "$WRITER" "$WGID" cat -- ".${F_PATH[i]}" >"$WORK_DIR/check" 2>"$WORK_DIR/w.err" &&
      cmp -s -- "$WORK_DIR/check" "${F_NEW[i]}" || return 1
    while read -r number ca type b64; do
      ((ca)) && continue
      key_fingerprint "$type" "$b64"
      [[ -z $FP || -z ${REVOKED[$FP]+set} ]] || return 1
    done < <(key_lines "$WORK_DIR/check")
  done
}

apply_revoke() {
  local i=0
  UNDO=() BACKUPS=() BACKUP_WRITERS=()
  for i in "${!F_PATH[@]}"; do
    [[ -n ${F_NEW[i]} ]] && rewrite "$i"
  done
  sync
  if ! verify; then
    undo_all
    die "reading the files back did not give what was written: every change was undone"
  fi
  VERIFIED=true
  drop_backups
  restore_immutable
  UNDO=()
}

# Remove the hard links that kept the originals, each as the user who made it.
drop_backups() {
  local i uid gid
  for i in "${!BACKUPS[@]}"; do
    read -r uid gid <<<"${BACKUP_WRITERS[i]}"
    as_writer "$uid" "$gid" rm -f -- ".${BACKUPS[i]}" || log "could not remove ${BACKUPS[i]}"
  done
  BACKUPS=() BACKUP_WRITERS=()
}

# --- report
# capped NAME MAX ITEM...: CAPPED, the JSON list of at most MAX items, with a warning when some were left out.
CAPPED=""
capped() {
  local name=$1 max=$2
  shift 2
  (($# <= max)) || { warn "the report lists the first $max of $# $name (truncated)"; set -- "${@:1:max}"; }
  CAPPED=$(json_join "$@")
}

print_ok_report() {
  local i user total=0 removed=0 added=0 files_json ca_json without_json
  local -a files=() users=() without=() replayed=() warnings=()
  # Audit: nothing was removed or added (usersWithoutKey still says whom a Revoke would leave without a key).
  ((!NO_WRITES)) || for i in "${!F_PATH[@]}"; do F_REMOVED[i]=0 F_ADDED[i]=0; done
  for i in "${!F_PATH[@]}"; do
    total=$((total + F_MATCHES[i])) removed=$((removed + F_REMOVED[i])) added=$((added + F_ADDED[i])) users=()
    for user in ${F_USERS[i]}; do users+=("$(json_string "$user")"); done
    capped "users of ${F_PATH[i]}" "$REPORT_USERS_MAX" "${users[@]}"
    files+=("$(printf '{"path":%s,"users":%s,"matches":%s,"removed":%s,"added":%s,"kept":%s}' "$(json_string "${F_PATH[i]}")" \
      "$CAPPED" "${F_MATCHES[i]}" "${F_REMOVED[i]}" "${F_ADDED[i]}" "${F_KEPT[i]}")")
  done
  for user in "${!USER_LOST[@]}"; do
    [[ -n ${USER_LEFT[$user]+set} ]] || without+=("$(json_string "$user")")
  done
  ((${#without[@]} == 0)) || mapfile -t without < <(printf '%s\n' "${without[@]}" | sort)
  for i in "${REPLAYED[@]}"; do replayed+=("$(json_string "$i")"); done
  capped "key files" "$REPORT_FILES_MAX" "${files[@]}"
  files_json=$CAPPED
  capped "cert-authority lines" "$REPORT_CA_MAX" "${CA_LINES[@]}"
  ca_json=$CAPPED
  capped "users without a key" 50 "${without[@]}"
  without_json=$CAPPED
  # Last, so that the warnings above count: each at most REPORT_TEXT_MAX characters, at most REPORT_WARNINGS_MAX.
  for i in "${WARNINGS[@]}"; do
    ((${#i} <= REPORT_TEXT_MAX)) || i="${i:0:REPORT_TEXT_MAX-14}... (truncated)\""
    ((${#warnings[@]} < REPORT_WARNINGS_MAX - 1)) || { warnings+=('"more warnings were left out (truncated)"'); break; }
    warnings+=("$i")
  done
  REPORT_DONE=1
  printf '{"version":1,"status":"ok","mode":"%s","root":{"device":%s,"fstype":%s},"files":%s,"found":%s,"removed":%s,"added":%s,"usersWithoutKey":%s,"caLines":%s,"authorizedKeysCommand":%s,"verified":%s,"journalReplayed":%s,"warnings":%s}\n' \
    "$MODE" "$(json_string "$ROOT_DEVICE")" "$(json_string "$ROOT_FSTYPE")" "$files_json" "$total" "$removed" "$added" "$without_json" \
    "$ca_json" "$(json_string "$AKC_TEXT")" "$VERIFIED" "$(json_join "${replayed[@]}")" "$(json_join "${warnings[@]}")" >&3
}

# --- methods
scan_and_apply() {
  plan_revoke
  ((NO_WRITES)) || apply_revoke
}

offline() {
  wait_for_device
  find_root
  mount_target inspect
  find_mounts
  if ((${#EXTRA_POINTS[@]})); then
    unmount_all
    mount_target inspect
  fi
  local -a warnings_before=("${WARNINGS[@]}")
  plan_revoke
  # Audit, or nothing to write: the volume is never mounted read-write.
  ((NO_WRITES)) && return 0
  local i=0
  for i in "${!F_NEW[@]}"; do [[ -z ${F_NEW[i]} ]] || break; done
  # (nothing to write: nothing to read back, the files are as verified as they can be)
  [[ -n ${F_NEW[i]:-} ]] || { VERIFIED=true; return 0; }
  unmount_all
  mount_target rw
  # Plan again on what is now mounted read-write.
  WARNINGS=("${warnings_before[@]}")
  scan_and_apply
}

online() {
  ROOT=/
  TARGET=""
  ROOT_DEVICE=$(findmnt -n -o SOURCE / 2>/dev/null || echo unknown)
  ROOT_FSTYPE=$(findmnt -n -o FSTYPE / 2>/dev/null || echo unknown)
  scan_and_apply
}

main() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  read_parameters
  if ((!ONLINE)) && [[ -z ${INJECT_KEY_MNT_NS:-} || $(readlink /proc/self/ns/mnt) == "$INJECT_KEY_MNT_NS" ]]; then
    die "cannot run in a private mount namespace (unshare): refusing to mount the target where a stopped run would leave it mounted"
  fi
  WORK_DIR=$(mktemp -d -t revoke-key.XXXXXX)
  if ((ONLINE)); then
    online
  else
    offline
  fi
  cleanup || die "could not unmount everything after the revoke"
  print_ok_report
}

main "$@"
