import { isIP } from 'node:net';
import path from 'node:path';
import { DEFAULT_MAX_BODY_BYTES } from './outbound/outbound-http.ts';
import { packagePath } from './package-root.ts';

/** The catalog shipped with Storehouse, used when STOREHOUSE_CATALOG is not set. */
export const DEFAULT_CATALOG_PATH = packagePath('catalog', 'default.yaml');

export interface Config {
  host: string;
  port: number;
  /** Directory for the embedded database, the data-dir lock and the admin token file. */
  dataDir: string;
  /** A PostgreSQL connection string; when absent Storehouse runs a PostgreSQL server of its own in the data dir. */
  databaseUrl: string | undefined;
  /** The port of the embedded default's PostgreSQL server; else the one picked at its first start. */
  embeddedPostgresPort: number | undefined;
  /** The port of the embedded default's redis-server; else the one picked at its first start. */
  embeddedRedisPort: number | undefined;
  /** Connections in the state database's pool. */
  dbPoolMax: number;
  /** Whether statements used often go as named prepared statements (off behind a pooler in transaction mode). */
  dbPreparedStatements: boolean;
  /** How long opening a connection (or waiting for a free one) may take before the request is a 503. */
  dbConnectTimeoutMs: number;
  /** How long one statement may go unanswered before it fails (and the request is a 503). */
  dbQueryTimeoutMs: number;
  /** How long a client may take to send a whole request (headers and body) before it gets a 408. */
  httpRequestTimeoutMs: number;
  /** How long a client may take to send a request's headers before it gets a 408. */
  httpHeadersTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  httpKeepAliveTimeoutMs: number;
  catalogPath: string;
  /** When set, the first start on empty state gives the bootstrap owner token this value. */
  bootstrapToken: string | undefined;
  logLevel: string;
  /** How long SIGTERM/SIGINT waits for in-flight requests before closing anyway. */
  shutdownTimeoutMs: number;
  /** On PostgreSQL: how often a node checks it still hears change notifications, and how long it waits. */
  changeHeartbeatMs: number;
  /** Key sealing secrets at rest (32 bytes, base64 or hex); generated into the data dir when absent. */
  secretKey: string | undefined;
  /** The Postgres provider's admin connection: a role with CREATEROLE and CREATEDB. */
  postgresAdminUrl: string | undefined;
  /** Whether the Postgres provider revokes PUBLIC's CONNECT on the admin server's other databases (else it says what to run). */
  postgresRevokePublicConnect: boolean;
  /** The Redis provider's admin connection: a user allowed ACL, SCAN and UNLINK. */
  redisAdminUrl: string | undefined;
  /** The most stores a team may hold, unless an operator gave the team a quota of its own. */
  teamStoreQuota: number;
  /** How long a provider may take to provision a store before the create fails (503). */
  provisionTimeoutMs: number;
  /** How long a node's lease on its work under way lasts unrenewed: a dead node's work is taken over this soon. */
  leaseMs: number;
  /** Requests per token per minute (0: no limit). */
  rateLimitRequests: number;
  /** Store creates per team per minute (0: no limit). */
  rateLimitStoreCreates: number;
  /** The marketplace API's calls per installation per minute, by route limit (0: no limit); see MARKETPLACE_RATE_LIMITS. */
  marketplaceRateLimits: Record<MarketplaceRateLimit, number>;
  /** Store changes (PATCH) per team per minute. */
  rateLimitStoreUpdates: number;
  /** How long one call to a partner server may take before it is retried. */
  partnerTimeoutMs: number;
  /** Retries of a partner call after a network error, a timeout or a 5xx. */
  partnerRetries: number;
  /** The most bytes of an answer Storehouse reads from a server it calls (partner servers); past them the call fails with a 502. */
  outboundMaxBodyBytes: number;
  /** How long a store a partner answered `pending` for may take to become ready before it is marked `error`. */
  pendingTimeoutMs: number;
  /** Storehouse's base URL as partners reach it (callbacks, JWKS); default: the address it listens on. */
  publicUrl: string | undefined;
  /** The `iss` of the tokens Storehouse signs; default: the public URL. */
  oidcIssuer: string | undefined;
  /** How long an SSO code ("Open in provider", src/partners/sso.ts) may wait for the partner's exchange. */
  ssoCodeTtlMs: number;
  /** SSO codes ("Open in provider") one user may ask for per minute (0: no limit); Vercel allows 20. */
  rateLimitSsoOpens: number;
  /** Redis shared by every node for rate-limit counts; counted in process when absent. */
  redisUrl: string | undefined;
  /** How long a rate-limit count may wait on Redis before the node counts in process instead. */
  rateLimitRedisTimeoutMs: number;
  /** After Redis failed a count, how long the node counts in process before it asks Redis again (one probe at a time). */
  rateLimitRedisCooldownMs: number;
  /** Failed authentications per client address per minute before the address gets 429 (0: no limit). */
  authFailureLimit: number;
  /** Whose X-Forwarded-For to believe for the client address (Fastify's `trustProxy`): nobody's by default. */
  trustProxy: boolean | string[];
  /** How often /healthz's dependencies are probed in the background (src/health/dependencies.ts). */
  healthIntervalMs: number;
  /** How long one health probe may take before its dependency counts as unavailable; /healthz waits no longer. */
  healthTimeoutMs: number;
  /** How often a declined invoice is charged again before it is `overdue` (Vercel: up to 9 times). */
  invoiceRetries: number;
  /** How long after a declined charge an invoice is charged again. */
  invoiceRetryIntervalMs: number;
  /** Webhook delivery (src/webhooks/delivery.ts). */
  webhooks: WebhookConfig;
  /** How long a dashboard session lasts after its last use before it is refused (src/tenancy/dashboard-sessions.ts). */
  dashboardSessionIdleMs: number;
  /** How long a one-time dashboard sign-in link (the first start's, `storehouse dashboard-link`'s) can be used. */
  dashboardLinkTtlMs: number;
}

