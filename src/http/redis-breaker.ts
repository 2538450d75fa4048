/**
 * A circuit breaker in front of the rate-limit Redis (issue 16). Without it, a Redis that hangs
 * (paused, a half-open connection) made every request wait the whole command timeout, and every
 * command written meanwhile ran once Redis woke up, counted twice (once in process, once late).
 *
 * Closed, counts go to Redis. The first failure (a timeout, a refused or lost connection) opens
 * it: from then on counts are made in process and nothing is sent to Redis, so no request waits
 * on it. After a timeout the connection is reset (TCP RST) and nothing is sent again on the new
 * one, so at most the commands already on their way when the breaker opened (one count per
 * request then under way, usually one) may still run when a paused Redis wakes and reads its
 * socket: a late count errs on the strict side, by that much, for the rest of the minute. A probe
 * (PING, one at a time) asks Redis again every cool-down; when it answers, the breaker closes.
 */
import type { Redis } from 'ioredis';

export interface BreakerState {
  state: 'closed' | 'open';
  /** How many times the breaker opened. */
  opened: number;
  /** Commands sent to Redis to count requests (not probes): none while open. */
  counts: number;
  /** Probes sent while open. */
  probes: number;
}

export interface BreakerEvents {
  open(error: Error): void;
  close(): void;
}

export class RedisBreaker {
  private readonly stats: BreakerState = { state: 'closed', opened: 0, counts: 0, probes: 0 };
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly cooldownMs: number,
    private readonly events: BreakerEvents,
  ) {}

  get state(): BreakerState {
    return { ...this.stats };
  }

  /**
   * Runs `command` against Redis while the breaker is closed; `undefined` while it is open (the
   * caller counts in process). A failure other than `isAnswer` opens the breaker and also gives
   * `undefined`.
   */
  async run<T>(command: () => Promise<T>, isAnswer: (error: unknown) => boolean): Promise<{ value: T } | { error: unknown } | undefined> {
    if (this.stats.state === 'open') return undefined;
    this.stats.counts++;
    try {
      return { value: await command() };
    } catch (error) {
      if (isAnswer(error)) return { error };
      this.open(error instanceof Error ? error : new Error(String(error)));
      return undefined;
    }
  }

  private open(error: Error): void {
    if (this.stats.state === 'open' || this.closed) return;
    this.stats.state = 'open';
    this.stats.opened++;
    // Drop the connection at once (its queue goes with it): no more is written to a hung Redis.
    // What it had already received stays in its socket and may still run when it wakes.
    if (/timed out/i.test(error.message)) this.redis.stream?.resetAndDestroy?.();
    this.events.open(error);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed || this.probing || this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, this.cooldownMs);
    this.probeTimer.unref();
  }

  /** One PING (under the command timeout); a Redis still (re)connecting is not asked, only waited for. */
  private async probe(): Promise<void> {
    if (this.closed) return;
    this.probing = true;
    let answered = false;
    try {
      if (this.redis.status === 'ready') {
        this.stats.probes++;
        answered = (await this.redis.ping()) === 'PONG';
      }
    } catch (error) {
      if (error instanceof Error && /timed out/i.test(error.message)) this.redis.stream?.resetAndDestroy?.();
    } finally {
      this.probing = false;
    }
    if (this.closed) return;
    if (!answered) return this.scheduleProbe();
    this.stats.state = 'closed';
    this.events.close();
  }

  stop(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }
}
