import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import { PoolDatabase, type Database, type Listen } from './database.ts';
import { lockDataDir } from './lock.ts';
import { makeOwnerOnly, ownerOnlyFromNowOn } from '../data-dir.ts';
import { markDatabaseError } from './unavailable.ts';

export interface OpenOptions {
  /** A PostgreSQL connection string; without one the embedded database in `dataDir` is opened. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolMax?: number;
  /** On PostgreSQL: how long a new connection may take (pg-pool's connectionTimeoutMillis; also a wait for a free one). */
  connectTimeoutMs?: number;
  /** On PostgreSQL: how long a statement may go unanswered before it fails (node-postgres' query_timeout). */
  queryTimeoutMs?: number;
  onPoolError?: (error: Error) => void;
}

/** Where the embedded PostgreSQL cluster lives inside the data directory. */
export const embeddedClusterDir = (dataDir: string) => path.join(dataDir, 'pgdata');

/**
 * Small buffers keep an idle embedded server well under the memory budget; Storehouse's own
 * state is small and hot rows stay in the OS page cache anyway.
 */
export const EMBEDDED_POSTGRES_CONF = ['shared_buffers=4MB', 'work_mem=2MB', 'maintenance_work_mem=16MB'];

/**
 * Creates the embedded cluster (initdb) when the data dir has none. initdb in PGlite leaves
 * ~500 MB of WebAssembly memory that is never returned, so it runs in a worker thread whose
 * memory goes when it exits; it builds in a scratch directory renamed into place, so a start
 * interrupted mid-initdb never leaves a half-made cluster behind. The caller holds the lock.
 */
export async function ensureCluster(clusterDir: string): Promise<void> {
  if (fs.existsSync(path.join(clusterDir, 'PG_VERSION'))) return;
  if (fs.existsSync(clusterDir) && fs.readdirSync(clusterDir).length > 0) {
    throw new Error(
      `${clusterDir} holds files but no PostgreSQL cluster (no PG_VERSION): refusing to touch it. ` +
        'Restore it completely, or move it away to start with empty state.',
    );
  }
  const scratch = `${clusterDir}.initdb`;
  fs.rmSync(scratch, { recursive: true, force: true });
  const pglite = import.meta.resolve('@electric-sql/pglite');
  const code = `
    const { PGlite } = await import(${JSON.stringify(pglite)});
    const db = new PGlite(${JSON.stringify(scratch)}, { postgresqlconf: ${JSON.stringify(EMBEDDED_POSTGRES_CONF)} });
    await db.waitReady;
    await db.close();`;
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(code, { eval: true, execArgv: [] });
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb of the embedded database exited with code ${code}`))));
  });
  // initdb writes the cluster's files 0666 whatever the umask; the state in it is for this user only.
  makeOwnerOnly(scratch);
  fs.rmSync(clusterDir, { recursive: true, force: true }); // an empty directory at most, checked above
  fs.renameSync(scratch, clusterDir);
}

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

const isReadTimeout = (error: unknown) => (error as Error | undefined)?.message === 'Query read timeout';

/**
 * A PostgreSQL connection of the state pool. A statement that went unanswered past
 * query_timeout leaves node-postgres waiting on it for ever (every later statement queues
 * behind it), so the connection is dropped: the pool then replaces it instead of lending out a
 * dead one. Its errors are marked as the state database's.
 */
class StateClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // A checked-out connection that breaks emits 'error' (its statements fail with it anyway);
    // with no listener that event would kill the process. The pool listens on idle ones itself.
    this.on('error', () => {});
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
        (last as (e: unknown, r: unknown) => void)(markDatabaseError(error), result);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      this.dropOnTimeout(error);
      return Promise.reject(markDatabaseError(error));
    });
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

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) {
    const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    // Bounded waits: a database that is down or hangs is a prompt 503, never a request left hanging.
    const pool = new StatePool({
      connectionString: options.databaseUrl,
      max: options.poolMax ?? 10,
      Client: StateClient,
      connectionTimeoutMillis: connectTimeoutMs,
      query_timeout: options.queryTimeoutMs ?? 30_000,
      keepAlive: true,
    });
    pool.on('error', (error) => options.onPoolError?.(error));
    const db = new PoolDatabase('postgres', pool, listenOnPostgres(options.databaseUrl, connectTimeoutMs));
    try {
      await db.query('SELECT 1');
    } catch (error) {
      await pool.end().catch(() => {});
      throw new Error(`Cannot connect to DATABASE_URL: ${(error as Error).message}`);
    }
    return db;
  }

  const lock = await lockDataDir(options.dataDir);
  try {
    await ensureCluster(embeddedClusterDir(options.dataDir));
    const pglite = new PGlite(embeddedClusterDir(options.dataDir), { postgresqlconf: EMBEDDED_POSTGRES_CONF });
    await pglite.waitReady;
    ownerOnlyFromNowOn(pglite, embeddedClusterDir(options.dataDir));
    // No timeouts in process: PGlite cannot be unreachable, and its one connection is not replaceable.
    const pool = new StatePool(createPgConfig(pglite));
    pool.on('error', (error) => options.onPoolError?.(error));
    // One process owns the embedded database, and PGlite hands it notifications directly.
    const listen: Listen = async (channel, handlers) => {
      const unlisten = await pglite.listen(channel, handlers.message);
      handlers.ready();
      return { stop: () => unlisten(), replace: () => {} };
    };
    return new PoolDatabase('embedded', pool, listen, async () => {
      await pglite.close();
      await lock.release();
    });
  } catch (error) {
    await lock.release();
    throw error;
  }
}
