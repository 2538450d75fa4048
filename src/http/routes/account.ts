import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import { forbidden } from '../../errors.ts';
import { teamCreatorId, teamsOf } from '../../tenancy/teams.ts';
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

  /** One of the caller's teams by id or slug; a team they are not in is 403, as Vercel answers. */
  const callersTeam = async (userId: string, idOrSlug: string) => {
    const team = (await teamsOf(db, userId)).find((t) => t.id === idOrSlug || t.slug === idOrSlug);
    if (!team) throw forbidden('You do not have permission to access this team, or it does not exist.');
    return team;
  };

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
      const team = await callersTeam(request.principal.userId, request.params.idOrSlug);
      return { id: team.id, slug: team.slug, name: team.name, createdAt: team.createdAt.getTime(), membership: { role: team.role } };
    },
  );

  // @vercel/sdk's teams.getTeam: the same team with the fields its Team schema requires (a team
  // here has no avatar, description or billing of Vercel's, and is never renamed).
  const nullableStr = { type: 'string', nullable: true };
  app.get<{ Params: { teamId: string }; Querystring: TeamQuery }>(
    '/v2/teams/:teamId',
    {
      schema: {
        operationId: 'getTeamV2',
        summary: "One of the caller's teams, by id (or slug), as @vercel/sdk's teams.getTeam reads it",
        tags,
        params: { type: 'object', required: ['teamId'], properties: { teamId: str } },
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'object',
            required: [...teamSchema.required, 'avatar', 'billing', 'createdAt', 'creatorId', 'description', 'stagingPrefix', 'updatedAt'],
            properties: {
              ...teamSchema.properties,
              avatar: nullableStr,
              billing: { type: 'object', nullable: true },
              creatorId: str,
              description: nullableStr,
              stagingPrefix: str,
              updatedAt: { type: 'number' },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const team = await callersTeam(request.principal.userId, request.params.teamId);
      const createdAt = team.createdAt.getTime();
      return {
        id: team.id,
        slug: team.slug,
        name: team.name,
        avatar: null,
        billing: null,
        createdAt,
        updatedAt: createdAt,
        creatorId: (await teamCreatorId(db, team.id)) ?? request.principal.userId,
        description: null,
        stagingPrefix: team.slug,
        membership: { role: team.role },
      };
    },
  );
}
