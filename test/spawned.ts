/**
 * Storehouse's scripts as real processes, in the repository's root: the server bundle exactly as
 * `npm start` runs it, and the scripts (the server too, the CLI, `npm run partner`) from the
 * sources with tsx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { eventually, ROOT } from './helpers.ts';

export interface Proc {
  child: ChildProcess;
  /** What it wrote to stdout and stderr, interleaved as it arrived. */
  output: () => string;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** `node --import tsx <args>` in ROOT, on this process's environment with `env` over it. */
export function runFromSource(args: string[], env: Record<string, string> = {}): Proc {
  return run(['--import', 'tsx', ...args], env);
}

export const SERVER_BUNDLE = path.join(ROOT, 'dist', 'storehouse.js');

/** Every file under `dir`'s newest modification time, in ms. */
function newestIn(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    // parentPath from Node 20.12; path before it.
    const parent = (entry as { parentPath?: string }).parentPath ?? entry.path;
    if (entry.isFile()) newest = Math.max(newest, fs.statSync(path.join(parent, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * The server as `npm start` runs it: `node dist/storehouse.js` (the bundle test/run.ts makes
 * first), or that file by another path (`bundle`: a symlink to it). Refuses a bundle older than
 * the sources, which would test code that is not there.
 */
export function runBundled(env: Record<string, string> = {}, bundle = SERVER_BUNDLE): Proc {
  const built = fs.statSync(SERVER_BUNDLE, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (built < newestIn(path.join(ROOT, 'src')))
    throw new Error(`${SERVER_BUNDLE} is missing or older than src/: run the tests with npm test (or npm run build first)`);
  return run([bundle], env);
}

function run(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
    out += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
    err += chunk;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, stdout: () => out, stderr: () => err, exit };
}

/** Resolves once `url` answers 200; fails at once, with its output, if `proc` exits first. */
export async function answering(what: string, url: string, proc: Proc, timeoutMs: number): Promise<void> {
  await eventually(
    `${what} answering ${url}`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`${what} exited early: ${proc.output()}`);
      return (await fetch(url).catch(() => undefined))?.status === 200;
    },
    timeoutMs,
  );
}

/** Sends `signal` unless it has exited already; resolves once it has. */
export async function stop(proc: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!proc) return;
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
  await proc.exit;
}
