/**
 * Several nodes on one PostgreSQL: what one node (or an operator's SQL) changes, every other
 * node's next requests see, although they serve authorization and the catalog from memory.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { DEFAULT_CATALOG_PATH } from '../src/config.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { eventually, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { deafenNodes, type TwoNodes, twoNodes } from './two-nodes.ts';

describe('two nodes on one PostgreSQL', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let nodes: TwoNodes;
  let database: TwoNodes['database'];
  let a: TestServer;
  let b: TestServer;
  let sql: pg.Client;

  before(async () => {
    nodes = await twoNodes();
    ({ database, a, b, sql } = nodes);
  });
  after(() => nodes?.close());

  const status = async (server: TestServer, token: string, query = '') =>
    (await server.request(`/v1/integrations/configurations?view=account${query}`, { token })).status;

  test('both nodes share the bootstrap: one team, one token', async () => {
    assert.equal(b.token, a.token);
    const { rows } = await sql.query('SELECT count(*)::int AS n FROM teams');
    assert.equal(rows[0].n, 1);
    assert.equal(await status(a, a.token), 200);
    assert.equal(await status(b, a.token), 200);
  });

  test('a token revoked on one node is refused by the other', async () => {
    const owner = (await sql.query("SELECT user_id, default_team_id FROM access_tokens WHERE name = 'bootstrap'")).rows[0];
    const { token, value } = await createToken(a.runtime.db, { userId: owner.user_id, teamId: owner.default_team_id, name: 'shared' });
    // Both nodes have it cached now.
    for (let i = 0; i < 3; i++) assert.equal(await status(b, value), 200);
    assert.equal(await status(a, value), 200);
    await sql.query('UPDATE access_tokens SET revoked_at = now() WHERE id = $1', [token.id]); // an operator's SQL, even
    await eventually('node B refusing the revoked token', async () => (await status(b, value)) === 401);
    await eventually('node A refusing the revoked token', async () => (await status(a, value)) === 401);
  });

  test('a member removed on one node loses the team on the other', async () => {
    const db = a.runtime.db;
    const user = await createUser(db, { email: 'leaver@example.com' });
    const team = await createTeam(db, { slug: 'shared-team' });
    await setMember(db, team.id, user.id, 'MEMBER');
    const home = await createTeam(db, { slug: 'leaver-home' });
    await setMember(db, home.id, user.id, 'OWNER');
    const { value } = await createToken(db, { userId: user.id, teamId: home.id, name: 't' });
    assert.equal(await status(b, value, '&slug=shared-team'), 200);
    await sql.query('DELETE FROM memberships WHERE team_id = $1 AND user_id = $2', [team.id, user.id]);
    await eventually('node B answering 403', async () => (await status(b, value, '&slug=shared-team')) === 403);
    assert.equal(await status(b, value, '&slug=leaver-home'), 200);
  });

  test('while a node cannot hear changes it reads through to the database', async () => {
    const owner = (await sql.query("SELECT user_id, default_team_id FROM access_tokens WHERE name = 'bootstrap'")).rows[0];
    const { token, value } = await createToken(a.runtime.db, { userId: owner.user_id, teamId: owner.default_team_id, name: 'deaf' });
    assert.equal(await status(b, value), 200);
    // Cut every LISTEN connection; node B must stop trusting its memory at once.
    await deafenNodes(sql);
    await eventually('node B noticing it is deaf', async () => !b.runtime.feed.healthy, 2000);
    await sql.query('UPDATE access_tokens SET revoked_at = now() WHERE id = $1', [token.id]);
    assert.equal(await status(b, value), 401);
    // It listens again by itself and goes back to serving from memory.
    await eventually('node B listening again', async () => b.runtime.feed.healthy, 5000);
    assert.equal(await status(b, b.token), 200);
  });

  test('a node that was deaf reloads the catalog; an integration it has not loaded yet is no 500', async () => {
    const icfg = (await b.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    await deafenNodes(sql);
    await eventually('node B noticing it is deaf', async () => !b.runtime.feed.healthy, 2000);
    await sql.query("UPDATE products SET name = 'Redis (changed while deaf)' WHERE id = 'iap_storehouse_redis'");
    await eventually('node B listening again', async () => b.runtime.feed.healthy, 5000);
    await eventually('node B offering what changed while it was deaf', async () => {
      const { products } = await b.sdk().integrations.getConfigurationProducts({ id: icfg });
      return products[1]!.name === 'Redis (changed while deaf)';
    });
    // An integration and an installation that reach the database before B hears of them.
    b.runtime.feed.healthy = false; // as if deaf again: B serves from the database, its catalog is old
    const team = (await sql.query("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0].id;
    await sql.query("INSERT INTO integrations (id, slug, name, icon, scopes) VALUES ('oac_late', 'late', 'Late', 'x', '[]')");
    await sql.query("INSERT INTO installations (id, team_id, integration_id, source) VALUES ('icfg_late', $1, 'oac_late', 'cli')", [team]);
    const response = await b.request('/v1/integrations/configuration/icfg_late');
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { slug: string }).slug, 'late');
    const all = await b.sdk().integrations.getConfigurations({ view: 'account' });
    assert.deepEqual(all.map((c) => c.slug).sort(), ['late', 'storehouse']);
    b.runtime.feed.healthy = true;
    await sql.query("DELETE FROM installations WHERE id = 'icfg_late'");
    await sql.query("DELETE FROM integrations WHERE id = 'oac_late'");
    await sql.query("UPDATE products SET name = 'Redis' WHERE id = 'iap_storehouse_redis'");
  });

  test('a node started with a changed catalog changes what the other offers', async () => {
    const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
    catalog.integrations[0].products[0].name = 'Postgres (renamed)';
    catalog.integrations[0].products[0].plans.pop();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
    fs.writeFileSync(file, stringify(catalog));
    const icfg = (await b.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    assert.equal((await b.sdk().integrations.getConfigurationProducts({ id: icfg })).products[0]!.name, 'Postgres');
    const c = await startServer('postgres', { databaseUrl: database.url, catalogPath: file, bootstrapToken: a.token });
    try {
      await eventually('node B offering the new catalog', async () => {
        const { products } = await b.sdk().integrations.getConfigurationProducts({ id: icfg });
        return products[0]!.name === 'Postgres (renamed)';
      });
      const { plans } = await b.sdk().integrations.getBillingPlans({ integrationIdOrSlug: 'storehouse', productIdOrSlug: 'postgres' });
      assert.deepEqual(
        plans.map((p) => p.id),
        ['postgres_hobby', 'postgres_pro'],
      );
    } finally {
      await c.close();
    }
  });
});

/**
 * A TCP proxy to PostgreSQL that can silence the connection that issued LISTEN: it stays open
 * but nothing the server sends reaches the client, as with a half-open connection.
 */
