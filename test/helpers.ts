/**
 * Test harness: a real Storehouse (runtime + Fastify app) listening on a loopback port, on the
 * embedded default (a PostgreSQL server of its own in a fresh data dir) or on a PostgreSQL
 * server given by URL, with its log lines captured.
 *
 * Servers on the PostgreSQL backend get a database of their own, dropped afterwards, and keep
 * their Postgres stores on that server too. Set STOREHOUSE_TEST_DATABASE_URL (a database on a
 * server where the user may CREATE DATABASE and CREATE ROLE) to run every database-facing test
 * on PostgreSQL too.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Vercel } from '@vercel/sdk';
import { SDKError } from '@vercel/sdk/models/sdkerror.js';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import pino from 'pino';
import { parse, stringify } from 'yaml';
import { Catalog } from '../src/catalog/catalog.ts';
import { syncCatalog } from '../src/catalog/catalog-sync.ts';
import { DEFAULT_CATALOG_PATH, loadConfig, type Config } from '../src/config.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { buildApp, REDACTED_PATHS } from '../src/http/app.ts';
import { openDatabase } from '../src/db/open.ts';
import { randomBase62 } from '../src/ids.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export type Backend = 'embedded' | 'postgres';

export const POSTGRES_URL = process.env.STOREHOUSE_TEST_DATABASE_URL || undefined;

/** The backends to run database-facing tests on: always the embedded one, PostgreSQL when configured. */
export const BACKENDS: Backend[] = POSTGRES_URL ? ['embedded', 'postgres'] : ['embedded'];
if (!POSTGRES_URL) {
  process.stderr.write('# STOREHOUSE_TEST_DATABASE_URL is not set: tests run on the embedded database only\n');
}

/** A new, empty data dir: a server started on it initialises its own PostgreSQL cluster there. */
export async function freshDataDir(): Promise<string> {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-test-'));
}

