/**
 * Which statements go to PostgreSQL as named prepared statements: parsed (and, after a few uses,
 * planned) once per connection instead of on every use. A store's creation spent about 2 ms of
 * its 10 ms outside the provider's own work in parsing and planning its statements again.
 *
 * A statement gets a name at its PREPARE_AFTER-th use, so SQL made with values in it (which
 * never repeats) never gets one; at most MAX_NAMED statements get one, so no connection holds
 * more than that many. Statements without parameters go as simple queries (they may be several),
 * never named. Off for a pooler in transaction mode (STOREHOUSE_PREPARED_STATEMENTS=off), where
 * the next transaction may run on a server connection that never prepared them.
 *
 * A table changed under a prepared statement (another node's migration, say) makes it fail with
 * "cached plan must not change result type": that statement is no longer named, and the caller
 * runs it again (PoolDatabase does).
 */
import type pg from 'pg';

/** The use at which a statement gets its name. */
const PREPARE_AFTER = 3;
/** The most statements named, and the most counted while not yet named. */
const MAX_NAMED = 200;
const MAX_COUNTED = 2000;

/** PostgreSQL's answer when a prepared statement's result columns would change (feature_not_supported). */
export const isPlanChanged = (error: unknown): boolean =>
  (error as { code?: unknown } | null)?.code === '0A000' &&
  /cached plan must not change result type/.test(String((error as Error).message));

export class PreparedStatements {
  private readonly names = new Map<string, string>();
  private readonly uses = new Map<string, number>();
  /** Statements whose plan changed: never named again (their old name may still be prepared on a connection). */
  private readonly unnamed = new Set<string>();
  private next = 0;

  constructor(private readonly enabled: boolean) {}

  /** How to send `sql` with `params`: as it is, or, once it is used often, as a named statement. */
  config(sql: string, params: unknown[] | undefined): pg.QueryConfig {
    if (!this.enabled || !params || params.length === 0) return { text: sql, values: params };
    const name = this.names.get(sql) ?? this.count(sql);
    return name === undefined ? { text: sql, values: params } : { name, text: sql, values: params };
  }

  private count(sql: string): string | undefined {
    if (this.names.size >= MAX_NAMED || this.unnamed.has(sql)) return undefined;
    const uses = (this.uses.get(sql) ?? 0) + 1;
    if (uses < PREPARE_AFTER) {
      if (this.uses.size >= MAX_COUNTED) this.uses.clear();
      this.uses.set(sql, uses);
      return undefined;
    }
    this.uses.delete(sql);
    const name = `storehouse_${++this.next}`;
    this.names.set(sql, name);
    return name;
  }

  /** After `sql` failed with `error`: true when its plan changed, and it is sent unnamed from now on. */
  planChanged(sql: string, error: unknown): boolean {
    if (!isPlanChanged(error) || !this.names.has(sql)) return false;
    this.names.delete(sql);
    this.unnamed.add(sql);
    return true;
  }
}
