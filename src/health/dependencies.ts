/**
 * What this node can reach, for `/healthz` (issue 16): the state database, the rate-limit Redis
 * (when REDIS_URL is set) and the built-in providers the catalog's products use.
 *
 * Each dependency has a probe that runs in the background every interval (the providers' every
 * sixth), the first at start, each bounded by its own timeout; `/healthz` reads the last results,
 * so a hung Redis or a provider's server that stopped answering never holds it. A probe still
 * under way is joined, not started again, so a hung dependency never has more than one probe
 * waiting on it (one left past ABANDON_AFTER_MS is given up for a new one: a connection can hang
 * for good).
 *
 * The state database is the exception: every `/healthz` asks it again (or joins the question
 * under way), on a connection of its own outside the request pool, and waits at most the timeout.
 * A load balancer takes a node out on that answer, so it must be about now, not up to an interval
 * ago; and a pool busy with requests is a node under load, not a node that cannot reach its
 * database, so the question does not queue behind them.
 *
 * A dependency going down is logged once (warn), and once when it is back (info), not on every
 * probe. Nothing names a URL: checks are named by what they are; the log gets the driver's
 * words with any credentials taken out, the body (public: a balancer reads it without a token)
 * only what kind of failure it was, without hosts or ports.
 */
import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Catalog, Product } from '../catalog/catalog.ts';
import type { Database } from '../db/database.ts';
import type { Providers } from '../providers/registry.ts';

/** `disabled`: nothing on this node serves it (a provider not configured), which is how it was set up, not a failure. */
export type CheckStatus = 'ok' | 'unavailable' | 'disabled';

export interface CheckResult {
  status: CheckStatus;
  /** How long the last probe took (to its answer, or to its failure). */
  latencyMs?: number;
  /** Why it is unavailable or disabled, as the body says it: the kind of failure, no address. */
  error?: string;
  /** When the last probe ended (ISO 8601). */
  checkedAt?: string;
}

export interface HealthReport {
  /** `unavailable`: the state database cannot be reached; `degraded`: it can, something else cannot. */
  status: 'ok' | 'degraded' | 'unavailable';
  checks: Record<string, CheckResult>;
}

export interface HealthLog {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

export interface HealthOptions {
  /** How often every dependency is probed in the background. */
  intervalMs?: number;
  /** How long one probe may take before its dependency counts as unavailable. */
  timeoutMs?: number;
  log?: HealthLog | undefined;
}

export const DEFAULT_INTERVAL_MS = 5_000;
export const DEFAULT_TIMEOUT_MS = 2_000;

/** The built-in providers are probed every this many rounds (every 30 s by default). */
const PROVIDER_ROUNDS = 6;

/** A probe unanswered this long is given up (its dependency stays unavailable), and the next one starts afresh. */
const ABANDON_AFTER_MS = 60_000;

/** One dependency: how to ask it, and what to call it. */
export interface Probe {
  /** Its key in the report: `database`, `rateLimitRedis`, `provider:postgres`. */
  name: string;
  /** What the log calls it: "the state database". */
  label: string;
  /** Resolves when the dependency answered; rejects with why it did not. Aborted at the timeout. */
  run(signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

/** A probe's failure in words: the detail for the log, the kind of failure for the body. */
export class ProbeFailure extends Error {
  constructor(
    message: string,
    readonly publicMessage: string,
  ) {
    super(message);
  }
}

/** Credentials never reach a log line or a body: a URL's `user:password@`, a Redis ACL rule's `>password`. */
export function withoutCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1[redacted]@').replace(/(^|[\s'])>[^\s']+/g, '$1>[redacted]');
}

interface ErrorLike {
  code?: unknown;
  message?: unknown;
}

/** The errors inside `error`: itself, an AggregateError's parts (a refused IPv4 and IPv6 connect), its causes. */
function* chain(error: unknown, depth = 0): Generator<ErrorLike> {
  if (error === null || typeof error !== 'object' || depth > 5) return;
  yield error as ErrorLike;
  if (error instanceof AggregateError) for (const part of error.errors) yield* chain(part, depth + 1);
  yield* chain((error as { cause?: unknown }).cause, depth + 1);
}

/** Kinds of failure a person can act on, from a driver's code or words: what the body says instead of the driver's text. */
const KINDS: Array<[RegExp, string]> = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN/, 'host not found'],
  [/EHOSTUNREACH|ENETUNREACH/, 'network unreachable'],
  [/28P01|28000|WRONGPASS|NOAUTH|password|authentication/i, 'authentication failed'],
  [/NOPERM|permission denied|42501/i, 'permission denied'],
  [/57P03|starting up/i, 'the server is starting up'],
  [/53300|too many/i, 'too many connections'],
  [/57P01|57P02|shutting down|terminating connection/i, 'the server is shutting down'],
  [/ETIMEDOUT|timed? ?out|timeout/i, 'timed out'],
  [/ECONNRESET|EPIPE|terminated|ended|closed|not queryable|isn't writeable|not connected/i, 'connection lost'],
];

