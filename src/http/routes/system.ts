import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import { DATABASE_RETRY_AFTER_SECONDS as RETRY_AFTER_SECONDS, errorSchema } from '../errors.ts';
import { type HealthChecks, healthChecksOf, startHealthChecks } from '../../health/dependencies.ts';

const statusSchema = { type: 'object', required: ['status'], properties: { status: { type: 'string' } } };

const checkSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable', 'disabled'] },
    latencyMs: { type: 'integer', minimum: 0, description: 'How long the last probe took, to its answer or its failure' },
    error: { type: 'string', description: 'Why it is unavailable (the kind of failure) or disabled; the log has the detail' },
    checkedAt: { type: 'string', format: 'date-time', description: 'When the last probe ended' },
  },
};

const checksSchema = {
  type: 'object',
  description:
    'Each dependency by name: `database` (the state database), `rateLimitRedis` (when REDIS_URL is set), `provider:<type>` (the built-in providers the catalog uses)',
  additionalProperties: checkSchema,
};

const healthSchema = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded'], description: '`degraded`: the state database answers, something else does not' },
    checks: checksSchema,
  },
};

/** Vercel's error format (what balancers and clients already read), with the checks beside it while the database is down. */
const unavailableSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: errorSchema.properties.error,
    status: { type: 'string', enum: ['unavailable'] },
    checks: checksSchema,
  },
};

/**
 * Health for load balancers and process supervisors, and the OpenAPI document of the API.
 *
 * `/healthz` is readiness, and says what the node can reach (src/health/dependencies.ts): 503
 * `database_unavailable` while the state database cannot be reached, with every check beside the
 * error, so a balancer sends requests to another node meanwhile; 200 `degraded` when the database
 * answers and something else does not (the rate-limit Redis, a provider's server): the node still
 * serves, counting limits in process or answering that product's creates 503. It answers within
 * the health timeout whatever hangs: the database is asked afresh within it, the rest read from
 * the background probes. While the server drains every request but `/livez` gets a 503
 * `shutting_down` from the app's onRequest hook.
 * `/livez` is liveness: 200 as long as the process serves HTTP at all, whatever its database
 * does, so a supervisor does not restart a node that will recover by itself once the database is back.
 */
export default async function systemRoutes(app: FastifyInstance, options: { db: Database; health?: HealthChecks }) {
  // The runtime's checks; an app built on a database alone checks that database, and stops with the app.
  let health = options.health ?? healthChecksOf(options.db);
  if (!health) {
    const own = startHealthChecks({ db: options.db }, { log: app.log });
    app.addHook('onClose', () => own.stop());
    health = own;
  }
  const checks = health;

  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Ready to serve: the database answers and the server is not shutting down; and what else this node can reach',
        tags: ['system'],
        response: { 200: healthSchema, 503: unavailableSchema },
      },
    },
    async (_request, reply) => {
      const report = await checks.report();
      if (report.status !== 'unavailable') return report;
      reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS));
      return { error: { code: 'database_unavailable', message: 'The database is unavailable right now; retry shortly' }, ...report };
    },
  );

  app.get(
    '/livez',
    {
      config: { public: true },
      schema: {
        summary: 'Alive: the process answers HTTP (the database is not asked)',
        tags: ['system'],
        response: { 200: statusSchema },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}
