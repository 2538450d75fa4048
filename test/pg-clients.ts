/** Connections a test makes itself to a PostgreSQL server, as a role of its choosing. */
import pg from 'pg';

/** `url` with another user, password or database (each left as it is when not given). */
export function urlWith(url: string, change: { user?: string; password?: string; database?: string }): string {
  const next = new URL(url);
  if (change.user !== undefined) next.username = encodeURIComponent(change.user);
  if (change.password !== undefined) next.password = encodeURIComponent(change.password);
  if (change.database !== undefined) next.pathname = `/${encodeURIComponent(change.database)}`;
  return next.toString();
}

/** A connected client whose connection errors (a terminated session) are left to its queries. */
export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The SQLSTATE a real connection attempt fails with, or 'connected' once a query ran on it. */
export async function connectionOutcome(url: string): Promise<string> {
  try {
    const client = await connect(url);
    await client.query('SELECT 1');
    await client.end();
    return 'connected';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}
