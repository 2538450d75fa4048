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
import { secureDataDir } from './data-dir.ts';
import { bootstrap, type Bootstrapped } from './tenancy/bootstrap.ts';
import type { AdminContext } from './admin/commands.ts';
import { serveControlSocket } from './admin/control-socket.ts';
import { ANYTHING, ChangeFeed } from './db/change-feed.ts';
import { AppError } from './errors.ts';
import { Access } from './tenancy/access.ts';
import { DashboardSessions, dashboardLinkUrl } from './tenancy/dashboard-sessions.ts';
import { Providers } from './providers/registry.ts';
import { RedisServer, RedisServerError } from './providers/redis-server.ts';
import { SecretBox } from './secrets/secret-box.ts';
import { resealLegacySecrets } from './secrets/reseal.ts';
import { STOREHOUSE_SEALED_COLUMNS } from './secrets/sealed-columns.ts';
import { SigningKeys } from './partners/signing-keys.ts';
import { ssoCodeSweep as sweepSsoCodes } from './partners/sso.ts';
import { MarketplaceApi } from './partners/marketplace-api.ts';
import { Discovery } from './marketplace/discovery.ts';
import { ProjectEnv } from './projects/projects.ts';
import { StoreConnections } from './stores/connections.ts';
import { StoreService } from './stores/store-service.ts';
import { StoreSecrets } from './stores/store-secrets.ts';
import { NodeLease } from './db/node-lease.ts';
import { StoreUpdates } from './stores/store-updates.ts';
import { type HealthChecks, startHealthChecks } from './health/dependencies.ts';
import { Invoices } from './billing/invoices.ts';
import { InvoiceCharges } from './billing/invoice-charges.ts';
import { BillingHistory } from './billing/billing-history.ts';
import { WebhookDispatcher } from './webhooks/delivery.ts';
import type { Schedule } from './stores/schedule.ts';
import { callableUrl } from './http/listen-address.ts';

/** Everything a running Storehouse holds: its state and the catalog it sells. */
export interface Runtime {
  config: Config;
  db: Database;
  /** Replaced when another node syncs a changed catalog file. */
  catalog: Catalog;
  feed: ChangeFeed;
  access: Access;
  /** The web dashboard's sign-ins: sessions and one-time link codes. */
  dashboardSessions: DashboardSessions;
  /** The providers that serve the catalog's products. */
  providers: Providers;
  discovery: Discovery;
  stores: StoreService;
  /** Changes to stores after their create: name, metadata, plan. */
  storeUpdates: StoreUpdates;
  connections: StoreConnections;
  /** Stores' secrets read back (Storehouse's own API, for the dashboard). */
  storeSecrets: StoreSecrets;
  projectEnv: ProjectEnv;
  /** The API partner servers call back. */
  marketplace: MarketplaceApi;
  /** Partners' invoices, charged by this node's housekeeping (src/billing/invoice-charges.ts). */
  invoices: Invoices;
  /** Partners' billing data and balances, kept as a history; balance thresholds' top-ups. */
  billingHistory: BillingHistory;
  /** The keys partner calls are signed with. */
  keys: SigningKeys;
  /** The same, as the CLI's commands reach them. */
  signingKeys(): SigningKeys;
  /** Where partners reach this Storehouse, and the issuer of its tokens. */
  urls: PublicUrls;
  /** Reads the catalog from the database again (another node may have synced a new one). */
  reloadCatalog(): Promise<Catalog>;
  /** Set on the start that bootstrapped empty state. */
  bootstrapped: FirstStart | undefined;
  /** What this node can reach, probed in the background: what /healthz answers. */
  health: HealthChecks;
  /** This node's sender of webhook events (src/webhooks/). */
  webhooks: WebhookDispatcher;
  /** The housekeeping that deletes spent SSO codes (src/partners/sso.ts); `wake()` sweeps now. */
  ssoCodeSweep: Schedule;
  close(): Promise<void>;
}

/**
 * Storehouse's public base URL (partners call it back there and fetch its JWKS) and its tokens'
 * issuer: configured, or else the address the server listens on, learned once it listens.
 */
export class PublicUrls {
  private listening: string | undefined;

  constructor(private readonly config: Config) {}

  /** Called once the server listens, with the address it listens on. */
  listeningOn(url: string): void {
    this.listening = url;
  }

  publicUrl(): string {
    return this.config.publicUrl ?? this.listening ?? `http://${this.config.host}:${this.config.port}`;
  }

