/**
 * Writes the private key to ~/.ssh/reset-access-<instance-id>, readable by its owner only from
 * the first byte: open(2) with O_CREAT|O_EXCL|O_WRONLY and mode 0600 creates the file with that
 * mode (less the umask, which only clears bits), so no moment exists when another user could read
 * it; O_EXCL refuses an existing file (or a symlink planted there) instead of writing through it
 * (open(2), "If O_CREAT and O_EXCL are set, open() shall fail if the file exists ... If O_EXCL and
 * O_CREAT are set, and path names a symbolic link, open() shall fail", POSIX
 * https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CliError, EXIT } from './exit-codes';

export function keyFilePath(home: string, instanceId: string): string {
  return path.join(home, '.ssh', `reset-access-${instanceId}`);
}

/**
 * Creates `file` with `key` (and a final newline), mode 0600. ~/.ssh is made 0700 when missing.
 * An existing file is refused, unless `force`: then it is removed first and a new one created the
 * same exclusive way (never written through).
 */
export function writeKeyFile(file: string, key: string, force: boolean): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (force) {
    try {
      fs.unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError(`${file} already exists: move it away or pass --force to replace it`, EXIT.error);
    }
    throw err;
  }
  try {
    fs.writeSync(fd, key.endsWith('\n') ? key : `${key}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Refuses before the run starts when the key file already exists and --force was not given. */
export function checkKeyFileFree(file: string, force: boolean): void {
  if (!force && fs.existsSync(file)) {
    throw new CliError(`${file} already exists: move it away or pass --force to replace it (nothing was started)`, EXIT.usage);
  }
}
