/**
 * Changing a store after its create: its name, its metadata and its plan, as the dashboard's
 * Update Resource form does (docs/partner-api.md §6 D). The provider is told through
 * its update (the partner API's PATCH of a resource), and a plan change is chosen from the
 * resource's plans and billed as a create is.
 *
 * A change touches the outside world, so it is recorded before the provider is called (with the
 * idempotency key it is sent with, what it changes and what to go back to) and its answer after:
 * - the provider applies it: the store records it, and a plan change releases the old plan's
 *   billing;
 * - the provider refuses it (it answered): the store goes back, and a new plan's billing is
 *   released;
 * - no answer (a timeout, an unreachable partner, a 5xx, a node that died): the change stays
 *   recorded and is sent again, with the same key, until the provider answers it one way or the
 *   other. Meanwhile the store takes no other change (409 `store_updating`).
 */
import type { Logger } from 'pino';
import { audit } from '../audit/audit-log.ts';
import { chargeFor, recordCharge, releaseCharges, type Charge } from '../billing/authorizations.ts';
import type { BillingPlan, Catalog, Product } from '../catalog/catalog.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { AppError, badRequest, conflict, validationError } from '../errors.ts';
import { randomBase62 } from '../ids.ts';
import { parseMetadata, type Discovery } from '../marketplace/discovery.ts';
import type { ProviderResource, ResourceUpdate } from '../providers/provider.ts';
import type { Providers } from '../providers/registry.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin } from '../tenancy/installations.ts';
import { brokeContract, CallTimeout, mayHaveHappened, providerFailure, within } from './provider-calls.ts';
import { msUntil, Schedule, untilDue } from './schedule.ts';
import { ownerGone, type NodeLease } from '../db/node-lease.ts';
import { checkChangeable, checkName, sameValue, validateMetadata } from './store-input.ts';
import type { StoreService, StoreView } from './store-service.ts';
import {
  assertPlanRoom,
  disableUsedUp,
  findStore,
  isNameTaken,
  nameTaken,
  ON_PLAN,
  planNotOffered,
  prefixed,
  rememberPlanIfNew,
  STORE_COLUMNS,
  STORE_STATUS,
  toStore,
  type Store,
} from './stores.ts';

/** The body of PATCH /v1/storage/stores/{id}, as the route's schema lets it through. */
export interface UpdateStoreInput {
  name?: string | undefined;
  /** Settings to change; those not named keep their values. */
  metadata?: Record<string, unknown> | undefined;
  billingPlanId?: string | undefined;
  paymentMethodId?: string | undefined;
  prepaymentAmountCents?: number | undefined;
}

/** A change under way, as `stores.update_request` holds it. */
interface RecordedChange {
  /** What the provider is sent. */
  body: ResourceUpdate;
  /** What the store goes back to if the provider refuses. */
  previous: { name: string };
  /** A plan change: the prepaid balance it brings and the charge it took (null for a free plan). */
  plan?: { id: string; prepaidBalanceCents: number | null; authorizationId: string | null };
  actorId: string;
}

export interface StoreUpdatesOptions {
  /** How long a provider may take to apply a change before the request answers 503 (the change is sent again later). */
  callTimeoutMs: number;
  /** The node sending changes: one that dies mid-send has its changes sent again as soon as its lease runs out. */
  lease: NodeLease;
  logger?: Logger | undefined;
}

/** What the sweep logs when a change it sent again failed, by what the failure left. */
const RETRY_OUTCOMES = {
  made: "a store change was made, but the provider's answer broke the partner API: recorded as made",
  refused: 'the provider refused a store change it had not answered; the store went back',
  unanswered: 'cannot send a store change to its provider yet; retrying later',
} as const;

/** A change that failed without an answer is sent again after this long, doubling up to the longest. */
const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 300_000;

