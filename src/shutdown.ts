import type { Logger } from 'pino';

export interface StopOnSignalsOptions {
  logger: Pick<Logger, 'info' | 'error'>;
  /** How long in-flight work may take once the signal came; then the process exits with 1. */
  timeoutMs: number;
  /** Runs first, before anything closes: e.g. a draining flag that turns new requests away. */
  beforeClose?: () => void;
  /** Stops the server, letting in-flight requests finish: what `timeoutMs` bounds. */
  close: () => Promise<void>;
  /**
   * Then releases what the process holds (its background work, the database server it runs),
   * each step with bounds of its own: a PostgreSQL writing its shutdown checkpoint on a busy
   * disk may take longer than requests may, and cutting it off would leave it to crash recovery.
   */
  release?: () => Promise<void>;
}

/**
 * Stops the process cleanly on the first SIGTERM or SIGINT: `beforeClose`, then `close`, then
 * `release`, and exit code 0 ("stopped"), or 1 when one fails. Should `close` take longer than
 * `timeoutMs`, the process exits with 1 there and then. A second signal while stopping changes nothing.
 */
export function stopOnSignals({ logger, timeoutMs, beforeClose, close, release }: StopOnSignalsOptions): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    beforeClose?.();
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    const force = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, timeoutMs);
    force.unref();
    let failed = false;
    const step = async (work: (() => Promise<void>) | undefined) => {
      try {
        await work?.();
      } catch (error) {
        logger.error({ err: error }, 'error while shutting down');
        failed = true;
      }
    };
    await step(close);
    clearTimeout(force);
    // Also after a failed close: what the process holds is released either way.
    await step(release);
    if (!failed) logger.info('stopped');
    process.exitCode = failed ? 1 : 0;
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
