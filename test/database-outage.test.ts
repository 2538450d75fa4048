/**
 * The state database going away and coming back, under a running Storehouse: it reaches its
 * PostgreSQL through a TCP proxy the test can cut (connections refused) or blackhole (accepted,
 * never answered: a hung server or a dropped network), and restore.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { databaseUnavailableCause, markDatabaseError } from '../src/db/unavailable.ts';
import { CuttableProxy } from './cuttable-proxy.ts';
import { POSTGRES_URL, errorOf, eventually, freshPostgresDatabase, startServer, type TestServer } from './helpers.ts';

/** Waits on `call`, failing if it takes longer than `ms`: an outage must be answered, not hang. */
async function within<T>(ms: number, what: string, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([call(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const CONNECT_TIMEOUT_MS = 1000;
const QUERY_TIMEOUT_MS = 1500;
// Far above what the configured timeouts add up to (a connect, then a statement, each bounded).
const ANSWER_WITHIN_MS = 20_000;

describe('the state database is down', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let proxy: CuttableProxy;
  let server: TestServer;
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;

  before(async () => {
    database = await freshPostgresDatabase();
    const direct = new URL(database.url);
    proxy = new CuttableProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    await proxy.listen();
    const proxied = new URL(database.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    server = await startServer('postgres', {
      databaseUrl: proxied.toString(),
      env: { STOREHOUSE_DB_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS), STOREHOUSE_DB_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS) },
    });
  });

  after(async () => {
    await proxy?.restore();
    await server?.close();
    await proxy?.close();
    await database?.drop();
  });

  /** /healthz and an API route answer 503 database_unavailable with Retry-After, promptly; /livez stays 200. */
  async function assertUnavailable(how: string) {
    for (const path of ['/healthz', '/v1/storage/stores', '/v1/integrations/configurations?view=account']) {
      const response = await within(ANSWER_WITHIN_MS, `${path} (${how})`, () => server.request(path));
      const error = await errorOf(response);
      assert.equal(error.status, 503, `${path} (${how}): ${JSON.stringify(error.body)}`);
      assert.equal(error.code, 'database_unavailable');
      assert.match(response.headers.get('retry-after') ?? '', /^\d+$/, `${path}: Retry-After`);
      assert.doesNotMatch(error.message, /ECONN|terminated|timeout exceeded|read timeout/i, "the driver's words stay in the log");
    }
    const live = await within(ANSWER_WITHIN_MS, `/livez (${how})`, () => server.request('/livez', { token: null }));
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { status: 'ok' });
  }

  async function assertRecovers() {
    await eventually('/healthz answering 200 again', async () => (await server.request('/healthz')).status === 200, 30_000);
    const stores = await server.request('/v1/storage/stores');
    assert.equal(stores.status, 200, await stores.clone().text());
    assert.ok(Array.isArray(((await stores.json()) as { stores: unknown }).stores));
  }

  const warnings = () =>
    server.logs.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40 && /state database is unavailable/.test(entry.msg));

  it('answers 200 while the database is up', async () => {
    assert.equal((await server.request('/healthz')).status, 200);
    assert.equal((await server.request('/livez')).status, 200);
    assert.equal((await server.request('/v1/storage/stores')).status, 200);
  });

  it('refused connections: 503 database_unavailable with Retry-After and a warning naming the cause, then 200 again without a restart', async () => {
    const before = warnings().length;
    await proxy.cut();
    await assertUnavailable('refused');
    const logged = warnings().slice(before);
    assert.ok(logged.length >= 3, `a warning per refused request, got ${logged.length}`);
    assert.ok(
      logged.every((entry) => /ECONNREFUSED|Connection terminated|ECONNRESET/.test(entry.msg)),
      `each warning names the cause: ${logged.map((entry) => entry.msg).join(' | ')}`,
    );
    await proxy.restore();
    await assertRecovers();
  });

  it('a blackholed database (connections accepted, nothing answered): 503 within the configured timeouts, then 200 again', async () => {
    const before = warnings().length;
    proxy.blackhole();
    const started = Date.now();
    await assertUnavailable('blackholed');
    const logged = warnings().slice(before);
    assert.ok(
      logged.some((entry) => /read timeout|connection timeout|timeout exceeded/.test(entry.msg)),
      `a warning names the timeout: ${logged.map((entry) => entry.msg).join(' | ')}`,
    );
    assert.ok(Date.now() - started < 4 * ANSWER_WITHIN_MS);
    await proxy.restore();
    await assertRecovers();
  });
});

describe('what counts as the database being unavailable', () => {
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  it('connection failures raised by the state database, in their many forms', () => {
    const failures = [
      refused(),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') }),
      new Error('Query read timeout'),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      new AggregateError([refused(), refused()], ''),
    ];
    for (const failure of failures) assert.ok(databaseUnavailableCause(markDatabaseError(failure)), failure.message);
  });

  it("not a refused connection elsewhere (a partner, a store's Redis), nor a database error that is the request's", () => {
    assert.equal(databaseUnavailableCause(refused()), undefined);
    const badValue = Object.assign(new Error('invalid input syntax for type bigint'), { code: '22P02' });
    assert.equal(databaseUnavailableCause(markDatabaseError(badValue)), undefined);
    const unique = Object.assign(new Error('duplicate key'), { code: '23505' });
    assert.equal(databaseUnavailableCause(markDatabaseError(unique)), undefined);
  });
});
