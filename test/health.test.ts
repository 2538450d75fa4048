/**
 * `/healthz` says what the node cannot reach, and answers within its bound whatever hangs
 * (src/health/dependencies.ts): the state database behind a TCP proxy the test cuts (refused) and
 * blackholes (accepted, never answered), a private rate-limit redis-server the test pauses
 * (SIGSTOP) and kills, a Redis provider whose server is not there. Every wait is for a state,
 * under a deadline; none is a fixed sleep.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PrivateRedis } from '../chaos/redis-server.ts';
import { publicReason, withoutCredentials } from '../src/health/dependencies.ts';
import { CuttableProxy } from './cuttable-proxy.ts';
import { POSTGRES_URL, eventually, freshPostgresDatabase, startServer, type TestServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';

/** How long a health probe may take in these servers. */
const HEALTH_TIMEOUT_MS = 1000;
/**
 * What an answer may take: the probe's bound plus a loaded machine's slack. Far below the state
 * pool's own waits set below (20 s to connect, 60 s a statement): an answer that waited on those
 * would miss it.
 */
const ANSWER_WITHIN_MS = 8000;
const healthEnv = {
  STOREHOUSE_HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
  STOREHOUSE_HEALTH_INTERVAL_MS: '200',
  STOREHOUSE_DB_CONNECT_TIMEOUT_MS: '20000',
  STOREHOUSE_DB_QUERY_TIMEOUT_MS: '60000',
};

interface Health {
  status: number;
  ms: number;
  body: any;
  retryAfter: string | null;
}

/** GET /healthz without a token, failing if it takes longer than ANSWER_WITHIN_MS. */
async function health(server: TestServer): Promise<Health> {
  const started = Date.now();
  const response = await server.request('/healthz', { token: null, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) });
  const body = await response.json();
  const ms = Date.now() - started;
  assert.ok(ms < ANSWER_WITHIN_MS, `/healthz answered in ${ms} ms`);
  return { status: response.status, ms, body, retryAfter: response.headers.get('retry-after') };
}

/** Waits until /healthz answers as `matches` says, every answer within the bound; returns that answer. */
async function healthUntil(server: TestServer, what: string, matches: (answer: Health) => boolean, timeoutMs = 60_000): Promise<Health> {
  let last: Health | undefined;
  await eventually(
    what,
    async () => {
      last = await health(server);
      return matches(last);
    },
    timeoutMs,
  );
  return last!;
}

const logged = (server: TestServer, level: number, pattern: RegExp) =>
  server.logs.map((line) => JSON.parse(line)).filter((entry) => entry.level === level && pattern.test(entry.msg));

