#!/usr/bin/env node
import pino from 'pino';
import { loadConfig, type Config } from './config.ts';
import { buildApp, REDACTED_PATHS } from './http/app.ts';
import { bootstrapNotice, openRuntime } from './runtime.ts';
import { stopOnSignals } from './shutdown.ts';

/**
 * Starts the server: state first, then the HTTP listener; SIGTERM/SIGINT stop taking new
 * requests, let in-flight ones finish (up to the shutdown timeout) and close the database.
 */
export async function serve(config: Config): Promise<void> {
  const logger = pino({ level: config.logLevel, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
  const runtime = await openRuntime(config, { logger, controlSocket: true });
  const lifecycle = { draining: false };
  const app = await buildApp(runtime, { logger, lifecycle });

  stopOnSignals({
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    beforeClose: () => {
      lifecycle.draining = true;
    },
    close: () => app.close(),
    release: () => runtime.close(),
  });

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await runtime.close();
    throw error;
  }

  // Shown once on the console and written to the data dir; never logged.
  process.stderr.write(bootstrapNotice(config, runtime.bootstrapped));
}

const isEntryPoint =
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/main.ts') || process.argv[1]?.endsWith('/main.js');
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
