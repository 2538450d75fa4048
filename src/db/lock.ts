import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { isAlive } from '../supervision/local-servers.ts';

/**
 * An exclusive lock on a data directory, held for the life of the process.
 *
 * PGlite does not lock its data directory, and two processes writing one directory lose rows
 * without a word. On Linux the lock is a kernel flock() on `storehouse.lock` in the directory:
 * it holds across containers sharing a volume and across different mount paths of one
 * directory, and the kernel drops it the moment its holder dies. Node has no flock(), so
 * util-linux's flock(1) takes it and holds it in a child whose stdin is a pipe from this
 * process: when this process ends, however it ends, the pipe closes and the lock goes.
 * Without flock(1) a listening socket in the abstract namespace, named after the directory's
 * device and inode, stands in (exclusive within one network namespace); on other systems a
 * lock file created with O_EXCL holds the owner's pid, and a lock whose pid is dead is taken over.
 */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number | undefined,
  ) {
    super(
      `The data directory ${dataDir} is in use by another Storehouse process` +
        (holderPid ? ` (pid ${holderPid}${holderHost(dataDir)})` : '') +
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
const LOCK_FILE = 'storehouse.lock';

/** `<pid> <host>` of the holder, for the message a refused process prints. */
function readHolder(dataDir: string): [number | undefined, string | undefined] {
  try {
    const [pid, host] = fs.readFileSync(path.join(dataDir, PID_FILE), 'utf8').trim().split(/\s+/);
    return [Number.isInteger(Number(pid)) && Number(pid) > 0 ? Number(pid) : undefined, host];
  } catch {
    return [undefined, undefined];
  }
}
const readHolderPid = (dataDir: string) => readHolder(dataDir)[0];
function holderHost(dataDir: string): string {
  const host = readHolder(dataDir)[1];
  return host && host !== os.hostname() ? ` on ${host}` : '';
}
const writeHolder = (dataDir: string) => fs.writeFileSync(path.join(dataDir, PID_FILE), `${process.pid} ${os.hostname()}\n`);

class FlockUnavailable extends Error {}

async function lockWithFlock(dataDir: string): Promise<DataDirLock> {
  const file = path.join(dataDir, LOCK_FILE);
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  const helper = spawn('flock', ['--nonblock', '--exclusive', file, 'sh', '-c', 'echo locked && exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const outcome = await new Promise<'locked' | 'busy'>((resolve, reject) => {
    helper.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? new FlockUnavailable() : error));
    helper.stdout!.once('data', () => resolve('locked'));
    helper.once('exit', (code) => (code === 1 ? resolve('busy') : reject(new Error(`flock(1) on ${file} exited with code ${code}`))));
  });
  if (outcome === 'busy') throw new DataDirLockedError(dataDir, readHolderPid(dataDir));
  let released = false;
  helper.removeAllListeners('exit');
  helper.once('exit', () => {
    if (released) return;
    // Someone killed the helper: the lock is gone, and writing on could lose data.
    process.stderr.write(`storehouse: lost the lock on ${dataDir} (its flock helper exited); stopping\n`);
    process.exit(75);
  });
  helper.unref();
  (helper.stdin as unknown as { unref(): void }).unref();
  (helper.stdout as unknown as { unref(): void }).unref();
  writeHolder(dataDir);
  return {
    release: () =>
      new Promise<void>((resolve) => {
        released = true;
        if (helper.exitCode !== null) return resolve();
        helper.ref(); // wait for it, even if nothing else keeps the process alive
        helper.once('exit', () => resolve());
        helper.stdin!.end();
      }),
  };
}

async function lockWithAbstractSocket(dataDir: string): Promise<DataDirLock> {
  const { dev, ino } = fs.statSync(dataDir);
  const name = `\0storehouse-${dev}-${ino}`;
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new DataDirLockedError(dataDir, readHolderPid(dataDir)) : error),
    );
    server.listen({ path: name, exclusive: true }, resolve);
  });
  server.unref();
  writeHolder(dataDir);
  return {
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function lockWithPidFile(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      writeHolder(dataDir);
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
  if (process.platform !== 'linux') return lockWithPidFile(dataDir);
  try {
    return await lockWithFlock(dataDir);
  } catch (error) {
    if (!(error instanceof FlockUnavailable)) throw error;
    return lockWithAbstractSocket(dataDir);
  }
}
