/**
 * One boot of an emulated instance as far as cloud-init goes: the real cloud-init (Debian's
 * 22.4.2, installed on this machine) runs its stages over a disk image, with a NoCloud seed holding
 * the instance's user data and instance id, and what it and its modules write to /dev/console is
 * the instance's serial console output (what GetConsoleOutput returns).
 *
 * It runs in a private mount namespace (unshare -m) in which the image's /etc/passwd, /etc/group,
 * /etc/shadow, /etc/ssh and /home are bind-mounted over this machine's (the same arrangement as
 * test/script/online.test.ts uses for the online inject script), the image's /var/lib/cloud is
 * cloud-init's state directory, /etc/cloud is a directory holding only our restricted cloud.cfg, and
 * /run, /tmp, /var/log and /var/lib are private tmpfs: nothing of this machine changes.
 *
 * The cloud.cfg is restricted to what a boot needs to show the behaviour: datasource NoCloud,
 * networking config disabled, no hostname or /etc/hosts management, no ssh module (so no host-key
 * generation);
 * the init stage runs only `bootcmd`, the final stage `scripts_user` (user data shell scripts) and
 * `final_message`. The stages run in systemd's order: `init --local`, `init`, `modules --mode
 * final` (cloud-init's own units: cloud-init-local, cloud-init, cloud-final).
 *
 * One difference between the EC2 datasource and NoCloud is removed by hand: at every boot the local
 * stage asks the cached datasource `check_instance_id`; DataSourceEc2 does not define it (the base
 * class answers False, cloudinit/sources/__init__.py), so on EC2 the cache is dropped and user data
 * is read again from the instance metadata service at each boot (cloudinit/stages.py
 * _restore_from_checked_cache). NoCloud's check_instance_id answers True for the same instance id and
 * would keep the previous boot's user data; so before each boot the pickled datasource
 * (/var/lib/cloud/instance/obj.pkl) is removed, which is the same "cache invalid" path. The per-
 * instance semaphores (/var/lib/cloud/instances/<id>/sem) stay, as they do on EC2.
 */
import { execFile } from 'child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { join } from 'path';

export interface CloudInitBootOptions {
  /**
   * The block devices of the image (a loop device, or its partitions): the first that mounts and
   * holds /etc/passwd is the root.
   */
  readonly devices: readonly string[];
  /** A private scratch directory for the seed, the config and the console capture. */
  readonly workDir: string;
  readonly instanceId: string;
  /** The instance's user data, as EC2 would serve it (raw bytes, gzip or not). Empty: none. */
  readonly userData: Buffer;
  /** The image's cloud-init default user. @default 'ec2-user' */
  readonly defaultUser?: string;
  /** @default 120000 */
  readonly timeoutMs?: number;
}

export interface CloudInitBootResult {
  /** What was written to /dev/console during the boot. */
  readonly console: string;
  /** cloud-init's own stderr and stdout (its log goes there: def_log_file is in the private /var/log). */
  readonly output: string;
  readonly exitCode: number;
  /** True when the boot asked for a power-off (`systemctl poweroff`, recorded, never executed here). */
  readonly poweroff: boolean;
}

function restrictedCloudCfg(defaultUser: string): string {
  return [
    '# Restricted for the twin: only what one boot of the UserData method needs (local/cloud-init-boot.ts).',
    'datasource_list: [NoCloud, None]',
    'network:',
    '  config: disabled',
    'manage_etc_hosts: false',
    'preserve_hostname: true',
    'cloud_init_modules: [bootcmd]',
    'cloud_config_modules: []',
    'cloud_final_modules: [scripts_user, final_message]',
    'syslog_fix_perms: []',
    'def_log_file: /var/log/cloud-init.log',
    'system_info:',
    '  distro: debian',
    '  default_user:',
    `    name: ${defaultUser}`,
    '  paths:',
    '    cloud_dir: /var/lib/cloud/',
    '    run_dir: /run/cloud-init/',
    '',
  ].join('\n');
}

