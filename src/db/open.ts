import path from 'node:path';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import { PoolDatabase, type Database } from './database.ts';
import { lockDataDir } from './lock.ts';

export interface OpenOptions {
  /** A PostgreSQL connection string; without one the embedded database in `dataDir` is opened. */
  databaseUrl?: string | undefined;
  dataDir: string;
  poolMax?: number;
  onPoolError?: (error: Error) => void;
}

/** Where the embedded PostgreSQL cluster lives inside the data directory. */
export const embeddedClusterDir = (dataDir: string) => path.join(dataDir, 'pgdata');

/**
 * Small buffers keep an idle embedded server well under the memory budget; Storehouse's own
 * state is small and hot rows stay in the OS page cache anyway.
 */
export const EMBEDDED_POSTGRES_CONF = ['shared_buffers=16MB', 'work_mem=2MB', 'maintenance_work_mem=16MB'];

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolMax ?? 10 });
    pool.on('error', (error) => options.onPoolError?.(error));
    const db = new PoolDatabase('postgres', pool);
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
    const pglite = new PGlite(embeddedClusterDir(options.dataDir), { postgresqlconf: EMBEDDED_POSTGRES_CONF });
    await pglite.waitReady;
    const pool = new pg.Pool(createPgConfig(pglite));
    pool.on('error', (error) => options.onPoolError?.(error));
    return new PoolDatabase('embedded', pool, async () => {
      await pglite.close();
      await lock.release();
    });
  } catch (error) {
    await lock.release();
    throw error;
  }
}
