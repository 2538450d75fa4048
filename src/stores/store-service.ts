/**
 * The store lifecycle: creating a store (validation, plan, billing, quotas, provisioning through
 * the product's provider), reading and listing stores, and deleting them.
 *
 * Creating touches the outside world, so it is recorded before and after: the store is written
 * as `initializing` (with its billing and the request's idempotency key) in one transaction
 * before the provider is called, and its result in another after. A provider that fails or
 * times out has its work undone (Provider.abandon) and the store rolled back; if even that
 * fails, the store stays, in `error`, as the record of what may exist.
 */
import type { Logger } from 'pino';
import { audit, audited } from '../audit/audit-log.ts';
import { chargeFor, recordCharge, releaseCharges, type Charge } from '../billing/authorizations.ts';
import { billingPlanOf, offeredPlans, type BillingPlan, type Catalog, type Integration, type Product } from '../catalog/catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import { AppError, conflict, validationError } from '../errors.ts';
import { newId, randomBase62 } from '../ids.ts';
import type { Discovery } from '../marketplace/discovery.ts';
import type { Caller, Provider, ProviderResource, ProvisionRequest, ResourceStatus, Secret } from '../providers/provider.ts';
import type { PartnerPlan as PartnerPlanInput } from '../providers/http.ts';
import type { Providers } from '../providers/registry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin, type Installation } from '../tenancy/installations.ts';
import { isGone, providerFailure, within } from './provider-calls.ts';
import { IdempotencyKeys, KeyTaken, requestHash, type IdempotentRequest } from './idempotency.ts';
import { Schedule } from './schedule.ts';
import { retryLater, takeoverAt, takeoverDue, underWay } from './interrupted-work.ts';
import type { NodeLease } from '../db/node-lease.ts';
import { checkName, validateMetadata, validateProtocolSettings } from './store-input.ts';
import {
  assertPlanRoom,
  findStore,
  isNameTaken,
  listStores,
  nameTaken,
  ON_PLAN,
  planNotOffered,
  plansUsedUp,
  prefixed,
  rememberPlanIfNew,
  sealSecrets,
  STORE_COLUMNS,
  STORE_STATUS,
  toStore,
  type Store,
  type StorePage,
} from './stores.ts';

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

/** A store with the catalog entries it was created from, which its API view shows. */
export interface StoreView {
  store: Store;
  product: Product;
  integration: Integration;
  plan: BillingPlan | undefined;
  /** Projects the store is connected to. */
  connections: StoreConnection[];
}

export interface StoreConnection {
  /** The connection's id (`spc_...`), which the CLI disconnects by. */
  id: string;
  projectId: string;
  projectName: string;
  environments: string[];
  sensitive: boolean;
  envVarPrefix: string;
  envVarNames: string[];
}

export interface StoreServiceOptions {
  /** The most stores a team may hold, unless the team has a quota of its own. */
  defaultStoreQuota: number;
  /** How long a provider may take to provision before the create fails with 503. */
  provisionTimeoutMs: number;
  /** How long a store its provider answered `pending` for may take to become ready before it is marked `error`. */
  pendingTimeoutMs: number;
  /** This node's lease: the creates and deletes it works on are recorded as its own. */
  lease: NodeLease;
  logger?: Logger | undefined;
}

const CREATE = 'stores.create';

const storeDeleted = (store: Store) => conflict('store_deleted', `The store ${store.name} was deleted while it was being created`);

const quotaExceeded = (quota: number, used: number) =>
  new AppError(
    403,
    'store_quota_exceeded',
    `The team has reached its quota of ${quota} store${quota === 1 ? '' : 's'}: delete one, or ask an operator to raise the quota`,
    {
      limit: { total: quota, used },
    },
  );