async function listenSilencingProxy(target: URL) {
  const listeners = new Set<net.Socket>();
  const silenced = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    let isListener = false;
    client.on('data', (chunk) => {
      if (!isListener && chunk.includes('LISTEN ')) {
        isListener = true;
        listeners.add(client);
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!silenced.has(client)) client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      listeners.delete(client);
      silenced.delete(client);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: url.toString(),
    /** Silences the LISTEN connections open now; ones opened later are heard. */
    silence: () => {
      for (const socket of listeners) silenced.add(socket);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('a node whose LISTEN connection goes quiet', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  test('notices by its heartbeat, reads through to the database, and listens again on a new connection', async () => {
    const database = await freshPostgresDatabase();
    const proxy = await listenSilencingProxy(new URL(database.url));
    const node = await startServer('postgres', { databaseUrl: proxy.url, env: { STOREHOUSE_CHANGE_HEARTBEAT_MS: '200' } });
    const sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    try {
      await eventually('the node listening', async () => node.runtime.feed.healthy);
      const owner = (await sql.query("SELECT user_id, default_team_id FROM access_tokens WHERE name = 'bootstrap'")).rows[0];
      const { token, value } = await createToken(node.runtime.db, { userId: owner.user_id, teamId: owner.default_team_id, name: 'quiet' });
      assert.equal((await node.request('/v1/integrations/configurations?view=account', { token: value })).status, 200);

      // New connections pass; the one that LISTENs now hears nothing more, though it stays open.
      proxy.silence();
      // It notices (and at once replaces the connection, so the deaf spell may be short).
      await eventually('the node noticing it hears nothing', async () => node.logs.some((line) => line.includes('went quiet')), 2000);
      // Deaf, it reads through to the database; listening again, it has dropped what it cached.
      // Either way the token revoked behind its back is refused.
      await sql.query('UPDATE access_tokens SET revoked_at = now() WHERE id = $1', [token.id]);
      assert.equal((await node.request('/v1/integrations/configurations?view=account', { token: value })).status, 401);

      await eventually('the node listening again on a fresh connection', async () => node.runtime.feed.healthy, 5000);
      const { token: later, value: laterValue } = await createToken(sql, {
        userId: owner.user_id,
        teamId: owner.default_team_id,
        name: 'later',
      });
      assert.equal((await node.request('/v1/integrations/configurations?view=account', { token: laterValue })).status, 200);
      await sql.query('UPDATE access_tokens SET revoked_at = now() WHERE id = $1', [later.id]);
      await eventually(
        'the node hearing changes again',
        async () => (await node.request('/v1/integrations/configurations?view=account', { token: laterValue })).status === 401,
      );
    } finally {
      await sql.end();
      await node.close();
      await proxy.close();
      await database.drop();
    }
  });
});
