import type { MappedRow, Queryable } from '../db/database.ts';
import { conflict, forbidden, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import type { ResourceStatus } from '../providers/provider.ts';
import type { TeamRole } from './teams.ts';

/** An installation of an integration for a team: what Vercel's API calls an integration configuration. */
export interface Installation {
  id: string;
  teamId: string;
  integrationId: string;
  /** The user who installed it; with the team's owners, an admin of the installation. */
  installedBy: string | null;
  source: string;
  /** What the partner server reports of it (PATCH /v1/installations/{id}): its status, 'ready' until told otherwise... */
  status: InstallationStatus;
  /** ...its own id for it... */
  externalId: string | null;
  /** ...the installation-level plan, as the partner sent it... */
  billingPlan: PartnerInstallationPlan | null;
  /** ...and a notification for the team. */
  notification: InstallationNotification | null;
  createdAt: Date;
  updatedAt: Date;
}

/** An installation takes the statuses a resource does (Vercel's configuration `status` has the same enum). */
export type InstallationStatus = ResourceStatus;

export interface InstallationNotification {
  level: 'info' | 'warn' | 'error';
  title: string;
  message?: string;
  href?: string;
}

/** A plan as a partner writes it (the marketplace API's billingPlan): id, type and name, the rest optional. */
export interface PartnerInstallationPlan {
  id: string;
  type: 'prepayment' | 'subscription';
  name: string;
  [field: string]: unknown;
}

const toInstallation = (row: MappedRow): Installation => ({
  id: row.id,
  teamId: row.team_id,
  integrationId: row.integration_id,
  installedBy: row.installed_by,
  source: row.source,
  status: row.status,
  externalId: row.external_id,
  billingPlan: row.billing_plan,
  notification: row.notification,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/**
 * Installs an integration for a team: 409 `already_installed` when the team has it, unless
 * `another` asks for one more (a team may hold several, migration 0019). `db` must be a
 * transaction: the check and the insert hold an advisory lock on the team and integration until
 * it ends, so two installs at once cannot both see none.
 */
export async function install(
  db: Queryable,
  input: { teamId: string; integrationId: string; installedBy: string | null; source?: string; another?: boolean },
): Promise<Installation> {
  await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`installation:${input.teamId}:${input.integrationId}`]);
  if (!input.another) {
    const { rows } = await db.query('SELECT 1 FROM installations WHERE team_id = $1 AND integration_id = $2 LIMIT 1', [
      input.teamId,
      input.integrationId,
    ]);
    if (rows.length > 0) throw conflict('already_installed', 'The integration is already installed for this team');
  }
  const { rows } = await db.query(
    `INSERT INTO installations (id, team_id, integration_id, installed_by, source)
     VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [newId('icfg'), input.teamId, input.integrationId, input.installedBy, input.source ?? 'marketplace'],
  );
  return toInstallation(rows[0]!);
}

export async function listInstallations(db: Queryable, teamId: string): Promise<Installation[]> {
  const { rows } = await db.query('SELECT * FROM installations WHERE team_id = $1 ORDER BY created_at, id', [teamId]);
  return rows.map(toInstallation);
}

/** The team's installation with this id; another team's looks exactly like a missing one. */
export async function getInstallation(db: Queryable, teamId: string, id: string): Promise<Installation> {
  const { rows } = await db.query('SELECT * FROM installations WHERE id = $1 AND team_id = $2', [id, teamId]);
  if (!rows[0]) throw notFound('configuration', id);
  return toInstallation(rows[0]);
}

/**
 * What a provider is told of an installation (the partner API's `account`): its team's name, a
 * link to it, and its best contact (the user who installed it, else the team's first owner).
 */
export async function installationAccount(
  db: Queryable,
  installationId: string,
  publicUrl: string,
): Promise<{ teamId: string; name: string; url: string; contact: { email: string; name?: string } | null; createdAt: Date }> {
  const { rows } = await db.query<{
    team_id: string;
    name: string;
    created_at: Date;
    contact: { email: string; name: string | null } | null;
  }>(
    `SELECT t.id AS team_id, t.name, i.created_at,
            (SELECT json_build_object('email', u.email, 'name', u.name) FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.team_id = t.id AND (u.id = i.installed_by OR m.role = 'OWNER') ORDER BY u.id = i.installed_by DESC, m.created_at LIMIT 1) AS contact
       FROM installations i JOIN teams t ON t.id = i.team_id WHERE i.id = $1`,
    [installationId],
  );
  const row = rows[0];
  if (!row) throw notFound('configuration', installationId);
  return {
    teamId: row.team_id,
    name: row.name,
    url: `${publicUrl}/v1/integrations/configuration/${installationId}?teamId=${row.team_id}`,
    contact: row.contact ? { email: row.contact.email, ...(row.contact.name && { name: row.contact.name }) } : null,
    createdAt: row.created_at,
  };
}

/** How many stores an installation holds. */
export async function countStores(db: Queryable, installationId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM stores WHERE installation_id = $1', [installationId]);
  return rows[0]!.n;
}

/** Roles that only read: never admins of an installation, whoever installed it. */
const READ_ONLY_ROLES: readonly TeamRole[] = ['VIEWER', 'BILLING'];

/** Admins are the team's owners plus the user who installed it (unless since demoted to a read-only role). */
export function isInstallationAdmin(installation: Pick<Installation, 'installedBy'>, userId: string, role: TeamRole): boolean {
  if (role === 'OWNER') return true;
  return installation.installedBy === userId && !READ_ONLY_ROLES.includes(role);
}

/** 403 unless the user is an admin of the installation: `what` says what they may not do, e.g. "delete its stores". */
export function assertInstallationAdmin(
  installation: Installation,
  user: { userId: string; role: TeamRole },
  integrationName: string,
  what: string,
): void {
  if (!isInstallationAdmin(installation, user.userId, user.role)) {
    throw forbidden(`Only the team's owners and the user who installed ${integrationName} may ${what}`);
  }
}

/**
 * Removes an installation. Refused while it still has stores: they would be orphaned with
 * their resources still running. The check and the delete are one statement, and the stores'
 * foreign key backs it, so a store created meanwhile cannot slip through.
 */
export async function uninstall(db: Queryable, installation: Installation): Promise<void> {
  const storesLeft = () => countStores(db, installation.id);
  const refuse = (count?: number) =>
    conflict(
      'configuration_has_stores',
      `The configuration ${installation.id} still has ${count === undefined ? '' : `${count} `}store${count === 1 ? '' : 's'}: delete them first`,
    );
  try {
    const { rowCount } = await db.query(
      'DELETE FROM installations WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM stores WHERE installation_id = $1)',
      [installation.id],
    );
    if (rowCount === 0) {
      const count = await storesLeft();
      if (count > 0) throw refuse(count);
      throw notFound('configuration', installation.id);
    }
  } catch (error) {
    const { code, constraint } = error as { code?: string; constraint?: string };
    // A store created meanwhile (the caller's transaction is aborted now: no more queries).
    if (code === '23503' && constraint === 'stores_installation_id_fkey') throw refuse();
    throw error;
  }
}
