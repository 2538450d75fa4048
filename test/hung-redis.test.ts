/**
 * A Redis that stops answering (paused, its connections open and silent) must not hang requests:
 * after the first count times out, the rate-limit breaker counts in process and sends Redis
 * nothing until a probe finds it answering; at most the count that timed out runs when Redis wakes;
 * and once it is back, the nodes share their counts again. A Redis provider call fails with a 503
 * instead of waiting for ever.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { PrivateRedis } from '../chaos/redis-server.ts';
import { errorOf, eventually, startServer, type TestServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';

const FAILURE_LIMIT = 6;

describe('a hung Redis', () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let a: TestServer;
  let b: TestServer;
  const env = () => ({
    REDIS_URL: redis.url,
    STOREHOUSE_RATE_LIMIT_REQUESTS: '1000',
    STOREHOUSE_AUTH_FAILURE_LIMIT: String(FAILURE_LIMIT),
  });
  const list = (server: TestServer, token?: string) => server.request('/v1/integrations/configurations?view=account', { token });
  const breaker = (server: TestServer) => server.app.rateLimits.redisState!;
  /** What Redis holds of a token's count this minute. */
  const counted = async (server: TestServer) => {
    const { rows } = await server.runtime.db.query<{ id: string }>("SELECT id FROM access_tokens WHERE name = 'bootstrap'");
    return Number(await admin.get(`storehouse:rl:api-requests:${rows[0]!.id}`));
  };

  before(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    a = await startServer('embedded', { env: env() });
    b = await startServer('embedded', { env: env() });
  });
  after(async () => {
    redis?.resume();
    admin?.disconnect();
    await b?.close();
    await a?.close();
    await redis?.stop();
  });

  test('after the first timeout nothing waits on Redis or is sent to it, and only that count may run when it wakes', async () => {
    for (const server of [a, b]) {
      const response = await list(server);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-ratelimit-remaining'), '999', 'counted in Redis');
    }
    const inRedis = await counted(a);
    assert.equal(inRedis, 1);
    redis.pause();
    try {
      // Redis stays paused until these are answered: a request that waited on it would never be.
      for (const server of [a, b]) {
        assert.equal((await list(server)).status, 200, 'the first count times out, and is made in process');
        assert.deepEqual([breaker(server).state, breaker(server).opened], ['open', 1]);
      }
      const sent = breaker(a).counts;
      for (let i = 0; i < 5; i++) {
        const response = await list(a);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('x-ratelimit-limit'), '1000', 'still counted, in process');
      }
      const many = await Promise.all(Array.from({ length: 50 }, () => list(a)));
      assert.deepEqual(new Set(many.map((r) => r.status)), new Set([200]));
      assert.equal(breaker(a).counts, sent, 'no count was sent to the paused Redis after the first timed out');
      assert.equal(breaker(a).state, 'open');
    } finally {
      redis.resume();
    }
    for (const server of [a, b])
      await eventually('the breaker closes once Redis answers', async () => breaker(server).state === 'closed', 60_000);
    assert.ok(a.logs.some((line) => line.includes('rate limits counted in Redis again')));
    // Only the count that timed out had reached Redis's socket, and may have run once it woke:
    // none of the 55 made in process after it was sent.
    const woke = await counted(a);
    assert.ok(woke === inRedis || woke === inRedis + 1, `Redis counted ${woke - inRedis} while paused, at most the one that timed out`);
    // Counted in Redis again.
    const sent = breaker(a).counts;
    assert.equal((await list(a)).status, 200);
    assert.equal(breaker(a).counts, sent + 1);
    assert.equal(await counted(a), woke + 1);
  });

  test('once Redis is back, two nodes share their counts again', async () => {
    for (const server of [a, b]) assert.equal(breaker(server).state, 'closed');
    // Failed authentications from 127.0.0.1 count under one key, whichever node they reach.
    for (const server of [a, a, a, b, b, b]) assert.equal((await list(server, 'not-a-token')).status, 401);
    const refused = await errorOf(await list(a, 'not-a-token'));
    assert.deepEqual([refused.status, refused.code, refused.body.error.limit.total], [429, 'rate_limited', FAILURE_LIMIT]);
    assert.equal((await list(b, 'not-a-token')).status, 429);
  });

  test("a bad request is still refused in Vercel's format while Redis is paused", async () => {
    redis.pause();
    try {
      const error = await errorOf(await a.request('/v1/storage/stores/nope'));
      assert.equal(error.status, 404);
    } finally {
      redis.resume();
    }
  });
});
