import type { FastifyInstance } from 'fastify';
import { AppError, badRequest, unauthorized } from '../../errors.ts';
import type { Access } from '../../tenancy/access.ts';
import type { DashboardSessions, SignedIn } from '../../tenancy/dashboard-sessions.ts';
import { roleIn } from '../../tenancy/teams.ts';
import type { Database } from '../../db/database.ts';
import { errorResponses } from './common.ts';
import { clientAddressKey } from '../auth.ts';
import { requestSessionSecret, setSessionCookie } from '../session-cookie.ts';
import type { RateLimits } from '../rate-limit.ts';
import { str } from '../vercel-shapes.ts';

const tags = ['storehouse'];

const sessionSchema = {
  type: 'object',
  required: ['user', 'team', 'csrfToken'],
  properties: {
    user: {
      type: 'object',
      required: ['id', 'email', 'username'],
      properties: { id: str, email: str, username: str, name: { type: ['string', 'null'] } },
    },
    team: {
      type: 'object',
      required: ['id', 'slug', 'name', 'role'],
      properties: { id: str, slug: str, name: str, role: str },
      description: "The session's default team (others are chosen with `teamId`, as with a token)",
    },
    csrfToken: { ...str, description: 'Send it in the `x-storehouse-csrf` header with every write this session makes' },
  },
};

/**
 * Storehouse's own endpoints for the web dashboard's sign-in: a session from an access token or a
 * one-time link code (its cookie set here), who the session is, and signing out. Everything else
 * the dashboard does goes through the public API with the session's cookie (src/http/auth.ts).
 */
export default async function dashboardSessionRoutes(
  app: FastifyInstance,
  options: { sessions: DashboardSessions; access: Access; db: Database; limits?: RateLimits },
) {
  const { sessions, access, db, limits } = options;

  const signedInBody = async (signedIn: Pick<SignedIn, 'user' | 'team' | 'csrfToken'>) => ({
    user: { id: signedIn.user.id, email: signedIn.user.email, username: signedIn.user.username, name: signedIn.user.name },
    team: {
      id: signedIn.team.id,
      slug: signedIn.team.slug,
      name: signedIn.team.name,
      role: (await roleIn(db, signedIn.team.id, signedIn.user.id)) ?? 'VIEWER',
    },
    csrfToken: signedIn.csrfToken,
  });

  app.post<{ Body: { token?: string; code?: string } }>(
    '/_storehouse/dashboard/session',
    {
      config: { public: true },
      schema: {
        operationId: 'createDashboardSession',
        summary: 'Sign in to the dashboard with an access token or a one-time link code; sets the session cookie',
        tags,
        security: [],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            token: { type: 'string', minLength: 1, maxLength: 200, description: 'An access token (its user, its default team)' },
            code: { type: 'string', minLength: 1, maxLength: 200, description: 'A one-time code from a sign-in link' },
          },
        },
        response: { 200: sessionSchema, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request, reply) => {
      const { token, code } = request.body ?? {};
      if ((token === undefined) === (code === undefined))
        throw badRequest('Send either `token` (an access token) or `code` (from a sign-in link)');
      // Failed sign-ins count with failed bearer tokens, per client address (STOREHOUSE_AUTH_FAILURE_LIMIT).
      const address = clientAddressKey(request.ip);
      if (limits?.limitsAuthFailures && limits.failuresSpent(address)) limits.refuseAddress(address, reply);
      let signedIn: SignedIn;
      try {
        signedIn =
          token !== undefined
            ? await sessions.signInWithToken(await access.principal(`Bearer ${token}`))
            : await sessions.signInWithCode(code!);
      } catch (error) {
        if (limits?.limitsAuthFailures && error instanceof AppError && error.status === 401) {
          await limits.authFailure(address, reply, (refused) =>
            request.log.warn({ address: refused }, 'refusing a client address after too many failed dashboard sign-ins this minute'),
          );
        }
        throw error;
      }
      // Signing in again replaces the session this browser had: the old cookie's session ends
      // with it, rather than lasting on unseen until its idle time runs out.
      const previous = requestSessionSecret(request);
      if (previous !== undefined) await sessions.endBySecret(previous);
      setSessionCookie(reply, request, signedIn.secret, Math.floor((signedIn.expiresAt.getTime() - Date.now()) / 1000));
      reply.header('cache-control', 'no-store');
      return signedInBody(signedIn);
    },
  );

  app.get(
    '/_storehouse/dashboard/session',
    {
      schema: {
        operationId: 'getDashboardSession',
        summary: "The signed-in dashboard session: its user, default team and CSRF token (401 when the cookie's session has ended)",
        tags,
        response: { 200: sessionSchema, ...errorResponses(401) },
      },
    },
    async (request, reply) => {
      const session = request.dashboardSession;
      if (!session) throw unauthorized('No dashboard session: this endpoint answers the session cookie, not a bearer token');
      reply.header('cache-control', 'no-store');
      const user = await access.user(session.principal);
      return signedInBody({ user, team: request.actor.team, csrfToken: session.csrfToken });
    },
  );

  app.delete(
    '/_storehouse/dashboard/session',
    {
      schema: {
        operationId: 'deleteDashboardSession',
        summary: 'Sign out: ends the session on the server (its cookie is refused from then on) and clears the cookie',
        tags,
        response: { 204: { type: 'null' }, ...errorResponses(401, 403) },
      },
    },
    async (request, reply) => {
      const session = request.dashboardSession;
      if (!session) throw unauthorized('No dashboard session: this endpoint answers the session cookie, not a bearer token');
      await sessions.end(session.principal.tokenId);
      setSessionCookie(reply, request, '', 0);
      return reply.code(204).send();
    },
  );
}