function kindOf(text: string): string | undefined {
  return KINDS.find(([pattern]) => pattern.test(text))?.[1];
}

/** An error as the log says it (its code and message, the first part that has one) and as the body does. */
function describe(error: unknown): { detail: string; public: string } {
  if (error instanceof ProbeFailure) return { detail: withoutCredentials(error.message), public: error.publicMessage };
  const parts = [...chain(error)];
  const first = parts.find((part) => typeof part.message === 'string' && part.message !== '') ?? parts[0] ?? {};
  const code = typeof first.code === 'string' ? `${first.code}: ` : '';
  const detail = withoutCredentials(`${code}${String(first.message ?? error)}`);
  const kinds = parts.map((part) => kindOf(`${String(part.code ?? '')} ${String(part.message ?? '')}`));
  return { detail, public: kinds.find(Boolean) ?? 'failed (the log says why)' };
}

/**
 * A provider's reason (Storehouse's own words, with the driver's in parentheses) as the body
 * says it: the driver's words replaced by the kind of failure, and no URL or address left.
 */
export function publicReason(reason: string): string {
  return withoutCredentials(reason)
    .replace(/\(([^()]*(?:\([^()]*\)[^()]*)*)\)/g, (_, inner: string) => `(${kindOf(inner) ?? 'the log says why'})`)
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, '[url]')
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '[address]');
}

/** The last result of one dependency's probes, and the probe under way. */
class Check {
  private last: (CheckResult & { detail?: string }) | undefined;
  /** Whether it answered at the last probe; undefined before the first. */
  private up: boolean | undefined;
  private running: { startedAt: number; settled: boolean; result: Promise<CheckResult> } | undefined;

  constructor(
    readonly probe: Probe,
    private readonly timeoutMs: number,
    private readonly log: HealthLog | undefined,
  ) {}

  /** Probes now, or joins the probe under way: answers within the timeout (at once when that one is past it). */
  run(): Promise<CheckResult> {
    const running = this.running;
    if (running && !running.settled && Date.now() - running.startedAt < ABANDON_AFTER_MS) return running.result;
    return this.start();
  }

  /** The last result, or the first probe's (within the timeout) when there is none yet. */
  latest(): Promise<CheckResult> | CheckResult {
    return this.last ? this.public(this.last) : this.run();
  }

  private start(): Promise<CheckResult> {
    const controller = new AbortController();
    const startedAt = Date.now();
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    const running = { startedAt, settled: false, result: undefined as unknown as Promise<CheckResult> };
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<CheckResult & { detail: string }>((resolve) => {
      timer = setTimeout(() => {
        const detail = `no answer within ${this.timeoutMs} ms`;
        resolve({ status: 'unavailable', latencyMs: latency(), error: `timed out (no answer within ${this.timeoutMs} ms)`, detail });
        controller.abort(new Error(detail));
      }, this.timeoutMs);
      timer.unref();
    });
    const answered = this.probe.run(controller.signal).then(
      () => ({ status: 'ok' as const, latencyMs: latency() }),
      (error: unknown) => {
        const { detail, public: text } = describe(error);
        return { status: 'unavailable' as const, latencyMs: latency(), error: text, detail };
      },
    );
    // An answer after the timeout is still news, as long as no newer probe has started; a late
    // failure is not (it is most likely the abort's own doing: a hung connection cut).
    answered.then((result) => {
      running.settled = true;
      clearTimeout(timer);
      if (this.running === running && controller.signal.aborted && result.status === 'ok') this.record(result);
    });
    running.result = Promise.race([answered, late]).then((result) => {
      if (this.running === running) this.record(result);
      return this.public(this.last ?? result);
    });
    this.running = running;
    return running.result;
  }

  private record(result: CheckResult & { detail?: string }): void {
    this.last = { ...result, checkedAt: new Date().toISOString() };
    const up = result.status === 'ok';
    if (up === this.up) return;
    const was = this.up;
    this.up = up;
    const { name, label } = this.probe;
    if (!up) this.log?.warn({ dependency: name, cause: result.detail }, `${label} is unavailable: ${result.detail}`);
    else if (was === false) this.log?.info({ dependency: name, latencyMs: result.latencyMs }, `${label} is reachable again`);
  }

