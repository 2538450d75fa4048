import type { FastifyInstance } from 'fastify';
import type { SigningKeys } from '../../partners/signing-keys.ts';
import type { PublicUrls } from '../../runtime.ts';

/**
 * The public keys partner servers verify Storehouse's tokens with (jose's createRemoteJWKSet
 * reads `/.well-known/jwks`, as the official example integration does), and the OIDC discovery
 * document naming them. Both are public: a partner fetches them without a token.
 */
export default async function oidcRoutes(app: FastifyInstance, options: { keys: SigningKeys; urls: PublicUrls }) {
  const { keys, urls } = options;
  const jwks = async () => ({ keys: (await keys.published()).map((key) => key.jwk) });
  const jwksSchema = {
    summary: "Storehouse's token signing keys (JWKS)",
    tags: ['oidc'],
    response: {
      200: {
        type: 'object',
        required: ['keys'],
        properties: { keys: { type: 'array', items: { type: 'object', additionalProperties: true } } },
      },
    },
  };
  for (const path of ['/.well-known/jwks', '/.well-known/jwks.json']) {
    app.get(path, { config: { public: true }, schema: { ...jwksSchema, hide: path.endsWith('.json') } }, async (_request, reply) => {
      // Short, so a rotated key reaches partners that cache the set within a token's lifetime.
      reply.header('cache-control', 'public, max-age=60');
      return jwks();
    });
  }

  const strings = { type: 'array', items: { type: 'string' } };
  const discoverySchema = {
    summary: 'The OIDC discovery document: the issuer of the tokens partner servers receive, and where its keys are',
    tags: ['oidc'],
    response: {
      200: {
        type: 'object',
        required: ['issuer', 'jwks_uri', 'id_token_signing_alg_values_supported', 'subject_types_supported', 'response_types_supported'],
        properties: {
          issuer: { type: 'string' },
          jwks_uri: { type: 'string' },
          id_token_signing_alg_values_supported: strings,
          subject_types_supported: strings,
          response_types_supported: strings,
        },
      },
    },
  };
  app.get('/.well-known/openid-configuration', { config: { public: true }, schema: discoverySchema }, async () => ({
    issuer: urls.issuer(),
    jwks_uri: `${urls.publicUrl()}/.well-known/jwks`,
    id_token_signing_alg_values_supported: ['RS256'],
    subject_types_supported: ['public'],
    response_types_supported: ['id_token'],
  }));
}