/** A PostgreSQL database of its own for one test server; `drop` removes it. */
export async function freshPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  if (!POSTGRES_URL) throw new Error('STOREHOUSE_TEST_DATABASE_URL is not set');
  const name = `storehouse_test_${randomBase62(10).toLowerCase()}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

export interface TestServer {
  url: string;
  /** The bootstrap owner token of team my-team. */
  token: string;
  config: Config;
  runtime: Runtime;
  app: FastifyInstance;
  /** Every log line the server wrote. */
  logs: string[];
  sdk(token?: string): Vercel;
  /** fetch() against the server, with the owner token unless `token` is given (null for none). */
  request(pathAndQuery: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  close(): Promise<void>;
}

export interface ServerOptions {
  catalogPath?: string;
  env?: Record<string, string>;
  /** Reuse a data dir or database from an earlier server (for restart tests). */
  dataDir?: string;
  databaseUrl?: string;
  /** The bootstrap token; another node of the same database passes the first node's. */
  bootstrapToken?: string;
}

/** `catalog` written as a catalog file, in a directory of its own: remove `path.dirname(file)` afterwards. */
export function writeCatalogFile(catalog: unknown): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
  fs.writeFileSync(file, stringify(catalog));
  return file;
}

/**
 * The default catalog with its free plans limited to `limit` stores per team (plan limits are a
 * catalog feature the default catalog does not use), written as a catalog file.
 */
export function catalogWithFreePlanLimit(limit = 3, change: (catalog: any) => void = () => {}): string {
  const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
  for (const product of catalog.integrations[0].products)
    for (const plan of product.plans) if (plan.cost === 'Free') plan.resourceLimit = limit;
  change(catalog);
  return writeCatalogFile(catalog);
}

/** Starts a Storehouse on `backend`, listening on 127.0.0.1 at a free port. */
export async function startServer(backend: Backend, options: ServerOptions = {}): Promise<TestServer> {
  const cleanups: Array<() => Promise<void>> = [];
  let databaseUrl = options.databaseUrl;
  if (backend === 'postgres' && !databaseUrl) {
    const database = await freshPostgresDatabase();
    databaseUrl = database.url;
    cleanups.push(database.drop);
  }
  const dataDir = options.dataDir ?? (await freshDataDir());
  if (!options.dataDir) cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const token = options.bootstrapToken ?? `test-${randomBase62(24)}`;
  const config = loadConfig({
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_BOOTSTRAP_TOKEN: token,
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
    // Stores beside the state: on the embedded default its own server, else the test PostgreSQL.
    ...(databaseUrl && POSTGRES_URL && { STOREHOUSE_POSTGRES_ADMIN_URL: POSTGRES_URL }),
    ...(options.catalogPath && { STOREHOUSE_CATALOG: options.catalogPath }),
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = pino({ level: 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, sink);
  const runtime = await openRuntime(config, { logger, controlSocket: true });
  const app = await buildApp(runtime, { logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const tokenFile = path.join(dataDir, 'admin-token');
  const ownerToken = !runtime.bootstrapped && fs.existsSync(tokenFile) ? fs.readFileSync(tokenFile, 'utf8').trim() : token;
  return {
    url,
    token: ownerToken,
    config,
    runtime,
    app,
    logs,
    sdk: (bearer = ownerToken) => new Vercel({ bearerToken: bearer, serverURL: url }),
    request: (pathAndQuery, init = {}) => {
      const { token: given, ...rest } = init;
      const bearer = given === undefined ? ownerToken : given;
      const headers = new Headers(rest.headers);
      if (bearer !== null) headers.set('authorization', `Bearer ${bearer}`);
      return fetch(url + pathAndQuery, { ...rest, headers });
    },
    close: async () => {
      await app.close();
      await runtime.close();
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/** Parses a Vercel-format error response, asserting its shape on the way. */
export async function errorOf(response: Response): Promise<{ status: number; code: string; message: string; body: any }> {
  const body = (await response.json()) as any;
  if (typeof body?.error?.code !== 'string' || typeof body?.error?.message !== 'string') {
    throw new Error(`not a Vercel error body: ${JSON.stringify(body)}`);
  }
  return { status: response.status, code: body.error.code, message: body.error.message, body };
}

/** The status and Vercel-format error (its parsed body too) of a failed SDK call; fails the test if the call succeeds. */
export async function sdkFailure(call: Promise<unknown>): Promise<{ status: number; code: string; message: string; body: any }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SDKError, `expected an SDKError, got ${error}`);
    const body = JSON.parse(error.body);
    assert.equal(typeof body.error?.code, 'string', `not a Vercel error body: ${error.body}`);
    assert.equal(typeof body.error?.message, 'string', `not a Vercel error body: ${error.body}`);
    return { status: error.statusCode, code: body.error.code, message: body.error.message, body };
  }
  assert.fail('expected the call to fail');
}

/** Counts the statements sent through `db` while `work` runs (the real ones are sent all the same). */
export async function queriesDuring(db: Database, work: () => Promise<void>): Promise<string[]> {
  const sent: string[] = [];
  const original = db.query.bind(db);
  db.query = ((sql: string, params?: unknown[]) => {
    sent.push(sql);
    return original(sql, params);
  }) as Database['query'];
  try {
    await work();
  } finally {
    db.query = original;
  }
  return sent;
}

/**
 * Waits until `check` holds, polling; fails the test after `timeoutMs`. The default is far above
 * what anything here takes on a quiet machine (milliseconds to a few seconds): on a loaded one
 * (the suite runs several files at a time on 2 cores) the same wait can take ten times as long,
 * and a deadline only costs time when the test fails anyway.
 */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

/**
 * Storehouse state for provider tests: a migrated database (embedded, or the PostgreSQL at
 * `databaseUrl`) with the default catalog, and one of its products.
 */
export async function providerState(productSlug: string, options: { databaseUrl?: string } = {}) {
  const dataDir = await freshDataDir();
  const state = await openDatabase({ dataDir, ...(options.databaseUrl && { databaseUrl: options.databaseUrl }) });
  await migrate(state);
  await syncCatalog(state, parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8')));
  const product = (await Catalog.load(state)).findProduct('oac_storehouse', productSlug);
  return {
    dataDir,
    state,
    product,
    close: async () => {
      await state.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Adds the test card that is always approved to the server's team (paid plans need one); fails the test unless it is accepted. */
export async function addTestCard(server: TestServer): Promise<void> {
  const card = await server.request('/_storehouse/payment-methods', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ cardNumber: '4242424242424242' }),
  });
  if (card.status !== 200) throw new Error(`the test card was refused: ${card.status} ${await card.text()}`);
}