  private public({ detail: _detail, ...result }: CheckResult & { detail?: string }): CheckResult {
    return result;
  }
}

/** `SELECT 1` on a connection of its own, opened on the first probe and again after it broke or hung. */
export class DatabaseProbe implements Probe {
  readonly name = 'database';
  readonly label = 'the state database';
  private opened: { client: pg.Client; ready: Promise<pg.Client> } | undefined;
  private closed = false;

  constructor(private readonly db: Pick<Database, 'dedicatedClient'>) {}

  async run(signal: AbortSignal): Promise<void> {
    const reused = this.opened !== undefined;
    // At the timeout the connection is cut and the probe ends: node-postgres never settles a
    // connect that its own end() interrupted, so its promise is not waited for.
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        this.drop(true);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
      await Promise.race([this.ask(), aborted]);
    } catch (error) {
      if (signal.aborted || this.closed) throw error;
      this.drop(false);
      // A connection that broke since the last probe (the server restarted, a proxy dropped it)
      // says nothing about now: once more on a new one.
      if (!reused) throw error;
      await Promise.race([this.ask(), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async ask(): Promise<void> {
    const client = await this.connection();
    await client.query('SELECT 1');
  }

  private connection(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('the health checks are closed'));
    if (this.opened) return this.opened.ready;
    const client = this.db.dedicatedClient();
    client.on('error', () => {}); // its query fails with it; the next probe opens another
    const ready = (async () => {
      await client.connect();
      await client.query("SET application_name = 'storehouse health'");
      return client;
    })();
    const opened = { client, ready };
    client.on('end', () => {
      if (this.opened === opened) this.opened = undefined;
    });
    this.opened = opened;
    return ready;
  }

  /** Ends the connection; a hung one (`now`) is cut at once, since its goodbye would never be answered. */
  private drop(now: boolean): void {
    const opened = this.opened;
    if (!opened) return;
    this.opened = undefined;
    const stream = () => (opened.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
    if (now) stream()?.destroy();
    opened.client.end().catch(() => {});
    if (!now) setTimeout(() => stream()?.destroy(), 1000).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.drop(true);
  }
}

/** PING on a connection of its own to the rate-limit Redis: a Redis that hangs (paused) times out, one that is away fails at once. */
export class RedisProbe implements Probe {
  readonly name = 'rateLimitRedis';
  readonly label = 'the rate-limit Redis';
  private readonly redis: Redis;
  private lastError: string | undefined;

  constructor(url: string, timeoutMs: number) {
    this.redis = new Redis(url, {
      // Nothing waits for a connection: a probe while it is away fails at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
      connectTimeout: Math.max(timeoutMs, 1000),
      connectionName: 'storehouse-health',
      retryStrategy: (times) => Math.min(100 * times, 2000),
    });
    this.redis.on('error', (error: Error) => {
      this.lastError = error.message;
    });
    this.redis.on('ready', () => {
      this.lastError = undefined;
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    // Still opening its first connection (at start): that is not an outage yet, so wait for it (within the timeout).
    if (this.redis.status === 'connecting' || this.redis.status === 'connect' || this.redis.status === 'wait') await this.opened(signal);
    if (this.redis.status !== 'ready') {
      const why = this.lastError ?? `connection ${this.redis.status}`;
      throw new ProbeFailure(`not connected (${why})`, `not connected (${kindOf(why) ?? 'connecting'})`);
    }
    const answer = await this.redis.ping();
    if (answer !== 'PONG') throw new ProbeFailure(`PING answered ${answer}`, 'unexpected answer');
  }

  /** Resolves once the connection is ready, closed, or the probe is aborted. */
  private opened(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.redis.off('ready', done).off('close', done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.redis.once('ready', done).once('close', done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** A built-in provider's own check (`availability()`): it says why in words, with the driver's in parentheses. */
class ProviderProbe implements Probe {
  readonly name: string;
  readonly label: string;

  constructor(
    readonly type: string,
    private readonly availability: () => Promise<{ available: true } | { available: false; reason: string }>,
  ) {
    this.name = `provider:${type}`;
    this.label = `the ${type === 'postgres' ? 'Postgres' : type === 'redis' ? 'Redis' : type} provider`;
  }

  async run(): Promise<void> {
    const answer = await this.availability();
    if (!answer.available) throw new ProbeFailure(answer.reason, publicReason(answer.reason));
  }
}

/** Every dependency of this node, probed in the background; `report()` is what `/healthz` answers. */
export class HealthChecks {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  private readonly database: Check;
  private readonly others: Check[] = [];
  /** Built-in providers' checks, made when the catalog first has a product they serve. */
  private readonly providerChecks = new Map<string, Check>();
  private timer: NodeJS.Timeout | undefined;
  private rounds = 0;
  private readonly log: HealthLog | undefined;

  constructor(
    private readonly sources: {
      db: Pick<Database, 'dedicatedClient'>;
      /** REDIS_URL: the rate-limit counts' Redis, when there is one. */
      rateLimitRedisUrl?: string | undefined;
      providers?: Providers | undefined;
      catalog?: (() => Catalog) | undefined;
    },
    options: HealthOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.log = options.log;
    this.database = new Check(new DatabaseProbe(sources.db), this.timeoutMs, this.log);
    if (sources.rateLimitRedisUrl)
      this.others.push(new Check(new RedisProbe(sources.rateLimitRedisUrl, this.timeoutMs), this.timeoutMs, this.log));
  }

  /** Runs the first probes at once (once the caller's start-up step is done: not waited for) and then every interval. */
  start(): this {
    if (this.timer) return this;
    setImmediate(() => this.timer && this.probeAll());
    this.timer = setInterval(() => this.probeAll(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  private probeAll(): void {
    void this.database.run();
    for (const check of this.others) void check.run();
    // A provider's own check proves its permissions with several commands (the Redis provider's
    // take a connection of its pool and a transaction): every PROVIDER_ROUNDS rounds only.
    if (this.rounds++ % PROVIDER_ROUNDS === 0) for (const entry of this.providers()) if (entry.check) void entry.check.run();
  }

  /**
   * The built-in provider types the catalog's products use (partner servers are only known by
   * calling them, per store), each with its check, or why no provider serves it on this node.
   */
  private providers(): Array<{ name: string; check?: Check; disabled?: string }> {
    const { providers, catalog } = this.sources;
    if (!providers || !catalog) return [];
    const byType = new Map<string, Product>();
    const current = catalog();
    for (const integration of current.listIntegrations()) {
      for (const product of current.productsOf(integration.id)) {
        if (product.provider.type !== 'http' && !byType.has(product.provider.type)) byType.set(product.provider.type, product);
      }
    }
    return [...byType].map(([type, product]) => {
      const reason = providers.unavailableReason(product);
      if (reason !== undefined) return { name: `provider:${type}`, disabled: reason };
      let check = this.providerChecks.get(type);
      if (!check) {
        const provider = providers.for(product);
        check = new Check(new ProviderProbe(type, () => provider.availability()), this.timeoutMs, this.log);
        this.providerChecks.set(type, check);
      }
      return { name: `provider:${type}`, check };
    });
  }

  /**
   * What `/healthz` answers: the state database asked now (within the timeout), everything else
   * as its last probe found it (the first probe's answer, within the timeout, before there is one).
   */
  async report(): Promise<HealthReport> {
    const entries: Array<[string, Promise<CheckResult> | CheckResult]> = [[this.database.probe.name, this.database.run()]];
    for (const check of this.others) entries.push([check.probe.name, check.latest()]);
    for (const entry of this.providers()) {
      entries.push([entry.name, entry.check ? entry.check.latest() : { status: 'disabled', error: publicReason(entry.disabled ?? '') }]);
    }
    const checks: Record<string, CheckResult> = {};
    for (const [name, result] of entries) checks[name] = await result;
    const status =
      checks.database?.status !== 'ok' ? 'unavailable' : Object.values(checks).some((c) => c.status === 'unavailable') ? 'degraded' : 'ok';
    return { status, checks };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.database.probe.close?.();
    for (const check of this.others) await check.probe.close?.();
  }
}

/** The checks of each state database a runtime opened, for the routes (src/http/routes/system.ts) that only hold the database. */
const byDatabase = new WeakMap<object, HealthChecks>();

/** Starts the health checks of a runtime's dependencies, found again by `healthChecksOf(db)`. */
export function startHealthChecks(sources: ConstructorParameters<typeof HealthChecks>[0], options: HealthOptions = {}): HealthChecks {
  const checks = new HealthChecks(sources, options).start();
  byDatabase.set(sources.db, checks);
  return checks;
}

export function healthChecksOf(db: object): HealthChecks | undefined {
  return byDatabase.get(db);
}
