/**
 * Background work that knows when it is next due: each run returns how long until its next piece
 * of work (or nothing), and runs again then, or after `idleMs` at the latest (work another node
 * created is found that way). The wait is measured by the database's clock, in the query that
 * finds the work (`msUntil`): due times are the database's `now()` plus something, and a node
 * whose clock is off from it would otherwise wake too late (missing work by its skew) or spin. Runs never overlap; `wake()` asks for a run now (a run under way
 * is followed by another). Stopping waits for the run under way.
 */
export class Schedule {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly work: () => Promise<number | undefined>,
    private readonly idleMs: number,
    private readonly onError: (error: Error) => void,
  ) {}

  /** The first run, after `delayMs`. */
  start(delayMs: number): this {
    this.at(delayMs);
    return this;
  }

  /** Whether the owner is shutting down: loops inside `work` stop early. */
  get isStopped(): boolean {
    return this.stopped;
  }

  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private at(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), Math.max(0, delayMs));
    this.timer.unref();
  }

  private async run(): Promise<void> {
    let next: number | undefined;
    try {
      next = await this.work();
    } catch (error) {
      this.onError(error as Error);
    }
    this.running = undefined;
    if (this.again) {
      this.again = false;
      this.wake();
      return;
    }
    this.at(next === undefined ? this.idleMs : Math.min(next, this.idleMs));
  }
}

/**
 * SQL: the milliseconds from the database's `now()` until `time` (an aggregate such as
 * `min(next_check_at)`), as a float8 (a number in JavaScript); NULL when `time` is NULL.
 */
export const msUntil = (time: string) => `(extract(epoch from (${time}) - now()) * 1000)::float8`;

/** The first row's `ms` (from `msUntil`), or undefined when there is nothing due. */
export const untilDue = (rows: Array<{ ms: number | null }>): number | undefined => rows[0]?.ms ?? undefined;
