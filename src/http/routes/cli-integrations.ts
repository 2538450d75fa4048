/**
 * The marketplace endpoints the `vercel` CLI (58.10.0) calls that the SDK does not: an
 * integration by slug (`GET /v2/integrations/integration/{slug}`), the configurations list as its
 * `/v2` (with `integration.slug`), accepting an integration's terms (`.../marketplace/install`)
 * and `vercel integration add`'s one-call create (`.../marketplace/auto-provision/{product}`).
 * Answers are shaped as the CLI's bundled source reads them (node_modules/vercel/dist); the rules
 * are the services': CliInstalls (src/marketplace/cli-installs.ts), which creates stores through
 * the store service, and Discovery.
 */
import type { FastifyInstance } from 'fastify';
import {
  CliInstalls,
  projectSelections,
  updateConfiguration,
  type AutoProvisionInput,
  type ConfigurationUpdate,
  type ProjectSelection,
} from '../../marketplace/cli-installs.ts';
import type { Integration } from '../../catalog/catalog.ts';
import type { Installation } from '../../tenancy/installations.ts';
import { InstallationBilling, type ThresholdInput } from '../../marketplace/installation-billing.ts';
import type { Runtime } from '../../runtime.ts';
import { parseIdempotencyKey } from '../../stores/idempotency.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { configurationSchema, freeObject, SOURCES, str, toBillingPlan, toConfiguration, toProduct } from '../vercel-shapes.ts';
import { errorResponses, teamQuery, type TeamQuery, metadataValue, configurationsQuery, type ConfigurationsQuery } from './common.ts';

const tags = ['integrations'];

/** An integration as `GET /v2/integrations/integration/{slug}` and `GET /v2/integrations/integrations` answer it. */
const integrationSchema = {
  type: 'object',
  required: ['id', 'slug', 'name', 'products'],
  properties: {
    id: str,
    slug: str,
    name: str,
    icon: str,
    shortDescription: str,
    isMarketplace: { type: 'boolean' },
    canInstall: { type: 'boolean' },
    tagIds: { type: 'array', items: str },
    capabilities: { type: 'object', properties: { requiresBrowserInstall: { type: 'boolean' } } },
    // The SDK's product (with `tags` and `shortDescription`, which `vercel integration discover` shows).
    products: { type: 'array', items: { $ref: 'Product#' } },
  },
};

/** The `/v2` configuration: the `/v1` one with the integration's slug, which `vercel integration installations` shows. */
const { $id: _v1Id, ...v1Configuration } = configurationSchema;
const configurationV2Schema = {
  ...v1Configuration,
  properties: {
    ...v1Configuration.properties,
    projects: { type: 'array', items: str, description: 'With projectSelection "selected": the projects its stores may connect to' },
    integration: {
      ...v1Configuration.properties.integration,
      required: ['name', 'slug', 'icon', 'isLegacy'],
      properties: { ...v1Configuration.properties.integration.properties, slug: str },
    },
  },
};

const autoProvisionBody = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', maxLength: 128, description: 'The store name' },
    metadata: { type: 'object', additionalProperties: metadataValue, description: "Validated against the product's metadataSchema" },
    acceptedPolicies: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: 'Terms accepted in this call (`toc`: when); installs the integration when the team has not',
    },
    source: { type: 'string', enum: [...SOURCES], default: 'cli' },
    billingPlanId: { type: 'string', description: 'A plan of the product; absent means its free plan' },
    installationId: { type: 'string', description: 'The installation to create on, when the team has several' },
    installationMetadata: { type: 'object', additionalProperties: metadataValue },
  },
};

const autoProvisionAnswer = {
  type: 'object',
  required: ['kind', 'integration', 'product', 'installation', 'resource', 'billingPlan'],
  properties: {
    kind: { type: 'string', enum: ['provisioned'] },
    integration: {
      type: 'object',
      required: ['id', 'slug', 'name'],
      properties: { id: str, slug: str, name: str, icon: str, policies: { type: 'object', additionalProperties: str } },
    },
    product: {
      type: 'object',
      required: ['id', 'slug', 'name'],
      properties: { id: str, slug: str, name: str, icon: str, metadataSchema: freeObject },
    },
    installation: { type: 'object', required: ['id'], properties: { id: str } },
    resource: {
      type: 'object',
      required: ['id', 'name', 'status'],
      properties: {
        id: { ...str, description: "The store's id" },
        externalResourceId: { type: ['string', 'null'] },
        name: str,
        status: str,
        secretKeys: { type: 'array', items: str },
      },
    },
    billingPlan: { anyOf: [{ $ref: 'BillingPlan#' }, { type: 'null' }] },
  },
};

