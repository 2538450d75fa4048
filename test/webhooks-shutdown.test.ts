/**
 * A node shut down while a webhook is being sent (its receiver holding the request open): the
 * send is cut off, not counted as the receiver's failure, and the event is due again at once,
 * unclaimed, so the next node sends it under the same id without waiting out a claim. Two
 * Storehouse nodes, one after the other, on one real PostgreSQL; the reference partner receives.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { eventually, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { addTeamMember, FAST_RETRIES, inboxOf, prepareWebhookPartner, received, type WebhookPartner } from './webhooks-fixtures.ts';

describe('a node shut down mid-send', { skip: POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_DATABASE_URL' }, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let first: TestServer | undefined;
  let second: TestServer | undefined;
  let receiver: WebhookPartner | undefined;
  let partner: PartnerServer;
  let catalogFile: string;

  before(async () => {
    receiver = await prepareWebhookPartner();
    catalogFile = receiver.catalogFile;
    database = await freshPostgresDatabase();
    partner = await receiver.start('http://127.0.0.1:1');
  });
  after(async () => {
    await receiver?.close();
    await second?.close();
    await first?.close();
    await database?.drop();
  });

  test('the cut-off send is due again at once, and the next node delivers it', { timeout: 120_000 }, async () => {
    // A claim would hold for the timeout and 5 s more: far longer than the test waits.
    const env = { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_TIMEOUT_MS: '120000', STOREHOUSE_SECRET_KEY: randomBytes(32).toString('hex') };
    first = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env });
    const node = first;
    // The receiver holds the first request open, longer than the test.
    partner.faults.webhook = { delayMs: 600_000, times: 1 };
    await addTeamMember(node, 'cut-off@example.com');
    await eventually('the send under way', async () => (await inboxOf(partner.url)).arrivals === 1);
    const { rows } = await node.runtime.db.query<{ id: string }>("SELECT id FROM webhook_events WHERE body LIKE '%cut-off@example.com%'");
    const id = rows[0]!.id;
    await node.close();
    first = undefined;

    // As the first node left it, read before another node starts.
    const sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    const state = await sql
      .query<{ status: string; claimed_by: string | null; due: boolean; attempts: number }>(
        `SELECT status, claimed_by, next_attempt_at <= now() AS due,
                (SELECT count(*)::int FROM webhook_attempts WHERE event_id = e.id) AS attempts
           FROM webhook_events e WHERE id = $1`,
        [id],
      )
      .finally(() => sql.end());
    assert.deepEqual(state.rows[0], { status: 'pending', claimed_by: null, due: true, attempts: 0 }, 'due again, unclaimed, no attempt');

    replaceFaults(partner.faults, {});
    second = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env, bootstrapToken: node.token });
    const event = await received(partner.url, 'delivered by the next node', (e) => e.id === id);
    assert.equal(event.id, id);
  });
});
