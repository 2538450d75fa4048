import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';

/**
 * Health for load balancers (while the server drains, every request, this one included, gets a
 * 503 from the app's onRequest hook), and the OpenAPI document of the API.
 */
export default async function systemRoutes(app: FastifyInstance, options: { db: Database }) {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Ready to serve: the database answers and the server is not shutting down',
        tags: ['system'],
        response: { 200: { type: 'object', properties: { status: { type: 'string' } } }, 503: { $ref: 'VercelError#' } },
      },
    },
    async () => {
      await options.db.query('SELECT 1');
      return { status: 'ok' };
    },
  );

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}
