/**
 * What the reference partner sells: one product, `postgres`, on two plans of its own. The
 * plans go out in the partner API's BillingPlan shape (shared/reference/partner-api.md §1.1,
 * amounts in dollars); the built-in Postgres provider the partner wraps wants a catalog
 * `Product`, so the same plans are also given in the catalog's terms (amounts in cents).
 */
import type { BillingPlan, Product } from '../catalog/catalog.ts';

/** The product's slug: what the partner API calls `productId` (§0.3). */
export const PRODUCT_SLUG = 'postgres';

/** A billing plan as the partner API sends it (§1.1). */
export interface PartnerPlan {
  id: string;
  type: 'subscription' | 'prepayment';
  scope: 'resource' | 'installation';
  name: string;
  description: string;
  paymentMethodRequired: boolean;
  preauthorizationAmount?: number;
  cost: string;
  details: Array<{ label: string; value?: string }>;
  highlightedDetails: Array<{ label: string; value?: string }>;
}

export const PLANS: PartnerPlan[] = [
  {
    id: 'partner_free',
    type: 'subscription',
    scope: 'resource',
    name: 'Free',
    description: 'A small database for development, free of charge.',
    // `false` is how the partner API marks a completely free plan (§3).
    paymentMethodRequired: false,
    cost: 'Free',
    details: [{ label: 'Connections', value: 'As the metadata sets' }],
    highlightedDetails: [{ label: 'Free forever' }],
  },
  {
    id: 'partner_pro',
    type: 'subscription',
    scope: 'resource',
    name: 'Pro',
    description: 'A production database, billed monthly by the partner.',
    paymentMethodRequired: true,
    // Dollars: the amount the marketplace checks the payment method can bear (§3).
    preauthorizationAmount: 10,
    cost: '$10.00/month',
    details: [{ label: 'Price', value: '$10.00 per database per month' }],
    highlightedDetails: [{ label: 'Secret rotation' }],
  },
];

/** The monthly price of a plan, as the decimal string billing data carries. */
export const monthlyPrice = (planId: string) => (planId === 'partner_pro' ? '10.00' : '0.00');

export const findPlan = (id: string) => PLANS.find((plan) => plan.id === id);

/**
 * A resource's plan as a Resource carries it. Plans are never retired here, but a record could
 * name one this version no longer has: it is still reported, so the answer keeps its `billingPlan`.
 */
export const planForResource = (id: string): PartnerPlan =>
  findPlan(id) ?? { id, type: 'subscription', scope: 'resource', name: id, description: '', paymentMethodRequired: true, cost: '', details: [], highlightedDetails: [] };

/** The product as the built-in providers take it (they read its slug and plans). */
export function partnerProduct(integrationId: string): Product {
  const plans: BillingPlan[] = PLANS.map((plan) => ({
    productId: 'iap_partner_postgres',
    id: plan.id,
    type: plan.type,
    scope: plan.scope,
    name: plan.name,
    description: plan.description,
    cost: plan.cost,
    paymentMethodRequired: plan.paymentMethodRequired,
    preauthorizationAmountCents: plan.preauthorizationAmount === undefined ? null : Math.round(plan.preauthorizationAmount * 100),
    initialCharge: null,
    minimumAmountCents: null,
    maximumAmountCents: null,
    details: plan.details,
    highlightedDetails: plan.highlightedDetails,
    resourceLimit: null,
    disabled: false,
    retired: false,
  }));
  return {
    id: 'iap_partner_postgres',
    integrationId,
    slug: PRODUCT_SLUG,
    name: 'Partner Postgres',
    description: 'A PostgreSQL database provisioned by the reference partner server.',
    shortDescription: 'A PostgreSQL database of your own.',
    primaryProtocol: 'storage',
    protocols: { storage: { status: 'enabled' } },
    tags: ['postgres', 'storage'],
    capabilities: { secretRotation: true },
    // The keys the Postgres providers understand; anything else in the metadata is kept and ignored.
    metadataSchema: {
      type: 'object',
      properties: {
        connectionLimit: { type: 'number', 'ui:control': 'input', 'ui:label': 'Connection limit', minimum: 1, maximum: 100, default: 20 },
        statementTimeout: {
          type: 'string',
          'ui:control': 'select',
          'ui:label': 'Statement timeout',
          'ui:options': [
            { value: 'off', label: 'No limit' },
            { value: '30s', label: '30 seconds' },
            { value: '5min', label: '5 minutes' },
          ],
          default: 'off',
        },
      },
    },
    provider: { type: 'postgres' },
    retired: false,
    plans,
  };
}
