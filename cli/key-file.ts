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
  checkSshDir(dir);
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
  const data = Buffer.from(key.endsWith('\n') ? key : `${key}\n`, 'utf8');
  try {
    // write(2) may write fewer bytes than asked (a file-size limit, a full disk, a quota) without
    // an error: loop until every byte is written; the next write then reports the cause (EFBIG,
    // ENOSPC, EDQUOT). Node's writeSync returns the count and does not loop
    // (https://nodejs.org/api/fs.html#fswritesyncfd-buffer-offset-length-position).
    for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off, data.length - off);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw new CliError(`could not write ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); the partial file was removed`, EXIT.error);
  }
  fs.closeSync(fd);
  // Read it back: the key is deleted from Parameter Store only after this.
  const back = fs.readFileSync(file);
  if (!back.equals(data)) {
    fs.rmSync(file, { force: true });
    throw new CliError(`${file} did not read back as written; it was removed`, EXIT.error);
  }
  // The directory entry too, so that the file survives a crash after the parameter is deleted.
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/**
 * ~/.ssh must be a real directory of this user, writable by no one else: otherwise another user
 * could remove or replace the key file (OpenSSH's StrictModes refuses the same,
 * https://man.openbsd.org/sshd_config#StrictModes).
 */
export function checkSshDir(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const uid = process.getuid?.();
  if (st.isSymbolicLink()) throw new CliError(`${dir} is a symbolic link: the key file is written only into a real directory of yours`, EXIT.usage);
  if (!st.isDirectory()) throw new CliError(`${dir} is not a directory`, EXIT.usage);
  if (uid !== undefined && st.uid !== uid) throw new CliError(`${dir} belongs to uid ${st.uid}, not to you`, EXIT.usage);
  if (st.mode & 0o022) throw new CliError(`${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 700 ${dir} first`, EXIT.usage);
}

/** Refuses before the run starts when the key file already exists and --force was not given. */
export function checkKeyFileFree(file: string, force: boolean): void {
  checkSshDir(path.dirname(file));
  if (!force && fs.existsSync(file)) {
    throw new CliError(`${file} already exists: move it away or pass --force to replace it (nothing was started)`, EXIT.usage);
  }
}
