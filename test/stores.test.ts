/**
 * Creating stores: the whole seed workflow through @vercel/sdk (discover, create free, paid and
 * prepaid stores, connect to a project, read POSTGRES_URL from the project's environment and
 * query it with pg), then every rejection, each with its status, its code, and nothing created.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { DEFAULT_CATALOG_PATH } from '../src/config.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember, setStoreQuota } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import {
  BACKENDS,
  catalogWithFreePlanLimit,
  errorOf,
  eventually,
  POSTGRES_URL,
  sdkFailure,
  startServer,
  type Backend,
  type TestServer,
} from './helpers.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

/** Real stores: on PostgreSQL the Postgres provider uses the server, and Redis when there is one. */
function providerEnv(backend: Backend): Record<string, string> {
  return {
    ...(backend === 'postgres' && POSTGRES_URL && { STOREHOUSE_POSTGRES_ADMIN_URL: POSTGRES_URL }),
    ...(REDIS_URL && { STOREHOUSE_REDIS_ADMIN_URL: REDIS_URL }),
  };
}

/** What a rejected request must leave unchanged: counts of every table a create writes. */
async function footprint(server: TestServer) {
  const { rows } = await server.runtime.db.query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM stores) AS stores, (SELECT count(*)::int FROM billing_authorizations) AS authorizations,
            (SELECT count(*)::int FROM provider_resources) AS resources, (SELECT count(*)::int FROM idempotency_keys) AS keys,
            (SELECT count(*)::int FROM audit_events) AS audit`,
  );
  return rows[0]!;
}

const firstConfiguration = async (server: TestServer) => (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;

const storeIdOf = async (server: TestServer, name: string) =>
  (await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE name = $1', [name])).rows[0]?.id;

for (const backend of BACKENDS) {
  describe(`creating stores through @vercel/sdk (${backend})`, () => {
    let server: TestServer;
    let icfg: string;
    let teamId: string;
    let viewerToken: string;
    let memberToken: string;
    let billingToken: string;
    let otherTeamIcfg: string;
    let otherTeamCard: string;

    const create = (body: Record<string, unknown>, token?: string) =>
      server.sdk(token).integrations.createIntegrationStoreDirect({
        requestBody: { integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', ...body } as any,
      });
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const addCard = async (cardNumber: string, extra: Record<string, unknown> = {}, token?: string) => {
      const response = await server.request('/_storehouse/payment-methods', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cardNumber, ...extra }),
        ...(token && { token }),
      });
      return { status: response.status, body: (await response.json()) as any };
    };

    before(async () => {
      const catalogFile = catalogWithFreePlanLimit(3);
      server = await startServer(backend, { catalogPath: catalogFile, env: providerEnv(backend) });
      fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true }); // read at start, synced into the state
      const db = server.runtime.db;
      icfg = await firstConfiguration(server);
      teamId = (await db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      const tokenFor = async (email: string, role: 'VIEWER' | 'MEMBER' | 'BILLING') => {
        const user = await createUser(db, { email });
        await setMember(db, teamId, user.id, role);
        return (await createToken(db, { userId: user.id, teamId, name: 't' })).value;
      };
      viewerToken = await tokenFor('viewer@example.com', 'VIEWER');
      memberToken = await tokenFor('member@example.com', 'MEMBER');
      billingToken = await tokenFor('billing@example.com', 'BILLING');
      const stranger = await createUser(db, { email: 'stranger@example.com' });
      const otherTeam = await createTeam(db, { slug: 'other-team' });
      await setMember(db, otherTeam.id, stranger.id, 'OWNER');
      otherTeamIcfg = (await install(db, { teamId: otherTeam.id, integrationId: 'oac_storehouse', installedBy: stranger.id })).id;
      const strangerToken = (await createToken(db, { userId: stranger.id, teamId: otherTeam.id, name: 't' })).value;
      otherTeamCard = (await addCard('4242424242424242', {}, strangerToken)).body.id;
    });
    after(() => server?.close());

    test("teams.getTeam: the token's team by id or slug; a team the user is not in is 403", async () => {
      const sdk = server.sdk();
      const { user } = (await sdk.user.getAuthUser())!;
      const team = await sdk.teams.getTeam({ teamId: user.defaultTeamId! });
      assert.equal(team.id, user.defaultTeamId);
      assert.equal(team.slug, 'my-team');
      assert.equal(team.creatorId, user.id);
      assert.equal((await sdk.teams.getTeam({ teamId: 'my-team' })).id, team.id);
      await assert.rejects(sdk.teams.getTeam({ teamId: 'other-team' }), (error: any) => error.statusCode === 403);
    });

    test('the seed workflow: discover, create free, connect to a project, read POSTGRES_URL and query it', async () => {
      const sdk = server.sdk();
      const products = await sdk.integrations.getConfigurationProducts({ id: icfg });
      const product = products.products.find((p) => p.slug === 'postgres')!;
      const { plans } = await sdk.integrations.getBillingPlans({
        integrationIdOrSlug: 'storehouse',
        productIdOrSlug: product.id,
        integrationConfigurationId: icfg,
      });
      assert.ok(plans.some((plan) => plan.id === 'postgres_hobby' && plan.paymentMethodRequired === false));

      const created = await sdk.integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'seed-db',
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: product.id,
          metadata: { connectionLimit: 10 },
          externalId: 'ext-1',
        },
      });
      const store = created.store!;
      assert.equal(store.status, 'available');
      assert.equal(store.externalResourceStatus, 'ready');
      assert.equal(store.billingPlan?.id, 'postgres_hobby');
      assert.deepEqual(store.metadata, { connectionLimit: 10, statementTimeout: 'off' }, 'defaults are applied');
      assert.equal(store.product.integrationConfigurationId, icfg);
      assert.deepEqual(store.product.supportedProtocols, ['storage']);
      assert.ok(store.secrets.some((s) => s.name === 'POSTGRES_URL' && s.length > 20));
      assert.deepEqual(store.projectsMetadata, []);
      // The raw body also carries the store's own id and name (the SDK strips them).
      const storeId = (await storeIdOf(server, 'seed-db'))!;
      const raw = (await (await server.request(`/v1/storage/stores/${storeId}`)).json()) as any;
      assert.equal(raw.store.name, 'seed-db');
      assert.equal(raw.store.externalId, 'ext-1');

      const project = await sdk.projects.createProject({ requestBody: { name: 'web' } });
      assert.equal(project.name, 'web');
      // The SDK's store has no id: connecting by the provider's externalResourceId works too.
      await sdk.integrations.connectIntegrationResourceToProject({
        integrationConfigurationId: icfg,
        resourceId: store.externalResourceId,
        requestBody: { projectId: project.id, envVarEnvironments: ['production', 'preview'] },
      });
      const { store: viewed } = await sdk.storage.getStorageStoresById({ id: storeId }, {
        headers: { authorization: `Bearer ${server.token}` },
      } as any);
      assert.equal(viewed.totalConnectedProjects, 1);
      assert.equal(viewed.projectsMetadata[0]!.projectId, project.id);
      assert.ok(viewed.projectsMetadata[0]!.environmentVariables.includes('POSTGRES_URL'));

      const envs = await sdk.projects.filterProjectEnvs({ idOrName: 'web', decrypt: 'true' });
      assert.ok('envs' in envs);
      const url = envs.envs.find((e) => e.key === 'POSTGRES_URL')!;
      assert.deepEqual(url.target, ['production', 'preview']);
      const one = await sdk.projects.getProjectEnv({ idOrName: project.id, id: url.id! });
      assert.ok('value' in one && one.value === url.value);
      const client = new pg.Client({ connectionString: url.value! });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT current_database() AS db, 40 + 2 AS answer');
        assert.equal(rows[0].answer, 42);
      } finally {
        await client.end();
      }
      // Encrypted at rest: the stored value is not the URL.
      const { rows } = await server.runtime.db.query<{ value: string }>(
        "SELECT value FROM project_env WHERE key = 'POSTGRES_URL' AND project_id = $1",
        [project.id],
      );
      assert.ok(rows.length > 0, "the project's POSTGRES_URL is stored");
      assert.ok(!rows.some((row) => row.value.includes('postgres://')));
      assert.ok(!rows.some((row) => row.value.includes(url.value!)), 'nor holds the URL in the clear');
      // The store shows in the list (the vercel CLI's `integration list`).
      const listed = (await (await server.request('/v1/storage/stores')).json()) as any;
      assert.equal(listed.stores.find((s: any) => s.name === 'seed-db').projectsMetadata[0].name, 'web');

      // Deleting is refused while connected, unless the projects are disconnected.
      const refused = await errorOf(await server.request(`/v1/storage/stores/integration/${storeId}`, { method: 'DELETE' }));
      assert.deepEqual([refused.status, refused.code], [409, 'store_has_connections']);
      const deleted = await server.request(`/v1/storage/stores/integration/${storeId}?disconnect=true`, { method: 'DELETE' });
      assert.equal(deleted.status, 200);
      assert.equal((await server.request(`/v1/storage/stores/${storeId}`)).status, 404);
      assert.equal(((await sdk.projects.filterProjectEnvs({ idOrName: 'web' })) as any).envs.length, 0, 'its variables went with it');
      const gone = new pg.Client({ connectionString: url.value! });
      await assert.rejects(
        gone
          .connect()
          .then(() => gone.query('SELECT 1'))
          .finally(() => gone.end().catch(() => {})),
      );
    });

    test('what the vercel CLI calls: scope, integration list, env pull, resource remove --disconnect-all', async () => {
      const cli = async (path: string, init: RequestInit = {}) => {
        const response = await server.request(path, init);
        assert.ok(response.status < 300, `${init.method ?? 'GET'} ${path}: ${response.status} ${await response.clone().text()}`);
        return response.headers.get('content-type')?.includes('application/json') ? ((await response.json()) as any) : null;
      };
      const { user } = await cli('/v2/user');
      assert.equal(user.version, 'northstar');
      const team = await cli(`/teams/${user.defaultTeamId}?teamId=${user.defaultTeamId}`);
      assert.equal(team.slug, 'my-team');
      assert.ok((await cli('/v1/teams')).teams.some((t: any) => t.id === team.id));

      await create({ name: 'cli-db' });
      const project = await server.sdk().projects.createProject({ requestBody: { name: 'cli-app' } });
      const listed = (await cli(`/v1/storage/stores?teamId=${team.id}`)).stores.find((s: any) => s.name === 'cli-db');
      assert.equal(listed.type, 'integration');
      assert.equal(listed.product.slug, 'postgres');
      assert.equal(listed.product.integrationConfigurationId, icfg);
      await cli(`/v1/storage/stores/${listed.id}/connections?teamId=${team.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ projectId: project.id, envVarEnvironments: ['development'], type: 'integration', envVarPrefix: 'CLI_' }),
      });
      const pulled = await cli(`/v3/env/pull/${project.id}/development?source=vercel-cli:env:pull&teamId=${team.id}`);
      assert.match(pulled.env.CLI_POSTGRES_URL, /^postgres:\/\//);
      const connected = (await cli(`/v1/storage/stores?teamId=${team.id}`)).stores.find((s: any) => s.name === 'cli-db');
      assert.deepEqual(
        connected.projectsMetadata.map((m: any) => [m.name, m.envVarPrefix]),
        [['cli-app', 'CLI_']],
      );
      // `resource remove -a`: disconnect every project, then delete (no body, no content-type).
      await cli(`/v1/storage/stores/${listed.id}/connections?teamId=${team.id}`, { method: 'DELETE' });
      await cli(`/v1/storage/stores/integration/${listed.id}?teamId=${team.id}`, { method: 'DELETE' });
      assert.equal(
        (await cli(`/v1/storage/stores?teamId=${team.id}`)).stores.some((s: any) => s.name === 'cli-db'),
        false,
      );
    });

    test('paid plans: no payment method is 402, a declined card is 402, a good card is authorized', async () => {
      const before = await footprint(server);
      const none = await sdkFailure(create({ name: 'pro-db', billingPlanId: 'postgres_pro' }));
      assert.deepEqual([none.status, none.code], [402, 'payment_method_required']);

      // Members may not add cards; billing members may.
      assert.equal((await addCard('4000000000000002', {}, memberToken)).status, 403);
      const declining = await addCard('4000000000000002', {}, billingToken);
      assert.equal(declining.status, 200);
      assert.equal(declining.body.default, true, "the team's first card is its default");
      const withCard = await footprint(server);
      const declined = await sdkFailure(create({ name: 'pro-db', billingPlanId: 'postgres_pro' }));
      assert.deepEqual([declined.status, declined.code], [402, 'payment_declined']);
      const foreign = await sdkFailure(create({ name: 'pro-db', billingPlanId: 'postgres_pro', paymentMethodId: otherTeamCard }));
      assert.deepEqual([foreign.status, foreign.code], [400, 'invalid_payment_method']);
      assert.deepEqual(await footprint(server), withCard, 'nothing was created by the rejections');
      assert.equal(withCard.audit, before.audit! + 1, 'adding a card is audited');

      const good = await addCard('4242424242424242');
      assert.equal(good.body.default, false);
      const { store } = await create({ name: 'pro-db', billingPlanId: 'postgres_pro', paymentMethodId: good.body.id });
      assert.equal(store!.status, 'available');
      assert.equal(store!.billingPlan?.id, 'postgres_pro');
      const auths = (await (await server.request('/_storehouse/billing/authorizations')).json()) as any;
      const auth = auths.authorizations.find((a: any) => a.billingPlanId === 'postgres_pro');
      assert.deepEqual(
        [auth.kind, auth.amountCents, auth.state, auth.paymentMethodId],
        ['preauthorization', 2000, 'authorized', good.body.id],
      );
      // Deleting the store releases its authorization.
      const id = (await storeIdOf(server, 'pro-db'))!;
      assert.equal((await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' })).status, 200);
      const after = (await (await server.request(`/_storehouse/billing/authorizations?storeId=${id}`)).json()) as any;
      assert.equal(after.authorizations[0].state, 'released');
    });

    test('prepayment plans: the amount must be at least 50 and within the plan', async () => {
      const card = await addCard('5555555555554444', { default: true });
      assert.equal(card.body.default, true);
      const before = await footprint(server);
      for (const [amount, expected] of [
        [undefined, 400],
        [49, 400],
        [50, 400],
        [499, 400],
        [50001, 400],
        [5000.5, 400],
      ] as const) {
        const failure = await sdkFailure(
          create({ name: 'payg', billingPlanId: 'postgres_payg', ...(amount !== undefined && { prepaymentAmountCents: amount }) }),
        );
        assert.deepEqual([failure.status, failure.code], [expected, 'validation_error'], `amount ${amount}`);
        assert.equal(failure.body.error.fields[0].key, 'prepaymentAmountCents');
      }
      const onSubscription = await sdkFailure(create({ name: 'payg', billingPlanId: 'postgres_pro', prepaymentAmountCents: 5000 }));
      assert.equal(onSubscription.status, 400);
      assert.deepEqual(await footprint(server), before);
      for (const [name, amount] of [
        ['payg-min', 500],
        ['payg-max', 50000],
      ] as const) {
        await create({ name, billingPlanId: 'postgres_payg', prepaymentAmountCents: amount });
        const id = (await storeIdOf(server, name))!;
        const raw = (await (await server.request(`/v1/storage/stores/${id}`)).json()) as any;
        assert.equal(raw.store.prepaidBalanceCents, amount);
        const auths = (await (await server.request(`/_storehouse/billing/authorizations?storeId=${id}`)).json()) as any;
        assert.deepEqual([auths.authorizations[0].kind, auths.authorizations[0].state], ['prepayment', 'paid']);
        await server.request(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' });
        const refunded = (await (await server.request(`/_storehouse/billing/authorizations?storeId=${id}`)).json()) as any;
        assert.equal(refunded.authorizations[0].state, 'refunded');
      }
    });

    test('two stores connected to one project at once: one wins, the other is 409 env_var_conflict', async () => {
      await create({ name: 'twin-a', billingPlanId: 'postgres_pro' });
      await create({ name: 'twin-b', billingPlanId: 'postgres_pro' });
      const project = await server.sdk().projects.createProject({ requestBody: { name: 'twins' } });
      const connect = async (name: string) =>
        server.request(`/v1/storage/stores/${await storeIdOf(server, name)}/connections`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ projectId: project.id }),
        });
      const statuses = (await Promise.all([connect('twin-a'), connect('twin-b')])).map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409]);
      const { rows } = await server.runtime.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM project_env WHERE project_id = $1 AND key = 'POSTGRES_URL'",
        [project.id],
      );
      assert.equal(rows[0]!.n, 1);
      for (const name of ['twin-a', 'twin-b']) {
        await server.request(`/v1/storage/stores/integration/${await storeIdOf(server, name)}?disconnect=true`, { method: 'DELETE' });
      }
    });

    test('every rejection has its status and code, and creates nothing', async () => {
      await create({ name: 'taken' });
      const before = await footprint(server);
      const cases: Array<[string, Promise<Response>, number, string]> = [
        [
          'empty body',
          server.request('/v1/storage/stores/integration/direct', { method: 'POST', headers: { 'content-type': 'application/json' } }),
          400,
          'bad_request',
        ],
        ['array body', post([]), 400, 'bad_request'],
        ['no name', post({ integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }), 400, 'bad_request'],
        [
          'name too long',
          post({ name: 'x'.repeat(129), integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          400,
          'bad_request',
        ],
        [
          'empty name',
          post({ name: '', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          400,
          'validation_error',
        ],
        [
          'name not a string',
          post({ name: 5, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          400,
          'bad_request',
        ],
        ['no configuration', post({ name: 'a', integrationProductIdOrSlug: 'postgres' }), 400, 'bad_request'],
        ['no product', post({ name: 'a', integrationConfigurationId: icfg }), 400, 'bad_request'],
        [
          'unknown source',
          post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', source: 'nope' }),
          400,
          'bad_request',
        ],
        [
          'name taken',
          post({ name: 'taken', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          409,
          'store_name_taken',
        ],
        [
          // The name is the refusal before the plan's, though a free name is not waited for.
          'name taken, on a plan not offered',
          post({ name: 'taken', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', billingPlanId: 'nope' }),
          409,
          'store_name_taken',
        ],
        [
          'unknown configuration',
          post({ name: 'a', integrationConfigurationId: 'icfg_nope', integrationProductIdOrSlug: 'postgres' }),
          404,
          'not_found',
        ],
        [
          "another team's configuration",
          post({ name: 'a', integrationConfigurationId: otherTeamIcfg, integrationProductIdOrSlug: 'postgres' }),
          404,
          'not_found',
        ],
        ['unknown product', post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'mysql' }), 404, 'not_found'],
        [
          'viewer',
          server.request('/v1/storage/stores/integration/direct', {
            method: 'POST',
            token: viewerToken,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          }),
          403,
          'forbidden',
        ],
        [
          'member who did not install',
          server.request('/v1/storage/stores/integration/direct', {
            method: 'POST',
            token: memberToken,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
          }),
          403,
          'forbidden',
        ],
        [
          'metadata out of range',
          post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', metadata: { connectionLimit: 0 } }),
          400,
          'validation_error',
        ],
        [
          'metadata not in the enum',
          post({
            name: 'a',
            integrationConfigurationId: icfg,
            integrationProductIdOrSlug: 'postgres',
            metadata: { statementTimeout: '1h' },
          }),
          400,
          'validation_error',
        ],
        [
          'metadata the provider cannot apply',
          post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', metadata: { connectionLimit: 5.5 } }),
          400,
          'validation_error',
        ],
        [
          'metadata of the wrong type',
          post({
            name: 'a',
            integrationConfigurationId: icfg,
            integrationProductIdOrSlug: 'postgres',
            metadata: { connectionLimit: '10' },
          }),
          400,
          'validation_error',
        ],
        [
          'unknown metadata',
          post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', metadata: { region: 'iad1' } }),
          400,
          'validation_error',
        ],
        [
          'unsupported protocol settings',
          post({
            name: 'a',
            integrationConfigurationId: icfg,
            integrationProductIdOrSlug: 'postgres',
            protocolSettings: { experimentation: { edgeConfigId: 'x' } },
          }),
          400,
          'validation_error',
        ],
        [
          'unknown plan',
          post({ name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', billingPlanId: 'redis_pro' }),
          400,
          'invalid_billing_plan',
        ],
        [
          'bad Idempotency-Key',
          post(
            { name: 'a', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
            { 'idempotency-key': 'x'.repeat(300) },
          ),
          400,
          'bad_request',
        ],
      ];
      for (const [what, response, status, code] of cases) {
        const failure = await errorOf(await response);
        assert.deepEqual([failure.status, failure.code], [status, code], `${what}: ${failure.message}`);
      }
      const metadata = await errorOf(
        await post({
          name: 'a',
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 500, statementTimeout: '1h', x: 1 },
        }),
      );
      assert.deepEqual(
        metadata.body.error.fields.map((f: any) => f.key).sort(),
        ['metadata.connectionLimit', 'metadata.statementTimeout', 'metadata.x'],
        'each bad key is named',
      );
      assert.deepEqual(await footprint(server), before, 'nothing was created');
    });

    test('quotas: the team quota and the plan limit are 403s that create nothing', async () => {
      const { rows } = await server.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stores WHERE team_id = $1', [teamId]);
      await setStoreQuota(server.runtime.db, teamId, rows[0]!.n);
      const before = await footprint(server);
      const over = await sdkFailure(create({ name: 'one-too-many' }));
      assert.deepEqual([over.status, over.code], [403, 'store_quota_exceeded']);
      assert.deepEqual(await footprint(server), before);
      await setStoreQuota(server.runtime.db, teamId, null);
      // The hobby plan takes 3 stores per team.
      const hobby = (
        await server.runtime.db.query<{ n: number }>("SELECT count(*)::int AS n FROM stores WHERE billing_plan_id = 'postgres_hobby'")
      ).rows[0]!.n;
      for (let i = hobby; i < 3; i++) await create({ name: `hobby-${i}` });
      const limited = await sdkFailure(create({ name: 'hobby-4', billingPlanId: 'postgres_hobby' }));
      assert.deepEqual([limited.status, limited.code], [403, 'plan_resource_limit_reached']);
      // Without billingPlanId, a used-up free plan is not discovered: 400 naming the paid plans.
      const noFree = await sdkFailure(create({ name: 'hobby-4' }));
      assert.deepEqual([noFree.status, noFree.code], [400, 'no_free_plan']);
      assert.match(noFree.message, /used up postgres_hobby.*postgres_pro, postgres_payg/);
      // The plans endpoint now shows the hobby plan as not selectable.
      const { plans } = await server.sdk().integrations.getBillingPlans({ integrationIdOrSlug: 'storehouse', productIdOrSlug: 'postgres' });
      assert.deepEqual(
        plans.map((plan) => [plan.id, plan.disabled]),
        [
          ['postgres_hobby', true],
          ['postgres_pro', false],
          ['postgres_payg', false],
        ],
      );
    });

    test('Idempotency-Key: a repeat answers as the first did, another body with the key is 409', async () => {
      const body = {
        name: 'idem',
        integrationConfigurationId: icfg,
        integrationProductIdOrSlug: 'postgres',
        billingPlanId: 'postgres_pro',
      };
      const first = await post(body, { 'idempotency-key': 'key-1' });
      assert.equal(first.status, 200);
      const again = await post({ ...body }, { 'idempotency-key': 'key-1' });
      assert.equal(again.status, 200);
      assert.deepEqual(await again.json(), await first.json());
      assert.equal((await server.runtime.db.query("SELECT 1 FROM stores WHERE name = 'idem'")).rows.length, 1);
      const other = await errorOf(await post({ ...body, name: 'idem-2' }, { 'idempotency-key': 'key-1' }));
      assert.deepEqual([other.status, other.code], [409, 'idempotency_key_reused']);
      // A failed request gives its key back: the same key then works for a good request.
      const failed = await errorOf(await post({ ...body, name: 'idem-3', billingPlanId: 'nope' }, { 'idempotency-key': 'key-2' }));
      assert.equal(failed.status, 400);
      assert.equal((await post({ ...body, name: 'idem-3' }, { 'idempotency-key': 'key-2' })).status, 200);
    });

    test("a key is one user's: the same key and body from a viewer goes through every check, never a replay", async () => {
      const body = {
        name: 'mine',
        integrationConfigurationId: icfg,
        integrationProductIdOrSlug: 'postgres',
        billingPlanId: 'postgres_pro',
      };
      assert.equal((await post(body, { 'idempotency-key': 'shared' })).status, 200);
      const replay = await server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        token: viewerToken,
        headers: { 'content-type': 'application/json', 'idempotency-key': 'shared' },
        body: JSON.stringify(body),
      });
      const failure = await errorOf(replay);
      assert.deepEqual(
        [failure.status, failure.code],
        [409, 'store_name_taken'],
        "checked as its own request (the owner's store holds the name)",
      );
      const renamed = await server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        token: viewerToken,
        headers: { 'content-type': 'application/json', 'idempotency-key': 'shared' },
        body: JSON.stringify({ ...body, name: 'mine-2' }),
      });
      assert.equal(renamed.status, 403);
    });

    test('projects page by a cursor that never skips one, even when created together', async () => {
      await Promise.all(Array.from({ length: 7 }, (_, i) => server.sdk().projects.createProject({ requestBody: { name: `paged-${i}` } })));
      const seen: string[] = [];
      let from: string | undefined;
      for (let page = 0; page < 20; page++) {
        const result = await server.sdk().projects.getProjects({ limit: '3', search: 'paged-', ...(from && { from }) });
        assert.ok(!Array.isArray(result) && 'pagination' in result);
        seen.push(...result.projects.map((p) => p.name));
        const next = result.pagination.next;
        if (next === null || next === undefined) break;
        from = String(next);
      }
      assert.deepEqual(
        seen.sort(),
        Array.from({ length: 7 }, (_, i) => `paged-${i}`),
      );
    });

    test('a create interrupted by a dying node is undone by the next sweep: resource, billing, key and name', async () => {
      // What a node leaves when it dies after the provider answered but before it recorded the
      // answer: the store initializing, its authorization, its key, and a live resource.
      const db = server.runtime.db;
      const product = server.runtime.catalog.findProduct('oac_storehouse', 'postgres');
      const provider = server.runtime.providers.for(product);
      const card = (await db.query<{ id: string }>('SELECT id FROM payment_methods WHERE team_id = $1 AND is_default', [teamId])).rows[0]!
        .id;
      await db.query(
        `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status, provision_key, updated_at)
         VALUES ('store_crashed', $1, $2, $3, 'postgres_pro', 'crashed', 'initializing', 'store_crashed.k', now())`,
        [teamId, icfg, product.id],
      );
      await db.query(
        `INSERT INTO billing_authorizations (id, team_id, store_id, payment_method_id, product_id, billing_plan_id, kind, amount_cents, state)
         VALUES ('auth_crashed', $1, 'store_crashed', $2, $3, 'postgres_pro', 'preauthorization', 2000, 'authorized')`,
        [teamId, card, product.id],
      );
      const owner = (await db.query<{ user_id: string }>("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'OWNER'", [teamId]))
        .rows[0]!.user_id;
      await db.query(
        `INSERT INTO idempotency_keys (team_id, operation, key, request_hash, store_id, expires_at) VALUES ($1, $2, 'crash-key', 'h', 'store_crashed', now() + interval '1 day')`,
        [teamId, `stores.create:${owner}`],
      );
      const { resource } = await provider.provision({
        idempotencyKey: 'store_crashed.k',
        installationId: icfg,
        product,
        name: 'crashed',
        metadata: { connectionLimit: 5 },
        billingPlanId: 'postgres_pro',
      });
      // Meanwhile it cannot be connected (it has no secrets to give).
      const project = await server.sdk().projects.createProject({ requestBody: { name: 'crash-test' } });
      const refused = await errorOf(
        await server.request(`/v1/storage/stores/store_crashed/connections`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ projectId: project.id }),
        }),
      );
      assert.deepEqual([refused.status, refused.code], [409, 'store_not_connectable']);

      // Time passes: the store is now older than any provider call could be.
      await db.query("UPDATE stores SET updated_at = now() - interval '1 hour' WHERE id = 'store_crashed'");
      // This sweep, or the node's own background one if it got there first, undoes it.
      await server.runtime.stores.recoverInterrupted();
      await eventually(
        'the interrupted create is undone',
        async () => (await db.query("SELECT 1 FROM stores WHERE id = 'store_crashed'")).rows.length === 0,
      );
      assert.equal(
        (await db.query<{ state: string }>("SELECT state FROM billing_authorizations WHERE id = 'auth_crashed'")).rows[0]!.state,
        'released',
      );
      assert.equal((await db.query("SELECT 1 FROM idempotency_keys WHERE key = 'crash-key'")).rows.length, 0);
      assert.equal(
        (await db.query<{ state: string }>('SELECT state FROM provider_resources WHERE id = $1', [resource.id])).rows[0]!.state,
        'deleted',
      );
      const audit = await db.query<{ actor_id: string | null }>(
        "SELECT actor_id FROM audit_events WHERE action = 'store.rolled_back' AND target_id = 'store_crashed'",
      );
      assert.deepEqual(audit.rows, [{ actor_id: null }], 'undone once, by the system');
      assert.equal(await server.runtime.stores.recoverInterrupted(), 0, 'nothing left to do');
      // The key works again, and the name is free.
      const retried = await post(
        { name: 'crashed', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres', billingPlanId: 'postgres_pro' },
        { 'idempotency-key': 'crash-key' },
      );
      assert.equal(retried.status, 200);
    });

    test('the audit log records who created, connected and deleted what; only owners read it', async () => {
      const audit = (await (await server.request('/_storehouse/audit?limit=1000')).json()) as any;
      const actions = new Set(audit.events.map((e: any) => e.action));
      for (const action of [
        'store.created',
        'store.provisioned',
        'store.connected',
        'store.deleted',
        'payment_method.added',
        'project.created',
      ]) {
        assert.ok(actions.has(action), `${action} is recorded`);
      }
      assert.ok(audit.events.every((e: any) => typeof e.actorId === 'string' || e.actorId === null));
      // Who: the seed store was created by the bootstrap owner, whose token made the request.
      const seedCreated = audit.events.filter((e: any) => e.action === 'store.created' && e.details?.name === 'seed-db');
      assert.equal(seedCreated.length, 1, 'the seed store was created once');
      assert.equal(seedCreated[0].actorId, server.runtime.bootstrapped!.user.id);
      assert.equal((await server.request('/_storehouse/audit', { token: billingToken })).status, 403);
    });
  });
}

describe('a product without a free plan', () => {
  test('a create without billingPlanId is a 400 that names the paid plans', async () => {
    const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
    for (const product of catalog.integrations[0].products) {
      for (const plan of product.plans) if (!plan.paymentMethodRequired && plan.type === 'subscription') plan.disabled = true;
    }
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
    fs.writeFileSync(file, stringify(catalog));
    const server = await startServer('embedded', { catalogPath: file });
    try {
      const icfg = await firstConfiguration(server);
      const failure = await sdkFailure(
        server.sdk().integrations.createIntegrationStoreDirect({
          requestBody: { name: 'free', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
        }),
      );
      assert.deepEqual([failure.status, failure.code], [400, 'no_free_plan']);
      assert.match(failure.message, /postgres_pro, postgres_payg/);
      const disabled = await sdkFailure(
        server.sdk().integrations.createIntegrationStoreDirect({
          requestBody: {
            name: 'free',
            integrationConfigurationId: icfg,
            integrationProductIdOrSlug: 'postgres',
            billingPlanId: 'postgres_hobby',
          },
        }),
      );
      assert.deepEqual([disabled.status, disabled.code], [400, 'invalid_billing_plan']);
      assert.equal((await server.runtime.db.query('SELECT 1 FROM stores')).rows.length, 0);
    } finally {
      await server.close();
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});

describe('a slow create and the recovery sweep', () => {
  test('a create the sweep took for dead answers 409 store_deleted, and leaves nothing behind', async () => {
    const server = await startServer('embedded');
    try {
      const icfg = await firstConfiguration(server);
      const db = server.runtime.db;
      // The embedded provider takes seconds for a first store (initdb): a create in progress.
      const creating = server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'slow', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
      });
      await eventually(
        'the store is recorded',
        async () => (await db.query("SELECT 1 FROM stores WHERE name = 'slow'")).rows.length === 1,
        10_000,
      );
      // Another node, with a shorter timeout, takes it for a create whose node died.
      await db.query("UPDATE stores SET updated_at = now() - interval '1 hour' WHERE name = 'slow'");
      await server.runtime.stores.recoverInterrupted();
      const failure = await errorOf(await creating);
      assert.deepEqual([failure.status, failure.code], [409, 'store_deleted']);
      await eventually(
        'nothing is left',
        async () => (await db.query("SELECT 1 FROM stores WHERE name = 'slow'")).rows.length === 0,
        10_000,
      );
      const live = await db.query("SELECT 1 FROM provider_resources WHERE state IN ('provisioning', 'ready')");
      assert.equal(live.rows.length, 0);
    } finally {
      await server.close();
    }
  });
});

describe('provider failures and timeouts roll the store back', () => {
  test('an unreachable provider is a 503; the store is not left initializing, its authorization is released, and the undo is retried', async () => {
    const server = await startServer('embedded', { env: { STOREHOUSE_POSTGRES_ADMIN_URL: 'postgres://postgres@127.0.0.1:1/postgres' } });
    try {
      const icfg = await firstConfiguration(server);
      await server.request('/_storehouse/payment-methods', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ cardNumber: '4242424242424242' }),
      });
      const failure = await sdkFailure(
        server.sdk().integrations.createIntegrationStoreDirect({
          requestBody: {
            name: 'down',
            integrationConfigurationId: icfg,
            integrationProductIdOrSlug: 'postgres',
            billingPlanId: 'postgres_pro',
          },
        }),
      );
      assert.deepEqual([failure.status, failure.code], [503, 'provider_unavailable']);
      // The provider's delete of what the provision may have made cannot reach the server either:
      // the store is kept, being removed, so that resource is never forgotten; the API shows it
      // in error, saying what happens next.
      const { rows } = await server.runtime.db.query<{ id: string; status: string; retry_at: Date | null }>(
        'SELECT id, status, retry_at FROM stores',
      );
      assert.deepEqual(
        rows.map((row) => row.status),
        ['deleting'],
        'kept, never initializing',
      );
      assert.ok(rows[0]!.retry_at, 'its undo is due again');
      const shown = (await (await server.request(`/v1/storage/stores/${rows[0]!.id}`)).json()) as any;
      assert.equal(shown.store.status, 'error');
      assert.equal(shown.store.notification?.title, 'Being rolled back');
      const auths = await server.runtime.db.query<{ state: string }>('SELECT state FROM billing_authorizations');
      assert.deepEqual(
        auths.rows.map((r) => r.state),
        ['released'],
      );
      // The sweep keeps trying, with a growing wait, while the server stays away.
      await eventually(
        'the undo is tried again',
        async () => (await server.runtime.db.query<{ n: number }>('SELECT retry_attempts AS n FROM stores')).rows[0]!.n >= 2,
        60_000,
      );
      // However long the outage (a client repeating its DELETE counts on too), the backoff stays
      // computable: still the provider's 503, never the database's overflow as a 500.
      await server.runtime.db.query('UPDATE stores SET retry_attempts = 5000');
      const deleted = await errorOf(await server.request(`/v1/storage/stores/integration/${rows[0]!.id}`, { method: 'DELETE' }));
      assert.equal(deleted.status, 503, deleted.message);
      const { rows: due } = await server.runtime.db.query<{ retry_at: Date | null }>('SELECT retry_at FROM stores');
      assert.ok(due[0]!.retry_at, 'due again, after the longest wait');
    } finally {
      await server.close();
    }
  });

  test('a provider slower than the timeout is a 503, and the half-made store is undone', async () => {
    const server = await startServer('embedded', { env: { STOREHOUSE_PROVISION_TIMEOUT_MS: '500' } });
    try {
      const icfg = await firstConfiguration(server);
      // The provider is made slow for certain: its provision waits, past the timeout, until the
      // create has answered; then it goes on, as a provision that was only slow would.
      const provider = server.runtime.providers.for(server.runtime.catalog.findProduct('oac_storehouse', 'postgres'));
      const provision = provider.provision.bind(provider);
      let goOn!: () => void;
      const answered = new Promise<void>((resolve) => (goOn = resolve));
      provider.provision = async (request) => {
        await answered;
        return provision(request);
      };
      const failure = await sdkFailure(
        server.sdk().integrations.createIntegrationStoreDirect({
          requestBody: { name: 'slow', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
        }),
      );
      goOn();
      assert.deepEqual([failure.status, failure.code], [503, 'provider_timeout']);
      assert.equal((await server.runtime.db.query('SELECT 1 FROM stores')).rows.length, 0, 'rolled back');
      // The provision still running when it timed out is refused when it gets there: its record
      // ends up deleted (a deleted record is never made live again), and nothing is left live.
      // It is waited for, not slept on.
      const states = async () =>
        (await server.runtime.db.query<{ state: string }>('SELECT state FROM provider_resources')).rows.map((row) => row.state);
      await eventually(
        'the timed-out provision undone',
        async () => {
          const now = await states();
          return now.length > 0 && now.every((state) => state === 'deleted');
        },
        120_000,
      );
      // And the name is free again: a create of that name, the provider quick again, is made.
      provider.provision = provision;
      const { store } = await server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: { name: 'slow', integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' },
      });
      assert.equal(store?.status, 'available');
    } finally {
      await server.close();
    }
  });
});

