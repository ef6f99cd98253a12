#!/usr/bin/env bash
# One idempotent set-up for a fresh machine: Debian packages the disk tests and the local twin
# need, then the npm packages from package-lock.json. Fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# golang-go and the JDK compile every allowedPattern with the engines AWS uses (the SSM Agent's Go
# regexp, the service's java.util.regex); ntfs-3g, libhivex-bin for Windows disks; tmux drives the
# CLI in a real terminal; cloud-init checks and runs the UserData method's user data (its schema, its boot); strace proves how the CLI creates the key file and what the live script touches;
# llvm's llvm-rc compiles the version resources of the Windows fixtures' agent executables.
apt_packages=(openssh-server openssh-client xfsprogs btrfs-progs gdisk lvm2 e2fsprogs attr
  util-linux fdisk shellcheck procps golang-go default-jdk-headless ntfs-3g libhivex-bin tmux cloud-init strace llvm)
tools=(sshd ssh ssh-keygen mkfs.xfs mkfs.btrfs sgdisk pvcreate mkfs.ext4 chattr setfattr getfattr
  losetup partx sfdisk shellcheck unshare pkill go javac java mkntfs ntfscat hivexsh tmux cloud-init strace llvm-rc)

missing=0
for t in "${tools[@]}"; do
  if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$t" ] && [ ! -x "/sbin/$t" ]; then
    missing=1
  fi
done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: Debian packages are missing and this is not root: install ${apt_packages[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${apt_packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# npm packages: install when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
