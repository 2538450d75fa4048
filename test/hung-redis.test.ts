/**
 * A Redis that stops answering (paused, its connections open and silent) must not hang requests:
 * the rate-limit counts fall back to counting in process after a short timeout, and a Redis
 * provider call fails with a 503 instead of waiting for ever.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PrivateRedis } from '../chaos/redis-server.ts';
import { errorOf, startServer, type TestServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';

describe('a hung Redis', () => {
  let redis: PrivateRedis;
  let server: TestServer;

  before(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
    server = await startServer('embedded', { env: { REDIS_URL: redis.url, STOREHOUSE_RATE_LIMIT_REQUESTS: '1000' } });
  });
  after(async () => {
    redis?.resume();
    await server?.close();
    await redis?.stop();
  });

  test('requests are answered while the rate-limit Redis is paused, counted in process', async () => {
    const list = () => server.request('/v1/integrations/configurations?view=account');
    const counted = await list();
    assert.equal(counted.status, 200);
    assert.equal(counted.headers.get('x-ratelimit-limit'), '1000');
    redis.pause();
    try {
      // Redis stays paused until these are answered: a request that waited on it would never be.
      for (let i = 0; i < 5; i++) {
        const response = await list();
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('x-ratelimit-limit'), '1000', 'still counted, in process');
      }
      const many = await Promise.all(Array.from({ length: 50 }, list));
      assert.deepEqual(new Set(many.map((r) => r.status)), new Set([200]));
    } finally {
      redis.resume();
    }
    // Back: counted in Redis again.
    assert.equal((await list()).status, 200);
  });

  test("a bad request is still refused in Vercel's format while Redis is paused", async () => {
    redis.pause();
    try {
      const error = await errorOf(await server.request('/v1/storage/stores/nope'));
      assert.equal(error.status, 404);
    } finally {
      redis.resume();
    }
  });
});