export class StoreUpdates {
  private retries: Schedule | undefined;

  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    private readonly discovery: Discovery,
    private readonly providers: Providers,
    private readonly stores: StoreService,
    private readonly options: StoreUpdatesOptions,
  ) {}

  /** Sends again, until the returned function stops it, the changes no provider has answered yet. */
  startHousekeeping(onError: (error: Error) => void): () => Promise<void> {
    this.retries = new Schedule(() => this.retryUnanswered(), 60_000, onError).start(2_000);
    return () => this.retries!.stop();
  }

  /**
   * The plans a store may change to, as its provider says (the resource's plans, for the metadata
   * given, merged over the store's), with those the team has used up shown disabled.
   */
  async plans(actor: Actor, id: string, metadata: string | undefined): Promise<BillingPlan[]> {
    const store = await findStore(this.db, actor.team.id, id);
    const product = this.catalog().productById(store.productId);
    const filled = { ...store.metadata, ...(metadata === undefined ? {} : parseMetadata(metadata)) };
    return disableUsedUp(this.db, actor.team.id, await this.plansFor(actor, store, product, filled), store.billingPlanId);
  }

  private plansFor(actor: Actor, store: Store, product: Product, metadata: Record<string, unknown>): Promise<BillingPlan[]> {
    const asker = { teamId: actor.team.id, installationId: store.installationId };
    return store.externalResourceId
      ? this.providers.resourcePlansFor(
          product,
          { installationId: store.installationId, externalResourceId: store.externalResourceId },
          metadata,
          asker,
        )
      : this.providers.plansFor(product, metadata, asker);
  }

  /**
   * Changes a store's name, metadata or plan. Only the installation's admins may. Values equal to
   * the store's change nothing (and the provider is not called).
   */
  async update(actor: Actor, id: string, input: UpdateStoreInput): Promise<StoreView> {
    if (input.billingPlanId === undefined && (input.paymentMethodId !== undefined || input.prepaymentAmountCents !== undefined)) {
      throw validationError(
        [
          {
            key: input.paymentMethodId !== undefined ? 'paymentMethodId' : 'prepaymentAmountCents',
            message: 'applies to a plan change only: send billingPlanId',
          },
        ],
        'paymentMethodId and prepaymentAmountCents apply to a plan change only: send billingPlanId',
      );
    }
    if (input.name === undefined && input.metadata === undefined && input.billingPlanId === undefined) {
      throw badRequest('Nothing to change: send name, metadata or billingPlanId');
    }
    const store = await findStore(this.db, actor.team.id, id);
    const { installation, integration } = await this.discovery.getConfiguration(actor, store.installationId);
    assertInstallationAdmin(installation, actor, integration.name, 'change its stores');
    assertChangeable(store);
    const product = this.catalog().productById(store.productId);
    const { body, plan, charge } = await this.prepare(actor, store, product, input);
    if (Object.keys(body).length === 0) return this.stores.view(store);

    const { key, change } = await this.begin(actor, store, product, body, plan, charge);
    try {
      return await this.stores.view(await this.send(store, key, change));
    } catch (error) {
      const outcome = await this.settle(store, key, change, error, 1);
      if (outcome === 'made') {
        const broken = error as AppError;
        throw new AppError(
          broken.status,
          broken.code,
          `${broken.message}. The partner answered with success, so the change is recorded as made`,
        );
      }
      const failure = providerFailure(store, error, 'update');
      if (outcome === 'refused') throw failure;
      this.retries?.wake();
      throw new AppError(
        failure.status,
        failure.code,
        `${failure.message}. The change is recorded and sent to the provider again until it answers; the store takes no other change meanwhile`,
      );
    }
  }

  /**
   * What a send's failure leaves: `made` (the provider made the change and send() recorded it, but
   * its answer broke the partner contract), `refused` (the provider answered no: the store went
   * back), or `unanswered` (recorded still, sent again later; after a timeout the call may still
   * be running, so the claim begin() or the sweep made, twice the timeout, stands).
   */
  private async settle(
    store: Store,
    key: string,
    change: RecordedChange,
    error: unknown,
    attempts: number,
  ): Promise<'made' | 'refused' | 'unanswered'> {
    if (brokeContract(error)) return 'made';
    if (!mayHaveHappened(error)) {
      await this.goBack(store, key, change, error);
      return 'refused';
    }
    if (!(error instanceof CallTimeout)) await this.retryLater(store.id, key, Math.min(FIRST_RETRY_MS * 2 ** (attempts - 1), MAX_RETRY_MS));
    return 'unanswered';
  }

  /** What the input changes, checked: the provider's body, and for a plan change the plan and its charge. */
  private async prepare(actor: Actor, store: Store, product: Product, input: UpdateStoreInput) {
    const body: ResourceUpdate = {};
    if (input.name !== undefined && input.name !== store.name) body.name = checkName(input.name);
    let metadata = store.metadata;
    if (input.metadata !== undefined) {
      metadata = validateMetadata(product, { ...store.metadata, ...input.metadata });
      checkChangeable(product, store.metadata, metadata);
      this.providers.for(product).checkMetadata(metadata, product);
      if (!sameValue(metadata, store.metadata)) body.metadata = metadata;
    }
    let plan: BillingPlan | undefined;
    let charge: Charge | undefined;
    if (input.billingPlanId === store.billingPlanId && (input.paymentMethodId !== undefined || input.prepaymentAmountCents !== undefined)) {
      throw validationError(
        [{ key: 'billingPlanId', message: `is the store's plan already` }],
        `The store ${store.name} is on ${store.billingPlanId} already: there is nothing to pay for`,
      );
    }
    if (input.billingPlanId !== undefined && input.billingPlanId !== store.billingPlanId) {
      if (store.ownership === 'linked') {
        throw conflict('store_linked', `The store ${store.name} is linked: its provider bills it, so its plan is changed at the provider`);
      }
      const plans = await this.plansFor(actor, store, product, metadata);
      plan = plans.find((p) => p.id === input.billingPlanId && !p.disabled);
      if (!plan) {
        const offered = plans.filter((p) => !p.disabled && p.id !== store.billingPlanId).map((p) => p.id);
        throw planNotOffered(product, input.billingPlanId, plans, offered, ` for the store ${store.name}`);
      }
      charge = await chargeFor(this.db, actor.team.id, plan, input);
      body.billingPlanId = plan.id;
    }
    return { body, plan, charge };
  }

  /** Records the change before the provider is told: the new name taken, the charge made, the key chosen. */
  private async begin(
    actor: Actor,
    store: Store,
    product: Product,
    body: ResourceUpdate,
    plan: BillingPlan | undefined,
    charge: Charge | undefined,
  ) {
    const key = `${store.provisionKey}.update.${randomBase62(8)}`;
    try {
      return await this.db.transaction(async (tx) => {
        // A plan change takes the team's row first, as creates do: plan limits are counted in turn.
        if (plan) await tx.query('SELECT 1 FROM teams WHERE id = $1 FOR NO KEY UPDATE', [store.teamId]);
        const locked = await findStore(tx, store.teamId, store.id, { lock: true });
        assertChangeable(locked);
        // The change was checked against the store as read before the lock: a change made since
        // (by another request, or its partner) would be undone by sending this one.
        if (locked.updatedAt.getTime() !== store.updatedAt.getTime()) {
          throw conflict('store_changed', `The store ${store.name} changed while this change was being checked: read it again and retry`);
        }
        let planChange: RecordedChange['plan'];
        if (plan) {
          const { rows } = await tx.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM stores WHERE team_id = $1 AND ${ON_PLAN('$2', '$3')}`,
            [store.teamId, store.productId, plan.id],
          );
          assertPlanRoom(plan, rows[0]!.n);
          await rememberPlanIfNew(tx, product, plan);
          const authorizationId = charge ? await recordCharge(tx, { teamId: store.teamId, storeId: store.id, plan, charge }) : null;
          planChange = { id: plan.id, prepaidBalanceCents: charge?.kind === 'prepayment' ? charge.amountCents : null, authorizationId };
        }
        const change: RecordedChange = {
          body,
          previous: { name: locked.name },
          ...(planChange && { plan: planChange }),
          actorId: actor.userId,
        };
        // The name is the store's own: taken now (or refused, taken), so no create can take it while the provider works.
        await tx.query(
          `UPDATE stores SET name = coalesce($2, name), update_key = $3, update_request = $4, update_attempts = 1,
                  update_retry_at = now() + make_interval(secs => $5), update_node = $6, updated_at = now()
            WHERE id = $1`,
          [store.id, body.name ?? null, key, JSON.stringify(change), (2 * this.options.callTimeoutMs) / 1000, this.options.lease.nodeId],
        );
        return { key, change };
      });
    } catch (error) {
      if (isNameTaken(error)) throw nameTaken(body.name!);
      throw error;
    }
  }

  /**
   * Tells the provider, and records its answer. A success whose answer broke the partner contract
   * is recorded as made (the partner did make it; the store's status is left as it was), then
   * thrown, so the partner's developer sees what to fix.
   */
  private async send(store: Store, key: string, change: RecordedChange): Promise<Store> {
    const provider = this.providers.for(this.catalog().productById(store.productId));
    let resource: ProviderResource | undefined;
    let unreadable: AppError | undefined;
    try {
      resource = await within(
        provider.update(store.installationId, store.externalResourceId!, change.body, key, { userId: change.actorId, role: 'ADMIN' }),
        this.options.callTimeoutMs,
      );
    } catch (error) {
      if (!brokeContract(error)) throw error;
      unreadable = error;
    }
    const recorded = await this.record(store, key, change, resource);
    if (unreadable) throw unreadable;
    // Undefined when another node's resend recorded it first, or the store went meanwhile.
    return recorded ?? findStore(this.db, store.teamId, store.id);
  }

  /** The provider's answer, on the store; undefined when the change was answered already (or the store is gone). */
  private async record(
    store: Store,
    key: string,
    change: RecordedChange,
    resource: ProviderResource | undefined,
  ): Promise<Store | undefined> {
    const recorded = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query(
        `UPDATE stores SET metadata = coalesce($3::jsonb, metadata), billing_plan_id = coalesce($4, billing_plan_id),
                prepaid_balance_cents = CASE WHEN $4::text IS NULL THEN prepaid_balance_cents ELSE $5 END,
                status = CASE WHEN status IN ('deleting', 'initializing') OR $6::text IS NULL THEN status ELSE $6 END,
                external_resource_status = coalesce($7, external_resource_status),
                notification = CASE WHEN $8 THEN $9::jsonb ELSE notification END,
                update_key = NULL, update_request = NULL, update_retry_at = NULL, update_attempts = 0, update_node = NULL, updated_at = now()
          WHERE id = $1 AND update_key = $2 RETURNING ${STORE_COLUMNS}`,
        [
          store.id,
          key,
          change.body.metadata ? JSON.stringify(change.body.metadata) : null,
          change.plan?.id ?? null,
          change.plan?.prepaidBalanceCents ?? null,
          resource ? STORE_STATUS[resource.status] : null,
          resource?.status ?? null,
          resource?.notification !== undefined,
          resource?.notification ? JSON.stringify(resource.notification) : null,
        ],
      );
      if (!rows[0]) return undefined;
      const released = change.plan ? await releaseCharges(tx, store.id, { except: change.plan.authorizationId ?? undefined }) : [];
      await audit(tx, {
        teamId: store.teamId,
        actorId: change.actorId,
        action: 'store.updated',
        targetType: 'store',
        targetId: store.id,
        details: {
          ...(change.body.name !== undefined && { name: { from: change.previous.name, to: change.body.name } }),
          ...(change.body.metadata && { metadata: change.body.metadata }),
          ...(change.plan && {
            billingPlanId: { from: store.billingPlanId, to: change.plan.id },
            authorizationId: change.plan.authorizationId,
            released,
          }),
        },
      });
      if (resource?.status === 'pending') await this.stores.schedulePending(tx, store.id);
      return toStore(rows[0]);
    });
    if (resource?.status === 'pending') this.stores.pendingChanged();
    return recorded;
  }

  /** The provider refused the change: the store goes back (its old name, unless taken since), and a new plan's charge is released. */
  private async goBack(store: Store, key: string, change: RecordedChange, error: unknown): Promise<void> {
    // The old name goes back unless a create took it meanwhile (then the store keeps the new one).
    const clear = (tx: Queryable, revertName: boolean) =>
      tx.query(
        `UPDATE stores SET name = CASE WHEN $3 THEN $4 ELSE name END,
                update_key = NULL, update_request = NULL, update_retry_at = NULL, update_attempts = 0, update_node = NULL, updated_at = now()
          WHERE id = $1 AND update_key = $2`,
        [store.id, key, revertName, change.previous.name],
      );
    await this.db.transaction(async (tx) => {
      let rowCount: number | null;
      try {
        await tx.query('SAVEPOINT revert_name');
        ({ rowCount } = await clear(tx, change.body.name !== undefined));
      } catch (nameError) {
        if (!isNameTaken(nameError)) throw nameError;
        await tx.query('ROLLBACK TO SAVEPOINT revert_name');
        ({ rowCount } = await clear(tx, false));
      }
      if (!rowCount) return;
      const released = change.plan?.authorizationId ? await releaseCharges(tx, store.id, { only: change.plan.authorizationId }) : [];
      await audit(tx, {
        teamId: store.teamId,
        actorId: change.actorId,
        action: 'store.update_refused',
        targetType: 'store',
        targetId: store.id,
        details: { reason: providerFailure(store, error, 'update').message, released },
      });
    });
  }

  private async retryLater(storeId: string, key: string, afterMs: number): Promise<void> {
    // Only while the change is this node's (or no one's): a node that took it over meanwhile keeps it.
    await this.db.query(
      `UPDATE stores SET update_retry_at = now() + make_interval(secs => $3), update_node = NULL
        WHERE id = $1 AND update_key = $2 AND (update_node = $4 OR update_node IS NULL)`,
      [storeId, key, afterMs / 1000, this.options.lease.nodeId],
    );
  }

  /**
   * Sends again the changes due for it: those whose request failed without an answer, and those a
   * node was sending when it died (due as soon as its lease runs out, or once the call's deadline
   * has long passed). A node claims one by making it its own and moving its time on (SKIP LOCKED),
   * so only one sends it at a time.
   */
  async retryUnanswered(): Promise<number | undefined> {
    for (let sent = 0; sent < 100 && !this.retries?.isStopped; sent++) {
      const { rows } = await this.db.query<MappedRow>(
        `WITH due AS (
           SELECT id FROM stores
            WHERE update_key IS NOT NULL AND status <> 'deleting'
              AND (update_retry_at <= now() OR (update_node IS NOT NULL AND ${ownerGone('update_node')}))
            ORDER BY update_retry_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE stores s SET update_attempts = s.update_attempts + 1, update_retry_at = now() + make_interval(secs => $1), update_node = $2
           FROM due WHERE s.id = due.id
         RETURNING s.update_key, s.update_request, s.update_attempts, ${prefixed('s')}`,
        [(2 * this.options.callTimeoutMs) / 1000, this.options.lease.nodeId],
      );
      const row = rows[0];
      if (!row) break;
      const store = toStore(row);
      const change = row.update_request as RecordedChange;
      try {
        await this.send(store, row.update_key, change);
        this.options.logger?.info(
          { store: store.id, attempts: row.update_attempts },
          'applied a store change its provider had not answered',
        );
      } catch (error) {
        const outcome = await this.settle(store, row.update_key, change, error, row.update_attempts);
        this.options.logger?.warn({ err: error, store: store.id }, RETRY_OUTCOMES[outcome]);
      }
    }
    // Another node's change is due when its lease runs out, if that comes first (a live node renews it).
    const { rows } = await this.db.query<{ ms: number | null }>(
      `SELECT ${msUntil(`min(CASE WHEN s.update_node IS NOT NULL AND s.update_node <> $1
                       THEN least(s.update_retry_at, coalesce((SELECT l.expires_at FROM node_leases l WHERE l.node_id = s.update_node), now()))
                       ELSE s.update_retry_at END)`)} AS ms
         FROM stores s WHERE s.update_key IS NOT NULL AND s.status <> 'deleting'`,
      [this.options.lease.nodeId],
    );
    return untilDue(rows);
  }
}

/** A store being created, deleted or changed takes no (other) change; nor one whose resource was never made. */
function assertChangeable(store: Store): void {
  if (store.status === 'deleting') throw conflict('store_deleting', `The store ${store.name} is being deleted`);
  if (store.updating)
    throw conflict('store_updating', `A change to the store ${store.name} is still being applied by its provider: retry once it is done`);
  if (store.status === 'initializing') {
    throw conflict('store_initializing', `The store ${store.name} is still being created: change it once it is available`);
  }
  if (!store.externalResourceId) {
    throw conflict(
      'store_not_provisioned',
      `The store ${store.name} has no resource at its provider (its create failed): delete it and create another`,
    );
  }
}
