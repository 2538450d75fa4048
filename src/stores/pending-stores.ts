/**
 * Stores a provider answered `pending` for: asked about again, each when it is due, until their
 * provider reports them ready, or marked `error` at their deadline; and the reading of a store's
 * resource from its provider again (after a `resource.updated` event, and when polling).
 */
import { audited } from '../audit/audit-log.ts';
import type { Queryable } from '../db/database.ts';
import type { StoreContext } from './store-context.ts';
import { prefixed, STORE_COLUMNS, STORE_STATUS, toStore, type Store } from './stores.ts';
import { msUntil, untilDue } from './schedule.ts';

/** A pending store's first check comes this long after it became pending; the wait doubles up to the longest. */
const FIRST_CHECK_MS = 2_000;
const MAX_CHECK_INTERVAL_MS = 60_000;

export class PendingStores {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Asks providers about the stores they answered `pending` for, each when it is due (the wait
   * doubles from 2 s up to a minute), until they become ready. A store still pending at its
   * deadline (STOREHOUSE_PENDING_TIMEOUT_MS after the provision) is marked `error` with a
   * notification. A node claims a store by moving its next check on (SKIP LOCKED), so only one
   * node asks about it at a time.
   */
  async checkPending(): Promise<number | undefined> {
    const { db, options } = this.ctx;
    for (let checked = 0; checked < 100 && !this.ctx.stopping; checked++) {
      const { rows } = await db.query(
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
        else options.logger?.warn({ err: error, store: store.id }, 'cannot ask the provider about a pending store yet; asking again later');
      }
    }
    const { rows } = await db.query<{ ms: number | null }>(
      `SELECT ${msUntil('min(next_check_at)')} AS ms FROM stores WHERE next_check_at IS NOT NULL AND status = 'initializing'`,
    );
    return untilDue(rows);
  }

  /**
   * Reads a store's resource from its provider again and records what it says: after the provider
   * reports `resource.updated`, and when polling a pending store. Returns the store as recorded.
   */
  async refresh(store: Store): Promise<Store> {
    if (!store.externalResourceId || store.status === 'deleting') return store;
    const { db, providers, catalog } = this.ctx;
    const provider = providers.for(catalog().productById(store.productId));
    const resource = await provider.get(store.installationId, store.externalResourceId);
    const status = STORE_STATUS[resource.status];
    const notification = resource.notification === undefined ? store.notification : resource.notification;
    const changed =
      status !== store.status ||
      resource.status !== store.externalResourceStatus ||
      JSON.stringify(notification) !== JSON.stringify(store.notification);
    const pending = resource.status === 'pending';
    if (!changed) {
      if (!pending) await db.query('UPDATE stores SET next_check_at = NULL WHERE id = $1 AND next_check_at IS NOT NULL', [store.id]);
      return store;
    }
    const { rows } = await audited(
      db,
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
      message: `The provider did not report the store ready within ${Math.round(this.ctx.options.pendingTimeoutMs / 1000)} s. Delete the store, or wait: it becomes available if the provider reports it ready later.`,
    };
    await audited(
      this.ctx.db,
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
   * Schedules checks of a store its provider reports `pending`: the first soon, and `error` if it
   * is still pending at the deadline. Call pendingChanged() once this is committed.
   */
  async schedulePending(db: Queryable, storeId: string): Promise<void> {
    await db.query(
      `UPDATE stores SET next_check_at = now() + make_interval(secs => $2), ready_deadline = now() + make_interval(secs => $3), check_attempts = 0
        WHERE id = $1`,
      [storeId, FIRST_CHECK_MS / 1000, this.ctx.options.pendingTimeoutMs / 1000],
    );
  }
}
