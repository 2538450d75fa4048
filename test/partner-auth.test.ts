/**
 * Storehouse's side of partner authentication: the JWKS partners verify its tokens by (checked
 * with jose, as the official example integration does), key rotation, and the installation
 * access tokens partners call the marketplace API back with.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { adminCommands } from '../src/admin/commands.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { createTeam } from '../src/tenancy/teams.ts';
import { install } from '../src/tenancy/installations.ts';
import { errorOf, startServer, type TestServer } from './helpers.ts';

describe('signing keys and the JWKS', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer('embedded');
  });
  after(() => server.close());

  test('tokens verify against /.well-known/jwks with the issuer and audience; rotation keeps the old key published', async () => {
    const issuer = server.runtime.urls.issuer();
    assert.equal(issuer, server.url, 'the issuer defaults to the URL the server listens on');
    const claims = { aud: 'oac_partner', account_id: 'team_1', installation_id: 'icfg_1', sub: 'account:team_1' };
    const first = await server.runtime.keys.sign(claims, issuer);

    const response = await server.request('/.well-known/jwks', { token: null });
    assert.equal(response.status, 200);
    const jwks = (await response.json()) as { keys: Array<Record<string, unknown>> };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]!.alg, 'RS256');
    assert.equal(jwks.keys[0]!.d, undefined, 'no private part is published');

    const remote = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks`));
    const verified = await jwtVerify(first, remote, { issuer, audience: 'oac_partner', algorithms: ['RS256'] });
    assert.equal(verified.payload.installation_id, 'icfg_1');
    assert.ok(verified.payload.exp! - verified.payload.iat! <= 300, 'tokens are short-lived');
    await assert.rejects(jwtVerify(first, remote, { issuer, audience: 'oac_other' }), /aud/);
    await assert.rejects(jwtVerify(first, remote, { issuer: 'https://marketplace.vercel.com', audience: 'oac_partner' }), /iss/);

    const rotated = await adminCommands['keys.rotate'](server.runtime);
    assert.equal(rotated.retired.length, 1);
    const second = await server.runtime.keys.sign(claims, issuer);
    assert.equal(decodeProtectedHeader(second).kid, rotated.kid);
    assert.notEqual(decodeProtectedHeader(first).kid, rotated.kid);
    const after = (await (await server.request('/.well-known/jwks', { token: null })).json()) as { keys: Array<{ kid: string }> };
    assert.deepEqual(after.keys.map((k) => k.kid).sort(), [decodeProtectedHeader(first).kid, rotated.kid].sort());
    // A fresh verifier (a partner that never cached the set) accepts tokens of both keys.
    const fresh = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks`));
    await jwtVerify(first, fresh, { issuer, audience: 'oac_partner' });
    await jwtVerify(second, fresh, { issuer, audience: 'oac_partner' });

    const discovery = (await (await server.request('/.well-known/openid-configuration', { token: null })).json()) as Record<
      string,
      unknown
    >;
    assert.equal(discovery.issuer, issuer);
    assert.equal(discovery.jwks_uri, `${server.url}/.well-known/jwks`);
  });

  test('a configured issuer goes into the tokens', async () => {
    const other = await startServer('embedded', { env: { STOREHOUSE_OIDC_ISSUER: 'https://marketplace.example.com' } });
    try {
      const token = await other.runtime.keys.sign({ aud: 'oac_partner' }, other.runtime.urls.issuer());
      const remote = createRemoteJWKSet(new URL(`${other.url}/.well-known/jwks`));
      await jwtVerify(token, remote, { issuer: 'https://marketplace.example.com', audience: 'oac_partner' });
    } finally {
      await other.close();
    }
  });
});

describe('installation access tokens on the marketplace API', () => {
  let server: TestServer;
  let installationId: string;
  let token: string;
  before(async () => {
    server = await startServer('embedded');
    installationId = (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    token = (await mintInstallationToken(server.runtime.db, installationId)).value;
  });
  after(() => server.close());

  test('the account and members of its own installation, through @vercel/sdk', async () => {
    const account = await server.sdk(token).marketplace.getAccountInfo({ integrationConfigurationId: installationId });
    assert.equal(typeof account.name, 'string');
    assert.match(account.url!, new RegExp(installationId));
    assert.match(account.contact!.email!, /@/);
    const { rows } = await server.runtime.db.query<{ id: string }>('SELECT installed_by AS id FROM installations WHERE id = $1', [
      installationId,
    ]);
    const member = await server.sdk(token).marketplace.getMember({ integrationConfigurationId: installationId, memberId: rows[0]!.id });
    assert.equal(member.role, 'ADMIN');
  });

  test('no token, a user token, an unknown token and another installation are refused', async () => {
    const path = `/v1/installations/${installationId}/account`;
    assert.equal((await errorOf(await server.request(path, { token: null }))).status, 401);
    assert.equal((await errorOf(await server.request(path))).status, 401, "a user's token is not an installation's");
    assert.equal((await errorOf(await server.request(path, { token: 'shi_unknown' }))).status, 401);
    const team = await createTeam(server.runtime.db, { slug: 'other-team' });
    const other = await install(server.runtime.db, { teamId: team.id, integrationId: 'oac_storehouse', installedBy: null });
    const refused = await errorOf(await server.request(`/v1/installations/${other.id}/account`, { token }));
    assert.equal(refused.status, 403);
    const postEvent = async (event: unknown) =>
      errorOf(
        await server.request(`/v1/installations/${installationId}/events`, {
          token,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ event }),
        }),
      );
    const events = await postEvent({ type: 'resource.updated', resourceId: 'nope' });
    assert.equal(events.status, 404);
    const bad = await postEvent({ type: 'resource.updated' });
    assert.equal(bad.status, 400);
  });

  test('billing data, invoices and balances are kept as sent', async () => {
    const sdk = server.sdk(token).marketplace;
    const now = new Date();
    const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    await sdk.submitBillingData({
      integrationConfigurationId: installationId,
      requestBody: {
        timestamp: now,
        eod: day,
        period: { start: day, end: new Date(day.getTime() + 30 * 86_400_000) },
        billing: { items: [{ billingPlanId: 'postgres_pro', name: 'Storage', price: '0.10', quantity: 3, units: 'GB', total: '0.30' }] },
        usage: [{ name: 'Storage', type: 'total', units: 'GB', dayValue: 3, periodValue: 3 }],
      },
    });
    await sdk.submitPrepaymentBalances({
      integrationConfigurationId: installationId,
      requestBody: { timestamp: now, balances: [{ currencyValueInCents: 1200, nameLabel: 'Credits' }] },
    });
    const invoice = await sdk.submitInvoice({
      integrationConfigurationId: installationId,
      requestBody: {
        invoiceDate: now,
        period: { start: day, end: new Date(day.getTime() + 30 * 86_400_000) },
        items: [{ billingPlanId: 'postgres_pro', name: 'Pro', price: '20.00', quantity: 1, units: 'month', total: '20.00' }],
      },
    });
    assert.match(invoice.invoiceId!, /^inv_/);
    const { rows } = await server.runtime.db.query<{ id: string; kind: string; body: any }>(
      'SELECT id, kind, body FROM partner_reports WHERE installation_id = $1 ORDER BY created_at',
      [installationId],
    );
    assert.deepEqual(
      rows.map((r) => r.kind),
      ['billing', 'balance', 'invoice'],
    );
    const [billing, balance, invoiceRow] = rows;
    assert.deepEqual(billing!.body.billing.items, [
      { billingPlanId: 'postgres_pro', name: 'Storage', price: '0.10', quantity: 3, units: 'GB', total: '0.30' },
    ]);
    assert.equal(billing!.body.billing.items[0].total, '0.30');
    assert.deepEqual(billing!.body.usage, [{ name: 'Storage', type: 'total', units: 'GB', dayValue: 3, periodValue: 3 }]);
    assert.equal(balance!.body.balances[0].currencyValueInCents, 1200);
    assert.equal(balance!.body.balances[0].nameLabel, 'Credits');
    assert.equal(invoiceRow!.body.items[0].total, '20.00');
    assert.equal(invoiceRow!.id, invoice.invoiceId, 'the invoice id answered is the report kept');
    const missing = await errorOf(
      await server.request(`/v1/installations/${installationId}/billing`, {
        token,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ timestamp: now.toISOString() }),
      }),
    );
    assert.equal(missing.status, 400);
  });
});
