import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../../db/database.ts';
import type { Actor } from '../../tenancy/access.ts';
import {
  changeRole,
  createOwnToken,
  type MemberFilter,
  ownTokens,
  removeFromTeam,
  revokeOwnToken,
  teamMembers,
} from '../../tenancy/team-admin.ts';
import { parseRole, TEAM_ROLES } from '../../tenancy/teams.ts';
import type { TokenInfo } from '../../tenancy/tokens.ts';
import { errorResponses, teamQuery, type TeamQuery } from './common.ts';
import { num, str } from '../vercel-shapes.ts';

const authTokenSchema = {
  type: 'object',
  required: ['id', 'name', 'type', 'activeAt', 'createdAt'],
  properties: {
    id: str,
    name: str,
    type: { type: 'string', enum: ['oauth2-token'] },
    origin: { type: 'string', enum: ['manual'] },
    activeAt: { ...num, description: 'Its last use (its creation when never used)' },
    createdAt: num,
    expiresAt: num,
    revokedAt: num,
    scopes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type', 'teamId', 'createdAt'],
        properties: { type: { type: 'string', enum: ['team'] }, teamId: str, createdAt: num, origin: { type: 'string', enum: ['manual'] } },
      },
      description: "The token's default team",
    },
  },
};

const toAuthToken = (token: TokenInfo) => ({
  id: token.id,
  name: token.name,
  type: 'oauth2-token' as const,
  origin: 'manual' as const,
  activeAt: (token.lastUsedAt ?? token.createdAt).getTime(),
  createdAt: token.createdAt.getTime(),
  ...(token.expiresAt && { expiresAt: token.expiresAt.getTime() }),
  ...(token.revokedAt && { revokedAt: token.revokedAt.getTime() }),
  scopes: [{ type: 'team' as const, teamId: token.defaultTeamId, createdAt: token.createdAt.getTime(), origin: 'manual' as const }],
});

const memberSchema = {
  type: 'object',
  required: ['uid', 'email', 'username', 'role', 'confirmed'],
  properties: {
    uid: str,
    email: str,
    username: str,
    name: { type: ['string', 'null'] },
    role: { type: 'string', enum: [...TEAM_ROLES] },
    confirmed: { type: 'boolean' },
    createdAt: num,
  },
};

const teamParams = { type: 'object', required: ['teamId'], properties: { teamId: str } };
const memberParams = { type: 'object', required: ['teamId', 'uid'], properties: { teamId: str, uid: str } };
const pagination = (count: number, hasNext = false) => ({ count, hasNext, next: null, prev: null });
const paginationSchema = {
  type: 'object',
  required: ['count', 'hasNext', 'next', 'prev'],
  properties: {
    count: num,
    hasNext: { type: 'boolean', description: 'Whether more matched than `limit` let through (no cursor: raise the limit)' },
    next: { type: ['number', 'null'] },
    prev: { type: ['number', 'null'] },
  },
};
/** The filters @vercel/sdk's teams.getTeamMembers sends (its `since`, `until` and project filters are not kept: there is no cursor). */
const membersQuery = {
  type: 'object',
  properties: {
    ...teamQuery,
    role: { type: 'string', maxLength: 40, description: 'Only members with this role' },
    search: { type: 'string', maxLength: 200, description: 'Only members whose email, username or name contains this' },
    limit: { type: 'integer', minimum: 1, maximum: 100, description: 'At most this many members' },
  },
};

/**
 * A team's members and a user's own access tokens, at Vercel's paths (`vercel teams`, the SDK's
 * teams.getTeamMembers / updateTeamMember / removeTeamMember and authentication.*AuthToken):
 * what the dashboard's Team page shows and changes. The operator's CLI does the same with no user.
 */
