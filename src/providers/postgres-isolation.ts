/**
 * Which databases of the Postgres provider's server a store role can reach besides its own.
 *
 * PostgreSQL gives every new database CONNECT to PUBLIC, so a store role (a member of nothing)
 * can connect to `postgres`, `template1` and, when it is on the same server, Storehouse's own
 * state database, where it could LISTEN and pg_notify Storehouse's change channel. pg_hba is not
 * Storehouse's to change and PostgreSQL has no per-role deny, so the one lever is the database
 * privilege: PUBLIC loses CONNECT, and the roles that need it get it by name.
 *
 * Store databases already have it revoked (create() in postgres.ts). For every other database
 * PUBLIC may still connect to, Storehouse revokes it itself when told to (`revoke`) and the admin
 * may (a superuser, or a member of the owner), keeping CONNECT for its own roles: the admin on the
 * database it connects to, the state role on the state database. Otherwise it logs, once, the SQL
 * to run. Revoking is not the default: a superuser admin URL does not mean the server is
 * Storehouse's (CI and development machines hand it their own `postgres`), and other
 * applications' roles there rely on PUBLIC's CONNECT, which Storehouse cannot know of.
 */
import pg from 'pg';
import type { Queryable } from '../db/database.ts';

/** Where a log line goes: pino's (object, message) signature. */
export interface IsolationLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** What the check found: SQL it ran, SQL it leaves to the operator. */
export interface IsolationReport {
  revoked: string[];
  toRun: string[];
}

const id = (text: string) => pg.escapeIdentifier(text);

/**
 * Store databases, named as their roles (`sh_` and lowercase base62) and owned by them: never
 * touched here, whichever Storehouse on the server made them.
 */
const NOT_A_STORE = `NOT (d.datname ~ '^sh_[a-z0-9]+$' AND d.datname = pg_get_userbyid(d.datdba))`;

interface StateIdentity {
  database: string;
  role: string;
  databaseOid: string;
  started: string;
}

const IDENTITY_SQL = `SELECT current_database() AS database, session_user AS role,
  (SELECT oid::text FROM pg_database WHERE datname = current_database()) AS "databaseOid",
  pg_postmaster_start_time()::text AS started`;

/**
 * The state database and its role, when they live on the admin's server: the same database oid
 * on a server started at the same moment (the embedded state database never matches).
 */
async function stateOnServer(admin: Queryable, state: Queryable): Promise<StateIdentity | undefined> {
  const mine = (await state.query<Record<string, string>>(IDENTITY_SQL)).rows[0] as unknown as StateIdentity | undefined;
  if (!mine) return undefined;
  const { rows } = await admin.query<{ same: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND oid::text = $2) AND pg_postmaster_start_time()::text = $3 AS same`,
    [mine.database, mine.databaseOid, mine.started],
  );
  return rows[0]?.same ? mine : undefined;
}

/**
 * Checks every database a store role could reach through PUBLIC and, with `revoke`, closes what
 * the admin may close. Statements for the rest are returned (and logged at warn level, once).
 */
export async function isolateStoreRoles(
  admin: Queryable,
  state: Queryable,
  options: {
    revoke: boolean;
    log?: IsolationLog | undefined;
    /** Statements already logged to run (by an earlier check): not logged again. */
    reported?: Set<string>;
  },
): Promise<IsolationReport> {
  const [{ rows: me }, stateDb] = await Promise.all([
    admin.query<{ role: string; superuser: boolean; database: string }>(
      'SELECT current_user AS role, rolsuper AS superuser, current_database() AS database FROM pg_roles WHERE rolname = current_user',
    ),
    stateOnServer(admin, state),
  ]);
  const adminRole = me[0]!;
  const { rows: open } = await admin.query<{ datname: string; mine: boolean }>(
    `SELECT d.datname, (pg_has_role(current_user, d.datdba, 'USAGE') OR $1::boolean) AS mine
       FROM pg_database d
      WHERE d.datallowconn AND has_database_privilege('public', d.oid, 'CONNECT') AND ${NOT_A_STORE}
      ORDER BY d.datname`,
    [adminRole.superuser],
  );
  const superusers = new Set(
    (await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolsuper')).rows.map((row) => row.rolname),
  );
  const report: IsolationReport = { revoked: [], toRun: [] };
  for (const { datname, mine } of open) {
    // Who must keep CONNECT by name once PUBLIC loses it (superusers need no privilege).
    const keep = new Set<string>();
    if (datname === adminRole.database) keep.add(adminRole.role);
    if (stateDb && datname === stateDb.database) keep.add(stateDb.role);
    const grantees = [...keep].filter((role) => !superusers.has(role));
    const sql = [
      `REVOKE CONNECT ON DATABASE ${id(datname)} FROM PUBLIC`,
      ...(grantees.length > 0 ? [`GRANT CONNECT ON DATABASE ${id(datname)} TO ${grantees.map(id).join(', ')}`] : []),
    ].join('; ');
    if (options.revoke && mine) {
      // Both statements in one implicit transaction: the grant lands with the revoke, or neither does.
      await admin.query(sql);
      report.revoked.push(`${sql};`);
    } else {
      report.toRun.push(`${sql};`);
    }
  }
  if (report.revoked.length > 0) {
    options.log?.info({ statements: report.revoked }, 'revoked PUBLIC CONNECT so store roles reach only their own databases');
  }
  const unreported = report.toRun.filter((sql) => !options.reported?.has(sql));
  for (const sql of unreported) options.reported?.add(sql);
  if (unreported.length > 0) {
    options.log?.warn(
      { statements: unreported, sql: unreported.join('\n') },
      options.revoke
        ? 'store roles can connect to databases the Postgres admin may not change: run these statements as their owner or a superuser'
        : "store roles can connect to databases other than their own (PUBLIC has CONNECT): run these statements, or set STOREHOUSE_POSTGRES_REVOKE_PUBLIC_CONNECT=true on a server that is Storehouse's alone",
    );
  }
  return report;
}
