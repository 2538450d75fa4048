/**
 * A private Redis for one chaos run, as a child process on a free port, with no persistence: a
 * restart comes back empty (no keys, no ACL users), which is what the Redis provider must
 * survive by setting its stores' users again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export class PrivateRedis {
  private child: ChildProcess | undefined;
  private output = '';

  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server and waits until it answers PING. */
  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    child.stdout!.on('data', (chunk) => (this.output += chunk));
    child.stderr!.on('data', (chunk) => (this.output += chunk));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${this.output.slice(-2000)}`);
      const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') return;
      } catch {
        /* not listening yet */
      } finally {
        probe.disconnect();
      }
      await sleep(50);
    }
    throw new Error('redis-server did not answer PING within 60 s');
  }

  /** SIGKILL: an outage with no goodbye, and everything in memory gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  /** SIGSTOP: Redis hangs, its connections open and silent (SIGCONT with `resume`). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** What redis-server wrote (its own log). */
  log(): string {
    return this.output;
  }

  /** Synchronous, for an exit handler. */
  destroy(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
