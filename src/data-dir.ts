/**
 * The data dir holds Storehouse's state: the embedded PostgreSQL cluster (its state and its
 * Postgres stores) and its password, secret.key, the owner token, the control socket. Anyone who can read it has every secret,
 * and anyone who can write it can patch the state (a token hash, an OWNER membership). So at
 * start it is made owner-only, whatever it was found as (a Docker volume, a `mkdir -p` under
 * umask 022), and a data dir that cannot be made safe is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

/** The data dir is not Storehouse's to trust: another user owns it, or others may write it and that cannot be fixed. */
export class DataDirUnsafeError extends Error {
  constructor(
    readonly file: string,
    readonly mode: number,
    reason: string,
    what = 'The data directory',
  ) {
    super(`${what} ${file} is ${describeMode(mode)}: ${reason}`);
    this.name = 'DataDirUnsafeError';
  }
}

/** What the check needs of the file system (injectable, so the branches a root test run cannot reach are tested too). */
export interface DataDirFs {
  statSync(file: string): fs.Stats;
  lstatSync(file: string): fs.Stats;
  chmodSync(file: string, mode: number): void;
  readdirSync(file: string): string[];
}

export interface SecureDataDirOptions {
  /** Told what could not be made owner-only but is not writable by others (start goes on). */
  warn?: (message: string) => void;
  fs?: DataDirFs;
  /** The effective uid Storehouse runs as. */
  uid?: number;
}

const GROUP_OR_OTHER = 0o077;
const WRITABLE_BY_OTHERS = 0o022;
/**
 * The one bit the data dir itself may keep: its group's search permission (0710), which lets the
 * embedded PostgreSQL, run as its own user when Storehouse is root, reach its cluster inside; it
 * reveals no name and opens no file (every file is owner-only). See src/db/postgres-server.ts.
 */
const GROUP_SEARCH = 0o010;

/** `drwxr-xr-x (0755)`: the mode as `ls -l` shows it, and in octal. */
export function describeMode(mode: number): string {
  const type =
    (mode & fs.constants.S_IFMT) === fs.constants.S_IFDIR ? 'd' : (mode & fs.constants.S_IFMT) === fs.constants.S_IFSOCK ? 's' : '-';
  const bits = 'rwxrwxrwx'.split('').map((letter, i) => (mode & (0o400 >> i) ? letter : '-'));
  const special = (bit: number, at: number, letter: string) => {
    if (mode & bit) bits[at] = bits[at] === '-' ? letter.toUpperCase() : letter;
  };
  special(0o4000, 2, 's');
  special(0o2000, 5, 's');
  special(0o1000, 8, 't');
  return `${type}${bits.join('')} (${(mode & 0o7777).toString(8).padStart(4, '0')})`;
}

const errorText = (error: unknown) => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/**
 * Makes the data dir 0700 and everything in it others could reach owner-only (files keep only
 * their owner's bits: 0666 becomes 0600), and makes what the process creates from now on
 * owner-only too. Refuses
 * (DataDirUnsafeError) a data dir another user owns, and one that stays group- or
 * world-writable because chmod failed or the file system ignores it. A missing data dir is left
 * to whoever creates it first (they do so 0700, and the umask makes it so regardless).
 */
