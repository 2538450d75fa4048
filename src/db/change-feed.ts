/**
 * Knowing when shared state changed, so hot reads can be served from memory.
 *
 * Triggers on the tables that authorization and the catalog read (migration 0002) send
 * `pg_notify('storehouse_changes', <table>)` when a write commits. Every node listens; each
 * notification, and each write this process makes itself, moves the feed to a new generation,
 * and every ReadCache drops what it read in an older one. While the listening connection is
 * down the feed is unhealthy and caches are bypassed, so a node never serves what it cannot
 * know is current.
 */
import { randomBase62 } from '../ids.ts';
import type { Database } from './database.ts';

export const CHANGES_CHANNEL = 'storehouse_changes';

/** What a change names when it could have been anything: the feed was deaf for a while. */
export const ANYTHING = '*';

export class ChangeFeed {
  generation = 0;
  healthy = false;
  private readonly subscribers = new Set<(table: string | undefined) => void>();

  /** Something changed (in `table`; ANYTHING after a gap; undefined for a write of this process): what was read before is stale. */
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
   */
  static async start(
    db: Database,
    options: { heartbeatMs?: number; onError?: (error: Error) => void } = {},
  ): Promise<{ feed: ChangeFeed; stop: () => Promise<void> }> {
    const { heartbeatMs = 5000, onError } = options;
    const feed = new ChangeFeed();
    db.onWrite(() => feed.changed());
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
      message: (payload) => {
        if (!payload.startsWith(HEARTBEAT)) return feed.changed(payload);
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
    let timer: NodeJS.Timeout | undefined;
    if (db.kind === 'postgres') {
      timer = setInterval(() => {
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
    }
    const stop = async () => {
      clearInterval(timer);
      if (waiting) clearTimeout(waiting.deadline);
      await listener.stop();
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

/**
 * A bounded read-through cache whose entries live until the next change (or `ttlMs`, a
 * backstop). A value read while a change happened is returned but not kept, so a read racing
 * a write can never pin the old state. Failures (including 4xx answers) are never cached.
 */
export class ReadCache<V> {
  /** Emptied on every change, so whatever it holds was read in the current generation. */
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly feed: ChangeFeed,
    private readonly options: { ttlMs: number; maxEntries: number } = { ttlMs: 60_000, maxEntries: 10_000 },
  ) {
    feed.onChange(() => this.entries.clear());
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && this.feed.healthy && hit.expiresAt > Date.now()) return hit.value;
    const generation = this.feed.generation;
    const value = await load();
    // A change during the read emptied the cache; what was read before it must not go back in.
    if (this.feed.healthy && this.feed.generation === generation) {
      if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, { value, expiresAt: Date.now() + this.options.ttlMs });
    }
    return value;
  }
}
