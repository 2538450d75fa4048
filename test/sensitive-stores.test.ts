/**
 * Sensitive stores (issue 17): once a connection of a store is sensitive, only a team OWNER or the
 * user who installed its integration may read its credentials. A MEMBER or DEVELOPER may connect
 * it only as sensitive (left out, `makeEnvVarsSensitive` is then true), may not turn sensitivity
 * off (403, nothing changed) nor remove its last sensitive connection, and reads none of its
 * values by list with decrypt, get or pull; an OWNER, and a MEMBER who installed it, can.
 * Through the real @vercel/sdk where it has the call, else HTTP as the vercel CLI sends it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember, type TeamRole } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { BACKENDS, errorOf, sdkFailure, startServer, type TestServer } from './helpers.ts';

for (const backend of BACKENDS) {
  describe(`sensitive stores (${backend})`, () => {
    let server: TestServer;
    let icfg: string;
    let teamId: string;
    let storeId: string;
    let memberToken: string;
    let developerToken: string;
    /** The store's POSTGRES_URL, as an OWNER reads it. */
    let secretUrl: string;

    const tokenFor = async (team: string, email: string, role: TeamRole) => {
      const db = server.runtime.db;
      const user = await createUser(db, { email });
      await setMember(db, team, user.id, role);
      return { userId: user.id, token: (await createToken(db, { userId: user.id, teamId: team, name: 't' })).value };
    };
    const connect = (token: string, projectId: string, makeEnvVarsSensitive?: boolean, store = storeId, configuration = icfg) =>
      server.sdk(token).integrations.connectIntegrationResourceToProject({
        integrationConfigurationId: configuration,
        resourceId: store,
        requestBody: {
          projectId,
          envVarEnvironments: ['production', 'preview'],
          ...(makeEnvVarsSensitive !== undefined && { makeEnvVarsSensitive }),
        },
      });
    /** What a refused request must leave as it was: the store's connections, its variables (sealed values too) and the audit log. */
    const footprint = async () => {
      const db = server.runtime.db;
      const connections = await db.query(
        'SELECT project_id, environments, sensitive, env_var_prefix FROM store_connections WHERE store_id = $1 ORDER BY project_id',
        [storeId],
      );
      const envs = await db.query('SELECT id, project_id, key, value, type, targets FROM project_env WHERE store_id = $1 ORDER BY id', [
        storeId,
      ]);
      const audit = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
      return { connections: connections.rows, envs: envs.rows, audit: audit.rows[0]!.n };
    };
    const typesIn = async (project: string) =>
      (
        await server.runtime.db.query<{ type: string }>(
          'SELECT e.type FROM project_env e JOIN projects p ON p.id = e.project_id WHERE p.name = $1',
          [project],
        )
      ).rows.map((row) => row.type);
    const assertRefused = (refused: { status: number; code: string; message: string; body: unknown }, pattern: RegExp) => {
      assert.deepEqual([refused.status, refused.code], [403, 'forbidden'], refused.message);
      assert.match(refused.message, /team OWNER or the user who installed/);
      assert.match(refused.message, pattern);
      assert.ok(!JSON.stringify(refused.body).includes(secretUrl), 'a refusal never carries the value');
    };

    before(async () => {
      server = await startServer(backend);
      const sdk = server.sdk();
      icfg = (await sdk.integrations.getConfigurations({ view: 'account' }))[0]!.id!;
      teamId = (await server.runtime.db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      memberToken = (await tokenFor(teamId, `member-${backend}@example.com`, 'MEMBER')).token;
      developerToken = (await tokenFor(teamId, `developer-${backend}@example.com`, 'DEVELOPER')).token;
      await sdk.integrations.createIntegrationStoreDirect({
        requestBody: { name: 'vault-db', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
      });
      storeId = (await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'vault-db'")).rows[0]!.id;
      for (const name of ['ops-app', 'prod-app', 'member-app', 'member-cli-app', 'member-plain-app']) {
        await sdk.projects.createProject({ requestBody: { name } });
      }
      // The OWNER connects it readable to one project, then sensitive to another: the store is sensitive from then on.
      await connect(server.token, 'ops-app');
      await connect(server.token, 'prod-app', true);
      const listed = await sdk.projects.filterProjectEnvs({ idOrName: 'ops-app', decrypt: 'true' });
      assert.ok('envs' in listed);
      secretUrl = listed.envs.find((e) => e.key === 'POSTGRES_URL')!.value!;
      assert.match(secretUrl, /^postgres:\/\//);
      assert.deepEqual([...new Set(await typesIn('prod-app'))], ['sensitive']);
    });
    after(() => server?.close());

    test('a MEMBER reconnecting the store with sensitivity off is 403 and changes nothing', async () => {
      const before = await footprint();
      for (const token of [memberToken, developerToken]) {
        assertRefused(await sdkFailure(connect(token, 'prod-app', false)), /makeEnvVarsSensitive false/);
        // Through the vercel CLI's endpoint as well.
        const cli = await server.request(`/v1/storage/stores/${storeId}/connections`, {
          method: 'POST',
          token,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ projectId: 'prod-app', makeEnvVarsSensitive: false }),
        });
        assertRefused(await errorOf(cli), /makeEnvVarsSensitive false/);
      }
      assert.deepEqual(await footprint(), before);
      assert.deepEqual([...new Set(await typesIn('prod-app'))], ['sensitive']);
    });

    test('a MEMBER connecting it to another project makes only sensitive variables; asking for readable ones is 403', async () => {
      const before = await footprint();
      assertRefused(await sdkFailure(connect(memberToken, 'member-plain-app', false)), /makeEnvVarsSensitive false/);
      assert.deepEqual(await footprint(), before, 'no connection, no variable');
      assert.deepEqual(await typesIn('member-plain-app'), []);

      await connect(memberToken, 'member-app'); // left out: sensitive, as the store is
      const made = await typesIn('member-app');
      assert.ok(made.length > 0);
      assert.deepEqual([...new Set(made)], ['sensitive']);
      // The vercel CLI sends no makeEnvVarsSensitive at all.
      const cli = await server.request(`/v1/storage/stores/${storeId}/connections?teamId=${teamId}`, {
        method: 'POST',
        token: developerToken,
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({
          projectId: 'member-cli-app',
          envVarEnvironments: ['development'],
          type: 'integration',
          envVarPrefix: 'CLI_',
        }),
      });
      assert.equal(cli.status, 201, await cli.clone().text());
      assert.deepEqual([...new Set(await typesIn('member-cli-app'))], ['sensitive']);
      const pulled = await server.request(`/v3/env/pull/member-cli-app/development?source=vercel-cli:env:pull&teamId=${teamId}`, {
        token: developerToken,
      });
      assert.equal(pulled.status, 200);
      const body = (await pulled.json()) as any;
      assert.deepEqual(body.env, {}, 'a sensitive variable is never pulled');
      const { rows } = await server.runtime.db.query<{ sensitive: boolean }>(
        "SELECT c.sensitive FROM store_connections c JOIN projects p ON p.id = c.project_id WHERE p.name IN ('member-app', 'member-cli-app')",
      );
      assert.deepEqual(
        rows.map((row) => row.sensitive),
        [true, true],
      );
    });

    test('a MEMBER cannot read its values by list, get or pull; without decrypt the list still answers', async () => {
      const ownerList = await server.sdk().projects.filterProjectEnvs({ idOrName: 'ops-app', decrypt: 'true' });
      assert.ok('envs' in ownerList);
      const encrypted = ownerList.envs.find((e) => e.key === 'POSTGRES_URL')!;
      for (const token of [memberToken, developerToken]) {
        const sdk = server.sdk(token);
        assertRefused(await sdkFailure(sdk.projects.filterProjectEnvs({ idOrName: 'ops-app', decrypt: 'true' })), /vault-db/);
        assertRefused(await sdkFailure(sdk.projects.getProjectEnv({ idOrName: 'ops-app', id: encrypted.id! })), /POSTGRES_URL/);
        assertRefused(await errorOf(await server.request('/v3/env/pull/ops-app/production', { token })), /vault-db/);

        const plain = await sdk.projects.filterProjectEnvs({ idOrName: 'ops-app' });
        assert.ok('envs' in plain);
        const url = plain.envs.find((e) => e.key === 'POSTGRES_URL')!;
        assert.deepEqual([url.value, url.decrypted], ['', false]);
        const raw = await (await server.request('/v10/projects/ops-app/env', { token })).text();
        assert.ok(!raw.includes(secretUrl));
      }
      // A project with no readable variable of the store pulls as before.
      const pulled = await server.request('/v3/env/pull/prod-app/production', { token: memberToken });
      assert.equal(pulled.status, 200);
      assert.ok(!(await pulled.text()).includes(secretUrl));
      assert.ok(!server.logs.some((line) => line.includes(secretUrl)), 'no value in the logs');
    });

    test('an OWNER reads them by list, get and pull', async () => {
      const sdk = server.sdk();
      const listed = await sdk.projects.filterProjectEnvs({ idOrName: 'ops-app', decrypt: 'true' });
      assert.ok('envs' in listed);
      const url = listed.envs.find((e) => e.key === 'POSTGRES_URL')!;
      assert.deepEqual([url.value, url.decrypted], [secretUrl, true]);
      const one = await sdk.projects.getProjectEnv({ idOrName: 'ops-app', id: url.id! });
      assert.ok('value' in one && one.value === secretUrl);
      const pulled = (await (await server.request('/v3/env/pull/ops-app/production')).json()) as any;
      assert.equal(pulled.env.POSTGRES_URL, secretUrl);
    });

    test('a MEMBER may not remove its last sensitive connection; an OWNER may, and may turn sensitivity off', async () => {
      const disconnect = (token: string, which = '') =>
        server.request(`/v1/storage/stores/${storeId}/connections${which && `/${which}`}`, { method: 'DELETE', token });
      // Others stay sensitive (prod-app and member-cli-app): removing these two is allowed.
      assert.equal((await disconnect(memberToken, 'member-app')).status, 204);
      assert.equal((await disconnect(developerToken, 'member-cli-app')).status, 204);
      const before = await footprint();
      assertRefused(await errorOf(await disconnect(memberToken, 'prod-app')), /last sensitive connection/);
      assertRefused(await errorOf(await disconnect(memberToken)), /last sensitive connection/);
      assert.deepEqual(await footprint(), before, 'nothing was disconnected');

      // The OWNER reconnects prod-app readable: the store has no sensitive connection left, and is readable by members again.
      await connect(server.token, 'prod-app', false);
      assert.deepEqual([...new Set(await typesIn('prod-app'))], ['encrypted']);
      const pulled = (await (await server.request('/v3/env/pull/prod-app/production', { token: memberToken })).json()) as any;
      assert.equal(pulled.env.POSTGRES_URL, secretUrl);
      // Left out, the flag follows the store again: not sensitive now.
      await connect(memberToken, 'member-app');
      assert.deepEqual([...new Set(await typesIn('member-app'))], ['encrypted']);
    });

    test('a MEMBER who installed the integration is an admin of it: reads its sensitive store; another MEMBER does not', async () => {
      const db = server.runtime.db;
      const team = await createTeam(db, { slug: `installers-${backend}` });
      // Each token's default team is this one, so no call names it.
      const owner = await tokenFor(team.id, `owner-${backend}@installers.dev`, 'OWNER');
      const installer = await tokenFor(team.id, `installer-${backend}@installers.dev`, 'MEMBER');
      const peer = await tokenFor(team.id, `peer-${backend}@installers.dev`, 'MEMBER');
      const configuration = (await install(db, { teamId: team.id, integrationId: 'oac_storehouse', installedBy: installer.userId })).id;
      await server.sdk(installer.token).integrations.createIntegrationStoreDirect({
        requestBody: { name: 'installer-db', integrationConfigurationId: configuration, integrationProductIdOrSlug: 'postgres' },
      });
      const store = (await db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'installer-db' AND team_id = $1", [team.id]))
        .rows[0]!.id;
      for (const name of ['app', 'secure-app']) await server.sdk(owner.token).projects.createProject({ requestBody: { name } });
      const connectIn = (token: string, projectId: string, sensitive?: boolean) =>
        server.sdk(token).integrations.connectIntegrationResourceToProject({
          integrationConfigurationId: configuration,
          resourceId: store,
          requestBody: { projectId, ...(sensitive !== undefined && { makeEnvVarsSensitive: sensitive }) },
        });
      await connectIn(installer.token, 'app', false);
      await connectIn(installer.token, 'secure-app', true);

      const refused = await errorOf(await server.request('/v3/env/pull/app/production', { token: peer.token }));
      assert.deepEqual([refused.status, refused.code], [403, 'forbidden']);
      assert.match(refused.message, /installer-db/);
      const reconnect = await sdkFailure(connectIn(peer.token, 'secure-app', false));
      assert.deepEqual([reconnect.status, reconnect.code], [403, 'forbidden']);

      for (const token of [installer.token, owner.token]) {
        const pulled = (await (await server.request('/v3/env/pull/app/production', { token })).json()) as any;
        assert.match(pulled.env.POSTGRES_URL, /^postgres:\/\//);
      }
      const deleted = await server.request(`/v1/storage/stores/integration/${store}?disconnect=true`, {
        method: 'DELETE',
        token: installer.token,
      });
      assert.equal(deleted.status, 200);
    });
  });
}
