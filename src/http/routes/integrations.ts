import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Catalog } from '../../catalog/catalog.ts';
import type { Discovery } from '../../marketplace/discovery.ts';
import { errorResponses, teamQuery, type TeamQuery, configurationsQuery, type ConfigurationsQuery } from './common.ts';
import {
  billingPlanSchema,
  configurationSchema,
  productSchema,
  SOURCES,
  toBillingPlan,
  toConfiguration,
  toProduct,
} from '../vercel-shapes.ts';

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', description: 'ID of the integration configuration' } },
};
// 400, 401, 403 and the other statuses every route shares are added by openapi-responses.ts.
const errors = errorResponses(400, 401, 403, 404);
/** A partner server's answer is passed on: its 400, 404 and 409 as they are, its failures as 502, no answer as 503. */
const partnerErrors = errorResponses(400, 404, 409, 502, 503);
const tags = ['integrations'];

const MAX_CACHED_BODIES = 1000;

/** The discovery API: configurations, their products, and products' billing plans. */
export default async function integrationsRoutes(app: FastifyInstance, options: { discovery: Discovery }) {
  const { discovery } = options;
  const productBodies = new WeakMap<Catalog, Map<string, string>>();

  app.get<{ Querystring: ConfigurationsQuery }>(
    '/v1/integrations/configurations',
    {
      schema: {
        operationId: 'getConfigurations',
        summary: 'Get configurations for the authenticated user or team',
        tags,
        querystring: configurationsQuery,
        response: { 200: { type: 'array', items: { $ref: 'IntegrationConfiguration#' } }, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const found = await discovery.listConfigurations(request.actor, request.query);
      return found.map(({ installation, integration }) => toConfiguration(installation, integration));
    },
  );

  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/integrations/configuration/:id',
    {
      schema: {
        operationId: 'getConfiguration',
        summary: 'Retrieve an integration configuration',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: { $ref: 'IntegrationConfiguration#' }, ...errors },
      },
    },
    async (request) => {
      const { installation, integration } = await discovery.getConfiguration(request.actor, request.params.id);
      return toConfiguration(installation, integration);
    },
  );

  app.delete<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/integrations/configuration/:id',
    {
      schema: {
        operationId: 'deleteConfiguration',
        summary: 'Delete an integration configuration (refused while it still has stores)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        // 403 for a caller who is not an admin of it; 409 while it has stores; the partner server's answer to its uninstall passed on.
        response: {
          204: { type: 'null', description: 'The configuration was removed' },
          ...errorResponses(400, 401, 403, 404, 409),
          ...partnerErrors,
        },
      },
    },
    async (request, reply) => {
      await discovery.deleteConfiguration(request.actor, request.params.id);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/integrations/configuration/:id/products',
    {
      schema: {
        operationId: 'getConfigurationProducts',
        summary: 'List the products available for an integration configuration',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'object',
            required: ['configuration', 'integration', 'products'],
            properties: {
              configuration: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
              integration: {
                type: 'object',
                required: ['id', 'name', 'slug'],
                properties: { id: { type: 'string' }, name: { type: 'string' }, slug: { type: 'string' } },
              },
              products: { type: 'array', items: { $ref: 'Product#' } },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { installation, integration, products, catalog } = await discovery.configurationProducts(request.actor, request.params.id);
      // The body depends only on the catalog and the configuration's id: serialize it once (with
      // the route's own response schema) and send the string while that catalog is current.
      let bodies = productBodies.get(catalog);
      if (!bodies) productBodies.set(catalog, (bodies = new Map()));
      let body = bodies.get(installation.id);
      if (body === undefined) {
        body = reply.serialize({
          configuration: { id: installation.id },
          integration: { id: integration.id, name: integration.name, slug: integration.slug },
          products: products.map(toProduct),
        }) as string;
        if (bodies.size >= MAX_CACHED_BODIES) bodies.delete(bodies.keys().next().value!);
        bodies.set(installation.id, body);
      }
      return reply.type('application/json; charset=utf-8').send(body);
    },
  );

  type PlansRequest = {
    Params: { integrationIdOrSlug: string; productIdOrSlug: string };
    Querystring: TeamQuery & { integrationConfigurationId?: string; metadata?: string; source?: string };
  };
  const plansRoute = {
    schema: {
      operationId: 'getBillingPlans',
      summary: 'List the billing plans of an integration product',
      tags,
      params: {
        type: 'object',
        required: ['integrationIdOrSlug', 'productIdOrSlug'],
        properties: { integrationIdOrSlug: { type: 'string' }, productIdOrSlug: { type: 'string' } },
      },
      querystring: {
        type: 'object',
        properties: {
          integrationConfigurationId: { type: 'string' },
          metadata: { type: 'string', description: "The store's metadata, as a JSON object" },
          source: { type: 'string', enum: [...SOURCES] },
          ...teamQuery,
        },
      },
      response: {
        200: { type: 'object', required: ['plans'], properties: { plans: { type: 'array', items: { $ref: 'BillingPlan#' } } } },
        ...errors,
        ...partnerErrors,
      },
    },
  };
  const plansHandler = async (request: FastifyRequest<PlansRequest>) => {
    const plans = await discovery.plans(request.actor, request.params.integrationIdOrSlug, request.params.productIdOrSlug, request.query);
    return { plans: plans.map(toBillingPlan) };
  };
  app.get<PlansRequest>('/v1/integrations/integration/:integrationIdOrSlug/products/:productIdOrSlug/plans', plansRoute, plansHandler);
  // The seed documentation links the same operation without the version prefix.
  app.get<PlansRequest>(
    '/integrations/integration/:integrationIdOrSlug/products/:productIdOrSlug/plans',
    { ...plansRoute, schema: { ...plansRoute.schema, operationId: 'getBillingPlansUnversioned', hide: true } },
    plansHandler,
  );
}

export const sharedSchemas = [billingPlanSchema, productSchema, configurationSchema];
