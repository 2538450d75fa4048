/**
 * The reference partner server (src/partner-server): the partner API as a real provider serves
 * it, against a stand-in marketplace that publishes a JWKS and records the partner's callbacks.
 * Tokens are signed here with a key of the test's own, as Storehouse signs its calls.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import pg from 'pg';
import { startPartnerServer, type PartnerServer } from '../src/partner-server/app.ts';
import { errorOf, eventually, freshDataDir } from './helpers.ts';

const CLIENT_ID = 'oac_partner';
const INSTALLATION = 'icfg_partnertest000000000001';
const ACCESS_TOKEN = 'sh_installation_token_for_callbacks';

/** The last element that matches (Array.prototype.findLast is beyond the project's ES2022 lib). */
const lastOf = <T>(items: T[], matches: (item: T) => boolean): T | undefined => [...items].reverse().find(matches);

interface Callback {
  method: string;
  url: string;
  authorization: string | undefined;
  body: any;
}

/** The stand-in marketplace: its JWKS, and every callback the partner makes, answered 201. */
async function startMarketplace(publicJwk: Record<string, unknown>) {
  const callbacks: Callback[] = [];
  const server = http.createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => {
      if (request.method === 'GET' && request.url === '/.well-known/jwks') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
        return;
      }
      callbacks.push({
        method: request.method!,
        url: request.url!,
        authorization: request.headers.authorization,
        body: text ? JSON.parse(text) : undefined,
      });
      response.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ received: true }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    callbacks,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('the reference partner server', () => {
  let marketplace: Awaited<ReturnType<typeof startMarketplace>>;
  let partner: PartnerServer;
  let dataDir: string;
  let key: CryptoKey;
  let otherKey: CryptoKey;

  /** A user token (ADMIN unless `claims` says otherwise) for INSTALLATION; `claims` may drop a claim by setting it undefined. */
  const token = async (claims: JWTPayload = {}, options: { issuer?: string; key?: CryptoKey; expires?: number | string } = {}) => {
    const payload: JWTPayload = {
      aud: CLIENT_ID,
      sub: 'account:team1:user:user1',
      account_id: 'team_1',
      installation_id: INSTALLATION,
      user_id: 'user_1',
      user_role: 'ADMIN',
      type: 'id_token',
      ...claims,
    };
    for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: options.key ? 'other' : 'test-key' })
      .setIssuer(options.issuer ?? marketplace.url)
      .setIssuedAt()
      .setExpirationTime(options.expires ?? '5m')
      .sign(options.key ?? key);
  };
  const systemToken = (claims: JWTPayload = {}) =>
    token({ sub: 'account:team1', user_id: undefined, user_role: undefined, type: 'access_token', ...claims });

  /** A partner API call; `bearer: null` sends no token. */
  const call = async (
    method: string,
    path: string,
    init: { bearer?: string | null; body?: unknown; key?: string; auth?: 'user' | 'system' } = {},
  ) => {
    const headers: Record<string, string> = {};
    const bearer = init.bearer === undefined ? await token() : init.bearer;
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.key) headers['idempotency-key'] = init.key;
    headers['x-vercel-auth'] = init.auth ?? 'user';
    return fetch(partner.url + path, { method, headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  };
  const control = (method: string, path: string, body?: unknown) =>
    fetch(partner.url + path, {
      method,
      ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });

  const resources = `/v1/installations/${INSTALLATION}/resources`;
  const provisionBody = (name: string, metadata: Record<string, unknown> = {}) => ({
    productId: 'postgres',
    name,
    metadata,
    billingPlanId: 'partner_free',
  });
  const secretsOf = (body: any) =>
    Object.fromEntries((body.secrets as Array<{ name: string; value: string }>).map((s) => [s.name, s.value]));

  /** The store every test after provisioning works on. */
  let main: { id: string; key: string; url: string };

  before(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    otherKey = (await generateKeyPair('RS256')).privateKey;
    marketplace = await startMarketplace({ ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' });
    dataDir = await freshDataDir();
    // No jwksUrl or marketplaceUrl: both default to the issuer, as with a Storehouse.
    partner = await startPartnerServer({ dataDir, clientId: CLIENT_ID, issuer: marketplace.url });
  });
  after(async () => {
    await partner?.close();
    await marketplace?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('refuses calls without a valid token (401) or beyond what the token may do (403)', async () => {
    const upsert = `/v1/installations/${INSTALLATION}`;
    const refusals: Array<[string, Promise<Response>, number]> = [
      ['no token', call('GET', upsert, { bearer: null }), 401],
      ['not a JWT', call('GET', upsert, { bearer: 'not-a-jwt' }), 401],
      ['another audience', call('GET', upsert, { bearer: await token({ aud: 'oac_someone_else' }) }), 401],
      ['another issuer', call('GET', upsert, { bearer: await token({}, { issuer: 'https://marketplace.vercel.com' }) }), 401],
      ['expired', call('GET', upsert, { bearer: await token({}, { expires: Math.floor(Date.now() / 1000) - 120 }) }), 401],
      ['a key not in the JWKS', call('GET', upsert, { bearer: await token({}, { key: otherKey }) }), 401],
      ['another installation', call('GET', upsert, { bearer: await token({ installation_id: 'icfg_other' }) }), 403],
      ['a USER provisioning', call('POST', resources, { bearer: await token({ user_role: 'USER' }), body: provisionBody('viewer') }), 403],
      ['a system token on a User endpoint', call('PUT', upsert, { bearer: await systemToken(), body: {} }), 403],
    ];
    for (const [what, response, status] of refusals) {
      const error = await errorOf(await response);
      assert.equal(error.status, status, what);
      assert.equal(error.code, status === 401 ? 'unauthorized' : 'forbidden', what);
    }
    const noToken = partner.requests.find((r) => r.method === 'GET' && r.claims === undefined);
    assert.equal(noToken?.status, 401);
  });

  test('installations: upsert (user token), read (system token), unknown is 404', async () => {
    assert.equal((await call('GET', `/v1/installations/${INSTALLATION}`, { bearer: await systemToken(), auth: 'system' })).status, 404);
    const missingToken = await errorOf(await call('PUT', `/v1/installations/${INSTALLATION}`, { body: { scopes: [], credentials: {} } }));
    assert.equal(missingToken.status, 400);
    assert.equal(missingToken.code, 'validation_error');
    assert.deepEqual(missingToken.body.error.fields, [{ key: 'credentials.access_token', message: 'is required: a non-empty string' }]);

    const upsert = await call('PUT', `/v1/installations/${INSTALLATION}`, {
      key: 'install-1',
      body: {
        scopes: ['read-write:integration-resource'],
        acceptedPolicies: { toc: new Date().toISOString() },
        credentials: { access_token: ACCESS_TOKEN, token_type: 'Bearer' },
        account: { name: 'Team One', url: 'http://storehouse.test/team', contact: { email: 'owner@example.com' } },
      },
    });
    assert.equal(upsert.status, 200);
    assert.deepEqual(await upsert.json(), {});
    assert.equal((await call('GET', `/v1/installations/${INSTALLATION}`, { bearer: await systemToken(), auth: 'system' })).status, 200);

    const recorded = lastOf(partner.requests, (r) => r.method === 'PUT' && r.status === 200)!;
    assert.equal(recorded.idempotencyKey, 'install-1');
    assert.equal(recorded.vercelAuth, 'user');
    assert.equal(recorded.claims?.user_id, 'user_1');
    assert.equal(recorded.claims?.installation_id, INSTALLATION);
    assert.equal((recorded.body as any).credentials.access_token, ACCESS_TOKEN);
    // Over HTTP the recorded requests are shown without the access token.
    const shown = (await (await control('GET', '/_partner/requests')).json()) as any;
    assert.equal(shown.requests.find((r: any) => r.method === 'PUT' && r.status === 200).body.credentials.access_token, '[redacted]');
  });

  test('provisions a real database whose secrets work; the same Idempotency-Key gets the same resource', async () => {
    const invalid = await errorOf(
      await call('POST', resources, { key: 'bad', body: { productId: 'redis', metadata: {}, billingPlanId: 'nope' } }),
    );
    assert.equal(invalid.status, 400);
    assert.equal(invalid.code, 'validation_error');
    assert.deepEqual(invalid.body.error.fields.map((f: { key: string }) => f.key).sort(), ['billingPlanId', 'name', 'productId']);

    const response = await call('POST', resources, { key: 'provision-main', body: provisionBody('main', { connectionLimit: 10 }) });
    assert.equal(response.status, 201);
    const body = (await response.json()) as any;
    assert.match(body.id, /^sh_[0-9a-z]{20}$/);
    assert.equal(body.productId, 'postgres');
    assert.equal(body.name, 'main');
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.metadata, { connectionLimit: 10 });
    assert.equal(body.billingPlan.id, 'partner_free');
    assert.equal(body.billingPlan.paymentMethodRequired, false);
    const secrets = secretsOf(body);
    assert.ok(secrets.POSTGRES_URL && secrets.DATABASE_URL && secrets.PGPASSWORD);
    const client = new pg.Client({ connectionString: secrets.POSTGRES_URL });
    await client.connect();
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await client.end();
    main = { id: body.id, key: 'provision-main', url: secrets.POSTGRES_URL! };

    const again = (await (
      await call('POST', resources, { key: 'provision-main', body: provisionBody('main', { connectionLimit: 10 }) })
    ).json()) as any;
    assert.equal(again.id, main.id);
    assert.equal(secretsOf(again).POSTGRES_URL, main.url);
    assert.equal(lastOf(partner.requests, (r) => r.method === 'POST')?.idempotencyKey, 'provision-main');
  });

  test('get, patch, rotate and the resource plans; the answers carry no secrets but Provision', async () => {
    const path = `${resources}/${main.id}`;
    const got = (await (await call('GET', path, { bearer: await systemToken(), auth: 'system' })).json()) as any;
    assert.equal(got.id, main.id);
    assert.equal(got.status, 'ready');
    assert.equal(got.secrets, undefined);

    const patched = await call('PATCH', path, {
      key: 'patch-1',
      body: { name: 'renamed', billingPlanId: 'partner_pro', metadata: { connectionLimit: 5 } },
    });
    assert.equal(patched.status, 200);
    const updated = (await patched.json()) as any;
    assert.equal(updated.name, 'renamed');
    assert.equal(updated.billingPlan.id, 'partner_pro');
    assert.equal(updated.billingPlan.preauthorizationAmount, 10);
    assert.deepEqual(updated.metadata, { connectionLimit: 5 });
    assert.equal(((await (await call('GET', path)).json()) as any).name, 'renamed');

    const badPlan = await errorOf(await call('PATCH', path, { body: { billingPlanId: 'partner_gold' } }));
    assert.equal(badPlan.status, 400);
    assert.equal(badPlan.body.error.fields[0].key, 'billingPlanId');
    assert.equal((await call('PATCH', path, { bearer: await token({ user_role: 'USER' }), body: { name: 'x' } })).status, 403);

    const rotated = await call('POST', `${path}/secrets/rotate`, { key: 'rotate-1', body: { reason: 'test' } });
    assert.equal(rotated.status, 200);
    const rotation = (await rotated.json()) as any;
    assert.equal(rotation.sync, true);
    const url = secretsOf(rotation).POSTGRES_URL!;
    assert.notEqual(url, main.url);
    main.url = url;

    const plans = (await (
      await call('GET', `${path}/plans?metadata=${encodeURIComponent('{}')}`, { bearer: await systemToken() })
    ).json()) as any;
    assert.deepEqual(
      plans.plans.map((p: { id: string }) => p.id),
      ['partner_free', 'partner_pro'],
    );
    assert.equal((await errorOf(await call('GET', `${resources}/sh_unknown`))).status, 404);
    assert.equal((await errorOf(await call('GET', `${resources}/sh_unknown`))).code, 'not_found');
  });

  test('product plans: free and paid, asked with or without an installation; bad metadata is a 400', async () => {
    const response = await call(
      'GET',
      `/v1/products/postgres/plans?metadata=${encodeURIComponent(JSON.stringify({ connectionLimit: 3 }))}`,
      {
        // Asked before any installation exists: no installation, no subject (docs/partner-api.md §1.4).
        bearer: await systemToken({ installation_id: null, sub: null as unknown as string }),
        auth: 'system',
      },
    );
    assert.equal(response.status, 200);
    const { plans } = (await response.json()) as any;
    const [free, pro] = plans;
    assert.deepEqual(
      [free.id, free.type, free.scope, free.paymentMethodRequired, free.cost],
      ['partner_free', 'subscription', 'resource', false, 'Free'],
    );
    assert.deepEqual([pro.id, pro.paymentMethodRequired, pro.preauthorizationAmount, pro.cost], ['partner_pro', true, 10, '$10.00/month']);
    assert.ok(free.name && free.description && pro.name && pro.description);

    const bad = await errorOf(await call('GET', '/v1/products/postgres/plans?metadata=%7Bnot-json', { bearer: await systemToken() }));
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'validation_error');
    assert.equal((await call('GET', '/v1/products/redis/plans', { bearer: await systemToken() })).status, 404);
  });

  test('faults: a delay, an error status, a malformed answer, for N calls, set in process or over HTTP', async () => {
    const path = `${resources}/${main.id}`;
    try {
      // A delay far above an undelayed call's time on a busy machine, so the two cannot be confused
      // (and a little below it on the lower bound: timers may fire a millisecond early).
      partner.faults.get = { delayMs: 2000, times: 1 };
      let started = Date.now();
      assert.equal((await call('GET', path)).status, 200);
      assert.ok(Date.now() - started >= 1990, 'the first call is delayed');
      started = Date.now();
      assert.equal((await call('GET', path)).status, 200);
      assert.ok(Date.now() - started < 1000, 'the second is not');
      assert.equal(partner.faults.get, undefined);

      partner.faults.plans = { status: 500, times: 2 };
      for (let i = 0; i < 2; i++) {
        const error = await errorOf(await call('GET', '/v1/products/postgres/plans'));
        assert.equal(error.status, 500);
        assert.equal(error.code, 'injected_fault');
      }
      assert.equal((await call('GET', '/v1/products/postgres/plans')).status, 200);

      partner.faults.get = { malformed: true };
      for (let i = 0; i < 2; i++) {
        const response = await call('GET', path);
        assert.equal(response.status, 200);
        const body = (await response.json()) as any;
        assert.equal(body.id, undefined);
        assert.equal(body.status, 'bogus');
      }
      delete partner.faults.get; // without `times` a fault stays until cleared
      assert.equal((await call('GET', path)).status, 200);

      // A provision that fails first does nothing (a key never used before, so the failed call
      // is the only thing that could have made a resource); the retry with the key makes one.
      const liveIds = async () =>
        (((await (await control('GET', '/_partner/resources')).json()) as any).resources as Array<{ id: string }>).map((r) => r.id).sort();
      const liveBefore = await liveIds();
      partner.faults.provision = { status: 503, times: 1 };
      assert.equal((await call('POST', resources, { key: 'provision-after-503', body: provisionBody('after-503') })).status, 503);
      assert.deepEqual(await liveIds(), liveBefore, 'the failed provision made no resource');
      const retry = await call('POST', resources, { key: 'provision-after-503', body: provisionBody('after-503') });
      assert.equal(retry.status, 201, 'the key was not used up by the failed call');
      const made = ((await retry.json()) as any).id as string;
      assert.ok(!liveBefore.includes(made), 'a new resource');
      assert.deepEqual(await liveIds(), [...liveBefore, made].sort());
      assert.equal((await call('DELETE', `${resources}/${made}`, { key: 'delete-after-503' })).status, 204);
      assert.deepEqual(await liveIds(), liveBefore);
      // The first key still gets its resource.
      const retried = (await (await call('POST', resources, { key: main.key, body: provisionBody('main') })).json()) as any;
      assert.equal(retried.id, main.id);
      // afterWork: the work is done, the answer is lost.
      partner.faults.update = { status: 502, afterWork: true, times: 1 };
      assert.equal((await call('PATCH', path, { body: { name: 'changed-then-lost' } })).status, 502);
      assert.equal(((await (await call('GET', `${resources}/${main.id}`)).json()) as any).name, 'changed-then-lost');

      // Over HTTP, without a token.
      const set = await control('PUT', '/_partner/faults', { plans: { status: 429, times: 1 }, provision: { pending: 'forever' } });
      assert.equal(set.status, 200);
      assert.deepEqual(partner.faults, { plans: { status: 429, times: 1 }, provision: { pending: 'forever' } });
      assert.equal((await call('GET', '/v1/products/postgres/plans')).status, 429);
      const invalid = await errorOf(await control('PUT', '/_partner/faults', { plans: { status: 'soon' }, teleport: {} }));
      assert.equal(invalid.status, 400);
      assert.deepEqual(
        invalid.body.error.fields.map((f: { key: string }) => f.key),
        ['plans.status', 'teleport'],
      );
      assert.equal((await control('DELETE', '/_partner/faults')).status, 200);
      assert.deepEqual(partner.faults, {});
    } finally {
      await control('DELETE', '/_partner/faults');
    }
  });

  test('a pending provision becomes ready later and tells the marketplace with the installation token', async () => {
    partner.faults.provision = { pending: 300, times: 1 };
    const response = await call('POST', resources, { key: 'provision-pending', body: provisionBody('later') });
    assert.equal(response.status, 201);
    const body = (await response.json()) as any;
    assert.equal(body.status, 'pending');
    assert.ok(secretsOf(body).POSTGRES_URL, 'a pending resource answers with its secrets');
    assert.equal(((await (await call('GET', `${resources}/${body.id}`)).json()) as any).status, 'pending');

    const event = () =>
      marketplace.callbacks.find((c) => c.url === `/v1/installations/${INSTALLATION}/events` && c.body?.event?.resourceId === body.id);
    await eventually('the resource.updated event', async () => event() !== undefined, 5000);
    assert.equal(event()!.method, 'POST');
    assert.equal(event()!.authorization, `Bearer ${ACCESS_TOKEN}`);
    assert.deepEqual(event()!.body, { event: { type: 'resource.updated', resourceId: body.id, productId: 'postgres' } });
    assert.equal(((await (await call('GET', `${resources}/${body.id}`)).json()) as any).status, 'ready');

    // Deleted: gone (404), deleting again is fine (204), and its key cannot make it again.
    assert.equal((await call('DELETE', `${resources}/${body.id}`, { key: 'delete-1' })).status, 204);
    assert.equal((await call('GET', `${resources}/${body.id}`)).status, 404);
    assert.equal((await call('DELETE', `${resources}/${body.id}`, { bearer: await systemToken(), auth: 'system' })).status, 204);
    assert.equal((await call('POST', resources, { key: 'provision-pending', body: provisionBody('later') })).status, 409);
    const live = (await (await control('GET', '/_partner/resources')).json()) as any;
    assert.deepEqual(
      live.resources.map((r: { id: string }) => r.id),
      [main.id],
    );
    assert.equal(
      (await errorOf(await call('POST', resources, { body: provisionBody('bad', { testing_initial_status: 'sleepy' }) }))).status,
      400,
    );
  });

  test('provider-side actions reach the marketplace: ready, rotated secrets, billing data', async () => {
    const callbacksBefore = marketplace.callbacks.length;
    const ready = (await (await control('POST', `/_partner/resources/${main.id}/ready`)).json()) as any;
    assert.equal(ready.status, 201);
    assert.deepEqual(
      marketplace.callbacks.slice(callbacksBefore).map((c) => [c.method, c.url, c.authorization, c.body]),
      [
        [
          'POST',
          `/v1/installations/${INSTALLATION}/events`,
          `Bearer ${ACCESS_TOKEN}`,
          { event: { type: 'resource.updated', resourceId: main.id, productId: 'postgres' } },
        ],
      ],
      'the marketplace was told the resource is updated',
    );

    const rotated = (await (await control('POST', `/_partner/resources/${main.id}/rotate-secrets`)).json()) as any;
    assert.equal(rotated.status, 201);
    assert.deepEqual(rotated.body, { received: true });
    const pushed = lastOf(marketplace.callbacks, (c) => c.method === 'PUT')!;
    assert.equal(pushed.url, `/v1/installations/${INSTALLATION}/resources/${main.id}/secrets`);
    assert.equal(pushed.authorization, `Bearer ${ACCESS_TOKEN}`);
    assert.equal(pushed.body.partial, false);
    assert.notEqual(secretsOf(pushed.body).POSTGRES_URL, main.url);

    const billing = (await (await control('POST', `/_partner/installations/${INSTALLATION}/billing`)).json()) as any;
    assert.equal(billing.status, 201);
    const sent = lastOf(marketplace.callbacks, (c) => c.url === `/v1/installations/${INSTALLATION}/billing`)!;
    assert.equal(sent.method, 'POST');
    assert.deepEqual(Object.keys(sent.body).sort(), ['billing', 'eod', 'period', 'timestamp', 'usage']);
    assert.deepEqual(sent.body.billing.items, [
      {
        billingPlanId: 'partner_pro',
        resourceId: main.id,
        name: 'Pro: changed-then-lost',
        price: '10.00',
        quantity: 1,
        units: 'month',
        total: '10.00',
      },
    ]);
    assert.equal(sent.body.usage[0].resourceId, main.id);
    assert.ok(sent.body.period.start <= sent.body.eod && sent.body.eod < sent.body.period.end);
  });

  test('after a restart the same key still gets the same resource, and the installation token is kept', async () => {
    await partner.close();
    partner = await startPartnerServer({ dataDir, clientId: CLIENT_ID, issuer: marketplace.url });
    const again = (await (await call('POST', resources, { key: main.key, body: provisionBody('main') })).json()) as any;
    assert.equal(again.id, main.id);
    const client = new pg.Client({ connectionString: secretsOf(again).POSTGRES_URL });
    await client.connect();
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await client.end();
    assert.equal(((await (await control('POST', `/_partner/resources/${main.id}/ready`)).json()) as any).status, 201);
    assert.equal(marketplace.callbacks.at(-1)!.authorization, `Bearer ${ACCESS_TOKEN}`);

    // Uninstalling with cascade deletes the installation's resources.
    const uninstalled = await call('DELETE', `/v1/installations/${INSTALLATION}`, {
      bearer: await systemToken(),
      body: { cascadeResourceDeletion: true, reason: 'test' },
    });
    assert.equal(uninstalled.status, 200);
    assert.deepEqual(await uninstalled.json(), { finalized: true });
    assert.equal((await call('GET', `${resources}/${main.id}`)).status, 404);
    assert.equal((await call('GET', `/v1/installations/${INSTALLATION}`)).status, 404);
  });
});
