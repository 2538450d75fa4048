/**
 * One request, one answer, and one provider call at a time (issue 11): a keyed retry of a create
 * whose rollback is still pending gets the failure its first attempt got, then a fresh attempt
 * once the rollback is done, never 409 for the name its own first attempt holds; a refusal caused
 * by the store of a same-key request that was then rolled back is not the answer; and a DELETE of
 * a store whose delete is under way on a live node waits for that delete instead of calling the
 * provider a second time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PrivateRedis } from '../chaos/redis-server.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { errorOf, eventually, startServer, type TestServer, addTestCard } from './helpers.ts';
import { freePort, startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

const post = (server: TestServer, body: Record<string, unknown>, key: string) =>
  server.request('/v1/storage/stores/integration/direct', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });

describe('a keyed retry of a create that failed during a Redis outage', () => {
  let redis: PrivateRedis;
  let server: TestServer;
  let icfg: string;
  const body = () => ({
    name: 'retried-in-outage',
    integrationConfigurationId: icfg,
    integrationProductIdOrSlug: 'redis',
    billingPlanId: 'redis_pro',
  });

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

  test("gets the first attempt's failure while its rollback is pending, then a fresh attempt that succeeds", async () => {
    const db = server.runtime.db;
    await redis.stop();
    const first = await errorOf(await post(server, body(), 'outage-key'));
    assert.deepEqual([first.status, first.code], [503, 'provider_unavailable'], first.message);
    // The undo could not run: the store stays, being rolled back, holding its name and its key;
    // its billing is released at once (the request failed).
    const { rows: kept } = await db.query<{ id: string; status: string; rolling_back: boolean }>(
      "SELECT id, status, rolling_back FROM stores WHERE name = 'retried-in-outage'",
    );
    assert.deepEqual(
      kept.map((row) => [row.status, row.rolling_back]),
      [['deleting', true]],
    );
    const firstId = kept[0]!.id;
    const { rows: auths } = await db.query<{ state: string }>('SELECT state FROM billing_authorizations WHERE store_id = $1', [firstId]);
    assert.deepEqual(
      auths.map((row) => row.state),
      ['released'],
    );
    assert.equal((await db.query('SELECT 1 FROM idempotency_keys WHERE store_id = $1', [firstId])).rows.length, 1, 'the key stays with it');

    // Retried while Redis is still down: the first attempt's answer, not 409 store_name_taken.
    for (let i = 0; i < 3; i++) {
      const again = await errorOf(await post(server, body(), 'outage-key'));
      assert.deepEqual([again.status, again.code], [first.status, first.code], again.message);
    }

    // Redis back: a retry finishes the rollback itself (no waiting for the sweep's backoff) and
    // makes the store afresh, under the same name.
    await redis.start();
    const answers: number[] = [];
    let created: { id: string; name: string; status: string } | undefined;
    await eventually(
      'a retry with the key succeeding',
      async () => {
        const response = await post(server, body(), 'outage-key');
        answers.push(response.status);
        if (response.status !== 200) return false;
        created = ((await response.json()) as { store: { id: string; name: string; status: string } }).store;
        return true;
      },
      60_000,
    );
    assert.ok(
      answers.slice(0, -1).every((status) => status === 503),
      `while Redis was reconnecting, 503s only (never 409 store_name_taken): ${answers}`,
    );
    assert.notEqual(created!.id, firstId);
    assert.deepEqual([created!.name, created!.status], ['retried-in-outage', 'available']);
    const { rows } = await db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'retried-in-outage'");
    assert.deepEqual(
      rows.map((row) => row.id),
      [created!.id],
      'the first attempt is gone',
    );
    const undone = await db.query("SELECT 1 FROM audit_events WHERE action = 'store.rolled_back' AND target_id = $1", [firstId]);
    assert.equal(undone.rows.length, 1);
    // From now on the key's answer is that store.
    const replay = await post(server, body(), 'outage-key');
    assert.equal(((await replay.json()) as { store: { id: string } }).store.id, created!.id);
    assert.equal((await server.request(`/v1/storage/stores/integration/${created!.id}`, { method: 'DELETE' })).status, 200);
  });
});

describe('one key on a partner server, and deletes under way', () => {
  let setup: StorehouseWithPartner;

  before(async () => {
    setup = await startStorehouseWithPartner();
  });
  after(() => setup?.close());

  const body = (name: string) => ({
    name,
    integrationConfigurationId: setup.installationId,
    integrationProductIdOrSlug: 'postgres',
    metadata: { connectionLimit: 5 },
  });

  test('a refusal caused by a same-key request rolled back meanwhile is not the answer: the attempt is made again', async () => {
    const { server, partner } = setup;
    const provisions = () => setup.partnerCalls('POST', `/v1/installations/${setup.installationId}/resources`).length;
    // Request A looks at the key (free) and is held on its way to its own checks, by a pause put
    // around the real discovery: it only delays, the answer is discovery's own.
    const discovery = server.runtime.discovery;
    const real = discovery.getConfiguration;
    let entered!: () => void;
    let release!: () => void;
    const inGate = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    let armed = true;
    discovery.getConfiguration = async function (this: typeof discovery, ...args: Parameters<typeof real>) {
      if (armed) {
        armed = false;
        entered();
        await gate;
      }
      return real.apply(this, args);
    };
    try {
      const a = post(server, body('contended'), 'contended-key');
      await inGate;
      // Request B, same key and body, records its store and key; the partner refuses its
      // provision after a while, and B's store is rolled back, its key given back.
      replaceFaults(partner.faults, { provision: { delayMs: 5_000, status: 422, times: 1 } });
      const before = provisions();
      const b = post(server, body('contended'), 'contended-key');
      await eventually('B reaching the partner', async () => provisions() > before, 30_000);
      // A goes on while B's store holds the name.
      release();
      const [answerA, answerB] = await Promise.all([a, b]);
      const failureB = await errorOf(answerB);
      assert.deepEqual([failureB.status, failureB.code], [502, 'provider_refused'], failureB.message);
      // A's refusal (the name taken by B's store) belonged to no request once B was rolled back:
      // A made its attempt again, and this one the partner accepted.
      assert.equal(answerA.status, 200, await answerA.clone().text());
      const { store } = (await answerA.json()) as { store: { id: string; name: string } };
      assert.equal(store.name, 'contended');
      const replay = await post(server, body('contended'), 'contended-key');
      assert.equal(((await replay.json()) as { store: { id: string } }).store.id, store.id);
      assert.equal((await server.request(`/v1/storage/stores/integration/${store.id}`, { method: 'DELETE' })).status, 200);
    } finally {
      discovery.getConfiguration = real;
      release();
    }
  });

  test('a DELETE while another delete of the store is under way waits for it: one partner call, both 200', async () => {
    const { server, partner } = setup;
    const store = await setup.createStore('deleted-twice');
    const id = (await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'deleted-twice'")).rows[0]!.id;
    const deletes = () => setup.partnerCalls('DELETE', `/resources/${store.externalResourceId}`).length;
    replaceFaults(partner.faults, { delete: { delayMs: 3_000, times: 1 } });
    const first = server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
    await eventually('the first delete reaching the partner', async () => deletes() === 1, 30_000);
    const second = server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
    const [one, two] = await Promise.all([first, second]);
    assert.deepEqual([one.status, two.status], [200, 200], `${await one.clone().text()} ${await two.clone().text()}`);
    assert.equal(deletes(), 1, 'the provider was called once');
    assert.equal((await server.runtime.db.query('SELECT 1 FROM stores WHERE id = $1', [id])).rows.length, 0);
  });

  test('a DELETE takes over a delete whose node died (its lease is gone)', async () => {
    const { server } = setup;
    const store = await setup.createStore('orphaned-delete');
    const id = (await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'orphaned-delete'")).rows[0]!.id;
    // What a node leaves when it dies mid-delete: the store deleting as its own, and no lease.
    await server.runtime.db.query("UPDATE stores SET status = 'deleting', owner_node = 'node_gone' WHERE id = $1", [id]);
    const deleted = await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 200, await deleted.clone().text());
    assert.equal(setup.partnerCalls('DELETE', `/resources/${store.externalResourceId}`).length, 1);
    assert.equal((await server.runtime.db.query('SELECT 1 FROM stores WHERE id = $1', [id])).rows.length, 0);
  });
});
