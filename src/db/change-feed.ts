/**
 * Knowing when shared state changed, so hot reads can be served from memory.
 *
 * Triggers on the tables that authorization and the catalog read (migration 0002), and those
 * the user and store views read (0012), send `pg_notify('storehouse_changes', <table>)` when a
 * write commits. Every node listens; each
 * notification, and each write this process makes itself that could fire such a trigger
 * (watched-tables.ts), moves the feed to a new generation, and every ReadCache drops what it
 * read in an older one. While the listening connection is
 * down the feed is unhealthy and caches are bypassed, so a node never serves what it cannot
 * know is current.
 *
 * On PostgreSQL only notifications from Storehouse's own role move the feed (who that is, and
 * why, is in notification-senders.ts): any role that can connect to the state database can
 * NOTIFY, and a store role on a shared server could otherwise make every node drop its caches.
 * Senders are asked about on a connection of their own, never behind requests in the pool, and
 * a question unanswered within its bound believes the notification.
 */
import { randomBase62 } from '../ids.ts';
import type pg from 'pg';
import type { Database } from './database.ts';
import { NotificationSenders, SENDER_CHECK_TIMEOUT_MS, UnverifiedChanges, type Verdict } from './notification-senders.ts';
import { WatchedTables } from './watched-tables.ts';

export const CHANGES_CHANNEL = 'storehouse_changes';

/** What a change names when it could have been anything: the feed was deaf for a while. */
export const ANYTHING = '*';

export class ChangeFeed {
  generation = 0;
  healthy = false;
  /** Notifications refused: their sender was not Storehouse's role. */
  refused = 0;
  /** Notifications whose sender was gone before it could be checked (believed, at a bounded rate). */
  unverified = 0;
  /** Notifications whose sender could not be asked about within the bound, or at all (believed, at a bounded rate). */
  unanswered = 0;
  private readonly subscribers = new Set<(table: string | undefined) => void>();

  /** Something changed (in `table`; ANYTHING after a gap; undefined for a write of this process that could have changed any): what was read before is stale. */
  changed(table?: string): void {
    this.generation++;
    for (const subscriber of this.subscribers) subscriber(table);
  }

  onChange(subscriber: (table: string | undefined) => void): void {
    this.subscribers.add(subscriber);
  }

  /**
   * Starts listening on the database; resolves once notifications flow. On PostgreSQL a
   * heartbeat checks the whole path every `heartbeatMs`: this node notifies itself through the
   * pool and must hear it on its LISTEN connection within `heartbeatMs`; if it does not (a
   * half-open connection, a pooler that drops LISTEN), the feed turns unhealthy, so caches are
   * bypassed, and the connection is replaced.
   *
   * Senders are checked on a connection of the feed's own (`senderConnection`, by default
   * `db.dedicatedClient`), each question within `senderCheckTimeoutMs`.
   */
  static async start(
    db: Database,
    options: {
      heartbeatMs?: number;
      onError?: (error: Error) => void;
      logger?: { debug(details: object, message: string): void } | undefined;
      senderCheckTimeoutMs?: number;
      senderConnection?: () => pg.Client;
    } = {},
  ): Promise<{ feed: ChangeFeed; stop: () => Promise<void> }> {
    const { heartbeatMs = 5000, onError, logger, senderCheckTimeoutMs = SENDER_CHECK_TIMEOUT_MS } = options;
    const feed = new ChangeFeed();
    // A write of this process's own empties the caches of the tables it changed at once (it does
    // not wait for its notification), all of them when it could have changed any, none when it
    // plainly fires no change trigger: then no cache depends on it.
    const watched = await WatchedTables.load(db);
    db.onWrite((statements) => {
      const tables = watched.changedByAny(statements);
      if (tables === undefined) feed.changed();
      else for (const table of tables) feed.changed(table);
    });
    // On the embedded default too: its store roles cannot connect to the state database, but a
    // check that holds everywhere needs no argument about where it may be skipped.
    const senders = new NotificationSenders(
      options.senderConnection ?? (() => db.dedicatedClient()),
      await NotificationSenders.ownRoleOf(db),
      { timeoutMs: senderCheckTimeoutMs, logger },
    );
    const unverified = new UnverifiedChanges((table) => feed.changed(table), ANYTHING);
    const apply = (table: string, pid: number, verdict: Verdict) => {
      if (verdict === 'trusted') return feed.changed(table);
      if (verdict === 'refused') {
        feed.refused++;
        logger?.debug({ pid, table }, "ignored a change notification from a role that is not Storehouse's");
        return;
      }
      if (verdict === 'gone') {
        feed.unverified++;
        logger?.debug({ pid, table }, 'a change notification whose sender was gone before it could be checked');
      } else {
        feed.unanswered++;
        logger?.debug({ pid, table }, 'a change notification whose sender could not be checked in time: believed');
      }
      unverified.add(table);
    };
    const notified = (table: string, pid: number | undefined) => {
      if (pid === undefined) return feed.changed(table);
      const verdict = senders.judge(pid);
      if (typeof verdict === 'string') return apply(table, pid, verdict);
      verdict.then((answer) => apply(table, pid, answer));
    };
    const node = randomBase62(12);
    let beat = 0;
    let waiting: { payload: string; deadline: NodeJS.Timeout } | undefined;
    const deaf = (error: Error) => {
      if (waiting) clearTimeout(waiting.deadline);
      waiting = undefined;
      const wasHealthy = feed.healthy;
      feed.healthy = false;
      feed.changed(ANYTHING);
      if (wasHealthy) onError?.(error);
    };
    const listener = await db.listen(CHANGES_CHANNEL, {
      message: (payload, pid) => {
        if (!payload.startsWith(HEARTBEAT)) return notified(payload, pid);
        if (waiting?.payload === payload) {
          clearTimeout(waiting.deadline);
          waiting = undefined;
        }
      },
      lost: deaf,
      ready: () => {
        feed.changed(ANYTHING); // whatever happened while deaf is unknown: start over
        feed.healthy = true;
      },
    });
    const timer = setInterval(() => {
      if (waiting || !feed.healthy) return; // a reconnect is under way
      const payload = `${HEARTBEAT}${node}:${++beat}`;
      const deadline = setTimeout(() => {
        deaf(new Error(`the change notifications went quiet: a heartbeat took over ${heartbeatMs} ms`));
        listener.replace();
      }, heartbeatMs);
      deadline.unref();
      waiting = { payload, deadline };
      db.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, payload]).catch(() => {}); // a failure shows as a missed deadline
    }, heartbeatMs);
    timer.unref();
    const stop = async () => {
      clearInterval(timer);
      unverified.stop();
      if (waiting) clearTimeout(waiting.deadline);
      await Promise.all([listener.stop(), senders.close()]);
    };
    return { feed, stop };
  }
}