export default async function teamAdminRoutes(app: FastifyInstance, options: { db: Database }) {
  const { db } = options;
  /** The actor for the team in the path (as `teamId` in the query names it elsewhere). */
  const actorOf = async (request: FastifyRequest<{ Params: { teamId: string } }>): Promise<Actor> =>
    app.access.actor(request.principal, { teamId: request.params.teamId });

  app.get<{ Params: { teamId: string }; Querystring: TeamQuery & MemberFilter }>(
    '/v3/teams/:teamId/members',
    {
      schema: {
        operationId: 'getTeamMembers',
        summary: "List the team's members and their roles",
        tags: ['teams'],
        params: teamParams,
        querystring: membersQuery,
        response: {
          200: {
            type: 'object',
            required: ['members', 'pagination'],
            properties: { members: { type: 'array', items: memberSchema }, pagination: paginationSchema },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { role, search, limit } = request.query;
      const { members, more } = await teamMembers(db, await actorOf(request), { role, search, limit });
      return {
        members: members.map((member) => ({
          uid: member.id,
          email: member.email,
          username: member.username,
          name: member.name,
          role: member.role,
          confirmed: true,
          createdAt: member.createdAt.getTime(),
        })),
        pagination: pagination(members.length, more),
      };
    },
  );

  app.patch<{ Params: { teamId: string; uid: string }; Body: { role: string } }>(
    '/v1/teams/:teamId/members/:uid',
    {
      schema: {
        operationId: 'updateTeamMember',
        summary: "Change a member's role (team owners; the team keeps one owner at least)",
        tags: ['teams'],
        params: memberParams,
        body: { type: 'object', required: ['role'], properties: { role: str } },
        response: { 200: { type: 'object', required: ['id'], properties: { id: str } }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      await changeRole(db, await actorOf(request), request.params.uid, parseRole(request.body.role));
      return { id: request.params.uid };
    },
  );

  app.delete<{ Params: { teamId: string; uid: string } }>(
    '/v1/teams/:teamId/members/:uid',
    {
      schema: {
        operationId: 'removeTeamMember',
        summary: 'Remove a member (team owners), or leave the team (your own uid); their tokens for the team are revoked',
        tags: ['teams'],
        params: memberParams,
        response: { 200: { type: 'object', required: ['id'], properties: { id: str } }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      await removeFromTeam(db, await actorOf(request), request.params.uid);
      return { id: request.params.uid };
    },
  );

  app.get<{ Querystring: TeamQuery }>(
    '/v6/user/tokens',
    {
      schema: {
        operationId: 'listAuthTokens',
        summary: "The caller's own access tokens (never their values), newest first",
        tags: ['account'],
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'object',
            required: ['tokens', 'pagination'],
            properties: { tokens: { type: 'array', items: authTokenSchema }, pagination: paginationSchema },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const tokens = await ownTokens(db, request.actor);
      return { tokens: tokens.map(toAuthToken), pagination: pagination(tokens.length) };
    },
  );

  app.post<{ Querystring: TeamQuery; Body: { name: string; expiresAt?: number } }>(
    '/v3/user/tokens',
    {
      schema: {
        operationId: 'createAuthToken',
        summary: 'Create an access token of your own for the team the request acts on; its value is in this answer only',
        tags: ['account'],
        querystring: { type: 'object', properties: teamQuery },
        body: { type: 'object', required: ['name'], properties: { name: str, expiresAt: num } },
        response: {
          200: { type: 'object', required: ['token', 'bearerToken'], properties: { token: authTokenSchema, bearerToken: str } },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const { token, value } = await createOwnToken(db, request.actor, request.body);
      reply.header('cache-control', 'no-store');
      return { token: toAuthToken(token), bearerToken: value };
    },
  );

  app.delete<{ Params: { tokenId: string }; Querystring: TeamQuery }>(
    '/v3/user/tokens/:tokenId',
    {
      schema: {
        operationId: 'deleteAuthToken',
        summary: 'Revoke an access token of your own (`current`: the one this request uses)',
        tags: ['account'],
        params: { type: 'object', required: ['tokenId'], properties: { tokenId: str } },
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: { type: 'object', required: ['tokenId'], properties: { tokenId: str } }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ({ tokenId: await revokeOwnToken(db, request.actor, request.params.tokenId) }),
  );
}
