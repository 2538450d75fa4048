/**
 * Removing stores: a user's delete, and the work a node left behind when it died (a create
 * between recording its store and recording its provider's answer, a delete between starting and
 * finishing), or that its provider could not do yet (an undo or a delete retried with a backoff).
 *
 * The provider's work is recorded before and after: the store turns `deleting` as this node's
 * (owner_node) before its provider is called, and its row goes (with its billing and a key whose
 * create never answered) only once the provider has removed the resource. Work whose node holds
 * a live lease is that node's: no one else calls the provider for it meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { audit } from '../audit/audit-log.ts';
import { releaseCharges } from '../billing/authorizations.ts';
import type { Product } from '../catalog/catalog.ts';
import { conflict } from '../errors.ts';
import type { Caller } from '../providers/provider.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin } from '../tenancy/installations.ts';
import { ownerAtWork, retryLater, rollbackIdle, takeoverAt, takeoverDue, underWay } from './interrupted-work.ts';
import { isGone, providerFailure, within } from './provider-calls.ts';
import { provisionRequest, type StoreContext } from './store-context.ts';
import { findStore, prefixed, toStore, type Store } from './stores.ts';
import { msUntil, untilDue } from './schedule.ts';
import { projectDisconnected } from '../webhooks/events.ts';

export class StoreRemoval {
  constructor(private readonly ctx: StoreContext) {}

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
    while (!this.ctx.stopping) {
      const store = await this.claimInterrupted({ skip: skipped });
      if (!store) break;
      if ((await this.finishInterrupted(store)) === undefined) recovered++;
      else skipped.push(store.id);
    }
    return recovered;
  }

  /**
   * Takes over, now, the unfinished work on a store left by a create with an idempotency key, for
   * a retry with that key (idempotency.ts): the create itself when its node died, or its rollback
   * when the undo failed and waits for its retry. Resolves when the store is gone (its key given
   * back: the retry runs again), or when another node is at it (the retry waits); throws the
   * provider's failure when the undo cannot be done yet, which is the retry's answer: the failure
   * its first attempt got, for the same reason.
   */
  async recoverStore(storeId: string): Promise<void> {
    const store = await this.claimInterrupted({ id: storeId, rollbackNow: true });
    if (!store) return;
    const failure = await this.finishInterrupted(store);
    if (failure !== undefined) throw providerFailure(store, failure, 'roll back');
  }

  /** Claims the oldest create or delete due to be taken over (or the one named), as this node's. */
  private async claimInterrupted(which: { skip?: string[]; id?: string; rollbackNow?: boolean }): Promise<Store | undefined> {
    const { db, staleMs, options } = this.ctx;
    const due = which.rollbackNow ? `(${takeoverDue('stores', '$1')} OR ${rollbackIdle('stores')})` : takeoverDue('stores', '$1');
    const { rows } = await db.query(
      `WITH due AS (
         SELECT id, status FROM stores
          WHERE ${due} AND NOT (id = ANY($2)) AND ($4::text IS NULL OR id = $4)
          ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE stores s SET status = 'deleting', rolling_back = s.rolling_back OR due.status = 'initializing',
              owner_node = $3, retry_at = NULL, updated_at = now()
         FROM due WHERE s.id = due.id
       RETURNING ${prefixed('s')}`,
      [staleMs / 1000, which.skip ?? [], options.lease.nodeId, which.id ?? null],
    );
    return rows[0] ? toStore(rows[0]) : undefined;
  }

  /**
   * Removes a claimed store's resource and then the store. Returns the provider's error when it
   * cannot be reached (the store is left to be tried again later), undefined when done.
   */
  private async finishInterrupted(store: Store): Promise<unknown> {
    const { catalog, options } = this.ctx;
    try {
      await this.deprovision(store, catalog().productById(store.productId));
    } catch (error) {
      await this.retryLater(store);
      options.logger?.warn({ err: error, store: store.id }, 'cannot finish an interrupted create or delete yet; retrying later');
      return error ?? new Error('the provider failed');
    }
    // A create being rolled back stays one across passes (and node deaths), not a user's delete.
    const creating = store.rollingBack;
    await this.remove(store, {
      actorId: null,
      onlyDeleting: true,
      action: creating ? 'store.rolled_back' : 'store.deleted',
      reason: creating ? 'its create did not finish' : 'its delete was interrupted',
    });
    options.logger?.info({ store: store.id, creating }, 'finished an interrupted create or delete');
    return undefined;
  }

  /**
   * Leaves a store whose undo or delete failed to be tried again, by any node, after a backoff. A
   * create's key stays with its store meanwhile: a retry with it tries the undo again at once and,
   * until the undo is done, answers the failure (see recoverStore); it is given back with the store.
   */
  async retryLater(store: Store): Promise<void> {
    await this.ctx.db.query(
      `UPDATE stores SET ${retryLater('stores')}, updated_at = now() WHERE id = $1 AND status = 'deleting' AND owner_node = $2`,
      [store.id, this.ctx.options.lease.nodeId],
    );
    this.ctx.wakeRecovery();
  }

  /** How long (ms, by the database's clock) until the next create or delete under way may be taken over; undefined when none is under way. */
  async msUntilNextStale(): Promise<number | undefined> {
    const { rows } = await this.ctx.db.query<{ ms: number | null }>(
      `SELECT ${msUntil(`min(${takeoverAt('s', '$1', '$2')})`)} AS ms FROM stores s WHERE ${underWay('s')}`,
      [this.ctx.staleMs / 1000, this.ctx.options.lease.nodeId],
    );
    return untilDue(rows);
  }

  /**
   * Deletes a store: deprovisions it through its provider, then removes it with its connections
   * and environment variables and releases its billing. Refused (409) while projects are connected,
   * unless `disconnect` says to disconnect them. Only the installation's admins may delete.
   * A provider that fails leaves the store `deleting`, and the delete can be repeated.
   *
   * A store another request (or node) is deleting or rolling back right now, its node alive, is
   * not taken from it: the provider would be called twice at once. This request waits for that
   * work (up to waitMs): the store gone, it answers as that work did (200); that work failed and let
   * the store go, this one tries again, as a repeat would; still under way at the deadline, 409
   * `store_deleting`. Work whose node died (its lease ran out), or that is stale, is taken over.
   */
  async delete(actor: Actor, id: string, options: { disconnect?: boolean } = {}): Promise<void> {
    const { db, discovery, catalog, staleMs } = this.ctx;
    const store = await findStore(db, actor.team.id, id);
    const { installation, integration } = await discovery.getConfiguration(actor, store.installationId);
    assertInstallationAdmin(installation, actor, integration.name, 'delete its stores');
    const product = catalog().productById(store.productId);
    const deadline = Date.now() + this.ctx.waitMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      // Decided on the locked row: a create finishing meanwhile may have recorded its resource.
      const claimed = await db.transaction(async (tx) => {
        const locked = await findStore(tx, actor.team.id, id, { lock: true });
        const { rows } = await tx.query<{ connected: number; due: boolean; busy: boolean }>(
          `SELECT (SELECT count(*)::int FROM store_connections WHERE store_id = s.id) AS connected,
                  ${takeoverDue('s', '$2')} AS due, ${ownerAtWork('s', '$2')} AS busy
             FROM stores s WHERE s.id = $1`,
          [id, staleMs / 1000],
        );
        const { connected, due, busy } = rows[0]!;
        // A create whose node died (or that is stale) may be deleted: the delete undoes it. A
        // store its provider reported pending has its resource recorded: it may be deleted.
        if (locked.status === 'initializing' && !locked.externalResourceId && !due) {
          throw conflict('store_initializing', `The store ${locked.name} is still being created: delete it once it is available`);
        }
        if (connected > 0 && !options.disconnect) {
          throw conflict(
            'store_has_connections',
            `The store ${locked.name} is connected to ${connected} project${connected === 1 ? '' : 's'}: disconnect ${connected === 1 ? 'it' : 'them'} first, or delete with disconnect=true`,
          );
        }
        if (locked.status === 'deleting' && busy) return undefined;
        // This node's from now on: should it die mid-delete, another finishes the delete at once.
        await tx.query("UPDATE stores SET status = 'deleting', owner_node = $2, retry_at = NULL, updated_at = now() WHERE id = $1", [
          id,
          this.ctx.options.lease.nodeId,
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
      if (claimed) return this.deleteClaimed(actor, claimed, product);
      // Another's work under way: waited for, not repeated.
      await sleep(delay);
      if ((await db.query('SELECT 1 FROM stores WHERE id = $1', [id])).rows.length === 0) return;
      if (Date.now() > deadline) {
        throw conflict('store_deleting', `The store ${store.name} is still being deleted by another request: retry in a moment`);
      }
    }
  }

  /** The provider's work of a delete this node claimed, outside any transaction, then the store's removal. */
  private async deleteClaimed(actor: Actor, store: Store, product: Product): Promise<void> {
    try {
      await this.deprovision(store, product, { userId: actor.userId, role: 'ADMIN' });
    } catch (error) {
      // Repeating the delete tries again at once; else the sweep does, with a backoff.
      await this.retryLater(store);
      throw providerFailure(store, error, 'delete');
    }
    // Unless a concurrent delete (or the recovery sweep) finished it.
    await this.remove(store, { actorId: actor.userId, onlyDeleting: true });
  }

  /**
   * Removes what the provider holds for a store: its resource, or, when the provision never
   * answered, whatever the provision made (through its key). A linked store's resource (imported
   * from the provider's side) stays there, as on Vercel. A resource already gone is no error.
   */
  async deprovision(store: Store, product: Product, caller?: Caller): Promise<void> {
    if (store.ownership === 'linked') return;
    const provider = this.ctx.providers.for(product);
    // Bounded as a provision is: a provider that stopped answering must not hold the request (or
    // the sweep) for as long as its own client waits; the call may still land, and a repeat with
    // the same key is harmless.
    const limit = this.ctx.options.provisionTimeoutMs;
    try {
      if (store.externalResourceId)
        await within(provider.delete(store.installationId, store.externalResourceId, `${store.provisionKey}.delete`, caller), limit);
      else await within(provider.abandon({ ...provisionRequest(store, product), ...(caller && { caller }) }), limit);
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }

  /** The store's row goes (its connections and variables with it), its billing is released and a key whose create never answered given back. */
  async remove(
    store: Store,
    how: { actorId: string | null; onlyDeleting?: boolean; action?: 'store.deleted' | 'store.rolled_back'; reason?: string },
  ): Promise<void> {
    await this.ctx.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `SELECT 1 FROM stores WHERE id = $1${how.onlyDeleting ? " AND status = 'deleting'" : ''} FOR UPDATE`,
        [store.id],
      );
      if (!rowCount) return;
      // Its connections would go with its row (cascade), unseen: each is a disconnect its
      // integration is told of, in this transaction. The row locked, no connect slips in between.
      const { rows: disconnected } = await tx.query<{ project_id: string; environments: string[] }>(
        'DELETE FROM store_connections WHERE store_id = $1 RETURNING project_id, environments',
        [store.id],
      );
      for (const row of disconnected) await projectDisconnected(tx, store, row.project_id, row.environments, how.actorId);
      await tx.query('DELETE FROM stores WHERE id = $1', [store.id]);
      const released = await releaseCharges(tx, store.id);
      // A key whose create never answered (its node died, or it was rolled back) is given back with the store.
      await this.ctx.keys.releaseFor(tx, store.teamId, store.id);
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
