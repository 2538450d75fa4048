/**
 * Which statements go to PostgreSQL as named prepared statements: parsed (and, after a few uses,
 * planned) once per connection instead of on every use. A store's creation spent about 2 ms of
 * its 10 ms outside the provider's own work in parsing and planning its statements again.
 *
 * A statement gets a name at its PREPARE_AFTER-th use, so SQL made with values in it (which
 * never repeats) never gets one; at most MAX_NAMED statements have one at a time. Statements
 * without parameters go as simple queries (they may be several), never named. Off
 * (STOREHOUSE_PREPARED_STATEMENTS=false) for a pooler in transaction mode, where the next
 * statement may run on a server connection that never prepared it.
 *
 * What a named statement can fail with, PoolDatabase sends again unnamed, never a 500:
 * - a table changed under it (another node's migration) makes PostgreSQL refuse its cached plan
 *   ("cached plan must not change result type"): every name is dropped (a migration changes many
 *   tables), and statements earn new ones, which are prepared afresh;
 * - a server connection that does not have it (a pooler in transaction mode: "prepared statement
 *   does not exist"): names are turned off for good.
 * The statements prepared under a dropped name stay on their connections until these close.
 */
import type pg from 'pg';

/** The use at which a statement gets its name. */
const PREPARE_AFTER = 3;
/** The most statements named at a time, and the most counted while not yet named. */
const MAX_NAMED = 200;
const MAX_COUNTED = 2000;

const codeOf = (error: unknown) => (error as { code?: unknown } | null)?.code;

/** PostgreSQL's answer when a prepared statement's result columns would change (feature_not_supported). */
const isPlanChanged = (error: unknown): boolean =>
  codeOf(error) === '0A000' && /cached plan must not change result type/.test(String((error as Error).message));

/** invalid_sql_statement_name: the connection the statement reached never prepared it. */
const isMissingStatement = (error: unknown): boolean => codeOf(error) === '26000';

export class PreparedStatements {
  private readonly names = new Map<string, string>();
  private readonly uses = new Map<string, number>();
  private next = 0;

  constructor(private enabled: boolean) {}

  /** How to send `sql` with `params`: as it is, or, once it is used often, as a named statement. */
  config(sql: string, params: unknown[] | undefined): pg.QueryConfig {
    if (!this.enabled || !params || params.length === 0) return { text: sql, values: params };
    const name = this.names.get(sql) ?? this.count(sql);
    return name === undefined ? { text: sql, values: params } : { name, text: sql, values: params };
  }

  private count(sql: string): string | undefined {
    if (this.names.size >= MAX_NAMED) return undefined;
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

  /**
   * After a statement sent as `sent` failed with `error`: true when it failed for being named
   * (see above), and is to be sent again, unnamed. Several requests failing so at once each get true.
   */
  failedNamed(sent: pg.QueryConfig, error: unknown): boolean {
    if (sent.name === undefined) return false;
    if (isMissingStatement(error)) this.enabled = false;
    else if (!isPlanChanged(error)) return false;
    this.names.clear();
    this.uses.clear();
    return true;
  }
}
