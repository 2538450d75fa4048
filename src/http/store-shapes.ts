/**
 * Vercel's wire shape of a store (docs/vercel-api.md §3.6, §4.1, S3), as
 * @vercel/sdk parses it and as the `vercel` CLI reads it (`type`, `id`, `name`, `product.slug`,
 * `projectsMetadata[].id` as the connection id).
 */
import type { StoreConnection, StoreView } from '../stores/store-service.ts';
import type { StoreStatus } from '../stores/stores.ts';
import { bool, freeObject, num, str, toBillingPlan } from './vercel-shapes.ts';
import { PROTOCOLS } from '../catalog/catalog-schema.ts';
import { supportedProtocols } from '../stores/store-input.ts';
import { RESOURCE_STATUSES } from '../providers/provider.ts';

/** The SDK's closed enum of product protocols: the catalog's. */
const PROTOCOL_NAMES = new Set<string>(PROTOCOLS);

const strings = { type: 'array', items: str };

export const storeSchema = {
  $id: 'Store',
  type: 'object',
  required: ['id', 'name', 'type', 'status', 'externalResourceId', 'usageQuotaExceeded', 'projectsMetadata', 'secrets', 'product'],
  properties: {
    id: { ...str, description: "Storehouse's id of the store (the resource id to connect and delete it by)" },
    name: str,
    type: { type: 'string', enum: ['integration'] },
    status: {
      type: 'string',
      enum: [
        'available',
        'error',
        'initializing',
        'limits-exceeded-suspended',
        'limits-exceeded-suspended-store-count',
        'onboarding',
        'suspended',
        'uninstalled',
      ],
    },
    externalResourceId: { ...str, description: "The provider's id of the resource" },
    externalResourceStatus: { type: 'string', enum: [...RESOURCE_STATUSES] },
    usageQuotaExceeded: bool,
    ownership: { type: 'string', enum: ['owned', 'linked', 'sandbox'] },
    totalConnectedProjects: num,
    projectsMetadata: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'projectId', 'name', 'environments', 'environmentVariables', 'envVarPrefix'],
        properties: {
          id: { ...str, description: 'The connection id' },
          projectId: str,
          name: str,
          environments: strings,
          environmentVariables: strings,
          envVarPrefix: { type: ['string', 'null'] },
          makeEnvVarsSensitive: bool,
        },
      },
    },
    secrets: { type: 'array', items: { type: 'object', required: ['name', 'length'], properties: { name: str, length: num } } },
    metadata: freeObject,
    protocolSettings: freeObject,
    billingPlan: { $ref: 'BillingPlan#' },
    prepaidBalanceCents: num,
    externalId: str,
    source: str,
    notification: {
      type: 'object',
      required: ['level', 'title'],
      properties: { level: { type: 'string', enum: ['info', 'warn', 'error'] }, title: str, message: str, href: str },
    },
    product: {
      type: 'object',
      required: ['integration', 'supportedProtocols'],
      properties: {
        id: str,
        slug: str,
        name: str,
        iconUrl: str,
        integrationConfigurationId: str,
        primaryProtocol: str,
        supportedProtocols: strings,
        metadataSchema: freeObject,
        capabilities: freeObject,
        integration: { type: 'object', required: ['id', 'slug', 'name', 'icon'], properties: { id: str, slug: str, name: str, icon: str } },
      },
    },
    createdAt: num,
    updatedAt: num,
  },
};

/** What a store's internal status shows as: a store being deleted is not in Vercel's enum. */
function shownStatus(status: StoreStatus): Exclude<StoreStatus, 'deleting'> {
  return status === 'deleting' ? 'error' : status;
}

function toProjectMetadata(connection: StoreConnection) {
  return {
    id: connection.id,
    projectId: connection.projectId,
    name: connection.projectName,
    environments: connection.environments,
    environmentVariables: connection.envVarNames,
    envVarPrefix: connection.envVarPrefix === '' ? null : connection.envVarPrefix,
    makeEnvVarsSensitive: connection.sensitive,
  };
}

export function storeBody(view: StoreView) {
  const { store, product, integration, plan, connections } = view;
  // Enabled ones only: what a create's protocolSettings may name.
  const protocols = supportedProtocols(product).filter((p) => PROTOCOL_NAMES.has(p));
  const notification =
    store.status === 'deleting'
      ? store.rollingBack
        ? {
            level: 'warn' as const,
            title: 'Being rolled back',
            message:
              'Its create did not finish; the store and whatever its provider made are being removed (retried until its provider answers)',
          }
        : { level: 'warn' as const, title: 'Being deleted', message: 'The store is being deleted (retried until its provider answers)' }
      : store.notification;
  return {
    id: store.id,
    name: store.name,
    type: 'integration' as const,
    status: shownStatus(store.status),
    externalResourceId: store.externalResourceId ?? '',
    ...(store.externalResourceStatus && { externalResourceStatus: store.externalResourceStatus }),
    usageQuotaExceeded: false,
    ownership: store.ownership,
    totalConnectedProjects: connections.length,
    projectsMetadata: connections.map(toProjectMetadata),
    secrets: store.secretSummary,
    metadata: store.metadata,
    ...(store.protocolSettings && { protocolSettings: store.protocolSettings }),
    ...(plan && { billingPlan: toBillingPlan(plan) }),
    ...(store.prepaidBalanceCents !== null && { prepaidBalanceCents: store.prepaidBalanceCents }),
    ...(store.externalId !== null && { externalId: store.externalId }),
    source: store.source,
    ...(notification && { notification }),
    product: {
      id: product.id,
      slug: product.slug,
      name: product.name,
      iconUrl: integration.icon,
      integrationConfigurationId: store.installationId,
      ...(product.primaryProtocol !== null && PROTOCOL_NAMES.has(product.primaryProtocol) && { primaryProtocol: product.primaryProtocol }),
      supportedProtocols: protocols,
      metadataSchema: product.metadataSchema,
      capabilities: product.capabilities,
      integration: { id: integration.id, slug: integration.slug, name: integration.name, icon: integration.icon },
    },
    createdAt: store.createdAt.getTime(),
    updatedAt: store.updatedAt.getTime(),
  };
}
