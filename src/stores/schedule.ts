/**
 * Background work that knows when it is next due: each run returns the time of its next piece of
 * work (or nothing), and runs again then, or after `idleMs` at the latest (work another node
 * created is found that way). Runs never overlap; `wake()` asks for a run now (a run under way
 * is followed by another). Stopping waits for the run under way.
 */
export class Schedule {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly work: () => Promise<Date | undefined>,
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
    let next: Date | undefined;
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
    this.at(next === undefined ? this.idleMs : Math.min(next.getTime() - Date.now(), this.idleMs));
  }
}
