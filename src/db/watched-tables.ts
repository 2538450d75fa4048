/**
 * Which of this process's own writes can change what a read cache holds.
 *
 * Caches are kept current across nodes by the change triggers (migrations 0002, 0012 and later):
 * a write another node makes reaches a cache only when it fires one. So the triggers are the
 * list of what caches depend on, and a write of this process that could fire none (the
 * dashboard session's touch, the tokens' last use, a node's lease, an audit row) changes nothing
 * a cache may hold: it leaves them as they are, as it leaves other nodes' caches. Every other
 * write empties the caches of the tables it changes (a store's creation leaves the tokens' and
 * the teams' as they are), and every statement this cannot read plainly empties them all.
 *
 * What the triggers are is read from the database when the change feed starts, after the
 * migrations: for each table, the events that notify and, for an UPDATE trigger limited to some
 * columns (`UPDATE OF ...`), which ones. A foreign key of a watched table with an action (ON
 * DELETE CASCADE, SET NULL, ...) makes the DELETEs (or key UPDATEs) of the table it references
 * watched too, since they write the watched one (and its writes count as changing that one);
 * a table with a trigger of any other kind is watched whole, since that trigger could do
 * anything. A write and its audit event in one statement (withLoggedWrite) are read as the two.
 */
import { loggedWrites, type Queryable, UNFLUSHED } from './database.ts';

/** The trigger function of the change notifications (migration 0002). */
const NOTIFY_FUNCTION = 'storehouse_notify_change';

interface Watch {
  insert: boolean;
  delete: boolean;
  /** true: any UPDATE; a set: an UPDATE of one of these columns; false: none. */
  update: boolean | Set<string>;
  /** A trigger of another kind is on it: a write could change any table. */
  whole: boolean;
  /** The watched tables its writes may change: itself, and those its foreign keys' actions write (transitively). */
  reaches: Set<string>;
}

// pg_trigger.tgtype's bits (PostgreSQL's include/catalog/pg_trigger.h).
const TRIGGER_INSERT = 1 << 2;
const TRIGGER_DELETE = 1 << 3;
const TRIGGER_UPDATE = 1 << 4;

