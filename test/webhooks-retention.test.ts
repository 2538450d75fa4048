/**
 * The webhook outbox does not grow for ever: a delivered event (with its attempts) is deleted by
 * the dispatcher's housekeeping STOREHOUSE_WEBHOOK_RETENTION_MS after its delivery, while a
 * failed one stays, visible and redeliverable. Against the reference partner over real HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { eventually, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import { addTeamMember, CLIENT_SECRET, FAST_RETRIES, received, webhookIntegration } from './webhooks-fixtures.ts';

const RETENTION_MS = 1_500;

describe('webhook retention', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;

  const rowsOf = async (id: string) => {
    const events = await server.runtime.db.query<{ status: string }>('SELECT status FROM webhook_events WHERE id = $1', [id]);
    const attempts = await server.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_attempts WHERE event_id = $1', [
      id,
    ]);
    return { status: events.rows[0]?.status, attempts: attempts.rows[0]!.n };
  };

  before(async () => {
    setup = await startStorehouseWithPartner({
      integration: webhookIntegration,
      partnerClientSecret: CLIENT_SECRET,
      env: {
        ...FAST_RETRIES,
        STOREHOUSE_WEBHOOK_TIMEOUT_MS: '5000',
        STOREHOUSE_WEBHOOK_RETRY_FOR_MS: '1000',
        STOREHOUSE_WEBHOOK_RETENTION_MS: String(RETENTION_MS),
      },
    });
    server = setup.server;
  });
  after(() => setup?.close());

  test('a delivered event is pruned with its attempts once its retention is over; a failed one stays', async () => {
    // Refused until its retry window (1 s) is spent: failed.
    setup.partner.faults.webhook = { status: 500, times: 1_000 };
    await addTeamMember(server, 'refused@example.com');
    let failedId: string | undefined;
    await eventually('the refused event failed', async () => {
      const { rows } = await server.runtime.db.query<{ id: string }>(
        "SELECT id FROM webhook_events WHERE status = 'failed' AND body LIKE '%refused@example.com%'",
      );
      failedId = rows[0]?.id;
      return failedId !== undefined;
    });
    replaceFaults(setup.partner.faults, {});

    await addTeamMember(server, 'kept-a-while@example.com');
    const event = await received(setup.partner.url, 'the delivered event', (e) => e.payload.userEmail === 'kept-a-while@example.com');
    await eventually('its delivery recorded', async () => (await rowsOf(event.id)).status === 'delivered');
    assert.equal((await rowsOf(event.id)).attempts, 1);
    const deliveredAt = Date.now();
    await eventually('the delivered event pruned', async () => (await rowsOf(event.id)).status === undefined, 30_000);
    assert.ok(Date.now() - deliveredAt >= RETENTION_MS - 200, 'not before its retention was over');
    assert.deepEqual(await rowsOf(event.id), { status: undefined, attempts: 0 });
    const shown = await server.request(`/_storehouse/webhooks/deliveries/${event.id}`);
    assert.equal(shown.status, 404);

    // The failed one is older than the delivered one was, and is still there, with its attempts.
    const failed = await rowsOf(failedId!);
    assert.equal(failed.status, 'failed');
    assert.ok(failed.attempts >= 1);
    const again = await server.request(`/_storehouse/webhooks/deliveries/${failedId}/redeliver`, { method: 'POST' });
    assert.equal(again.status, 200, await again.clone().text());
  });
});
