/**
 * Projects, environment variables and teams as the real `vercel` CLI 58.10.0 writes and reads
 * them (issue 13, part B): `teams ls`, `project add`, `link --yes` creating a project, `env add`
 * (sensitive by default on Production and Preview, `--no-sensitive`, `--force` for upsert),
 * `env update`, `env rm`, `env ls` and `env pull`, asserting what a user sees; a store's
 * variables stay the store's (refused by hand, listed as Vercel lists each type); a VIEWER
 * writes nothing. Then the same endpoints through @vercel/sdk and raw HTTP for the edge cases:
 * bad bodies (400 in Vercel's format), unknown and other teams' projects and variables (404),
 * upsert splitting environments, type changes, clashes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { randomBase62 } from '../src/ids.ts';
import { createTeam, setMember, type TeamRole } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { type CliUser, cliUser } from './cli-harness.ts';
import { BACKENDS, errorOf, sdkFailure, startServer, type TestServer } from './helpers.ts';

/** The CLI refuses a token with "-" in it, so the bootstrap token has none. */
const cliToken = () => `cli${randomBase62(32)}`;

async function memberToken(server: TestServer, teamId: string, email: string, role: TeamRole): Promise<string> {
  const db = server.runtime.db;
  const user = await createUser(db, { email });
  await setMember(db, teamId, user.id, role);
  return (await createToken(db, { userId: user.id, teamId, name: 'cli' })).value;
}

async function teamIdOf(server: TestServer, slug = 'my-team'): Promise<string> {
  return (await server.runtime.db.query<{ id: string }>('SELECT id FROM teams WHERE slug = $1', [slug])).rows[0]!.id;
}

/** The rows of `vercel env ls` as [name, value, type, environments], parsed from its table (colour is off). */
function envTable(output: string): string[][] {
  const lines = output.split('\n');
  const header = lines.findIndex((line) => /^\s*name\s+value\s+type\s+environments/.test(line));
  assert.ok(header >= 0, `no env table in:\n${output}`);
  const columns = ['name', 'value', 'type', 'environments', 'created'].map((name) => lines[header]!.indexOf(name));
  return lines
    .slice(header + 1)
    .filter((line) => line.trim() !== '')
    .map((line) => columns.slice(0, 4).map((start, i) => line.slice(start, columns[i + 1]).trim()));
}

const rowOf = (table: string[][], name: string) => table.filter((row) => row[0] === name);

/** The team's projects named `name` (a search), through the SDK. */
async function projectsNamed(server: TestServer, name: string): Promise<Array<{ id: string; name: string }>> {
  const listed = await server.sdk().projects.getProjects({ search: name });
  assert.ok('projects' in listed, 'a page of projects');
  return listed.projects.filter((p) => p.name === name);
}

function assertOk(result: { code: number | null; output: string }, what: string): void {
  assert.equal(result.code, 0, `${what} failed:\n${result.output}`);
}

