/**
 * Creating a store: validation, plan, billing, quotas, provisioning through the product's
 * provider, and the idempotency key that makes a retry get the first request's answer.
 *
 * Creating touches the outside world, so it is recorded before and after: the store is written
 * as `initializing` (with its billing and the request's idempotency key) in one transaction
 * before the provider is called, and its result in another after. A provider that fails or
 * times out has its work undone (Provider.abandon) and the store rolled back (undoCreate); if
 * even the undo fails, the store stays, `deleting`, as the record of what may exist, until the
 * undo is done.
 */
import { audit, audited } from '../audit/audit-log.ts';
import { chargeFor, releaseCharges } from '../billing/authorizations.ts';
import type { BillingPlan, Integration, Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { AppError, conflict } from '../errors.ts';
import type { Provider, ProviderResource, Secret } from '../providers/provider.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin, type Installation } from '../tenancy/installations.ts';
import { KeyTaken, requestHash, type IdempotentRequest } from './idempotency.ts';
import type { PendingStores } from './pending-stores.ts';
import { providerFailure, within } from './provider-calls.ts';
import { recordNewStore } from './new-store-record.ts';
import { provisionRequest, type StoreContext } from './store-context.ts';
import { checkName, validateMetadata, validateProtocolSettings } from './store-input.ts';
import type { StoreRemoval } from './store-removal.ts';
import type { StoreView } from './store-views.ts';
import { nameTaken, planNotOffered, plansUsedUp, sealSecrets, STORE_COLUMNS, STORE_STATUS, toStore, type Store } from './stores.ts';

/** How long a failed create's answer waits for its undo before answering all the same (the undo goes on). */
const UNDO_WAIT_MS = 2_000;

/** The body of POST /v1/storage/stores/integration/direct, as the route's schema lets it through. */
export interface CreateStoreInput {
  name: string;
  integrationConfigurationId: string;
  integrationProductIdOrSlug: string;
  metadata?: Record<string, unknown> | undefined;
  externalId?: string | undefined;
  protocolSettings?: Record<string, unknown> | undefined;
  source?: string | undefined;
  billingPlanId?: string | undefined;
  paymentMethodId?: string | undefined;
  prepaymentAmountCents?: number | undefined;
}

const CREATE = 'stores.create';

/**
 * Refusals a request may get from seeing the store of another request with the same key, made
 * between its look at the key and its own checks: that request's answer is this one's.
 */
const CONTENDED = new Set(['store_name_taken', 'store_quota_exceeded', 'plan_resource_limit_reached', 'no_free_plan']);

/** A promise that never settles: the side of a race that is not to win. */
const NEVER = new Promise<never>(() => {});

const storeDeleted = (store: Store) => conflict('store_deleted', `The store ${store.name} was deleted while it was being created`);

export class StoreCreation {
  /** Undos still going on after their create answered (see undoCreate): waited for at shutdown. */
  private readonly undoing = new Set<Promise<void>>();

  constructor(
    private readonly ctx: StoreContext,
    private readonly removal: StoreRemoval,
    private readonly pending: PendingStores,
  ) {}

  /** Resolves once every undo under way has ended (each is bounded: the provider's part by the provision timeout). */
  async undosDone(): Promise<void> {
    await Promise.all(this.undoing);
  }

  /**
   * Creates a store, or with an idempotency key already used for this body, answers as the first
   * request did. `render` makes the response from the new store (it is recorded for repeats).
   *
   * One key, one answer. A repeat while the first request runs waits for its answer. A first
   * request that failed and was rolled back gave its key back with its store: a repeat is a fresh
   * attempt, and its name is free again. One whose rollback could not be done yet (its provider
   * unreachable) keeps its key and its name: a repeat tries the rollback again at once and, while
   * it still cannot be done, gets the failure the first request got (idempotency.ts), never a 409
   * for the name its own first attempt holds.
   */
  async create<R>(
    actor: Actor,
    input: CreateStoreInput,
    options: {
      idempotencyKey?: string | undefined;
      render(view: StoreView): R;
      /** The shape `render` answers in, when not the store route's: a key is kept per shape (a replay is answered as recorded). */
      answer?: string;
    },
  ): Promise<R> {
    const { keys } = this.ctx;
    // A key is one user's in one team: another user's request with the same key is their own
    // (and goes through every check), never a replay of someone else's. It is one route's too: the
    // same key sent to another route that answers in another shape is a request of its own.
    const operation = `${CREATE}${options.answer ? `.${options.answer}` : ''}:${actor.userId}`;
    const idempotent: IdempotentRequest | undefined = options.idempotencyKey
      ? { teamId: actor.team.id, operation, key: options.idempotencyKey, hash: requestHash(input) }
      : undefined;
    let reran = false;
    for (;;) {
      if (idempotent) {
        const recorded = await keys.recorded(idempotent);
        if (recorded !== undefined) return recorded as R;
      }
      try {
        return await this.createOnce(actor, input, idempotent, options.render);
      } catch (error) {
        // Another request with this key got there first: its answer is this one's too.
        if (idempotent && error instanceof KeyTaken) continue;
        if (!idempotent || !(error instanceof AppError) || !CONTENDED.has(error.code)) throw error;
        // A refusal (name taken, quota, a free plan used up) may come from seeing that request's
        // store before its key: the key is looked at again, so one key always gets one answer.
        const recorded = await keys.recorded(idempotent);
        if (recorded !== undefined) return recorded as R;
        // The key is free: the request that held it failed and was rolled back meanwhile, its store
        // with it, so the refusal may belong to no request. The attempt is made again, once.
        if (reran) throw error;
        reran = true;
      }
    }
  }

  private async createOnce<R>(
    actor: Actor,
    input: CreateStoreInput,
    idempotent: IdempotentRequest | undefined,
    render: (view: StoreView) => R,
  ): Promise<R> {
    const { db, discovery, catalog } = this.ctx;
    // 1. What the body names.
    const name = checkName(input.name);
    // The name's look-up goes out beside the configuration's. A name taken is the refusal before
    // any of steps 2 to 5; a free one is not waited for: the record checks it again, under the lock.
    const holder = this.nameHolder(actor.team.id, name);
    holder.catch(() => {}); // the configuration's refusal may come before anything waits for it
    const { installation, integration } = await discovery.getConfiguration(actor, input.integrationConfigurationId);
    const product = catalog().findProduct(integration.id, input.integrationProductIdOrSlug);
    const checks = this.checked(actor, input, { installation, integration, product }).catch(async (error: unknown) => {
      const taken = await holder.catch(() => undefined);
      throw taken ? nameTaken(name, taken) : error;
    });
    // A name found taken is refused at once, not after the plan's look-up (a partner's, over the network).
    const refusal = holder.then(
      (taken) => (taken ? Promise.reject(nameTaken(name, taken)) : NEVER),
      () => NEVER,
    );
    const { metadata, protocolSettings, plan, provider, charge } = await Promise.race([checks, refusal]);

    // 6. Quotas, and the store recorded before the provider is called.
    const store = await recordNewStore(this.ctx, actor, {
      installation,
      product,
      plan,
      charge,
      name,
      metadata,
      protocolSettings,
      source: input.source,
      externalId: input.externalId,
      idempotent,
    });

    // 7. Provisioning.
    let result: { resource: ProviderResource; secrets: Secret[] };
    try {
      result = await this.provisionWithin(provider, store, product);
    } catch (error) {
      throw await this.undoCreate(store, product, actor, error);
    }
    const finish = async (tx: Queryable) => {
      const updated = await this.recordProvisioned(tx, store, result, actor);
      const view: StoreView = { store: updated, product, integration, plan, connections: [] };
      if (idempotent) await this.ctx.keys.complete(tx, idempotent, render(view));
      return view;
    };
    // Without a key the result is one statement, atomic on its own. Its commit is synchronous: with
    // a provider on the state server it makes the provision's writes durable too (Provider.onStateServer).
    const view = idempotent ? await db.transaction(finish) : await finish(db);
    if (view.store.status === 'initializing') this.ctx.pendingChanged();
    return render(view);
  }

  /** Steps 2 to 5 of a create: who may, with what, on which plan, at what cost. */
  private async checked(
    actor: Actor,
    input: CreateStoreInput,
    { installation, integration, product }: { installation: Installation; integration: Integration; product: Product },
  ) {
    // 2. Who may create.
    assertInstallationAdmin(installation, actor, integration.name, 'create its stores');
    // 3. What the store is created with.
    const metadata = validateMetadata(product, input.metadata);
    const protocolSettings = validateProtocolSettings(product, input.protocolSettings);
    // 4. The plan, and 5. what it costs: refusals of the request itself come before any about
    // the provider, so a bad plan is a 400 whether or not the provider can be reached.
    const plan = await this.choosePlan(actor, product, input.billingPlanId, { metadata, installationId: installation.id });
    const provider = this.ctx.providers.for(product);
    provider.checkMetadata(metadata, product);
    const charge = await chargeFor(this.ctx.db, actor.team.id, plan, input);
    return { metadata, protocolSettings, plan, provider, charge };
  }

  /** The id of the team's store named `name`, if there is one. */
  private async nameHolder(teamId: string, name: string): Promise<string | undefined> {
    const { rows } = await this.ctx.db.query<{ id: string }>('SELECT id FROM stores WHERE team_id = $1 AND name = $2', [teamId, name]);
    return rows[0]?.id;
  }

  /** The plan asked for (one of the product's selectable plans), or the product's free plan. */
  private async choosePlan(
    actor: Actor,
    product: Product,
    billingPlanId: string | undefined,
    context: { metadata: Record<string, unknown>; installationId: string },
  ): Promise<BillingPlan> {
    const plans = await this.ctx.providers.plansFor(product, context.metadata, {
      teamId: actor.team.id,
      installationId: context.installationId,
    });
    const selectable = plans.filter((plan) => !plan.disabled);
    if (billingPlanId === undefined) {
      // A free plan the team has used up is not discovered (the plans endpoint lists it disabled).
      const isFree = (plan: BillingPlan) => plan.type === 'subscription' && !plan.paymentMethodRequired;
      const usedUp = await plansUsedUp(this.ctx.db, actor.team.id, selectable.filter(isFree));
      const free = selectable.find((plan) => isFree(plan) && !usedUp.has(plan.id));
      if (free) return free;
      const paid = selectable.filter((plan) => !isFree(plan)).map((plan) => plan.id);
      throw new AppError(
        400,
        'no_free_plan',
        `${product.name} has no free plan available${usedUp.size ? ` (the team has used up ${[...usedUp].join(', ')})` : ''}: pass billingPlanId${paid.length ? `, one of: ${paid.join(', ')}` : ' (it has no selectable plan)'}`,
      );
    }
    const plan = selectable.find((p) => p.id === billingPlanId);
    if (!plan)
      throw planNotOffered(
        product,
        billingPlanId,
        plans,
        selectable.map((p) => p.id),
      );
    return plan;
  }

  private provisionWithin(provider: Provider, store: Store, product: Product) {
    return within(provider.provision(provisionRequest(store, product)), this.ctx.options.provisionTimeoutMs);
  }

  private async recordProvisioned(
    db: Queryable,
    store: Store,
    result: { resource: ProviderResource; secrets: Secret[] },
    actor: Actor,
  ): Promise<Store> {
    const { resource, secrets } = result;
    const status = STORE_STATUS[resource.status];
    const { sealed, summary } = sealSecrets(this.ctx.box, store.id, secrets);
    const { rows } = await audited(
      db,
      `UPDATE stores SET status = $2, external_resource_id = $3, external_resource_status = $4, secrets = $5, secret_summary = $6,
              notification = coalesce($7::jsonb, notification), owner_node = NULL, updated_at = now()
        WHERE id = $1 AND status = 'initializing' RETURNING ${STORE_COLUMNS}`,
      [
        store.id,
        status,
        resource.id,
        resource.status,
        sealed,
        summary,
        resource.notification ? JSON.stringify(resource.notification) : null,
      ],
      {
        teamId: store.teamId,
        actorId: actor.userId,
        action: 'store.provisioned',
        targetType: 'store',
        targetId: store.id,
        details: { status, externalResourceId: resource.id },
      },
    );
    if (!rows[0]) throw storeDeleted(store);
    // A pending resource is asked about again (and the provider may report it ready sooner).
    if (resource.status === 'pending') await this.pending.schedulePending(db, store.id);
    return toStore(rows[0]);
  }

  /**
   * A provision failed or timed out: undo whatever it did and roll the store back. Returns the
   * error to answer with.
   *
   * The undo done, the store goes, with its billing, name, quota and idempotency key. If the undo
   * fails too (its provider unreachable), the request has failed all the same: its billing is
   * released now. The store stays, `deleting` (the API shows it in error, being rolled back), as
   * the record of what may exist, still holding its name, quota and key; the recovery sweep tries
   * the undo again with a backoff, and a retry with the key at once (StoreRemoval.recoverStore),
   * until it succeeds and they are given back.
   */
  private async undoCreate(store: Store, product: Product, actor: Actor, error: unknown): Promise<AppError> {
    const { db, options } = this.ctx;
    const answer = providerFailure(store, error);
    options.logger?.warn({ err: error, store: store.id }, 'provisioning failed');
    // Claimed as a rollback first, as the recovery sweep claims one: the sweep leaves it alone
    // while this node holds its lease, and finishes it should this node die before it is done.
    const { rowCount } = await db.query(
      "UPDATE stores SET status = 'deleting', rolling_back = true, owner_node = $2, updated_at = now() WHERE id = $1 AND status = 'initializing' AND owner_node = $2",
      [store.id, options.lease.nodeId],
    );
    // The sweep took it for dead already (that is why the provision failed, likely): it finishes the undo.
    if (!rowCount) return storeDeleted(store);
    const undone = this.undo(store, product, actor, answer).then(
      () => {},
      (failure: Error) =>
        options.logger?.warn({ err: failure, store: store.id }, 'cannot record a failed undo; the sweep finds it all the same'),
    );
    this.undoing.add(undone);
    void undone.finally(() => this.undoing.delete(undone));
    // The answer is the provision's failure either way; it waits a moment for the undo (quick
    // when the provider answers, so the store is gone when the client hears), not for a provider
    // that stopped answering: the undo goes on, bounded, and the sweep retries it if it fails.
    await within(undone, UNDO_WAIT_MS).catch(() => {});
    return answer;
  }

  private async undo(store: Store, product: Product, actor: Actor, answer: AppError): Promise<void> {
    const { db, options } = this.ctx;
    try {
      await this.removal.deprovision(store, product);
    } catch (undoError) {
      options.logger?.warn({ err: undoError, store: store.id }, 'cannot undo a failed provision yet; the sweep tries again');
      await db.transaction(async (tx) => {
        await releaseCharges(tx, store.id);
        await audit(tx, {
          teamId: store.teamId,
          actorId: actor.userId,
          action: 'store.failed',
          targetType: 'store',
          targetId: store.id,
          details: { reason: answer.message },
        });
      });
      await this.removal.retryLater(store);
      return;
    }
    await this.removal.remove(store, { actorId: actor.userId, onlyDeleting: true, action: 'store.rolled_back', reason: answer.message });
  }
}
