/**
 * Failed authentication is rate limited (issue 17): past STOREHOUSE_AUTH_FAILURE_LIMIT failures a
 * minute, an address gets Vercel's 429 before its token is looked up, so a flood of bad tokens
 * costs a bounded number of queries; other addresses, and tokens that authenticated lately, are
 * unaffected; a bad token repeated is answered from the negative cache; and a token created after
 * its value missed works at once, on this node and on another.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { randomBase62 } from '../src/ids.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { BACKENDS, errorOf, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';

const LIMIT = 20;
const LIST = '/v1/integrations/configurations?view=account';
/** TEST-NET addresses, random per run: another file (or run) counting failures never shares ours. */
/** A client address no other test here used: each counts its failures apart. */
let addresses = 0;
const address = () => `203.0.113.${++addresses}`;

/** Counts the token lookups the server sends its database (every query passes through unchanged). */
function countTokenLookups(server: TestServer): { readonly count: number } {
  const db = server.runtime.db;
  const query = db.query.bind(db);
  const counter = { count: 0 };
  db.query = ((sql: string, params?: unknown[]) => {
    if (/FROM access_tokens\s+WHERE token_hash/.test(sql)) counter.count++;
    return query(sql, params);
  }) as typeof db.query;
  return counter;
}

const owner = async (server: TestServer) =>
  (
    await server.runtime.db.query<{ user_id: string; default_team_id: string }>(
      "SELECT user_id, default_team_id FROM access_tokens WHERE name = 'bootstrap'",
    )
  ).rows[0]!;

for (const backend of BACKENDS) {
  describe(`failed authentication on ${backend}`, () => {
    let server: TestServer;
    let lookups: { readonly count: number };
    const from = (forwardedFor: string, token: string | null) =>
      server.request(LIST, { token, headers: { 'x-forwarded-for': forwardedFor } });

    before(async () => {
      server = await startServer(backend, {
        env: { STOREHOUSE_AUTH_FAILURE_LIMIT: String(LIMIT), STOREHOUSE_TRUST_PROXY: 'loopback' },
      });
      lookups = countTokenLookups(server);
    });
    after(async () => {
      await server?.close();
    });

    test('1,000 bad tokens from one address: 429 after the bound, a bounded number of lookups, other addresses unaffected', async () => {
      const attacker = address();
      const bystander = `198.51.100.${1 + Math.floor(Math.random() * 254)}`;
      // The owner's token authenticated from the attacker's address before the attack.
      assert.equal((await from(attacker, server.token)).status, 200);
      const start = lookups.count;
      const bad = () => `bad-${randomBase62(32)}`;
      for (let i = 0; i < LIMIT; i++) {
        const refused = await errorOf(await from(attacker, bad()));
        assert.deepEqual([refused.status, refused.code], [401, 'unauthorized'], `failure ${i + 1}`);
      }
      const limited = await from(attacker, bad());
      const error = await errorOf(limited);
      assert.deepEqual([error.status, error.code], [429, 'rate_limited']);
      assert.equal(error.body.error.limit.total, LIMIT);
      assert.equal(error.body.error.limit.remaining, 0);
      assert.ok(error.body.error.limit.resetMs > Date.now() - 1000);
      assert.equal(limited.headers.get('x-ratelimit-limit'), String(LIMIT));
      assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
      assert.ok(Number(limited.headers.get('retry-after-ms')) > 0);
      // The rest of the thousand, 50 at a time: all refused, none looked up.
      const statuses = new Map<number, number>();
      for (let sent = LIMIT + 1; sent < 1000; sent += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, 1000 - sent) }, () => from(attacker, bad())));
        for (const response of batch) statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      }
      assert.deepEqual([...statuses], [[429, 1000 - LIMIT - 1]]);
      const warned = server.logs.filter((line) => line.includes('refusing a client address') && line.includes(attacker));
      assert.equal(warned.length, 1, 'the refusal of the address is logged once in its window');
      assert.equal(lookups.count - start, LIMIT, 'one lookup per failure within the bound, none after');
      // No token at all is refused the same way (a 429, not a 401).
      assert.equal((await from(attacker, null)).status, 429);

      // Another address: its own count, and its bad token is a 401.
      assert.equal((await from(bystander, bad())).status, 401);
      assert.equal((await from(bystander, server.token)).status, 200);
      // The token that authenticated here lately still works from the attacker's address...
      assert.equal((await from(attacker, server.token)).status, 200);
      // ...but a token this node has not seen is refused there until the window ends.
      const { user_id, default_team_id } = await owner(server);
      const { value } = await createToken(server.runtime.db, { userId: user_id, teamId: default_team_id, name: 'fresh' });
      assert.equal((await from(attacker, value)).status, 429);
      assert.equal((await from(bystander, value)).status, 200);
      assert.equal((await from(attacker, value)).status, 200, 'once it authenticated, it passes');
    });

    test('a bad token repeated costs one lookup, and a token created with its value works at once', async () => {
      const value = `later-${randomBase62(32)}`;
      const start = lookups.count;
      // From several addresses, each under the bound.
      for (let i = 0; i < 10; i++) assert.equal((await from(address(), value)).status, 401);
      // Other writes of this node (leases, sweeps) empty the cache too: a few lookups, not ten.
      assert.ok(lookups.count - start <= 3, `${lookups.count - start} lookups for 10 repeats`);
      const { user_id, default_team_id } = await owner(server);
      await createToken(server.runtime.db, { userId: user_id, teamId: default_team_id, name: 'later', value });
      assert.equal((await from(address(), value)).status, 200);
    });
  });
}