/** Heartbeat payloads (`hb:<node>:<n>`): a node checking it still hears notifications. */
const HEARTBEAT = 'hb:';

interface Entry<V> {
  value: V;
  expiresAt: number;
}

export interface ReadCacheOptions {
  /** How long an entry lives at most, changes or not (a backstop). */
  ttlMs?: number;
  maxEntries?: number;
  /**
   * The tables what it holds is read from: a change in any other table (another node's
   * notification, a write of this process) leaves it as it is. Unset, every change empties it. A
   * write of this process that could have changed any table, and a gap in the notifications
   * (ANYTHING), empty it either way.
   */
  tables?: readonly string[];
}

/**
 * A bounded read-through cache whose entries live until the next change (or `ttlMs`, a
 * backstop). A value read while a change happened is returned but not kept, so a read racing
 * a write can never pin the old state. Failures (including 4xx answers) are never cached.
 */
export class ReadCache<V> {
  /** Emptied on every change, so whatever it holds was read in the current generation. */
  private readonly entries = new Map<string, Entry<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly feed: ChangeFeed,
    options: ReadCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    const tables = options.tables && new Set(options.tables);
    feed.onChange((table) => {
      if (!tables || table === undefined || table === ANYTHING || tables.has(table)) this.entries.clear();
    });
  }

  /** The entry kept for `key` while it may be believed (the feed heard, not expired). */
  private fresh(key: string): { value: V } | undefined {
    const hit = this.entries.get(key);
    return hit && this.feed.healthy && hit.expiresAt > Date.now() ? hit : undefined;
  }

  /** The value kept for `key`, without loading it: undefined when there is none (or it may be stale). */
  peek(key: string): V | undefined {
    return this.fresh(key)?.value;
  }

  /**
   * The value kept for `key` at once when there is one (no promise, for hot paths), else loaded as
   * `get` loads it. A kept undefined (a lookup that found nothing) is a value too.
   */
  read(key: string, load: () => Promise<V>): V | Promise<V> {
    const hit = this.fresh(key);
    return hit ? hit.value : this.get(key, load);
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.fresh(key);
    if (hit) return hit.value;
    const generation = this.feed.generation;
    const value = await load();
    // A change during the read emptied the cache; what was read before it must not go back in.
    if (this.feed.healthy && this.feed.generation === generation) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, { value, expiresAt: Date.now() + this.ttlMs });
    }
    return value;
  }
}
