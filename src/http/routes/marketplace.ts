import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog } from '../../catalog/catalog.ts';
import type { MarketplaceRateLimit } from '../../config.ts';
import type { Database } from '../../db/database.ts';
import { revokeCredential, rotateCredential, type ClientCredentials } from '../../partners/installation-credentials.ts';
import { updateInstallation, type InstallationChange } from '../../partners/installation-status.ts';
import type {
  MarketplaceApi,
  MarketplaceEvent,
  PartnerInstallation,
  ResourceChange,
  ResourceImport,
} from '../../partners/marketplace-api.ts';
import type { Secret } from '../../providers/provider.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { errorResponses } from './common.ts';
import { accountInfoSchema, memberSchema, resourceListSchema, resourceNameSchema, resourceSchema } from '../marketplace-shapes.ts';
import {
  eventBody,
  importBody,
  installationChangeBody,
  resourceChangeBody,
  revokeBody,
  rotateBody,
  secretsBody,
} from '../marketplace-bodies.ts';
import type { BillingHistory } from '../../billing/billing-history.ts';
import type { Invoices } from '../../billing/invoices.ts';
import marketplaceBillingRoutes from './marketplace-billing.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** On marketplace API routes: the installation the partner's access token speaks for. */
    partner: PartnerInstallation;
  }
}

const tags = ['marketplace'];
// Besides the statuses every route shares (openapi-responses.ts; 429 on the routes with a limit):
// 401 for a token that is not an installation's, 403 for another installation's.
const errors = (...statuses: number[]) => errorResponses(401, 403, ...statuses);
const recorded = { type: 'null', description: 'Recorded' };

const text = { type: 'string', minLength: 1 };

const installationParams = { type: 'object', required: ['installationId'], properties: { installationId: text } };
const resourceParams = {
  type: 'object',
  required: ['installationId', 'resourceId'],
  properties: { installationId: text, resourceId: text },
};

type Params = { installationId: string; resourceId: string };

/**
 * The marketplace API partner servers call back with their installation's access token (not a
 * user's): it needs no team query, and a token works only on its own installation's paths.
 */