describe('/healthz while the state database is down', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let proxy: CuttableProxy;
  let server: TestServer;
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let password: string;

  before(async () => {
    database = await freshPostgresDatabase();
    const direct = new URL(database.url);
    password = decodeURIComponent(direct.password);
    proxy = new CuttableProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    await proxy.listen();
    const proxied = new URL(database.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startServer('postgres', { databaseUrl: proxied.toString(), env: healthEnv });
  });
  after(async () => {
    await proxy?.restore();
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  /** Nothing in the body names where a dependency is, nor its password. */
  const assertNoAddress = (body: unknown) => {
    const text = JSON.stringify(body);
    assert.doesNotMatch(text, new RegExp(`:${proxy.port}\\b|127\\.0\\.0\\.1|postgres(ql)?://`), text);
    if (password.length > 8) assert.ok(!text.includes(password), 'no password in the body');
  };

  test('up: 200 ok, naming the database and the providers the catalog uses', async () => {
    const answer = await healthUntil(server, 'every check ok', (a) => a.body.status === 'ok');
    assert.equal(answer.status, 200);
    const { checks } = answer.body;
    assert.equal(checks.database.status, 'ok');
    assert.equal(typeof checks.database.latencyMs, 'number');
    assert.ok(!Number.isNaN(Date.parse(checks.database.checkedAt)));
    assert.equal(checks['provider:postgres'].status, 'ok');
    // No Redis admin on a node with DATABASE_URL: nothing serves Redis stores here, as configured.
    assert.equal(checks['provider:redis'].status, 'disabled');
    assert.match(checks['provider:redis'].error, /STOREHOUSE_REDIS_ADMIN_URL/);
    assert.equal(checks.rateLimitRedis, undefined, 'no rate-limit Redis is configured');
  });

  test('refused: 503 database_unavailable with the checks beside it, promptly; logged once; then 200 again', async () => {
    const warned = logged(server, 40, /the state database is unavailable/).length;
    await proxy.cut();
    try {
      // The first answer after the cut already knows: the database is asked afresh.
      const answers = [await health(server), await health(server), await health(server)];
      for (const answer of answers) {
        assert.equal(answer.status, 503, JSON.stringify(answer.body));
        assert.equal(answer.body.error.code, 'database_unavailable');
        assert.equal(typeof answer.body.error.message, 'string');
        assert.match(answer.retryAfter ?? '', /^\d+$/);
        assert.equal(answer.body.status, 'unavailable');
        assert.equal(answer.body.checks.database.status, 'unavailable');
        assert.equal(answer.body.checks.database.error, 'connection refused');
        assertNoAddress(answer.body);
      }
      const warnings = logged(server, 40, /the state database is unavailable/).slice(warned);
      assert.equal(warnings.length, 1, `logged once however often it is asked: ${warnings.map((w) => w.msg).join(' | ')}`);
      assert.match(warnings[0].msg, /ECONNREFUSED/, 'the log has the cause');
    } finally {
      await proxy.restore();
    }
    const back = await healthUntil(server, '/healthz 200 again', (a) => a.status === 200);
    assert.equal(back.body.checks.database.status, 'ok');
    await eventually('the recovery logged', async () => logged(server, 30, /the state database is reachable again/).length >= 1);
  });

  test('blackholed (accepted, never answered): 503 within the health timeout, not the pool timeouts; then 200 again', async () => {
    proxy.blackhole();
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await health(server);
        assert.equal(answer.status, 503, JSON.stringify(answer.body));
        assert.equal(answer.body.error.code, 'database_unavailable');
        assert.equal(answer.body.checks.database.status, 'unavailable');
        assert.match(answer.body.checks.database.error, /timed out/);
        assertNoAddress(answer.body);
      }
      assert.equal((await server.request('/livez', { token: null })).status, 200);
    } finally {
      await proxy.restore();
    }
    await healthUntil(server, '/healthz 200 again', (a) => a.status === 200 && a.body.checks.database.status === 'ok');
  });
});

describe('/healthz while the rate-limit Redis hangs', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let redis: PrivateRedis;
  let server: TestServer;

  before(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
    server = await startServer('postgres', { env: { ...healthEnv, REDIS_URL: redis.url } });
  });
  after(async () => {
    redis?.resume();
    await server?.close();
    await redis?.stop();
  });

  test('paused (SIGSTOP): 200 degraded naming rateLimitRedis, every answer within the bound; resumed: ok; logged once each way', async () => {
    const ok = await healthUntil(server, 'rateLimitRedis ok', (a) => a.body.status === 'ok');
    assert.equal(ok.body.checks.rateLimitRedis.status, 'ok');
    // Its connection being opened at start was no outage.
    const warned = logged(server, 40, /the rate-limit Redis is unavailable/).length;
    assert.equal(warned, 0, 'nothing logged as down before it was');
    redis.pause();
    try {
      const degraded = await healthUntil(
        server,
        'degraded while Redis is paused',
        (a) => a.body.checks.rateLimitRedis?.status === 'unavailable',
      );
      assert.equal(degraded.status, 200, 'the node still serves');
      assert.equal(degraded.body.status, 'degraded');
      assert.equal(degraded.body.checks.database.status, 'ok');
      assert.match(degraded.body.checks.rateLimitRedis.error, /timed out/);
      assert.ok(!JSON.stringify(degraded.body).includes(String(redis.port)), 'the body names no port');
      // Asked again and again while Redis stays paused: each answered within the bound.
      for (let i = 0; i < 5; i++) {
        const answer = await health(server);
        assert.deepEqual([answer.status, answer.body.status], [200, 'degraded']);
      }
      // An API request is answered too (the limiter counts in process).
      assert.equal(
        (await server.request('/v1/integrations/configurations?view=account', { signal: AbortSignal.timeout(ANSWER_WITHIN_MS) })).status,
        200,
      );
    } finally {
      redis.resume();
    }
    const back = await healthUntil(server, 'ok once Redis answers', (a) => a.body.status === 'ok');
    assert.equal(back.body.checks.rateLimitRedis.status, 'ok');
    assert.equal(logged(server, 40, /the rate-limit Redis is unavailable/).length - warned, 1, 'logged once when it went down');
    await eventually('the recovery logged', async () => logged(server, 30, /the rate-limit Redis is reachable again/).length === 1);
  });

  test('killed: degraded, not connected; started again: ok', async () => {
    await redis.stop();
    const down = await healthUntil(server, 'degraded while Redis is gone', (a) => a.body.checks.rateLimitRedis?.status === 'unavailable');
    assert.deepEqual([down.status, down.body.status], [200, 'degraded']);
    assert.match(down.body.checks.rateLimitRedis.error, /not connected|connection refused|connection lost/);
    await redis.start();
    await healthUntil(server, 'ok once Redis is back', (a) => a.body.status === 'ok');
  });
});

