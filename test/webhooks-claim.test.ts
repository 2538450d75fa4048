/**
 * The dispatcher's look for due webhook events reads what is due, not the whole backlog: with
 * thousands of events pending but not due (a receiver down, their retries backed off), each look
 * (every STOREHOUSE_WEBHOOK_POLL_MS) reads a handful of rows. Measured on a real PostgreSQL by
 * its own counters of the table's scans and the rows they read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { prepareWebhookPartner, type WebhookPartner } from './webhooks-fixtures.ts';

const BACKLOG = 5_000;

describe('the claim of due webhook events', { skip: POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_DATABASE_URL' }, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let server: TestServer;
  let receiver: WebhookPartner | undefined;

  before(async () => {
    receiver = await prepareWebhookPartner(); // never started: nothing is delivered
    database = await freshPostgresDatabase();
    server = await startServer('postgres', {
      databaseUrl: database.url,
      catalogPath: receiver.catalogFile,
      env: { STOREHOUSE_WEBHOOK_POLL_MS: '50' },
    });
  });
  after(async () => {
    await server?.close();
    await database?.drop();
    await receiver?.close();
  });

  test('reads a handful of rows per look, not every pending event', { timeout: 120_000 }, async () => {
    const db = server.runtime.db;
    // A backlog retried later (as after a receiver's long outage): pending, due in an hour.
    await db.query(
      `INSERT INTO webhook_events (id, integration_id, type, body, next_attempt_at, attempts)
       SELECT 'evt_backlog_' || g, 'oac_partner', 'marketplace.member.changed', '{}', now() + interval '1 hour', 3
         FROM generate_series(1, $1) g`,
      [BACKLOG],
    );
    await db.query('ANALYZE webhook_events');
    const counters = async () => {
      const { rows } = await db.query<{ scans: number; read: number }>(
        `SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::float8 AS scans,
                (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::float8 AS read
           FROM pg_stat_user_tables WHERE relname = 'webhook_events'`,
      );
      return rows[0]!;
    };
    // From a first count the dispatcher's own statistics have reached (they arrive about every second).
    let start = await counters();
    await eventually('the dispatcher looked (its statistics arrived)', async () => (await counters()).scans > start.scans, 60_000);
    start = await counters();
    let now = start;
    await eventually(
      'forty more looks counted',
      async () => {
        now = await counters();
        return now.scans - start.scans >= 40;
      },
      60_000,
    );
    const perScan = (now.read - start.read) / (now.scans - start.scans);
    assert.ok(perScan < 50, `each scan read ${perScan.toFixed(0)} rows of a backlog of ${BACKLOG} not due`);
    // Nothing of the backlog was claimed meanwhile (none was due).
    const claimed = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM webhook_events WHERE attempts <> 3 OR claimed_by IS NOT NULL',
    );
    assert.equal(claimed.rows[0]!.n, 0);
  });
});