export default async function marketplaceRoutes(
  app: FastifyInstance,
  options: { api: MarketplaceApi; db: Database; catalog: () => Catalog; invoices: Invoices; history: BillingHistory },
) {
  const { api, db, catalog, invoices, history } = options;
  app.setValidatorCompiler(exactBodies);
  app.decorateRequest('partner', null as unknown as PartnerInstallation);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const { installationId } = request.params as { installationId: string };
    request.partner = await api.authenticate(request.headers.authorization, installationId);
  });
  // `public`: these routes do not take users' tokens; the hook above checks the installation's.
  const config = { public: true };
  /** A route with a rate limit of its own, counted per installation (docs/partner-api.md §7), once its token is checked. */
  const limited = (name: MarketplaceRateLimit) => ({
    ...config,
    rateLimit: { name, key: (request: FastifyRequest) => request.partner.installationId },
  });
  const created = (reply: FastifyReply) => reply.code(201).send();

  app.get<{ Params: Params }>(
    '/v1/installations/:installationId/account',
    {
      config: limited('marketplace.account'),
      schema: {
        operationId: 'getAccountInfo',
        summary: "The installation's team and its best contact",
        tags,
        params: installationParams,
        response: { 200: accountInfoSchema, ...errors(404) },
      },
    },
    async (request) => api.account(request.partner),
  );

  app.get<{ Params: Params & { memberId: string } }>(
    '/v1/installations/:installationId/member/:memberId',
    {
      config: limited('marketplace.members'),
      schema: {
        operationId: 'getMember',
        summary: "A member of the installation's team and their role for the partner",
        tags,
        params: { type: 'object', required: ['installationId', 'memberId'], properties: { installationId: text, memberId: text } },
        response: { 200: memberSchema, ...errors(404) },
      },
    },
    async (request) => api.member(request.partner, request.params.memberId),
  );

  app.patch<{ Params: Params; Body: InstallationChange }>(
    '/v1/installations/:installationId',
    {
      config: limited('marketplace.installations'),
      schema: {
        operationId: 'updateInstallation',
        summary: 'The partner reports the installation\'s status, its own id for it, its plan or a notification (null or "" clears it)',
        tags,
        params: installationParams,
        body: installationChangeBody,
        response: { 204: recorded, ...errors(404) },
      },
    },
    async (request, reply) => {
      await updateInstallation(db, request.partner, request.body);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: Params; Body: ClientCredentials }>(
    '/v1/installations/:installationId/credentials/rotate',
    {
      config: limited('marketplace.credentials'),
      schema: {
        operationId: 'rotateInstallationCredential',
        summary: "A new access token for the installation, with the integration's client secret; the old one works until revoked",
        tags,
        params: installationParams,
        body: rotateBody,
        response: {
          200: {
            type: 'object',
            required: ['access_token', 'expires_in', 'scope', 'token_type'],
            properties: {
              access_token: { type: 'string' },
              expires_in: {
                type: 'number',
                description: '0: the token does not expire (it works until revoked, or the installation is removed)',
              },
              scope: { type: 'string' },
              token_type: { type: 'string', enum: ['oauth2-token'] },
            },
          },
          ...errors(),
        },
      },
    },
    async (request) => rotateCredential(db, catalog(), request.partner, request.body),
  );

  app.post<{ Params: Params; Body: ClientCredentials & { token: string } }>(
    '/v1/installations/:installationId/credentials/revoke',
    {
      config: limited('marketplace.credentials'),
      schema: {
        operationId: 'revokeInstallationCredential',
        summary: "Revoke one of the installation's access tokens, with the integration's client secret (never its last live one)",
        tags,
        params: installationParams,
        body: revokeBody,
        response: {
          200: {
            type: 'object',
            required: ['revoked', 'already_revoked'],
            properties: { revoked: { type: 'boolean' }, already_revoked: { type: 'boolean' } },
          },
          ...errors(409),
        },
      },
    },
    async (request) => revokeCredential(db, request.partner, request.body),
  );

  app.post<{ Params: Params; Body: { event: MarketplaceEvent } }>(
    '/v1/installations/:installationId/events',
    {
      config: limited('marketplace.events'),
      schema: {
        operationId: 'createEvent',
        summary: 'The partner reports a change: resource.updated (the resource is read again) or installation.updated',
        tags,
        params: installationParams,
        body: eventBody,
        // 404/409 also when the partner answers so to the read back of the resource; its other failures are 502.
        response: { 201: recorded, ...errors(404, 409, 502) },
      },
    },
    async (request, reply) => {
      await api.event(request.partner, request.body.event);
      return created(reply);
    },
  );

  app.get<{ Params: Params }>(
    '/v1/installations/:installationId/resources',
    {
      config,
      schema: {
        operationId: 'getIntegrationResources',
        summary: "The installation's resources",
        tags,
        params: installationParams,
        response: { 200: resourceListSchema, ...errors() },
      },
    },
    async (request) => api.listResources(request.partner),
  );

  app.get<{ Params: Params }>(
    '/v1/installations/:installationId/resources/:resourceId',
    {
      config,
      schema: {
        operationId: 'getIntegrationResource',
        summary: "A resource, by the partner's id",
        tags,
        params: resourceParams,
        response: { 200: resourceSchema, ...errors(404) },
      },
    },
    async (request) => api.getResource(request.partner, request.params.resourceId),
  );

  app.put<{ Params: Params; Body: ResourceImport }>(
    '/v1/installations/:installationId/resources/:resourceId',
    {
      config: limited('marketplace.imports'),
      schema: {
        operationId: 'importResource',
        summary: 'Import (upsert) a resource the partner created on its side',
        tags,
        params: resourceParams,
        body: importBody,
        // 403 also for a team at its store quota; 404 for an unknown product; 409 for a name the team's stores have.
        response: { 200: resourceNameSchema, ...errors(404, 409) },
      },
    },
    async (request) => api.importResource(request.partner, request.params.resourceId, request.body),
  );

  app.patch<{ Params: Params; Body: ResourceChange }>(
    '/v1/installations/:installationId/resources/:resourceId',
    {
      config,
      schema: {
        operationId: 'updateResource',
        summary: 'The partner changed the resource: name, status, metadata, notification or secrets',
        tags,
        params: resourceParams,
        body: resourceChangeBody,
        // 409: a name another of the team's stores has, or secrets clashing with a connected project's variables.
        response: { 200: resourceNameSchema, ...errors(404, 409) },
      },
    },
    async (request) => api.updateResource(request.partner, request.params.resourceId, request.body ?? {}),
  );

  app.delete<{ Params: Params }>(
    '/v1/installations/:installationId/resources/:resourceId',
    {
      config,
      schema: {
        operationId: 'deleteIntegrationResource',
        summary: 'The partner deleted the resource on its side',
        tags,
        params: resourceParams,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errors(404) },
      },
    },
    async (request, reply) => {
      await api.deleteResource(request.partner, request.params.resourceId);
      return reply.code(204).send();
    },
  );

  const putSecrets = async (
    request: FastifyRequest<{ Params: Params; Body: { secrets: Secret[]; partial?: boolean } }>,
    reply: FastifyReply,
  ) => {
    await api.updateSecrets(request.partner, request.params.resourceId, request.body.secrets, request.body.partial ?? false);
    return created(reply);
  };
  app.put<{ Params: Params; Body: { secrets: Secret[]; partial?: boolean } }>(
    '/v1/installations/:installationId/resources/:resourceId/secrets',
    {
      config: limited('marketplace.secrets'),
      schema: {
        operationId: 'updateResourceSecretsById',
        summary: "Replace (or with partial, patch) the resource's secrets",
        tags,
        params: resourceParams,
        body: secretsBody,
        response: { 201: recorded, ...errors(404, 409) },
      },
    },
    putSecrets,
  );
  // The deprecated path, with the product in it: the same limit, counted together.
  app.put<{ Params: Params; Body: { secrets: Secret[]; partial?: boolean } }>(
    '/v1/installations/:installationId/products/:productIdOrSlug/resources/:resourceId/secrets',
    {
      config: limited('marketplace.secrets'),
      schema: {
        hide: true,
        params: { type: 'object', properties: { installationId: text, productIdOrSlug: text, resourceId: text } },
        body: secretsBody,
      },
    },
    putSecrets,
  );

  // Billing data, invoices and balances: their own module (src/billing/ behind it), under this one's token check.
  await app.register(marketplaceBillingRoutes, {
    invoices,
    history,
    limited: (name?: MarketplaceRateLimit) => (name === undefined ? config : limited(name)),
  });
}
