/**
 * The bench's child processes and scratch directories: every child is tracked so that none
 * outlives the bench (SIGTERM at the end, SIGKILL on exit or a signal; the PostgreSQL servers a
 * Storehouse starts follow it through their parent-death signal), and the memory of a process
 * tree, read as PSS from /proc/<pid>/smaps_rollup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const HOST = '127.0.0.1';
const STOP_TIMEOUT_MS = 30_000;
const STARTUP_TIMEOUT_MS = 120_000;

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: got ${signal}, stopping children\n`);
    killAllNow();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Last few KB of the child's stdout+stderr, for diagnostics. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnTracked(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Spawned {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  child.once('error', () => {}); // 'exit' (or the pid check below) says what happened
  if (child.pid === undefined) throw new Error(`cannot spawn ${command}`);
  return { child, pid: child.pid, output: () => tail, exited };
}

/** SIGTERM, then wait for the exit (SIGKILL if it takes longer than STOP_TIMEOUT_MS). */
export async function stop(proc: Spawned): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timeout = sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const);
  const result = await Promise.race([proc.exited, timeout]);
  if (result === 'timeout') {
    proc.child.kill('SIGKILL');
    await proc.exited;
    throw new Error(`process ${proc.pid} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
  }
}

/** Everything still running at the end (only after a failure): SIGTERM, wait, SIGKILL; then the scratch dirs. */
export async function stopEverything(): Promise<void> {
  const leftovers = [...children].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  );
  await Promise.all(leftovers);
  for (const dir of [...tempDirs]) await removeTempDir(dir).catch(() => undefined);
}

export async function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<string> {
  const proc = spawnTracked(command, args, env, cwd);
  const { code, signal } = await proc.exited;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${code ?? signal}):\n${proc.output()}`);
  return proc.output();
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

// ---------------------------------------------------------------------------------------------
// HTTP.

export interface HttpResponse {
  status: number;
  body: string;
}

/** A single request with its own connection (no keep-alive) and a per-request timeout. */
export function request(
  port: number,
  method: string,
  urlPath: string,
  timeoutMs: number,
  headers: Record<string, string> = {},
  body?: string,
  agent: http.Agent | false = false,
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path: urlPath, headers, agent, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `urlPath` every ~10 ms until it answers 200; fails if the process exits first. */
export async function waitFor200(proc: Spawned, port: number, urlPath: string, headers: Record<string, string> = {}): Promise<void> {
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  const deadline = performance.now() + STARTUP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (exited) {
      throw new Error(
        `process exited before answering ${urlPath} (exit ${proc.child.exitCode ?? proc.child.signalCode}):\n${proc.output()}`,
      );
    }
    try {
      const response = await request(port, 'GET', urlPath, 1000, headers);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
  throw new Error(`no 200 from ${urlPath} within ${STARTUP_TIMEOUT_MS} ms:\n${proc.output()}`);
}

// ---------------------------------------------------------------------------------------------
// Memory: PSS (proportional set size: each shared page divided among the processes mapping it),
// so the shared memory of PostgreSQL's processes is counted once in their sum, not once each.

interface ProcessInfo {
  pid: number;
  ppid: number;
  name: string;
}

function processes(): ProcessInfo[] {
  const all: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      all.push({ pid: Number(entry), ppid: Number(fields[1]), name: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

/** The pids of `pid`'s descendants (children, their children, ...), with their names. */
export function descendants(pid: number): ProcessInfo[] {
  const all = processes();
  const found: ProcessInfo[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const info of all) {
      if (info.ppid === parent) {
        found.push(info);
        queue.push(info.pid);
      }
    }
  }
  return found;
}

function pssKb(pid: number): number | undefined {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const match = /^Pss:\s+(\d+)\s+kB/m.exec(rollup);
    return match?.[1] ? Number(match[1]) : undefined;
  } catch {
    return undefined; // exited meanwhile
  }
}

export interface TreeMemory {
  totalMb: number;
  /** PSS by kind: `storehouse` (the Node process), `postgres` (every process of its PostgreSQL), `redis-server`, `other`. */
  byKindMb: Record<string, number>;
  processes: number;
}

/** PSS summed over `pid` and every process it started (its PostgreSQL, a redis-server, the lock helper). */
export function treeMemory(pid: number): TreeMemory {
  const own = pssKb(pid);
  if (own === undefined) throw new Error(`no /proc/${pid}/smaps_rollup: the process is gone`);
  const byKind: Record<string, number> = { storehouse: own };
  let count = 1;
  for (const child of descendants(pid)) {
    const kb = pssKb(child.pid);
    if (kb === undefined) continue;
    const kind = child.name.startsWith('postgres') ? 'postgres' : child.name.startsWith('redis-server') ? 'redis-server' : 'other';
    byKind[kind] = (byKind[kind] ?? 0) + kb;
    count++;
  }
  const byKindMb = Object.fromEntries(Object.entries(byKind).map(([kind, kb]) => [kind, kb / 1024]));
  return { totalMb: Object.values(byKind).reduce((a, b) => a + b, 0) / 1024, byKindMb, processes: count };
}
