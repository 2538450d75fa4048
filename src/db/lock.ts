import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/**
 * An exclusive lock on a data directory, held for the life of the process.
 *
 * PGlite does not lock its data directory, and two processes writing one directory lose rows
 * without a word. On Linux the lock is a listening socket in the abstract namespace, named after
 * the directory's real path: binding it is atomic, only one process can hold the name, and the
 * kernel frees it the moment the holder dies, so a crash never leaves a stale lock behind.
 * Elsewhere a lock file created with O_EXCL holds the owner's pid; a lock whose pid is dead is
 * taken over.
 */
export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string, readonly holderPid: number | undefined) {
    super(
      `The data directory ${dataDir} is in use by another Storehouse process` +
        (holderPid ? ` (pid ${holderPid})` : '') +
        '. Two processes on one embedded database would lose writes: stop the other process, ' +
        'use another STOREHOUSE_DATA_DIR, or set DATABASE_URL to share a PostgreSQL database.',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): Promise<void>;
}

const PID_FILE = 'storehouse.pid';

function readHolderPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lockWithAbstractSocket(dataDir: string): Promise<DataDirLock> {
  const name = '\0storehouse-' + createHash('sha256').update(fs.realpathSync(dataDir)).digest('hex').slice(0, 32);
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new DataDirLockedError(dataDir, readHolderPid(dataDir)) : error),
    );
    server.listen({ path: name, exclusive: true }, resolve);
  });
  server.unref();
  fs.writeFileSync(path.join(dataDir, PID_FILE), `${process.pid}\n`);
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function lockWithPidFile(dataDir: string): DataDirLock {
  const file = path.join(dataDir, 'storehouse.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      fs.writeFileSync(path.join(dataDir, PID_FILE), `${process.pid}\n`);
      return { release: async () => fs.rmSync(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) throw new DataDirLockedError(dataDir, holder);
      // The holder died without releasing: move its file aside atomically, then try again.
      try {
        fs.renameSync(file, `${file}.stale-${process.pid}`);
        fs.rmSync(`${file}.stale-${process.pid}`, { force: true });
      } catch {
        /* another process took it over first; the next attempt decides */
      }
    }
  }
  throw new DataDirLockedError(dataDir, readHolderPid(dataDir));
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return process.platform === 'linux' ? lockWithAbstractSocket(dataDir) : lockWithPidFile(dataDir);
}
