/**
 * What a refused request must not change: the rows of the tables that hold a team's things,
 * money and history. One query reads every table's row count and a digest of its rows, so it
 * runs before and after each refused-or-not write and stays cheap (a few ms).
 *
 * A digest that differs says the table changed, not who changed it: the server's background work
 * writes these tables too (sweeps finish stores, the token-use flush sets `last_used_at`). So a
 * change is the request's only where it also committed rows of that table (fuzz/write-attribution.ts).
 */
import type { Database } from '../src/db/database.ts';

export const WATCHED = [
  'stores',
  'billing_authorizations',
  'payment_methods',
  'audit_events',
  'projects',
  'project_env',
  'store_connections',
  'access_tokens',
  'installation_tokens',
  'installations',
  'provider_resources',
  'teams',
  'memberships',
  'users',
] as const;

export type Snapshot = Record<string, { rows: number; digest: string }>;

const SQL = `SELECT ${WATCHED.map(
  (table) =>
    `(SELECT json_build_object('rows', count(*), 'digest', coalesce(md5(string_agg((to_jsonb(t))::text, ',' ORDER BY (to_jsonb(t))::text)), ''))
          FROM ${table} t) AS ${table}`,
).join(',\n       ')}`;

export async function snapshot(db: Database): Promise<Snapshot> {
  const { rows } = await db.query<Record<string, { rows: number; digest: string }>>(SQL);
  return rows[0] as Snapshot;
}

/**
 * The tables whose rows differ, among `madeBy` (the tables the request wrote rows of; every
 * watched table when undefined), with their counts before and after; empty when nothing changed.
 */
export function changes(before: Snapshot, after: Snapshot, madeBy?: ReadonlySet<string>): string[] {
  return WATCHED.filter((table) => before[table]!.digest !== after[table]!.digest && (!madeBy || madeBy.has(table))).map(
    (table) =>
      `${table} (${before[table]!.rows} → ${after[table]!.rows} rows${before[table]!.rows === after[table]!.rows ? ', a row changed' : ''})`,
  );
}
