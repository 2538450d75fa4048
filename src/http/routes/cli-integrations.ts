/**
 * The marketplace endpoints the `vercel` CLI (58.10.0) calls that the SDK does not: an
 * integration by slug (`GET /v2/integrations/integration/{slug}`), the integrations on offer and
 * their categories, accepting an integration's terms (`.../marketplace/install`) and `vercel
 * integration add`'s one-call create (`.../marketplace/auto-provision/{product}`). What the CLI
 * reads and changes of the team's configurations is cli-configurations.ts.
 * Answers are shaped as the CLI's bundled source reads them (node_modules/vercel/dist); the rules
 * are the services': CliInstalls (src/marketplace/cli-installs.ts), which creates stores through
 * the store service, and Discovery.
 */
import type { FastifyInstance } from 'fastify';
import { CliInstalls, type AutoProvisionInput } from '../../marketplace/cli-installs.ts';
import type { Runtime } from '../../runtime.ts';
import { parseIdempotencyKey } from '../../stores/idempotency.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { freeObject, SOURCES, str, toBillingPlan, toConfiguration, toProduct } from '../vercel-shapes.ts';
import { errorResponses, teamQuery, type TeamQuery, metadataValue } from './common.ts';

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
}
