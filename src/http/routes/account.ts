import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import { forbidden } from '../../errors.ts';
import { teamsOf } from '../../tenancy/teams.ts';
import type { User } from '../../tenancy/users.ts';
import { errorResponses, teamQuery, type TeamQuery } from './common.ts';
import { str } from '../vercel-shapes.ts';

const tags = ['account'];
const teamSchema = {
  type: 'object',
  required: ['id', 'slug', 'name'],
  properties: { id: str, slug: str, name: str, createdAt: { type: 'number' }, membership: { type: 'object', properties: { role: str } } },
};

/**
 * Who the token is and which teams it may act on: what the `vercel` CLI asks before any other
 * call (its scope), so that `vercel --api <storehouse> integration list` finds its team.
 */
export default async function accountRoutes(app: FastifyInstance, options: { db: Database }) {
  const { db } = options;
  /** GET /v2/user's JSON by the user it shows, for the token's default team it was made with. */
  const bodies = new WeakMap<User, { defaultTeamId: string; body: string }>();

  app.get(
    '/v2/user',
    {
      schema: {
        operationId: 'getAuthUser',
        summary: "The token's user; `defaultTeamId` is the token's default team",
        tags,
        response: {
          200: {
            type: 'object',
            required: ['user'],
            properties: {
              user: {
                type: 'object',
                required: ['id', 'email', 'username', 'defaultTeamId', 'version'],
                properties: {
                  id: str,
                  email: str,
                  username: str,
                  name: { type: ['string', 'null'] },
                  defaultTeamId: str,
                  version: { type: 'string', enum: ['northstar'] },
                },
              },
            },
          },
          ...errorResponses(401),
        },
      },
    },
    async (request, reply) => {
      const user = await app.access.user(request.principal);
      const { defaultTeamId } = request.principal;
      // Kept beside the user Access.user hands out (the same object between changes to users):
      // what every call of the CLI asks is not built and serialized again each time.
      const kept = bodies.get(user);
      if (kept?.defaultTeamId === defaultTeamId) return reply.type('application/json; charset=utf-8').send(kept.body);
      const body = reply.serialize({
        user: { id: user.id, email: user.email, username: user.username, name: user.name, defaultTeamId, version: 'northstar' },
      }) as string;
      bodies.set(user, { defaultTeamId, body });
      return reply.type('application/json; charset=utf-8').send(body);
    },
  );

  app.get(
    '/v1/teams',
    {
      schema: {
        operationId: 'getTeams',
        summary: "The teams the token's user belongs to",
        tags,
        response: {
          200: {
            type: 'object',
            required: ['teams', 'pagination'],
            properties: { teams: { type: 'array', items: teamSchema }, pagination: { $ref: 'Pagination#' } },
          },
          ...errorResponses(401),
        },
      },
    },
    async (request) => {
      const teams = await teamsOf(db, request.principal.userId);
      return {
        teams: teams.map((t) => ({ id: t.id, slug: t.slug, name: t.name, createdAt: t.createdAt.getTime(), membership: { role: t.role } })),
        pagination: { count: teams.length, next: null, prev: null },
      };
    },
  );

  app.get<{ Params: { idOrSlug: string }; Querystring: TeamQuery }>(
    '/teams/:idOrSlug',
    {
      schema: {
        operationId: 'getTeam',
        summary: "One of the caller's teams, by id or slug",
        tags,
        params: { type: 'object', required: ['idOrSlug'], properties: { idOrSlug: str } },
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: teamSchema, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const team = (await teamsOf(db, request.principal.userId)).find(
        (t) => t.id === request.params.idOrSlug || t.slug === request.params.idOrSlug,
      );
      if (!team) throw forbidden('You do not have permission to access this team, or it does not exist.');
      return { id: team.id, slug: team.slug, name: team.name, createdAt: team.createdAt.getTime(), membership: { role: team.role } };
    },
  );
}
