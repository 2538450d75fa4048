/**
 * What a partner server says of its installation (`PATCH /v1/installations/{id}`, docs/vercel-api.md
 * §5.1): its status, its own id for it, the installation-level plan and a notification for the
 * team. Recorded on the installation and shown with the configuration (GET
 * /v1/integrations/configuration/{id} and the list); nothing else acts on them.
 */
import { audited } from '../audit/audit-log.ts';
import type { Queryable } from '../db/database.ts';
import { notFound } from '../errors.ts';
import type { InstallationNotification, InstallationStatus, PartnerInstallationPlan } from '../tenancy/installations.ts';
import type { PartnerInstallation } from './marketplace-api.ts';

export interface InstallationChange {
  status?: InstallationStatus;
  /** `""` clears it. */
  externalId?: string;
  billingPlan?: PartnerInstallationPlan;
  /** `null` or `""` clears it (the SDK cannot send null). */
  notification?: InstallationNotification | '' | null;
}

/** Applies the fields the body names, in one statement with its audit event; `{}` changes nothing. */
export async function updateInstallation(db: Queryable, installation: PartnerInstallation, change: InstallationChange): Promise<void> {
  const values: unknown[] = [installation.installationId];
  const sets: string[] = [];
  const set = (column: string, value: unknown) => sets.push(`${column} = $${values.push(value)}`);
  if (change.status !== undefined) set('status', change.status);
  if (change.externalId !== undefined) set('external_id', change.externalId === '' ? null : change.externalId);
  if (change.billingPlan !== undefined) set('billing_plan', JSON.stringify(change.billingPlan));
  if (change.notification !== undefined) set('notification', change.notification ? JSON.stringify(change.notification) : null);
  if (sets.length === 0) return;
  const fields = Object.keys(change).filter((key) => change[key as keyof InstallationChange] !== undefined);
  const { rows } = await audited(db, `UPDATE installations SET ${sets.join(', ')}, updated_at = now() WHERE id = $1 RETURNING id`, values, {
    teamId: installation.teamId,
    actorId: null,
    action: 'installation.updated',
    targetType: 'installation',
    targetId: installation.installationId,
    details: {
      by: 'provider',
      fields,
      ...(change.status !== undefined && { status: change.status }),
      ...(change.billingPlan !== undefined && { billingPlanId: change.billingPlan.id }),
    },
  });
  // Removed since the token was checked (its tokens went with it).
  if (!rows[0]) throw notFound('configuration', installation.installationId);
}
