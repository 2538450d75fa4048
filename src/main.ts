#!/usr/bin/env node
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
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

/** What `npm start` runs: the configuration from the environment, then the server; exits 1 if it cannot start. */
export function main(): void {
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

/**
 * Run as a script, not imported: `npm start` (the bundle, dist/storehouse.js, whose modules all
 * share its URL), `tsx src/main.ts`, `node dist/main.js`; through symlinks (`/srv/app ->
 * releases/N`) and whatever characters the path has.
 */
function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isEntryPoint()) main();
