/**
 * Work a dead node left behind is taken over as soon as its node's lease runs out: by a keyed
 * retry of the same request, or by any node's sweep, long before the work is old enough to be
 * taken for interrupted by its age. The stale age is set far beyond what these tests wait, so only
 * the lease can make them pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, eventually, startServer, type TestServer } from './helpers.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

for (const backend of BACKENDS) {
  describe(`node leases (${backend})`, { skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set' }, () => {
    let server: TestServer;
    let icfg: string;
    const body = (name: string) => ({ name, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'redis' });
    const db = () => server.runtime.db;

    before(async () => {
      // A stale age of 20 minutes: nothing here may wait for it.
      server = await startServer(backend, {
        env: { STOREHOUSE_REDIS_ADMIN_URL: REDIS_URL!, STOREHOUSE_PROVISION_TIMEOUT_MS: '600000', STOREHOUSE_LEASE_MS: '1500' },
      });
      icfg = (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    });
    after(async () => {
      const { rows } = await db().query<{ id: string }>("SELECT id FROM stores WHERE status <> 'deleting'");
      for (const { id } of rows) await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
      await server.close();
    });

    const post = (name: string, key: string) =>
      server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body(name)),
      });

    /**
     * What a node leaves when it dies between recording a create and recording its provider's
     * answer: the store initializing as that node's, its key taken and unanswered, and the resource
     * made. Made by a real create, then put back to that moment; the node's lease runs out
     * `leaseLeftMs` from now.
     */
    async function createInterruptedBy(node: string, leaseLeftMs: number, name: string, key: string) {
      const created = await post(name, key);
      assert.equal(created.status, 200, await created.clone().text());
      const { id } = ((await created.json()) as { store: { id: string } }).store;
      await db().query(
        `INSERT INTO node_leases (node_id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
         ON CONFLICT (node_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
        [node, leaseLeftMs / 1000],
      );
      const { rows } = await db().query<{ resource: string }>(
        `UPDATE stores SET status = 'initializing', external_resource_id = NULL, external_resource_status = NULL, secrets = NULL,
                owner_node = $2, updated_at = now()
          WHERE id = $1 RETURNING (SELECT id FROM provider_resources WHERE provision_key = stores.provision_key) AS resource`,
        [id, node],
      );
      await db().query('UPDATE idempotency_keys SET response = NULL WHERE store_id = $1', [id]);
      return { id, resource: rows[0]!.resource };
    }

    test('a keyed retry of a create whose node died undoes that attempt and answers at once', async () => {
      const { id, resource } = await createInterruptedBy('node_dead1', -1000, 'retried-db', 'retry-key');
      const retried = await post('retried-db', 'retry-key');
      assert.equal(retried.status, 200, await retried.clone().text());
      const { store } = (await retried.json()) as { store: { id: string; name: string; status: string } };
      assert.notEqual(store.id, id, 'a new store, made by the retry');
      assert.deepEqual([store.name, store.status], ['retried-db', 'available']);
      // The dead attempt's store and resource are gone, undone once, by the system.
      assert.equal((await db().query('SELECT 1 FROM stores WHERE id = $1', [id])).rows.length, 0);
      assert.equal(
        (await db().query<{ state: string }>('SELECT state FROM provider_resources WHERE id = $1', [resource])).rows[0]!.state,
        'deleted',
      );
      const undone = await db().query("SELECT actor_id FROM audit_events WHERE action = 'store.rolled_back' AND target_id = $1", [id]);
      assert.deepEqual(undone.rows, [{ actor_id: null }]);
      // The retry's answer is the key's answer from now on.
      const again = await post('retried-db', 'retry-key');
      assert.equal(((await again.json()) as { store: { id: string } }).store.id, store.id);
    });

    test("the sweep takes over a dead node's create once its lease runs out", async () => {
      // The lease runs out in 2 s; the sweep must notice then, though the store is fresh.
      const { id, resource } = await createInterruptedBy('node_dead2', 2000, 'swept-db', 'swept-key');
      await eventually(
        "the dead node's create is undone",
        async () => (await db().query('SELECT 1 FROM stores WHERE id = $1', [id])).rows.length === 0,
        60_000,
      );
      assert.equal(
        (await db().query<{ state: string }>('SELECT state FROM provider_resources WHERE id = $1', [resource])).rows[0]!.state,
        'deleted',
      );
      assert.equal((await db().query("SELECT 1 FROM idempotency_keys WHERE key = 'swept-key'")).rows.length, 0, 'its key is given back');
    });

    test("a live node's create is left alone while it renews its lease", async () => {
      const { id } = await createInterruptedBy(server.runtime.stores.nodeId, 60_000, 'alive-db', 'alive-key');
      assert.equal(await server.runtime.stores.recoverInterrupted(), 0);
      assert.equal((await db().query('SELECT status FROM stores WHERE id = $1', [id])).rows[0]?.status, 'initializing');
      // This node is the owner (and alive): give the work back as its create would on failure.
      await db().query("UPDATE stores SET owner_node = 'node_dead3' WHERE id = $1", [id]);
      assert.equal(await server.runtime.stores.recoverInterrupted(), 1);
    });
  });
}