/** The one INSERT, UPDATE or DELETE a statement is, by the table it writes; anything else (a CTE, several statements, a comment first, a schema-qualified name) is not read. */
const PLAIN_WRITE = /^\s*(insert\s+into|update|delete\s+from)\s+(?:only\s+)?([a-z_][a-z0-9_]*)(?=[\s(]|$)/i;
const SEVERAL_STATEMENTS = /;\s*\S/;
const UNFLUSHED_PREFIX = `WITH ${UNFLUSHED} `;
const WORDS = /[a-z_][a-z0-9_]*/gi;
const NONE: ReadonlySet<string> = new Set();

export class WatchedTables {
  private constructor(private readonly watches: Map<string, Watch>) {}

  /** What the database's triggers and foreign keys say, as the change feed starts. */
  static async load(db: Queryable): Promise<WatchedTables> {
    const triggers = await db.query<{ table: string; notifies: boolean; type: number; columns: string[] }>(
      `SELECT c.relname AS table, p.proname = $1 AS notifies, t.tgtype AS type,
              ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr::int2[])) AS columns
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid)`,
      [NOTIFY_FUNCTION],
    );
    const watches = new Map<string, Watch>();
    const watchOf = (table: string) => {
      const watch = watches.get(table) ?? { insert: false, delete: false, update: false, whole: false, reaches: new Set([table]) };
      watches.set(table, watch);
      return watch;
    };
    /** Counts UPDATEs of these columns (all, for none given); true when that is more than before. */
    const watchUpdates = (watch: Watch, columns: readonly string[]) => {
      if (watch.update === true) return false;
      const before = watch.update ? watch.update.size : -1;
      watch.update = columns.length === 0 ? true : new Set([...(watch.update || []), ...columns]);
      return watch.update === true || watch.update.size > before;
    };
    for (const trigger of triggers.rows) {
      const watch = watchOf(trigger.table);
      const whole = !trigger.notifies; // a trigger of another kind could do anything
      watch.whole ||= whole;
      watch.insert ||= whole || (trigger.type & TRIGGER_INSERT) !== 0;
      watch.delete ||= whole || (trigger.type & TRIGGER_DELETE) !== 0;
      if (whole || trigger.type & TRIGGER_UPDATE) watchUpdates(watch, whole ? [] : trigger.columns);
    }
    // Foreign keys whose action writes the referencing table when the referenced one's rows go
    // (ON DELETE) or their keys change (ON UPDATE): such a write is watched as the referencing one is.
    const keys = await db.query<{ referencing: string; referenced: string; on_delete: boolean; on_update: boolean; columns: string[] }>(
      `SELECT f.relname AS referencing, r.relname AS referenced,
              k.confdeltype IN ('c', 'n', 'd') AS on_delete, k.confupdtype IN ('c', 'n', 'd') AS on_update,
              ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attnum = ANY (k.confkey)) AS columns
         FROM pg_constraint k JOIN pg_class f ON f.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
        WHERE k.contype = 'f' AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
          AND pg_table_is_visible(r.oid)`,
    );
    for (let grew = true; grew; ) {
      grew = false;
      for (const key of keys.rows) {
        if (!watches.has(key.referencing)) continue;
        const watch = watchOf(key.referenced);
        const referencing = watches.get(key.referencing)!;
        if (key.on_delete && !watch.delete) grew = watch.delete = true;
        if (key.on_update && watchUpdates(watch, key.columns)) grew = true;
        // What the referencing table's writes reach, this one's deletes (or key updates) reach too.
        if (referencing.whole && !watch.whole) grew = watch.whole = true;
        for (const table of referencing.reaches) if (!watch.reaches.has(table)) grew = Boolean(watch.reaches.add(table));
      }
    }
    return new WatchedTables(watches);
  }

  /**
   * The tables whose change triggers this statement (a write this process committed) may fire:
   * its table's own, and those its foreign keys' actions write. Undefined when it could change
   * anything: a statement not read plainly, or a table with a trigger of another kind.
   */
  changedBy(statement: string): ReadonlySet<string> | undefined {
    // UNFLUSHED's CTE is read through: it writes nothing (a create's records use it).
    const sql = statement.startsWith(UNFLUSHED_PREFIX) ? statement.slice(UNFLUSHED_PREFIX.length) : statement;
    // A write and its log (an audit event), as withLoggedWrite makes them: what either changes.
    const logged = loggedWrites(sql);
    if (logged) return this.changedByAny(logged);
    const match = PLAIN_WRITE.exec(sql);
    if (!match || SEVERAL_STATEMENTS.test(sql)) return undefined;
    const watch = this.watches.get(match[2]!.toLowerCase());
    if (!watch) return NONE;
    const verb = match[1]!.slice(0, 6).toLowerCase();
    const fires =
      verb === 'delete'
        ? watch.delete
        : verb === 'update'
          ? this.updates(watch, sql)
          : // An INSERT's ON CONFLICT DO UPDATE fires the table's UPDATE trigger too.
            watch.insert || (/\bdo\s+update\b/i.test(sql) && this.updates(watch, sql));
    if (!fires) return NONE;
    return watch.whole ? undefined : watch.reaches;
  }

  /** The tables any of these statements (one commit's writes) may have changed; undefined: any. */
  changedByAny(statements: readonly string[]): ReadonlySet<string> | undefined {
    if (statements.length === 1) return this.changedBy(statements[0]!);
    const tables = new Set<string>();
    for (const sql of statements) {
      const changed = this.changedBy(sql);
      if (changed === undefined) return undefined;
      for (const table of changed) tables.add(table);
    }
    return tables;
  }

  /**
   * Whether an UPDATE of a table so watched fires its trigger. For a trigger of some columns, a
   * statement none of whose words after its target names one of them sets none of them (the
   * words include every column it sets, and more: an extra word can only make it count).
   */
  private updates(watch: Watch, sql: string): boolean {
    if (typeof watch.update === 'boolean') return watch.update;
    const columns = watch.update;
    const after = sql.slice(PLAIN_WRITE.exec(sql)?.[0].length ?? 0);
    return (after.match(WORDS) ?? []).some((word) => columns.has(word.toLowerCase()));
  }
}