export interface WebhookConfig {
  /** How long one POST to a webhook URL may take before it counts as failed (and is retried). */
  timeoutMs: number;
  /** How long an event is retried after it was recorded (or redelivered) before it is marked failed. */
  retryForMs: number;
  /** The first retry's delay; each next one doubles, up to `backoffMaxMs`, with equal jitter (half fixed, half random: delivery.ts backoffMs). */
  backoffMs: number;
  backoffMaxMs: number;
  /** How often each node looks for due events besides being woken by new ones. */
  pollMs: number;
  /** The most events one node sends at once. */
  concurrency: number;
  /** How long a delivered event (and its attempts) is kept after its delivery, then pruned; failed and pending ones are kept. */
  retentionMs: number;
}

export class ConfigError extends Error {}

/**
 * The marketplace API's limits per installation per minute, as Vercel documents them
 * (docs/partner-api.md §7), and the variables that change them. Importing a resource has a 429 but no
 * documented number: it gets what store updates get.
 */
export const MARKETPLACE_RATE_LIMITS = {
  /** POST /v1/installations/{id}/events */
  'marketplace.events': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_EVENTS', perMinute: 60 },
  /** PUT .../resources/{id}/secrets, and the deprecated path with the product in it */
  'marketplace.secrets': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_SECRETS', perMinute: 20 },
  /** GET /v1/installations/{id}/account */
  'marketplace.account': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_ACCOUNT', perMinute: 60 },
  /** POST /v1/installations/{id}/billing */
  'marketplace.billing': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_BILLING', perMinute: 10 },
  /** GET /v1/installations/{id}/member/{memberId} */
  'marketplace.members': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_MEMBERS', perMinute: 1000 },
  /** PUT /v1/installations/{id}/resources/{resourceId} */
  'marketplace.imports': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_IMPORTS', perMinute: 100 },
  /**
   * POST .../credentials/rotate and .../revoke: Vercel documents no number. Each checks the client
   * secret (a deliberately slow scrypt), so a leaked token must not buy unlimited guesses or CPU.
   */
  'marketplace.credentials': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_CREDENTIALS', perMinute: 10 },
  /** PATCH /v1/installations/{id}: as Vercel's "config updates", 20 a minute. */
  'marketplace.installations': { variable: 'STOREHOUSE_RATE_LIMIT_MARKETPLACE_INSTALLATIONS', perMinute: 20 },
} as const;

