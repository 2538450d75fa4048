/**
 * What the reference partner sells: one product, `postgres`, on two plans of its own. The
 * plans go out in the partner API's BillingPlan shape (docs/partner-api.md §1.1,
 * amounts in dollars); the built-in Postgres provider the partner wraps wants a catalog
 * `Product`, so the same plans are also given in the catalog's terms (amounts in cents), mapped
 * as Storehouse maps any partner's plans (billingPlanOf).
 */
import type { Product } from '../catalog/catalog.ts';
import { billingPlanOf } from '../catalog/catalog.ts';
import type { PartnerPlan } from '../providers/http.ts';

/** The product's slug: what the partner API calls `productId` (§0.3). */
export const PRODUCT_SLUG = 'postgres';

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
  findPlan(id) ?? {
    id,
    type: 'subscription',
    scope: 'resource',
    name: id,
    description: '',
    paymentMethodRequired: true,
    cost: '',
    details: [],
    highlightedDetails: [],
  };

/** The catalog id of the product handed to the wrapped provider; it names the plans' product. */
const PRODUCT_ID = 'iap_partner_postgres';

/**
 * The product as the wrapped built-in Postgres provider takes it. The provider reads only its
 * `slug` (recorded with each resource) and, to list them, its `plans`; every other field is here
 * because the `Product` type requires it, with the least value the type allows. What Storehouse
 * shows of the product (description, metadata form, tags) comes from the catalog entry
 * (catalog.ts) and the plans endpoint, never from this object.
 */
export function partnerProduct(integrationId: string): Product {
  return {
    id: PRODUCT_ID,
    integrationId,
    slug: PRODUCT_SLUG,
    name: 'Partner Postgres',
    description: null,
    shortDescription: null,
    primaryProtocol: null,
    protocols: {},
    tags: [],
    capabilities: {},
    metadataSchema: { type: 'object', properties: {} },
    provider: { type: 'postgres' },
    retired: false,
    plans: PLANS.map((plan) => billingPlanOf(PRODUCT_ID, plan)),
  };
}