/**
 * The 422 of an auto-provision the CLI falls back on (`multiple_installations`): Vercel's error
 * object, and the same fields at the top level, where Vercel answers them. Only `error` is
 * required, so any other 422 is still written as the error it is.
 */
const autoProvisionFallback = {
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'object', required: ['code', 'message'], properties: { code: str, message: str }, additionalProperties: true },
    kind: str,
    reason: str,
    url: str,
    installations: {
      type: 'array',
      items: { type: 'object', required: ['id'], properties: { id: str, type: str, externalId: str, status: str } },
    },
    integration: autoProvisionAnswer.properties.integration,
    product: autoProvisionAnswer.properties.product,
  },
};

const thresholdSchema = {
  type: 'object',
  required: ['resourceId', 'minimumAmountInCents', 'purchaseAmountInCents'],
  properties: {
    resourceId: { ...str, description: "The store's externalResourceId" },
    billingPlanId: str,
    minimumAmountInCents: { type: 'number' },
    purchaseAmountInCents: { type: 'number' },
    maximumAmountPerPeriodInCents: { type: 'number' },
  },
};

const slugParams = { type: 'object', required: ['slug'], properties: { slug: { type: 'string', description: 'Integration slug or id' } } };

/** A product's tags that name a marketplace category (`tag_databases`), as Vercel's do. */
const isCategory = (tag: string) => tag.startsWith('tag_') && tag.length > 4;
const categoryOf = (tag: string) => {
  const slug = tag.slice(4);
  return { id: tag, slug, title: slug.charAt(0).toUpperCase() + slug.slice(1).replaceAll('-', ' ') };
};

function toIntegration({ integration, products }: ReturnType<CliInstalls['describe']>) {
  return {
    id: integration.id,
    slug: integration.slug,
    name: integration.name,
    icon: integration.icon,
    isMarketplace: true,
    canInstall: true,
    tagIds: [...new Set(products.flatMap((product) => product.tags.filter(isCategory)))],
    capabilities: { requiresBrowserInstall: false },
    products: products.map(toProduct),
  };
}

/** A configuration as `configurationV2Schema` shapes it. */
function toConfigurationV2(installation: Installation, integration: Integration, selection: ProjectSelection | undefined) {
  const configuration = toConfiguration(installation, integration);
  return { ...configuration, ...selection, integration: { ...configuration.integration, slug: integration.slug } };
}

