/**
 * What was sent to integrations' webhook URLs, and sending one again: for the operator (the
 * CLI's `storehouse webhooks ...`, on every team's events) and for a team's owners (Storehouse's
 * API under /_storehouse/, on the events of their own team's installations).
 */
import { type MappedRow, type Queryable, seqPage } from '../db/database.ts';
import { AppError, forbidden, notFound } from '../errors.ts';
import type { Actor } from '../tenancy/access.ts';
import { WEBHOOKS_CHANNEL } from './outbox.ts';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface Delivery {
  /** The event's id: the envelope's `id`, the same on every attempt. */
  id: string;
  type: string;
  integrationId: string;
  teamId: string | null;
  installationId: string | null;
  status: DeliveryStatus;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
  /** When the next attempt is due (null once delivered or failed). */
  nextAttemptAt: Date | null;
}

export interface DeliveryAttempt {
  number: number;
  nodeId: string;
  startedAt: Date;
  durationMs: number;
  status: number | null;
  error: string | null;
}

export interface DeliveryDetail extends Delivery {
  /** The envelope as sent, parsed. */
  event: Record<string, unknown>;
  /** Every attempt, oldest first. */
  history: DeliveryAttempt[];
}

/** Whose deliveries: every team's (the operator), or one team's (its owners). */
export type DeliveryScope = { operator: true } | { teamId: string };

export interface DeliveryFilter {
  integrationId?: string | undefined;
  status?: DeliveryStatus | undefined;
  limit: number;
  /** The previous page's `next`. */
  until?: number | undefined;
}

const COLUMNS = `id, seq, type, integration_id, team_id, installation_id, status, attempts, last_status, last_error, created_at,
  delivered_at, next_attempt_at, body`;

const toDelivery = (row: MappedRow): Delivery => ({
  id: row.id,
  type: row.type,
  integrationId: row.integration_id,
  teamId: row.team_id,
  installationId: row.installation_id,
  status: row.status,
  attempts: row.attempts,
  lastStatus: row.last_status,
  lastError: row.last_error,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
  nextAttemptAt: row.status === 'pending' ? row.next_attempt_at : null,
});

/** The scope of a team member: owners see their team's deliveries; every other role is refused. */
export function teamScope(actor: Actor): DeliveryScope {
  if (actor.role !== 'OWNER') throw forbidden("Only the team's owners may see and redeliver its webhook deliveries");
  return { teamId: actor.team.id };
}

export async function listDeliveries(
  db: Queryable,
  scope: DeliveryScope,
  filter: DeliveryFilter,
): Promise<{ deliveries: Delivery[]; next: number | null }> {
  const params: unknown[] = [filter.limit + 1];
  const where: string[] = [];
  if ('teamId' in scope) where.push(`team_id = $${params.push(scope.teamId)}`);
  if (filter.integrationId !== undefined) where.push(`integration_id = $${params.push(filter.integrationId)}`);
  if (filter.status !== undefined) where.push(`status = $${params.push(filter.status)}`);
  if (filter.until !== undefined) where.push(`seq < $${params.push(filter.until)}`);
  const { rows } = await db.query<MappedRow>(
    `SELECT ${COLUMNS} FROM webhook_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $1`,
    params,
  );
  const page = seqPage(rows, filter.limit);
  return { deliveries: page.rows.map(toDelivery), next: page.next };
}

/** One delivery with the event and every attempt; 404 for one outside the scope, as for one that does not exist. */
export async function getDelivery(db: Queryable, scope: DeliveryScope, id: string): Promise<DeliveryDetail> {
  const { rows } = await db.query<MappedRow>(`SELECT ${COLUMNS} FROM webhook_events WHERE id = $1`, [id]);
  const row = rows[0];
  if (!row || ('teamId' in scope && row.team_id !== scope.teamId)) throw notFound('webhook delivery', id);
  const attempts = await db.query<MappedRow>(
    'SELECT number, node_id, started_at, duration_ms, status, error FROM webhook_attempts WHERE event_id = $1 ORDER BY number',
    [id],
  );
  return {
    ...toDelivery(row),
    event: JSON.parse(row.body),
    history: attempts.rows.map((a) => ({
      number: a.number,
      nodeId: a.node_id,
      startedAt: a.started_at,
      durationMs: a.duration_ms,
      status: a.status,
      error: a.error,
    })),
  };
}

/**
 * Sends a delivered or failed event again: the same id and body, a new attempt, retried as a new
 * event would be (its retry window starts now). A pending one is refused (409): it is being sent.
 */
export async function redeliver(db: Queryable, scope: DeliveryScope, id: string): Promise<Delivery> {
  // The scope is part of the update, so the common case is one statement; a miss is told apart
  // (404 outside the scope or absent, 409 pending) only then.
  const teamId = 'teamId' in scope ? scope.teamId : null;
  const { rows } = await db.query<MappedRow>(
    `UPDATE webhook_events SET status = 'pending', next_attempt_at = now(), retry_from = now(), claimed_by = NULL, delivered_at = NULL
      WHERE id = $1 AND status IN ('delivered', 'failed') AND ($2::text IS NULL OR team_id = $2) RETURNING ${COLUMNS}`,
    [id, teamId],
  );
  if (!rows[0]) {
    const found = await db.query<MappedRow>('SELECT team_id FROM webhook_events WHERE id = $1', [id]);
    const row = found.rows[0];
    if (!row || (teamId !== null && row.team_id !== teamId)) throw notFound('webhook delivery', id);
    throw new AppError(
      409,
      'delivery_pending',
      `The webhook delivery ${id} is still being sent: redeliver it once it is delivered or failed`,
    );
  }
  await db.query('SELECT pg_notify($1, $2)', [WEBHOOKS_CHANNEL, id]);
  return toDelivery(rows[0]);
}
