import pg from 'pg';

/** PostgreSQL's unique_violation, as raised by both the server and PGlite. */
export const isUniqueViolation = (error: unknown) => (error as { code?: string }).code === '23505';

export type Row = Record<string, unknown>;

/** Anything SQL can be sent to: the database itself, or one transaction on it. */
export interface Queryable {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly kind: 'embedded' | 'postgres';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * The one implementation: a node-postgres pool. On PostgreSQL it holds real connections;
 * on the embedded database it holds PGlite's single in-process connection, so the same SQL
 * and the same transaction code run in both modes.
 */
export class PoolDatabase implements Database {
  constructor(
    readonly kind: Database['kind'],
    private readonly pool: pg.Pool,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(sql, params);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
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
    await this.onClose();
  }
}
