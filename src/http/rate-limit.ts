/**
 * Rate limits, as Vercel applies them: a general limit per token, and route limits per team
 * (store creates: 100 a minute, as Vercel documents) or per installation (the marketplace API's
 * calls, docs/partner-api.md §7); and failed authentications per client address (issue 17).
 * Counted in process on a single node, and in Redis when REDIS_URL is set, so every node behind a
 * balancer shares the counts. If Redis fails a count (refused, lost, or not answering within the
 * timeout) a circuit breaker (redis-breaker.ts) has the node count in process, asking Redis
 * nothing, until a probe finds it answering again: rather than refuse service or wait on it.
 *
 * Every limited response carries X-RateLimit-Limit/Remaining/Reset; a 429 also `Retry-After`
 * (seconds, which @vercel/sdk's retries honour), `retry-after-ms`, and Vercel's
 * `error.limit {remaining, reset, resetMs, total}`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import type { RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../errors.ts';
import type { Access } from '../tenancy/access.ts';
import { type BreakerState, RedisBreaker } from './redis-breaker.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route limit this route counts against, besides the per-token one: a name counts per
     * team; `{name, key}` counts per whatever `key` names of the request (an installation).
     */
    rateLimit?: string | KeyedLimit;
  }
  interface FastifyInstance {
    /** The app's rate limits (their Redis breaker's state is what tests and operators look at). */
    rateLimits: RateLimits;
  }
}

/** A route limit counted per a key the request carries rather than per team. */
export interface KeyedLimit {
  name: string;
  /** The key the request counts under; called once the request is authenticated (its onRequest hooks have run). */
  key: (request: FastifyRequest) => string;
}

export interface RateLimitSettings {
  /** Requests per token per minute; 0 turns the limit off. */
  requestsPerMinute: number;
  /** Limits per minute of the routes that name them (`config.rateLimit`), per team or per their own key. */
  routes: Record<string, number>;
  /** Failed authentications per client address per minute; 0 (or absent) turns the limit off. */
  authFailuresPerMinute?: number | undefined;
  /** Shares the counts across nodes. */
  redisUrl?: string | undefined;
  /**
   * How long a count waits on Redis (connecting or answering) before it is counted in process: a
   * Redis that hangs (paused, half-open) must not hang every request with it.
   */
  redisTimeoutMs?: number | undefined;
  /** After a failed count, how long the node counts in process before it asks Redis again. */
  redisCooldownMs?: number | undefined;
}

/** Where a request leaves a limit: what is left of the window, and when it starts again. */
interface Count {
  remaining: number;
  msBeforeNext: number;
  limited: boolean;
}

interface Limit {
  name: string;
  total: number;
  count(key: string): Count | Promise<Count>;
}

const WINDOW_SECONDS = 60;
const WINDOW_MS = WINDOW_SECONDS * 1000;
/** Client addresses counted at once in process: the failure limit's keys come from anyone, not only from token holders. */
const MAX_ADDRESSES = 100_000;

/**
 * A fixed window counted in this process: synchronous, since it is on every request's path
 * (rate-limiter-flexible's memory limiter cost 13% of a hot route's throughput).
 */
class MemoryWindow {
  private readonly windows = new Map<string, { used: number; resetAt: number }>();
  private sweptAt = Date.now();

  constructor(
    private readonly total: number,
    private readonly maxKeys = Number.POSITIVE_INFINITY,
  ) {}

  count(key: string): Count {
    const now = Date.now();
    if (now - this.sweptAt > WINDOW_MS) this.sweep(now);
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { used: 0, resetAt: now + WINDOW_MS };
      this.windows.delete(key);
      // Full: the oldest window goes (its key starts over), so memory stays bounded whoever sends keys.
      if (this.windows.size >= this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
      this.windows.set(key, window);
    }
    window.used++;
    return { remaining: Math.max(0, this.total - window.used), msBeforeNext: window.resetAt - now, limited: window.used > this.total };
  }

  /** Forgets windows that have ended, so keys seen once do not stay forever. */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [key, window] of this.windows) if (window.resetAt <= now) this.windows.delete(key);
  }
}

type RateLimiterLibrary = typeof import('rate-limiter-flexible');