describe('the vercel CLI: projects, env vars and teams', () => {
  let server: TestServer;
  let user: CliUser;
  let teamId: string;

  before(async () => {
    server = await startServer('embedded', { bootstrapToken: cliToken() });
    user = cliUser(server);
    teamId = await teamIdOf(server);
  });
  after(async () => {
    user?.remove();
    await server?.close();
  });

  test("teams ls lists the user's teams, a page at a time with --limit and --next", async () => {
    const db = server.runtime.db;
    const owner = (await db.query<{ user_id: string }>("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'OWNER'", [teamId]))
      .rows[0]!.user_id;
    const other = await createTeam(db, { slug: 'side-project', name: 'Side Project' });
    await setMember(db, other.id, owner, 'MEMBER');

    const all = await user.run(['teams', 'ls']);
    assertOk(all, 'teams ls');
    assert.match(all.output, /my-team\s+My Team/);
    assert.match(all.output, /side-project\s+Side Project/);

    const first = await user.run(['teams', 'ls', '--limit', '1']);
    assertOk(first, 'teams ls --limit 1');
    assert.match(first.output, /my-team\s+My Team/);
    assert.doesNotMatch(first.output, /side-project/);
    const next = first.output.match(/teams ls.* --next (\d+)/);
    assert.ok(next, `no next page offered:\n${first.output}`);
    const second = await user.run(['teams', 'ls', '--limit', '1', '--next', next[1]!]);
    assertOk(second, 'teams ls --next');
    assert.match(second.output, /side-project\s+Side Project/);
    assert.doesNotMatch(second.output, /my-team\s+My Team/);
    assert.doesNotMatch(second.output, /--next/, 'the last page offers no next one');
  });

  test('project add creates the project once; adding it again is still a success', async () => {
    const added = await user.run(['project', 'add', 'web-app']);
    assertOk(added, 'project add');
    assert.match(added.output, /Success! Project web-app added \(my-team\)/);
    const again = await user.run(['project', 'add', 'web-app']);
    assertOk(again, 'project add again'); // the CLI takes Vercel's 409 as "already there"
    assert.equal((await projectsNamed(server, 'web-app')).length, 1);
    const ls = await user.run(['project', 'ls']);
    assertOk(ls, 'project ls');
    assert.match(ls.output, /web-app/);
  });

  test('link --yes with a new project name creates it and links the directory to it', async () => {
    const dir = fs.mkdtempSync(path.join(user.cwd, 'linked-'));
    const linked = await user.run(['link', '--yes', '--project', 'fresh-app', '--team', 'my-team'], { cwd: dir });
    assertOk(linked, 'link --yes');
    const [created] = await projectsNamed(server, 'fresh-app');
    assert.ok(created, `no project fresh-app after link:\n${linked.output}`);
    const written = JSON.parse(fs.readFileSync(path.join(dir, '.vercel', 'project.json'), 'utf8'));
    assert.equal(written.projectId, created.id);
    assert.equal(written.orgId, teamId);
  });

  test("env add, ls, update, pull and rm of variables of the project's own", async () => {
    const run = (args: string[]) => user.run([...args, '--project', 'web-app']);

    const sensitive = await run(['env', 'add', 'API_KEY', 'production,preview', '--value', 's3cret-value', '--yes']);
    assertOk(sensitive, 'env add API_KEY');
    assert.match(sensitive.output, /Added\s+API_KEY/);
    assert.match(sensitive.output, /Type\s+Sensitive/);
    const dev = await run(['env', 'add', 'SITE_URL', 'development', '--value', 'http://localhost:3000', '--yes']);
    assertOk(dev, 'env add SITE_URL');
    assert.match(dev.output, /Type\s+Non-sensitive/);
    const readable = await run(['env', 'add', 'DEBUG', 'preview', '--value', 'verbose', '--no-sensitive', '--yes']);
    assertOk(readable, 'env add DEBUG --no-sensitive');

    let table = envTable((await run(['env', 'ls'])).output);
    assert.deepEqual(rowOf(table, 'API_KEY'), [['API_KEY', 'Hidden', 'Sensitive', 'Production, Preview']]);
    // An encrypted value is not in the list (decrypt only): the CLI shows an empty value.
    assert.deepEqual(rowOf(table, 'SITE_URL'), [['SITE_URL', '', 'Non-sensitive', 'Development']]);
    assert.deepEqual(rowOf(table, 'DEBUG'), [['DEBUG', '', 'Non-sensitive', 'Preview']]);

    const pullFile = path.join(user.cwd, 'web-app.env');
    // A fresh file each time: a pull keeps the variables a file already has that the environment lacks.
    const pull = async (environment: string) => {
      fs.rmSync(pullFile, { force: true });
      const pulled = await run(['env', 'pull', pullFile, '--environment', environment, '--yes']);
      assertOk(pulled, `env pull ${environment}`);
      return fs.readFileSync(pullFile, 'utf8');
    };
    let pulled = await pull('development');
    assert.match(pulled, /^SITE_URL="http:\/\/localhost:3000"$/m);
    assert.doesNotMatch(pulled, /API_KEY|DEBUG/);
    pulled = await pull('preview');
    assert.match(pulled, /^DEBUG="verbose"$/m);
    assert.doesNotMatch(pulled, /s3cret/, 'a sensitive value is never pulled');

    const updated = await run(['env', 'update', 'SITE_URL', 'development', '--value', 'http://localhost:4000', '--yes']);
    assertOk(updated, 'env update');
    assert.match(updated.output, /Updated Environment Variable SITE_URL in Project web-app/);
    assert.match(await pull('development'), /^SITE_URL="http:\/\/localhost:4000"$/m);
    // A sensitive one is updated too (its key is not sent, as the CLI does), still unreadable.
    assertOk(await run(['env', 'update', 'API_KEY', 'production', '--value', 'n3w-secret', '--yes']), 'env update API_KEY');
    table = envTable((await run(['env', 'ls'])).output);
    assert.deepEqual(rowOf(table, 'API_KEY'), [['API_KEY', 'Hidden', 'Sensitive', 'Production, Preview']]);

    // Again for an environment it has: Vercel's ENV_ALREADY_EXISTS, printed as the server says it.
    const twice = await run(['env', 'add', 'SITE_URL', 'development', '--value', 'http://other', '--yes']);
    assert.equal(twice.code, 1, twice.output);
    assert.match(twice.output, /A variable with the name SITE_URL already exists for the target development in the project web-app/);
    const forced = await run(['env', 'add', 'SITE_URL', 'development', '--value', 'http://forced', '--yes', '--force']);
    assertOk(forced, 'env add --force');
    assert.match(forced.output, /Overrode\s+SITE_URL/);
    assert.match(await pull('development'), /^SITE_URL="http:\/\/forced"$/m);
    assert.equal(rowOf(envTable((await run(['env', 'ls'])).output), 'SITE_URL').length, 1, 'replaced, not added beside');

    const removed = await run(['env', 'rm', 'DEBUG', '--yes']);
    assertOk(removed, 'env rm');
    assert.match(removed.output, /Removed Environment Variable/);
    table = envTable((await run(['env', 'ls'])).output);
    assert.deepEqual(rowOf(table, 'DEBUG'), []);
    assert.doesNotMatch(await pull('preview'), /DEBUG/);
  });

  test("a plain variable (the API's, not the CLI's) is listed with its value", async () => {
    const created = await server.request('/v10/projects/web-app/env', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'REGION', value: 'eu-west', type: 'plain', target: ['production'] }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const table = envTable((await user.run(['env', 'ls', '--project', 'web-app'])).output);
    assert.deepEqual(rowOf(table, 'REGION'), [['REGION', 'eu-west', 'Non-sensitive', 'Production']]);
  });

  test("a store's variables are listed as Vercel lists each type, and cannot be changed or removed by hand", async () => {
    const sdk = server.sdk();
    const icfg = (await sdk.integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    await sdk.integrations.createIntegrationStoreDirect({
      requestBody: { name: 'shop-db', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
    });
    const storeId = (await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'shop-db'")).rows[0]!.id;
    for (const name of ['shop-app', 'vault-app']) await sdk.projects.createProject({ requestBody: { name } });
    const connect = (projectId: string, makeEnvVarsSensitive: boolean) =>
      sdk.integrations.connectIntegrationResourceToProject({
        integrationConfigurationId: icfg,
        resourceId: storeId,
        requestBody: { projectId, envVarEnvironments: ['production', 'preview', 'development'], makeEnvVarsSensitive },
      });
    await connect('shop-app', false);
    await connect('vault-app', true);
    const url = (await (await server.request('/v3/env/pull/shop-app/production')).json()).env.POSTGRES_URL as string;
    assert.match(url, /^postgres(ql)?:\/\//);

    const shopLs = await user.run(['env', 'ls', '--project', 'shop-app']);
    assertOk(shopLs, 'env ls shop-app');
    assert.deepEqual(rowOf(envTable(shopLs.output), 'POSTGRES_URL'), [
      ['POSTGRES_URL', '', 'Non-sensitive', 'Production, Preview, Development'],
    ]);
    assert.ok(!shopLs.output.includes(url) && !/v[12]:[A-Za-z0-9+/=]+:/.test(shopLs.output), 'no value and no ciphertext in the list');
    const json = JSON.parse((await user.run(['env', 'ls', '--project', 'shop-app', '--format', 'json'])).stdout);
    const listed = json.envs.find((e: any) => e.key === 'POSTGRES_URL');
    assert.equal(listed.type, 'encrypted');
    assert.equal(listed.configurationId, icfg, "a store's variable names its installation, as Vercel's name theirs");
    assert.ok(!listed.value, 'no value without decrypt');
    // Through the SDK, as Vercel lists an integration store's secret: its hint names the store.
    const viaSdk = await sdk.projects.filterProjectEnvs({ idOrName: 'shop-app' });
    assert.ok('envs' in viaSdk);
    const hinted = viaSdk.envs.find((e) => e.key === 'POSTGRES_URL')!;
    const product = (await server.runtime.db.query<{ product_id: string }>('SELECT product_id FROM stores WHERE id = $1', [storeId]))
      .rows[0]!;
    assert.deepEqual(hinted.contentHint, {
      type: 'integration-store-secret',
      storeId,
      integrationId: 'oac_storehouse',
      integrationProductId: product.product_id,
      integrationConfigurationId: icfg,
    });
    const vaultLs = await user.run(['env', 'ls', '--project', 'vault-app']);
    assert.deepEqual(rowOf(envTable(vaultLs.output), 'POSTGRES_URL'), [
      ['POSTGRES_URL', 'Hidden', 'Sensitive', 'Production, Preview, Development'],
    ]);

    const update = await user.run([
      'env',
      'update',
      'POSTGRES_URL',
      'production',
      '--value',
      'postgres://elsewhere',
      '--yes',
      '--project',
      'shop-app',
    ]);
    assert.equal(update.code, 1, update.output);
    assert.match(update.output, /POSTGRES_URL is a variable of the store shop-db/);
    assert.match(update.output, /vercel integration resource disconnect shop-db shop-app/);
    const remove = await user.run(['env', 'rm', 'POSTGRES_URL', 'production', '--yes', '--project', 'shop-app']);
    assert.equal(remove.code, 1, remove.output);
    assert.match(remove.output, /POSTGRES_URL is a variable of the store shop-db/);
    const add = await user.run(['env', 'add', 'POSTGRES_URL', 'production', '--value', 'x', '--yes', '--force', '--project', 'shop-app']);
    assert.equal(add.code, 1, add.output);
    assert.match(add.output, /POSTGRES_URL is already a variable of the store shop-db/);
    const after = (await (await server.request('/v3/env/pull/shop-app/production')).json()).env.POSTGRES_URL;
    assert.equal(after, url, "the store's value is unchanged");

    // A variable of the project's own under another name sits beside the store's.
    assertOk(
      await user.run([
        'env',
        'add',
        'POSTGRES_POOL_SIZE',
        'production',
        '--value',
        '5',
        '--no-sensitive',
        '--yes',
        '--project',
        'shop-app',
      ]),
      'env add beside a store',
    );
  });

  test('a VIEWER lists but writes nothing, and pulls no value', async () => {
    const viewer = await memberToken(server, teamId, 'viewer@cli.test', 'VIEWER');
    const before = await server.runtime.db.query('SELECT id, key, targets, updated_at FROM project_env ORDER BY id');
    const as = (args: string[]) => user.run([...args, '--project', 'web-app'], { token: viewer });
    const ls = await as(['env', 'ls']);
    assertOk(ls, 'env ls as a viewer');
    assert.ok(rowOf(envTable(ls.output), 'API_KEY').length === 1);
    for (const args of [
      ['env', 'add', 'VIEWER_VAR', 'production', '--value', 'v', '--yes'],
      ['env', 'update', 'SITE_URL', 'development', '--value', 'v', '--yes'],
      ['env', 'rm', 'SITE_URL', '--yes'],
      ['env', 'pull', path.join(user.cwd, 'viewer.env'), '--environment', 'development', '--yes'],
    ]) {
      const refused = await as(args);
      assert.equal(refused.code, 1, `${args.join(' ')}:\n${refused.output}`);
      assert.match(refused.output, /A team viewer cannot change projects or read their environment variables/, args.join(' '));
    }
    assert.ok(!fs.existsSync(path.join(user.cwd, 'viewer.env')));
    const project = await user.run(['project', 'add', 'viewer-app'], { token: viewer });
    assert.equal(project.code, 1, project.output);
    const after = await server.runtime.db.query('SELECT id, key, targets, updated_at FROM project_env ORDER BY id');
    assert.deepEqual(after.rows, before.rows);
  });
});

for (const backend of BACKENDS) {
  describe(`env var writes through the SDK and HTTP (${backend})`, () => {
    let server: TestServer;
    const json = (method: string, body: unknown, token?: string) => ({
      method,
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...(token !== undefined && { token }),
    });

    before(async () => {
      server = await startServer(backend);
      const sdk = server.sdk();
      for (const name of ['api-app', 'edge-app']) await sdk.projects.createProject({ requestBody: { name } });
    });
    after(() => server?.close());

    test('POST /v1/projects answers as /v11/projects', async () => {
      const created = await server.request(
        '/v1/projects',
        json('POST', { name: 'v1-app', framework: 'nextjs', buildCommand: 'next build' }),
      );
      assert.equal(created.status, 200);
      const project = (await created.json()) as any;
      assert.equal(project.name, 'v1-app');
      assert.equal(project.framework, 'nextjs');
      assert.match(project.id, /^prj_/);
      assert.deepEqual(
        (await projectsNamed(server, 'v1-app')).map((p) => p.id),
        [project.id],
      );
      const again = await errorOf(await server.request('/v1/projects', json('POST', { name: 'v1-app' })));
      assert.equal(again.status, 409);
      const bad = await errorOf(await server.request('/v1/projects', json('POST', { name: 'Not Valid' })));
      assert.deepEqual([bad.status, bad.code], [400, 'invalid_name']);
    });

    test('GET /v2/teams pages with limit and next', async () => {
      const page = (await (await server.request('/v2/teams?limit=20')).json()) as any;
      assert.deepEqual(
        page.teams.map((t: any) => t.slug),
        ['my-team'],
      );
      assert.deepEqual(page.pagination, { count: 1, next: null, prev: null });
      const bad = await errorOf(await server.request('/v2/teams?limit=0'));
      assert.deepEqual([bad.status, bad.code], [400, 'bad_request']);
    });

    test('create, edit and remove through the SDK; values by type', async () => {
      const sdk = server.sdk();
      const created = await sdk.projects.createProjectEnv({
        idOrName: 'api-app',
        requestBody: [
          { key: 'PLAIN_ONE', value: 'visible', type: 'plain', target: ['production', 'preview'] },
          { key: 'ENC_ONE', value: 'hidden-unless-decrypt', type: 'encrypted', target: ['production'] },
          { key: 'SENS_ONE', value: 'never-read', type: 'sensitive', target: ['production'] },
        ],
      });
      assert.deepEqual(created.failed, []);
      const made = created.created as any[];
      assert.deepEqual(
        made.map((e) => [e.key, e.type, e.value]),
        [
          ['PLAIN_ONE', 'plain', 'visible'],
          ['ENC_ONE', 'encrypted', ''],
          ['SENS_ONE', 'sensitive', ''],
        ],
      );
      const single = await sdk.projects.createProjectEnv({
        idOrName: 'api-app',
        requestBody: { key: 'SINGLE', value: 'one', type: 'encrypted', target: ['development'] },
      });
      assert.equal((single.created as any).key, 'SINGLE');

      const listed = await sdk.projects.filterProjectEnvs({ idOrName: 'api-app', decrypt: 'true' });
      assert.ok('envs' in listed);
      const byKey = Object.fromEntries(listed.envs.map((e) => [e.key, e]));
      assert.equal(byKey.PLAIN_ONE!.value, 'visible');
      assert.equal(byKey.PLAIN_ONE!.contentHint, null, "a variable of the project's own has no store hint");
      assert.equal(byKey.ENC_ONE!.value, 'hidden-unless-decrypt');
      assert.ok(!byKey.SENS_ONE!.value, 'a sensitive value is never read back');
      const stored = await server.runtime.db.query<{ value: string }>("SELECT value FROM project_env WHERE key = 'PLAIN_ONE'");
      assert.match(stored.rows[0]!.value, /^v2:/, 'every value is sealed at rest, a plain one too');

      const edited = await sdk.projects.editProjectEnv({
        idOrName: 'api-app',
        id: byKey.ENC_ONE!.id!,
        requestBody: { value: 'changed', target: ['production', 'preview'] },
      });
      assert.deepEqual([edited.key, edited.type, edited.value, edited.target], ['ENC_ONE', 'encrypted', '', ['production', 'preview']]);
      const got = await sdk.projects.getProjectEnv({ idOrName: 'api-app', id: byKey.ENC_ONE!.id! });
      assert.equal((got as any).value, 'changed');
      // Renamed and made plain: the value stays (re-sealed for the same row).
      const renamed = await sdk.projects.editProjectEnv({
        idOrName: 'api-app',
        id: byKey.ENC_ONE!.id!,
        requestBody: { key: 'ENC_RENAMED', type: 'plain' },
      });
      assert.deepEqual([renamed.key, renamed.value], ['ENC_RENAMED', 'changed']);

      // Leaving sensitive needs the value, which is never read back.
      const refused = await sdkFailure(
        sdk.projects.editProjectEnv({ idOrName: 'api-app', id: byKey.SENS_ONE!.id!, requestBody: { type: 'encrypted' } }),
      );
      assert.deepEqual([refused.status, refused.code], [400, 'MISSING_VALUE']);
      const unsealed = await sdk.projects.editProjectEnv({
        idOrName: 'api-app',
        id: byKey.SENS_ONE!.id!,
        requestBody: { type: 'encrypted', value: 'now-readable' },
      });
      assert.equal(unsealed.type, 'encrypted');

      const removed = await sdk.projects.removeProjectEnv({ idOrName: 'api-app', id: byKey.PLAIN_ONE!.id! });
      assert.equal((removed as any).key, 'PLAIN_ONE');
      const gone = await sdkFailure(sdk.projects.removeProjectEnv({ idOrName: 'api-app', id: byKey.PLAIN_ONE!.id! }));
      assert.deepEqual([gone.status, gone.code], [404, 'not_found']);
    });

    test('upsert replaces a variable for the environments asked, and leaves it the others', async () => {
      const post = (body: unknown, upsert = false) =>
        server.request(`/v10/projects/api-app/env${upsert ? '?upsert=true' : ''}`, json('POST', body));
      assert.equal(
        (await post({ key: 'SPLIT', value: 'all', type: 'encrypted', target: ['production', 'preview', 'development'] })).status,
        201,
      );
      const clash = await errorOf(await post({ key: 'SPLIT', value: 'prod', type: 'encrypted', target: ['production'] }));
      assert.deepEqual([clash.status, clash.code], [400, 'ENV_ALREADY_EXISTS']);
      assert.deepEqual(clash.body.error.target, ['production']);
      assert.equal((await post({ key: 'SPLIT', value: 'prod', type: 'encrypted', target: ['production'] }, true)).status, 201);
      const pulled = async (target: string) => ((await (await server.request(`/v3/env/pull/api-app/${target}`)).json()) as any).env.SPLIT;
      assert.deepEqual([await pulled('production'), await pulled('preview'), await pulled('development')], ['prod', 'all', 'all']);
      // Exactly the same environments: updated in place, the id kept.
      const before = (await server.runtime.db.query("SELECT id FROM project_env WHERE key = 'SPLIT' AND targets = '[\"production\"]'"))
        .rows[0]!.id;
      const again = (await (await post({ key: 'SPLIT', value: 'prod2', type: 'sensitive', target: ['production'] }, true)).json()) as any;
      assert.equal(again.created.id, before);
      assert.equal(again.created.type, 'sensitive');
      // All of them: one variable left.
      assert.equal(
        (await post({ key: 'SPLIT', value: 'one', type: 'plain', target: ['preview', 'production', 'development'] }, true)).status,
        201,
      );
      const rows = await server.runtime.db.query("SELECT targets FROM project_env WHERE key = 'SPLIT'");
      assert.deepEqual(
        rows.rows.map((r) => r.targets),
        [['production', 'preview', 'development']],
      );
    });

    test('writes to one project take turns: of adds racing for a key, one wins; racing upserts leave one variable', async () => {
      const post = (value: string, upsert: boolean) =>
        server.request(
          `/v10/projects/edge-app/env${upsert ? '?upsert=true' : ''}`,
          json('POST', { key: 'RACE', value, type: 'encrypted', target: ['preview'] }),
        );
      const added = await Promise.all(Array.from({ length: 8 }, (_, i) => post(`v${i}`, false)));
      assert.deepEqual(added.map((r) => r.status).sort(), [201, 400, 400, 400, 400, 400, 400, 400]);
      const upserted = await Promise.all(Array.from({ length: 8 }, (_, i) => post(`u${i}`, true)));
      assert.deepEqual(new Set(upserted.map((r) => r.status)), new Set([201]));
      const rows = await server.runtime.db.query("SELECT targets FROM project_env WHERE key = 'RACE'");
      assert.deepEqual(
        rows.rows.map((r) => r.targets),
        [['preview']],
      );
    });

    test('an edit that would overlap another variable of the key is refused', async () => {
      const post = (body: unknown) => server.request('/v10/projects/edge-app/env', json('POST', body));
      const prod = (await (await post({ key: 'TWIN', value: 'p', type: 'encrypted', target: ['production'] })).json()) as any;
      await post({ key: 'TWIN', value: 'd', type: 'encrypted', target: ['development'] });
      const widened = await errorOf(
        await server.request(`/v10/projects/edge-app/env/${prod.created.id}`, json('PATCH', { target: ['production', 'development'] })),
      );
      assert.deepEqual([widened.status, widened.code], [400, 'ENV_ALREADY_EXISTS']);
      await post({ key: 'OTHER', value: 'o', type: 'encrypted', target: ['production'] });
      const renamed = await errorOf(await server.request(`/v10/projects/edge-app/env/${prod.created.id}`, json('PATCH', { key: 'OTHER' })));
      assert.deepEqual([renamed.status, renamed.code], [400, 'ENV_ALREADY_EXISTS']);
      const batch = await errorOf(
        await post([
          { key: 'DUP', value: '1', type: 'plain', target: ['preview'] },
          { key: 'DUP', value: '2', type: 'plain', target: ['preview'] },
        ]),
      );
      assert.deepEqual([batch.status, batch.code], [400, 'ENV_ALREADY_EXISTS']);
      const dup = await server.runtime.db.query("SELECT 1 FROM project_env WHERE key = 'DUP'");
      assert.equal(dup.rows.length, 0, 'a refused batch adds none of its variables');
    });

    test("bad bodies are 400 in Vercel's format and change nothing", async () => {
      const count = async () => (await server.runtime.db.query('SELECT count(*)::int AS n FROM project_env')).rows[0]!.n;
      const before = await count();
      const good = { key: 'GOOD', value: 'v', type: 'plain', target: ['production'] };
      const cases: Array<[unknown, string, RegExp?]> = [
        ['', 'bad_request'],
        ['"a string"', 'bad_request'],
        [[], 'bad_request'],
        [{ ...good, key: undefined }, 'MISSING_KEY'],
        [{ ...good, key: '1STARTS_WITH_DIGIT' }, 'KEY_INVALID_CHARACTERS'],
        [{ ...good, key: 'HAS-DASH' }, 'KEY_INVALID_CHARACTERS'],
        [{ ...good, key: 'K'.repeat(257) }, 'KEY_INVALID_LENGTH'],
        [{ ...good, value: undefined }, 'MISSING_VALUE'],
        [{ ...good, value: 'x'.repeat(65_537) }, 'VALUE_INVALID_LENGTH'],
        // Taken as sent, never coerced: null is not an empty value, nor 42 the text "42".
        [{ ...good, value: null }, 'bad_request'],
        [{ ...good, value: 42 }, 'bad_request'],
        [{ ...good, type: undefined }, 'MISSING_TYPE'],
        [{ ...good, type: 'system' }, 'VALUE_INVALID_TYPE'],
        [{ ...good, type: 'secret' }, 'VALUE_INVALID_TYPE'],
        [{ ...good, target: [] }, 'MISSING_TARGET'],
        [{ ...good, target: ['staging'] }, 'INVALID_TARGET'],
        [{ ...good, target: ['preview'], gitBranch: 'feature-1' }, 'BAD_REQUEST', /branch-specific/],
        [{ ...good, customEnvironmentIds: ['env_1'] }, 'BAD_REQUEST', /custom environments/],
        [{ ...good, type: 'encrypted', visibility: 'secret' }, 'BAD_REQUEST', /Visibility/],
      ];
      for (const [body, code, message] of cases) {
        const response = await server.request('/v10/projects/api-app/env', json('POST', body as never));
        const refused = await errorOf(response);
        assert.deepEqual([refused.status, refused.code], [400, code], `${JSON.stringify(body)?.slice(0, 80)}: ${refused.message}`);
        if (message) assert.match(refused.message, message);
      }
      const unknownUpsert = await errorOf(await server.request('/v10/projects/api-app/env?upsert=maybe', json('POST', good)));
      assert.equal(unknownUpsert.status, 400);
      assert.equal(await count(), before);
      // Nor does an edit blank a variable with a null value.
      const created = (await (
        await server.request('/v10/projects/api-app/env', json('POST', { ...good, key: 'KEPT', type: 'encrypted' }))
      ).json()) as any;
      const edited = await errorOf(
        await server.request(`/v10/projects/api-app/env/${created.created.id}`, json('PATCH', { value: null } as never)),
      );
      assert.equal(edited.status, 400);
      const read = (await (await server.request(`/v1/projects/api-app/env/${created.created.id}`)).json()) as any;
      assert.equal(read.value, 'v');
      await server.request(`/v10/projects/api-app/env/${created.created.id}`, { method: 'DELETE' });
    });

    test('unknown projects and variables, and those of another team, are 404', async () => {
      const db = server.runtime.db;
      const other = await createTeam(db, { slug: `rival-${backend}`, name: 'Rival' });
      const rivalToken = await memberToken(server, other.id, `rival-${backend}@example.com`, 'OWNER');
      await server.sdk(rivalToken).projects.createProject({ requestBody: { name: 'rival-app' } });
      const rivalEnv = (await (
        await server.request(
          '/v10/projects/rival-app/env',
          json('POST', { key: 'R', value: 'r', type: 'plain', target: ['production'] }, rivalToken),
        )
      ).json()) as any;
      const mine = (await (
        await server.request('/v10/projects/edge-app/env', json('POST', { key: 'MINE', value: 'm', type: 'plain', target: ['preview'] }))
      ).json()) as any;

      const good = { key: 'X', value: 'v', type: 'plain', target: ['production'] };
      for (const [method, url, body] of [
        ['POST', '/v10/projects/no-such-app/env', good],
        ['POST', '/v10/projects/rival-app/env', good],
        ['PATCH', `/v10/projects/rival-app/env/${rivalEnv.created.id}`, { value: 'hijack' }],
        ['DELETE', `/v10/projects/rival-app/env/${rivalEnv.created.id}`, undefined],
        // My project, another team's variable id; another project's variable id.
        ['PATCH', `/v10/projects/edge-app/env/${rivalEnv.created.id}`, { value: 'hijack' }],
        ['DELETE', `/v9/projects/api-app/env/${mine.created.id}`, undefined],
        ['PATCH', '/v10/projects/edge-app/env/env_nonexistent', { value: 'v' }],
      ] as const) {
        const response = await server.request(url, body === undefined ? { method } : json(method, body));
        const refused = await errorOf(response);
        assert.deepEqual([refused.status, refused.code], [404, 'not_found'], `${method} ${url}`);
      }
      const rivalPull = (await (await server.request('/v3/env/pull/rival-app/production', { token: rivalToken })).json()) as any;
      assert.equal(rivalPull.env.R, 'r', "the other team's variable is untouched");
    });

    test("a store's variable: 409 to edit or remove, 400 to shadow, even with upsert", async () => {
      const sdk = server.sdk();
      const icfg = (await sdk.integrations.getConfigurations({ view: 'account' }))[0]!.id!;
      await sdk.integrations.createIntegrationStoreDirect({
        requestBody: { name: `kv-${backend}`, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
      });
      const storeId = (await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE name = $1', [`kv-${backend}`])).rows[0]!
        .id;
      await sdk.integrations.connectIntegrationResourceToProject({
        integrationConfigurationId: icfg,
        resourceId: storeId,
        requestBody: { projectId: 'edge-app', envVarEnvironments: ['production'] },
      });
      const env = (
        await server.runtime.db.query("SELECT id, value, updated_at FROM project_env WHERE store_id = $1 AND key = 'POSTGRES_URL'", [
          storeId,
        ])
      ).rows[0]!;
      for (const [method, body, what] of [
        ['PATCH', { value: 'postgres://elsewhere' }, 'changed'],
        ['DELETE', undefined, 'removed'],
      ] as const) {
        const refused = await errorOf(
          await server.request(`/v10/projects/edge-app/env/${env.id}`, body === undefined ? { method } : json(method, body)),
        );
        assert.deepEqual([refused.status, refused.code], [409, 'env_var_owned_by_store']);
        assert.match(refused.message, new RegExp(`POSTGRES_URL is a variable of the store kv-${backend}.*cannot be ${what} by hand`));
      }
      for (const upsert of ['', '?upsert=true']) {
        const shadow = await errorOf(
          await server.request(
            `/v10/projects/edge-app/env${upsert}`,
            json('POST', { key: 'POSTGRES_URL', value: 'x', type: 'plain', target: ['production'] }),
          ),
        );
        assert.deepEqual([shadow.status, shadow.code], [400, 'ENV_ALREADY_EXISTS']);
        assert.match(shadow.message, /variable of the store/);
      }
      const after = (await server.runtime.db.query('SELECT id, value, updated_at FROM project_env WHERE id = $1', [env.id])).rows[0];
      assert.deepEqual(after, env);
      // Another environment is free: the project's own variable sits beside the store's.
      const beside = await server.request(
        '/v10/projects/edge-app/env',
        json('POST', { key: 'POSTGRES_URL', value: 'local', type: 'plain', target: ['development'] }),
      );
      assert.equal(beside.status, 201);
    });

    test('roles: a VIEWER and a BILLING member write nothing; a DEVELOPER does', async () => {
      const teamId = await teamIdOf(server);
      const body = { key: 'ROLE_VAR', value: 'v', type: 'plain', target: ['production'] };
      for (const role of ['VIEWER', 'BILLING'] as const) {
        const token = await memberToken(server, teamId, `${role.toLowerCase()}-${backend}@example.com`, role);
        const created = await errorOf(await server.request('/v10/projects/api-app/env', json('POST', body, token)));
        assert.deepEqual([created.status, created.code], [403, 'forbidden']);
        const id = (await server.runtime.db.query("SELECT id FROM project_env WHERE key = 'SINGLE'")).rows[0]!.id;
        const edited = await errorOf(await server.request(`/v10/projects/api-app/env/${id}`, json('PATCH', { value: 'x' }, token)));
        assert.equal(edited.status, 403);
        const removed = await errorOf(await server.request(`/v10/projects/api-app/env/${id}`, { method: 'DELETE', token }));
        assert.equal(removed.status, 403);
        const project = await errorOf(await server.request('/v1/projects', json('POST', { name: `${role.toLowerCase()}-app` }, token)));
        assert.equal(project.status, 403);
      }
      const developer = await memberToken(server, teamId, `developer-${backend}@example.com`, 'DEVELOPER');
      assert.equal((await server.request('/v10/projects/api-app/env', json('POST', body, developer))).status, 201);
    });
  });
}
