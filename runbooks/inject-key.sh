# shellcheck shell=bash
# inject-key.sh: the inject-key action, run after runbooks/key-files.sh in one script (lib/key-document.ts
# joins them): add one OpenSSH public key to the authorized keys of users of a Linux root filesystem.
# Inputs (environment only, interpolationType ENV_VAR): SSM_VolumeId, SSM_PublicKey (one public
# key line), SSM_Users (comma-separated, or empty: the cloud-init default user, else every user
# with uid >= 1000 and a login shell), SSM_Root. Output: the last stdout line is one JSON report
# {"version":1,"status":"ok"|"error",...}; non-zero exit on error.
SCRIPT_NAME=inject-key
PLAN_USER=() PLAN_FILE=() PLAN_HOME=() PLAN_WRITER=() PLAN_OWN=() # one per selected user; WRITER: uid the writes run as; OWN: 1 when the file is the user's

print_ok_report() {
  local home=null selinux=false i
  local -a mounts=() replayed=()
  [[ -n $HOME_DEVICE ]] && home=$(printf '{"device":%s,"fstype":%s}' "$(json_string "$HOME_DEVICE")" "$(json_string "$HOME_FSTYPE")")
  ((SELINUX)) && selinux=true
  for i in "${!EXTRA_POINTS[@]}"; do
    mounts+=("$(printf '{"mountpoint":%s,"device":%s,"fstype":%s}' "$(json_string "${EXTRA_POINTS[i]}")" \
      "$(json_string "${EXTRA_DEVICES[i]}")" "$(json_string "${EXTRA_FSTYPES[i]}")")")
  done
  for i in "${REPLAYED[@]}"; do replayed+=("$(json_string "$i")"); done
  REPORT_DONE=1
  printf '{"version":1,"status":"ok","root":{"device":%s,"fstype":%s},"home":%s,"mounts":%s,"selinux":%s,"journalReplayed":%s,"changes":%s,"warnings":%s}\n' \
    "$(json_string "$ROOT_DEVICE")" "$(json_string "$ROOT_FSTYPE")" "$home" "$(json_join "${mounts[@]}")" "$selinux" \
    "$(json_join "${replayed[@]}")" "$(json_join "${CHANGES[@]}")" "$(json_join "${WARNINGS[@]}")" >&3
}