describe('a token created on another node after its value missed here', {
  skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set',
}, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    database = await freshPostgresDatabase();
    a = await startServer('postgres', { databaseUrl: database.url });
    b = await startServer('postgres', { databaseUrl: database.url, bootstrapToken: a.token });
  });
  after(async () => {
    await b?.close();
    await a?.close();
    await database?.drop();
  });

  test('works on the first node as soon as it hears of the change', async () => {
    let value = '';
    const lookups = countTokenLookups(a);
    // Any change node A hears of (node B's start writes some) rightly forgets its misses: the
    // pair of misses is tried again, with a value never sent before, until none came between them.
    for (let pair = 0; ; pair++) {
      value = `elsewhere-${randomBase62(32)}`;
      const before = { generation: a.runtime.feed.generation, lookups: lookups.count };
      assert.equal((await a.request(LIST, { token: value })).status, 401);
      assert.equal((await a.request(LIST, { token: value })).status, 401);
      if (a.runtime.feed.generation !== before.generation && pair < 20) continue;
      assert.equal(lookups.count - before.lookups, 1, 'the second miss came from the cache');
      break;
    }
    const generation = a.runtime.feed.generation;
    const { user_id, default_team_id } = await owner(b);
    await createToken(b.runtime.db, { userId: user_id, teamId: default_team_id, name: 'elsewhere', value });
    // The notification of the insert is the event: once node A has it, the token works there.
    const deadline = Date.now() + 30_000;
    while (a.runtime.feed.generation === generation && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await a.request(LIST, { token: value })).status, 200);
  });
});

/** A GET from a given local address (127.0.0.0/8 is all loopback on Linux), with headers of its own. */
function getFrom(server: TestServer, localAddress: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${server.url}${LIST}`, { localAddress, headers }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
    });
    request.on('error', reject);
  });
}

describe('the client address without trusted proxies', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer('embedded', { env: { STOREHOUSE_AUTH_FAILURE_LIMIT: '3' } });
  });
  after(async () => {
    await server?.close();
  });

  test('X-Forwarded-For is not believed: the connection is the address', async () => {
    const bad = { authorization: 'Bearer nope-nope-nope' };
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push(await getFrom(server, '127.0.0.3', { ...bad, 'x-forwarded-for': address() }));
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    assert.equal(await getFrom(server, '127.0.0.4', bad), 401, 'another address counts on its own');
  });
});
