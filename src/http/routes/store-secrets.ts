import type { FastifyInstance } from 'fastify';
import type { StoreSecrets } from '../../stores/store-secrets.ts';
import { errorResponses, teamQuery, type TeamQuery } from './common.ts';
import { str } from '../vercel-shapes.ts';

/**
 * Storehouse's own: a store's secrets read back (what the dashboard's store page reveals).
 * Vercel's API shows only their names and lengths; its dashboard reads them privately.
 */
export default async function storeSecretsRoutes(app: FastifyInstance, options: { secrets: StoreSecrets }) {
  const { secrets } = options;
  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/_storehouse/stores/:id/secrets',
    {
      schema: {
        operationId: 'readStoreSecrets',
        summary:
          "A store's secrets with their values (those who may change projects; a store connected as sensitive, only its configuration's admins)",
        tags: ['storehouse'],
        params: { type: 'object', required: ['id'], properties: { id: str } },
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'object',
            required: ['secrets'],
            properties: {
              secrets: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['name', 'value'],
                  properties: {
                    name: str,
                    value: str,
                    environmentOverrides: { type: 'object', additionalProperties: { type: 'string' } },
                  },
                },
              },
            },
          },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return { secrets: await secrets.read(request.actor, request.params.id) };
    },
  );
}
