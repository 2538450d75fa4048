/**
 * An installation's billing as the `vercel` CLI reads and sets it: the prepaid balances of its
 * stores with their thresholds (`vercel integration balance`), a store's threshold
 * (`vercel integration resource create-threshold`), and the uninstall of `vercel integration
 * remove`, which answers the 403 the CLI expects while stores remain.
 *
 * Balances are the stores' own (`prepaid_balance_cents`: what the prepayment bought, as the
 * partner last reported it through POST /v1/installations/{id}/billing/balance; every report is
 * kept, src/billing/billing-history.ts). A threshold is kept with its store (prepayment_thresholds)
 * and shown with the balance; a report that takes the balance below it buys the top-up
 * (billing-history.ts), which GET /_storehouse/teams/{teamId}/billing/balances lists.
 */
import { audited } from '../audit/audit-log.ts';
import { usd } from '../billing/dollars.ts';
import type { BillingPlan, Catalog } from '../catalog/catalog.ts';
import type { Database } from '../db/database.ts';
import { AppError, badRequest, notFound, validationError } from '../errors.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin, countStores, getInstallation } from '../tenancy/installations.ts';
import type { Discovery } from './discovery.ts';

export interface ThresholdInput {
  billingPlanId?: string | undefined;
  minimumAmountInCents: number;
  purchaseAmountInCents: number;
  maximumAmountPerPeriodInCents?: number | undefined;
  metadata?: string | undefined;
}

export interface Threshold {
  resourceId: string;
  billingPlanId: string;
  minimumAmountInCents: number;
  purchaseAmountInCents: number;
  maximumAmountPerPeriodInCents?: number;
}

