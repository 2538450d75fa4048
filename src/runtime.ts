import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { Catalog } from './catalog/catalog.ts';
import { loadCatalogFile } from './catalog/catalog-file.ts';
import { syncCatalog } from './catalog/catalog-sync.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase } from './db/open.ts';
import { bootstrap, type Bootstrapped } from './tenancy/bootstrap.ts';

/** Everything a running Storehouse holds: its state and the catalog it sells. */
export interface Runtime {
  config: Config;
  db: Database;
  catalog: Catalog;
  /** Set on the start that bootstrapped empty state. */
  bootstrapped: Bootstrapped | undefined;
  close(): Promise<void>;
}

export const adminTokenPath = (dataDir: string) => path.join(dataDir, 'admin-token');

/** Opens the database named by the configuration (locking the data dir when embedded). */
export function openConfiguredDatabase(config: Config, logger?: Logger): Promise<Database> {
  return openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    onPoolError: (error) => logger?.error({ err: error }, 'database connection error'),
  });
}

/**
 * Validates the catalog file before touching any state, then opens the database, migrates it,
 * syncs the catalog into it and bootstraps empty state. A bad catalog file stops start-up here.
 */
export async function openRuntime(config: Config, logger?: Logger): Promise<Runtime> {
  const catalogFile = loadCatalogFile(config.catalogPath);
  const db = await openConfiguredDatabase(config, logger);
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger?.info({ migrations: applied }, 'applied migrations');
    const sync = await syncCatalog(db, catalogFile);
    logger?.info({ catalog: config.catalogPath, ...sync }, 'catalog synced');
    const catalog = await Catalog.load(db);
    const bootstrapped = await bootstrap(db, catalog, config.bootstrapToken);
    if (bootstrapped) {
      fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(adminTokenPath(config.dataDir), `${bootstrapped.token}\n`, { mode: 0o600 });
      logger?.info({ team: bootstrapped.team.slug, installations: bootstrapped.installations }, 'bootstrapped empty state');
    }
    return { config, db, catalog, bootstrapped, close: () => db.close() };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
