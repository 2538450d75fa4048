import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { PreparedStatements } from './prepared-statements.ts';

/** PostgreSQL's unique_violation. */
export const isUniqueViolation = (error: unknown) => (error as { code?: string }).code === '23505';

export type Row = Record<string, unknown>;
/**
 * A row as a mapper beside its query reads it (toTeam, toStore, ...): node-postgres types no
 * column, and the mapper is where each one gets its type.
 */
// biome-ignore lint/suspicious/noExplicitAny: each column is typed by the mapper that reads it
export type MappedRow = Record<string, any>;

/**
 * A page of rows read newest first by a `seq` cursor, `limit + 1` of them: the extra one says
 * whether another page follows, whose cursor (`next`) is the last kept row's `seq`.
 */
export function seqPage<R extends Record<string, unknown>>(rows: R[], limit: number): { rows: R[]; next: number | null } {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  return { rows: page, next: more ? Number(page.at(-1)!.seq) : null };
}

/** Anything SQL can be sent to: the database itself, or one transaction on it. */
export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface ListenHandlers {
  /** A notification; `senderPid` is the notifying backend's pid (PostgreSQL only). */
  message(payload: string, senderPid?: number): void;
  /** The listening connection broke; notifications may be missed until `ready` comes again. */
  lost(error: Error): void;
  /** Listening (again). */
  ready(): void;
}

export interface Listener {
  stop(): Promise<void>;
  /** Drops the listening connection, which seems deaf, for a new one (`lost` now, `ready` once listening). */
  replace(): void;
}

/** Subscribes to a notification channel; resolves once listening. */
export type Listen = (channel: string, handlers: ListenHandlers) => Promise<Listener>;

/**
 * A CTE (`WITH ${UNFLUSHED} ... FROM unflushed`) that turns synchronous_commit off for the
 * implicit transaction of the one statement it is part of: a single write, committed without
 * waiting for its flush, in one round trip (TransactionOptions.synchronousCommit says when that is safe).
 */
export const UNFLUSHED = "unflushed AS (SELECT set_config('synchronous_commit', 'off', true))";

/**
 * One write and a second that logs it, in one statement (`changed` is the write's RETURNING, which
 * the log may select from): atomic without a transaction, in one round trip. The change feed
 * reads the two writes back out of it (`loggedWrites`), so which tables it changed is known.
 */
export function withLoggedWrite(write: string, log: string): string {
  return `${LOGGED_PREFIX}${write}${LOGGED_JOIN}${log}${LOGGED_SUFFIX}`;
}

const LOGGED_PREFIX = 'WITH changed AS (';
const LOGGED_JOIN = '), logged AS (';
const LOGGED_SUFFIX = ') SELECT * FROM changed';

