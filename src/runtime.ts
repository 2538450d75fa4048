import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { Catalog } from './catalog/catalog.ts';
import { catalogFingerprint, loadCatalogFile, readCatalogSource } from './catalog/catalog-file.ts';
import { syncCatalog, syncedFingerprint } from './catalog/catalog-sync.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase } from './db/open.ts';
import { bootstrap, type Bootstrapped } from './tenancy/bootstrap.ts';
import { serveControlSocket } from './admin/control-socket.ts';
import { ChangeFeed } from './db/change-feed.ts';
import { Access } from './tenancy/access.ts';

/** Everything a running Storehouse holds: its state and the catalog it sells. */
export interface Runtime {
  config: Config;
  db: Database;
  /** Replaced when another node syncs a changed catalog file. */
  catalog: Catalog;
  feed: ChangeFeed;
  access: Access;
  /** Set on the start that bootstrapped empty state. */
  bootstrapped: Bootstrapped | undefined;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  logger?: Logger | undefined;
  /**
   * On the embedded database, serve the control socket through which the CLI reaches this
   * process (it holds the data dir's lock, so the CLI cannot open the database itself).
   */
  controlSocket?: boolean;
}

export const adminTokenPath = (dataDir: string) => path.join(dataDir, 'admin-token');

/** The operator's one look at a bootstrap token (a console message, never a log line), or '' when nothing was bootstrapped. */
export function bootstrapNotice(config: Config, bootstrapped: Bootstrapped | undefined): string {
  if (!bootstrapped) return '';
  return (
    `\nStorehouse bootstrapped team "${bootstrapped.team.slug}" with an owner token` +
    (config.bootstrapToken ? ' (the value of STOREHOUSE_BOOTSTRAP_TOKEN).\n' : `:\n\n    ${bootstrapped.token}\n\n`) +
    `It is saved in ${adminTokenPath(config.dataDir)} (mode 0600).\n\n`
  );
}

const CATALOG_TABLES = new Set(['integrations', 'products', 'billing_plans']);

/** When a node syncs a changed catalog file, every other node picks it up from the database. */
function reloadCatalogOnChange(runtime: Runtime, logger?: Logger) {
  let reloading = Promise.resolve();
  runtime.feed.onChange((table) => {
    if (table === undefined || !CATALOG_TABLES.has(table)) return;
    reloading = reloading
      .then(async () => {
        runtime.catalog = await Catalog.load(runtime.db);
      })
      .catch((error) => logger?.error({ err: error }, 'cannot reload the catalog'));
  });
}

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
 * Opens the database, migrates it, validates the catalog file and syncs it in (unless exactly
 * this file was already validated and synced), and bootstraps empty state. A bad catalog file
 * stops start-up here, before anything is bootstrapped.
 */
export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const { logger } = options;
  const source = readCatalogSource(config.catalogPath);
  const fingerprint = catalogFingerprint(source);
  const db = await openConfiguredDatabase(config, logger);
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger?.info({ migrations: applied }, 'applied migrations');
    if ((await syncedFingerprint(db)) === fingerprint) {
      logger?.info({ catalog: config.catalogPath }, 'catalog unchanged since it was last synced');
    } else {
      const catalogFile = loadCatalogFile(config.catalogPath, source);
      const sync = await syncCatalog(db, catalogFile, { file: config.catalogPath, fingerprint });
      logger?.info({ catalog: config.catalogPath, ...sync }, 'catalog synced');
    }
    const catalog = await Catalog.load(db);
    const bootstrapped = await bootstrap(db, catalog, config.bootstrapToken);
    if (bootstrapped) {
      fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(adminTokenPath(config.dataDir), `${bootstrapped.token}\n`, { mode: 0o600 });
      logger?.info({ team: bootstrapped.team.slug, installations: bootstrapped.installations }, 'bootstrapped empty state');
    }
    const { feed, stop: stopFeed } = await ChangeFeed.start(db, (error) =>
      logger?.warn({ err: error }, 'lost the change notifications; serving from the database until they are back'),
    );
    const access = new Access(db, feed);
    const closers: Array<() => Promise<void>> = [() => access.close(), stopFeed];
    const runtime: Runtime = {
      config,
      db,
      catalog,
      feed,
      access,
      bootstrapped,
      close: async () => {
        for (const close of closers) await close();
        await db.close();
      },
    };
    reloadCatalogOnChange(runtime, logger);
    if (options.controlSocket && db.kind === 'embedded') {
      closers.unshift(await serveControlSocket(config.dataDir, runtime, logger));
    }
    return runtime;
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
