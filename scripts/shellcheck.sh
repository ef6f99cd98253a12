#!/usr/bin/env bash
# Runs ShellCheck over every shell script as it runs. A script in runbooks/ that starts with a shebang runs
# as it is; runbooks/key-files.sh is the shared first part of the inject-key and revoke-key scripts
# and each action's part (a file without a shebang) runs only after it, so each action is checked as
# lib/inject-key-document.ts (assembleScript) joins them: key-files.sh, then the action's part.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
files=(scripts/*.sh)
for f in runbooks/*.sh; do
  [ "$f" = runbooks/key-files.sh ] && continue
  if head -c2 "$f" | grep -q '^#!'; then
    files+=("$f")
  else
    cat runbooks/key-files.sh "$f" >"$dir/$(basename "$f")"
    files+=("$dir/$(basename "$f")")
  fi
done
shellcheck "${files[@]}"
