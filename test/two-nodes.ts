/** Two Storehouse nodes on one fresh PostgreSQL database (sharing its bootstrap token), and a plain connection to it for the tests' own SQL. */
import pg from 'pg';
import { freshPostgresDatabase, startServer, type TestServer } from './helpers.ts';

export interface TwoNodes {
  database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  a: TestServer;
  b: TestServer;
  sql: pg.Client;
  /** Closes the connection and both nodes, and drops the database. */
  close(): Promise<void>;
}

/** Starts them; whatever started before a failure is closed again. */
export async function twoNodes(): Promise<TwoNodes> {
  const database = await freshPostgresDatabase();
  let a: TestServer | undefined;
  let b: TestServer | undefined;
  let sql: pg.Client | undefined;
  const close = async () => {
    await sql?.end();
    await b?.close();
    await a?.close();
    await database.drop();
  };
  try {
    a = await startServer('postgres', { databaseUrl: database.url });
    b = await startServer('postgres', { databaseUrl: database.url, bootstrapToken: a.token });
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    return { database, a, b, sql, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** Ends every node's LISTEN connection on the database: they stop hearing changes until they listen again. */
export async function deafenNodes(sql: pg.Client): Promise<void> {
  await sql.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()");
}