const BOOT_SCRIPT = `
set -eu
m=$WORK/root
mkdir -p "$m"
found=
for d in $DEVICES; do
  if mount "$d" "$m" 2>/dev/null; then
    if [ -f "$m/etc/passwd" ]; then found=$d; break; fi
    umount "$m"
  fi
done
[ -n "$found" ] || { echo "no root filesystem among $DEVICES" >&2; exit 90; }
seed=$m/var/lib/cloud/seed/nocloud
mkdir -p "$seed"
cp "$WORK/user-data" "$seed/user-data"
printf 'instance-id: %s\\n' "$IID" >"$seed/meta-data"
for f in passwd group shadow; do mount --bind "$m/etc/$f" "/etc/$f"; done
mount --bind "$m/etc/ssh" /etc/ssh
# The image's fstab (what a boot's findmnt --fstab reads), else an empty one.
[ -f "$m/etc/fstab" ] || : >"$WORK/fstab.empty"
if [ -f "$m/etc/fstab" ]; then mount --bind "$m/etc/fstab" /etc/fstab; else mount --bind "$WORK/fstab.empty" /etc/fstab; fi
mount --bind "$m/home" /home
for d in /run /tmp /var/log /var/lib; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
mkdir -p /var/lib/cloud
mount --bind "$m/var/lib/cloud" /var/lib/cloud
# (instance is a link to the absolute /var/lib/cloud/instances/<id>: removed once that path is the image's)
rm -f /var/lib/cloud/instance/obj.pkl
mount --bind "$WORK/etc-cloud" /etc/cloud
: >"$WORK/console"
mount --bind "$WORK/console" /dev/console
# systemctl is this machine's: a recorder takes its place, so a boot program's "systemctl poweroff"
# is noted (the caller stops the emulated instance) and never reaches this machine.
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s/systemctl.calls"\n' "$WORK" >"$WORK/systemctl"
chmod 0755 "$WORK/systemctl"
: >"$WORK/systemctl.calls"
for s in /usr/bin/systemctl /bin/systemctl /usr/sbin/poweroff /sbin/poweroff /usr/sbin/shutdown /sbin/shutdown; do
  [ -e "$s" ] || continue
  mount --bind "$WORK/systemctl" "$(readlink -f "$s")" || { echo "cannot put the systemctl recorder over $s" >&2; exit 91; }
done
if command -v systemctl >/dev/null 2>&1; then
  cmp -s "$(command -v systemctl)" "$WORK/systemctl" || { echo "systemctl is not the recorder" >&2; exit 92; }
fi
status=0
cloud-init init --local || status=$?
cloud-init init || status=$?
cloud-init modules --mode final || status=$?
exit "$status"
`;

/** Boot once. Rejects only when the namespace itself cannot be set up or the boot times out. */
export async function bootWithCloudInit(options: CloudInitBootOptions): Promise<CloudInitBootResult> {
  const work = options.workDir;
  mkdirSync(join(work, 'etc-cloud', 'cloud.cfg.d'), { recursive: true });
  writeFileSync(join(work, 'etc-cloud', 'cloud.cfg'), restrictedCloudCfg(options.defaultUser ?? 'ec2-user'));
  writeFileSync(join(work, 'user-data'), options.userData);
  rmSync(join(work, 'console'), { force: true });
  rmSync(join(work, 'systemctl.calls'), { force: true });
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', WORK: work, DEVICES: options.devices.join(' '), IID: options.instanceId, LANG: 'C.UTF-8' };
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
    execFile(
      'unshare',
      ['--mount', '--propagation', 'private', 'bash', '-c', BOOT_SCRIPT],
      { env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error && (error as { killed?: boolean }).killed) {
          reject(new Error(`cloud-init boot timed out: ${stderr.slice(-2000)}`));
          return;
        }
        const exit = error ? Number((error as { code?: unknown }).code ?? 1) : 0;
        resolve({ code: Number.isFinite(exit) ? exit : 1, output: `${stdout}${stderr}` });
      },
    );
  });
  let consoleText = '';
  try {
    consoleText = readFileSync(join(work, 'console'), 'utf8');
  } catch {
    consoleText = '';
  }
  let calls = '';
  try {
    calls = readFileSync(join(work, 'systemctl.calls'), 'utf8');
  } catch {
    calls = '';
  }
  return { console: consoleText, output, exitCode: code, poweroff: calls.split('\n').some((l) => /(^|\s)poweroff(\s|$)/.test(l)) };
}
