/**
 * Creates racing each other: many at once with and without idempotency keys, within and against a
 * quota, on every backend. On PostgreSQL these are real concurrent transactions, so lock order and
 * retries of deadlocks and serialization failures are what is tested.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, eventually, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer, addTestCard } from './helpers.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

/** The statuses of `responses`; an unexpected one (neither 200 nor 403) is reported with its body. */
async function described(responses: Response[]): Promise<number[]> {
  const odd = responses.filter((r) => r.status !== 200 && r.status !== 403);
  if (odd.length > 0)
    assert.fail(`unexpected answers: ${(await Promise.all(odd.map(async (r) => `${r.status} ${await r.text()}`))).join('\n')}`);
  return responses.map((r) => r.status);
}

const firstConfiguration = async (server: TestServer) => (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;

for (const backend of BACKENDS) {
  describe(`concurrent creates (${backend})`, { skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set' }, () => {
    let server: TestServer;
    let icfg: string;
    const body = (name: string) => ({
      name,
      integrationConfigurationId: icfg,
      integrationProductIdOrSlug: 'redis',
      billingPlanId: 'redis_pro',
    });
    const create = (name: string, key?: string) =>
      server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key && { 'idempotency-key': key }) },
        body: JSON.stringify(body(name)),
      });
    const setQuota = (quota: number) => server.runtime.db.query('UPDATE teams SET store_quota = $1', [quota]);
    const count = async (sql: string) => (await server.runtime.db.query(sql)).rows.length;
    const deleteAll = async () => {
      const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM stores');
      for (const { id } of rows)
        assert.equal((await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' })).status, 200);
    };

    before(async () => {
      server = await startServer(backend, { env: { STOREHOUSE_REDIS_ADMIN_URL: REDIS_URL!, STOREHOUSE_RATE_LIMIT_STORE_CREATES: '0' } });
      icfg = await firstConfiguration(server);
      await addTestCard(server);
    });
    after(async () => {
      await deleteAll();
      await server.close();
    });

    for (const keyed of [false, true]) {
      const what = keyed ? '50 distinct keys' : 'no keys';
      test(`50 parallel creates with ${what} within the quota all succeed`, async () => {
        await deleteAll();
        await setQuota(100);
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, i) => create(`in-${keyed}-${i}`, keyed ? `in-key-${i}` : undefined)),
        );
        const statuses = await described(responses);
        assert.deepEqual(statuses, Array(50).fill(200), statuses.join(','));
        assert.equal(await count('SELECT 1 FROM stores'), 50);
        assert.equal(await count("SELECT 1 FROM provider_resources WHERE state = 'ready'"), 50);
      });

      test(`50 parallel creates with ${what} against a quota of 10 give exactly 10 stores, the rest 403`, async () => {
        await deleteAll();
        await setQuota(10);
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, i) => create(`over-${keyed}-${i}`, keyed ? `over-key-${i}` : undefined)),
        );
        const statuses = await described(responses);
        assert.equal(statuses.filter((s) => s === 200).length, 10, statuses.join(','));
        assert.equal(statuses.filter((s) => s === 403).length, 40, statuses.join(','));
        assert.equal(await count('SELECT 1 FROM stores'), 10);
        assert.equal(await count("SELECT 1 FROM provider_resources WHERE state = 'ready'"), 10);
        // The refused ones gave their keys back: only the 10 that made a store hold one.
        if (keyed) assert.equal(await count("SELECT 1 FROM idempotency_keys WHERE key LIKE 'over-key-%'"), 10);
      });
    }

    test('20 parallel requests with one idempotency key give one store and one answer', async () => {
      await deleteAll();
      await setQuota(100);
      const responses = await Promise.all(Array.from({ length: 20 }, () => create('idem-par', 'same-key')));
      const bodies = await Promise.all(responses.map((r) => r.text()));
      assert.deepEqual(
        responses.map((r) => r.status),
        Array(20).fill(200),
      );
      assert.ok(bodies.every((b) => b === bodies[0]));
      assert.equal(await count('SELECT 1 FROM stores'), 1);
      assert.equal(await count("SELECT 1 FROM provider_resources WHERE state = 'ready'"), 1);
    });
  });
}

describe('one key sent to two nodes at once', {
  skip: REDIS_URL && POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_REDIS_URL and STOREHOUSE_TEST_DATABASE_URL',
}, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: TestServer;
  let b: TestServer;
  const env = { STOREHOUSE_REDIS_ADMIN_URL: REDIS_URL!, STOREHOUSE_RATE_LIMIT_STORE_CREATES: '0' };
  before(async () => {
    database = await freshPostgresDatabase();
    a = await startServer('postgres', { databaseUrl: database.url, env });
    b = await startServer('postgres', { databaseUrl: database.url, env, bootstrapToken: a.token });
    await addTestCard(a);
  });
  after(async () => {
    const { rows } = await a.runtime.db.query<{ id: string }>('SELECT id FROM stores');
    for (const { id } of rows) await a.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
    await b?.close();
    await a?.close();
    await database?.drop();
  });

  test('60 pairs, each pair one key on two nodes: every pair gets one store, the same answer twice', async () => {
    const icfg = await firstConfiguration(a);
    const send = (server: TestServer, i: number) =>
      server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `pair-${i}` },
        body: JSON.stringify({
          name: `pair-${i}`,
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: 'redis',
          billingPlanId: 'redis_pro',
        }),
      });
    const pairs = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const answers = await Promise.all([send(a, i), send(b, i)]);
        return Promise.all(answers.map(async (r) => `${r.status} ${await r.text()}`));
      }),
    );
    const split = pairs.filter(([first, second]) => first !== second);
    assert.deepEqual(split, [], 'each pair answered alike');
    for (const [first] of pairs) assert.match(first!, /^200 /);
    assert.equal((await a.runtime.db.query('SELECT 1 FROM stores')).rows.length, 60);
  });
});

test('a create whose installation is removed between its check and its insert is a 404, not a 500', async () => {
  const server = await startServer('embedded');
  try {
    const configurations = (await (await server.request('/v1/integrations/configurations?view=account')).json()) as Array<{ id: string }>;
    const icfg = configurations[0]!.id;
    const locker = server.runtime.db.dedicatedClient();
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE stores IN ACCESS EXCLUSIVE MODE'); // holds the create at its first read of stores
      const pending = server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'fk-race', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
      });
      // Under a deadline: a create that never waits on the lock (it answered already) fails here, not hangs.
      await eventually('the create waiting on the locked stores table', async () => {
        const { rows } = await locker.query("SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'stores'::regclass AND NOT granted");
        return rows[0].n > 0;
      });
      await locker.query('DELETE FROM installations WHERE id = $1', [icfg]); // an uninstall meanwhile
      await locker.query('COMMIT');
      const answer = await pending;
      assert.equal(answer.status, 404, await answer.text());
    } finally {
      await locker.end();
    }
  } finally {
    await server.close();
  }
});
