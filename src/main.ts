#!/usr/bin/env node
import pino from 'pino';
import { loadConfig, type Config } from './config.ts';
import { buildApp, REDACTED_PATHS } from './http/app.ts';
import { bootstrapNotice, openRuntime } from './runtime.ts';

/**
 * Starts the server: state first, then the HTTP listener; SIGTERM/SIGINT stop taking new
 * requests, let in-flight ones finish (up to the shutdown timeout) and close the database.
 */
export async function serve(config: Config): Promise<void> {
  const logger = pino({ level: config.logLevel, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
  const runtime = await openRuntime(config, { logger, controlSocket: true });
  const lifecycle = { draining: false };
  const app = await buildApp(runtime, { logger, lifecycle });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    lifecycle.draining = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    const force = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    try {
      await app.close();
      await runtime.close();
      logger.info('stopped');
      process.exitCode = 0;
    } catch (error) {
      logger.error({ err: error }, 'error while shutting down');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await runtime.close();
    throw error;
  }

  // Shown once on the console and written to the data dir; never logged.
  process.stderr.write(bootstrapNotice(config, runtime.bootstrapped));
}

const isEntryPoint = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/main.ts') || process.argv[1]?.endsWith('/main.js');
if (isEntryPoint) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`storehouse: ${(error as Error).message}\n`);
    process.exit(1);
  }
  serve(config).catch((error: Error) => {
    process.stderr.write(`storehouse: cannot start: ${error.message}\n`);
    process.exit(1);
  });
}
