/**
 * Who may read a store's credentials. A store is sensitive while any of its connections is
 * (`makeEnvVarsSensitive`). Then only those who may administer its installation (the team's
 * owners and the user who installed it, see `isInstallationAdmin`) may read its credentials:
 * connect it with sensitivity off, read its encrypted variables' values (list with decrypt, get,
 * pull), or remove its last sensitive connection. Anyone else who may change projects may still
 * connect it, only as sensitive, and disconnect it while another sensitive connection remains.
 * A store with no sensitive connection is readable by everyone who may change projects.
 */
import type { MappedRow, Queryable } from '../db/database.ts';
import { forbidden, notFound } from '../errors.ts';
import type { Actor } from '../tenancy/access.ts';
import { isInstallationAdmin } from '../tenancy/installations.ts';

export interface CredentialGuard {
  storeName: string;
  integrationName: string;
  /** The user who installed the store's integration: with the team's owners, who may read sensitive credentials. */
  installedBy: string | null;
  /** Whether any connection of the store is sensitive. */
  sensitive: boolean;
}

/**
 * Columns giving a row's guard, for a query that names the store `s` and joins GUARD_JOINS.
 * Null (and not sensitive) for a row with no store.
 */
export const GUARD_COLUMNS = `s.name AS guard_store_name, g.name AS guard_integration_name, i.installed_by AS guard_installed_by,
  EXISTS (SELECT 1 FROM store_connections c WHERE c.store_id = s.id AND c.sensitive) AS guard_sensitive`;
export const GUARD_JOINS = 'LEFT JOIN installations i ON i.id = s.installation_id LEFT JOIN integrations g ON g.id = i.integration_id';

export const guardOf = (row: MappedRow): CredentialGuard => ({
  storeName: row.guard_store_name,
  integrationName: row.guard_integration_name,
  installedBy: row.guard_installed_by,
  sensitive: row.guard_sensitive === true,
});

/** Whether any connection of the store is sensitive now (the guard's `sensitive`, alone). */
export async function hasSensitiveConnection(db: Queryable, storeId: string): Promise<boolean> {
  const { rows } = await db.query<{ sensitive: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM store_connections WHERE store_id = $1 AND sensitive) AS sensitive',
    [storeId],
  );
  return rows[0]!.sensitive === true;
}

/** The guard of the team's store; read inside the transaction that holds the store's row, so no connection changes meanwhile. */
export async function storeGuard(db: Queryable, teamId: string, storeId: string): Promise<CredentialGuard> {
  const { rows } = await db.query(`SELECT ${GUARD_COLUMNS} FROM stores s ${GUARD_JOINS} WHERE s.id = $1 AND s.team_id = $2`, [
    storeId,
    teamId,
  ]);
  if (!rows[0]) throw notFound('resource', storeId);
  return guardOf(rows[0]);
}

function mayReadCredentials(actor: Actor, guard: CredentialGuard): boolean {
  return !guard.sensitive || isInstallationAdmin({ installedBy: guard.installedBy }, actor.userId, actor.role);
}

/** 403 unless the actor may read the store's credentials: `what` says what they may not do, e.g. "read its values". */
export function assertMayReadCredentials(actor: Actor, guard: CredentialGuard, what: string, hint = ''): void {
  if (mayReadCredentials(actor, guard)) return;
  throw forbidden(
    `The store ${guard.storeName} is connected as sensitive: only a team OWNER or the user who installed ` +
      `${guard.integrationName} (the admins of its configuration) may ${what}${hint ? `. ${hint}` : ''}`,
  );
}