/** A limit counted atomically in Redis, shared by every node; counted in process while the breaker is open. */
function redisLimit(
  library: RateLimiterLibrary,
  redis: Redis,
  breaker: RedisBreaker,
  name: string,
  total: number,
  maxKeys?: number,
): Limit {
  const { RateLimiterRedis, RateLimiterRes } = library;
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    points: total,
    duration: WINDOW_SECONDS,
    keyPrefix: `storehouse:rl:${name}`,
    // Not connected (starting, reconnecting): fail at once, and the breaker counts in process.
    rejectIfRedisNotReady: true,
  });
  const memory = new MemoryWindow(total, maxKeys);
  const asCount = (result: RateLimiterRes, limited: boolean): Count => ({
    remaining: Math.max(0, result.remainingPoints),
    msBeforeNext: result.msBeforeNext,
    limited,
  });
  const isAnswer = (error: unknown) => error instanceof RateLimiterRes;
  return {
    name,
    total,
    count: async (key) => {
      const result = await breaker.run(() => limiter.consume(key), isAnswer);
      if (!result) return memory.count(key);
      return 'value' in result ? asCount(result.value, false) : asCount(result.error as RateLimiterRes, true);
    },
  };
}

export class RateLimits {
  private readonly redis: Redis | undefined;
  private readonly breaker: RedisBreaker | undefined;
  private readonly token: Limit | undefined;
  private readonly failures: Limit | undefined;
  /**
   * Addresses this node last counted past the failure limit, until their window ends: they are
   * refused without asking Redis, so a flood of bad tokens costs a map lookup each.
   */
  private readonly blocked = new Map<string, number>();
  private readonly routes = new Map<string, Limit>();

  /** Loads the Redis limiter only when there is a Redis to count in (it is not small). */
  static async create(settings: RateLimitSettings, onError?: (error: Error) => void, onRecovered?: () => void): Promise<RateLimits> {
    const library = settings.redisUrl ? await import('rate-limiter-flexible') : undefined;
    return new RateLimits(settings, library, onError, onRecovered);
  }

  private constructor(
    settings: RateLimitSettings,
    library: RateLimiterLibrary | undefined,
    onError?: (error: Error) => void,
    onRecovered?: () => void,
  ) {
    let limit = (name: string, total: number, maxKeys?: number): Limit => {
      const memory = new MemoryWindow(total, maxKeys);
      return { name, total, count: (key) => memory.count(key) };
    };
    if (settings.redisUrl && library) {
      const timeoutMs = settings.redisTimeoutMs ?? 250;
      const redis = new Redis(settings.redisUrl, {
        // Nothing waits for a connection, and nothing failed is sent again later: a count that
        // did not reach Redis in time was made in process, and must not be made twice.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        lazyConnect: false,
        commandTimeout: timeoutMs,
        connectTimeout: Math.max(timeoutMs, 1000),
      });
      redis.on('error', () => {}); // the breaker reports what matters, once per outage
      const breaker = new RedisBreaker(redis, settings.redisCooldownMs ?? 1000, {
        open: (error) => onError?.(new Error(`rate-limit Redis: ${error.message}`)),
        close: () => onRecovered?.(),
      });
      this.redis = redis;
      this.breaker = breaker;
      limit = (name, total, maxKeys) => redisLimit(library, redis, breaker, name, total, maxKeys);
    }
    if (settings.requestsPerMinute > 0) this.token = limit('api-requests', settings.requestsPerMinute);
    if ((settings.authFailuresPerMinute ?? 0) > 0) this.failures = limit('auth-failures', settings.authFailuresPerMinute!, MAX_ADDRESSES);
    for (const [route, total] of Object.entries(settings.routes)) if (total > 0) this.routes.set(route, limit(route, total));
  }

  /** The Redis breaker's state; undefined when there is no Redis. */
  get redisState(): BreakerState | undefined {
    return this.breaker?.state;
  }

  /**
   * Counts a request against a limit: sets the X-RateLimit headers, and throws a 429 once it is
   * spent. Synchronous when counted in process (every request's path on a single node).
   */
  private consume(limit: Limit, key: string, reply: FastifyReply): void | Promise<void> {
    const counted = limit.count(key);
    if (counted instanceof Promise) return counted.then((count) => this.settle(limit, count, reply));
    this.settle(limit, counted, reply);
  }

  private settle(limit: Limit, count: Count, reply: FastifyReply): void {
    this.setHeaders(limit, count, reply);
    if (count.limited) this.refuse(limit, count, reply);
  }

  private setHeaders(limit: Limit, count: Count, reply: FastifyReply): void {
    reply.header('x-ratelimit-limit', limit.total);
    reply.header('x-ratelimit-remaining', count.remaining);
    reply.header('x-ratelimit-reset', Math.ceil((Date.now() + count.msBeforeNext) / 1000));
  }

