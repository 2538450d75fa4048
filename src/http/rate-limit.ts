/**
 * Rate limits, as Vercel applies them: a general limit per token, and route limits per team
 * (store creates: 100 a minute, as Vercel documents) or per installation (the marketplace API's
 * calls, docs/partner-api.md §7). Counted in process on a single node, and
 * in Redis when REDIS_URL is set, so every node behind a balancer shares the counts; if Redis
 * cannot be reached the node falls back to counting in process rather than refusing service.
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

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route limit this route counts against, besides the per-token one: a name counts per
     * team; `{name, key}` counts per whatever `key` names of the request (an installation).
     */
    rateLimit?: string | KeyedLimit;
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
  /** Shares the counts across nodes. */
  redisUrl?: string | undefined;
  /**
   * How long a count waits on Redis (connecting or answering) before it is counted in process: a
   * Redis that hangs (paused, half-open) must not hang every request with it.
   */
  redisTimeoutMs?: number | undefined;
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

/**
 * A fixed window counted in this process: synchronous, since it is on every request's path
 * (rate-limiter-flexible's memory limiter cost 13% of a hot route's throughput).
 */
class MemoryWindow {
  private readonly windows = new Map<string, { used: number; resetAt: number }>();
  private sweptAt = Date.now();

  constructor(private readonly total: number) {}

  count(key: string): Count {
    const now = Date.now();
    if (now - this.sweptAt > WINDOW_MS) this.sweep(now);
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { used: 0, resetAt: now + WINDOW_MS };
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

/** A limit counted atomically in Redis, shared by every node; counted in process while Redis cannot be reached. */
function redisLimit(library: RateLimiterLibrary, redis: Redis, name: string, total: number): Limit {
  const { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } = library;
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    points: total,
    duration: WINDOW_SECONDS,
    keyPrefix: `storehouse:rl:${name}`,
    insuranceLimiter: new RateLimiterMemory({ points: total, duration: WINDOW_SECONDS, keyPrefix: name }),
    rejectIfRedisNotReady: true,
  });
  const asCount = (result: RateLimiterRes, limited: boolean): Count => ({
    remaining: Math.max(0, result.remainingPoints),
    msBeforeNext: result.msBeforeNext,
    limited,
  });
  return {
    name,
    total,
    count: (key) =>
      limiter.consume(key).then(
        (result) => asCount(result, false),
        (error) => {
          if (error instanceof RateLimiterRes) return asCount(error, true);
          throw error;
        },
      ),
  };
}

export class RateLimits {
  private readonly redis: Redis | undefined;
  private readonly token: Limit | undefined;
  private readonly routes = new Map<string, Limit>();

  /** Loads the Redis limiter only when there is a Redis to count in (it is not small). */
  static async create(settings: RateLimitSettings, onError?: (error: Error) => void): Promise<RateLimits> {
    return new RateLimits(settings, settings.redisUrl ? await import('rate-limiter-flexible') : undefined, onError);
  }

  private constructor(settings: RateLimitSettings, library: RateLimiterLibrary | undefined, onError?: (error: Error) => void) {
    let limit = (name: string, total: number): Limit => {
      const memory = new MemoryWindow(total);
      return { name, total, count: (key) => memory.count(key) };
    };
    if (settings.redisUrl && library) {
      const timeoutMs = settings.redisTimeoutMs ?? 250;
      const redis = new Redis(settings.redisUrl, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        // A command not answered in time fails, and the limiter counts in process (its insurance).
        commandTimeout: timeoutMs,
        connectTimeout: Math.max(timeoutMs, 1000),
      });
      redis.on('error', (error: Error) => onError?.(new Error(`rate-limit Redis: ${error.message}`)));
      this.redis = redis;
      limit = (name, total) => redisLimit(library, redis, name, total);
    }
    if (settings.requestsPerMinute > 0) this.token = limit('api-requests', settings.requestsPerMinute);
    for (const [route, total] of Object.entries(settings.routes)) if (total > 0) this.routes.set(route, limit(route, total));
  }

  /** Counts a request against a limit: sets the X-RateLimit headers, and throws a 429 once it is spent. */
  private async consume(limit: Limit, key: string, reply: FastifyReply): Promise<void> {
    const counted = limit.count(key);
    const count = counted instanceof Promise ? await counted : counted;
    const resetMs = Date.now() + count.msBeforeNext;
    const reset = Math.ceil(resetMs / 1000);
    reply.header('x-ratelimit-limit', limit.total);
    reply.header('x-ratelimit-remaining', count.remaining);
    reply.header('x-ratelimit-reset', reset);
    if (!count.limited) return;
    const seconds = Math.max(1, Math.ceil(count.msBeforeNext / 1000));
    reply.header('retry-after', seconds);
    reply.header('retry-after-ms', Math.max(0, count.msBeforeNext));
    throw new AppError(
      429,
      'rate_limited',
      `The rate limit of ${limit.total} exceeded for '${limit.name}'. Try again in ${seconds} second${seconds === 1 ? '' : 's'}`,
      {
        limit: { remaining: 0, reset, resetMs, total: limit.total },
      },
    );
  }

  async byToken(tokenId: string, reply: FastifyReply): Promise<void> {
    if (this.token) await this.consume(this.token, tokenId, reply);
  }

  /** Counts a request against a route limit, under its key (a team, an installation); a limit set to 0 counts nothing. */
  async byRoute(route: string, key: string, reply: FastifyReply): Promise<void> {
    const limit = this.routes.get(route);
    if (limit) await this.consume(limit, key, reply);
  }

  async close(): Promise<void> {
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
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.principal) await limits.byToken(request.principal.tokenId, reply);
  });
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
  // Only the routes that name a limit get the hook: the others pay nothing for it.
  app.addHook('onRoute', (route) => {
    if (!route.config?.rateLimit) return;
    const existing = route.preValidation === undefined ? [] : [route.preValidation].flat();
    route.preValidation = [byRoute, ...existing] as typeof route.preValidation;
  });
});
