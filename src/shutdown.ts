import type { Logger } from 'pino';

export interface StopOnSignalsOptions {
  logger: Pick<Logger, 'info' | 'error'>;
  /** How long in-flight work may take once the signal came; then the process exits with 1. */
  timeoutMs: number;
  /** Runs first, before anything closes: e.g. a draining flag that turns new requests away. */
  beforeClose?: () => void;
  /** Stops the server and releases what it holds (let in-flight requests finish first). */
  close: () => Promise<void>;
}

/**
 * Stops the process cleanly on the first SIGTERM or SIGINT: `beforeClose`, then `close`, and
 * exit code 0 ("stopped"), or 1 when closing fails. Should closing take longer than `timeoutMs`,
 * the process exits with 1 there and then. A second signal while stopping changes nothing.
 */
export function stopOnSignals({ logger, timeoutMs, beforeClose, close }: StopOnSignalsOptions): void {
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
    try {
      await close();
      logger.info('stopped');
      process.exitCode = 0;
    } catch (error) {
      logger.error({ err: error }, 'error while shutting down');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