  private refuse(limit: Limit, count: Count, reply: FastifyReply): never {
    const resetMs = Date.now() + count.msBeforeNext;
    const seconds = Math.max(1, Math.ceil(count.msBeforeNext / 1000));
    reply.header('retry-after', seconds);
    reply.header('retry-after-ms', Math.max(0, count.msBeforeNext));
    throw new AppError(
      429,
      'rate_limited',
      `The rate limit of ${limit.total} exceeded for '${limit.name}'. Try again in ${seconds} second${seconds === 1 ? '' : 's'}`,
      {
        limit: { remaining: 0, reset: Math.ceil(resetMs / 1000), resetMs, total: limit.total },
      },
    );
  }

  /** Counts a request against its token's limit (a promise only when counted in Redis). */
  byToken(tokenId: string, reply: FastifyReply): void | Promise<void> {
    if (this.token) return this.consume(this.token, tokenId, reply);
  }

  /** Counts a request against a route limit, under its key (a team, an installation); a limit set to 0 counts nothing. */
  async byRoute(route: string, key: string, reply: FastifyReply): Promise<void> {
    const limit = this.routes.get(route);
    if (limit) await this.consume(limit, key, reply);
  }

  /** Whether failed authentications are limited at all. */
  get limitsAuthFailures(): boolean {
    return this.failures !== undefined;
  }

  /** Whether this node counted `address` past the failure limit in the current window (no Redis call). */
  failuresSpent(address: string): boolean {
    const until = this.blocked.get(address);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.blocked.delete(address);
    return false;
  }

  /** The 429 of an address past the failure limit: the headers and body of every other 429. */
  refuseAddress(address: string, reply: FastifyReply): never {
    const count = { remaining: 0, msBeforeNext: Math.max(0, (this.blocked.get(address) ?? Date.now()) - Date.now()), limited: true };
    this.setHeaders(this.failures!, count, reply);
    this.refuse(this.failures!, count, reply);
  }

  /**
   * Counts a failed authentication from `address`. Once the window's bound is used up the address
   * is refused here, before its next token is hashed or looked up; past it (another node counted
   * the rest), this request is the 429 too.
   */
  async authFailure(address: string, reply: FastifyReply, onBlocked?: (address: string) => void): Promise<void> {
    if (!this.failures) return;
    const counted = this.failures.count(address);
    const count = counted instanceof Promise ? await counted : counted;
    if (count.remaining > 0) return;
    const blockedUntil = this.blocked.get(address);
    if (blockedUntil === undefined || blockedUntil <= Date.now()) onBlocked?.(address);
    this.blocked.delete(address);
    if (this.blocked.size >= MAX_ADDRESSES) this.blocked.delete(this.blocked.keys().next().value!);
    this.blocked.set(address, Date.now() + count.msBeforeNext);
    if (count.limited) this.refuseAddress(address, reply);
  }

  async close(): Promise<void> {
    this.breaker?.stop();
    this.redis?.disconnect();
  }
}

/**
 * Counts each authenticated request against its token's limit, and against its route's limit
 * (per team, or per its own key), before the request is validated: a malformed request counts
 * like any other; one refused as unauthenticated does not count against anyone's limit.
 */
export const rateLimitPlugin = fp(async function rateLimitPlugin(app: FastifyInstance, options: { limits: RateLimits; access: Access }) {
  const { limits, access } = options;
  app.decorate('rateLimits', limits);
  const byToken = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    if (!request.principal) return done();
    let counted: void | Promise<void>;
    try {
      counted = limits.byToken(request.principal.tokenId, reply);
    } catch (error) {
      return done(error as Error);
    }
    if (counted instanceof Promise) counted.then(() => done(), done);
    else done();
  };
  const byRoute = async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.config.rateLimit;
    if (!route) return;
    if (typeof route === 'object') return limits.byRoute(route.name, route.key(request), reply);
    if (!request.principal) return;
    const query = request.query as Record<string, unknown>;
    const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
    const actor = await access.actor(request.principal, { teamId: text(query.teamId), slug: text(query.slug) });
    await limits.byRoute(route, actor.team.id, reply);
  };
  app.addHook('onRoute', (route) => {
    // The routes that take tokens count them, after the auth plugin's hook (added before this one) found the token's principal.
    if (!route.config?.public) {
      route.onRequest = [...(route.onRequest === undefined ? [] : [route.onRequest].flat()), byToken] as typeof route.onRequest;
    }
    // Only the routes that name a limit get the hook: the others pay nothing for it.
    if (!route.config?.rateLimit) return;
    const existing = route.preValidation === undefined ? [] : [route.preValidation].flat();
    route.preValidation = [byRoute, ...existing] as typeof route.preValidation;
  });
});
