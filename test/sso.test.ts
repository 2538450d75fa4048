/**
 * SSO, "Open in provider" (src/partners/sso.ts): a user's token opens an installation at
 * Storehouse's own endpoint, which redirects to the integration's redirectLoginUrl (the reference
 * partner's /sso) with a one-time code; the partner exchanges it at POST /v1/integrations/sso/token
 * and verifies the id_token against Storehouse's JWKS. Walked over real HTTP with the reference
 * partner running, the exchange also driven by the unmodified @vercel/sdk; and every refusal:
 * reused, expired, unknown codes, wrong client id or secret, a user without access, a resource of
 * another installation, an integration without a redirectLoginUrl.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { validateCatalog } from '../src/catalog/catalog-file.ts';
import { hashToken, randomBase62 } from '../src/ids.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, removeMember, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { errorOf, eventually, POSTGRES_URL, queriesDuring, sdkFailure, startServer, writeCatalogFile, type TestServer } from './helpers.ts';
import { checkFetchResponse, findOperation, loadOpenApi } from './openapi-check.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import { subject } from '../src/partners/partner-client.ts';

const CLIENT_ID = 'oac_partner';
const CLIENT_SECRET = `cs_${randomBase62(40)}`;

/** The catalog fields that give the partner's integration SSO: its login URL (the partner's /sso) and client secret. */
const withSso = (partnerUrl: string) => ({ clientSecret: CLIENT_SECRET, redirectLoginUrl: `${partnerUrl}/sso` });

/** Storehouse's open endpoint, for an installation of an integration. */
const openPath = (integration: string, installationId: string, query: Record<string, string> = {}) =>
  `/_storehouse/sso/integrations/${integration}/${installationId}${Object.keys(query).length ? `?${new URLSearchParams(query)}` : ''}`;