export function secureDataDir(dataDir: string, options: SecureDataDirOptions = {}): void {
  if (process.platform === 'win32') return; // no POSIX modes to set
  const files = options.fs ?? fs;
  const uid = options.uid ?? process.geteuid?.();
  const warn = options.warn ?? (() => {});
  // Every file and directory this process (and the PostgreSQL server it starts) makes from here
  // on under the default modes is owner-only from its first moment, with no window between its
  // creation and a chmod: nothing Storehouse writes is meant for another user. Worker threads
  // share the process's umask (and cannot set it).
  if (isMainThread) process.umask(0o077);

  checkParents(path.dirname(path.resolve(dataDir)), files, uid, warn);
  let found: fs.Stats;
  try {
    found = files.statSync(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!found.isDirectory())
    throw new DataDirUnsafeError(dataDir, found.mode, 'it is not a directory. Set STOREHOUSE_DATA_DIR to a directory.');
  if (uid !== undefined && found.uid !== uid) {
    throw new DataDirUnsafeError(
      dataDir,
      found.mode,
      `it is owned by uid ${found.uid}, not by uid ${uid} that Storehouse runs as, and its owner could read and change the state. ` +
        'Run Storehouse as its owner, or chown it to the user Storehouse runs as.',
    );
  }
  if (found.mode & GROUP_OR_OTHER & ~GROUP_SEARCH) {
    let failure: string | undefined;
    try {
      files.chmodSync(dataDir, 0o700);
    } catch (error) {
      failure = errorText(error);
    }
    const now = failure ? found : files.statSync(dataDir);
    if (now.mode & WRITABLE_BY_OTHERS) {
      throw new DataDirUnsafeError(
        dataDir,
        now.mode,
        `other users may write to it, and it cannot be made 0700 (${failure ?? 'the file system ignores chmod'}). ` +
          'Make it 0700 and owned by the user Storehouse runs as, or set STOREHOUSE_DATA_DIR to one that is.',
      );
    }
    if (now.mode & GROUP_OR_OTHER & ~GROUP_SEARCH)
      warn(
        `the data directory ${dataDir} is ${describeMode(now.mode)} and cannot be made 0700 (${failure ?? 'the file system ignores chmod'})`,
      );
  }
  // Its top level is always looked at: 0710 lets the embedded PostgreSQL's group reach entries by name.
  restrictContents(dataDir, (found.mode & GROUP_OR_OTHER & ~GROUP_SEARCH) !== 0, files, warn);
}

/**
 * Whoever may write a directory above the data dir may rename the data dir away and put one of
 * their own in its place (tokens and OWNER memberships of their choosing): a parent every user
 * may write without the sticky bit (which /tmp has) is refused; one a group may write, or another
 * user (not root) owns, is named in a warning.
 */
function checkParents(dir: string, files: DataDirFs, uid: number | undefined, warn: (message: string) => void): void {
  for (let current = dir; ; current = path.dirname(current)) {
    let entry: fs.Stats | undefined;
    try {
      entry = files.statSync(current);
    } catch {
      entry = undefined; // not there yet (made with the data dir), or not ours to look at
    }
    if (entry && !(entry.mode & 0o1000)) {
      if (entry.mode & 0o002) {
        throw new DataDirUnsafeError(
          current,
          entry.mode,
          'every user may write to it, so anyone could replace the data directory inside it with one of their own. ' +
            'Set STOREHOUSE_DATA_DIR to a directory whose parents only their owners may write (or make this one sticky: chmod +t).',
          'A parent of the data directory,',
        );
      }
      if (entry.mode & 0o020)
        warn(`${current}, a parent of the data directory, is ${describeMode(entry.mode)}: its group could replace the data directory`);
      else if (uid !== undefined && entry.uid !== uid && entry.uid !== 0)
        warn(`${current}, a parent of the data directory, is owned by uid ${entry.uid}, who could replace the data directory`);
    }
    if (current === path.dirname(current)) return;
  }
}

/**
 * Every entry others could reach under `dir` loses its group and other bits; symbolic links are
 * left alone (chmod would follow them out). A directory that was already owner-only is not walked
 * unless one above it was open: nobody else could reach what it holds, and walking it every start
 * would cost a stat of every file of the embedded PostgreSQL's cluster (some 300 per store).
 * `exposed` says whether others could reach `dir`'s entries by name before this call.
 */
function restrictContents(dir: string, exposed: boolean, files: DataDirFs, warn: (message: string) => void): void {
  const pending: Array<{ dir: string; exposed: boolean }> = [{ dir, exposed }];
  for (let current = pending.pop(); current !== undefined; current = pending.pop()) {
    let names: string[];
    try {
      names = files.readdirSync(current.dir);
    } catch (error) {
      warn(`cannot look inside ${current.dir} to make it owner-only (${errorText(error)})`);
      continue;
    }
    for (const name of names) {
      const file = path.join(current.dir, name);
      let entry: fs.Stats;
      try {
        entry = files.lstatSync(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
        throw error;
      }
      if (entry.isSymbolicLink()) continue;
      const open = (entry.mode & GROUP_OR_OTHER) !== 0;
      if (entry.isDirectory() && (open || current.exposed)) pending.push({ dir: file, exposed: current.exposed || open });
      if (!open) continue;
      try {
        files.chmodSync(file, entry.mode & 0o700);
      } catch (error) {
        if (entry.mode & WRITABLE_BY_OTHERS) {
          throw new DataDirUnsafeError(
            file,
            entry.mode,
            `other users may write to it, and it cannot be made owner-only (${errorText(error)}). ` +
              'Make everything in the data directory owned by the user Storehouse runs as.',
            'In the data directory,',
          );
        }
        warn(`${file} in the data directory is ${describeMode(entry.mode)} and cannot be made owner-only (${errorText(error)})`);
      }
    }
  }
}
