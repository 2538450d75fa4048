import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { BoundedClient } from './bounded-client.ts';
import { PoolDatabase, type Database, type Listen } from './database.ts';
import { lockDataDir } from './lock.ts';
import { PostgresServer } from './postgres-server.ts';
import type { ServerLog } from '../supervision/local-servers.ts';
import { markDatabaseError } from './unavailable.ts';

export interface OpenOptions {
  /** A PostgreSQL connection string; without one the embedded PostgreSQL server in `dataDir` is started. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolMax?: number;
  /** Whether statements used often go as named prepared statements (src/db/prepared-statements.ts; true unless false). */
  preparedStatements?: boolean | undefined;
  /** How long a new connection may take (pg-pool's connectionTimeoutMillis; also a wait for a free one). */
  connectTimeoutMs?: number;
  /** How long a statement may go unanswered before it fails (node-postgres' query_timeout). */
  queryTimeoutMs?: number;
  onPoolError?: (error: Error) => void;
  /** On the embedded default: the port of its PostgreSQL server (else the one kept in the data dir). */
  embeddedPort?: number | undefined;
  /** Where the embedded PostgreSQL server's log lines go. */
  log?: ServerLog | undefined;
}

/**
 * A data dir an earlier Storehouse made, whose state and Postgres stores were PGlite databases
 * (`pgdata/`, `stores/`): a PostgreSQL server cannot open PGlite's files, and nothing is changed.
 */
export class LegacyDataDirError extends Error {
  override name = 'LegacyDataDirError';
  constructor(dataDir: string, what: string) {
    super(
      `${dataDir} was made by an earlier Storehouse, which kept its state and its Postgres stores in PGlite ` +
        `(${what}); this one runs a PostgreSQL server of its own and cannot open PGlite's files. ` +
        'Nothing was changed. To start afresh, move the directory away (`mv ' +
        `${dataDir} ${dataDir}.pglite\`) or set STOREHOUSE_DATA_DIR to another one. To keep what it holds, start the earlier ` +
        'version on it (git checkout acf52b9, the last with PGlite) and copy each store out with pg_dump against its POSTGRES_URL.',
    );
  }
}

/** What an earlier Storehouse's PGlite left in a data dir: its state (`pgdata/`) or its stores (`stores/`). */
function legacyPart(dataDir: string): string | undefined {
  for (const part of ['pgdata', 'stores']) if (fs.existsSync(path.join(dataDir, part))) return path.join(dataDir, part);
  return undefined;
}

/** The embedded PostgreSQL's database for Storehouse's own state (store databases sit beside it). */
export const STATE_DATABASE = 'storehouse';

/**
 * The state database's pool: every error it raises is marked as the state database's, so the
 * API can tell "our database is down" (503) from another service's refused connection.
 */
class StatePool extends pg.Pool {
  // biome-ignore lint/suspicious/noExplicitAny: pg's query has a dozen overloads; this passes every one through
  override query(...args: unknown[]): any {
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(markDatabaseError(error))) : result;
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg's connect overloads (callback or promise) pass through
  override connect(...args: unknown[]): any {
    const result = (super.connect as (...a: unknown[]) => unknown)(...args);
    return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(markDatabaseError(error))) : result;
  }
}

/** A connection of the state pool (bounded: see BoundedClient); its errors are marked as the state database's. */
class StateClient extends BoundedClient {
  protected override mapError(error: unknown): unknown {
    return markDatabaseError(error);
  }
}

const RELISTEN_DELAY_MS = 1000;

/**
 * LISTEN on PostgreSQL needs a connection of its own, outside the pool, with TCP keepalive.
 * When it breaks the handlers hear `lost`, and it reconnects until it can LISTEN again (then
 * `ready`). `replace()` abandons a connection that looks alive but hears nothing (half-open, or
 * behind a pooler that drops LISTEN) and connects afresh.
 */