describe('SSO: open in provider', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let installationId: string;
  let owner: { id: string; email: string; name: string; teamId: string };

  /** Opens the installation with `token` (the owner's unless given), asking for JSON: the partner URL with the code. */
  const openUrl = async (query: Record<string, string> = {}, token?: string): Promise<URL> => {
    const response = await server.request(openPath('acme', installationId, query), {
      headers: { accept: 'application/json' },
      ...(token !== undefined && { token }),
    });
    const body = (await response.json()) as { url: string };
    assert.equal(response.status, 200, JSON.stringify(body));
    return new URL(body.url);
  };

  /** The exchange of a code as the SDK sends it (JSON). */
  const exchange = (code: string, overrides: Record<string, string> = {}) =>
    server.sdk().marketplace.exchangeSsoToken({
      code,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      grantType: 'authorization_code',
      ...overrides,
    } as never);

  const postToken = (body: unknown, contentType = 'application/json') =>
    server.request('/v1/integrations/sso/token', {
      method: 'POST',
      token: null,
      headers: { 'content-type': contentType },
      body: contentType === 'application/json' ? JSON.stringify(body) : String(body),
    });

  /** Storehouse's id of the team's store named `name`. */
  const storeIdOf = async (name: string): Promise<string> =>
    (await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE name = $1', [name])).rows[0]!.id;

  /** A project of the token's team, made through the API; its id. */
  const createProject = async (token: string, name: string): Promise<string> => {
    const response = await server.request('/v11/projects', {
      method: 'POST',
      token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    });
    const body = (await response.json()) as { id: string };
    assert.equal(response.status, 200, JSON.stringify(body));
    return body.id;
  };

  /** A month of the partner's Pro plan for `resourceId`, submitted with the installation's access token: the invoice's id. */
  const submitInvoice = async (accessToken: string, installation: string, resourceId: string): Promise<string> => {
    const { invoiceId } = await server.sdk(accessToken).marketplace.submitInvoice({
      integrationConfigurationId: installation,
      requestBody: {
        invoiceDate: new Date(Date.UTC(2027, 0, 2)),
        period: { start: new Date(Date.UTC(2027, 0, 1)), end: new Date(Date.UTC(2027, 1, 1)) },
        items: [{ billingPlanId: 'partner_pro', resourceId, name: 'Pro', price: '10.00', quantity: 1, units: 'month', total: '10.00' }],
      },
    });
    assert.ok(invoiceId);
    return invoiceId;
  };

  before(async () => {
    setup = await startStorehouseWithPartner({
      integration: withSso,
      partnerClientSecret: CLIENT_SECRET,
      // Its own test below: these tests open the provider more often than a user may in a minute.
      env: { STOREHOUSE_RATE_LIMIT_SSO_OPENS: '1000' },
    });
    server = setup.server;
    installationId = setup.installationId;
    const bootstrapped = server.runtime.bootstrapped!;
    owner = { id: bootstrapped.user.id, email: bootstrapped.user.email, name: bootstrapped.user.name!, teamId: bootstrapped.team.id };
  });
  after(() => setup?.close());

  test('the whole redirect: Storehouse → 302 to the partner → the partner exchanges the code and names the user and resource', async () => {
    const store = await setup.createStore('sso-opened');
    const storeId = await storeIdOf('sso-opened');
    const opened = await server.request(openPath('acme', installationId, { resource_id: storeId, path: 'usage' }), {
      redirect: 'manual',
    });
    assert.equal(opened.status, 302, await opened.clone().text());
    assert.equal(opened.headers.get('cache-control'), 'no-store');
    const location = new URL(opened.headers.get('location')!);
    assert.equal(`${location.origin}${location.pathname}`, `${setup.partner.url}/sso`);
    assert.equal(location.searchParams.get('mode'), 'sso');
    assert.match(location.searchParams.get('code') ?? '', /^shsso_[A-Za-z0-9]{43}$/);
    assert.match(location.searchParams.get('state') ?? '', /^[A-Za-z0-9]{24}$/);
    // The partner's own ids: its resource id (named here by Storehouse's store id) and product slug.
    assert.equal(location.searchParams.get('resource_id'), store.externalResourceId);
    assert.equal(location.searchParams.get('product_id'), 'postgres');
    assert.equal(location.searchParams.get('path'), 'usage');
    // Only the code's hash is kept.
    const { rows } = await server.runtime.db.query('SELECT code_hash FROM sso_codes WHERE code_hash = $1', [
      hashToken(location.searchParams.get('code')!),
    ]);
    assert.equal(rows.length, 1);

    // The browser follows the redirect to the partner, which signs the user in.
    const login = await fetch(location, { headers: { accept: 'application/json' } });
    const body = (await login.json()) as any;
    assert.equal(login.status, 200, JSON.stringify(body));
    assert.deepEqual(body.user, { id: owner.id, role: 'ADMIN', email: owner.email, name: owner.name });
    assert.equal(body.installationId, installationId);
    assert.equal(body.accountId, owner.teamId);
    assert.deepEqual(body.resource, { id: store.externalResourceId, status: 'ready' });
    assert.deepEqual(body.context, { resource_id: store.externalResourceId, product_id: 'postgres', path: 'usage' });

    // The sign-in is in the team's audit log, with what was opened.
    const audit = (await (await server.request('/_storehouse/audit')).json()) as { events: any[] };
    const logins = audit.events.filter((event) => event.action === 'installation.sso_login');
    assert.equal(logins.length, 1);
    assert.equal(logins[0].actorId, owner.id);
    assert.equal(logins[0].targetId, installationId);
    assert.equal(logins[0].details.context.resource_id, store.externalResourceId);

    // The same page, once more: the code is spent, so the partner signs nobody in.
    const again = await fetch(location, { headers: { accept: 'application/json' } });
    const refused = await errorOf(again);
    assert.equal(refused.status, 401);
    assert.equal(refused.code, 'sso_failed');
    assert.match(refused.message, /400 invalid_grant: The code was already exchanged/);

    // Without Accept: JSON the partner answers a page naming the user, escaped.
    const page = await fetch(await openUrl({ url: 'https://example.com/<b>1' }));
    const html = await page.text();
    assert.equal(page.status, 200, html);
    assert.ok(html.includes(`Signed in as ${owner.name} (${owner.email})`), html);
    assert.ok(html.includes('url: https://example.com/&lt;b&gt;1'), html);
  });

  test("the id_token (through @vercel/sdk) verifies against Storehouse's JWKS and carries the user claims", async () => {
    // An invoice the partner submitted for the installation is context it receives.
    const upsert = setup.partnerCalls('PUT', `/v1/installations/${installationId}`)[0]!;
    const accessToken = (upsert.body as { credentials: { access_token: string } }).credentials.access_token;
    const store = await setup.createStore('sso-invoiced');
    const invoiceId = await submitInvoice(accessToken, installationId, store.externalResourceId);
    assert.ok(invoiceId);
    const url = await openUrl({ invoice_id: invoiceId });
    assert.equal(url.searchParams.get('invoice_id'), invoiceId);
    const answer = (await exchange(url.searchParams.get('code')!, { state: url.searchParams.get('state')! })) as any;
    assert.equal(answer.accessToken, null);
    assert.equal(answer.tokenType, null);
    assert.equal(answer.expiresIn, 300);
    const jwks = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks`));
    const { payload, protectedHeader } = await jwtVerify(answer.idToken, jwks, {
      issuer: server.runtime.urls.issuer(),
      audience: CLIENT_ID,
      algorithms: ['RS256'],
    });
    assert.equal(protectedHeader.alg, 'RS256');
    // Signed with the key partner calls are signed with: the JWKS's current key.
    const published = await server.runtime.keys.published();
    assert.equal(protectedHeader.kid, published[0]!.kid);
    assert.equal(payload.sub, subject(owner.teamId, owner.id));
    assert.equal(payload.account_id, owner.teamId);
    assert.equal(payload.installation_id, installationId);
    assert.equal(payload.user_id, owner.id);
    assert.equal(payload.user_role, 'ADMIN');
    assert.equal(payload.user_email, owner.email);
    assert.equal(payload.user_name, owner.name);
    assert.equal(payload.type, 'id_token');
    assert.equal(payload.exp! - payload.iat!, 300);
    assert.ok(payload.exp! * 1000 > Date.now());
    assert.equal(decodeProtectedHeader(answer.idToken).typ, 'JWT');
  });

  test("the partner's login refuses a parameter sent twice before it exchanges the code, which then still signs the user in", async () => {
    const store = await setup.createStore('sso-twice');
    const location = await openUrl({ resource_id: store.externalResourceId });
    for (const name of ['resource_id', 'state']) {
      const twice = new URL(location);
      twice.searchParams.append(name, 'another');
      const refused = await errorOf(await fetch(twice, { headers: { accept: 'application/json' } }));
      assert.equal(refused.status, 400);
      assert.match(refused.message, new RegExp(`${name} is sent more than once`));
    }
    const { rows } = await server.runtime.db.query<{ used: boolean }>(
      'SELECT used_at IS NOT NULL AS used FROM sso_codes WHERE code_hash = $1',
      [hashToken(location.searchParams.get('code')!)],
    );
    assert.deepEqual(rows, [{ used: false }]);
    const login = await fetch(location, { headers: { accept: 'application/json' } });
    const body = (await login.json()) as any;
    assert.equal(login.status, 200, JSON.stringify(body));
    assert.deepEqual(body.resource, { id: store.externalResourceId, status: 'ready' });
  });

  test('a form-encoded exchange (as OAuth clients send it) works once; of two exchanges racing, one wins', async () => {
    const url = await openUrl();
    const form = new URLSearchParams({
      code: url.searchParams.get('code')!,
      state: url.searchParams.get('state')!,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uri: `${setup.partner.url}/sso`,
      grant_type: 'authorization_code',
    });
    const answered = await postToken(form, 'application/x-www-form-urlencoded');
    const body = (await answered.json()) as any;
    assert.equal(answered.status, 200, JSON.stringify(body));
    assert.equal(typeof body.id_token, 'string');
    assert.equal(body.access_token, null);
    const reused = await errorOf(await postToken(form, 'application/x-www-form-urlencoded'));
    assert.equal(reused.status, 400);
    assert.equal(reused.code, 'invalid_grant');
    // A field sent twice is refused, not one of its values picked.
    const twice = await errorOf(await postToken(`${form}&client_id=oac_other`, 'application/x-www-form-urlencoded'));
    assert.equal(twice.status, 400);
    assert.match(twice.message, /client_id.*more than once/);

    const raced = await openUrl();
    const code = raced.searchParams.get('code')!;
    const statuses = await Promise.all(
      Array.from({ length: 5 }, () =>
        postToken({ code, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }).then((response) => response.status),
      ),
    );
    assert.deepEqual(
      statuses.sort((a, b) => a - b),
      [200, 400, 400, 400, 400],
    );
  });

  test('refusals of the exchange: reused, unknown, wrong client secret or id, wrong state, another grant, missing fields', async () => {
    const url = await openUrl();
    const code = url.searchParams.get('code')!;

    const wrongSecret = await sdkFailure(exchange(code, { clientSecret: `${CLIENT_SECRET}x` }));
    assert.equal(wrongSecret.status, 403);
    assert.ok(!wrongSecret.message.includes(CLIENT_SECRET));
    const wrongClient = await sdkFailure(exchange(code, { clientId: 'oac_storehouse' }));
    assert.equal(wrongClient.status, 403);
    assert.match(wrongClient.message, /client_id/);
    const wrongState = await sdkFailure(exchange(code, { state: 'not-the-state' }));
    assert.equal(wrongState.status, 400);
    assert.match(wrongState.message, /state/);
    // None of those spent the code: its own client, with its secret, still gets the token.
    assert.equal(typeof ((await exchange(code)) as any).idToken, 'string');
    const reused = await sdkFailure(exchange(code));
    assert.equal(reused.status, 400);
    assert.equal(reused.code, 'invalid_grant');
    assert.match(reused.message, /already exchanged/);

    const unknown = await sdkFailure(exchange(`shsso_${randomBase62(43)}`));
    assert.equal(unknown.status, 400);
    assert.equal(unknown.code, 'invalid_grant');

    const fresh = (await openUrl()).searchParams.get('code')!;
    const refresh = await errorOf(
      await postToken({ code: fresh, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, grant_type: 'refresh_token' }),
    );
    assert.equal(refresh.status, 400);
    assert.equal(refresh.code, 'unsupported_grant_type');
    const noSecret = await errorOf(await postToken({ code: fresh, client_id: CLIENT_ID }));
    assert.equal(noSecret.status, 400);
    assert.match(noSecret.message, /client_secret/);
    const notObject = await errorOf(await postToken('[1]'));
    assert.equal(notObject.status, 400);
    // The refusals changed nothing: the fresh code still works.
    assert.equal(typeof ((await exchange(fresh)) as any).idToken, 'string');
  });

  test("a provider-initiated open (the provider's own state) sends that state back beside the code, and the exchange holds the code to it", async () => {
    const state = `partner-${randomBase62(20)}`;
    const opened = await server.request(openPath('acme', installationId, { state, path: 'billing' }), { redirect: 'manual' });
    assert.equal(opened.status, 302, await opened.clone().text());
    const location = new URL(opened.headers.get('location')!);
    assert.equal(location.searchParams.get('state'), state);
    assert.equal(location.searchParams.getAll('state').length, 1);
    const code = location.searchParams.get('code')!;
    const wrong = await sdkFailure(exchange(code, { state: `${state}x` }));
    assert.equal(wrong.status, 400);
    assert.match(wrong.message, /state/);
    // The partner's login sends the state it received, as the reference partner does.
    const login = await fetch(location, { headers: { accept: 'application/json' } });
    assert.equal(login.status, 200, await login.clone().text());
    const tooLong = await errorOf(await server.request(openPath('acme', installationId, { state: 'x'.repeat(201) })));
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.message, /state/);
  });

  test("another team's installation of the same integration: its resource and invoice are not context of ours, nor is it ours to open; an installation token opens nothing", async () => {
    const db = server.runtime.db;
    const theirTeam = await createTeam(db, { slug: 'sso-their-team' });
    const theirOwner = await createUser(db, { email: 'sso-their-owner@example.com' });
    await setMember(db, theirTeam.id, theirOwner.id, 'OWNER');
    const theirs = await install(db, { teamId: theirTeam.id, integrationId: CLIENT_ID, installedBy: theirOwner.id });
    const theirAccess = (await mintInstallationToken(db, theirs.id)).value;
    // The partner keeps a resource for them and bills it, through the marketplace API.
    const imported = await server.request(`/v1/installations/${theirs.id}/resources/ext_theirs`, {
      method: 'PUT',
      token: theirAccess,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ productId: 'postgres', name: 'sso-theirs', status: 'ready' }),
    });
    assert.equal(imported.status, 200, await imported.text());
    const invoiceId = await submitInvoice(theirAccess, theirs.id, 'ext_theirs');
    const theirStore = await storeIdOf('sso-theirs');
    const foreignContext: Record<string, string>[] = [
      { invoice_id: invoiceId },
      { resource_id: 'ext_theirs' },
      { resource_id: theirStore },
    ];
    for (const query of foreignContext) {
      const refused = await errorOf(await server.request(openPath('acme', installationId, query)));
      assert.equal(refused.status, 404, JSON.stringify(query));
    }
    const notOurs = await errorOf(await server.request(openPath('acme', theirs.id)));
    assert.equal(notOurs.status, 404);
    const byInstallationToken = await server.request(openPath('acme', installationId), { token: theirAccess });
    assert.equal(byInstallationToken.status, 401, await byInstallationToken.clone().text());
    // Their owner opens it, on their resource and invoice: the id_token says their team and installation.
    const theirToken = (await createToken(db, { userId: theirOwner.id, teamId: theirTeam.id, name: 'theirs' })).value;
    const opened = await server.request(openPath('acme', theirs.id, { resource_id: 'ext_theirs', invoice_id: invoiceId }), {
      headers: { accept: 'application/json' },
      token: theirToken,
    });
    const url = new URL(((await opened.json()) as { url: string }).url);
    const answer = (await exchange(url.searchParams.get('code')!)) as any;
    const { payload } = await jwtVerify(answer.idToken, createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks`)), {
      issuer: server.runtime.urls.issuer(),
      audience: CLIENT_ID,
    });
    assert.equal(payload.installation_id, theirs.id);
    assert.equal(payload.account_id, theirTeam.id);
    assert.equal(payload.sub, subject(theirTeam.id, theirOwner.id));
  });

  test('a member removed between the open and the exchange gets no token, and a role changed meanwhile is the role signed', async () => {
    const db = server.runtime.db;
    const member = await createUser(db, { email: 'sso-leaver@example.com' });
    await setMember(db, owner.teamId, member.id, 'OWNER');
    const memberToken = (await createToken(db, { userId: member.id, teamId: owner.teamId, name: 'leaver' })).value;
    const demoted = (await openUrl({}, memberToken)).searchParams.get('code')!;
    const removed = (await openUrl({}, memberToken)).searchParams.get('code')!;
    await setMember(db, owner.teamId, member.id, 'VIEWER');
    const answer = (await exchange(demoted)) as any;
    assert.equal(decodeJwt(answer.idToken).user_role, 'USER');
    await removeMember(db, owner.teamId, member.id);
    const refused = await sdkFailure(exchange(removed));
    assert.equal(refused.status, 403);
    assert.match(refused.message, /no longer a member/);
    const { rows } = await db.query<{ used: boolean }>('SELECT used_at IS NOT NULL AS used FROM sso_codes WHERE code_hash = $1', [
      hashToken(removed),
    ]);
    assert.deepEqual(rows, [{ used: false }]);
  });

  test('a code takes at most 5 client secrets (each a slow hash), even tried all at once; the right one within them works', async () => {
    const wrong = (code: string) => postToken({ code, client_id: CLIENT_ID, client_secret: `${CLIENT_SECRET}x` });
    const tried = (await openUrl()).searchParams.get('code')!;
    const answers = await Promise.all(Array.from({ length: 20 }, () => wrong(tried).then(errorOf)));
    const count = (status: number) => answers.filter((answer) => answer.status === status).length;
    assert.deepEqual([count(403), count(400)], [5, 15], JSON.stringify(answers.map((answer) => answer.status)));
    const spent = await errorOf(await postToken({ code: tried, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }));
    assert.equal(spent.status, 400);
    assert.equal(spent.code, 'invalid_grant');
    assert.match(spent.message, /5 client secrets/);

    const fresh = (await openUrl()).searchParams.get('code')!;
    for (let attempt = 0; attempt < 4; attempt++) assert.equal((await wrong(fresh)).status, 403);
    assert.equal(typeof ((await exchange(fresh)) as any).idToken, 'string');
  });

  test('a code spent or expired is kept an hour past its expiry (a reuse is told apart), then deleted by the housekeeping, not by an open', async () => {
    const db = server.runtime.db;
    const spent = (await openUrl()).searchParams.get('code')!;
    await exchange(spent);
    const kept = (await openUrl()).searchParams.get('code')!;
    // Their expiry moved back, as the clock would have moved on: one just inside the hour, one past it.
    await db.query(`UPDATE sso_codes SET expires_at = now() - interval '59 minutes' WHERE code_hash = $1`, [hashToken(kept)]);
    await db.query(`UPDATE sso_codes SET expires_at = now() - interval '61 minutes' WHERE code_hash = $1`, [hashToken(spent)]);
    const left = async (code: string) => (await db.query('SELECT 1 FROM sso_codes WHERE code_hash = $1', [hashToken(code)])).rows.length;
    const opening = await queriesDuring(db, async () => void (await openUrl()));
    assert.deepEqual(
      opening.filter((sql) => /\bDELETE\b/i.test(sql)),
      [],
      'an open deletes no code',
    );
    assert.ok(
      opening.some((sql) => /^\s*INSERT INTO sso_codes/.test(sql)),
      'the open made its code',
    );
    server.runtime.ssoCodeSweep.wake();
    await eventually('the housekeeping deleting the code past its hour', async () => (await left(spent)) === 0);
    assert.equal(await left(kept), 1);
    const expired = await sdkFailure(exchange(kept));
    assert.match(expired.message, /expired/);
    const forgotten = await sdkFailure(exchange(spent));
    assert.equal(forgotten.code, 'invalid_grant');
    assert.match(forgotten.message, /not one Storehouse issued/);
  });

  test("the codes' foreign keys are indexed (deleting a user or an installation deletes its codes) and so is their expiry", async () => {
    const { rows } = await server.runtime.db.query<{ column: string }>(
      `SELECT a.attname AS column FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = 'sso_codes'::regclass`,
    );
    const leading = rows.map((row) => row.column);
    for (const column of ['code_hash', 'installation_id', 'user_id', 'expires_at'])
      assert.ok(leading.includes(column), `${column}: ${leading}`);
  });

  test('refusals of the open: no token, a user without access, a resource of another installation, no redirectLoginUrl, bad context', async () => {
    const db = server.runtime.db;
    const noToken = await errorOf(await server.request(openPath('acme', installationId), { token: null }));
    assert.equal(noToken.status, 401);

    // A user of another team: the installation is not theirs, and looks missing.
    const otherTeam = await createTeam(db, { slug: 'sso-other-team' });
    const stranger = await createUser(db, { email: 'sso-stranger@example.com' });
    await setMember(db, otherTeam.id, stranger.id, 'OWNER');
    const strangerToken = (await createToken(db, { userId: stranger.id, teamId: otherTeam.id, name: 'stranger' })).value;
    const foreign = await errorOf(await server.request(openPath('acme', installationId), { token: strangerToken }));
    assert.equal(foreign.status, 404);
    assert.equal(foreign.code, 'not_found');
    const otherProject = await createProject(strangerToken, 'sso-theirs');

    // A viewer of the team may open it, read-only: the token says USER.
    const viewer = await createUser(db, { email: 'sso-viewer@example.com', name: 'Vi Ewer' });
    await setMember(db, owner.teamId, viewer.id, 'VIEWER');
    const viewerToken = (await createToken(db, { userId: viewer.id, teamId: owner.teamId, name: 'viewer' })).value;
    const viewerLogin = await fetch(await openUrl({}, viewerToken), { headers: { accept: 'application/json' } });
    const viewerBody = (await viewerLogin.json()) as any;
    assert.equal(viewerLogin.status, 200, JSON.stringify(viewerBody));
    assert.deepEqual(viewerBody.user, { id: viewer.id, role: 'USER', email: viewer.email, name: 'Vi Ewer' });

    // A store of the team's other installation (the built-in integration) is not this installation's resource.
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'storehouse' });
    const builtInInstallation = configurations[0]!.id!;
    await server.sdk().integrations.createIntegrationStoreDirect({
      requestBody: {
        name: 'sso-built-in',
        integrationConfigurationId: builtInInstallation,
        integrationProductIdOrSlug: 'postgres',
        metadata: { connectionLimit: 5 },
      },
    });
    const otherResource = await errorOf(
      await server.request(openPath('acme', installationId, { resource_id: await storeIdOf('sso-built-in') })),
    );
    assert.equal(otherResource.status, 404);
    assert.match(otherResource.message, /resource/);
    const unknownResource = await errorOf(await server.request(openPath('acme', installationId, { resource_id: 'store_nothing' })));
    assert.equal(unknownResource.status, 404);

    // The built-in integration has no redirectLoginUrl: a clear 409, no code issued.
    const before = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sso_codes')).rows[0]!.n;
    const noSso = await errorOf(await server.request(openPath('storehouse', builtInInstallation)));
    assert.equal(noSso.status, 409);
    assert.equal(noSso.code, 'sso_not_configured');
    assert.match(noSso.message, /redirectLoginUrl/);
    // An installation named under another integration's path is not found there.
    const mismatched = await errorOf(await server.request(openPath('storehouse', installationId)));
    assert.equal(mismatched.status, 404);
    const unknownIntegration = await errorOf(await server.request(openPath('nope', installationId)));
    assert.equal(unknownIntegration.status, 404);

    const project = await errorOf(await server.request(openPath('acme', installationId, { project_id: otherProject })));
    assert.equal(project.status, 404);
    assert.match(project.message, /project/);
    const invoice = await errorOf(await server.request(openPath('acme', installationId, { invoice_id: 'inv_nothing' })));
    assert.equal(invoice.status, 404);
    assert.match(invoice.message, /invoice/);
    const product = await errorOf(await server.request(openPath('acme', installationId, { product_id: 'redis' })));
    assert.equal(product.status, 404);
    const badPath = await errorOf(await server.request(openPath('acme', installationId, { path: 'elsewhere' })));
    assert.equal(badPath.status, 400);
    assert.match(badPath.message, /path/);
    const unknownParameter = await errorOf(await server.request(openPath('acme', installationId, { code: 'mine' })));
    assert.equal(unknownParameter.status, 400);
    assert.match(unknownParameter.message, /code/);
    const empty = await errorOf(await server.request(openPath('acme', installationId, { resource_id: '' })));
    assert.equal(empty.status, 400);
    const head = await server.request(openPath('acme', installationId), { method: 'HEAD' });
    assert.equal(head.status, 405);
    assert.equal(
      (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sso_codes')).rows[0]!.n,
      before,
      'no refusal issued a code',
    );

    // A team-owned project is context the partner receives.
    const ownProject = await createProject(server.token, 'sso-ours');
    assert.equal((await openUrl({ project_id: ownProject, support: 'true' })).searchParams.get('project_id'), ownProject);
  });

  test('its answers are the ones /openapi.json documents, for both operations', async () => {
    const doc = await loadOpenApi(server.url);
    const problems: string[] = [];
    const seen: string[] = [];
    const check = async (method: string, path: string, response: Response, expect: number) => {
      seen.push(`${method} ${findOperation(doc, method, path)?.template} ${response.status}`);
      problems.push(...(await checkFetchResponse(doc, method, path, response)).problems);
      assert.equal(response.status, expect, `${method} ${path}`);
    };
    const open = (query: Record<string, string>, init: RequestInit & { token?: string | null } = {}) => {
      const path = openPath('acme', installationId, query);
      return server.request(path, init).then((response) => ({ path, response }));
    };
    for (const [query, init, expect] of [
      [{}, { headers: { accept: 'application/json' } }, 200],
      [{}, { redirect: 'manual' }, 302],
      [{ path: 'elsewhere' }, {}, 400],
      [{}, { token: null }, 401],
      [{ resource_id: 'store_nothing' }, {}, 404],
    ] as const) {
      const { path, response } = await open(query, init);
      await check('GET', path, response, expect);
    }
    await check('GET', openPath('storehouse', 'icfg_x'), await server.request(openPath('storehouse', 'icfg_x')), 404);
    const url = await openUrl();
    const code = url.searchParams.get('code')!;
    const token = '/v1/integrations/sso/token';
    await check('POST', token, await postToken({ code, client_id: CLIENT_ID, client_secret: 'wrong-secret-wrong' }), 403);
    await check('POST', token, await postToken({ code, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }), 200);
    await check('POST', token, await postToken({ code, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }), 400);
    assert.deepEqual(problems, []);
    assert.ok(!seen.some((entry) => entry.includes('undefined')), seen.join(', '));
  });

  test('the catalog refuses a redirectLoginUrl without a clientSecret, and one that is not http(s)', () => {
    const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
    const partner = catalog.integrations.find((i: { id: string }) => i.id === CLIENT_ID);
    partner.redirectLoginUrl = 'http://127.0.0.1:9/sso';
    assert.throws(() => validateCatalog(catalog, 'catalog.yaml'), /clientSecret/);
    partner.clientSecret = CLIENT_SECRET;
    validateCatalog(catalog, 'catalog.yaml');
    partner.redirectLoginUrl = 'javascript:alert(1)';
    assert.throws(() => validateCatalog(catalog, 'catalog.yaml'), /redirectLoginUrl/);
  });

  test("after every open and exchange above, Storehouse's log holds no code, id_token or client secret", () => {
    const opens = server.logs.filter((line) => line.includes('/_storehouse/sso/integrations/'));
    const exchanges = server.logs.filter((line) => line.includes('/v1/integrations/sso/token'));
    assert.ok(opens.length > 10 && exchanges.length > 10, `${opens.length} opens and ${exchanges.length} exchanges logged`);
    const leaks = server.logs.filter((line) => /shsso_|eyJ[\w-]+\.eyJ/.test(line) || line.includes(CLIENT_SECRET));
    assert.deepEqual(leaks, []);
  });
});

