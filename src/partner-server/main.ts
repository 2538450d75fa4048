#!/usr/bin/env node
/**
 * Runs the reference partner server on its own: `node --import tsx src/partner-server/main.ts`.
 * Point a Storehouse product's HTTP provider at it, and it at that Storehouse (PARTNER_ISSUER is
 * Storehouse's issuer, normally its public URL; its keys are read from /.well-known/jwks there).
 *
 * Environment: PORT (4000), HOST (127.0.0.1), PARTNER_DATA_DIR (.storehouse-partner),
 * PARTNER_DATABASE_URL (state on PostgreSQL instead of embedded), PARTNER_POSTGRES_ADMIN_URL
 * (stores on a PostgreSQL server instead of embedded ones), PARTNER_CLIENT_ID (oac_partner),
 * PARTNER_ISSUER (http://127.0.0.1:3000), PARTNER_JWKS_URL, PARTNER_MARKETPLACE_URL, PARTNER_CLIENT_SECRET (the
 * integration's clientSecret in Storehouse's catalog, catalog/example.yaml's by default: SSO codes are
 * exchanged with it, and the webhooks POST /webhook receives are verified with it), LOG_LEVEL (info).
 */
import pino from 'pino';
import { stopOnSignals } from '../shutdown.ts';
import { startPartnerServer, type PartnerServerOptions } from './app.ts';

const REDACTED_PATHS = ['req.headers.authorization', 'req.headers.cookie'];

/** How long in-flight requests may take after SIGTERM/SIGINT (Storehouse's default shutdown timeout). */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** catalog/example.yaml's client secret for its partner integration (an example, not a secret). */
const EXAMPLE_CLIENT_SECRET = 'acme-example-client-secret';

/** The options from the environment; an unset or empty variable takes its default. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): PartnerServerOptions {
  const value = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : env[name]);
  const port = Number(value('PORT') ?? 4000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, not ${JSON.stringify(env.PORT)}`);
  return {
    host: value('HOST') ?? '127.0.0.1',
    port,
    dataDir: value('PARTNER_DATA_DIR') ?? '.storehouse-partner',
    databaseUrl: value('PARTNER_DATABASE_URL'),
    postgresAdminUrl: value('PARTNER_POSTGRES_ADMIN_URL'),
    clientId: value('PARTNER_CLIENT_ID') ?? 'oac_partner',
    issuer: value('PARTNER_ISSUER') ?? 'http://127.0.0.1:3000',
    jwksUrl: value('PARTNER_JWKS_URL'),
    marketplaceUrl: value('PARTNER_MARKETPLACE_URL'),
    // Like the defaults above, catalog/example.yaml's, so that file and `npm run partner` work together.
    clientSecret: value('PARTNER_CLIENT_SECRET') ?? EXAMPLE_CLIENT_SECRET,
  };
}

/**
 * Starts the server; SIGTERM/SIGINT let in-flight requests finish (up to SHUTDOWN_TIMEOUT_MS,
 * then the process exits with 1), then close the stores and the database.
 */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const options = optionsFromEnv(env);
  const logger = pino({ level: env.LOG_LEVEL || 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
  const server = await startPartnerServer({ ...options, logger });
  logger.info(
    { clientId: options.clientId, issuer: options.issuer, dataDir: options.dataDir },
    `reference partner server at ${server.url}`,
  );

  stopOnSignals({ logger, timeoutMs: SHUTDOWN_TIMEOUT_MS, close: () => server.close() });
}

// Only when run directly: importing this module (tests, another entry point) starts nothing.
const isEntryPoint =
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith('/partner-server/main.ts') ||
  process.argv[1]?.endsWith('/partner-server/main.js');
if (isEntryPoint) {
  run().catch((error: Error) => {
    process.stderr.write(`storehouse partner: cannot start: ${error.message}\n`);
    process.exit(1);
  });
}
