/**
 * The webhook events Storehouse's own changes cause, with Vercel's payloads (partner-api.md
 * §1.7), each recorded in the caller's transaction (outbox.ts). Invoice events are recorded by
 * src/billing/ itself.
 */
import type { Queryable } from '../db/database.ts';
import { isInstallationAdmin } from '../tenancy/installations.ts';
import type { TeamRole } from '../tenancy/teams.ts';
import { recordWebhookEvent } from './outbox.ts';

/** The installation an event is about: its integration, its team, and who installed it. */
type InstallationRow = {
  id: string;
  team_id: string;
  integration_id: string;
  installed_by: string | null;
  project_ids: string[] | null;
};

async function installationRow(tx: Queryable, installationId: string): Promise<InstallationRow | undefined> {
  const { rows } = await tx.query<InstallationRow>(
    'SELECT id, team_id, integration_id, installed_by, project_ids FROM installations WHERE id = $1',
    [installationId],
  );
  return rows[0];
}

/**
 * `integration-configuration.removed`, recorded before the installation's row goes (in the same
 * transaction), while its project selection can still be read.
 */
export async function configurationRemoved(tx: Queryable, installationId: string, userId: string | null): Promise<void> {
  const installation = await installationRow(tx, installationId);
  if (!installation) return;
  const selected = installation.project_ids !== null;
  await recordWebhookEvent(tx, {
    integrationId: installation.integration_id,
    type: 'integration-configuration.removed',
    payload: {
      configuration: {
        id: installation.id,
        projectSelection: selected ? 'selected' : 'all',
        projects: installation.project_ids ?? [],
      },
      team: { id: installation.team_id },
      user: { id: userId },
    },
  });
}

/**
 * `integration-configuration.permission-upgraded`: the projects the installation may use changed
 * (PATCH /v1/integrations/configuration/{id}, `vercel integration update --projects`), with the
 * selection before and after (null: all projects). Recorded in the change's transaction by its
 * caller (src/marketplace/cli-installs.ts); nothing when the selection stayed as it was. `added`
 * and `removed` are project ids, as in Vercel's payload: from or to "all", the team's projects
 * outside the selection.
 */
export async function permissionUpgraded(
  tx: Queryable,
  installationId: string,
  before: string[] | null,
  after: string[] | null,
  userId: string | null,
): Promise<void> {
  if (before === null && after === null) return;
  const installation = await installationRow(tx, installationId);
  if (!installation) return;
  let all: string[] = [];
  if (before === null || after === null) {
    const { rows } = await tx.query<{ id: string }>('SELECT id FROM projects WHERE team_id = $1 ORDER BY id', [installation.team_id]);
    all = rows.map((row) => row.id);
  }
  const wasAllowed = before ?? all;
  const isAllowed = after ?? all;
  const added = isAllowed.filter((id) => !wasAllowed.includes(id));
  const removed = wasAllowed.filter((id) => !isAllowed.includes(id));
  // The same selection again (and "all" again): nothing changed, nothing to tell.
  if (added.length === 0 && removed.length === 0 && (before === null) === (after === null)) return;
  await recordWebhookEvent(tx, {
    integrationId: installation.integration_id,
    type: 'integration-configuration.permission-upgraded',
    payload: {
      configuration: { id: installation.id, projectSelection: after === null ? 'all' : 'selected', projects: after ?? [] },
      projects: { added, removed },
      team: { id: installation.team_id },
      user: { id: userId },
    },
  });
}

/** The store a connection event is about, as partners know it: their own resource id where they gave one. */
export interface ConnectedStore {
  id: string;
  installationId: string;
  externalResourceId: string | null;
}

/** `integration-resource.project-connected`. */
export async function projectConnected(
  tx: Queryable,
  store: ConnectedStore,
  project: { id: string; name: string },
  targets: string[],
  userId: string | null,
): Promise<void> {
  await connectionEvent(tx, 'integration-resource.project-connected', store, { id: project.id, name: project.name }, targets, userId);
}

/** `integration-resource.project-disconnected`: as connected, without the project's name. */
export async function projectDisconnected(
  tx: Queryable,
  store: ConnectedStore,
  projectId: string,
  targets: string[],
  userId: string | null,
): Promise<void> {
  await connectionEvent(tx, 'integration-resource.project-disconnected', store, { id: projectId }, targets, userId);
}

async function connectionEvent(
  tx: Queryable,
  type: string,
  store: ConnectedStore,
  project: { id: string; name?: string },
  targets: string[],
  userId: string | null,
): Promise<void> {
  const installation = await installationRow(tx, store.installationId);
  if (!installation) return;
  await recordWebhookEvent(tx, {
    integrationId: installation.integration_id,
    type,
    payload: {
      configuration: { id: installation.id },
      installationId: installation.id,
      resourceId: store.externalResourceId ?? store.id,
      project,
      projectId: project.id,
      targets,
      team: { id: installation.team_id },
      user: { id: userId },
    },
  });
}

/**
 * `marketplace.member.changed`, once for every installation of the team whose integration takes
 * webhooks, with the role the partner sees (ADMIN or USER, as the member lookup and the OIDC
 * claims map it: isInstallationAdmin), or NONE for a member removed. Nothing is sent to an
 * installation for which the member's role did not change (a MEMBER made DEVELOPER stays USER).
 */
export async function memberChanged(
  tx: Queryable,
  teamId: string,
  user: { id: string; email?: string | undefined },
  before: TeamRole | undefined,
  after: TeamRole | undefined,
): Promise<void> {
  const { rows } = await tx.query<InstallationRow & { email: string | null }>(
    `SELECT i.id, i.team_id, i.integration_id, i.installed_by, i.project_ids, (SELECT email FROM users WHERE id = $2) AS email
       FROM installations i JOIN integrations g ON g.id = i.integration_id
      WHERE i.team_id = $1 AND g.webhook_url IS NOT NULL ORDER BY i.id`,
    [teamId, user.id],
  );
  const partnerRole = (installation: InstallationRow, role: TeamRole | undefined) =>
    role === undefined ? 'NONE' : isInstallationAdmin({ installedBy: installation.installed_by }, user.id, role) ? 'ADMIN' : 'USER';
  for (const installation of rows) {
    const role = partnerRole(installation, after);
    if (role === partnerRole(installation, before)) continue;
    const email = user.email ?? installation.email ?? undefined;
    await recordWebhookEvent(tx, {
      integrationId: installation.integration_id,
      type: 'marketplace.member.changed',
      payload: {
        installationId: installation.id,
        memberId: user.id,
        role,
        globalUserId: user.id,
        ...(email !== undefined && { userEmail: email }),
        // No `user`: the base payload's user is who made the change, which the team's member
        // functions do not know (an operator's change has none).
        team: { id: teamId },
      },
    });
  }
}
