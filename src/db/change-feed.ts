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

  /** Starts listening on the database; resolves once notifications flow. Returns the stop function. */
  static async start(db: Database, onError?: (error: Error) => void): Promise<{ feed: ChangeFeed; stop: () => Promise<void> }> {
    const feed = new ChangeFeed();
    db.onWrite(() => feed.changed());
    const stop = await db.listen(CHANGES_CHANNEL, {
      message: (table) => feed.changed(table),
      lost: (error) => {
        feed.healthy = false;
        feed.changed(ANYTHING);
        onError?.(error);
      },
      ready: () => {
        feed.changed(ANYTHING); // whatever happened while deaf is unknown: start over
        feed.healthy = true;
      },
    });
    return { feed, stop };
  }
}

interface Entry<V> {
  value: V;
  generation: number;
  expiresAt: number;
}

/**
 * A bounded read-through cache whose entries live until the next change (or `ttlMs`, a
 * backstop). A value read while a change happened is returned but not kept, so a read racing
 * a write can never pin the old state. Failures (including 4xx answers) are never cached.
 */
export class ReadCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly feed: ChangeFeed,
    private readonly options: { ttlMs: number; maxEntries: number },
  ) {
    feed.onChange(() => this.entries.clear());
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && this.feed.healthy && hit.generation === this.feed.generation && hit.expiresAt > Date.now()) return hit.value;
    const generation = this.feed.generation;
    const value = await load();
    if (this.feed.healthy && this.feed.generation === generation) {
      if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(key, { value, generation, expiresAt: Date.now() + this.options.ttlMs });
    }
    return value;
  }
}
