import type { FastifyInstance, FastifyReply } from 'fastify';
import { parseIdempotencyKey } from '../../stores/idempotency.ts';
import type { StoreConnections } from '../../stores/connections.ts';
import type { CreateStoreInput, StoreService, StoreView } from '../../stores/store-service.ts';
import type { StoreUpdates, UpdateStoreInput } from '../../stores/store-updates.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { storeBody } from '../store-shapes.ts';
import { SOURCES, toBillingPlan } from '../vercel-shapes.ts';
import { errorResponses, pageQuery, teamQuery, type PageQuery, type TeamQuery, metadataValue } from './common.ts';

const tags = ['storage'];

const createBody = {
  type: 'object',
  required: ['name', 'integrationConfigurationId', 'integrationProductIdOrSlug'],
  properties: {
    name: { type: 'string', maxLength: 128, description: 'Human-readable name for the storage resource' },
    integrationConfigurationId: { type: 'string', description: 'ID of your integration configuration' },
    integrationProductIdOrSlug: { type: 'string', description: 'ID or slug of the product' },
    metadata: { type: 'object', additionalProperties: metadataValue, description: "Validated against the product's metadataSchema" },
    externalId: { type: 'string', maxLength: 256 },
    protocolSettings: { type: 'object', additionalProperties: true },
    source: { type: 'string', enum: [...SOURCES], default: 'marketplace' },
    billingPlanId: { type: 'string' },
    paymentMethodId: { type: 'string' },
    prepaymentAmountCents: { type: 'number', description: "At least 50, within the plan's minimum and maximum" },
  },
};

const updateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: createBody.properties.name,
    metadata: {
      ...createBody.properties.metadata,
      description: "Settings to change, validated against the product's metadataSchema; those not named keep their values",
    },
    billingPlanId: { type: 'string', description: 'A plan from GET /v1/storage/stores/{id}/plans' },
    paymentMethodId: createBody.properties.paymentMethodId,
    prepaymentAmountCents: createBody.properties.prepaymentAmountCents,
  },
};

const connectBody = {
  type: 'object',
  required: ['projectId'],
  properties: {
    projectId: { type: 'string' },
    envVarEnvironments: { type: 'array', items: { type: 'string' } },
    makeEnvVarsSensitive: {
      type: 'boolean',
      description:
        'Variables never read back. Unset: true when a connection of the store already is sensitive; false then needs a team OWNER or the user who installed the integration (403 otherwise)',
    },
    envVarPrefix: { type: 'string' },
    type: { type: 'string', enum: ['integration'] },
  },
};

const storeResponse = { type: 'object', required: ['store'], properties: { store: { $ref: 'Store#' } } };
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string' } } };