describe('SSO: an expired code, and the opens of a user per minute', () => {
  let server: TestServer;
  let catalogFile: string;
  before(async () => {
    const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
    Object.assign(
      catalog.integrations.find((i: { id: string }) => i.id === CLIENT_ID),
      withSso('http://127.0.0.1:9'),
    );
    // The partner server is not needed: Storehouse issues the code, and the exchange is Storehouse's.
    catalogFile = writeCatalogFile(catalog);
    server = await startServer(POSTGRES_URL ? 'postgres' : 'embedded', {
      catalogPath: catalogFile,
      env: { STOREHOUSE_SSO_CODE_TTL_MS: '200', STOREHOUSE_RATE_LIMIT_SSO_OPENS: '2' },
    });
  });
  after(async () => {
    await server?.close();
    if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
  });

  test('is refused once its time is up', async () => {
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    const response = await server.request(openPath('acme', configurations[0]!.id!), { redirect: 'manual' });
    assert.equal(response.status, 302, await response.clone().text());
    const code = new URL(response.headers.get('location')!).searchParams.get('code')!;
    // Waits for the database's clock to pass the code's expiry, which is what the exchange checks.
    await eventually('the code to expire', async () => {
      const sql = 'SELECT expires_at <= now() AS expired FROM sso_codes WHERE code_hash = $1';
      return (await server.runtime.db.query<{ expired: boolean }>(sql, [hashToken(code)])).rows[0]!.expired;
    });
    const expired = await sdkFailure(
      server
        .sdk()
        .marketplace.exchangeSsoToken({ code, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, grantType: 'authorization_code' }),
    );
    assert.equal(expired.status, 400);
    assert.equal(expired.code, 'invalid_grant');
    assert.match(expired.message, /expired/);
  });

  test("a user's opens are limited per minute (Vercel's 20), each user counted apart", async () => {
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    const path = openPath('acme', configurations[0]!.id!);
    const json = { headers: { accept: 'application/json' } };
    // Opened until refused: within the limit (2) of this window, or of the next if a minute turns meanwhile.
    let limited: Response | undefined;
    let opened = 0;
    for (let attempt = 0; attempt < 5 && !limited; attempt++) {
      const response = await server.request(path, json);
      if (response.status === 429) limited = response;
      else {
        assert.equal(response.status, 200, await response.text());
        assert.equal(response.headers.get('x-ratelimit-limit'), '2');
        opened++;
      }
    }
    assert.ok(limited, 'the opens were refused past the limit');
    assert.ok(opened <= 4, `${opened} opens before the first refusal`);
    const refused = await errorOf(limited.clone());
    assert.equal(refused.code, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    // Another member of the team has opens of their own.
    const db = server.runtime.db;
    const member = await createUser(db, { email: 'sso-member@example.com' });
    await setMember(db, server.runtime.bootstrapped!.team.id, member.id, 'MEMBER');
    const memberToken = (await createToken(db, { userId: member.id, teamId: server.runtime.bootstrapped!.team.id, name: 'member' })).value;
    assert.equal((await server.request(path, { ...json, token: memberToken })).status, 200);
  });
});