export type MarketplaceRateLimit = keyof typeof MARKETPLACE_RATE_LIMITS;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** A port from 1 to 65535 when the variable is set, else undefined. */
function optionalPort(env: NodeJS.ProcessEnv, name: string): number | undefined {
  return nonEmpty(env, name) ? integer(env, name, 0, 1, 65535) : undefined;
}

function nonEmpty(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

function postgresUrl(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const url = nonEmpty(env, name);
  if (url && !/^postgres(ql)?:\/\//.test(url)) throw new ConfigError(`${name} must be a postgres:// or postgresql:// connection string`);
  return url;
}

function redisUrl(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const url = nonEmpty(env, name);
  if (url && !/^rediss?:\/\//.test(url)) throw new ConfigError(`${name} must be a redis:// or rediss:// URL`);
  return url;
}

function httpUrl(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const url = nonEmpty(env, name);
  if (url === undefined) return undefined;
  if (!/^https?:\/\/[^/]+/.test(url) || !URL.canParse(url))
    throw new ConfigError(`${name} must be an http:// or https:// URL, got "${url}"`);
  return url.replace(/\/+$/, '');
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = nonEmpty(env, name)?.trim();
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** proxy-addr's names for address ranges, which Fastify's `trustProxy` accepts besides addresses and CIDRs. */
const PROXY_RANGES = ['loopback', 'linklocal', 'uniquelocal'];

/**
 * Fastify's `trustProxy`: `true` (every hop: only when nothing but the proxy can reach Storehouse),
 * or a comma-separated list of proxy addresses, CIDRs and proxy-addr's range names. Not a number
 * of hops: Fastify trusts no one for a number, since a hop count cannot tell a proxy from a client.
 */
function trustProxy(env: NodeJS.ProcessEnv, name: string): boolean | string[] {
  const raw = nonEmpty(env, name)?.trim();
  if (raw === undefined || raw === 'false') return false;
  if (raw === 'true') return true;
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const prefixOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (!(PROXY_RANGES.includes(entry) || (family !== 0 && prefixOk && extra === undefined))) {
      throw new ConfigError(
        `${name} must be true, false, or a comma-separated list of proxy addresses, CIDRs, ${PROXY_RANGES.join(', ')}; got "${entry}"`,
      );
    }
  }
  return entries;
}

/** Reads the configuration from the environment; every variable is documented in docs/configuration.md. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const databaseUrl = postgresUrl(env, 'DATABASE_URL');
  const bootstrapToken = nonEmpty(env, 'STOREHOUSE_BOOTSTRAP_TOKEN');
  if (bootstrapToken !== undefined && !/^[A-Za-z0-9_\-.]{16,200}$/.test(bootstrapToken)) {
    throw new ConfigError('STOREHOUSE_BOOTSTRAP_TOKEN must be 16 to 200 characters of letters, digits, "_", "-" or "."');
  }
  const httpRequestTimeoutMs = integer(env, 'STOREHOUSE_HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  const httpHeadersTimeoutMs = integer(env, 'STOREHOUSE_HTTP_HEADERS_TIMEOUT_MS', Math.min(10_000, httpRequestTimeoutMs), 100, 3_600_000);
  // Node refuses a headers timeout past the request timeout (the headers are part of the request).
  if (httpHeadersTimeoutMs > httpRequestTimeoutMs) {
    throw new ConfigError(
      `STOREHOUSE_HTTP_HEADERS_TIMEOUT_MS (${httpHeadersTimeoutMs}) must not exceed STOREHOUSE_HTTP_REQUEST_TIMEOUT_MS (${httpRequestTimeoutMs})`,
    );
  }
  return {
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 3000, 0, 65535),
    dataDir: path.resolve(env.STOREHOUSE_DATA_DIR || '.storehouse'),
    databaseUrl,
    embeddedPostgresPort: optionalPort(env, 'STOREHOUSE_EMBEDDED_POSTGRES_PORT'),
    embeddedRedisPort: optionalPort(env, 'STOREHOUSE_EMBEDDED_REDIS_PORT'),
    dbPoolMax: integer(env, 'STOREHOUSE_DB_POOL_MAX', 10, 1, 1000),
    dbPreparedStatements: boolean(env, 'STOREHOUSE_PREPARED_STATEMENTS', true),
    dbConnectTimeoutMs: integer(env, 'STOREHOUSE_DB_CONNECT_TIMEOUT_MS', 5_000, 100, 600_000),
    dbQueryTimeoutMs: integer(env, 'STOREHOUSE_DB_QUERY_TIMEOUT_MS', 30_000, 100, 3_600_000),
    httpRequestTimeoutMs,
    httpHeadersTimeoutMs,
    // Above the usual load balancer's idle timeout (60 s), so the balancer, not Storehouse, closes idle connections.
    httpKeepAliveTimeoutMs: integer(env, 'STOREHOUSE_HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 100, 3_600_000),
    catalogPath: path.resolve(env.STOREHOUSE_CATALOG || DEFAULT_CATALOG_PATH),
    bootstrapToken,
    logLevel,
    shutdownTimeoutMs: integer(env, 'STOREHOUSE_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    changeHeartbeatMs: integer(env, 'STOREHOUSE_CHANGE_HEARTBEAT_MS', 5_000, 100, 600_000),
    secretKey: nonEmpty(env, 'STOREHOUSE_SECRET_KEY'),
    postgresAdminUrl: postgresUrl(env, 'STOREHOUSE_POSTGRES_ADMIN_URL'),
    // Off by default: a server Storehouse is only given may hold other applications, whose roles rely on PUBLIC's CONNECT.
    postgresRevokePublicConnect: boolean(env, 'STOREHOUSE_POSTGRES_REVOKE_PUBLIC_CONNECT', false),
    redisAdminUrl: redisUrl(env, 'STOREHOUSE_REDIS_ADMIN_URL'),
    teamStoreQuota: integer(env, 'STOREHOUSE_TEAM_STORE_QUOTA', 100, 0, 1_000_000),
    provisionTimeoutMs: integer(env, 'STOREHOUSE_PROVISION_TIMEOUT_MS', 60_000, 100, 3_600_000),
    leaseMs: integer(env, 'STOREHOUSE_LEASE_MS', 10_000, 300, 600_000),
    rateLimitRequests: integer(env, 'STOREHOUSE_RATE_LIMIT_REQUESTS', 6_000, 0, 1_000_000_000),
    rateLimitStoreCreates: integer(env, 'STOREHOUSE_RATE_LIMIT_STORE_CREATES', 100, 0, 1_000_000_000),
    marketplaceRateLimits: Object.fromEntries(
      Object.entries(MARKETPLACE_RATE_LIMITS).map(([name, limit]) => [
        name,
        integer(env, limit.variable, limit.perMinute, 0, 1_000_000_000),
      ]),
    ) as Record<MarketplaceRateLimit, number>,
    rateLimitStoreUpdates: integer(env, 'STOREHOUSE_RATE_LIMIT_STORE_UPDATES', 100, 0, 1_000_000_000),
    redisUrl: redisUrl(env, 'REDIS_URL'),
    rateLimitRedisTimeoutMs: integer(env, 'STOREHOUSE_RATE_LIMIT_REDIS_TIMEOUT_MS', 250, 10, 60_000),
    rateLimitRedisCooldownMs: integer(env, 'STOREHOUSE_RATE_LIMIT_REDIS_COOLDOWN_MS', 1_000, 10, 600_000),
    authFailureLimit: integer(env, 'STOREHOUSE_AUTH_FAILURE_LIMIT', 60, 0, 1_000_000_000),
    trustProxy: trustProxy(env, 'STOREHOUSE_TRUST_PROXY'),
    healthIntervalMs: integer(env, 'STOREHOUSE_HEALTH_INTERVAL_MS', 5_000, 100, 3_600_000),
    healthTimeoutMs: integer(env, 'STOREHOUSE_HEALTH_TIMEOUT_MS', 2_000, 50, 600_000),
    invoiceRetries: integer(env, 'STOREHOUSE_INVOICE_RETRIES', 9, 0, 100),
    // 40 hours: Vercel's 9 retries then span the 15 days after which it calls an invoice overdue.
    invoiceRetryIntervalMs: integer(env, 'STOREHOUSE_INVOICE_RETRY_INTERVAL_MS', 144_000_000, 100, 2_592_000_000),
    // Long enough for a browser's redirect and the partner's exchange; OAuth asks codes to last at most 10 minutes.
    ssoCodeTtlMs: integer(env, 'STOREHOUSE_SSO_CODE_TTL_MS', 300_000, 50, 600_000),
    rateLimitSsoOpens: integer(env, 'STOREHOUSE_RATE_LIMIT_SSO_OPENS', 20, 0, 1_000_000_000),
    dashboardSessionIdleMs: integer(env, 'STOREHOUSE_DASHBOARD_SESSION_IDLE_MINUTES', 720, 1, 43_200) * 60_000,
    dashboardLinkTtlMs: integer(env, 'STOREHOUSE_DASHBOARD_LINK_MINUTES', 15, 1, 1_440) * 60_000,
    partnerTimeoutMs: integer(env, 'STOREHOUSE_PARTNER_TIMEOUT_MS', 10_000, 100, 600_000),
    partnerRetries: integer(env, 'STOREHOUSE_PARTNER_RETRIES', 2, 0, 10),
    outboundMaxBodyBytes: integer(env, 'STOREHOUSE_OUTBOUND_MAX_BODY_BYTES', DEFAULT_MAX_BODY_BYTES, 1024, 1_073_741_824),
    pendingTimeoutMs: integer(env, 'STOREHOUSE_PENDING_TIMEOUT_MS', 1_800_000, 1_000, 86_400_000),
    publicUrl: httpUrl(env, 'STOREHOUSE_PUBLIC_URL'),
    oidcIssuer: httpUrl(env, 'STOREHOUSE_OIDC_ISSUER'),
    webhooks: {
      timeoutMs: integer(env, 'STOREHOUSE_WEBHOOK_TIMEOUT_MS', 10_000, 100, 600_000),
      retryForMs: integer(env, 'STOREHOUSE_WEBHOOK_RETRY_FOR_MS', 86_400_000, 0, 30 * 86_400_000),
      backoffMs: integer(env, 'STOREHOUSE_WEBHOOK_BACKOFF_MS', 1_000, 1, 3_600_000),
      backoffMaxMs: integer(env, 'STOREHOUSE_WEBHOOK_BACKOFF_MAX_MS', 600_000, 1, 86_400_000),
      pollMs: integer(env, 'STOREHOUSE_WEBHOOK_POLL_MS', 5_000, 10, 600_000),
      concurrency: integer(env, 'STOREHOUSE_WEBHOOK_CONCURRENCY', 16, 1, 1_000),
      retentionMs: integer(env, 'STOREHOUSE_WEBHOOK_RETENTION_MS', 30 * 86_400_000, 1_000, 3_650 * 86_400_000),
    },
  };
}