export default async function cliIntegrationsRoutes(app: FastifyInstance, options: { runtime: Runtime }) {
  const { runtime } = options;
  const installs = new CliInstalls(
    runtime.db,
    () => runtime.catalog,
    runtime.providers,
    runtime.stores,
    runtime.discovery,
    runtime.config.provisionTimeoutMs,
    () => runtime.urls.publicUrl(),
  );
  const billing = new InstallationBilling(runtime.db, () => runtime.catalog, runtime.discovery);

  app.get<{ Params: { slug: string }; Querystring: TeamQuery }>(
    '/v2/integrations/integration/:slug',
    {
      schema: {
        operationId: 'getIntegration',
        summary: 'An integration and its products, by slug or id (as the vercel CLI reads it)',
        tags,
        params: slugParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: integrationSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => toIntegration(installs.describe(request.params.slug)),
  );

  app.get<{ Querystring: TeamQuery & { integrationType?: string; category?: string[] } }>(
    '/v2/integrations/integrations',
    {
      schema: {
        operationId: 'listIntegrations',
        summary: 'The integrations on offer with their products (vercel integration discover), optionally of some categories',
        tags,
        querystring: {
          type: 'object',
          properties: {
            integrationType: { type: 'string', enum: ['marketplace', 'external'] },
            category: { type: 'array', items: { type: 'string' }, description: 'Category slugs or ids (repeatable): any of them' },
            ...teamQuery,
          },
        },
        response: { 200: { type: 'array', items: integrationSchema }, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      // Every Storehouse integration is a marketplace one.
      if (request.query.integrationType === 'external') return [];
      const wanted = request.query.category ?? [];
      return installs
        .list()
        .map(toIntegration)
        .filter(
          (integration) =>
            wanted.length === 0 || integration.tagIds.some((tag) => wanted.includes(tag) || wanted.includes(categoryOf(tag).slug)),
        );
    },
  );

  app.get<{ Querystring: TeamQuery }>(
    '/v2/integrations/categories',
    {
      schema: {
        operationId: 'listIntegrationCategories',
        summary: "The marketplace's categories: those its products' `tag_...` tags name",
        tags,
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'array',
            items: { type: 'object', required: ['id', 'slug', 'title'], properties: { id: str, slug: str, title: str } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async () => {
      const found = new Set(installs.list().flatMap(({ products }) => products.flatMap((product) => product.tags.filter(isCategory))));
      return [...found].sort().map(categoryOf);
    },
  );

  app.get<{ Querystring: ConfigurationsQuery }>(
    '/v2/integrations/configurations',
    {
      schema: {
        operationId: 'getConfigurationsV2',
        summary: "The team's integration configurations, each with its integration's slug (as the vercel CLI reads them)",
        tags,
        querystring: configurationsQuery,
        response: { 200: { type: 'array', items: configurationV2Schema }, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const found = await runtime.discovery.listConfigurations(request.actor, request.query);
      const selections = found.length > 0 ? await projectSelections(runtime.db, request.actor.team.id) : new Map();
      return found.map(({ installation, integration }) => toConfigurationV2(installation, integration, selections.get(installation.id)));
    },
  );

  app.post<{
    Params: { slug: string };
    Querystring: TeamQuery;
    Body: { acceptedPolicies?: Record<string, string>; source?: string; newInstallation?: boolean };
  }>(
    '/v2/integrations/integration/:slug/marketplace/install',
    {
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'installMarketplaceIntegration',
        summary:
          'Install an integration for the team, its terms accepted (vercel integration accept-terms); 409 when the team has it, unless newInstallation asks for another',
        tags,
        params: slugParams,
        querystring: { type: 'object', properties: teamQuery },
        body: {
          type: 'object',
          required: ['acceptedPolicies'],
          properties: {
            acceptedPolicies: {
              type: 'object',
              additionalProperties: { type: 'string' },
              description: '`toc`: when the terms were accepted',
            },
            source: { type: 'string', enum: [...SOURCES], default: 'cli' },
            newInstallation: {
              type: 'boolean',
              default: false,
              description:
                'true: another installation even when the team has one (vercel integration add then asks which, --installation-id)',
            },
          },
        },
        response: { 200: { $ref: 'IntegrationConfiguration#' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { acceptedPolicies, source = 'cli', newInstallation = false } = request.body;
      const { installation, integration } = await installs.install(request.actor, request.params.slug, acceptedPolicies, {
        source,
        another: newInstallation,
      });
      return toConfiguration(installation, integration);
    },
  );

  app.post<{ Params: { slug: string; productSlug: string }; Querystring: TeamQuery; Body: AutoProvisionInput }>(
    '/v1/integrations/integration/:slug/marketplace/auto-provision/:productSlug',
    {
      config: { rateLimit: 'stores.create' },
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'autoProvisionIntegrationResource',
        summary:
          'Create a store as vercel integration add does: through the same checks, billing and provisioning as POST /v1/storage/stores/integration/direct',
        tags,
        params: {
          type: 'object',
          required: ['slug', 'productSlug'],
          properties: { slug: slugParams.properties.slug, productSlug: { type: 'string', description: 'Product slug or id' } },
        },
        querystring: { type: 'object', properties: teamQuery },
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': { type: 'string', description: 'Repeats with the same key and body return the first response' },
            'x-vercel-cli-invocation-id': { type: 'string', description: "The CLI's invocation: its retries of one create are one create" },
          },
        },
        body: autoProvisionBody,
        // 422 `multiple_installations` (with `installations`) when the installation to use is ambiguous.
        response: { 200: autoProvisionAnswer, 422: autoProvisionFallback, ...errorResponses(400, 401, 402, 403, 404, 409, 429, 502, 503) },
      },
    },
    async (request) => {
      const { slug, productSlug } = request.params;
      const invocation = request.headers['x-vercel-cli-invocation-id'];
      const idempotencyKey =
        parseIdempotencyKey(request.headers['idempotency-key']) ??
        (typeof invocation === 'string' && /^[\x21-\x7e]{1,200}$/.test(invocation) ? `vercel-cli:${invocation}` : undefined);
      const answer = await installs.autoProvision(request.actor, slug, productSlug, request.body, { idempotencyKey });
      return { ...answer, billingPlan: answer.billingPlan && toBillingPlan(answer.billingPlan) };
    },
  );

  const installationParams = {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', description: 'The installation (integration configuration) id' } },
  };
  const cents = { type: 'integer', minimum: 0, maximum: 100_000_000 };

  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v1/integrations/installations/:id/billing/balance',
    {
      schema: {
        operationId: 'getInstallationPrepaymentBalance',
        summary: "The prepaid balances of an installation's stores and their thresholds (vercel integration balance)",
        tags,
        params: installationParams,
        querystring: { type: 'object', properties: teamQuery },
        response: {
          200: {
            type: 'object',
            required: ['ownerId', 'installationId', 'balances', 'thresholds'],
            properties: {
              ownerId: str,
              installationId: str,
              balances: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['resourceId', 'currencyValueInCents'],
                  properties: {
                    resourceId: { ...str, description: "The store's externalResourceId" },
                    currencyValueInCents: { type: 'number' },
                    timestamp: str,
                  },
                },
              },
              thresholds: { type: 'array', items: thresholdSchema },
            },
          },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => billing.balance(request.actor, request.params.id),
  );

  app.post<{ Params: { id: string; resourceId: string }; Querystring: TeamQuery; Body: ThresholdInput }>(
    '/v1/integrations/installations/:id/resources/:resourceId/billing/threshold',
    {
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'setResourcePrepaymentThreshold',
        summary: "Set a prepaid store's balance threshold (vercel integration resource create-threshold)",
        tags,
        params: {
          type: 'object',
          required: ['id', 'resourceId'],
          properties: {
            ...installationParams.properties,
            resourceId: { type: 'string', description: "The store's id or externalResourceId" },
          },
        },
        querystring: { type: 'object', properties: teamQuery },
        body: {
          type: 'object',
          required: ['minimumAmountInCents', 'purchaseAmountInCents'],
          properties: {
            billingPlanId: { type: 'string', description: "The store's plan" },
            minimumAmountInCents: { ...cents, description: 'Buy more when the balance falls below this' },
            purchaseAmountInCents: { ...cents, description: 'How much to buy' },
            maximumAmountPerPeriodInCents: { ...cents, description: 'At most this much per billing period' },
            metadata: { type: 'string', maxLength: 10_000 },
          },
        },
        response: { 200: thresholdSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => billing.setThreshold(request.actor, request.params.id, request.params.resourceId, request.body),
  );

  app.post<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/v2/integrations/installations/:id/uninstall',
    {
      schema: {
        operationId: 'uninstallIntegration',
        summary:
          'Uninstall an integration (vercel integration remove): 403 has_resources while it has stores, else as DELETE /v1/integrations/configuration/{id}',
        tags,
        params: installationParams,
        querystring: { type: 'object', properties: teamQuery },
        body: { type: 'object', additionalProperties: false, properties: {} },
        response: {
          200: { type: 'object', required: ['id'], properties: { id: str } },
          // 409 for a store made meanwhile; the partner server's answer to its uninstall passed on.
          ...errorResponses(400, 401, 403, 404, 409, 502, 503),
        },
      },
    },
    async (request) => {
      await billing.uninstall(request.actor, request.params.id);
      return { id: request.params.id };
    },
  );

  app.patch<{ Params: { id: string }; Querystring: TeamQuery; Body: ConfigurationUpdate }>(
    '/v1/integrations/configuration/:id',
    {
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'updateConfiguration',
        summary:
          'Change which projects an installation may connect its stores to (vercel integration update --projects); a billingPlanId is refused: plans are per store',
        tags,
        params: installationParams,
        querystring: { type: 'object', properties: teamQuery },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            projects: {
              anyOf: [
                { type: 'string', enum: ['all'] },
                { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1000 },
              ],
              description: '"all", or the ids of the projects its stores may connect to',
            },
            billingPlanId: { type: 'string', description: "Refused (400): Storehouse's plans are each store's own" },
            authorizationId: { type: 'string' },
          },
        },
        response: { 200: configurationV2Schema, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { installation, integration, selection } = await updateConfiguration(
        runtime.db,
        runtime.catalog,
        request.actor,
        request.params.id,
        request.body,
      );
      return toConfigurationV2(installation, integration, selection);
    },
  );
}
