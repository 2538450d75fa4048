import pg from 'pg';

/** node-postgres' error for a statement unanswered past the pool's query_timeout. */
export const isReadTimeout = (error: unknown) => (error as Error | undefined)?.message === 'Query read timeout';

/**
 * A node-postgres connection for pools with a `query_timeout`. A statement that went unanswered
 * past it leaves node-postgres waiting on it for ever (every later statement queues behind it),
 * so the connection is dropped: the pool then replaces it instead of lending out a dead one.
 * `mapError` rewrites each error a statement fails with (the state pool marks them its own).
 */
export class BoundedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // A checked-out connection that breaks emits 'error' (its statements fail with it anyway);
    // with no listener that event would kill the process. The pool listens on idle ones itself.
    this.on('error', () => {});
  }

  protected mapError(error: unknown): unknown {
    return error;
  }

  private dropOnTimeout(error: unknown): void {
    if (isReadTimeout(error)) (this as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg's query has a dozen overloads; this passes every one through
  override query(...args: unknown[]): any {
    const last = args.at(-1);
    if (typeof last === 'function') {
      args[args.length - 1] = (error: unknown, result: unknown) => {
        this.dropOnTimeout(error);
        (last as (e: unknown, r: unknown) => void)(error ? this.mapError(error) : error, result);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      this.dropOnTimeout(error);
      return Promise.reject(this.mapError(error));
    });
  }
}
