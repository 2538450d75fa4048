/**
 * What a refused request must not change: the rows of the tables that hold a team's things,
 * money and history. One query reads every table's row count and a digest of its rows, so it
 * runs before and after each refused-or-not write and stays cheap (a few ms on PGlite).
 */
import type { Database } from '../src/db/database.ts';

/** Table → columns left out of its digest: bookkeeping that a read or a refused call may update. */
const WATCHED: Record<string, string[]> = {
  stores: [],
  billing_authorizations: [],
  payment_methods: [],
  audit_events: [],
  projects: [],
  project_env: [],
  store_connections: [],
  access_tokens: ['last_used_at'],
  installation_tokens: [],
  installations: [],
  provider_resources: [],
  teams: [],
  memberships: [],
  users: [],
};

export type Snapshot = Record<string, { rows: number; digest: string }>;

const SQL = `SELECT ${Object.entries(WATCHED)
  .map(
    ([table, volatile]) =>
      `(SELECT json_build_object('rows', count(*), 'digest', coalesce(md5(string_agg((to_jsonb(t)${volatile.map((c) => ` - '${c}'`).join('')})::text, ',' ORDER BY (to_jsonb(t))::text)), ''))
          FROM ${table} t) AS ${table}`,
  )
  .join(',\n       ')}`;

export async function snapshot(db: Database): Promise<Snapshot> {
  const { rows } = await db.query<Record<string, { rows: number; digest: string }>>(SQL);
  return rows[0] as Snapshot;
}

/** The tables whose rows differ, with their counts before and after; empty when nothing changed. */
export function changes(before: Snapshot, after: Snapshot): string[] {
  return Object.keys(WATCHED)
    .filter((table) => before[table]!.digest !== after[table]!.digest)
    .map(
      (table) =>
        `${table} (${before[table]!.rows} → ${after[table]!.rows} rows${before[table]!.rows === after[table]!.rows ? ', a row changed' : ''})`,
    );
}
