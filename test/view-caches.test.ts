/**
 * GET /v2/user and GET /v1/storage/stores/{id} are served from memory between changes (issue
 * 12): a repeated read asks the database nothing, yet what any node (or an operator's SQL)
 * changes in what they show is seen on every node, this node's own writes at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { eventually, POSTGRES_URL, queriesDuring, type TestServer } from './helpers.ts';
import { deafenNodes, type TwoNodes, twoNodes } from './two-nodes.ts';

describe('views served from memory, on two nodes of one PostgreSQL', {
  skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set',
}, () => {
  let nodes: TwoNodes;
  let a: TestServer;
  let b: TestServer;
  let sql: pg.Client;
  let storeId: string;
  let icfg: string;

  const store = async (server: TestServer, token?: string) => {
    const response = await server.request(`/v1/storage/stores/${storeId}`, token === undefined ? {} : { token });
    return { status: response.status, body: (await response.json()) as any };
  };
  const user = async (server: TestServer) => ((await (await server.request('/v2/user')).json()) as any).user;

  before(async () => {
    nodes = await twoNodes();
    ({ a, b, sql } = nodes);
    icfg = (await a.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    const created = await a.request('/v1/storage/stores/integration/direct', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cached', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
    });
    assert.equal(created.status, 200, await created.clone().text());
    storeId = ((await created.json()) as any).store.id;
  });
  after(() => nodes?.close());

  test('a store read again, and the user read again, ask the database nothing', async () => {
    // A change anywhere (or a write of the node's own that could fire a change trigger) empties
    // the caches: between two of them, five reads of each are served from memory.
    let sent: string[] = [];
    await eventually('five reads in a row with no query', async () => {
      assert.equal((await store(b)).status, 200);
      assert.ok((await user(b)).username);
      sent = await queriesDuring(b.runtime.db, async () => {
        for (let i = 0; i < 5; i++) {
          assert.equal((await store(b)).body.store.name, 'cached');
          assert.ok((await user(b)).email);
        }
      });
      return sent.length === 0;
    });
    assert.deepEqual(sent, []);
  });

  test("another node's change to the store, its connections, their project or its variables shows on this one", async () => {
    assert.equal((await store(b)).body.store.name, 'cached');
    await sql.query("UPDATE stores SET name = 'renamed by SQL' WHERE id = $1", [storeId]); // an operator's SQL, even
    await eventually('node B showing the new name', async () => (await store(b)).body.store.name === 'renamed by SQL');
    assert.equal((await store(a)).body.store.name, 'renamed by SQL');

    const project = await a.sdk().projects.createProject({ requestBody: { name: 'web' } });
    assert.deepEqual((await store(b)).body.store.projectsMetadata, []);
    const external = (await store(a)).body.store.externalResourceId;
    await a.sdk().integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: icfg,
      resourceId: external,
      requestBody: { projectId: project.id, envVarEnvironments: ['production'] },
    });
    // Node A made the change: it shows there at once.
    assert.equal((await store(a)).body.store.totalConnectedProjects, 1);
    await eventually('node B showing the connection', async () => (await store(b)).body.store.totalConnectedProjects === 1);
    const connected = (await store(b)).body.store.projectsMetadata[0];
    assert.equal(connected.name, 'web');
    assert.ok(connected.environmentVariables.includes('POSTGRES_URL'));

    await sql.query("UPDATE projects SET name = 'web-renamed' WHERE id = $1", [project.id]);
    await eventually(
      'node B showing the project renamed',
      async () => (await store(b)).body.store.projectsMetadata[0].name === 'web-renamed',
    );
    await sql.query("UPDATE project_env SET key = 'RENAMED_URL' WHERE project_id = $1 AND key = 'POSTGRES_URL'", [project.id]);
    await eventually('node B showing the variable renamed', async () =>
      (await store(b)).body.store.projectsMetadata[0].environmentVariables.includes('RENAMED_URL'),
    );

    const deleted = await a.request(`/v1/storage/stores/integration/${storeId}?disconnect=true`, { method: 'DELETE' });
    assert.equal(deleted.status, 200);
    assert.equal((await store(a)).status, 404, 'gone at once on the node that deleted it');
    await eventually('node B answering 404', async () => (await store(b)).status === 404);
  });

  test("a user's change shows on GET /v2/user of every node", async () => {
    const before = await user(b);
    await sql.query("UPDATE users SET name = 'Renamed Owner' WHERE id = $1", [before.id]);
    await eventually('node B showing the new name', async () => (await user(b)).name === 'Renamed Owner');
    assert.equal((await user(a)).name, 'Renamed Owner');
  });

  test("a store cached for its team is another team's 404", async () => {
    const created = await a.request('/v1/storage/stores/integration/direct', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'mine', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
    });
    storeId = ((await created.json()) as any).store.id;
    assert.equal((await store(b)).status, 200);
    const db = a.runtime.db;
    const outsider = await createUser(db, { email: 'outsider@example.com' });
    const team = await createTeam(db, { slug: 'outsiders' });
    await setMember(db, team.id, outsider.id, 'OWNER');
    const { value } = await createToken(db, { userId: outsider.id, teamId: team.id, name: 'o' });
    assert.equal((await store(b, value)).status, 404);
    assert.equal((await store(b)).status, 200);
  });

  test('while a node cannot hear changes, it reads stores through to the database', async () => {
    assert.equal((await store(b)).status, 200);
    await deafenNodes(sql);
    await eventually('node B noticing it is deaf', async () => !b.runtime.feed.healthy, 2000);
    await sql.query("UPDATE stores SET name = 'renamed while deaf' WHERE id = $1", [storeId]);
    assert.equal((await store(b)).body.store.name, 'renamed while deaf');
    await eventually('node B listening again', async () => b.runtime.feed.healthy, 10_000);
  });
});
