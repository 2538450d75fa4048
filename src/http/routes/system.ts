import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';

const statusSchema = { type: 'object', required: ['status'], properties: { status: { type: 'string' } } };

/**
 * Health for load balancers and process supervisors, and the OpenAPI document of the API.
 *
 * `/healthz` is readiness: 503 while the state database cannot be reached (`database_unavailable`,
 * from the error handler) or the server drains (every request but `/livez` gets a 503 from the
 * app's onRequest hook then), so a balancer sends requests to another node meanwhile.
 * `/livez` is liveness: 200 as long as the process serves HTTP at all, whatever its database
 * does, so a supervisor does not restart a node that will recover by itself once the database is back.
 */
export default async function systemRoutes(app: FastifyInstance, options: { db: Database }) {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Ready to serve: the database answers and the server is not shutting down',
        tags: ['system'],
        response: { 200: statusSchema, 503: { $ref: 'VercelError#' } },
      },
    },
    async () => {
      await options.db.query('SELECT 1');
      return { status: 'ok' };
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
