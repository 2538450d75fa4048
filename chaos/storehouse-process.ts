/**
 * Storehouse as a real child process (`node --import tsx src/main.ts`, as test/process.test.ts
 * and test/partner-crash.test.ts run it), killed with SIGKILL and started again on the same
 * state. Every process's output is kept, so the run can look for secrets in all of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../test/helpers.ts';

export class StorehouseProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;
  /** Output (stdout and stderr) of every process so far, the current one last. */
  private readonly outputs: string[] = [];
  /** How long each start took to its first 200 of /healthz. */
  readonly startTimesMs: number[] = [];

  constructor(
    readonly url: string,
    private readonly env: Record<string, string>,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts a process and waits until /healthz answers 200. */
  async start(timeoutMs = 120_000): Promise<void> {
    const began = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'main.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const index = this.outputs.push('') - 1;
    const append = (chunk: Buffer) => (this.outputs[index] += chunk.toString());
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = began + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`Storehouse exited during start-up (${child.exitCode ?? child.signalCode}):\n${this.outputs[index]!.slice(-3000)}`);
      }
      try {
        if ((await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(5_000) })).status === 200) {
          this.startTimesMs.push(Date.now() - began);
          return;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    await this.kill();
    throw new Error(`Storehouse did not answer /healthz within ${timeoutMs} ms:\n${this.outputs[index]!.slice(-3000)}`);
  }

  /** kill -9: no handler runs, nothing is flushed or closed by Storehouse. */
  async kill(): Promise<void> {
    if (!this.child) return;
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
  }

  /** SIGTERM and wait: the end of a run. */
  async stop(): Promise<void> {
    if (!this.child) return;
    if (this.running) this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited!.then(() => true), sleep(20_000).then(() => false)]);
    if (!done) await this.kill();
    this.child = undefined;
  }

  /** Everything every process wrote. */
  logs(): string {
    return this.outputs.join('\n');
  }

  /** Synchronous, for an exit handler. */
  destroy(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }
}
