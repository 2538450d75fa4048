/**
 * The webhook dispatcher's own connection to the state database (Database.dedicatedClient),
 * outside the pool, for its claims and attempts' results:
 *
 * - A burst of deliveries never waits for, or holds, the connections requests need.
 * - Its writes touch only the webhook tables, which nothing caches; through the pool each would
 *   count as a write of this process (Database.onWrite) and empty every cache of the node's change
 *   feed, once or twice per delivery.
 *
 * Statements take turns on it (their batching makes one enough). A connection that could not be
 * opened, or a statement that fails without the server's answer to it (the connection broke, went
 * unanswered past the query timeout, or the server ended the session with a FATAL) drops the
 * connection, and the next statement opens a new one; a deadlock or serialization failure is run
 * again, as the pool does.
 */
import type pg from 'pg';
import { isRetryable, type Queryable, type Row } from '../db/database.ts';

const ATTEMPTS = 3;

export class DispatcherConnection implements Queryable {
  private current: Promise<pg.Client> | undefined;
  private turn: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly open: () => pg.Client) {}

  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    const answer = this.turn.then(() => this.run<R>(sql, params));
    this.turn = answer.catch(() => {});
    return answer;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.turn;
    const current = this.current;
    this.current = undefined;
    await current?.then((client) => client.end()).catch(() => {});
  }

  private async run<R extends Row>(sql: string, params: unknown[] | undefined): Promise<pg.QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new Error('the webhook dispatcher has stopped');
      const connecting = this.connection();
      let client: pg.Client;
      try {
        client = await connecting;
      } catch (error) {
        // Never connected (refused, timed out, or the server's own FATAL: "does not allow
        // connections", too many clients): the next statement tries a new one, not this one again.
        this.drop(connecting);
        throw error;
      }
      try {
        return await client.query<R>(sql, params);
      } catch (error) {
        // The server's answer to the statement (ERROR) leaves the connection usable; no answer, or
        // a FATAL or PANIC (the server ended this session: terminated, shutting down), does not.
        const severity = (error as { severity?: unknown }).severity;
        if (severity === undefined || severity === 'FATAL' || severity === 'PANIC') this.drop(connecting);
        if (!isRetryable(error) || attempt >= ATTEMPTS) throw error;
      }
    }
  }

  private connection(): Promise<pg.Client> {
    if (this.current) return this.current;
    const client = this.open();
    const connecting = client.connect().then(() => client);
    // A connection that breaks while idle is replaced on the next statement.
    client.on('error', () => this.drop(connecting));
    this.current = connecting;
    return connecting;
  }

  private drop(connecting: Promise<pg.Client>): void {
    if (this.current !== connecting) return;
    this.current = undefined;
    connecting.then((client) => client.end()).catch(() => {});
  }
}
