/**
 * What the servers Storehouse runs itself on the embedded default (src/db/postgres-server.ts,
 * src/providers/redis-server.ts) and the data-dir lock (src/db/lock.ts) share: a pino-shaped log,
 * whether a pid runs, loopback ports, setpriv(1), files written whole, a child's output as lines.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Where log lines go: pino's (object, message) signature. */
export interface ServerLog {
  debug(details: object, message: string): void;
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export const NO_LOG: ServerLog = { debug() {}, info() {}, warn() {}, error() {} };

/** Whether a process with this pid exists (one of another user's counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether nothing listens on `port` of `host` (an exclusive listen succeeds, and is closed at once). */
export async function canListen(port: number, host = '127.0.0.1'): Promise<boolean> {
  const probe = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => resolve(true));
  });
  if (ok) await new Promise((resolve) => probe.close(resolve));
  return ok;
}

/**
 * A free loopback port of `range`, none of `skip`, tried from a random place in the range on:
 * lowest first would hand the port of a data dir whose Storehouse is stopped to the next data dir
 * started, and the stopped one could not start again. Undefined when every one is taken.
 */
export async function freePort(range: { first: number; last: number }, skip: ReadonlySet<number> = new Set()): Promise<number | undefined> {
  const size = range.last - range.first + 1;
  const offset = Math.floor(Math.random() * size);
  for (let i = 0; i < size; i++) {
    const port = range.first + ((offset + i) % size);
    if (!skip.has(port) && (await canListen(port))) return port;
  }
  return undefined;
}

let setprivPath: string | null | undefined;
/** util-linux's setpriv(1) (on PATH, else /usr/bin or /bin), which sets PR_SET_PDEATHSIG; null elsewhere than Linux or without it. */
export function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (process.platform !== 'linux') return setprivPath;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/bin'])) {
    const candidate = path.join(dir, 'setpriv');
    if (dir && fs.existsSync(candidate)) return (setprivPath = candidate);
  }
  return setprivPath;
}

/**
 * `text` written to `file` whole or not at all, owner-only: a scratch file, fsynced, renamed into
 * place, the directory fsynced (a kill, or a crash of the machine, leaves the previous one).
 */
export function writeFileAtomically(file: string, text: string): void {
  // Already so (most starts rewrite what the last one wrote): nothing to write or sync. What an
  // earlier call wrote was synced before it was renamed into place. Only a file as this makes it:
  // a link, another owner's file or a looser mode is replaced, as before.
  if (ownerOnlyFile(file) && readIfThere(file) === text) return;
  const scratch = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(scratch, 'w', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(scratch, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

function ownerOnlyFile(file: string): boolean {
  const entry = fs.lstatSync(file, { throwIfNoEntry: false });
  return entry?.isFile() === true && (entry.mode & 0o777) === 0o600 && entry.uid === process.geteuid?.();
}

function readIfThere(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A 'data' listener that calls `onLine` with each complete, non-blank line of a child's output. */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer) => void {
  let partial = '';
  return (chunk) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) onLine(line);
  };
}
