import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Access, Actor, TeamSelector } from '../tenancy/access.ts';
import type { Principal } from '../tenancy/tokens.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Routes anyone may call without a token (health, the OpenAPI document). */
    public?: boolean;
  }
  interface FastifyRequest {
    principal: Principal;
    /** The caller and the team the request acts on (from `teamId`/`slug`, else the token's default team). */
    actor: Actor;
  }
}

/**
 * Every route but the public ones needs `Authorization: Bearer`: the token is checked first
 * (401), and once the query is validated the team is resolved from `teamId`/`slug` (403 for a
 * team the caller is not in).
 */
export const authPlugin = fp(async function authPlugin(app: FastifyInstance, options: { access: Access }) {
  const { access } = options;
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('actor', null as unknown as Actor);

  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (request.routeOptions.config.public || !request.routeOptions.url) return;
    request.principal = await access.principal(request.headers.authorization);
  });

  app.addHook('preHandler', async (request: FastifyRequest) => {
    if (!request.principal) return;
    const query = (request.query ?? {}) as TeamSelector;
    request.actor = await access.actor(request.principal, { teamId: query.teamId, slug: query.slug });
  });
});