# --- parameters
read_parameters() {
  VOLUME_ID=${SSM_VolumeId:-}
  PUBLIC_KEY=${SSM_PublicKey:-}
  REQUESTED_USERS=${SSM_Users:-}
  local root=${SSM_Root:-}
  # Lengths first: a regular expression over a huge value is slow.
  ((${#VOLUME_ID} <= 21)) || die "VolumeId is too long"
  ((${#REQUESTED_USERS} <= 1024)) || die "Users is longer than 1024 characters"
  ((${#root} <= 1)) || die "Root must be empty (offline method) or / (online method)"
  ((${#PUBLIC_KEY} <= 8192)) || die "PublicKey is longer than 8192 characters: give one OpenSSH public key line"
  [[ $VOLUME_ID =~ $VOLUME_PATTERN ]] || die "VolumeId is not a volume id (vol- and 8 to 17 hex digits)"
  [[ $REQUESTED_USERS =~ $USERS_PATTERN ]] || die "Users must be comma-separated user names"
  [[ $root == "" || $root == / ]] || die "Root must be empty (offline method) or / (online method)"
  [[ -n $PUBLIC_KEY ]] || die "PublicKey is empty: give one OpenSSH public key line"
  [[ $PUBLIC_KEY != *"PRIVATE KEY"* ]] || die "PublicKey is a private key; paste the .pub line"
  [[ $PUBLIC_KEY =~ $KEY_PATTERN ]] || die "PublicKey is not one OpenSSH public key line (type, base64, optional comment of safe characters)"
  KEY_TYPE=${BASH_REMATCH[1]}
  KEY_BASE64=${BASH_REMATCH[3]}
  local comment=${BASH_REMATCH[4]# }
  KEY_LINE="$KEY_TYPE $KEY_BASE64"
  [[ -n ${comment// /} ]] && KEY_LINE+=" $comment"
  check_blob
  if [[ $root == / ]]; then
    [[ -z $VOLUME_ID ]] || die "give either VolumeId (offline method) or Root=/ (online method), not both"
    ONLINE=1
  else
    [[ -n $VOLUME_ID ]] || die "VolumeId is required for the offline method (or set Root=/)"
  fi
}

# The cloud-init default user: system_info.default_user.name in cloud.cfg, overridden by
# cloud.cfg.d/*.cfg in order.
cloud_init_default_user() {
  local file name="" found
  for file in "$TARGET/etc/cloud/cloud.cfg" "$TARGET"/etc/cloud/cloud.cfg.d/*.cfg; do
    [[ -f $file ]] || continue
    found=$(default_user_in "$file")
    [[ -n $found ]] && name=$found
  done
  printf '%s' "$name"
}

default_user_in() {
  local line indent=-1 this_indent name=""
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^([[:space:]]*) ]]
    this_indent=${#BASH_REMATCH[1]}
    if [[ $line =~ ^[[:space:]]*default_user:[[:space:]]*$ ]]; then
      indent=$this_indent
      continue
    fi
    if ((indent >= 0)); then
      if ((this_indent <= indent)); then
        indent=-1
      elif [[ $line =~ ^[[:space:]]*name:[[:space:]]*[\"\']?([a-z_][a-z0-9_.-]*)[\"\']?[[:space:]]*$ ]]; then
        name=${BASH_REMATCH[1]}
      fi
    fi
  done <"$1"
  printf '%s' "$name"
}

# Why USER cannot be given a key (nothing: it can). An empty shell is /bin/sh, as for sshd.
unfit() {
  local home=${PASSWD_HOME[$1]}
  if [[ $home != /* ]]; then
    printf 'has no absolute home directory in the target'\''s /etc/passwd'
  elif [[ $home =~ ^/+$ || $(resolve_in_root "$home"; printf '%s' "$RESOLVED") == / ]]; then
    printf 'has the home directory %s, the top of the target' "$home"
  elif [[ ${PASSWD_SHELL[$1]} =~ /(nologin|false|sync|shutdown|halt)$ ]]; then
    printf 'has the shell %s, which allows no login' "${PASSWD_SHELL[$1]}"
  fi
}

# select_users (called by key-files.sh's paths_to_write): SELECTED_USERS, the users Users names, else
# the cloud-init default user, else every user with uid >= 1000, a login shell and a home.
select_users() {
  local -a users=()
  local name why
  if [[ -n $REQUESTED_USERS ]]; then
    IFS=, read -ra users <<<"$REQUESTED_USERS"
    for name in "${users[@]}"; do
      [[ -n ${PASSWD_UID[$name]+set} ]] || die "user $name is not in the target's /etc/passwd"
      why=$(unfit "$name")
      [[ -z $why ]] || die "user $name $why: refusing to give it a key"
    done
  else
    name=$(cloud_init_default_user)
    if [[ -n $name && -n ${PASSWD_UID[$name]+set} ]]; then
      why=$(unfit "$name")
      if [[ -z $why ]]; then
        log "cloud-init default user: $name"
        users=("$name")
      else
        warn "the cloud-init default user $name $why: skipped"
      fi
    elif [[ -n $name ]]; then
      warn "the cloud-init default user $name is not in the target's /etc/passwd"
    fi
    if ((${#users[@]} == 0)); then
      for name in "${PASSWD_ORDER[@]}"; do
        if ((PASSWD_UID[$name] >= 1000 && PASSWD_UID[$name] != 65534)) && [[ -z $(unfit "$name") ]]; then
          users+=("$name")
        fi
      done
    fi
    ((${#users[@]})) || die "no user to give the key: no cloud-init default user and no user with uid >= 1000, a login shell and a home in the target's /etc/passwd; name one in Users"
  fi
  SELECTED_USERS=("${users[@]}")
}

# --- plan: decide everything before writing
plan() {
  PLAN_USER=() PLAN_FILE=() PLAN_HOME=() PLAN_WRITER=() PLAN_OWN=()
  read_target
  local user home file t chosen missing written per
  select_users
  command_line_warning
  for user in "${SELECTED_USERS[@]}"; do
    resolve_in_root "${PASSWD_HOME[$user]}"
    home=$RESOLVED
    [[ -d $TARGET$home ]] || die "the home directory ${PASSWD_HOME[$user]} of user $user does not exist in the target"
    authorized_keys_files "$user"
    log "$user: AuthorizedKeysFile ${AKF[*]}"
    # sshd reads every file of the list: an existing one, else the first whose directory exists
    # or can be made under the home.
    chosen="" missing=""
    for t in "${AKF[@]}"; do
      [[ ${t,,} == none ]] && continue
      expand_tokens "$t" "$user"
      resolve_in_root "$EXPANDED"
      file=$RESOLVED
      if [[ -e $TARGET$file || -L $TARGET$file ]]; then
        [[ -f $TARGET$file ]] || die "the key file $file of user $user exists but is not a regular file"
        chosen=$file written=$EXPANDED per=$PER_USER
        break
      fi
      [[ -n $chosen ]] && continue
      resolve_in_root "${file%/*}"
      if [[ -d $TARGET$RESOLVED ]]; then
        chosen=$file written=$EXPANDED per=$PER_USER
      elif [[ $file == "${home%/}"/* ]]; then
        t=$RESOLVED
        while [[ ! -e $TARGET$t && $t != "$home" ]]; do t=${t%/*}; done
        if [[ -d $TARGET$t ]]; then chosen=$file written=$EXPANDED per=$PER_USER; else missing="$t, on the way to $file, is not a directory"; fi
      else
        missing="the directory of $file does not exist in the target"
      fi
    done
    [[ -n $chosen ]] || die "no AuthorizedKeysFile of user $user can be written: ${missing:-AuthorizedKeysFile none: sshd reads no key file}"
    trusted "$user" "$chosen" "$home" "$written"
    # A file that is neither in the home nor named for the user serves every user who has that
    # AuthorizedKeysFile: it stays root's (a user who owned it could add keys for the others).
    [[ $chosen == "${home%/}"/* ]] && per=1
    ((per)) || warn "the key file $chosen is not per user (AuthorizedKeysFile names no user): the key is accepted there for every user who has it; a new one is made root's, mode 0644"
    PLAN_USER+=("$user") PLAN_FILE+=("$chosen") PLAN_HOME+=("$home") PLAN_WRITER+=("$WRITER") PLAN_OWN+=("$per")
  done
}

# --- apply
# key_state USER FILE: KEY_STATE "present" when an uncommented line of FILE is the key without
# options, "restricted" when only lines with options before the key hold it, else "absent". sshd
# skips blank and # lines and reads a line as [options] type base64 [comment], the options ending
# at the first blank outside double quotes (openssh-portable auth2-pubkeyfile.c,
# sshkey_advance_past_options). Read with awk as the writer, at most KEY_FILE_MAX bytes.
KEY_STATE=""
key_state() {
  local size
  size=$(stat -c %s -- "$TARGET$2")
  ((size <= KEY_FILE_MAX)) || die "the key file $2 of user $1 has $size bytes, more than 1 MiB: refusing"
  # shellcheck disable=SC2016 # awk's own $
  KEY_STATE=$(as_writer "$WRITER" "$WGID" awk -v t="$KEY_TYPE" -v b="$KEY_BASE64" '
{ sub(/\r$/, ""); sub(/^[ \t]+/, "") }
$0 == "" || substr($0, 1, 1) == "#" { next }
$1 == t && $2 == b { found = 1; exit }
{
q = 0
for (i = 1; i <= length($0); i++) {
c = substr($0, i, 1)
if (c == "\\" && substr($0, i + 1, 1) == "\"") i++
else if (c == "\"") q = !q
else if (!q && (c == " " || c == "\t")) break
}
rest = substr($0, i)
sub(/^[ \t]+/, "", rest)
split(rest, w, /[ \t]+/)
if (w[1] == t && w[2] == b) restricted = 1
}
END { print found ? "present" : restricted ? "restricted" : "absent" }' ".$2" 2>"$WORK_DIR/w.err") ||
    die "cannot read the key file $2 of user $1 as uid $WRITER ($(tail -n 1 "$WORK_DIR/w.err")): refusing"
}

label() {
  ((SELINUX)) || return 0
  if command -v setfattr >/dev/null 2>&1; then
    setfattr -h -n security.selinux -v "$SSH_HOME_LABEL" -- "$1"
  elif command -v chcon >/dev/null 2>&1; then
    chcon -h -- "$SSH_HOME_LABEL" "$1"
  else
    die "the target uses SELinux but neither setfattr nor chcon is on this helper"
  fi
}

inject_for() {
  local user=$1 file=$2 home=$3 own=$5 action dir part size mode=600 owner
  local gid=${PASSWD_GID[$user]} uid=${PASSWD_UID[$user]} rel
  WRITER=$4 WGID=$gid
  ((own)) || mode=644
  if [[ -f $TARGET$file ]]; then
    key_state "$user" "$file"
    if [[ $KEY_STATE == present ]]; then
      action=already-present
    else
      [[ $KEY_STATE == absent ]] || warn "the key was already in $file of user $user, but only behind options (from=, command=, ...) that can stop the login: added once more without options (sshd uses the first line that accepts the key)"
      make_mutable "$TARGET$file"
      size=$(stat -c %s -- "$TARGET$file")
      UNDO+=("$WRITER $gid size $size $file")
      if ((size)) && [[ $(tail -c 1 -- "$TARGET$file" | wc -l) -eq 0 ]]; then
        write_step "$user" "$file" tee -a -- ".$file" <<<$'\n'"$KEY_LINE"
      else
        write_step "$user" "$file" tee -a -- ".$file" <<<"$KEY_LINE"
      fi
      action=appended
    fi
  else
    # The missing directories from the home down, 0700, owned by the user.
    dir=${home%/}
    rel=${file#"$dir"/}
    [[ $file == "$dir"/* ]] || { dir=${file%/*}; rel=${file##*/}; }
    while [[ $rel == */* ]]; do
      part=${rel%%/*}
      rel=${rel#*/}
      [[ -z $part ]] && continue
      if [[ ! -e $TARGET$dir/$part ]]; then
        make_mutable "$TARGET$dir"
        # Recorded first: undo skips what does not exist.
        UNDO+=("$WRITER $gid dir 0 $dir/$part")
        write_step "$user" "$dir/$part" mkdir -m 0700 -- ".$dir/$part"
        write_step "$user" "$dir/$part" chmod 0700 -- ".$dir/$part"
        ((WRITER)) || chown -- "$uid:$gid" "$TARGET$dir/$part"
        check_mode "$dir/$part" 700 "$uid"
        label "$TARGET$dir/$part"
        log "created $dir/$part (0700, $uid:$gid)"
      fi
      dir+="/$part"
    done
    make_mutable "$TARGET${file%/*}"
    UNDO+=("$WRITER $gid file 0 $file")
    write_step "$user" "$file" tee -- ".$file" <<<"$KEY_LINE"
    write_step "$user" "$file" chmod "0$mode" -- ".$file"
    owner=$WRITER
    if ((!WRITER && own)); then chown -- "$uid:$gid" "$TARGET$file"; owner=$uid; fi
    check_mode "$file" "$mode" "$owner"
    label "$TARGET$file"
    action=created
  fi
  user_can_open "$user" "$file" ||
    die "user $user cannot open $file as sshd does, with the user's uid and groups ($(tail -n 1 "$WORK_DIR/w.err" | sed 's/^.*: //')): refusing; nothing was changed"
  [[ $action == already-present ]] || write_step "$user" "$file" sync -- ".$file"
  log "$user: $file $action"
  CHANGES+=("$(printf '{"user":%s,"uid":%s,"file":%s,"action":%s}' "$(json_string "$user")" "$uid" "$(json_string "$file")" "$(json_string "$action")")")
}

apply() {
  local i
  UNDO=()
  for i in "${!PLAN_USER[@]}"; do
    inject_for "${PLAN_USER[i]}" "${PLAN_FILE[i]}" "${PLAN_HOME[i]}" "${PLAN_WRITER[i]}" "${PLAN_OWN[i]}"
  done
  restore_immutable
  sync
  UNDO=()
}

# --- methods
offline() {
  wait_for_device
  find_root
  # Decide with everything read-only; only then mount read-write and write.
  mount_target inspect
  find_mounts
  if ((${#EXTRA_POINTS[@]})); then
    unmount_all
    mount_target inspect
  fi
  local -a warnings_before=("${WARNINGS[@]}")
  plan
  unmount_all
  mount_target rw
  # Plan again on what is now mounted read-write.
  WARNINGS=("${warnings_before[@]}")
  plan
  apply
}

online() {
  ROOT=/
  TARGET=""
  ROOT_DEVICE=$(findmnt -n -o SOURCE / 2>/dev/null || echo unknown)
  ROOT_FSTYPE=$(findmnt -n -o FSTYPE / 2>/dev/null || echo unknown)
  plan
  # For the report: the filesystem that holds the first user's home, when it is not the root.
  local target="" source="" fstype=""
  read -r target source fstype < <(findmnt -n -o TARGET,SOURCE,FSTYPE --target "${PLAN_HOME[0]}" 2>/dev/null || true)
  if [[ -n $target && $target != / ]]; then
    HOME_DEVICE=$source
    HOME_FSTYPE=$fstype
  fi
  apply
}

main() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  read_parameters
  if ((!ONLINE)) && [[ -z ${INJECT_KEY_MNT_NS:-} || $(readlink /proc/self/ns/mnt) == "$INJECT_KEY_MNT_NS" ]]; then
    die "cannot run in a private mount namespace (unshare): refusing to mount the target where a stopped run would leave it mounted"
  fi
  WORK_DIR=$(mktemp -d -t inject-key.XXXXXX)
  if ((ONLINE)); then
    online
  else
    offline
  fi
  cleanup || die "could not unmount everything after the injection"
  print_ok_report
}

main "$@"