  issuer(): string {
    return this.config.oidcIssuer ?? this.publicUrl();
  }
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

/** What the first start made, and the owner's one-time dashboard sign-in link (its address is known once the server listens). */
export type FirstStart = Bootstrapped & { dashboardLink?: () => string };

/**
 * The operator's one look at a bootstrap token: its value on an interactive terminal; only the
 * file it is saved in otherwise, since a service's stderr ends up in its logs. '' when nothing
 * was bootstrapped.
 */
export function bootstrapNotice(config: Config, bootstrapped: FirstStart | undefined, interactive = Boolean(process.stderr.isTTY)): string {
  if (!bootstrapped) return '';
  // The link is printed even where the token is not: its code works once, for a short while
  // (STOREHOUSE_DASHBOARD_LINK_MINUTES), so a copy left in a log is worthless once it is used.
  const link = bootstrapped.dashboardLink
    ? `Sign in to the dashboard (once, within ${Math.round(config.dashboardLinkTtlMs / 60_000)} minutes; \`storehouse dashboard-link\` makes another):\n\n    ${bootstrapped.dashboardLink()}\n\n`
    : '';
  const value = config.bootstrapToken
    ? ' (the value of STOREHOUSE_BOOTSTRAP_TOKEN).\n'
    : interactive
      ? `:\n\n    ${bootstrapped.token}\n\n`
      : '.\n';
  return `\nStorehouse bootstrapped team "${bootstrapped.team.slug}" with an owner token${value}It is saved in ${adminTokenPath(config.dataDir)} (mode 0600).\n\n${link}`;
}

/** Writes the token file whole and 0600 from its first byte, whatever was there before. */
function saveAdminToken(dataDir: string, token: string) {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = adminTokenPath(dataDir);
  const scratch = `${file}.${process.pid}`;
  fs.writeFileSync(scratch, `${token}\n`, { mode: 0o600, flag: 'w' });
  fs.chmodSync(scratch, 0o600);
  fs.renameSync(scratch, file);
}

const CATALOG_TABLES = new Set(['integrations', 'products', 'billing_plans']);

/**
 * When a node syncs a changed catalog file, every other node picks it up from the database; so
 * does a node that was deaf to changes for a while (`*`: anything may have changed).
 */
function reloadCatalogOnChange(runtime: Runtime, logger?: Logger) {
  runtime.feed.onChange((table) => {
    // Another node rotated the signing key: sign with the new one from now on.
    if (table === ANYTHING || table === 'signing_keys') runtime.keys.invalidate();
    if (table === ANYTHING || (table !== undefined && CATALOG_TABLES.has(table))) {
      runtime.reloadCatalog().catch((error) => logger?.error({ err: error }, 'cannot reload the catalog'));
    }
  });
}

/**
 * Opens the database named by the configuration (locking the data dir when embedded). The data
 * dir is made owner-only first, and refused when it cannot be (src/data-dir.ts): this is the
 * first use of it on every path, the server's start, the CLI's admin commands and its migrate.
 */
export async function openConfiguredDatabase(config: Config, logger?: Logger): Promise<Database> {
  secureDataDir(config.dataDir, { warn: (message) => logger?.warn(message) });
  return openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: config.dbPoolMax,
    preparedStatements: config.dbPreparedStatements,
    connectTimeoutMs: config.dbConnectTimeoutMs,
    queryTimeoutMs: config.dbQueryTimeoutMs,
    onPoolError: (error) => logger?.error({ err: error }, 'database connection error'),
    embeddedPort: config.embeddedPostgresPort,
    log: logger,
  });
}

/**
 * Stores an earlier Storehouse kept in PGlite clusters (provider `postgres-embedded`, in some
 * node's data dir) cannot be served or deleted any more: a start on state that has live ones is
 * refused, naming them, rather than list them `available` with URLs nobody answers.
 */
async function refuseLegacyStores(db: Database): Promise<void> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT id FROM provider_resources WHERE provider = 'postgres-embedded' AND state <> 'deleted' ORDER BY id LIMIT 5",
  );
  if (rows.length === 0) return;
  throw new Error(
    `this state holds Postgres stores an earlier Storehouse kept in PGlite (${rows.map((row) => row.id).join(', ')}${rows.length === 5 ? ', ...' : ''}), ` +
      'which this version cannot serve or delete. Copy their data out with the earlier version (git checkout acf52b9: pg_dump each store ' +
      "against its POSTGRES_URL), delete them there, then start this one; or mark them gone: UPDATE provider_resources SET state = 'deleted' " +
      "WHERE provider = 'postgres-embedded', and delete their stores through the API.",
  );
}

/**
 * On the embedded default without STOREHOUSE_REDIS_ADMIN_URL: the redis-server Storehouse runs
 * itself for Redis stores (src/providers/redis-server.ts), when one is on PATH; else why there is
 * none, which a create on a Redis product answers with (503). Nothing on DATABASE_URL: several
 * nodes share their stores, so each must not start a Redis of its own.
 */
