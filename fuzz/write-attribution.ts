/**
 * Which writes a request made: what lets the fuzzer tell a refused request's change from the
 * server's background work (the store sweeps, pending checks, update retries, the token-use
 * flush) writing the same tables while the request is in flight.
 *
 * The fuzzed server runs in this process, so Node's AsyncLocalStorage follows each request: every
 * `request` the HTTP server emits runs inside a context naming that request, and every write the
 * server commits through its database (`runtime.db.query`, and `runtime.db.transaction` once it
 * commits) is recorded with the context it was committed in, the tables its SQL writes and the
 * rows it affected. Async context follows awaits and callbacks, not timers set up elsewhere: work
 * a timer runs (every housekeeping schedule, the lease, the flush) carries the context of whoever
 * set the timer, never the request being judged. Work the request itself starts, such as a sweep
 * it wakes, runs in its context and counts as its own.
 *
 * A write is counted only with affected rows (an UPDATE that matched nothing changed nothing), and
 * also for the tables its deletes and updates cascade to (foreign keys, read from the schema).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';
import type pg from 'pg';
import type { Database, Queryable, Row, TransactionOptions } from '../src/db/database.ts';
import type { TestServer } from '../test/helpers.ts';

/** One request the HTTP server received, in arrival order. */
export interface Arrival {
  seq: number;
  method: string;
  /** The request target as sent: path and query, still percent-encoded. */
  url: string;
}

/** A committed write statement. */
interface CommittedWrite {
  /** The request it was committed in; undefined for work no request started. */
  arrival: Arrival | undefined;
  tables: string[];
}

/** The tables a statement writes: `INSERT INTO t`, `UPDATE t`, `DELETE FROM t`, in CTEs too. */
export function tablesWritten(sql: string): string[] {
  const tables = new Set<string>();
  for (const match of sql.matchAll(/\b(?:insert\s+into|update|delete\s+from)\s+(?:only\s+)?(?:public\.)?"?([a-z_][a-z0-9_]*)"?/gi)) {
    tables.add(match[1]!.toLowerCase());
  }
  return [...tables];
}

const READ_ONLY = /^\s*select\b/i;

export class WriteAttribution {
  private readonly context = new AsyncLocalStorage<Arrival>();
  private readonly writes: CommittedWrite[] = [];
  readonly arrivals: Arrival[] = [];
  /** Table → the tables its deletes or key updates reach through ON DELETE/UPDATE CASCADE, SET NULL or SET DEFAULT. */
  private cascades = new Map<string, string[]>();

  private constructor(private readonly db: Database) {}

  /** Starts recording on a running test server; once per server (a second call returns the first). */
  static async attach(server: TestServer): Promise<WriteAttribution> {
    const known = attached.get(server);
    if (known) return known;
    const attribution = new WriteAttribution(server.runtime.db);
    attached.set(server, attribution);
    attribution.cascades = await cascadesOf(server.runtime.db);
    attribution.followRequests(server);
    attribution.recordWrites();
    return attribution;
  }

  /** The request received since arrival number `from` with this method and target, if it reached the app. */
  arrivalSince(from: number, method: string, url: string): Arrival | undefined {
    return this.arrivals.slice(from).find((arrival) => arrival.method === method && arrival.url === url);
  }

  /** The tables the request wrote rows of (cascades included), in commits so far. */
  tablesWrittenBy(arrival: Arrival): Set<string> {
    const tables = new Set<string>();
    const add = (table: string) => {
      if (tables.has(table)) return;
      tables.add(table);
      for (const reached of this.cascades.get(table) ?? []) add(reached);
    };
    for (const write of this.writes) if (write.arrival === arrival) write.tables.forEach(add);
    return tables;
  }

  /** Every request the HTTP server emits runs in a context naming it (Fastify's listener is wrapped, not replaced). */
  private followRequests(server: TestServer): void {
    const http = server.app.server;
    const listeners = http.listeners('request') as Array<(request: IncomingMessage, ...rest: unknown[]) => void>;
    http.removeAllListeners('request');
    for (const listener of listeners) {
      http.on('request', (request: IncomingMessage, ...rest: unknown[]) => {
        const arrival = { seq: this.arrivals.length, method: request.method ?? '', url: request.url ?? '' };
        this.arrivals.push(arrival);
        this.context.run(arrival, () => listener.call(http, request, ...rest));
      });
    }
  }

  /** Wraps the database's two ways in: a statement is recorded once it is committed, with the context it ran in. */
  private recordWrites(): void {
    const db = this.db;
    const query = db.query.bind(db);
    const transaction = db.transaction.bind(db);
    const effective = (sql: string, rowCount: number | null) => (READ_ONLY.test(sql) || !rowCount ? [] : tablesWritten(sql));
    db.query = async <R extends Row = Row>(sql: string, params?: unknown[]) => {
      const result = await query<R>(sql, params);
      const tables = effective(sql, result.rowCount);
      if (tables.length) this.writes.push({ arrival: this.context.getStore(), tables });
      return result;
    };
    db.transaction = async <T>(work: (tx: Queryable, first: pg.QueryResult | undefined) => Promise<T>, options?: TransactionOptions) => {
      // A transaction may run more than once (a deadlock retried): only the attempt that committed counts.
      let attempt: string[] = [];
      const result = await transaction((tx, first) => {
        attempt = [];
        const written = attempt;
        // The statement sent with BEGIN (TransactionOptions.first), when it writes.
        if (options?.first !== undefined && first) written.push(...effective(options.first, first.rowCount));
        return work(
          {
            query: async <R extends Row = Row>(sql: string, params?: unknown[]) => {
              const answer = await tx.query<R>(sql, params);
              written.push(...effective(sql, answer.rowCount));
              return answer;
            },
          },
          first,
        );
      }, options);
      if (attempt.length) this.writes.push({ arrival: this.context.getStore(), tables: [...new Set(attempt)] });
      return result;
    };
  }
}

const attached = new WeakMap<TestServer, WriteAttribution>();

/** From the schema: which tables a delete (or key update) of a row of each table also writes. */
async function cascadesOf(db: Database): Promise<Map<string, string[]>> {
  const { rows } = await db.query<{ referenced: string; referencing: string }>(
    `SELECT DISTINCT confrelid::regclass::text AS referenced, conrelid::regclass::text AS referencing
       FROM pg_constraint
      WHERE contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))`,
  );
  const cascades = new Map<string, string[]>();
  for (const { referenced, referencing } of rows) {
    const table = referenced.replace(/^public\./, '').replace(/"/g, '');
    cascades.set(table, [...(cascades.get(table) ?? []), referencing.replace(/^public\./, '').replace(/"/g, '')]);
  }
  return cascades;
}
