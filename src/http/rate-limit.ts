/**
 * Rate limits, as Vercel applies them: a general limit per token, and route limits per team
 * (store creates: 100 a minute, as Vercel documents). Counted in process on a single node, and
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
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError } from '../errors.ts';
import type { Access } from '../tenancy/access.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The per-team limit this route counts against, besides the per-token one. */
    rateLimit?: string;
  }
}

export interface RateLimitSettings {
  /** Requests per token per minute; 0 turns the limit off. */
  requestsPerMinute: number;
  /** Per-team limits per minute of the routes that name them (`config.rateLimit`). */
  routes: Record<string, number>;
  /** Shares the counts across nodes. */
  redisUrl?: string | undefined;
}

interface Limit {
  name: string;
  total: number;
  limiter: RateLimiterAbstract;
}

const WINDOW_SECONDS = 60;

export class RateLimits {
  private readonly redis: Redis | undefined;
  private readonly token: Limit | undefined;
  private readonly routes = new Map<string, Limit>();

  constructor(settings: RateLimitSettings, onError?: (error: Error) => void) {
    if (settings.redisUrl) {
      this.redis = new Redis(settings.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
      this.redis.on('error', (error: Error) => onError?.(new Error(`rate-limit Redis: ${error.message}`)));
    }
    const limit = (name: string, total: number): Limit => {
      const memory = new RateLimiterMemory({ points: total, duration: WINDOW_SECONDS, keyPrefix: name });
      const limiter = this.redis
        ? new RateLimiterRedis({ storeClient: this.redis, points: total, duration: WINDOW_SECONDS, keyPrefix: `storehouse:rl:${name}`, insuranceLimiter: memory, rejectIfRedisNotReady: true })
        : memory;
      return { name, total, limiter };
    };
    if (settings.requestsPerMinute > 0) this.token = limit('api-requests', settings.requestsPerMinute);
    for (const [route, total] of Object.entries(settings.routes)) if (total > 0) this.routes.set(route, limit(route, total));
  }

  /** Counts a request against a limit: sets the X-RateLimit headers, and throws a 429 once it is spent. */
  private async consume(limit: Limit, key: string, reply: FastifyReply): Promise<void> {
    let result: RateLimiterRes;
    let limited = false;
    try {
      result = await limit.limiter.consume(key);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      result = error;
      limited = true;
    }
    const resetMs = Date.now() + result.msBeforeNext;
    const reset = Math.ceil(resetMs / 1000);
    reply.header('x-ratelimit-limit', limit.total);
    reply.header('x-ratelimit-remaining', Math.max(0, result.remainingPoints));
    reply.header('x-ratelimit-reset', reset);
    if (!limited) return;
    const seconds = Math.max(1, Math.ceil(result.msBeforeNext / 1000));
    reply.header('retry-after', seconds);
    reply.header('retry-after-ms', Math.max(0, result.msBeforeNext));
    throw new AppError(429, 'rate_limited', `The rate limit of ${limit.total} exceeded for '${limit.name}'. Try again in ${seconds} second${seconds === 1 ? '' : 's'}`, {
      limit: { remaining: 0, reset, resetMs, total: limit.total },
    });
  }

  async byToken(tokenId: string, reply: FastifyReply): Promise<void> {
    if (this.token) await this.consume(this.token, tokenId, reply);
  }

  async byTeam(route: string, teamId: string, reply: FastifyReply): Promise<void> {
    const limit = this.routes.get(route);
    if (limit) await this.consume(limit, teamId, reply);
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }
}

/**
 * Counts each authenticated request against its token's limit, and against its team's route
 * limit, before the request is validated: a malformed request counts like any other.
 */
export const rateLimitPlugin = fp(async function rateLimitPlugin(app: FastifyInstance, options: { limits: RateLimits; access: Access }) {
  const { limits, access } = options;
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.principal) await limits.byToken(request.principal.tokenId, reply);
  });
  app.addHook('preValidation', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.config.rateLimit;
    if (!route || !request.principal) return;
    const query = request.query as Record<string, unknown>;
    const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
    const actor = await access.actor(request.principal, { teamId: text(query.teamId), slug: text(query.slug) });
    await limits.byTeam(route, actor.team.id, reply);
  });
});