describe('/healthz names a provider whose server it cannot reach, without its URL', {
  skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set',
}, () => {
  let server: TestServer;
  let port: number;
  const secret = 'health-s3cret-pw';

  before(async () => {
    port = await freePort(); // nothing listens there
    server = await startServer('postgres', {
      env: { ...healthEnv, STOREHOUSE_REDIS_ADMIN_URL: `redis://storehouse-admin:${secret}@127.0.0.1:${port}` },
    });
  });
  after(() => server?.close());

  test('200 degraded with provider:redis unavailable; neither the body nor the log holds its password or address', async () => {
    const answer = await healthUntil(
      server,
      'provider:redis unavailable',
      (a) => a.body.checks['provider:redis']?.status === 'unavailable',
    );
    assert.deepEqual([answer.status, answer.body.status], [200, 'degraded']);
    assert.equal(answer.body.checks.database.status, 'ok');
    assert.equal(answer.body.checks['provider:postgres'].status, 'ok');
    assert.match(
      answer.body.checks['provider:redis'].error,
      /cannot reach the Redis server \((connection refused|connection lost|the log says why)\)/,
    );
    const text = JSON.stringify(answer.body);
    assert.ok(!text.includes(secret) && !text.includes(String(port)), text);
    const warnings = logged(server, 40, /the Redis provider is unavailable/);
    assert.equal(warnings.length, 1, 'logged once, however often probed');
    assert.ok(!server.logs.some((line) => line.includes(secret)), 'no log line holds the password');
  });
});

describe('what the body and the log may say', () => {
  test('credentials are taken out of URLs and ACL rules', () => {
    assert.equal(withoutCredentials('redis://admin:pw@10.0.0.5:6379/0'), 'redis://[redacted]@10.0.0.5:6379/0');
    assert.equal(withoutCredentials("ERR in 'ACL SETUSER u on '>hunter2' ~p:*'"), "ERR in 'ACL SETUSER u on '>[redacted]' ~p:*'");
    assert.equal(withoutCredentials('connect ECONNREFUSED 127.0.0.1:5432'), 'connect ECONNREFUSED 127.0.0.1:5432');
  });

  test("a provider's reason keeps its own words, and the driver's become the kind of failure", () => {
    assert.equal(
      publicReason('cannot reach the PostgreSQL server (connect ECONNREFUSED 10.1.2.3:5432)'),
      'cannot reach the PostgreSQL server (connection refused)',
    );
    assert.equal(publicReason('lost the Redis server (Command timed out)'), 'lost the Redis server (timed out)');
    assert.equal(publicReason('the admin role needs CREATEROLE and CREATEDB'), 'the admin role needs CREATEROLE and CREATEDB');
    assert.equal(publicReason('cannot reach redis://u:p@db.internal:6379 or 10.0.0.1:1'), 'cannot reach [url] or [address]');
  });
});
