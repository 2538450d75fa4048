/**
 * Stores made from the provider's side: a resource a partner server created, imported into an
 * installation through the marketplace API.
 */
import { audited } from '../audit/audit-log.ts';
import { billingPlanOf, offeredPlans } from '../catalog/catalog.ts';
import { validationError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { ResourceStatus, Secret } from '../providers/provider.ts';
import type { PartnerPlan as PartnerPlanInput } from '../providers/http.ts';
import type { PendingStores } from './pending-stores.ts';
import type { StoreContext } from './store-context.ts';
import {
  assertStoreRoom,
  isNameTaken,
  nameTaken,
  rememberPlanIfNew,
  sealSecrets,
  STORE_COLUMNS,
  STORE_STATUS,
  toStore,
  type Store,
} from './stores.ts';

export class StoreImports {
  constructor(
    private readonly ctx: StoreContext,
    private readonly pending: PendingStores,
  ) {}

  /**
   * A resource the provider created on its side, imported into the installation as a new store
   * (the marketplace API's import, for a resource it does not hold yet). It counts against the
   * team's quota and needs a free name; it is `linked` unless the partner says otherwise, and a
   * linked store's delete does not deprovision it.
   */
  async importResource(
    installation: { installationId: string; teamId: string; integrationId: string },
    resourceId: string,
    input: {
      productId: string;
      name: string;
      status: ResourceStatus;
      ownership?: Store['ownership'] | undefined;
      metadata?: Record<string, unknown> | undefined;
      billingPlan?: PartnerPlanInput | undefined;
      notification?: unknown;
      secrets?: Secret[] | undefined;
    },
  ): Promise<Store> {
    const product = this.ctx.catalog().findProduct(installation.integrationId, input.productId);
    const plan = input.billingPlan
      ? (product.plans.find((p) => p.id === input.billingPlan!.id) ?? billingPlanOf(product.id, input.billingPlan))
      : (offeredPlans(product).find((p) => !p.disabled && !p.paymentMethodRequired) ?? offeredPlans(product)[0]);
    if (!plan)
      throw validationError(
        [{ key: 'billingPlan', message: 'is required for this product' }],
        `${product.name} has no plan to import the resource on: send billingPlan`,
      );
    const status = STORE_STATUS[input.status];
    const id = newId('store'); // made first: the secrets are sealed for its row
    const sealed = input.secrets ? sealSecrets(this.ctx.box, id, input.secrets) : undefined;
    const notification = input.notification && typeof input.notification === 'object' ? JSON.stringify(input.notification) : null;
    try {
      const store = await this.ctx.db.transaction(async (tx) => {
        await assertStoreRoom(tx, installation.teamId, this.ctx.options.defaultStoreQuota);
        await rememberPlanIfNew(tx, product, plan);
        const { rows } = await audited(
          tx,
          `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status, source, metadata, provision_key,
                              external_resource_id, external_resource_status, secrets, secret_summary, notification, ownership)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'import', $8, $9, $10, $11, $12, coalesce($13::jsonb, '[]'), $14, $15)
           RETURNING ${STORE_COLUMNS}`,
          [
            id,
            installation.teamId,
            installation.installationId,
            product.id,
            plan.id,
            input.name,
            status,
            JSON.stringify(input.metadata ?? {}),
            `${id}.import`,
            resourceId,
            input.status,
            sealed?.sealed ?? null,
            sealed?.summary ?? null,
            notification,
            input.ownership ?? 'linked',
          ],
          {
            teamId: installation.teamId,
            actorId: null,
            action: 'store.imported',
            targetType: 'store',
            targetId: id,
            details: { name: input.name, externalResourceId: resourceId, product: product.slug },
          },
        );
        if (input.status === 'pending') await this.pending.schedulePending(tx, id);
        return toStore(rows[0]!);
      });
      if (store.status === 'initializing') this.ctx.pendingChanged();
      return store;
    } catch (error) {
      if (isNameTaken(error)) throw nameTaken(input.name);
      throw error;
    }
  }
}
