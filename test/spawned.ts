/**
 * Storehouse's scripts as real processes, run the way `npm start` (and the CLI, and `npm run
 * partner`) run them: node with tsx, from the sources, in the repository's root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
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