/** The write and its log in a statement `withLoggedWrite` made; undefined for any other statement. */
export function loggedWrites(statement: string): [write: string, log: string] | undefined {
  if (!statement.startsWith(LOGGED_PREFIX) || !statement.endsWith(LOGGED_SUFFIX)) return undefined;
  const body = statement.slice(LOGGED_PREFIX.length, -LOGGED_SUFFIX.length);
  const at = body.lastIndexOf(LOGGED_JOIN);
  if (at < 0) return undefined;
  const write = body.slice(0, at);
  // A write holding another CTE's start is not one withLoggedWrite made of a plain write: not read.
  return /\bAS\s*\(/i.test(write) ? undefined : [write, body.slice(at + LOGGED_JOIN.length)];
}

/** A string as an SQL literal, for a statement that takes no parameters (TransactionOptions.first). */
export const sqlLiteral = (value: string): string => pg.escapeLiteral(value);

export interface TransactionOptions {
  /**
   * false: the commit does not wait for its WAL to reach the disk (`SET LOCAL synchronous_commit
   * = off`). Only for a write that is safe to lose in a crash of the database server: one nothing
   * outside the server learns of before a later synchronous commit on the same server, which
   * flushes all the WAL written before it, this write's too. Its rows are visible at once either way.
   */
  synchronousCommit?: boolean;
  /**
   * A statement without parameters (its values made literals by `sqlLiteral`) sent with BEGIN, in
   * its round trip: the transaction's first (a lock it begins with, say). Its result is `work`'s
   * second argument.
   */
  first?: string;
}

export interface Database extends Queryable {
  /** `embedded`: the PostgreSQL server this process runs itself in its data dir; `postgres`: DATABASE_URL's. */
  readonly kind: 'embedded' | 'postgres';
  /** On the embedded default: a superuser connection string to its PostgreSQL server, for the Postgres provider. */
  readonly embeddedAdminUrl?: string | undefined;
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws. A
   * deadlock or serialization failure rolls it back and runs `work` again (a few times at most),
   * so `work` must only talk to the database through `tx`: it may run more than once.
   */
  transaction<T>(work: (tx: Queryable, first: pg.QueryResult | undefined) => Promise<T>, options?: TransactionOptions): Promise<T>;
  listen: Listen;
  /**
   * Calls `hook` after each write this process commits (a transaction, or a statement that is not a
   * SELECT), with the statements it wrote with (a transaction's that are not SELECTs).
   */
  onWrite(hook: (statements: readonly string[]) => void): void;
  /**
   * PostgreSQL only: a connection outside the pool, made as the pool makes its own (its client
   * class, its settings), not yet connected; the caller connects and ends it. For what must not
   * wait behind requests for a free connection (the change feed's sender checks).
   */
  dedicatedClient(): pg.Client;
  close(): Promise<void>;
}

const READ_ONLY = /^\s*select\b/i;

/**
 * PostgreSQL's deadlock_detected (40P01) and serialization_failure (40001): the transaction was
 * rolled back through no fault of its own, and running it again is the documented remedy.
 */
export const isRetryable = (error: unknown) => {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
};

/** How often a transaction runs at most, and the longest first wait before running it again. */
const TRANSACTION_ATTEMPTS = 5;
const RETRY_DELAY_MS = 20;

/**
 * PostgreSQL text cannot hold a NUL byte: a parameter holding one fails here, before a round
 * trip, as PostgreSQL itself would (22021), which the API answers with 400.
 */
function refuseNul(params: unknown[] | undefined): void {
  const hasNul = (value: unknown): boolean =>
    typeof value === 'string' ? value.includes('\u0000') : Array.isArray(value) && value.some(hasNul);
  if (params?.some(hasNul)) {
    throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021', severity: 'ERROR' });
  }
}

/**
 * The one implementation: a node-postgres pool, on DATABASE_URL's server or on the embedded
 * default's own, so the same SQL and the same transaction code run in both modes.
 */
export class PoolDatabase implements Database {
  private readonly writeHooks: Array<(statements: readonly string[]) => void> = [];
  private readonly prepared: PreparedStatements;

  constructor(
    readonly kind: Database['kind'],
    private readonly pool: pg.Pool,
    readonly listen: Listen,
    private readonly embedded: { adminUrl: string; onClose: () => Promise<void> } | undefined = undefined,
    /** Whether statements used often go as named prepared statements (prepared-statements.ts). */
    preparedStatements = true,
  ) {
    this.prepared = new PreparedStatements(preparedStatements);
    pool.on('connect', (client) => {
      this.open.add(client);
      client.once('end', () => this.open.delete(client));
    });
  }

  /** The pool's connections until each has really closed (pg-pool's end() resolves before that). */
  private readonly open = new Set<pg.PoolClient>();

  /** On the embedded default: a superuser connection string to its PostgreSQL server, for the Postgres provider. */
  get embeddedAdminUrl(): string | undefined {
    return this.embedded?.adminUrl;
  }

  onWrite(hook: (statements: readonly string[]) => void): void {
    this.writeHooks.push(hook);
  }

  dedicatedClient(): pg.Client {
    const { Client } = this.pool as unknown as { Client: new (config: pg.PoolConfig) => pg.Client };
    return new Client(this.pool.options);
  }

  private wrote(statements: readonly string[]): void {
    for (const hook of this.writeHooks) hook(statements);
  }

  async query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    refuseNul(params);
    for (let attempt = 1; ; attempt++) {
      const sent = this.prepared.config(sql, params);
      try {
        const result = await this.pool.query<R>(sent);
        if (!READ_ONLY.test(sql)) this.wrote([sql]);
        return result;
      } catch (error) {
        // A statement on its own is a transaction of its own: rolled back whole, so safe to repeat.
        if (this.prepared.failedNamed(sent, error)) continue;
        if (!isRetryable(error) || attempt >= TRANSACTION_ATTEMPTS) throw error;
        await sleep(Math.random() * RETRY_DELAY_MS * attempt);
      }
    }
  }

  async transaction<T>(
    work: (tx: Queryable, first: pg.QueryResult | undefined) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<T> {
    // One round trip either way: the setting and the first statement travel with BEGIN (a simple query of several).
    const begin = ['BEGIN', ...(options.synchronousCommit === false ? ['SET LOCAL synchronous_commit = off'] : [])].join('; ');
    for (let attempt = 1; ; attempt++) {
      const named = { failed: false };
      try {
        return await this.transactionOnce(begin, options.first, work, named);
      } catch (error) {
        // A statement that failed for being named (prepared-statements.ts): run again, unnamed.
        if (named.failed && attempt < TRANSACTION_ATTEMPTS) continue;
        if (!isRetryable(error) || attempt >= TRANSACTION_ATTEMPTS) throw error;
        // Both sides of a deadlock retrying at once would meet again: wait a random while first.
        await sleep(Math.random() * RETRY_DELAY_MS * attempt);
      }
    }
  }

  private async transactionOnce<T>(
    begin: string,
    firstStatement: string | undefined,
    work: (tx: Queryable, first: pg.QueryResult | undefined) => Promise<T>,
    named: { failed: boolean },
  ): Promise<T> {
    const client = await this.pool.connect();
    const writes: string[] = [];
    if (firstStatement !== undefined && !READ_ONLY.test(firstStatement)) writes.push(firstStatement);
    try {
      const begun = await client.query(firstStatement === undefined ? begin : `${begin}; ${firstStatement}`);
      // Several statements answer with a result each (pg's types say one): the first statement's is the last.
      const first = firstStatement === undefined ? undefined : (begun as unknown as pg.QueryResult[]).at(-1);
      const result = await work(
        {
          query: <R extends Row = Row>(sql: string, params?: unknown[]) => {
            refuseNul(params);
            if (!READ_ONLY.test(sql)) writes.push(sql);
            const sent = this.prepared.config(sql, params);
            return client.query<R>(sent).catch((error: unknown) => {
              if (this.prepared.failedNamed(sent, error)) named.failed = true;
              throw error;
            });
          },
        },
        first,
      );
      await client.query('COMMIT');
      this.wrote(writes);
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
    // The embedded server is stopped next: a connection still saying goodbye would hear its
    // shutdown as an error. Each has been told to end; wait until it has (briefly, at most).
    const ended = [...this.open].map((client) => new Promise<void>((resolve) => client.once('end', () => resolve())));
    // The bound must not itself hold the process: once every client has ended, a stopping
    // process exits at once, not 2 s later.
    await Promise.race([Promise.all(ended), sleep(2000, undefined, { ref: false })]);
    await this.embedded?.onClose();
  }
}
