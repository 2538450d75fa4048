/**
 * A new store's record, written before its provider is called (store-creation.ts): its row,
 * `initializing`, with its audit event, its billing and the request's idempotency key, in one
 * transaction that holds its team's lock, so the team's quota, a plan's store limit and the
 * name are checked against every other create of the team.
 *
 * Three round trips: BEGIN with the team's lock (TransactionOptions.first), the row inserted only
 * where the team has room for it (the checks are in the insert), and COMMIT. Where the insert
 * finds no room, what is lacking is asked, and refused.
 */
import { audited } from '../audit/audit-log.ts';
import { recordCharge, type Charge } from '../billing/authorizations.ts';
import type { BillingPlan, Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { conflict, notFound } from '../errors.ts';
import { newId, randomBase62 } from '../ids.ts';
import type { Actor } from '../tenancy/access.ts';
import type { Installation } from '../tenancy/installations.ts';
import type { IdempotentRequest } from './idempotency.ts';
import type { StoreContext } from './store-context.ts';
import {
  assertPlanRoom,
  isNameTaken,
  lockTeamQuota,
  nameTaken,
  ON_PLAN,
  quotaExceeded,
  quotaIn,
  rememberPlanIfNew,
  STORE_COLUMNS,
  toStore,
  type Store,
} from './stores.ts';

/** What a create has checked by the time its store is recorded. */
export interface NewStore {
  installation: Installation;
  product: Product;
  plan: BillingPlan;
  charge: Charge | undefined;
  name: string;
  metadata: Record<string, unknown>;
  protocolSettings: Record<string, unknown> | undefined;
  source: string | undefined;
  externalId: string | undefined;
  idempotent: IdempotentRequest | undefined;
}

/** Records the store `initializing`, or refuses it: name taken (409), quota or plan limit reached (403). */
export async function recordNewStore(ctx: StoreContext, actor: Actor, request: NewStore): Promise<Store> {
  const { db, keys, options } = ctx;
  const teamId = actor.team.id;
  const id = newId('store');
  // With a provider on the state server the record needs no flush of its own: what the provision
  // creates commits after it in the same WAL, and nothing is answered before (Provider.onStateServer).
  const synchronousCommit = ctx.providers.for(request.product).onStateServer !== true;
  try {
    return await db.transaction(
      async (tx, locked) => {
        if (request.idempotent) await keys.take(tx, request.idempotent, id);
        const quota = quotaIn(locked, options.defaultStoreQuota);
        await rememberPlanIfNew(tx, request.product, request.plan);
        // A refusal below rolls the charge back with the rest.
        const authorizationId = request.charge
          ? await recordCharge(tx, { teamId, storeId: id, plan: request.plan, charge: request.charge })
          : undefined;
        // Under the team's lock nothing but a deletion (which only makes room) changes what the
        // insert checks: with no refusal found, the insert is tried once more.
        for (let attempt = 1; ; attempt++) {
          const inserted = await insertIfRoom(tx, actor, request, { id, quota, authorizationId, nodeId: options.lease.nodeId });
          if (inserted) return inserted;
          await refuseWithoutRoom(tx, teamId, request, quota);
          if (attempt === 2) throw conflict('store_create_contended', "The team's stores changed during the create: try again");
        }
      },
      { synchronousCommit, first: lockTeamQuota(teamId) },
    );
  } catch (error) {
    if (isNameTaken(error)) throw nameTaken(request.name);
    // The installation was removed between its check and this insert (an uninstall meanwhile).
    const { code, constraint } = error as { code?: string; constraint?: string };
    if (code === '23503' && constraint === 'stores_installation_id_fkey')
      throw notFound('integration configuration', request.installation.id);
    throw error;
  }
}

/** The store's row and its audit event, where the team has room for it (name free, under its quota and the plan's limit); undefined where not. */
async function insertIfRoom(
  tx: Queryable,
  actor: Actor,
  request: NewStore,
  row: { id: string; quota: number; authorizationId: string | undefined; nodeId: string },
): Promise<Store | undefined> {
  const { installation, product, plan, charge } = request;
  const teamId = actor.team.id;
  const { rows } = await audited(
    tx,
    `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status, created_by, source, external_id,
                         metadata, protocol_settings, provision_key, prepaid_balance_cents, owner_node)
     SELECT $1, $2, $3, $4, $5, $6, 'initializing', $7, $8, $9, $10, $11, $12, $13, $14
      WHERE NOT EXISTS (SELECT 1 FROM stores WHERE team_id = $2 AND name = $6)
        AND (SELECT count(*) FROM stores WHERE team_id = $2) < $15::int
        AND ($16::int IS NULL OR (SELECT count(*) FROM stores WHERE team_id = $2 AND ${ON_PLAN('$4', '$5')}) < $16::int)
     RETURNING ${STORE_COLUMNS}`,
    [
      row.id,
      teamId,
      installation.id,
      product.id,
      plan.id,
      request.name,
      actor.userId,
      request.source ?? 'marketplace',
      request.externalId ?? null,
      JSON.stringify(request.metadata),
      request.protocolSettings ? JSON.stringify(request.protocolSettings) : null,
      `${row.id}.${randomBase62(8)}`,
      charge?.kind === 'prepayment' ? charge.amountCents : null,
      row.nodeId,
      row.quota,
      plan.resourceLimit,
    ],
    {
      teamId,
      actorId: actor.userId,
      action: 'store.created',
      targetType: 'store',
      targetId: row.id,
      details: {
        name: request.name,
        product: product.slug,
        billingPlanId: plan.id,
        installationId: installation.id,
        ...(charge && {
          billing: {
            authorizationId: row.authorizationId,
            kind: charge.kind,
            amountCents: charge.amountCents,
            paymentMethodId: charge.paymentMethod.id,
          },
        }),
      },
    },
  );
  return rows[0] && toStore(rows[0]);
}

/** Throws what the team lacks for the store: a free name, room under its quota, room on the plan. Returns if it lacks none (any more). */
async function refuseWithoutRoom(tx: Queryable, teamId: string, request: NewStore, quota: number): Promise<void> {
  const { rows } = await tx.query<{ taken: string | null; total: number; on_plan: number }>(
    `SELECT (SELECT id FROM stores WHERE team_id = $1 AND name = $4) AS taken, count(*)::int AS total,
            count(*) FILTER (WHERE ${ON_PLAN('$2', '$3')})::int AS on_plan
       FROM stores WHERE team_id = $1`,
    [teamId, request.product.id, request.plan.id, request.name],
  );
  const { taken, total, on_plan: onPlan } = rows[0]!;
  if (taken) throw nameTaken(request.name, taken);
  if (total >= quota) throw quotaExceeded(quota, total);
  assertPlanRoom(request.plan, onPlan);
}
