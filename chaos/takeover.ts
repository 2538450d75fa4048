/**
 * A dead node's work, read straight from the state database as its admin: which node holds
 * which lease (node_leases), which creates and deletes a node has under way (the stores it is
 * recorded as doing, src/stores/interrupted-work.ts's `underWay`), and how long after the node's
 * death that work is finished or rolled back by someone else (a survivor's sweep, or a keyed
 * retry on a survivor).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** The same condition as src/stores/interrupted-work.ts's underWay: its outside call not answered, or its answer not recorded. */
const UNDER_WAY = "((status = 'initializing' AND external_resource_id IS NULL) OR status = 'deleting')";

/** A small pool on the state database as its admin, bounded so a hung server fails its questions instead of hanging them. */
export function statePool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: 10_000,
    query_timeout: 10_000,
    idleTimeoutMillis: 5_000,
  });
  pool.on('error', () => {});
  return pool;
}

async function query<T extends pg.QueryResultRow>(pool: pg.Pool, sql: string, values: unknown[] = []): Promise<T[]> {
  return (await pool.query<T>(sql, values)).rows;
}

/** Every lease row's node id (live or not). */
export async function leaseIds(state: pg.Pool): Promise<string[]> {
  return (await query<{ node_id: string }>(state, 'SELECT node_id FROM node_leases')).map((row) => row.node_id);
}

/** The Postgres stores with a create or delete under way, and the node doing each (the work holdRoleCatalog keeps under way). */
export async function postgresWorkUnderWay(state: pg.Pool): Promise<Array<{ id: string; owner: string }>> {
  return query<{ id: string; owner: string }>(
    state,
    `SELECT s.id, s.owner_node AS owner FROM stores s JOIN products p ON p.id = s.product_id
      WHERE s.owner_node IS NOT NULL AND p.slug = 'postgres' AND ${UNDER_WAY.replaceAll('status', 's.status').replace('external_resource_id', 's.external_resource_id')}`,
  );
}

/** The stores whose create or delete `nodeId` has under way: their ids, and what each is ("create", "rollback of a create", "delete"). */
export async function workUnderWay(state: pg.Pool, nodeId: string): Promise<{ ids: string[]; what: Map<string, string> }> {
  const rows = await query<{ id: string; status: string; rolling_back: boolean }>(
    state,
    `SELECT id, status, rolling_back FROM stores WHERE owner_node = $1 AND ${UNDER_WAY}`,
    [nodeId],
  );
  const what = new Map(
    rows.map((row) => [row.id, row.status === 'initializing' ? 'create' : row.rolling_back ? 'rollback of a create' : 'delete']),
  );
  return { ids: rows.map((row) => row.id), what };
}

/** Of `ids`, the stores still under way (by anyone). */
async function stillUnderWay(state: pg.Pool, ids: string[]): Promise<string[]> {
  return (await query<{ id: string }>(state, `SELECT id FROM stores WHERE id = ANY($1) AND ${UNDER_WAY}`, [ids])).map((row) => row.id);
}

/** How long the dead node's lease had left at its death (ms, by the database's clock; negative when already expired). */
export async function leaseLeftMs(state: pg.Pool, nodeId: string): Promise<number | undefined> {
  const rows = await query<{ ms: number }>(
    state,
    'SELECT (extract(epoch FROM expires_at - now()) * 1000)::float8 AS ms FROM node_leases WHERE node_id = $1',
    [nodeId],
  );
  return rows[0]?.ms;
}

/**
 * Polls until none of `ids` is under way any more (each finished, or rolled back and gone), or
 * `timeoutMs` passed since `diedAt`. Returns the ms from `diedAt` to that, or undefined at the
 * deadline, with what was still under way then.
 */
export async function untilTakenOver(
  state: pg.Pool,
  ids: string[],
  diedAt: number,
  timeoutMs: number,
): Promise<{ ms: number | undefined; left: string[] }> {
  let left = ids;
  while (Date.now() - diedAt < timeoutMs) {
    try {
      left = await stillUnderWay(state, ids);
      if (left.length === 0) return { ms: Date.now() - diedAt, left };
    } catch {
      /* the state database briefly unreachable: ask again */
    }
    await sleep(100);
  }
  return { ms: undefined, left };
}

/**
 * Holds a SHARE lock on the provider's role catalog (pg_authid, shared by the whole server) until
 * released: every CREATE ROLE, ALTER ROLE and DROP ROLE waits meanwhile, so a Postgres store's
 * create or delete that reaches its role stays under way (a slow provider) while logins and reads
 * go on. A kill then finds work under way however fast the machine is.
 */
export async function holdRoleCatalog(adminUrl: string): Promise<{ release: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE pg_catalog.pg_authid IN SHARE MODE');
  return {
    release: async () => {
      await client.query('ROLLBACK').catch(() => {});
      await client.end().catch(() => {});
    },
  };
}