export class InstallationBilling {
  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    private readonly discovery: Discovery,
  ) {}

  /** The prepaid balances of the installation's stores, and their thresholds, by each store's externalResourceId. */
  async balance(actor: Actor, installationId: string) {
    const installation = await getInstallation(this.db, actor.team.id, installationId);
    const { rows: balances } = await this.db.query<{ resource_id: string; cents: string; updated_at: Date }>(
      `SELECT coalesce(external_resource_id, id) AS resource_id, prepaid_balance_cents AS cents, updated_at
         FROM stores WHERE installation_id = $1 AND prepaid_balance_cents IS NOT NULL ORDER BY created_at, id`,
      [installation.id],
    );
    const { rows: thresholds } = await this.db.query<{
      resource_id: string;
      billing_plan_id: string;
      minimum: string;
      purchase: string;
      maximum: string | null;
    }>(
      `SELECT coalesce(s.external_resource_id, s.id) AS resource_id, t.billing_plan_id, t.minimum_amount_cents AS minimum,
              t.purchase_amount_cents AS purchase, t.maximum_amount_per_period_cents AS maximum
         FROM prepayment_thresholds t JOIN stores s ON s.id = t.store_id
        WHERE t.installation_id = $1 ORDER BY s.created_at, s.id`,
      [installation.id],
    );
    return {
      ownerId: actor.team.id,
      installationId: installation.id,
      balances: balances.map((row) => ({
        resourceId: row.resource_id,
        currencyValueInCents: Number(row.cents),
        timestamp: row.updated_at.toISOString(),
      })),
      thresholds: thresholds.map((row) => ({
        resourceId: row.resource_id,
        billingPlanId: row.billing_plan_id,
        minimumAmountInCents: Number(row.minimum),
        purchaseAmountInCents: Number(row.purchase),
        ...(row.maximum !== null && { maximumAmountPerPeriodInCents: Number(row.maximum) }),
      })),
    };
  }

  /**
   * Sets the threshold of a prepaid store of the installation (by its id or externalResourceId):
   * its admins only; the plan must be the store's, a prepayment plan; minimum ≤ purchase ≤
   * maximum, and the purchase within the plan's amounts.
   */
  async setThreshold(actor: Actor, installationId: string, resourceId: string, input: ThresholdInput): Promise<Threshold> {
    const installation = await getInstallation(this.db, actor.team.id, installationId);
    const integration = this.catalog().integrationById(installation.integrationId);
    assertInstallationAdmin(installation, actor, integration?.name ?? 'the integration', 'set its billing thresholds');
    const { rows } = await this.db.query<{ id: string; product_id: string; billing_plan_id: string; external_resource_id: string | null }>(
      `SELECT id, product_id, billing_plan_id, external_resource_id FROM stores
        WHERE installation_id = $1 AND team_id = $2 AND (id = $3 OR external_resource_id = $3) AND status <> 'deleting'
        ORDER BY id = $3 DESC LIMIT 1`,
      [installation.id, actor.team.id, resourceId],
    );
    const store = rows[0];
    if (!store) throw notFound(`resource of ${installation.id}`, resourceId);
    const plan: BillingPlan | undefined = this.catalog()
      .productById(store.product_id)
      .plans.find((p) => p.id === store.billing_plan_id);
    if (plan?.type !== 'prepayment') {
      throw new AppError(
        400,
        'not_prepayment',
        `The store ${store.id} is on ${plan?.name ?? store.billing_plan_id}, which is not a prepayment plan`,
      );
    }
    if (input.billingPlanId !== undefined && input.billingPlanId !== plan.id) {
      throw badRequest(`The store ${store.id} is on the plan ${plan.id}, not ${input.billingPlanId}`);
    }
    const { minimumAmountInCents: minimum, purchaseAmountInCents: purchase, maximumAmountPerPeriodInCents: maximum } = input;
    const fields = [];
    if (purchase < minimum) fields.push({ key: 'purchaseAmountInCents', message: 'must be at least minimumAmountInCents' });
    if (maximum !== undefined && maximum < purchase)
      fields.push({ key: 'maximumAmountPerPeriodInCents', message: 'must be at least purchaseAmountInCents' });
    if (plan.minimumAmountCents !== null && purchase < plan.minimumAmountCents)
      fields.push({ key: 'purchaseAmountInCents', message: `must be at least the plan's minimum, ${usd(plan.minimumAmountCents)}` });
    if (plan.maximumAmountCents !== null && purchase > plan.maximumAmountCents)
      fields.push({ key: 'purchaseAmountInCents', message: `must be at most the plan's maximum, ${usd(plan.maximumAmountCents)}` });
    if (fields.length > 0) throw validationError(fields);
    await audited(
      this.db,
      `INSERT INTO prepayment_thresholds (store_id, installation_id, billing_plan_id, minimum_amount_cents, purchase_amount_cents,
                                          maximum_amount_per_period_cents, metadata, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (store_id) DO UPDATE SET billing_plan_id = EXCLUDED.billing_plan_id, minimum_amount_cents = EXCLUDED.minimum_amount_cents,
              purchase_amount_cents = EXCLUDED.purchase_amount_cents, maximum_amount_per_period_cents = EXCLUDED.maximum_amount_per_period_cents,
              metadata = EXCLUDED.metadata, updated_at = now()
       RETURNING store_id`,
      [store.id, installation.id, plan.id, minimum, purchase, maximum ?? null, input.metadata ?? null, actor.userId],
      {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'store.threshold_set',
        targetType: 'store',
        targetId: store.id,
        details: { minimumAmountInCents: minimum, purchaseAmountInCents: purchase, maximumAmountPerPeriodInCents: maximum ?? null },
      },
    );
    return {
      resourceId: store.external_resource_id ?? store.id,
      billingPlanId: plan.id,
      minimumAmountInCents: minimum,
      purchaseAmountInCents: purchase,
      ...(maximum !== undefined && { maximumAmountPerPeriodInCents: maximum }),
    };
  }

  /**
   * `vercel integration remove`: refused with a 403 naming the resources while the installation
   * has stores (the CLI lists them then), else removed as DELETE /v1/integrations/configuration/{id}
   * removes it (its admins only, a partner server told first).
   */
  async uninstall(actor: Actor, installationId: string): Promise<void> {
    const installation = await getInstallation(this.db, actor.team.id, installationId);
    const stores = await countStores(this.db, installation.id);
    if (stores > 0) {
      throw new AppError(
        403,
        'has_resources',
        `The installation ${installation.id} still has resources (${stores} store${stores === 1 ? '' : 's'}): remove them first (vercel integration resource remove <name> --disconnect-all)`,
      );
    }
    await this.discovery.deleteConfiguration(actor, installation.id);
  }
}
