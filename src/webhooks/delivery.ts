/**
 * Sends the outbox's events (outbox.ts) to their integrations' webhook URLs. Every node runs a
 * dispatcher; an event is sent by one of them at a time:
 *
 * - A node claims due events with `FOR UPDATE SKIP LOCKED` and pushes their `next_attempt_at`
 *   past the attempt (the claim), recording itself in `claimed_by`. Another node skips them until
 *   the claim runs out, or at once when the claiming node's lease (node-lease.ts) is gone: a node
 *   killed mid-send leaves its events to the next node (or to itself restarted) soon after.
 * - The body is the recorded envelope, byte for byte, signed as Vercel signs (`x-vercel-signature`,
 *   hex HMAC-SHA1 keyed with the integration's client secret), sent through outbound-http.ts.
 * - A 2xx delivers it. A timeout, a network error or any other answer is retried with
 *   exponential backoff and jitter until `retryForMs` after the event was recorded (or asked to
 *   be redelivered), then the event is `failed`: kept, visible, and redeliverable, never dropped.
 * - Each attempt is recorded (status, error, duration). The result of an attempt only lands while
 *   the event is still pending and still this attempt's: a late answer of a node whose claim was
 *   taken over cannot overwrite what the next attempt found, except that a 2xx always delivers.
 *
 * Dispatchers wake on the notification a recorded event sends at its commit (WEBHOOKS_CHANNEL)
 * and also look every `pollMs`, so a missed notification only delays an event.
 *
 * Housekeeping: a delivered event (with its attempts) is deleted `retentionMs` after its delivery,
 * so the outbox does not grow for ever; failed and pending ones stay until delivered.
 */
import { createHmac } from 'node:crypto';
import type { Database, Listener } from '../db/database.ts';
import { ownerGone, type NodeLease } from '../db/node-lease.ts';
import { msUntil, Schedule, untilDue } from '../stores/schedule.ts';
import { excerpt, OutboundFailure, send } from '../outbound/outbound-http.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { WebhookConfig } from '../config.ts';
import { DispatcherConnection } from './connection.ts';
import { WEBHOOKS_CHANNEL } from './outbox.ts';

/** The most bytes of a receiver's answer read: only its status matters. */
const ANSWER_BYTES = 64 * 1024;

/** The most delivered events one pruning statement deletes: a backlog goes in short statements, back to back. */
const PRUNE_BATCH = 500;

export interface DispatcherLogger {
  warn(details: object, message: string): void;
  debug(details: object, message: string): void;
}

/** Vercel's signature of a webhook body: hex HMAC-SHA1 keyed with the client secret. */
export const signWebhook = (body: string, clientSecret: string) => createHmac('sha1', clientSecret).update(body).digest('hex');

/**
 * How long to wait before attempt `attempt + 1`, after `attempt` failed: the base doubled per
 * attempt up to the cap, half of it fixed and half random ("equal jitter"), so retries of many
 * events after one outage spread out, and none comes back at once.
 */