async function startEmbeddedRedis(
  config: Config,
  db: Database,
  logger?: Logger,
): Promise<{ server: RedisServer } | { unavailable: string } | undefined> {
  if (config.redisAdminUrl || db.kind !== 'embedded') return undefined;
  try {
    return { server: await RedisServer.start({ dataDir: config.dataDir, port: config.embeddedRedisPort, log: logger }) };
  } catch (error) {
    if (!(error instanceof RedisServerError)) throw error;
    if (error.reason === 'not_found') logger?.info({ reason: error.message }, 'Redis stores are unavailable');
    else logger?.error({ err: error }, 'cannot start the embedded redis-server: Redis stores are unavailable');
    return { unavailable: error.message };
  }
}

/** Validates the catalog file and syncs it in, unless exactly this file was already validated and synced. */
async function syncCatalogFile(db: Database, file: string, source: string, box: SecretBox, logger?: Logger): Promise<void> {
  const fingerprint = catalogFingerprint(source);
  if ((await syncedFingerprint(db)) === fingerprint) {
    logger?.info({ catalog: file }, 'catalog unchanged since it was last synced');
    return;
  }
  const { unchanged, ...sync } = await syncCatalog(db, loadCatalogFile(file, source), { file, fingerprint }, box);
  if (unchanged) logger?.info({ catalog: file }, 'catalog synced by another node meanwhile');
  else logger?.info({ catalog: file, ...sync }, 'catalog synced');
}

/**
 * What the CLI's admin commands work on: the state as the servers left it (migrated, never a
 * catalog file of the CLI's own synced over theirs), and nothing a server needs besides.
 */
