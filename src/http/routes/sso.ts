import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '../../errors.ts';
import { SSO_PATHS, type Sso, type SsoContext, type TokenRequest } from '../../partners/sso.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { unstorableInBody } from '../request-values.ts';
import { errorResponses, teamQuery, type TeamQuery } from './common.ts';

const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });

/** The context a user may open the provider on: Vercel's redirect parameters (src/partners/sso.ts). */
const contextQuery = {
  resource_id: { ...text(256), description: "A resource of the installation: Storehouse's store id or the partner's resource id" },
  product_id: {
    ...text(256),
    description: "A product of the integration, by id or slug (the partner receives its slug); a resource's own when absent",
  },
  project_id: { ...text(256), description: "A project of the installation's team" },
  invoice_id: text(256),
  check_id: text(256),
  experimentation_item_id: text(256),
  pr: { ...text(2000), description: "A pull request's URL" },
  path: { type: 'string', enum: [...SSO_PATHS], description: 'The section of the provider dashboard to open' },
  url: { ...text(2000), description: 'The target of an sso: link' },
  support: { type: 'boolean', description: 'The Support link was followed' },
};

/** The state of a provider-initiated SSO (`{state}` in the exchange's body has the same bound). */
const stateQuery = {
  state: {
    ...text(200),
    description:
      "The provider's own state, when it sent the user here (provider-initiated SSO): sent back beside the code; a random one when absent",
  },
};

const openParams = {
  type: 'object',
  required: ['integrationIdOrSlug', 'installationId'],
  properties: { integrationIdOrSlug: text(100), installationId: text(100) },
};

/** The exchange's body; fields OAuth clients add beside these are ignored, as the partner API asks (liberal in what it takes). */
const tokenBody = {
  type: 'object',
  required: ['code', 'client_id', 'client_secret'],
  properties: {
    code: text(200),
    state: text(200),
    client_id: text(200),
    client_secret: text(1000),
    redirect_uri: {
      ...text(2000),
      description: 'Accepted and not checked: Storehouse sends the code to the catalog’s redirectLoginUrl only',
    },
    grant_type: { ...text(100), description: 'authorization_code (the default); refresh grants are not offered' },
  },
};

const tokenAnswer = {
  type: 'object',
  required: ['id_token', 'access_token', 'token_type'],
  properties: {
    id_token: {
      type: 'string',
      description: "An RS256 JWT with the user's claims, signed with the keys at /.well-known/jwks; do not keep it",
    },
    access_token: { type: 'null' },
    token_type: { type: 'null' },
    expires_in: { type: 'number', description: 'Seconds the id_token is valid' },
  },
};

/**
 * An OAuth client's form body (`application/x-www-form-urlencoded`), as an object of strings: a
 * field sent twice is refused rather than one of its values picked, and so is a value no route
 * can store, as the JSON parser refuses it (json-body.ts).
 */
function parseForm(_request: FastifyRequest, body: string | Buffer, done: (error: Error | null, body?: unknown) => void) {
  const fields = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(body.toString())) {
    if (fields.has(key)) return done(badRequest(`Invalid request body: the form field "${key}" is sent more than once`));
    fields.set(key, value);
  }
  const form = Object.fromEntries(fields);
  const unstorable = unstorableInBody(form);
  return unstorable ? done(unstorable) : done(null, form);
}

/**
 * SSO, "Open in provider": Storehouse's own endpoint that sends a user to the integration's
 * Redirect Login URL with a one-time code, and the token exchange partner servers redeem it at
 * (Vercel's `POST /v1/integrations/sso/token`, authenticated by the client secret, not a user token).
 */
export default async function ssoRoutes(app: FastifyInstance, options: { sso: Sso }) {
  const { sso } = options;

  app.get<{ Params: { integrationIdOrSlug: string; installationId: string }; Querystring: SsoContext & TeamQuery & { state?: string } }>(
    '/_storehouse/sso/integrations/:integrationIdOrSlug/:installationId',
    {
      // Per user, as Vercel counts its "SSO redirect URI create" (20 a minute): each open keeps a code.
      config: { rateLimit: { name: 'sso.open', key: (request: FastifyRequest) => request.principal.userId } },
      // Each GET mints a code: a HEAD (a link checker, a prefetch) must not mint one it never shows.
      exposeHeadRoute: false,
      schema: {
        operationId: 'openInProvider',
        summary:
          "Open an installation (or its resource, invoice, project...) in the provider's dashboard: a redirect to the integration's redirectLoginUrl with mode=sso, a one-time code and the context; with Accept: application/json, that URL as {url}",
        tags: ['storehouse'],
        params: openParams,
        querystring: { type: 'object', properties: { ...contextQuery, ...stateQuery, ...teamQuery }, additionalProperties: false },
        response: {
          200: { type: 'object', required: ['url'], properties: { url: { type: 'string' } } },
          302: { type: 'null', description: "To the integration's redirectLoginUrl (Location)" },
          // 404: an installation none of the user's teams has, or a resource or project not its own; 409: an integration without SSO;
          // 405: a HEAD, which this path does not take (above).
          ...errorResponses(404, 405, 409),
        },
      },
    },
    async (request, reply) => {
      const { teamId: _teamId, slug: _slug, state, ...context } = request.query;
      const { integrationIdOrSlug, installationId } = request.params;
      const opened = await sso.open(request.principal.userId, integrationIdOrSlug, installationId, context, state);
      // The URL holds a live code: no cache may keep it.
      reply.header('cache-control', 'no-store');
      // A dashboard (fetch with the user's token) asks for the URL and opens it; a redirect otherwise.
      if (request.headers.accept?.includes('application/json')) return opened;
      return reply.redirect(opened.url, 302);
    },
  );

  await app.register(async (exchange) => {
    exchange.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, parseForm);
    // Bodies checked as sent: no coercion (a form's values are strings already).
    exchange.setValidatorCompiler(exactBodies);
    exchange.post<{ Body: TokenRequest }>(
      '/v1/integrations/sso/token',
      {
        // `public`: the partner's server authenticates with the integration's client secret, not a user token.
        config: { public: true },
        schema: {
          operationId: 'exchangeSsoToken',
          summary: "SSO token exchange: the partner's server trades a one-time code (and its client secret) for the user's id_token",
          tags: ['marketplace'],
          body: tokenBody,
          // 400: an unknown, used or expired code, a wrong state; 403: a client id or secret that is not the code's integration's.
          response: { 200: tokenAnswer, ...errorResponses(403) },
        },
      },
      async (request, reply) => {
        reply.header('cache-control', 'no-store');
        return sso.exchange(request.body);
      },
    );
  });
}
