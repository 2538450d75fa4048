/**
 * The team's integration configurations as the `vercel` CLI (58.10.0) reads and changes them,
 * beyond the SDK's operations: the list as its `/v2` (with `integration.slug`, which `vercel
 * integration installations` shows), `vercel integration update` (PATCH
 * /v1/integrations/configuration/{id}), `balance`, `resource create-threshold` and `remove`
 * (uninstall). Each names its installation by id, so a team's several installations of one
 * integration are each their own. Answers are shaped as the CLI's bundled source reads them
 * (node_modules/vercel/dist); the rules are the services': InstallationBilling
 * (src/marketplace/installation-billing.ts), updateConfiguration (src/marketplace/cli-installs.ts)
 * and Discovery.
 */
import type { FastifyInstance } from 'fastify';
import type { Integration } from '../../catalog/catalog.ts';
import { projectSelections, updateConfiguration, type ConfigurationUpdate, type ProjectSelection } from '../../marketplace/cli-installs.ts';
import { InstallationBilling, type ThresholdInput } from '../../marketplace/installation-billing.ts';
import type { Runtime } from '../../runtime.ts';
import type { Installation } from '../../tenancy/installations.ts';
import { exactBodies } from '../lazy-compilers.ts';
import { configurationSchema, str, toConfiguration } from '../vercel-shapes.ts';
import { configurationsQuery, errorResponses, teamQuery, type ConfigurationsQuery, type TeamQuery } from './common.ts';

const tags = ['integrations'];

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

/** A configuration as `configurationV2Schema` shapes it. */
function toConfigurationV2(installation: Installation, integration: Integration, selection: ProjectSelection | undefined) {
  const configuration = toConfiguration(installation, integration);
  return { ...configuration, ...selection, integration: { ...configuration.integration, slug: integration.slug } };
}

export default async function cliConfigurationsRoutes(app: FastifyInstance, options: { runtime: Runtime }) {
  const { runtime } = options;
  const billing = new InstallationBilling(runtime.db, () => runtime.catalog, runtime.discovery);

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
