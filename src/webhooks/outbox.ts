/**
 * The webhook outbox: an event a partner is told about is written in the same transaction as the
 * change that causes it, so it is sent if and only if the change committed (delivery.ts sends it,
 * from whichever node claims it). The envelope is Vercel's, `{id, type, createdAt, payload}`,
 * and is kept as the exact bytes sent: every attempt, and a redelivery, sends the same body under
 * the same id, so a receiver can deduplicate.
 */
import type { Queryable } from '../db/database.ts';
import { newId } from '../ids.ts';

/** The channel a recorded event is announced on at its commit, so the dispatchers wake at once. */
export const WEBHOOKS_CHANNEL = 'storehouse_webhooks';

export interface WebhookEventInput {
  integrationId: string;
  /** Vercel's event type: `integration-configuration.removed`, `marketplace.invoice.paid`, ... */
  type: string;
  payload: Record<string, unknown>;
  /**
   * The team and installation the event is about, for who may see it: by default the payload's
   * `team.id` and `installationId` (or `configuration.id`), and the installation's team.
   */
  teamId?: string | undefined;
  installationId?: string | undefined;
}

/** The envelope Vercel sends, as Storehouse sends it. */
export interface WebhookEnvelope {
  id: string;
  type: string;
  createdAt: number;
  payload: Record<string, unknown>;
}

const stringAt = (value: unknown, ...path: string[]): string | undefined => {
  let at = value;
  for (const key of path) at = at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined;
  return typeof at === 'string' ? at : undefined;
};

/**
 * Records `event` in `tx`, the transaction of the change it reports, and returns its id (the
 * envelope's `id`); null when the integration has no webhook URL (the catalog's `webhookUrl`):
 * nothing is recorded then, since nobody could ever receive it. Dispatchers are woken when `tx`
 * commits; a rollback takes the event with it.
 */
export async function recordWebhookEvent(tx: Queryable, event: WebhookEventInput): Promise<string | null> {
  const { rows } = await tx.query<{ webhook_url: string | null }>('SELECT webhook_url FROM integrations WHERE id = $1', [
    event.integrationId,
  ]);
  if (!rows[0]?.webhook_url) return null;
  const installationId =
    event.installationId ?? stringAt(event.payload, 'installationId') ?? stringAt(event.payload, 'configuration', 'id');
  let teamId = event.teamId ?? stringAt(event.payload, 'team', 'id');
  if (teamId === undefined && installationId !== undefined) {
    const team = await tx.query<{ team_id: string }>('SELECT team_id FROM installations WHERE id = $1', [installationId]);
    teamId = team.rows[0]?.team_id;
  }
  const id = newId('evt');
  const createdAt = Date.now();
  const envelope: WebhookEnvelope = { id, type: event.type, createdAt, payload: event.payload };
  await tx.query(
    `INSERT INTO webhook_events (id, integration_id, team_id, installation_id, type, body, created_at, retry_from, next_attempt_at)
     VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0), now(), now())`,
    [id, event.integrationId, teamId ?? null, installationId ?? null, event.type, JSON.stringify(envelope), createdAt],
  );
  // Delivered at commit, to every node's dispatcher (this one's too); polling covers a missed one.
  await tx.query('SELECT pg_notify($1, $2)', [WEBHOOKS_CHANNEL, id]);
  return id;
}
