import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import { teamsOf } from '../../tenancy/teams.ts';
import { str } from '../vercel-shapes.ts';
import { errorResponses } from './common.ts';

const tags = ['account'];
const teamSchema = {
  type: 'object',
  required: ['id', 'slug', 'name'],
  properties: {
    id: str,
    slug: str,
    name: str,
    createdAt: { type: 'number' },
    membership: { type: 'object', properties: { role: str } },
  },
};

/**
 * `GET /v2/teams`, what `vercel teams ls` calls: the teams of the token's user, oldest first, a
 * page at a time. `next` is the previous page's `pagination.next` (the CLI's `--next`), the
 * position of the page's first team; a user belongs to few teams, so a position is enough.
 */
export default async function teamsRoutes(app: FastifyInstance, options: { db: Database }) {
  const { db } = options;

  app.get<{ Querystring: { limit?: number; next?: number } }>(
    '/v2/teams',
    {
      schema: {
        operationId: 'getTeamsV2',
        summary: "The teams the token's user belongs to, a page at a time (what `vercel teams ls` reads)",
        tags,
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            next: { type: 'integer', minimum: 0, description: 'The `pagination.next` of the previous page' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['teams', 'pagination'],
            properties: { teams: { type: 'array', items: teamSchema }, pagination: { $ref: 'Pagination#' } },
          },
          ...errorResponses(400, 401),
        },
      },
    },
    async (request) => {
      const { limit = 20, next: from = 0 } = request.query;
      const all = await teamsOf(db, request.principal.userId);
      const page = all.slice(from, from + limit);
      const next = from + limit < all.length ? from + limit : null;
      return {
        teams: page.map((t) => ({ id: t.id, slug: t.slug, name: t.name, createdAt: t.createdAt.getTime(), membership: { role: t.role } })),
        pagination: { count: page.length, next, prev: from > 0 ? Math.max(0, from - limit) : null },
      };
    },
  );
}