export async function openAdminContext(config: Config): Promise<AdminContext & { close(): Promise<void> }> {
  const db = await openConfiguredDatabase(config);
  try {
    await migrate(db);
    if ((await syncedFingerprint(db)) === undefined) {
      throw new AppError(
        409,
        'not_started',
        'Storehouse has not been started on this state yet: start the server once (npm start) to set it up',
      );
    }
    let keys: SigningKeys | undefined;
    const signingKeys = () => (keys ??= new SigningKeys(db, SecretBox.load(config.secretKey, config.dataDir)));
    // Outside a server the dashboard's links point where the configuration says it listens.
    const urls = new PublicUrls(config);
    urls.listeningOn(callableUrl({ address: config.host, port: config.port }));
    return { db, catalog: await Catalog.load(db), signingKeys, config, urls, close: () => db.close() };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

/**
 * A server's start: opens the database, migrates it, syncs the catalog file and bootstraps empty
 * state; a bad catalog file stops it here, before anything is bootstrapped.
 */
export async function openRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const { logger } = options;
  const source = readCatalogSource(config.catalogPath); // an unreadable file stops start-up before the lock
  const db = await openConfiguredDatabase(config, logger);
  // The embedded redis-server starts meanwhile (the data dir is locked now): its own process,
  // waited for while this one migrates and loads its state. Handled here, awaited below.
  const redisStarting = startEmbeddedRedis(config, db, logger);
  redisStarting.catch(() => {});
  let embeddedRedis: Awaited<ReturnType<typeof startEmbeddedRedis>>;
  try {
    const applied = await migrate(db);
    if (applied.length > 0) logger?.info({ migrations: applied }, 'applied migrations');
    await refuseLegacyStores(db);
    // Before the catalog's sync, which seals the client secrets webhooks are signed with.
    const box = SecretBox.load(config.secretKey, config.dataDir, { logger });
    await syncCatalogFile(db, config.catalogPath, source, box, logger);
    const catalog = await Catalog.load(db);
    const bootstrapped = await bootstrap(db, catalog, config.bootstrapToken);
    if (bootstrapped) {
      saveAdminToken(config.dataDir, bootstrapped.token);
      logger?.info({ team: bootstrapped.team.slug, installations: bootstrapped.installations }, 'bootstrapped empty state');
    }
    const { feed, stop: stopFeed } = await ChangeFeed.start(db, {
      heartbeatMs: config.changeHeartbeatMs,
      onError: (error) => logger?.warn({ err: error }, 'lost the change notifications; serving from the database until they are back'),
      logger,
    });
    const access = new Access(db, feed);
    await resealLegacySecrets(db, box, STOREHOUSE_SEALED_COLUMNS, logger); // v1 values become v2 (src/secrets/reseal.ts)
    const keys = new SigningKeys(db, box);
    const urls = new PublicUrls(config);
    const dashboardSessions = new DashboardSessions(db, { idleMs: config.dashboardSessionIdleMs, linkTtlMs: config.dashboardLinkTtlMs });
    let firstStart: FirstStart | undefined = bootstrapped;
    if (bootstrapped) {
      const { code } = await dashboardSessions.createLinkCode(bootstrapped.user.id, bootstrapped.team.id);
      firstStart = { ...bootstrapped, dashboardLink: () => dashboardLinkUrl(urls.publicUrl(), code) };
    }
    embeddedRedis = await redisStarting;
    const providers = Providers.create(config, db, box, {
      embeddedRedis: embeddedRedis && ('server' in embeddedRedis ? { adminUrl: embeddedRedis.server.adminUrl } : embeddedRedis),
      onError: (error) => logger?.warn({ err: error }, 'provider connection error'),
      logger,
      partners: {
        keys,
        issuer: () => urls.issuer(),
        publicUrl: () => urls.publicUrl(),
        integration: (id) => runtime.catalog.integrationById(id),
      },
    });
    // The providers' start-up checks run in the background: the API serves at once, and what
    // they find is logged. Closing waits for them, so nothing is left half-open.
    const providersStarted = providers.start().catch((error) => logger?.error({ err: error }, 'a provider could not start'));
    const closers: Array<() => Promise<void>> = [
      () => access.close(),
      async () => {
        await providersStarted.then(() => providers.close());
        if (embeddedRedis && 'server' in embeddedRedis) await embeddedRedis.server.stop();
      },
      stopFeed,
    ];
    const catalogs = { current: () => runtime.catalog, reload: () => runtime.reloadCatalog() };
    const discovery = new Discovery(db, catalogs, feed, providers);
    // This node's lease on its work under way; on the embedded database, which one process holds
    // locked, every other lease is an earlier run's, and its work is taken over at once.
    const lease = new NodeLease(db, {
      leaseMs: config.leaseMs,
      onError: (error) => logger?.warn({ err: error }, 'cannot renew the node lease'),
    });
    await lease.start({ alone: db.kind === 'embedded' });
    closers.push(() => lease.stop());
    const stores = new StoreService(db, catalogs.current, discovery, providers, box, {
      lease,
      defaultStoreQuota: config.teamStoreQuota,
      provisionTimeoutMs: config.provisionTimeoutMs,
      pendingTimeoutMs: config.pendingTimeoutMs,
      feed,
      logger,
    });
    const storeUpdates = new StoreUpdates(db, catalogs.current, discovery, providers, stores, {
      callTimeoutMs: config.provisionTimeoutMs,
      lease,
      logger,
    });
    const connections = new StoreConnections(db, box);
    const health = startHealthChecks(
      { db, rateLimitRedisUrl: config.redisUrl, providers, catalog: catalogs.current },
      { intervalMs: config.healthIntervalMs, timeoutMs: config.healthTimeoutMs, log: logger },
    );
    closers.unshift(() => health.stop());
    const invoiceCharges = new InvoiceCharges(db, {
      lease,
      retries: config.invoiceRetries,
      retryIntervalMs: config.invoiceRetryIntervalMs,
    });
    const webhooks = new WebhookDispatcher(db, box, lease, config.webhooks, logger);
    const ssoCodeSweep = sweepSsoCodes(db, (error) => logger?.warn({ err: error }, 'cannot delete spent SSO codes; retrying later'));
    const runtime: Runtime = {
      config,
      db,
      catalog,
      feed,
      access,
      dashboardSessions,
      providers,
      discovery,
      stores,
      storeUpdates,
      connections,
      marketplace: new MarketplaceApi(db, box, stores, connections, urls, catalogs.current, feed),
      invoices: new Invoices(db, catalogs.current, invoiceCharges),
      billingHistory: new BillingHistory(db),
      projectEnv: new ProjectEnv(db, box),
      storeSecrets: new StoreSecrets(db, box),
      keys,
      signingKeys: () => keys,
      urls,
      bootstrapped: firstStart,
      health,
      webhooks,
      ssoCodeSweep,
      reloadCatalog: async () => (runtime.catalog = await Catalog.load(db)),
      close: async () => {
        for (const close of closers) await close();
        await db.close();
      },
    };
    reloadCatalogOnChange(runtime, logger);
    const housekeepingFailed = (error: Error) => logger?.warn({ err: error }, 'store housekeeping failed; retrying later');
    closers.unshift(stores.startHousekeeping(housekeepingFailed), storeUpdates.startHousekeeping(housekeepingFailed));
    // Stopped before the lease its claims are recorded under, and the database.
    closers.unshift(invoiceCharges.startHousekeeping((error) => logger?.warn({ err: error }, 'invoice charging failed; retrying later')));
    ssoCodeSweep.start(2_000);
    closers.unshift(() => ssoCodeSweep.stop());
    // Stopped before the lease it claims events under, and the database.
    closers.unshift(await webhooks.start());
    if (options.controlSocket && db.kind === 'embedded') {
      closers.unshift(await serveControlSocket(config.dataDir, runtime, logger));
    }
    return runtime;
  } catch (error) {
    const redis = embeddedRedis ?? (await redisStarting.catch(() => undefined));
    if (redis && 'server' in redis) await redis.server.stop().catch(() => {});
    await db.close().catch(() => {});
    throw error;
  }
}
