/**
 * Vercel's wire shapes for the discovery API: the JSON Schemas that serialize responses and
 * document them in /openapi.json, and the functions that build them from Storehouse's objects.
 * They follow what @vercel/sdk 1.28.x parses (docs/vercel-api.md).
 */
import { dollarsOf } from '../billing/dollars.ts';
import type { BillingPlan, Integration, Product } from '../catalog/catalog.ts';
import { RESOURCE_STATUSES } from '../providers/provider.ts';
import type { Installation } from '../tenancy/installations.ts';

/** Closed enum of `source` in the SDK (requests and configuration responses). */
export const SOURCES = [
  'marketplace',
  'deploy-button',
  'external',
  'v0',
  'resource-claims',
  'cli',
  'oauth',
  'backoffice',
  'import-recommended-integrations',
  'organization',
] as const;

/** JSON Schema building blocks every shapes module uses. */
export const str = { type: 'string' };
export const num = { type: 'number' };
export const bool = { type: 'boolean' };
const detail = { type: 'object', required: ['label'], properties: { label: str, value: str } };
export const freeObject = { type: 'object', additionalProperties: true };

export const billingPlanSchema = {
  $id: 'BillingPlan',
  type: 'object',
  required: ['id', 'type', 'scope', 'name', 'description', 'paymentMethodRequired'],
  properties: {
    id: str,
    type: { type: 'string', enum: ['subscription', 'prepayment'] },
    scope: { type: 'string', enum: ['installation', 'resource'] },
    name: str,
    description: str,
    paymentMethodRequired: bool,
    cost: str,
    preauthorizationAmount: { ...num, description: 'USD' },
    initialCharge: str,
    minimumAmount: { ...str, description: 'USD, decimal string' },
    maximumAmount: { ...str, description: 'USD, decimal string' },
    details: { type: 'array', items: detail },
    highlightedDetails: { type: 'array', items: detail },
    disabled: bool,
  },
};

export const productSchema = {
  $id: 'Product',
  type: 'object',
  required: ['id', 'slug', 'name', 'protocols', 'metadataSchema'],
  properties: {
    id: str,
    slug: str,
    name: str,
    shortDescription: str,
    description: str,
    primaryProtocol: str,
    protocols: { ...freeObject, description: 'Each protocol present has a `status` of enabled or disabled.' },
    unavailableReason: {
      ...str,
      description: "Storehouse's own: why this product cannot be created on now (its protocols are then disabled), in words for a person.",
    },
    tags: { type: 'array', items: str },
    capabilities: freeObject,
    metadataSchema: {
      ...freeObject,
      description: 'JSON Schema of the metadata a store of this product takes, with Vercel `ui:*` controls.',
    },
  },
};

export const configurationSchema = {
  $id: 'IntegrationConfiguration',
  type: 'object',
  required: ['id', 'type', 'createdAt', 'updatedAt', 'integrationId', 'ownerId', 'slug', 'userId', 'scopes', 'integration'],
  properties: {
    id: str,
    type: { type: 'string', enum: ['integration-configuration'] },
    createdAt: num,
    updatedAt: num,
    completedAt: num,
    integrationId: str,
    ownerId: str,
    teamId: { type: ['string', 'null'] },
    slug: str,
    userId: str,
    scopes: { type: 'array', items: str },
    source: { type: 'string', enum: [...SOURCES] },
    installationType: { type: 'string', enum: ['marketplace', 'external'] },
    // What the partner server reports of the installation (PATCH /v1/installations/{id}).
    status: { type: 'string', enum: [...RESOURCE_STATUSES] },
    externalId: { ...str, description: 'An external identifier defined by the integration vendor' },
    notification: {
      type: 'object',
      required: ['level', 'title'],
      properties: { level: { type: 'string', enum: ['info', 'warn', 'error'] }, title: str, message: str, href: str },
      description: 'Shown to the team; set by the partner server',
    },
    billingPlan: {
      type: 'object',
      required: ['id', 'type', 'name'],
      properties: {
        id: str,
        type: { type: 'string', enum: ['subscription', 'prepayment'] },
        name: str,
        description: str,
        paymentMethodRequired: bool,
        cost: str,
        details: { type: 'array', items: detail },
        highlightedDetails: { type: 'array', items: detail },
        effectiveDate: str,
      },
      description: "Storehouse's own: the installation-level plan the partner server reported",
    },
    projectSelection: { type: 'string', enum: ['all', 'selected'] },
    integration: {
      type: 'object',
      required: ['name', 'icon', 'isLegacy'],
      properties: { name: str, icon: str, isLegacy: bool },
    },
  },
};

export function toBillingPlan(plan: BillingPlan) {
  return {
    id: plan.id,
    type: plan.type,
    scope: plan.scope,
    name: plan.name,
    description: plan.description,
    paymentMethodRequired: plan.paymentMethodRequired,
    ...(plan.cost !== null && { cost: plan.cost }),
    ...(plan.preauthorizationAmountCents !== null && { preauthorizationAmount: plan.preauthorizationAmountCents / 100 }),
    ...(plan.initialCharge !== null && { initialCharge: plan.initialCharge }),
    ...(plan.minimumAmountCents !== null && { minimumAmount: dollarsOf(plan.minimumAmountCents) }),
    ...(plan.maximumAmountCents !== null && { maximumAmount: dollarsOf(plan.maximumAmountCents) }),
    details: plan.details,
    highlightedDetails: plan.highlightedDetails,
    disabled: plan.disabled,
  };
}

export function toProduct(product: Product & { unavailableReason?: string }) {
  return {
    id: product.id,
    slug: product.slug,
    name: product.name,
    ...(product.shortDescription !== null && { shortDescription: product.shortDescription }),
    ...(product.description !== null && { description: product.description }),
    ...(product.primaryProtocol !== null && { primaryProtocol: product.primaryProtocol }),
    protocols: product.protocols,
    tags: product.tags,
    capabilities: product.capabilities,
    metadataSchema: product.metadataSchema,
    ...(product.unavailableReason !== undefined && { unavailableReason: product.unavailableReason }),
  };
}

export function toConfiguration(installation: Installation, integration: Integration) {
  const created = installation.createdAt.getTime();
  return {
    id: installation.id,
    type: 'integration-configuration' as const,
    createdAt: created,
    updatedAt: installation.updatedAt.getTime(),
    completedAt: created,
    integrationId: integration.id,
    ownerId: installation.teamId,
    teamId: installation.teamId,
    slug: integration.slug,
    userId: installation.installedBy ?? '',
    scopes: integration.scopes,
    source: installation.source,
    installationType: 'marketplace' as const,
    status: installation.status,
    ...(installation.externalId !== null && { externalId: installation.externalId }),
    ...(installation.notification && { notification: installation.notification }),
    ...(installation.billingPlan && { billingPlan: installation.billingPlan }),
    projectSelection: 'all' as const,
    integration: { name: integration.name, icon: integration.icon, isLegacy: false },
  };
}