function listenOnPostgres(connectionString: string, connectionTimeoutMillis: number): Listen {
  return async (channel, handlers) => {
    let client: pg.Client | undefined;
    const opened = new Set<pg.Client>();
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    const abandon = (old: pg.Client) => {
      opened.delete(old);
      old.end().catch(() => {});
      // end() waits for the server's goodbye, which a half-open connection never sends.
      setTimeout(() => (old as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy(), 1000).unref();
    };
    const connect = async () => {
      const next = new pg.Client({ connectionString, keepAlive: true, connectionTimeoutMillis });
      opened.add(next);
      next.on('notification', (message) => {
        if (message.channel === channel && client === next) handlers.message(message.payload ?? '', message.processId);
      });
      next.on('error', () => {}); // 'end' follows, and says what to do
      next.on('end', () => {
        opened.delete(next);
        if (stopped || client !== next) return;
        client = undefined;
        handlers.lost(new Error('the LISTEN connection closed'));
        retry = setTimeout(reconnect, RELISTEN_DELAY_MS);
      });
      try {
        await next.connect();
        await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      } catch (error) {
        abandon(next);
        throw error;
      }
      if (stopped) return abandon(next);
      client = next;
      handlers.ready();
    };
    const reconnect = () => {
      connect().catch((error: Error) => {
        if (stopped) return;
        handlers.lost(error);
        retry = setTimeout(reconnect, RELISTEN_DELAY_MS);
      });
    };
    await connect();
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(retry);
        await Promise.all([...opened].map((c) => c.end().catch(() => {})));
      },
      replace: () => {
        if (stopped) return;
        const old = client;
        client = undefined;
        if (old) abandon(old);
        clearTimeout(retry);
        reconnect();
      },
    };
  };
}

function statePool(url: string, options: OpenOptions): pg.Pool {
  // Bounded waits: a database that is down or hangs is a prompt 503, never a request left hanging.
  const pool = new StatePool({
    connectionString: url,
    max: options.poolMax ?? 10,
    Client: StateClient,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    query_timeout: options.queryTimeoutMs ?? 30_000,
    keepAlive: true,
  });
  pool.on('error', (error) => options.onPoolError?.(error));
  return pool;
}

export async function openDatabase(options: OpenOptions): Promise<Database> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  // On DATABASE_URL too: an earlier version kept its Postgres stores in PGlite under the data dir.
  const legacy = legacyPart(options.dataDir);
  if (legacy) throw new LegacyDataDirError(options.dataDir, legacy);
  if (options.databaseUrl) {
    const pool = statePool(options.databaseUrl, options);
    const db = new PoolDatabase(
      'postgres',
      pool,
      listenOnPostgres(options.databaseUrl, connectTimeoutMs),
      undefined,
      options.preparedStatements,
    );
    try {
      await db.query('SELECT 1');
    } catch (error) {
      await pool.end().catch(() => {});
      throw new Error(`Cannot connect to DATABASE_URL: ${(error as Error).message}`);
    }
    return db;
  }

  // The embedded default: a PostgreSQL server of this process's own in the data dir, which one
  // process at a time holds locked (two supervisors of one cluster would fight over it).
  const lock = await lockDataDir(options.dataDir);
  let server: PostgresServer | undefined;
  try {
    server = await PostgresServer.start({ dataDir: options.dataDir, port: options.embeddedPort, log: options.log });
    await server.ensureDatabase(STATE_DATABASE);
    const url = server.url(STATE_DATABASE);
    const pool = statePool(url, options);
    const running = server;
    return new PoolDatabase(
      'embedded',
      pool,
      listenOnPostgres(url, connectTimeoutMs),
      {
        adminUrl: server.url('postgres'),
        onClose: async () => {
          await running.stop();
          await lock.release();
        },
      },
      options.preparedStatements,
    );
  } catch (error) {
    await server?.stop().catch(() => {});
    await lock.release();
    throw error;
  }
}