/** Stores: create (the marketplace's one-call create), read, list, delete, and project connections. */
export default async function storesRoutes(
  app: FastifyInstance,
  options: { stores: StoreService; updates: StoreUpdates; connections: StoreConnections },
) {
  const { stores, updates, connections } = options;

  app.post<{ Querystring: TeamQuery; Body: CreateStoreInput }>(
    '/v1/storage/stores/integration/direct',
    {
      config: { rateLimit: 'stores.create' },
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'createIntegrationStoreDirect',
        summary: 'Create an integration store (validates metadata, picks or checks the plan, authorizes billing, provisions)',
        tags,
        querystring: { type: 'object', properties: teamQuery },
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': { type: 'string', description: 'Repeats with the same key and body return the first response' },
          },
        },
        body: createBody,
        response: { 200: storeResponse, ...errorResponses(400, 401, 402, 403, 404, 409, 429, 502, 503) },
      },
    },
    async (request) => {
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      return stores.create(request.actor, request.body, { idempotencyKey, render: (view) => ({ store: storeBody(view) }) });
    },
  );

  app.get<{ Querystring: TeamQuery & PageQuery }>(
    '/v1/storage/stores',
    {
      schema: {
        operationId: 'listStores',
        summary: "List the team's stores, newest first",
        tags,
        querystring: {
          type: 'object',
          properties: {
            ...pageQuery(100, 1000),
            ...teamQuery,
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['stores', 'pagination'],
            properties: {
              stores: { type: 'array', items: { $ref: 'Store#' } },
              pagination: { $ref: 'Pagination#' },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { limit = 100, until, from } = request.query;
      const { page, views } = await stores.list(request.actor, { limit, until: until ?? from });
      return { stores: views.map(storeBody), pagination: { count: views.length, next: page.next, prev: null } };
    },
  );

  // A store's JSON, by the view it was made of: StoreService.get hands out the same view between
  // changes, so a store read again is not built and serialized again (both routes share a schema).
  const bodies = new WeakMap<StoreView, string>();
  const getStore = async (request: { actor: Parameters<StoreService['get']>[0]; params: { id: string } }, reply: FastifyReply) => {
    const view = await stores.get(request.actor, request.params.id);
    let body = bodies.get(view);
    if (body === undefined) {
      body = reply.serialize({ store: storeBody(view) }) as string;
      bodies.set(view, body);
    }
    return reply.type('application/json; charset=utf-8').send(body);
  };
  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/storage/stores/:id',
    {
      schema: {
        operationId: 'getStore',
        summary: 'Get a store',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: storeResponse, ...errorResponses(400, 401, 403, 404) },
      },
    },
    getStore,
  );
  // @vercel/sdk's storage.getStorageStoresById: unversioned, and sent without a token by the SDK
  // (pass `Authorization` in the call's headers): a store is never shown to an unknown caller.
  app.get<{ Params: { id: string }; Querystring: TeamQuery & { 'skip-metadata'?: boolean; 'include-guides'?: boolean } }>(
    '/storage/stores/:id',
    {
      schema: {
        operationId: 'getStorageStoresById',
        summary: 'Get a store (unversioned path of @vercel/sdk; needs the Authorization header)',
        tags,
        params: idParams,
        querystring: {
          type: 'object',
          properties: { 'skip-metadata': { type: 'boolean' }, 'include-guides': { type: 'boolean' }, ...teamQuery },
        },
        response: { 200: storeResponse, ...errorResponses(400, 401, 403, 404) },
      },
    },
    getStore,
  );

  app.patch<{ Params: { id: string }; Querystring: TeamQuery; Body: UpdateStoreInput }>(
    '/v1/storage/stores/:id',
    {
      config: { rateLimit: 'stores.update' },
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'updateStore',
        summary: "Change a store's name, settings or plan: its provider is told (a paid plan is authorized as on create)",
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        body: updateBody,
        response: { 200: storeResponse, ...errorResponses(400, 401, 402, 403, 404, 409, 429, 502, 503) },
      },
    },
    async (request) => ({ store: storeBody(await updates.update(request.actor, request.params.id, request.body)) }),
  );

  app.get<{ Params: { id: string }; Querystring: TeamQuery & { metadata?: string } }>(
    '/v1/storage/stores/:id/plans',
    {
      schema: {
        operationId: 'getStorePlans',
        summary: "List the plans a store may change to, as its provider offers them (for the metadata given, merged over the store's)",
        tags,
        params: idParams,
        querystring: {
          type: 'object',
          properties: { metadata: { type: 'string', description: 'Settings being changed, as a JSON object' }, ...teamQuery },
        },
        response: {
          200: { type: 'object', required: ['plans'], properties: { plans: { type: 'array', items: { $ref: 'BillingPlan#' } } } },
          // The provider's answer passed on: a partner server's 400, 404 and 409 as they are.
          ...errorResponses(400, 401, 403, 404, 409, 502, 503),
        },
      },
    },
    async (request) => {
      const plans = await updates.plans(request.actor, request.params.id, request.query.metadata);
      return { plans: plans.map(toBillingPlan) };
    },
  );

  app.delete<{ Params: { id: string }; Querystring: TeamQuery & { disconnect?: boolean } }>(
    '/v1/storage/stores/integration/:id',
    {
      schema: {
        operationId: 'deleteIntegrationStore',
        summary: 'Delete an integration store: deprovisions it (refused while projects are connected, unless disconnect=true)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: { disconnect: { type: 'boolean', default: false }, ...teamQuery } },
        response: {
          200: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
          ...errorResponses(400, 401, 403, 404, 409, 502, 503),
        },
      },
    },
    async (request) => {
      await stores.delete(request.actor, request.params.id, { disconnect: request.query.disconnect === true });
      return { id: request.params.id };
    },
  );

  app.post<{
    Params: { integrationConfigurationId: string; resourceId: string };
    Querystring: TeamQuery;
    Body: { projectId: string; envVarEnvironments?: string[]; makeEnvVarsSensitive?: boolean };
  }>(
    '/v1/integrations/installations/:integrationConfigurationId/resources/:resourceId/connections',
    {
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'connectIntegrationResourceToProject',
        summary: "Connect a store to a project: its secrets become the project's environment variables",
        tags: ['integrations'],
        params: {
          type: 'object',
          required: ['integrationConfigurationId', 'resourceId'],
          properties: {
            integrationConfigurationId: { type: 'string' },
            resourceId: { type: 'string', description: "The store's id (or the provider's externalResourceId)" },
          },
        },
        querystring: { type: 'object', properties: teamQuery },
        body: connectBody,
        response: { 201: { type: 'null', description: 'Connected' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { integrationConfigurationId, resourceId } = request.params;
      await connections.connect(request.actor, { installationId: integrationConfigurationId, resourceId }, request.body);
      return reply.code(201).send();
    },
  );

  // The `vercel` CLI's own connection endpoints, by store id.
  app.post<{
    Params: { id: string };
    Querystring: TeamQuery;
    Body: { projectId: string; envVarEnvironments?: string[]; envVarPrefix?: string };
  }>(
    '/v1/storage/stores/:id/connections',
    {
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'connectStore',
        summary: 'Connect a store to a project (as the vercel CLI does)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        body: connectBody,
        response: { 201: { type: 'null', description: 'Connected' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await connections.connect(request.actor, { resourceId: request.params.id }, request.body);
      return reply.code(201).send();
    },
  );

  app.delete<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/storage/stores/:id/connections',
    {
      schema: {
        operationId: 'disconnectStoreFromAllProjects',
        summary: 'Disconnect a store from every project (removes the environment variables it made)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 204: { type: 'null', description: 'Disconnected' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await connections.disconnect(request.actor, request.params.id, 'all');
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: { id: string; connectionId: string }; Querystring: TeamQuery }>(
    '/v1/storage/stores/:id/connections/:connectionId',
    {
      schema: {
        operationId: 'disconnectStore',
        summary: 'Disconnect a store from one project, by connection id (projectsMetadata[].id), project id or name',
        tags,
        params: {
          type: 'object',
          required: ['id', 'connectionId'],
          properties: { id: { type: 'string' }, connectionId: { type: 'string' } },
        },
        querystring: { type: 'object', properties: teamQuery },
        response: { 204: { type: 'null', description: 'Disconnected' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      await connections.disconnect(request.actor, request.params.id, { connection: request.params.connectionId });
      return reply.code(204).send();
    },
  );
}
