/**
 * Redis stopped while stores are being created, then started again: the creates that failed are
 * undone once Redis is back (no store left in `error` holding its name and quota, no ACL user
 * orphaned), the store made before the outage keeps working, and a bad plan is a 400 whatever
 * Redis's state.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { PrivateRedis } from '../chaos/redis-server.ts';
import { errorOf, eventually, startServer, type TestServer, addTestCard } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';

describe('a Redis outage during creates', () => {
  let redis: PrivateRedis;
  let server: TestServer;
  let icfg: string;
  const create = (name: string, billingPlanId = 'redis_pro') =>
    server.request('/v1/storage/stores/integration/direct', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'redis', billingPlanId }),
    });
  const aclUsers = async () => {
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      return ((await admin.call('ACL', 'USERS')) as string[]).filter((user) => user !== 'default').sort();
    } finally {
      admin.disconnect();
    }
  };

  before(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
    server = await startServer('embedded', { env: { STOREHOUSE_REDIS_ADMIN_URL: redis.url, STOREHOUSE_PROVISION_TIMEOUT_MS: '5000' } });
    icfg = (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    await addTestCard(server);
  });
  after(async () => {
    await server?.close();
    await redis?.stop();
  });

  test('failed creates are undone when Redis is back, and nothing is orphaned', async () => {
    const kept = await create('before-outage');
    assert.equal(kept.status, 200, await kept.clone().text());
    const keptId = ((await kept.json()) as { store: { id: string } }).store.id;

    await redis.stop();
    // A bad plan is the request's fault, whatever the provider's state.
    const badPlan = await errorOf(await create('bad-plan', 'no_such_plan'));
    assert.deepEqual([badPlan.status, badPlan.code], [400, 'invalid_billing_plan']);
    const failed = await Promise.all(Array.from({ length: 5 }, (_, i) => create(`during-outage-${i}`)));
    for (const response of failed) {
      const failure = await errorOf(response);
      assert.equal(failure.status, 503, failure.message);
    }

    await redis.start();
    await eventually(
      'the failed creates are undone',
      async () => (await server.runtime.db.query("SELECT 1 FROM stores WHERE name LIKE 'during-outage-%'")).rows.length === 0,
      120_000,
    );
    const { rows } = await server.runtime.db.query<{ id: string; status: string }>('SELECT id, status FROM stores');
    assert.deepEqual(rows, [{ id: keptId, status: 'available' }]);
    // Their authorizations were released when they failed.
    const held = await server.runtime.db.query("SELECT 1 FROM billing_authorizations WHERE state = 'authorized' AND store_id <> $1", [
      keptId,
    ]);
    assert.equal(held.rows.length, 0);
    // Their names and quota are free again: the same create now succeeds.
    const again = await create('during-outage-0');
    assert.equal(again.status, 200, await again.clone().text());
    const againId = ((await again.json()) as { store: { id: string } }).store.id;
    // Redis came back empty; the provider set its live stores' users again, and only theirs.
    await eventually('only live stores have ACL users', async () => (await aclUsers()).length === 2, 30_000);
    const live = await server.runtime.db.query<{ username: string }>(
      "SELECT details->>'username' AS username FROM provider_resources WHERE provider = 'redis' AND state = 'ready' ORDER BY 1",
    );
    assert.deepEqual(await aclUsers(), live.rows.map((row) => row.username).sort());
    assert.equal(live.rows.length, 2);
    for (const id of [keptId, againId]) {
      assert.equal((await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' })).status, 200);
    }
  });
});