export function backoffMs(config: Pick<WebhookConfig, 'backoffMs' | 'backoffMaxMs'>, attempt: number): number {
  const ceiling = Math.min(config.backoffMaxMs, config.backoffMs * 2 ** Math.min(attempt - 1, 40));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

type Claimed = {
  id: string;
  body: string;
  attempt: number;
  webhook_url: string | null;
  client_secret: string | null;
  integration_id: string;
  type: string;
};

/** What an attempt found, as its result is written. */
interface AttemptResult {
  id: string;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  status: number | null;
  error: string | null;
  delivered: boolean;
  /** No URL or secret to send it with any more: failed at once. */
  undeliverable: boolean;
  /** Until the next attempt, if it is not delivered. */
  delayMs: number;
}

interface Outcome {
  status: number | null;
  error: string | null;
  delivered: boolean;
}

export class WebhookDispatcher {
  private readonly schedule: Schedule;
  /** Deletes delivered events past their retention. */
  private readonly pruning: Schedule;
  private readonly inflight = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private listener: Listener | undefined;
  /** Attempts' results waiting to be written, and the write under way. */
  private readonly results: Array<{ result: AttemptResult; resolve: () => void; reject: (error: Error) => void }> = [];
  private writing: Promise<void> | undefined;
  /** Its own connection, for everything but listening (connection.ts says why). */
  private readonly sql: DispatcherConnection;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly lease: NodeLease,
    private readonly config: WebhookConfig,
    private readonly logger?: DispatcherLogger,
  ) {
    this.sql = new DispatcherConnection(() => db.dedicatedClient());
    this.schedule = new Schedule(
      () => this.dispatch(),
      config.pollMs,
      (error) => logger?.warn({ err: error }, 'webhook delivery failed; retrying later'),
    );
    // Runs when the oldest delivered event's retention ends, and at least this often (new ones).
    this.pruning = new Schedule(
      () => this.prune(),
      Math.min(config.retentionMs, 600_000),
      (error) => logger?.warn({ err: error }, 'cannot prune delivered webhook events; retrying later'),
    );
  }

  /** Starts listening and sending; the returned function stops both and waits for the sends under way. */
  async start(): Promise<() => Promise<void>> {
    this.listener = await this.db.listen(WEBHOOKS_CHANNEL, {
      message: () => this.schedule.wake(),
      lost: () => {}, // the poll goes on meanwhile
      ready: () => this.schedule.wake(),
    });
    this.schedule.start(0);
    this.pruning.start(0);
    return () => this.stop();
  }

  /** Looks for due events now (a redelivery asked on this node, a test). */
  wake(): void {
    this.schedule.wake();
  }

  private async stop(): Promise<void> {
    await this.listener?.stop().catch(() => {});
    await this.schedule.stop();
    await this.pruning.stop();
    // Sends under way are cut off: their events go back to being due at once, for whoever is next.
    this.stopping.abort();
    await Promise.allSettled([...this.inflight]);
    await this.sql.close();
  }

  /** How long a claim holds: the attempt's timeout, and time to record its result. */
  private get claimMs(): number {
    return this.config.timeoutMs + 5_000;
  }

  /** Claims what is due, up to the free sending slots, and starts sending it; resolves to when to look again. */
  private async dispatch(): Promise<number | undefined> {
    if (this.schedule.isStopped) return undefined;
    const room = this.config.concurrency - this.inflight.size;
    // Claims are batched: with sends under way, a claim waits for a quarter of the slots to be
    // free (each send's end wakes the schedule), so a busy node pays one claim for several events.
    if (this.inflight.size > 0 && room < Math.ceil(this.config.concurrency / 4)) return undefined;
    const { rows: claimed } = await this.sql.query<Claimed>(
      // Two index scans, each reading only what it claims: the due events (webhook_events_due_idx,
      // up to now), and those whose claiming node is gone (webhook_events_claimed_idx, the few in
      // flight). One OR in a single scan read every pending event, due or not, on every look: a
      // receiver down for a day made each claim read its whole backlog.
      `WITH due AS (
         SELECT id FROM webhook_events
          WHERE status = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED),
       orphaned AS (
         SELECT id FROM webhook_events
          WHERE status = 'pending' AND claimed_by IS NOT NULL AND next_attempt_at > now() AND ${ownerGone('claimed_by')}
          LIMIT $1 FOR UPDATE SKIP LOCKED),
       picked AS (SELECT id FROM due UNION ALL SELECT id FROM orphaned LIMIT $1)
       UPDATE webhook_events e SET attempts = e.attempts + 1, claimed_by = $2, next_attempt_at = now() + make_interval(secs => $3)
         FROM picked WHERE e.id = picked.id
       RETURNING e.id, e.body, e.attempts AS attempt, e.integration_id, e.type,
                 (SELECT i.webhook_url FROM integrations i WHERE i.id = e.integration_id) AS webhook_url,
                 (SELECT i.client_secret FROM integrations i WHERE i.id = e.integration_id) AS client_secret`,
      [room, this.lease.nodeId, this.claimMs / 1000],
    );
    for (const event of claimed) {
      const sending: Promise<void> = this.attempt(event)
        .catch((error: Error) => this.logger?.warn({ err: error, event: event.id }, 'cannot record a webhook attempt'))
        .finally(() => {
          this.inflight.delete(sending);
          this.schedule.wake();
        });
      this.inflight.add(sending);
    }
    // Something was claimed: each send's end wakes the schedule, which looks again then.
    if (claimed.length > 0) return undefined;
    const { rows } = await this.sql.query<{ ms: number | null }>(
      `SELECT ${msUntil('min(next_attempt_at)')} AS ms FROM webhook_events WHERE status = 'pending'`,
    );
    return untilDue(rows);
  }

  /** Deletes delivered events past their retention (their attempts cascade); resolves to when the next one's ends. */
  private async prune(): Promise<number | undefined> {
    if (this.pruning.isStopped) return undefined;
    const retention = this.config.retentionMs / 1000;
    // Several nodes may prune at once: each skips the rows another is deleting.
    const { rowCount } = await this.sql.query(
      `DELETE FROM webhook_events WHERE id IN (
         SELECT id FROM webhook_events WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => $1)
          ORDER BY delivered_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [retention, PRUNE_BATCH],
    );
    if ((rowCount ?? 0) >= PRUNE_BATCH) return 0;
    const { rows } = await this.sql.query<{ ms: number | null }>(
      `SELECT ${msUntil('min(delivered_at) + make_interval(secs => $1)')} AS ms FROM webhook_events WHERE status = 'delivered'`,
      [retention],
    );
    // One past its time already is another node's to delete right now (locked): not a spin meanwhile.
    const ms = untilDue(rows);
    return ms === undefined ? undefined : Math.max(ms, 1_000);
  }

  private async attempt(event: Claimed): Promise<void> {
    const startedAt = new Date();
    const outcome = await this.post(event);
    const durationMs = Date.now() - startedAt.getTime();
    if (this.stopping.signal.aborted && !outcome.delivered) {
      // Cut off by this node's shutdown: not the receiver's failure, and due again at once.
      await this.sql.query(
        `UPDATE webhook_events SET next_attempt_at = now(), claimed_by = NULL
          WHERE id = $1 AND attempts = $2 AND claimed_by = $3 AND status = 'pending'`,
        [event.id, event.attempt, this.lease.nodeId],
      );
      return;
    }
    await this.recordResult({
      id: event.id,
      attempt: event.attempt,
      startedAt,
      durationMs,
      status: outcome.status,
      error: outcome.error,
      delivered: outcome.delivered,
      undeliverable: event.webhook_url === null || event.client_secret === null,
      delayMs: backoffMs(this.config, event.attempt),
    });
    if (!outcome.delivered) {
      this.logger?.debug({ event: event.id, type: event.type, attempt: event.attempt, status: outcome.status }, 'webhook not delivered');
    }
  }

  /**
   * Records an attempt's result; resolves once it is written. Results that come while a write is
   * under way are written together by the next one, so a busy node pays one statement for many.
   */
  private recordResult(result: AttemptResult): Promise<void> {
    return new Promise((resolve, reject) => {
      this.results.push({ result, resolve, reject });
      this.writeResults();
    });
  }

  private writeResults(): void {
    if (this.writing || this.results.length === 0) return;
    const batch = this.results.splice(0);
    const column = <K extends keyof AttemptResult>(key: K) => batch.map(({ result }) => result[key]);
    // One statement, so atomic without a transaction's round trips: each attempt is recorded, and
    // its result lands on its event. A 2xx delivers a pending event whoever claims it now; any other
    // result only while the claim is still this attempt's. Past the retry window (or never
    // deliverable: no URL or secret any more), it is failed.
    this.writing = this.sql
      .query(
        `WITH o AS (
           SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::int[], $5::int[], $6::text[], $7::bool[], $8::bool[], $9::float8[])
             AS o(id, attempt, started_at, duration_ms, status, error, delivered, undeliverable, delay_ms)),
         attempt AS (
           INSERT INTO webhook_attempts (event_id, number, node_id, started_at, duration_ms, status, error)
           SELECT id, attempt, $10, started_at, duration_ms, status, error FROM o ON CONFLICT DO NOTHING)
         UPDATE webhook_events e
            SET status = CASE WHEN o.delivered THEN 'delivered'
                              WHEN o.undeliverable OR e.retry_from + make_interval(secs => $11) < now() + make_interval(secs => o.delay_ms / 1000)
                                THEN 'failed'
                              ELSE 'pending' END,
                delivered_at = CASE WHEN o.delivered THEN now() END,
                next_attempt_at = CASE WHEN o.delivered THEN e.next_attempt_at ELSE now() + make_interval(secs => o.delay_ms / 1000) END,
                claimed_by = NULL, last_status = o.status, last_error = o.error
           FROM o
          WHERE e.id = o.id AND e.status = 'pending' AND (o.delivered OR (e.attempts = o.attempt AND e.claimed_by = $10))`,
        [
          column('id'),
          column('attempt'),
          column('startedAt'),
          column('durationMs'),
          column('status'),
          column('error'),
          column('delivered'),
          column('undeliverable'),
          column('delayMs'),
          this.lease.nodeId,
          this.config.retryForMs / 1000,
        ],
      )
      .then(
        () => {
          for (const { resolve } of batch) resolve();
        },
        (error: Error) => {
          for (const { reject } of batch) reject(error);
        },
      )
      .finally(() => {
        this.writing = undefined;
        this.writeResults();
      });
  }

  private async post(event: Claimed): Promise<Outcome> {
    if (event.webhook_url === null || event.client_secret === null) {
      return {
        status: null,
        error: `the integration ${event.integration_id} has no webhookUrl (or clientSecret) any more`,
        delivered: false,
      };
    }
    let secret: string;
    try {
      secret = this.box.open(event.client_secret, { table: 'integrations', id: event.integration_id, column: 'client_secret' });
    } catch (error) {
      return { status: null, error: (error as Error).message, delivered: false };
    }
    try {
      const answer = await send(
        event.webhook_url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-vercel-signature': signWebhook(event.body, secret) },
          body: event.body,
        },
        { timeoutMs: this.config.timeoutMs, maxBodyBytes: ANSWER_BYTES, signal: this.stopping.signal },
      );
      const delivered = answer.status >= 200 && answer.status < 300;
      return { status: answer.status, error: delivered ? null : `answered ${answer.status}: ${excerpt(answer.text)}`, delivered };
    } catch (error) {
      if (!(error instanceof OutboundFailure)) throw error;
      // A 2xx whose body is past the limit was still accepted.
      const delivered = error.kind === 'too_large' && error.status >= 200 && error.status < 300;
      return { status: error.status || null, error: delivered ? null : `${error.kind}: ${error.message}`, delivered };
    }
  }
}
