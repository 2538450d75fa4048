import type { MappedRow, Queryable } from '../db/database.ts';
import { notFound } from '../errors.ts';
import type { CatalogPlan, CatalogProduct, MetadataSchema, PlanDetail, ProviderBinding } from './catalog-schema.ts';

export interface Integration {
  id: string;
  slug: string;
  name: string;
  icon: string;
  scopes: string[];
  /** Where its webhooks go (src/webhooks/); null for none. */
  webhookUrl: string | null;
  retired: boolean;
}

export interface BillingPlan {
  productId: string;
  id: string;
  type: 'subscription' | 'prepayment';
  scope: 'installation' | 'resource';
  name: string;
  description: string;
  cost: string | null;
  paymentMethodRequired: boolean;
  preauthorizationAmountCents: number | null;
  initialCharge: string | null;
  minimumAmountCents: number | null;
  maximumAmountCents: number | null;
  details: PlanDetail[];
  highlightedDetails: PlanDetail[];
  /** Most stores one team may hold on this plan; null for no limit. */
  resourceLimit: number | null;
  /** Shown but not selectable. */
  disabled: boolean;
  /** Gone from the catalog file but still used by stores: shown as disabled. */
  retired: boolean;
}

export interface Product {
  id: string;
  integrationId: string;
  slug: string;
  name: string;
  description: string | null;
  shortDescription: string | null;
  primaryProtocol: string | null;
  protocols: CatalogProduct['protocols'];
  tags: string[];
  capabilities: Record<string, unknown>;
  metadataSchema: MetadataSchema;
  provider: ProviderBinding;
  retired: boolean;
  /** Every plan, retired ones included, in catalog order. */
  plans: BillingPlan[];
}

/**
 * The catalog as the database holds it after the sync, kept in memory: it changes only when a
 * node starts with a new catalog file, and every discovery request reads it.
 */
export class Catalog {
  private constructor(
    private readonly integrations: Map<string, Integration>,
    private readonly products: Map<string, Product>,
  ) {}

  static async load(db: Queryable): Promise<Catalog> {
    const integrations = await db.query<MappedRow>('SELECT * FROM integrations ORDER BY slug');
    const products = await db.query<MappedRow>('SELECT * FROM products ORDER BY integration_id, position');
    const plans = await db.query<MappedRow>('SELECT * FROM billing_plans ORDER BY product_id, position');
    const plansByProduct = new Map<string, BillingPlan[]>();
    for (const row of plans.rows) {
      const list = plansByProduct.get(row.product_id) ?? [];
      list.push({
        productId: row.product_id,
        id: row.id,
        type: row.type,
        scope: row.scope,
        name: row.name,
        description: row.description,
        cost: row.cost,
        paymentMethodRequired: row.payment_method_required,
        preauthorizationAmountCents: row.preauthorization_amount_cents === null ? null : Number(row.preauthorization_amount_cents),
        initialCharge: row.initial_charge,
        minimumAmountCents: row.minimum_amount_cents === null ? null : Number(row.minimum_amount_cents),
        maximumAmountCents: row.maximum_amount_cents === null ? null : Number(row.maximum_amount_cents),
        details: row.details,
        highlightedDetails: row.highlighted_details,
        resourceLimit: row.resource_limit,
        disabled: row.disabled,
        retired: row.retired,
      });
      plansByProduct.set(row.product_id, list);
    }
    return new Catalog(
      new Map(
        integrations.rows.map((row) => [
          row.id,
          {
            id: row.id,
            slug: row.slug,
            name: row.name,
            icon: row.icon,
            scopes: row.scopes,
            webhookUrl: row.webhook_url ?? null,
            retired: row.retired,
          },
        ]),
      ),
      new Map(
        products.rows.map((row) => [
          row.id,
          {
            id: row.id,
            integrationId: row.integration_id,
            slug: row.slug,
            name: row.name,
            description: row.description,
            shortDescription: row.short_description,
            primaryProtocol: row.primary_protocol,
            protocols: row.protocols,
            tags: row.tags,
            capabilities: row.capabilities,
            metadataSchema: row.metadata_schema,
            provider: row.provider,
            retired: row.retired,
            plans: plansByProduct.get(row.id) ?? [],
          },
        ]),
      ),
    );
  }

  listIntegrations(): Integration[] {
    return [...this.integrations.values()].filter((i) => !i.retired);
  }

  /** Any integration by id, retired ones included: installations keep pointing at them. */
  integrationById(id: string): Integration | undefined {
    return this.integrations.get(id);
  }

  /** An integration on offer, by id or slug; 404 otherwise. */
  findIntegration(idOrSlug: string): Integration {
    const found = this.integrations.get(idOrSlug) ?? [...this.integrations.values()].find((i) => i.slug === idOrSlug && !i.retired);
    if (!found || found.retired) throw notFound('integration', idOrSlug);
    return found;
  }

  /** Any product by id, retired ones included: stores keep pointing at them. */
  productById(id: string): Product {
    const found = this.products.get(id);
    if (!found) throw new Error(`The catalog has no product ${id}, which a store references`);
    return found;
  }

  /** The products an integration offers now, in catalog order. */
  productsOf(integrationId: string): Product[] {
    return [...this.products.values()].filter((p) => p.integrationId === integrationId && !p.retired);
  }

  /** A product on offer from this integration, by id or slug; 404 otherwise. */
  findProduct(integrationId: string, idOrSlug: string): Product {
    const found = this.productsOf(integrationId).find((p) => p.id === idOrSlug || p.slug === idOrSlug);
    if (!found) throw notFound('product', idOrSlug);
    return found;
  }
}

/** A USD amount (a number, or a decimal string as plans write them) in cents; null when absent. */
const usdToCents = (usd: string | number | undefined): number | null => (usd === undefined ? null : Math.round(Number(usd) * 100));

/** A plan as a catalog file (or a partner server) writes it, as the database and the API hold it: amounts in cents. */
export function billingPlanOf(
  productId: string,
  plan: Omit<CatalogPlan, 'description' | 'paymentMethodRequired'> & { description?: string; paymentMethodRequired?: boolean },
): BillingPlan {
  return {
    productId,
    id: plan.id,
    type: plan.type,
    scope: plan.scope ?? 'resource',
    name: plan.name,
    description: plan.description ?? '',
    cost: plan.cost ?? null,
    paymentMethodRequired: plan.paymentMethodRequired ?? false,
    preauthorizationAmountCents: usdToCents(plan.preauthorizationAmount),
    initialCharge: plan.initialCharge ?? null,
    minimumAmountCents: usdToCents(plan.minimumAmount),
    maximumAmountCents: usdToCents(plan.maximumAmount),
    details: plan.details ?? [],
    highlightedDetails: plan.highlightedDetails ?? [],
    resourceLimit: plan.resourceLimit ?? null,
    disabled: plan.disabled ?? false,
    retired: false,
  };
}

/**
 * A product's plans as they are offered: every plan, with those the catalog disables and those it
 * dropped while stores still use them shown as disabled (listed, not selectable).
 */
export function offeredPlans(product: Product): BillingPlan[] {
  return product.plans.map((plan) => (plan.retired ? { ...plan, disabled: true } : plan));
}