describe('rate limits', () => {
  test("creates per team per minute, and requests per token, are 429s with Vercel's headers and body", async () => {
    const server = await startServer('embedded', {
      env: { STOREHOUSE_RATE_LIMIT_STORE_CREATES: '2', STOREHOUSE_RATE_LIMIT_REQUESTS: '8' },
    });
    try {
      const post = () =>
        server.request('/v1/storage/stores/integration/direct', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'x' }),
        });
      assert.equal((await post()).status, 400);
      assert.equal((await post()).status, 400);
      const limited = await post();
      assert.equal(limited.status, 429);
      const retryAfter = Number(limited.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60);
      assert.equal(limited.headers.get('x-ratelimit-limit'), '2');
      assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
      const failure = await errorOf(limited);
      assert.equal(failure.code, 'rate_limited');
      const { limit } = failure.body.error;
      assert.equal(limit.total, 2);
      assert.equal(limit.remaining, 0);
      assert.ok(Math.abs(limit.resetMs - Date.now()) <= 61_000 && limit.reset === Math.ceil(limit.resetMs / 1000));
      // The per-token limit (8 a minute) covers every route.
      let status = 0;
      for (let i = 0; i < 8 && status !== 429; i++) status = (await server.request('/v1/storage/stores')).status;
      assert.equal(status, 429);
    } finally {
      await server.close();
    }
  });
});

describe('rate limits across nodes', {
  skip: REDIS_URL && POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_REDIS_URL and STOREHOUSE_TEST_DATABASE_URL',
}, () => {
  test('with REDIS_URL every node counts against the same limit', async () => {
    // A Redis slow to answer on a loaded machine must not send a count to the in-process fallback:
    // sharing is what this checks (the fallback is hung-redis.test.ts's).
    const env = { REDIS_URL: REDIS_URL!, STOREHOUSE_RATE_LIMIT_STORE_CREATES: '3', STOREHOUSE_RATE_LIMIT_REDIS_TIMEOUT_MS: '10000' };
    const first = await startServer('postgres', { env });
    const second = await startServer('postgres', { env, databaseUrl: first.config.databaseUrl!, bootstrapToken: first.token });
    try {
      const post = (node: TestServer) =>
        node.request('/v1/storage/stores/integration/direct', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'x' }),
        });
      const statuses = [];
      for (const node of [first, second, first, second]) statuses.push((await post(node)).status);
      assert.deepEqual(statuses, [400, 400, 400, 429]);
    } finally {
      await second.close();
      await first.close();
    }
  });
});
