/**
 * Changing stores after their create (PATCH /v1/storage/stores/{id}, GET .../plans): renames,
 * settings the provider really applies (a Postgres role's connection limit), plan changes billed
 * as creates are, and every rejection leaving the store as it was; then through a partner server:
 * the PATCH it receives, its refusal undone, and a change it did not answer sent again, with the
 * same key, until it is applied.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import pg from 'pg';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { BACKENDS, catalogWithFreePlanLimit, errorOf, eventually, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

/** The default catalog, with a Postgres setting that cannot change once a store is created. */
/** The default catalog with Hobby limited to 3 stores per team, and a setting only a create may set. */
function catalogWithReadOnlySetting(): string {
  return catalogWithFreePlanLimit(3, (catalog) => {
    const postgres = catalog.integrations[0].products.find((p: { slug: string }) => p.slug === 'postgres');
    postgres.metadataSchema.properties.region = {
      type: 'string',
      'ui:control': 'select',
      'ui:label': 'Region',
      'ui:read-only': 'update',
      default: 'iad1',
      enum: ['iad1', 'fra1'],
      'ui:options': [
        { value: 'iad1', label: 'Washington' },
        { value: 'fra1', label: 'Frankfurt' },
      ],
    };
  });
}

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** PATCHes a store; the answer's status and body. */
async function patch(server: TestServer, id: string, body: unknown, token?: string) {
  const response = await server.request(`/v1/storage/stores/${id}`, { method: 'PATCH', ...json(body), ...(token && { token }) });
  return { status: response.status, body: (await response.json()) as any };
}

/** What a refused change must leave as it was: the store's row, its charges, and the audit log's length. */
async function stateOf(server: TestServer, id: string) {
  const { rows } = await server.runtime.db.query<Record<string, any>>(
    `SELECT s.name, s.metadata, s.billing_plan_id, s.status, s.prepaid_balance_cents, s.update_key,
            (SELECT json_agg(json_build_object('id', a.id, 'state', a.state) ORDER BY a.id) FROM billing_authorizations a WHERE a.store_id = s.id) AS charges,
            (SELECT count(*)::int FROM audit_events) AS audit
       FROM stores s WHERE s.id = $1`,
    [id],
  );
  assert.ok(rows[0], `the store ${id} exists`);
  return rows[0];
}

const chargesOf = async (server: TestServer, id: string) =>
  ((await (await server.request(`/_storehouse/billing/authorizations?storeId=${id}`)).json()) as any).authorizations as Array<{
    billingPlanId: string;
    kind: string;
    state: string;
    amountCents: number;
  }>;

/** The limits the store's own role has, seen through its own connection. */
async function roleSettings(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user');
    return {
      connectionLimit: rows[0].rolconnlimit as number,
      statementTimeout: (await client.query('SHOW statement_timeout')).rows[0].statement_timeout as string,
    };
  } finally {
    await client.end();
  }
}

/** Deletes every store of the bootstrap team (a test's stores would count against the next one's plan limits). */
async function deleteAllStores(server: TestServer): Promise<void> {
  const { rows } = await server.runtime.db.query<{ id: string }>(
    "SELECT id FROM stores WHERE team_id = (SELECT id FROM teams WHERE slug = 'my-team')",
  );
  for (const { id } of rows) {
    const response = await server.request(`/v1/storage/stores/integration/${id}?disconnect=true`, { method: 'DELETE' });
    assert.equal(response.status, 200, await response.text());
  }
}

