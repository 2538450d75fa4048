/**
 * Several installations of one integration on a team, with the real `vercel` CLI (58.10.0) and
 * over HTTP: a second installation is made only when asked for (`newInstallation`); `vercel
 * integration add` without `--installation-id` gets the `multiple_installations` answer, which the
 * CLI lists, and creates nothing; `--installation-id` creates through the installation named; an
 * installation the team does not have of that integration is a 404 that changes nothing; and
 * update, remove and a partner's calls act on one installation at a time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { runAdminCommand } from '../src/admin/commands.ts';
import { randomBase62 } from '../src/ids.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { cliUser, readDotenv, type CliResult, type CliUser } from './cli-harness.ts';
import { errorOf, sdkFailure, startServer, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

const run = promisify(execFile);
const ok = (result: CliResult) => assert.equal(result.code, 0, `the command failed:\n${result.output}`);
const failed = (result: CliResult) => assert.equal(result.code, 1, `the command did not fail:\n${result.output}`);

/** What the API holds: the team's configurations of `slug` (oldest first) and its stores. */
function apiOf(server: TestServer) {
  return {
    configurations: async (slug: string) => {
      const response = await server.request(`/v2/integrations/configurations?view=account&integrationIdOrSlug=${slug}`);
      assert.equal(response.status, 200);
      return (await response.json()) as any[];
    },
    stores: async () => {
      const response = await server.request('/v1/storage/stores?limit=100');
      assert.equal(response.status, 200);
      return ((await response.json()) as { stores: any[] }).stores;
    },
    /** POST .../marketplace/install, as `vercel integration accept-terms` sends it, plus `extra`. */
    install: (slug: string, extra: object = {}, token?: string) =>
      server.request(`/v2/integrations/integration/${slug}/marketplace/install`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ acceptedPolicies: { toc: new Date().toISOString() }, source: 'cli', ...extra }),
        ...(token !== undefined && { token }),
      }),
    /** POST .../marketplace/auto-provision/{product}, as `vercel integration add` sends it, plus `extra`. */
    autoProvision: (slug: string, product: string, body: object) =>
      server.request(`/v1/integrations/integration/${slug}/marketplace/auto-provision/${product}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ metadata: {}, acceptedPolicies: {}, source: 'cli', ...body }),
      }),
  };
}

describe('two installations of storehouse on one team', () => {
  let server: TestServer;
  let api: ReturnType<typeof apiOf>;
  let cli: CliUser;
  let project: { id: string; name: string };
  let team: string;
  /** The bootstrap's installation, then the one made here. */
  let first: string;
  let second: string;

  /** Every store on the server, of every team: what a refused request must leave as it was. */
  const allStores = async () => (await server.runtime.db.query<{ id: string }>('SELECT id FROM stores ORDER BY id')).rows.map((r) => r.id);
  const allInstallations = async () =>
    (await server.runtime.db.query<{ id: string }>('SELECT id FROM installations ORDER BY id')).rows.map((r) => r.id);

  before(async () => {
    // The CLI refuses a --token with a "-" in it, which the harness's default tokens have.
    server = await startServer('embedded', { bootstrapToken: `cli${randomBase62(24)}` });
    api = apiOf(server);
    cli = cliUser(server);
    const created = await server.request('/v11/projects', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'multi-app' }),
    });
    assert.equal(created.status, 200);
    project = (await created.json()) as { id: string; name: string };
    ok(await cli.run(['link', '--yes', '--project', project.name]));
    team = ((await (await server.request('/v2/user')).json()) as any).user.defaultTeamId;
    [{ id: first }] = await api.configurations('storehouse');
  });
  after(async () => {
    cli?.remove();
    await server?.close();
  });

  test('another installation is made only when asked for (newInstallation); the SDK and vercel integration installations list both', async () => {
    const again = await errorOf(await api.install('storehouse'));
    assert.deepEqual([again.status, again.code], [409, 'already_installed']);
    assert.equal((await api.configurations('storehouse')).length, 1);

    const made = await api.install('storehouse', { newInstallation: true });
    assert.equal(made.status, 200, await made.clone().text());
    const configuration = (await made.json()) as any;
    second = configuration.id;
    assert.match(second, /^icfg_[A-Za-z0-9]+$/);
    assert.notEqual(second, first);
    assert.deepEqual([configuration.integrationId, configuration.source, configuration.ownerId], ['oac_storehouse', 'cli', team]);

    const listed = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'storehouse' });
    assert.deepEqual(
      listed.map((c) => c.id),
      [first, second],
    );
    const installations = await cli.run(['integration', 'installations']);
    ok(installations);
    for (const id of [first, second]) assert.match(installations.output, new RegExp(`${id}\\s+storehouse\\s+${team}`));
  });

  test('vercel integration add without --installation-id: the CLI lists both and says to re-run with one; nothing is made', async () => {
    const [stores, installations] = [await allStores(), await allInstallations()];
    const result = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'multi-db']);
    failed(result);
    assert.ok(
      result.output.includes(
        `Error: Multiple installations found for "storehouse":\n` +
          `  - ${first}, type=marketplace, status=ready\n` +
          `  - ${second}, type=marketplace, status=ready\n\n` +
          `Re-run with --installation-id to select one, e.g.:\n` +
          `  vercel integration add storehouse/postgres --installation-id ${first}`,
      ),
      result.output,
    );
    assert.deepEqual(await allStores(), stores);
    assert.deepEqual(await allInstallations(), installations);
    assert.equal(fs.existsSync(path.join(cli.cwd, '.env.local')), false);
  });

  test('the 422 over HTTP: Vercel error format with the fields the CLI reads; nothing is made', async () => {
    const [stores, installations] = [await allStores(), await allInstallations()];
    const response = await api.autoProvision('storehouse', 'postgres', { name: 'multi-raw' });
    const error = await errorOf(response);
    assert.deepEqual([error.status, error.code], [422, 'multiple_installations']);
    assert.match(error.message, /2 installations of storehouse: name one with installationId/);
    const { kind, reason, installations: listed, url, integration, product } = error.body.error;
    assert.deepEqual([kind, reason], ['unknown', 'multiple_installations']);
    assert.deepEqual(listed, [
      { id: first, type: 'marketplace', status: 'ready' },
      { id: second, type: 'marketplace', status: 'ready' },
    ]);
    assert.equal(new URL(url).pathname, '/dashboard/');
    assert.deepEqual([integration.id, integration.slug, integration.name], ['oac_storehouse', 'storehouse', 'Storehouse']);
    assert.deepEqual([product.slug, product.name, product.metadataSchema.type], ['postgres', 'Postgres', 'object']);
    // As Vercel answers them: at the top level too.
    const { error: _error, ...topLevel } = error.body;
    assert.deepEqual(topLevel, { kind, reason, installations: listed, url, integration, product });
    assert.deepEqual(await allStores(), stores);
    assert.deepEqual(await allInstallations(), installations);
  });

  test("an installationId that is not the team's installation of that integration is a 404 that changes nothing", async () => {
    const db = server.runtime.db;
    const stranger = await createUser(db, { email: `stranger-${randomBase62(6)}@example.com` });
    const otherTeam = await createTeam(db, { slug: `multi-other-${randomBase62(6).toLowerCase()}` });
    await setMember(db, otherTeam.id, stranger.id, 'OWNER');
    const foreign = await db.transaction((tx) =>
      install(tx, { teamId: otherTeam.id, integrationId: 'oac_storehouse', installedBy: stranger.id }),
    );
    const [stores, installations] = [await allStores(), await allInstallations()];

    for (const installationId of [foreign.id, 'icfg_nope']) {
      // Terms accepted in the call: still nothing is installed for a create refused.
      const acceptedPolicies = { toc: new Date().toISOString() };
      const error = await errorOf(
        await api.autoProvision('storehouse', 'postgres', { name: 'multi-foreign', installationId, acceptedPolicies }),
      );
      assert.deepEqual([error.status, error.code], [404, 'not_found']);
      assert.equal(error.message, `Could not find the installation of storehouse: ${installationId}`);
    }
    const cliForeign = await cli.run(['integration', 'add', 'storehouse/postgres', '--no-connect', '--installation-id', foreign.id]);
    failed(cliForeign);
    assert.ok(cliForeign.output.includes(`Error: Could not find the installation of storehouse: ${foreign.id} (404)`), cliForeign.output);
    assert.deepEqual(await allStores(), stores);
    assert.deepEqual(await allInstallations(), installations);

    // The other team's owner sees only its own installation, and may not add a second by accident.
    const theirs = (await createToken(db, { userId: stranger.id, teamId: otherTeam.id, name: 't' })).value;
    const refused = await errorOf(await api.install('storehouse', {}, theirs));
    assert.deepEqual([refused.status, refused.code], [409, 'already_installed']);
    assert.deepEqual(await allInstallations(), installations);
  });

  test('update: the CLI asks which installation; --installation-id changes that one only', async () => {
    const ambiguous = await cli.run(['integration', 'update', 'storehouse', '--projects', project.id]);
    failed(ambiguous);
    assert.match(
      ambiguous.output,
      new RegExp(`Multiple installations found for "storehouse": ${first}, ${second}\\. Re-run with --installation-id`),
    );
    ok(await cli.run(['integration', 'update', 'storehouse', '--installation-id', second, '--projects', project.id]));
    const selections = (await api.configurations('storehouse')).map((c) => [c.id, c.projectSelection, c.projects]);
    assert.deepEqual(selections, [
      [first, 'all', undefined],
      [second, 'selected', [project.id]],
    ]);
  });

  test('--installation-id: the store is made through that installation, connected to the project, and .env.local has a POSTGRES_URL', async () => {
    const result = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'multi-db', '--installation-id', second]);
    ok(result);
    assert.match(result.output, /Postgres successfully provisioned: multi-db/);
    assert.match(result.output, new RegExp(`Dashboard: .*/storehouse/${second}/resources/store_`));
    assert.match(result.output, /multi-db successfully connected to multi-app/);

    const [store] = (await api.stores()).filter((s) => s.name === 'multi-db');
    assert.equal(store.product.integrationConfigurationId, second);
    assert.equal(store.status, 'available');
    assert.deepEqual(
      store.projectsMetadata.map((p: any) => p.projectId),
      [project.id],
    );
    const env = readDotenv(path.join(cli.cwd, '.env.local'));
    assert.ok(env.POSTGRES_URL, `no POSTGRES_URL in .env.local: ${Object.keys(env).join(', ')}`);
    const { stdout } = await run('psql', [env.POSTGRES_URL, '-Atc', 'SELECT 41 + 1']);
    assert.equal(stdout.trim(), '42');
  });

  test("the team's store quota counts the stores of all its installations (through the SDK, naming each)", async () => {
    const held = (await api.stores()).length;
    await runAdminCommand(server.runtime, 'teams.quota', { team, quota: String(held + 1) });
    try {
      const create = (name: string, integrationConfigurationId: string) =>
        server.sdk().integrations.createIntegrationStoreDirect({
          requestBody: { name, integrationConfigurationId, integrationProductIdOrSlug: 'postgres' },
        });
      const made = await create('multi-quota', first);
      assert.equal(made.store?.product?.integrationConfigurationId, first);
      const stores = await allStores();
      const refused = await sdkFailure(create('multi-over', second));
      assert.deepEqual([refused.status, refused.code], [403, 'store_quota_exceeded']);
      assert.deepEqual(await allStores(), stores);
      const [store] = (await api.stores()).filter((s) => s.name === 'multi-quota');
      const deleted = await server.request(`/v1/storage/stores/integration/${store.id}`, { method: 'DELETE' });
      assert.equal(deleted.status, 200, await deleted.text());
    } finally {
      await runAdminCommand(server.runtime, 'teams.quota', { team, quota: 'default' });
    }
  });

  test('remove takes the installation the CLI lists first; the other keeps its store, and add is unambiguous again', async () => {
    const removed = await cli.run(['integration', 'remove', 'storehouse', '--yes']);
    ok(removed);
    assert.match(removed.output, /storehouse successfully removed/);
    assert.deepEqual(
      (await api.configurations('storehouse')).map((c) => c.id),
      [second],
    );
    assert.deepEqual(
      (await api.stores()).map((s) => [s.name, s.product.integrationConfigurationId]),
      [['multi-db', second]],
    );
    // Its store holds the one left: remove is refused, naming it.
    const refused = await cli.run(['integration', 'remove', 'storehouse', '--yes']);
    failed(refused);
    assert.match(refused.output, /Cannot uninstall storehouse because it still has resources\.[\s\S]*- multi-db\n/);

    const added = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'multi-after', '--no-connect']);
    ok(added);
    const [store] = (await api.stores()).filter((s) => s.name === 'multi-after');
    assert.equal(store.product.integrationConfigurationId, second);
  });

  test('two installs at once on a team without one: exactly one is made, the others are told it is installed; the operator adds another with --another', async () => {
    const db = server.runtime.db;
    const owner = await createUser(db, { email: `racer-${randomBase62(6)}@example.com` });
    const racing = await createTeam(db, { slug: `multi-race-${randomBase62(6).toLowerCase()}` });
    await setMember(db, racing.id, owner.id, 'OWNER');
    const token = (await createToken(db, { userId: owner.id, teamId: racing.id, name: 't' })).value;
    const answers = await Promise.all(Array.from({ length: 4 }, () => api.install('storehouse', {}, token)));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 409, 409, 409]);
    const installed = async () => (await db.query('SELECT id FROM installations WHERE team_id = $1', [racing.id])).rows.length;
    assert.equal(await installed(), 1);

    // The operator's `storehouse installations create`: refused as well, unless --another.
    const operator = (another?: boolean) =>
      runAdminCommand(server.runtime, 'installations.create', {
        team: racing.slug,
        integration: 'storehouse',
        ...(another && { another: 'true' }),
      });
    await assert.rejects(operator(), (error: any) => error.status === 409 && error.code === 'already_installed');
    assert.equal(await installed(), 1);
    const made = (await operator(true)) as { id: string; team: string };
    assert.equal(made.team, racing.slug);
    assert.equal(await installed(), 2);
  });
});

describe('two installations of a partner integration', () => {
  let fixture: StorehouseWithPartner;
  let server: TestServer;
  let api: ReturnType<typeof apiOf>;
  let cli: CliUser;
  let first: string;
  let second: string;

  before(async () => {
    fixture = await startStorehouseWithPartner({ bootstrapToken: `cli${randomBase62(24)}` });
    ({ server, installationId: first } = fixture);
    api = apiOf(server);
    cli = cliUser(server);
    const made = await api.install('acme', { newInstallation: true });
    assert.equal(made.status, 200, await made.clone().text());
    second = ((await made.json()) as any).id;
  });
  after(async () => {
    cli?.remove();
    await fixture?.close();
  });

  test('the partner provisions through the installation named, each under its own; remove uninstalls one installation only', async () => {
    const ambiguous = await cli.run(['integration', 'add', 'acme/postgres', '--name', 'acme-second', '--no-connect']);
    failed(ambiguous);
    assert.match(ambiguous.output, /Multiple installations found for "acme"/);
    assert.deepEqual(await fixture.partnerResourceIds(), []);

    const stores: Record<string, any> = {};
    for (const [name, installationId] of [
      ['acme-second', second],
      ['acme-first', first],
    ] as const) {
      ok(await cli.run(['integration', 'add', 'acme/postgres', '--name', name, '--no-connect', '--installation-id', installationId]));
      [stores[name]] = (await api.stores()).filter((s) => s.name === name);
      assert.equal(stores[name].product.integrationConfigurationId, installationId);
      // The partner heard of the installation (its upsert) before the resource made under it.
      const upserts = fixture.partnerCalls('PUT', `/v1/installations/${installationId}`).filter((r) => !r.url.includes('/resources/'));
      assert.equal(upserts.length, 1);
    }
    const live = (await (await fetch(`${fixture.partner.url}/_partner/resources`)).json()) as {
      resources: Array<{ id: string; installationId: string }>;
    };
    assert.deepEqual(
      live.resources.map((r) => [r.id, r.installationId]).sort(),
      [
        [stores['acme-second'].externalResourceId, second],
        [stores['acme-first'].externalResourceId, first],
      ].sort(),
    );

    // The first installation's store gone, remove (which takes the first the CLI lists) uninstalls it alone.
    ok(await cli.run(['integration', 'resource', 'remove', 'acme-first', '--disconnect-all', '--yes']));
    const uninstallsOf = (id: string) =>
      fixture.partnerCalls('DELETE', `/v1/installations/${id}`).filter((r) => !r.url.includes('/resources/')).length;
    const removed = await cli.run(['integration', 'remove', 'acme', '--yes']);
    ok(removed);
    assert.match(removed.output, /acme successfully removed/);
    assert.deepEqual([uninstallsOf(first), uninstallsOf(second)], [1, 0]);
    assert.deepEqual(
      (await api.configurations('acme')).map((c) => c.id),
      [second],
    );
    assert.deepEqual(await fixture.partnerResourceIds(), [stores['acme-second'].externalResourceId]);
  });
});