export class StoreService {
  private readonly keys: IdempotencyKeys;
  private recovery: Schedule | undefined;
  private pending: Schedule | undefined;

  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    private readonly discovery: Discovery,
    private readonly providers: Providers,
    private readonly box: SecretBox,
    private readonly options: StoreServiceOptions,
  ) {
    this.keys = new IdempotencyKeys(db, {
      waitMs: options.provisionTimeoutMs + 30_000,
      staleSecs: this.staleMs / 1000,
      // A retry whose first attempt died with its node finishes that attempt's work itself.
      recover: (storeId) => this.recoverStore(storeId),
    });
  }

  /**
   * Background work, until the returned function stops it: creates and deletes interrupted by a
   * node that died are finished when they turn stale (and looked for every minute); stores a
   * provider answered `pending` for are asked about when due; expired idempotency keys are
   * forgotten every hour.
   */
  startHousekeeping(onError: (error: Error) => void): () => Promise<void> {
    // The first runs wait a moment, so they do not compete with the start's first requests.
    this.recovery = new Schedule(
      async () => {
        await this.recoverInterrupted();
        return this.nextStaleAt();
      },
      60_000,
      onError,
    ).start(2_000);
    this.pending = new Schedule(() => this.checkPending(), 60_000, onError).start(2_000);
    const purge = setInterval(() => void this.keys.purge().catch(onError), 3_600_000);
    purge.unref();
    return async () => {
      clearInterval(purge);
      await Promise.all([this.recovery?.stop(), this.pending?.stop()]);
    };
  }

  /** The node this service records its work under way as. */
  get nodeId(): string {
    return this.options.lease.nodeId;
  }

  /** A store became pending (here or through its provider): its checks are scheduled. */
  pendingChanged(): void {
    this.pending?.wake();
  }

  /** How long after its last update a create or delete under way is taken for interrupted: twice the provision timeout. */
  private get staleMs(): number {
    return 2 * this.options.provisionTimeoutMs;
  }

  /**
   * Finishes what a node left behind when it died: a create between recording its store and
   * recording its provider's answer (the store still `initializing`), or a delete between
   * starting and finishing (`deleting`), once its node's lease ran out or it turned stale; and an
   * undo or delete whose provider could not be reached, when it is due again. None was acknowledged
   * to its caller, so all end the same way: the resource is removed (abandoned through the
   * provision key when its id was never recorded; a linked one is left to its provider), the
   * billing released, a key given back and the store removed.
   *
   * A store is claimed by turning it `deleting` as this node's (and moving its clock on) with SKIP
   * LOCKED, so with several nodes only one works on it, and a create that was merely slow can no
   * longer record it as available: it answers 409 `store_deleted`. A provider that cannot be
   * reached leaves the store to be tried again later, with a backoff.
   */
  async recoverInterrupted(): Promise<number> {
    let recovered = 0;
    const skipped: string[] = [];
    while (!this.recovery?.isStopped) {
      const store = await this.claimInterrupted({ skip: skipped });
      if (!store) break;
      if (await this.finishInterrupted(store)) recovered++;
      else skipped.push(store.id);
    }
    return recovered;
  }

  /** Takes over the interrupted work of one store now, if it is due (a keyed retry of the create that left it). */
  private async recoverStore(storeId: string): Promise<void> {
    const store = await this.claimInterrupted({ id: storeId });
    if (store) await this.finishInterrupted(store);
  }

  /** Claims the oldest create or delete due to be taken over (or the one named), as this node's. */
  private async claimInterrupted(which: { skip?: string[]; id?: string }): Promise<Store | undefined> {
    const { rows } = await this.db.query(
      `WITH due AS (
         SELECT id, status FROM stores
          WHERE ${takeoverDue('stores', '$1')} AND NOT (id = ANY($2)) AND ($4::text IS NULL OR id = $4)
          ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE stores s SET status = 'deleting', rolling_back = s.rolling_back OR due.status = 'initializing',
              owner_node = $3, retry_at = NULL, updated_at = now()
         FROM due WHERE s.id = due.id
       RETURNING ${prefixed('s')}`,
      [this.staleMs / 1000, which.skip ?? [], this.options.lease.nodeId, which.id ?? null],
    );
    return rows[0] ? toStore(rows[0]) : undefined;
  }

  /** Removes a claimed store's resource and then the store; false when the provider cannot be reached (tried again later). */
  private async finishInterrupted(store: Store): Promise<boolean> {
    try {
      await this.deprovision(store, this.catalog().productById(store.productId));
    } catch (error) {
      await this.retryLater(store);
      this.options.logger?.warn({ err: error, store: store.id }, 'cannot finish an interrupted create or delete yet; retrying later');
      return false;
    }
    // A create being rolled back stays one across passes (and node deaths), not a user's delete.
    const creating = store.rollingBack;
    await this.remove(store, {
      actorId: null,
      onlyDeleting: true,
      action: creating ? 'store.rolled_back' : 'store.deleted',
      reason: creating ? 'its create did not finish' : 'its delete was interrupted',
    });
    this.options.logger?.info({ store: store.id, creating }, 'finished an interrupted create or delete');
    return true;
  }

  /** Leaves a store whose undo or delete failed to be tried again, by any node, after a backoff. */
  private async retryLater(store: Store): Promise<void> {
    await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE stores SET ${retryLater('stores')}, updated_at = now() WHERE id = $1 AND status = 'deleting' AND owner_node = $2`,
        [store.id, this.options.lease.nodeId],
      );
      // A create being undone answers no one any more: a retry with its key runs again at once.
      if (rowCount && store.rollingBack) await this.keys.releaseFor(tx, store.teamId, store.id);
    });
    this.recovery?.wake();
  }

  /** When the next create or delete under way may be taken over; undefined when none is under way. */
  private async nextStaleAt(): Promise<Date | undefined> {
    const { rows } = await this.db.query<{ at: Date | null }>(
      `SELECT min(${takeoverAt('s', '$1', '$2')}) AS at FROM stores s WHERE ${underWay('s')}`,
      [this.staleMs / 1000, this.options.lease.nodeId],
    );
    return rows[0]?.at ?? undefined;
  }

  /**
   * Asks providers about the stores they answered `pending` for, each when it is due (the wait
   * doubles from 2 s up to a minute), until they become ready. A store still pending at its
   * deadline (STOREHOUSE_PENDING_TIMEOUT_MS after the provision) is marked `error` with a
   * notification. A node claims a store by moving its next check on (SKIP LOCKED), so only one
   * node asks about it at a time.
   */
  async checkPending(): Promise<Date | undefined> {
    for (let checked = 0; checked < 100 && !this.pending?.isStopped; checked++) {
      const { rows } = await this.db.query(
        `WITH due AS (
           SELECT id FROM stores WHERE next_check_at <= now() AND status = 'initializing'
            ORDER BY next_check_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE stores s SET check_attempts = s.check_attempts + 1,
                next_check_at = now() + make_interval(secs => least($1 * power(2, least(s.check_attempts, 20)), $2))
           FROM due WHERE s.id = due.id
         RETURNING s.ready_deadline < now() AS overdue, ${prefixed('s')}`,
        [FIRST_CHECK_MS / 1000, MAX_CHECK_INTERVAL_MS / 1000],
      );
      if (!rows[0]) break;
      const store = toStore(rows[0]);
      try {
        const refreshed = await this.refresh(store);
        if (refreshed.status === 'initializing' && rows[0].overdue) await this.markNeverReady(store);
      } catch (error) {
        if (rows[0].overdue) await this.markNeverReady(store);
        else
          this.options.logger?.warn(
            { err: error, store: store.id },
            'cannot ask the provider about a pending store yet; asking again later',
          );
      }
    }
    const { rows } = await this.db.query<{ at: Date | null }>(
      "SELECT min(next_check_at) AS at FROM stores WHERE next_check_at IS NOT NULL AND status = 'initializing'",
    );
    return rows[0]?.at ?? undefined;
  }

  /**
   * Reads a store's resource from its provider again and records what it says: after the provider
   * reports `resource.updated`, and when polling a pending store. Returns the store as recorded.
   */
  async refresh(store: Store): Promise<Store> {
    if (!store.externalResourceId || store.status === 'deleting') return store;
    const provider = this.providers.for(this.catalog().productById(store.productId));
    const resource = await provider.get(store.installationId, store.externalResourceId);
    const status = STORE_STATUS[resource.status];
    const notification = resource.notification === undefined ? store.notification : resource.notification;
    const changed =
      status !== store.status ||
      resource.status !== store.externalResourceStatus ||
      JSON.stringify(notification) !== JSON.stringify(store.notification);
    const pending = resource.status === 'pending';
    if (!changed) {
      if (!pending) await this.db.query('UPDATE stores SET next_check_at = NULL WHERE id = $1 AND next_check_at IS NOT NULL', [store.id]);
      return store;
    }
    const { rows } = await audited(
      this.db,
      `UPDATE stores SET status = $2, external_resource_status = $3, notification = $4::jsonb, updated_at = now(),
              next_check_at = CASE WHEN $5 THEN next_check_at END
        WHERE id = $1 AND status <> 'deleting' RETURNING ${STORE_COLUMNS}`,
      [store.id, status, resource.status, notification === null ? null : JSON.stringify(notification), pending],
      {
        teamId: store.teamId,
        actorId: null,
        action: 'store.updated',
        targetType: 'store',
        targetId: store.id,
        details: { status, externalResourceStatus: resource.status, by: 'provider' },
      },
    );
    return rows[0] ? toStore(rows[0]) : store;
  }

  /** A pending store that did not become ready in time: `error`, with a notification saying what to do. */
  private async markNeverReady(store: Store): Promise<void> {
    const notification = {
      level: 'error',
      title: 'Provisioning did not finish',
      message: `The provider did not report the store ready within ${Math.round(this.options.pendingTimeoutMs / 1000)} s. Delete the store, or wait: it becomes available if the provider reports it ready later.`,
    };
    await audited(
      this.db,
      `UPDATE stores SET status = 'error', notification = $2, next_check_at = NULL, updated_at = now()
        WHERE id = $1 AND status = 'initializing' RETURNING id`,
      [store.id, JSON.stringify(notification)],
      {
        teamId: store.teamId,
        actorId: null,
        action: 'store.failed',
        targetType: 'store',
        targetId: store.id,
        details: { reason: notification.message },
      },
    );
  }

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
    const product = this.catalog().findProduct(installation.integrationId, input.productId);
    const plan = input.billingPlan
      ? (product.plans.find((p) => p.id === input.billingPlan!.id) ?? billingPlanOf(product.id, input.billingPlan))
      : (offeredPlans(product).find((p) => !p.disabled && !p.paymentMethodRequired) ?? offeredPlans(product)[0]);
    if (!plan)
      throw validationError(
        [{ key: 'billingPlan', message: 'is required for this product' }],
        `${product.name} has no plan to import the resource on: send billingPlan`,
      );
    const status = STORE_STATUS[input.status];
    const sealed = input.secrets ? sealSecrets(this.box, input.secrets) : undefined;
    const notification = input.notification && typeof input.notification === 'object' ? JSON.stringify(input.notification) : null;
    try {
      const store = await this.db.transaction(async (tx) => {
        const quota = await this.storeQuota(tx, installation.teamId);
        const { rows: counts } = await tx.query<{ total: number }>('SELECT count(*)::int AS total FROM stores WHERE team_id = $1', [
          installation.teamId,
        ]);
        if (counts[0]!.total >= quota) throw quotaExceeded(quota, counts[0]!.total);
        await rememberPlanIfNew(tx, product, plan);
        const id = newId('store');
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
        if (input.status === 'pending') await this.schedulePending(tx, id);
        return toStore(rows[0]!);
      });
      if (store.status === 'initializing') this.pendingChanged();
      return store;
    } catch (error) {
      if (isNameTaken(error)) throw nameTaken(input.name);
      throw error;
    }
  }

  /**
   * Creates a store, or with an idempotency key already used for this body, answers as the first
   * request did. `render` makes the response from the new store (it is recorded for repeats).
   */
  async create<R>(
    actor: Actor,
    input: CreateStoreInput,
    options: { idempotencyKey?: string | undefined; render(view: StoreView): R },
  ): Promise<R> {
    // A key is one user's in one team: another user's request with the same key is their own
    // (and goes through every check), never a replay of someone else's.
    const idempotent: IdempotentRequest | undefined = options.idempotencyKey
      ? { teamId: actor.team.id, operation: `${CREATE}:${actor.userId}`, key: options.idempotencyKey, hash: requestHash(input) }
      : undefined;
    for (;;) {
      if (idempotent) {
        const recorded = await this.keys.recorded(idempotent);
        if (recorded !== undefined) return recorded as R;
      }
      try {
        return await this.createOnce(actor, input, idempotent, options.render);
      } catch (error) {
        if (!idempotent || !(error instanceof KeyTaken || error instanceof AppError)) throw error;
        // Another request with this key got there first: its answer is this one's too. A refusal
        // (name taken, quota, a free plan used up) may come from seeing that request's store
        // before its key: the key is looked at again, so one key always gets one answer.
        if (error instanceof AppError) {
          const recorded = await this.keys.recorded(idempotent);
          if (recorded === undefined) throw error;
          return recorded as R;
        }
      }
    }
  }

  private async createOnce<R>(
    actor: Actor,
    input: CreateStoreInput,
    idempotent: IdempotentRequest | undefined,
    render: (view: StoreView) => R,
  ): Promise<R> {
    // 1. What the body names.
    const name = checkName(input.name);
    const { installation, integration } = await this.discovery.getConfiguration(actor, input.integrationConfigurationId);
    const product = this.catalog().findProduct(integration.id, input.integrationProductIdOrSlug);
    await this.assertNameFree(this.db, actor.team.id, name);
    // 2. Who may create.
    assertInstallationAdmin(installation, actor, integration.name, 'create its stores');
    // 3. What the store is created with.
    const metadata = validateMetadata(product, input.metadata);
    const protocolSettings = validateProtocolSettings(product, input.protocolSettings);
    // 4. The plan, and 5. what it costs: refusals of the request itself come before any about
    // the provider, so a bad plan is a 400 whether or not the provider can be reached.
    const plan = await this.choosePlan(actor, product, input.billingPlanId, { metadata, installationId: installation.id });
    const provider = this.providers.for(product);
    provider.checkMetadata(metadata, product);
    const charge = await chargeFor(this.db, actor.team.id, plan, input);

    // 6. Quotas, and the store recorded before the provider is called.
    const store = await this.record(actor, { installation, product, plan, charge, name, metadata, protocolSettings, input, idempotent });

    // 7. Provisioning.
    let result: { resource: ProviderResource; secrets: Secret[] };
    try {
      result = await this.provisionWithin(provider, store, product);
    } catch (error) {
      throw await this.undoCreate(store, product, idempotent, actor, error);
    }
    const finish = async (db: Queryable) => {
      const updated = await this.recordProvisioned(db, store, result, actor);
      const view: StoreView = { store: updated, product, integration, plan, connections: [] };
      if (idempotent) await this.keys.complete(db, idempotent, render(view));
      return view;
    };
    // Without a key the result is one statement, atomic on its own.
    const view = idempotent ? await this.db.transaction(finish) : await finish(this.db);
    if (view.store.status === 'initializing') this.pendingChanged();
    return render(view);
  }

  private async assertNameFree(db: Queryable, teamId: string, name: string): Promise<void> {
    const { rows } = await db.query<{ id: string }>('SELECT id FROM stores WHERE team_id = $1 AND name = $2', [teamId, name]);
    if (rows[0]) throw nameTaken(name, rows[0].id);
  }

  /** The plan asked for (one of the product's selectable plans), or the product's free plan. */
  private async choosePlan(
    actor: Actor,
    product: Product,
    billingPlanId: string | undefined,
    context: { metadata: Record<string, unknown>; installationId: string },
  ): Promise<BillingPlan> {
    const plans = await this.providers.plansFor(product, context.metadata, {
      teamId: actor.team.id,
      installationId: context.installationId,
    });
    const selectable = plans.filter((plan) => !plan.disabled);
    if (billingPlanId === undefined) {
      // A free plan the team has used up is not discovered (the plans endpoint lists it disabled).
      const isFree = (plan: BillingPlan) => plan.type === 'subscription' && !plan.paymentMethodRequired;
      const usedUp = await plansUsedUp(this.db, actor.team.id, selectable.filter(isFree));
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

  /** The team's store quota (its own, else the default). */
  private async storeQuota(tx: Queryable, teamId: string): Promise<number> {
    // Locking the team's row makes every create of the team take turns here, so concurrent
    // requests count each other's stores and no quota is ever overshot. NO KEY UPDATE, because
    // it does not conflict with the share locks foreign keys take on the team (an idempotency
    // key's insert, an audit event's): FOR UPDATE did, and two creates deadlocked (40P01).
    const { rows } = await tx.query<{ store_quota: number | null }>('SELECT store_quota FROM teams WHERE id = $1 FOR NO KEY UPDATE', [
      teamId,
    ]);
    return rows[0]?.store_quota ?? this.options.defaultStoreQuota;
  }

  private async record(
    actor: Actor,
    request: {
      installation: Installation;
      product: Product;
      plan: BillingPlan;
      charge: Charge | undefined;
      name: string;
      metadata: Record<string, unknown>;
      protocolSettings: Record<string, unknown> | undefined;
      input: CreateStoreInput;
      idempotent: IdempotentRequest | undefined;
    },
  ): Promise<Store> {
    const { installation, product, plan, charge, input } = request;
    const teamId = actor.team.id;
    const id = newId('store');
    try {
      return await this.db.transaction(async (tx) => {
        if (request.idempotent) await this.keys.take(tx, request.idempotent, id);
        const quota = await this.storeQuota(tx, teamId);
        const { rows: counts } = await tx.query<{ taken: string | null; total: number; on_plan: number }>(
          `SELECT (SELECT id FROM stores WHERE team_id = $1 AND name = $4) AS taken, count(*)::int AS total,
                  count(*) FILTER (WHERE ${ON_PLAN('$2', '$3')})::int AS on_plan
             FROM stores WHERE team_id = $1`,
          [teamId, product.id, plan.id, request.name],
        );
        const { taken, total, on_plan: onPlan } = counts[0]!;
        if (taken) throw nameTaken(request.name, taken);
        if (total >= quota) throw quotaExceeded(quota, total);
        assertPlanRoom(plan, onPlan);
        await rememberPlanIfNew(tx, product, plan);
        const authorization = charge ? await recordCharge(tx, { teamId, storeId: id, plan, charge }) : undefined;
        const { rows } = await audited(
          tx,
          `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status, created_by, source, external_id,
                               metadata, protocol_settings, provision_key, prepaid_balance_cents, owner_node)
           VALUES ($1, $2, $3, $4, $5, $6, 'initializing', $7, $8, $9, $10, $11, $12, $13, $14)
           RETURNING ${STORE_COLUMNS}`,
          [
            id,
            teamId,
            installation.id,
            product.id,
            plan.id,
            request.name,
            actor.userId,
            input.source ?? 'marketplace',
            input.externalId ?? null,
            JSON.stringify(request.metadata),
            request.protocolSettings ? JSON.stringify(request.protocolSettings) : null,
            `${id}.${randomBase62(8)}`,
            charge?.kind === 'prepayment' ? charge.amountCents : null,
            this.options.lease.nodeId,
          ],
          {
            teamId,
            actorId: actor.userId,
            action: 'store.created',
            targetType: 'store',
            targetId: id,
            details: {
              name: request.name,
              product: product.slug,
              billingPlanId: plan.id,
              installationId: installation.id,
              ...(charge && {
                billing: {
                  authorizationId: authorization,
                  kind: charge.kind,
                  amountCents: charge.amountCents,
                  paymentMethodId: charge.paymentMethod.id,
                },
              }),
            },
          },
        );
        return toStore(rows[0]!);
      });
    } catch (error) {
      if (isNameTaken(error)) throw nameTaken(request.name);
      throw error;
    }
  }

  private provisionWithin(provider: Provider, store: Store, product: Product) {
    return within(provider.provision(provisionRequest(store, product)), this.options.provisionTimeoutMs);
  }

  private async recordProvisioned(
    db: Queryable,
    store: Store,
    result: { resource: ProviderResource; secrets: Secret[] },
    actor: Actor,
  ): Promise<Store> {
    const { resource, secrets } = result;
    const status = STORE_STATUS[resource.status];
    const { sealed, summary } = sealSecrets(this.box, secrets);
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
    if (resource.status === 'pending') await this.schedulePending(db, store.id);
    return toStore(rows[0]);
  }

  /**
   * Schedules checks of a store its provider reports `pending`: the first soon, and `error` if it
   * is still pending at the deadline. Call pendingChanged() once this is committed.
   */
  async schedulePending(db: Queryable, storeId: string): Promise<void> {
    await db.query(
      `UPDATE stores SET next_check_at = now() + make_interval(secs => $2), ready_deadline = now() + make_interval(secs => $3), check_attempts = 0
        WHERE id = $1`,
      [storeId, FIRST_CHECK_MS / 1000, this.options.pendingTimeoutMs / 1000],
    );
  }

  /**
   * A provision failed or timed out: undo whatever it did, release the billing and roll the store
   * back. If the undo fails too (its provider unreachable), the store stays, `deleting`, as the
   * record of what may exist, and the recovery sweep tries the undo again with a backoff until it
   * succeeds; only then are its name, quota and billing released. Returns the error to answer with.
   */
  private async undoCreate(
    store: Store,
    product: Product,
    idempotent: IdempotentRequest | undefined,
    actor: Actor,
    error: unknown,
  ): Promise<AppError> {
    const answer = providerFailure(store, error);
    this.options.logger?.warn({ err: error, store: store.id }, 'provisioning failed');
    // Claimed as a rollback first, as the recovery sweep claims one: the sweep leaves it alone
    // while this node holds its lease, and finishes it should this node die before it is done.
    const { rowCount } = await this.db.query(
      "UPDATE stores SET status = 'deleting', rolling_back = true, owner_node = $2, updated_at = now() WHERE id = $1 AND status = 'initializing' AND owner_node = $2",
      [store.id, this.options.lease.nodeId],
    );
    // The sweep took it for dead already (that is why the provision failed, likely): it finishes the undo.
    if (!rowCount) return storeDeleted(store);
    try {
      await this.deprovision(store, product);
    } catch (undoError) {
      this.options.logger?.warn({ err: undoError, store: store.id }, 'cannot undo a failed provision yet; the sweep tries again');
      await this.db.transaction(async (tx) => {
        // The request failed: its authorization goes now, and a retry with its key runs again
        // (finding the name taken until the undo is done).
        await releaseCharges(tx, store.id);
        if (idempotent) await this.keys.release(tx, idempotent);
        await audit(tx, {
          teamId: store.teamId,
          actorId: actor.userId,
          action: 'store.failed',
          targetType: 'store',
          targetId: store.id,
          details: { reason: answer.message },
        });
      });
      // The API shows it being rolled back (store-shapes.ts) until the sweep has undone it.
      await this.retryLater(store);
      return answer;
    }
    await this.remove(store, { actorId: actor.userId, onlyDeleting: true, action: 'store.rolled_back', reason: answer.message });
    return answer;
  }

  async get(actor: Actor, id: string): Promise<StoreView> {
    return this.view(await findStore(this.db, actor.team.id, id));
  }

  async list(actor: Actor, options: { limit: number; until?: number | undefined }): Promise<{ page: StorePage; views: StoreView[] }> {
    const page = await listStores(this.db, actor.team.id, options);
    const connections = await this.connectionsOf(page.stores.map((s) => s.id));
    return { page, views: page.stores.map((store) => this.viewWith(store, connections.get(store.id) ?? [])) };
  }

  /** The API's view of a store in hand: its catalog entries and its connections. */
  async view(store: Store): Promise<StoreView> {
    const connections = await this.connectionsOf([store.id]);
    return this.viewWith(store, connections.get(store.id) ?? []);
  }

  private viewWith(store: Store, connections: StoreConnection[]): StoreView {
    const catalog = this.catalog();
    const product = catalog.productById(store.productId);
    const integration = catalog.integrationById(product.integrationId)!;
    const plan = offeredPlans(product).find((p) => p.id === store.billingPlanId);
    return { store, product, integration, plan, connections };
  }

  private async connectionsOf(storeIds: string[]): Promise<Map<string, StoreConnection[]>> {
    const found = new Map<string, StoreConnection[]>();
    if (storeIds.length === 0) return found;
    const { rows } = await this.db.query<Record<string, any>>(
      `SELECT c.id, c.store_id, c.project_id, p.name AS project_name, c.environments, c.sensitive, c.env_var_prefix,
              coalesce((SELECT jsonb_agg(DISTINCT e.key) FROM project_env e WHERE e.store_id = c.store_id AND e.project_id = c.project_id), '[]') AS env_names
         FROM store_connections c JOIN projects p ON p.id = c.project_id
        WHERE c.store_id = ANY($1) ORDER BY c.created_at, c.project_id`,
      [storeIds],
    );
    for (const row of rows) {
      const list = found.get(row.store_id) ?? [];
      list.push({
        id: row.id,
        projectId: row.project_id,
        projectName: row.project_name,
        environments: row.environments,
        sensitive: row.sensitive,
        envVarPrefix: row.env_var_prefix,
        envVarNames: row.env_names,
      });
      found.set(row.store_id, list);
    }
    return found;
  }

  /**
   * Deletes a store: deprovisions it through its provider, then removes it with its connections
   * and environment variables and releases its billing. Refused (409) while projects are connected,
   * unless `disconnect` says to disconnect them. Only the installation's admins may delete.
   * A provider that fails leaves the store `deleting`, and the delete can be repeated.
   */
  async delete(actor: Actor, id: string, options: { disconnect?: boolean } = {}): Promise<void> {
    const store = await findStore(this.db, actor.team.id, id);
    const { installation, integration } = await this.discovery.getConfiguration(actor, store.installationId);
    assertInstallationAdmin(installation, actor, integration.name, 'delete its stores');
    const product = this.catalog().productById(store.productId);
    // Decided on the locked row: a create finishing meanwhile may have recorded its resource.
    const locked = await this.db.transaction(async (tx) => {
      const locked = await findStore(tx, actor.team.id, id, { lock: true });
      const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM store_connections WHERE store_id = $1', [id]);
      const connected = rows[0]!.n;
      // A create whose node died (or that is stale) may be deleted: the delete undoes it.
      const { rows: due } = await tx.query<{ due: boolean }>(`SELECT ${takeoverDue('stores', '$2')} AS due FROM stores WHERE id = $1`, [
        id,
        this.staleMs / 1000,
      ]);
      const stale = due[0]?.due === true;
      // A store its provider reported pending has its resource recorded: it may be deleted.
      if (locked.status === 'initializing' && !locked.externalResourceId && !stale) {
        throw conflict('store_initializing', `The store ${locked.name} is still being created: delete it once it is available`);
      }
      if (connected > 0 && !options.disconnect) {
        throw conflict(
          'store_has_connections',
          `The store ${locked.name} is connected to ${connected} project${connected === 1 ? '' : 's'}: disconnect ${connected === 1 ? 'it' : 'them'} first, or delete with disconnect=true`,
        );
      }
      // This node's from now on: should it die mid-delete, another finishes the delete at once.
      await tx.query("UPDATE stores SET status = 'deleting', owner_node = $2, retry_at = NULL, updated_at = now() WHERE id = $1", [
        id,
        this.options.lease.nodeId,
      ]);
      if (locked.status !== 'deleting') {
        await audit(tx, {
          teamId: actor.team.id,
          actorId: actor.userId,
          action: 'store.deleting',
          targetType: 'store',
          targetId: id,
          details: { name: locked.name, disconnected: connected },
        });
      }
      return locked;
    });
    // The provider's work, outside any transaction.
    try {
      await this.deprovision(locked, product, { userId: actor.userId, role: 'ADMIN' });
    } catch (error) {
      // Repeating the delete tries again at once; else the sweep does, with a backoff.
      await this.retryLater(locked);
      throw providerFailure(locked, error, 'delete');
    }
    // Unless a concurrent delete (or the recovery sweep) finished it.
    await this.remove(locked, { actorId: actor.userId, onlyDeleting: true });
  }

  /**
   * Removes what the provider holds for a store: its resource, or, when the provision never
   * answered, whatever the provision made (through its key). A linked store's resource (imported
   * from the provider's side) stays there, as on Vercel. A resource already gone is no error.
   */
  private async deprovision(store: Store, product: Product, caller?: Caller): Promise<void> {
    if (store.ownership === 'linked') return;
    const provider = this.providers.for(product);
    try {
      if (store.externalResourceId)
        await provider.delete(store.installationId, store.externalResourceId, `${store.provisionKey}.delete`, caller);
      else await provider.abandon({ ...provisionRequest(store, product), ...(caller && { caller }) });
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }

  /** Removes a store whose resource its provider deleted on its own side (the provider is not called). */
  async forget(store: Store, reason: string): Promise<void> {
    await this.remove(store, { actorId: null, reason });
  }

  /** The store's row goes (its connections and variables with it), its billing is released and a key whose create never answered given back. */
  private async remove(
    store: Store,
    how: { actorId: string | null; onlyDeleting?: boolean; action?: 'store.deleted' | 'store.rolled_back'; reason?: string },
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(`DELETE FROM stores WHERE id = $1${how.onlyDeleting ? " AND status = 'deleting'" : ''}`, [
        store.id,
      ]);
      if (!rowCount) return;
      const released = await releaseCharges(tx, store.id);
      // A key whose create never answered (its node died) is given back with the store.
      await this.keys.releaseFor(tx, store.teamId, store.id);
      await audit(tx, {
        teamId: store.teamId,
        actorId: how.actorId,
        action: how.action ?? 'store.deleted',
        targetType: 'store',
        targetId: store.id,
        details: { name: store.name, released, ...(how.reason && { reason: how.reason }) },
      });
    });
  }
}

/** A pending store's first check comes this long after it became pending; the wait doubles up to the longest. */
const FIRST_CHECK_MS = 2_000;
const MAX_CHECK_INTERVAL_MS = 60_000;

/** The provision a store was (or is being) created with: repeated with its key, it names the same resource. */
function provisionRequest(store: Store, product: Product): ProvisionRequest {
  return {
    idempotencyKey: store.provisionKey,
    installationId: store.installationId,
    product,
    name: store.name,
    metadata: store.metadata,
    billingPlanId: store.billingPlanId,
    ...(store.externalId !== null && { externalId: store.externalId }),
    ...(store.protocolSettings && { protocolSettings: store.protocolSettings }),
    // Its creator was an admin of the installation when creating it.
    ...(store.createdBy && { caller: { userId: store.createdBy, role: 'ADMIN' as const } }),
  };
}