for (const backend of BACKENDS) {
  describe(`changing stores (${backend})`, () => {
    let server: TestServer;
    let catalogFile: string | undefined;
    let icfg: string;
    let memberToken: string;
    let viewerToken: string;
    let strangerStore: string;

    const create = async (name: string, extra: Record<string, unknown> = {}) => {
      const response = await server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        ...json({
          name,
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
          ...extra,
        }),
      });
      const body = (await response.json()) as any;
      assert.equal(response.status, 200, JSON.stringify(body));
      return body.store as { id: string; name: string };
    };

    before(async () => {
      catalogFile = catalogWithReadOnlySetting();
      server = await startServer(backend, {
        catalogPath: catalogFile,
        env: { ...(backend === 'postgres' && POSTGRES_URL && { STOREHOUSE_POSTGRES_ADMIN_URL: POSTGRES_URL }) },
      });
      const db = server.runtime.db;
      icfg = (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
      const teamId = (await db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      const tokenFor = async (email: string, role: 'VIEWER' | 'MEMBER') => {
        const user = await createUser(db, { email });
        await setMember(db, teamId, user.id, role);
        return (await createToken(db, { userId: user.id, teamId, name: 't' })).value;
      };
      memberToken = await tokenFor('member@example.com', 'MEMBER');
      viewerToken = await tokenFor('viewer@example.com', 'VIEWER');
      // Another team's store, which this team must not see.
      const stranger = await createUser(db, { email: 'stranger@example.com' });
      const otherTeam = await createTeam(db, { slug: 'other-team' });
      await setMember(db, otherTeam.id, stranger.id, 'OWNER');
      const otherIcfg = (await install(db, { teamId: otherTeam.id, integrationId: 'oac_storehouse', installedBy: stranger.id })).id;
      const strangerToken = (await createToken(db, { userId: stranger.id, teamId: otherTeam.id, name: 't' })).value;
      const response = await server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        token: strangerToken,
        ...json({
          name: 'theirs',
          integrationConfigurationId: otherIcfg,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        }),
      });
      strangerStore = ((await response.json()) as any).store.id;
    });
    afterEach(() => deleteAllStores(server));
    after(async () => {
      await server?.close();
      if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
    });

    test('a rename and new settings: the store shows them, and the database role really has the limit', async () => {
      const store = await create('to-rename');
      const project = await server.sdk().projects.createProject({ requestBody: { name: 'renamed-app' } });
      await server.request(`/v1/storage/stores/${store.id}/connections`, { method: 'POST', ...json({ projectId: project.id }) });
      const env = await server.sdk().projects.filterProjectEnvs({ idOrName: project.id, decrypt: 'true' });
      const url = ('envs' in env ? env.envs : []).find((e) => e.key === 'POSTGRES_URL')!.value!;
      assert.equal((await roleSettings(url)).statementTimeout, '0');

      const changed = await patch(server, store.id, { name: 'renamed', metadata: { connectionLimit: 7, statementTimeout: '30s' } });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.store.name, 'renamed');
      assert.deepEqual(
        changed.body.store.metadata,
        { connectionLimit: 7, statementTimeout: '30s', region: 'iad1' },
        'settings not named keep their values',
      );
      assert.equal(changed.body.store.billingPlan.id, 'postgres_hobby');
      const applied = await roleSettings(url);
      assert.equal(applied.statementTimeout, '30s', "the provider applied the new timeout to the store's role");
      // The embedded provider (one PGlite per store) has no connection limit to apply.
      if (backend === 'postgres') assert.equal(applied.connectionLimit, 7, "the provider applied the new limit to the store's role");
      const { store: read } = (await (await server.request(`/v1/storage/stores/${store.id}`)).json()) as any;
      assert.equal(read.name, 'renamed');
      // The SDK parses the changed store.
      const { store: viaSdk } = await server
        .sdk()
        .storage.getStorageStoresById({ id: store.id }, { headers: { authorization: `Bearer ${server.token}` } } as any);
      assert.equal(viaSdk.status, 'available');

      const { rows } = await server.runtime.db.query<{ actor_id: string; details: any }>(
        "SELECT actor_id, details FROM audit_events WHERE action = 'store.updated' AND target_id = $1",
        [store.id],
      );
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.actor_id, server.runtime.bootstrapped!.user.id);
      assert.deepEqual(rows[0]!.details.name, { from: 'to-rename', to: 'renamed' });

      // The same values again change nothing: no provider call, no audit event.
      const again = await patch(server, store.id, { name: 'renamed', metadata: { connectionLimit: 7, statementTimeout: '30s' } });
      assert.equal(again.status, 200);
      const { rows: after } = await server.runtime.db.query(
        "SELECT 1 FROM audit_events WHERE action = 'store.updated' AND target_id = $1",
        [store.id],
      );
      assert.equal(after.length, 1);
      // The old name is free again.
      await create('to-rename');
    });

    test('plan changes are billed as creates: 402 without a card; then Pro authorized, Pay as you go paid, and back to Hobby refunds', async () => {
      const store = await create('changing-plans');
      const unchanged = await stateOf(server, store.id);
      const noCard = await patch(server, store.id, { billingPlanId: 'postgres_pro' });
      assert.deepEqual([noCard.status, noCard.body.error.code], [402, 'payment_method_required']);
      assert.deepEqual(await stateOf(server, store.id), unchanged, 'the store is as it was');

      const card = (await (
        await server.request('/_storehouse/payment-methods', { method: 'POST', ...json({ cardNumber: '4242424242424242' }) })
      ).json()) as any;
      const pro = await patch(server, store.id, { billingPlanId: 'postgres_pro' });
      assert.equal(pro.status, 200, JSON.stringify(pro.body));
      assert.equal(pro.body.store.billingPlan.id, 'postgres_pro');
      assert.deepEqual(
        (await chargesOf(server, store.id)).map((c) => [c.billingPlanId, c.kind, c.state, c.amountCents]),
        [['postgres_pro', 'preauthorization', 'authorized', 2000]],
      );

      const payg = await patch(server, store.id, { billingPlanId: 'postgres_payg', prepaymentAmountCents: 1500, paymentMethodId: card.id });
      assert.equal(payg.status, 200, JSON.stringify(payg.body));
      assert.equal(payg.body.store.prepaidBalanceCents, 1500);
      const charges = await chargesOf(server, store.id);
      assert.deepEqual(charges.map((c) => [c.billingPlanId, c.state]).sort(), [
        ['postgres_payg', 'paid'],
        ['postgres_pro', 'released'],
      ]);

      const hobby = await patch(server, store.id, { billingPlanId: 'postgres_hobby' });
      assert.equal(hobby.status, 200);
      assert.equal(hobby.body.store.billingPlan.id, 'postgres_hobby');
      assert.equal(hobby.body.store.prepaidBalanceCents, undefined, 'no prepaid balance on a free plan');
      assert.deepEqual((await chargesOf(server, store.id)).map((c) => [c.billingPlanId, c.state]).sort(), [
        ['postgres_payg', 'refunded'],
        ['postgres_pro', 'released'],
      ]);
      await server.request(`/_storehouse/payment-methods/${card.id}`, { method: 'DELETE' });
    });

    test('the plans a store may change to; a free plan the team has used up is shown disabled, except to a store on it', async () => {
      const ids = [];
      for (const name of ['hobby-a', 'hobby-b', 'hobby-c']) ids.push((await create(name)).id);
      const { rows } = await server.runtime.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM stores WHERE billing_plan_id = 'postgres_hobby' AND team_id = (SELECT id FROM teams WHERE slug = 'my-team')",
      );
      assert.equal(rows[0]!.n, 3, 'the team is at its Hobby limit');
      const card = (await (
        await server.request('/_storehouse/payment-methods', { method: 'POST', ...json({ cardNumber: '4242424242424242' }) })
      ).json()) as any;
      const proStore = await create('pro-store', { billingPlanId: 'postgres_pro' });
      const plansOf = async (id: string, query = '') => {
        const response = await server.request(`/v1/storage/stores/${id}/plans${query}`);
        assert.equal(response.status, 200);
        return ((await response.json()) as any).plans as Array<{ id: string; disabled?: boolean }>;
      };
      const forPro = await plansOf(proStore.id);
      assert.deepEqual(
        forPro.map((p) => p.id),
        ['postgres_hobby', 'postgres_pro', 'postgres_payg'],
      );
      assert.equal(forPro.find((p) => p.id === 'postgres_hobby')!.disabled, true);
      const forHobby = await plansOf(ids[0]!, `?metadata=${encodeURIComponent(JSON.stringify({ connectionLimit: 9 }))}`);
      assert.notEqual(forHobby.find((p) => p.id === 'postgres_hobby')!.disabled, true);
      const full = await patch(server, proStore.id, { billingPlanId: 'postgres_hobby' });
      assert.deepEqual([full.status, full.body.error.code], [403, 'plan_resource_limit_reached'], 'as a create on it is');
      assert.equal((await errorOf(await server.request(`/v1/storage/stores/${proStore.id}/plans?metadata=nope`))).status, 400);
      assert.equal((await server.request(`/v1/storage/stores/${strangerStore}/plans`)).status, 404);
      await deleteAllStores(server);
      await server.request(`/_storehouse/payment-methods/${card.id}`, { method: 'DELETE' });
    });

    test("every bad change is a 4xx in Vercel's format and leaves the store as it was", async () => {
      const store = await create('kept-as-is');
      await create('taken-name');
      const unchanged = await stateOf(server, store.id);
      const cases: Array<[string, unknown, number, string, string?]> = [
        ['nothing to change', {}, 400, 'bad_request'],
        ['an unknown field', { color: 'red' }, 400, 'bad_request'],
        ['a name too long', { name: 'x'.repeat(129) }, 400, 'bad_request'],
        ['a name with a control character', { name: 'bad\u0007name' }, 400, 'validation_error', 'name'],
        ['an empty name', { name: '' }, 400, 'validation_error', 'name'],
        ['a name another store has', { name: 'taken-name' }, 409, 'store_name_taken'],
        ['an unknown setting', { metadata: { shards: 3 } }, 400, 'validation_error', 'metadata.shards'],
        ['a setting out of range', { metadata: { connectionLimit: 0 } }, 400, 'validation_error', 'metadata.connectionLimit'],
        ['a setting of the wrong type', { metadata: { connectionLimit: 'many' } }, 400, 'validation_error', 'metadata.connectionLimit'],
        ['a setting fixed once created', { metadata: { region: 'fra1' } }, 400, 'validation_error', 'metadata.region'],
        ['a setting not offered', { metadata: { statementTimeout: '1h' } }, 400, 'validation_error', 'metadata.statementTimeout'],
        ['metadata that is not an object', { metadata: [1] }, 400, 'bad_request'],
        ['an unknown plan', { billingPlanId: 'postgres_platinum' }, 400, 'invalid_billing_plan', 'billingPlanId'],
        ['a payment method without a plan change', { paymentMethodId: 'pm_x' }, 400, 'validation_error', 'paymentMethodId'],
        [
          'a prepayment on a subscription plan',
          { billingPlanId: 'postgres_pro', prepaymentAmountCents: 5000 },
          400,
          'validation_error',
          'prepaymentAmountCents',
        ],
      ];
      for (const [what, body, status, code, field] of cases) {
        const answer = await patch(server, store.id, body);
        assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error.code, code, what);
        if (field)
          assert.ok(
            answer.body.error.fields?.some((f: { key: string }) => f.key === field),
            `${what} names ${field}: ${JSON.stringify(answer.body)}`,
          );
      }
      const notJson = await server.request(`/v1/storage/stores/${store.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: '{"name":',
      });
      assert.equal(notJson.status, 400);
      assert.deepEqual(
        [
          (await patch(server, store.id, { name: 'x' }, memberToken)).status,
          (await patch(server, store.id, { name: 'x' }, viewerToken)).status,
        ],
        [403, 403],
        "only the installation's admins may change a store",
      );
      assert.equal((await patch(server, strangerStore, { name: 'mine-now' })).status, 404, "another team's store is not found");
      assert.equal((await patch(server, 'store_missing', { name: 'x' })).status, 404);
      assert.equal(
        (await server.request(`/v1/storage/stores/${store.id}`, { method: 'PATCH', ...json({ name: 'x' }), token: null })).status,
        401,
      );
      assert.deepEqual(await stateOf(server, store.id), unchanged);
    });
  });
}

describe('changing a store a partner server provides', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let partner: PartnerServer;
  let installationId: string;

  before(async () => {
    // The partner makes a real database for every store, which a loaded machine can take many
    // seconds over: the timeouts are far above that (no test here waits on them; the faults
    // below answer at once).
    setup = await startStorehouseWithPartner({
      env: { STOREHOUSE_PROVISION_TIMEOUT_MS: '120000', STOREHOUSE_PARTNER_TIMEOUT_MS: '60000', STOREHOUSE_PARTNER_RETRIES: '1' },
    });
    ({ server, partner, installationId } = setup);
    await server.request('/_storehouse/payment-methods', { method: 'POST', ...json({ cardNumber: '4242424242424242' }) });
  });
  after(() => setup?.close());
  beforeEach(() => replaceFaults(partner.faults, {}));

  const create = async (name: string) => {
    const store = await setup.createStore(name);
    const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE name = $1', [name]);
    return { id: rows[0]!.id, resourceId: store.externalResourceId };
  };
  /** The resource as the partner reports it (its GET, over HTTP with a signed token). */
  const partnerResource = (resourceId: string) =>
    server.runtime.providers.for(server.runtime.catalog.findProduct('oac_partner', 'postgres')).get(installationId, resourceId);
  const updatesSent = (resourceId: string) => setup.partnerCalls('PATCH', `/resources/${resourceId}`);

  test("the partner is sent the change with a user token and an Idempotency-Key; the plans offered are the resource's", async () => {
    const { id, resourceId } = await create('partner-change');
    const plansResponse = await server.request(`/v1/storage/stores/${id}/plans`);
    assert.deepEqual(
      (((await plansResponse.json()) as any).plans as Array<{ id: string }>).map((p) => p.id),
      ['partner_free', 'partner_pro'],
    );
    const asked = partner.requests.filter((r) => r.method === 'GET' && r.url.includes(`/resources/${resourceId}/plans`));
    assert.equal(asked.length, 1, "the resource's plans were asked for");

    const changed = await patch(server, id, { name: 'partner-changed', metadata: { connectionLimit: 8 }, billingPlanId: 'partner_pro' });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.store.billingPlan.id, 'partner_pro');
    const [sent] = updatesSent(resourceId);
    assert.ok(sent);
    // The whole form, as the dashboard sends it: the settings not changed too.
    assert.deepEqual(sent.body, {
      name: 'partner-changed',
      metadata: { connectionLimit: 8, statementTimeout: 'off' },
      billingPlanId: 'partner_pro',
    });
    assert.equal(sent.vercelAuth, 'user');
    assert.equal(sent.claims?.user_role, 'ADMIN');
    assert.match(sent.idempotencyKey ?? '', /\.update\./);
    const resource = await partnerResource(resourceId);
    assert.deepEqual(
      [resource.name, resource.billingPlanId, resource.metadata.connectionLimit],
      ['partner-changed', 'partner_pro', 8],
      'the partner holds the change',
    );
    assert.deepEqual(
      (await chargesOf(server, id)).map((c) => [c.billingPlanId, c.state]),
      [['partner_pro', 'authorized']],
    );

    // The same values again change nothing: the partner is not called.
    const again = await patch(server, id, { name: 'partner-changed', metadata: { connectionLimit: 8 }, billingPlanId: 'partner_pro' });
    assert.equal(again.status, 200);
    assert.equal(updatesSent(resourceId).length, 1, 'no second PATCH reached the partner');
  });

  test("the partner's refusal is answered, and the store and its billing go back", async () => {
    const { id, resourceId } = await create('partner-refuses');
    const unchanged = await stateOf(server, id);
    partner.faults.update = { status: 400, times: 1 };
    const refused = await patch(server, id, { name: 'never-named', billingPlanId: 'partner_pro' });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    const now = await stateOf(server, id);
    assert.deepEqual([now.name, now.billing_plan_id, now.update_key], [unchanged.name, unchanged.billing_plan_id, null]);
    assert.deepEqual(
      (now.charges as Array<{ state: string }>).map((c) => c.state),
      ['released'],
      "the new plan's authorization was released",
    );
    assert.equal((await partnerResource(resourceId)).name, 'partner-refuses');
    // The name it was to take is free again.
    await create('never-named');
  });

  test('a change the partner made but answered with a body that breaks the partner API is recorded as made, and the fault named', async () => {
    const { id, resourceId } = await create('partner-malformed');
    partner.faults.update = { malformed: true, afterWork: true, times: 1 };
    const answer = await patch(server, id, { metadata: { connectionLimit: 6 } });
    assert.deepEqual([answer.status, answer.body.error.code], [502, 'provider_invalid_response'], JSON.stringify(answer.body));
    assert.match(answer.body.error.message, /recorded as made/);
    const state = await stateOf(server, id);
    assert.deepEqual([state.metadata.connectionLimit, state.update_key], [6, null]);
    assert.equal((await partnerResource(resourceId)).metadata.connectionLimit, 6, 'as the partner holds it');
  });

  test('a change the partner does not answer is recorded, refused a second change meanwhile, and sent again with the same key until applied', async () => {
    const { id, resourceId } = await create('partner-flaky');
    // Both attempts of the request fail (one retry), and the first resend too.
    partner.faults.update = { status: 500, times: 3 };
    const failed = await patch(server, id, { metadata: { connectionLimit: 9 } });
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.match(failed.body.error.message, /sent to the provider again/);
    const second = await patch(server, id, { name: 'meanwhile' });
    assert.deepEqual([second.status, second.body.error.code], [409, 'store_updating']);

    await eventually('the change is applied', async () => (await stateOf(server, id)).update_key === null, 60_000);
    const { store } = (await (await server.request(`/v1/storage/stores/${id}`)).json()) as any;
    assert.equal(store.metadata.connectionLimit, 9);
    assert.equal((await partnerResource(resourceId)).metadata.connectionLimit, 9);
    const keys = new Set(updatesSent(resourceId).map((r) => r.idempotencyKey));
    assert.ok(updatesSent(resourceId).length >= 4, 'sent by the request twice, then again by the retries');
    assert.equal(keys.size, 1, 'every send carried the same Idempotency-Key');
    assert.match([...keys][0] ?? '', /\.update\./, 'a key of this change');
  });
});

describe('a plan change to a plan the partner offers and the catalog lacks', () => {
  test("is made, and the plan is kept beside the catalog's", async () => {
    const setup = await startStorehouseWithPartner({ catalogPlans: ['partner_free'], env: { STOREHOUSE_PARTNER_RETRIES: '0' } });
    try {
      const { server, installationId } = setup;
      await server.request('/_storehouse/payment-methods', { method: 'POST', ...json({ cardNumber: '4242424242424242' }) });
      await server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'uncatalogued',
          integrationConfigurationId: installationId,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        },
      });
      const { rows } = await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name = 'uncatalogued'");
      const id = rows[0]!.id;
      const changed = await patch(server, id, { billingPlanId: 'partner_pro' });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.store.billingPlan.id, 'partner_pro');
      const state = await stateOf(server, id);
      assert.deepEqual([state.billing_plan_id, state.update_key], ['partner_pro', null], 'recorded, and nothing left under way');
    } finally {
      await setup.close();
    }
  });
});
