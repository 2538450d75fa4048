import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import { sendError } from '../errors.ts';

/** Health for load balancers, and the OpenAPI document of the API. */
export default async function systemRoutes(app: FastifyInstance, options: { db: Database; isDraining: () => boolean }) {
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
    async (_request, reply) => {
      if (options.isDraining()) return sendError(reply, 503, 'shutting_down', 'The server is shutting down');
      await options.db.query('SELECT 1');
      return { status: 'ok' };
    },
  );

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}
