/**
 * The dashboard's sign-in on the server, over HTTP (no browser): one-time codes work once (also
 * when two requests race for one) and not after they expire; sessions stop at their expiry and at
 * sign-out; the cookie is HttpOnly, SameSite=Strict and Secure over https; a bearer token beside a
 * cookie is what counts; store secrets are read back by those who may read credentials only;
 * and a server without a dashboard build says how to make one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import dashboardRoutes from '../src/http/routes/dashboard.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { hashToken } from '../src/ids.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { checkFetchResponse, loadOpenApi } from './openapi-check.ts';
import { BACKENDS, errorOf, eventually, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { type TwoNodes, twoNodes } from './two-nodes.ts';
import { runAdminCommand } from '../src/admin/commands.ts';

const json = { 'content-type': 'application/json' };

for (const backend of BACKENDS) {
  describe(`dashboard sessions (${backend})`, () => {
    let server: TestServer;
    let viewerToken: string;
    let ownerId: string;
    let teamId: string;

    /** Signs in with `body` ({token} or {code}); the response and its session cookie. */
    const signIn = async (body: unknown, headers: Record<string, string> = {}) => {
      const response = await server.request('/_storehouse/dashboard/session', {
        method: 'POST',
        token: null,
        headers: { ...json, ...headers },
        body: JSON.stringify(body),
      });
      const setCookie = response.headers.get('set-cookie') ?? '';
      return { response, setCookie, cookie: setCookie.split(';')[0]! };
    };
    const withCookie = (cookie: string, path: string, init: RequestInit = {}) =>
      server.request(path, { ...init, token: null, headers: { ...(init.headers as Record<string, string>), cookie } });

    before(async () => {
      server = await startServer(backend, { env: { STOREHOUSE_TRUST_PROXY: 'true' } });
      const db = server.runtime.db;
      const me = await (await server.request('/v2/user')).json();
      ownerId = (me as any).user.id;
      teamId = (me as any).user.defaultTeamId;
      const viewer = await createUser(db, { email: 'viewer@example.com' });
      await setMember(db, teamId, viewer.id, 'VIEWER');
      viewerToken = (await createToken(db, { userId: viewer.id, teamId, name: 'viewer' })).value;
    });
    after(() => server.close());

    test('a token signs in: the cookie is HttpOnly, SameSite=Strict, Path=/, and the session is its user', async () => {
      const { response, setCookie, cookie } = await signIn({ token: server.token });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      assert.match(setCookie, /^storehouse_session=shd_\w+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      const body = (await response.json()) as any;
      assert.equal(body.user.id, ownerId);
      assert.equal(body.team.id, teamId);
      assert.equal(body.team.role, 'OWNER');
      assert.match(body.csrfToken, /^\w{32}$/);
      assert.ok(!JSON.stringify(body).includes(server.token), 'the token is not echoed');
      const session = (await (await withCookie(cookie, '/_storehouse/dashboard/session')).json()) as any;
      assert.equal(session.csrfToken, body.csrfToken);
      const user = (await (await withCookie(cookie, '/v2/user')).json()) as any;
      assert.equal(user.user.id, ownerId);
    });

    test('over https (a trusted proxy says so) the cookie is Secure and __Host-, the only name read there', async () => {
      const https = { 'x-forwarded-proto': 'https' };
      const { setCookie, cookie } = await signIn({ token: server.token }, https);
      assert.match(setCookie, /^__Host-storehouse_session=shd_\w+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
      const secret = cookie.slice('__Host-storehouse_session='.length);
      const as = (cookieHeader: string) =>
        server.request('/v2/user', { token: null, headers: { ...https, cookie: cookieHeader } }).then((r) => r.status);
      assert.equal(await as(cookie), 200);
      // A cookie without the prefix (one a sibling subdomain could plant) authenticates nothing over https.
      assert.equal(await as(`storehouse_session=${secret}`), 401);
      const { response } = await signIn({ token: server.token });
      assert.equal(response.status, 200, 'over http the plain name is the one');
    });

    test('bad sign-ins are 4xx that make no session', async () => {
      const bad = await signIn({ token: 'sh_not_a_token' });
      assert.equal(bad.response.status, 401);
      assert.equal(bad.setCookie, '');
      for (const body of [{}, { token: server.token, code: 'x' }, { token: '' }, { extra: 1 }]) {
        const { response, setCookie } = await signIn(body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal((await errorOf(response)).code, 'bad_request');
        assert.equal(setCookie, '');
      }
      const bearer = await server.request('/_storehouse/dashboard/session');
      assert.equal(bearer.status, 401, 'a bearer token has no dashboard session');
    });

    test('a one-time code works once, even when two requests race for it', async () => {
      const { code } = await server.runtime.dashboardSessions.createLinkCode(ownerId, teamId);
      const [a, b] = await Promise.all([signIn({ code }), signIn({ code })]);
      assert.deepEqual([a.response.status, b.response.status].sort(), [200, 401]);
      const again = await signIn({ code });
      assert.equal(again.response.status, 401);
      assert.match((await errorOf(again.response)).message, /used already or has expired/);
    });

    test('an expired code and an expired session are refused', async () => {
      const { code } = await server.runtime.dashboardSessions.createLinkCode(ownerId, teamId);
      await server.runtime.db.query("UPDATE dashboard_link_codes SET expires_at = now() - interval '1 second'");
      assert.equal((await signIn({ code })).response.status, 401);
      const { cookie } = await signIn({ token: server.token });
      assert.equal((await withCookie(cookie, '/v2/user')).status, 200);
      await server.runtime.db.query("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second'");
      const expired = await withCookie(cookie, '/v2/user');
      assert.equal(expired.status, 401);
      assert.equal((await errorOf(expired)).code, 'unauthorized');
    });

    test('signing out ends the session; its cookie is refused, and a sign-out needs the CSRF token', async () => {
      const { response, cookie } = await signIn({ token: server.token });
      const { csrfToken } = (await response.json()) as any;
      const refused = await withCookie(cookie, '/_storehouse/dashboard/session', { method: 'DELETE' });
      assert.equal(refused.status, 403, 'no CSRF token: a page of another site cannot sign you out either');
      assert.equal((await withCookie(cookie, '/v2/user')).status, 200);
      const out = await withCookie(cookie, '/_storehouse/dashboard/session', {
        method: 'DELETE',
        headers: { 'x-storehouse-csrf': csrfToken },
      });
      assert.equal(out.status, 204);
      assert.match(out.headers.get('set-cookie') ?? '', /^storehouse_session=; .*Max-Age=0/);
      assert.equal((await withCookie(cookie, '/v2/user')).status, 401);
      assert.equal((await withCookie(cookie, '/_storehouse/dashboard/session')).status, 401);
    });

    test('signing in again ends the session the browser had, and a session in use has its cookie renewed with it', async () => {
      const first = await signIn({ token: server.token });
      const second = await signIn({ token: server.token }, { cookie: first.cookie });
      assert.equal(second.response.status, 200);
      assert.notEqual(second.cookie, first.cookie);
      assert.equal((await withCookie(first.cookie, '/v2/user')).status, 401, 'the replaced session has ended');
      assert.equal((await withCookie(second.cookie, '/v2/user')).status, 200);

      // Used again after a while: the server extends the session, and the cookie's lifetime with it.
      const secret = second.cookie.slice('storehouse_session='.length);
      await server.runtime.db.query(
        "UPDATE dashboard_sessions SET last_seen_at = now() - interval '2 minutes', expires_at = now() + interval '1 minute' WHERE secret_hash = $1",
        [hashToken(secret)],
      );
      const used = await withCookie(second.cookie, '/v2/user');
      assert.equal(used.status, 200);
      assert.match(
        used.headers.get('set-cookie') ?? '',
        new RegExp(`^${second.cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200$`),
      );
      const { rows } = await server.runtime.db.query<{ left: number }>(
        'SELECT extract(epoch FROM expires_at - now()) AS left FROM dashboard_sessions WHERE secret_hash = $1',
        [hashToken(secret)],
      );
      assert.ok(Number(rows[0]!.left) > 43_000, `the session was extended: ${rows[0]!.left} s left`);
      const soon = await withCookie(second.cookie, '/v2/user');
      assert.equal(soon.headers.get('set-cookie'), null, 'a session just extended is not written again');
    });

    test("a member removed from the team loses their dashboard sessions in it, a one-time link's too", async () => {
      const leaver = await createUser(server.runtime.db, { email: `leaver-${Date.now()}@example.com` });
      await setMember(server.runtime.db, teamId, leaver.id, 'DEVELOPER');
      const { code } = await server.runtime.dashboardSessions.createLinkCode(leaver.id, teamId);
      const { response, cookie } = await signIn({ code });
      assert.equal(response.status, 200);
      assert.equal((await withCookie(cookie, '/v2/user')).status, 200);
      const removed = await server.request(`/v1/teams/${teamId}/members/${leaver.id}`, { method: 'DELETE' });
      assert.equal(removed.status, 200);
      const ended = await withCookie(cookie, '/_storehouse/dashboard/session');
      assert.equal(ended.status, 401, 'the session ended: the page asks to sign in again');

      // The same when the operator removes them (`storehouse members remove`).
      await setMember(server.runtime.db, teamId, leaver.id, 'DEVELOPER');
      const again = await signIn({ code: (await server.runtime.dashboardSessions.createLinkCode(leaver.id, teamId)).code });
      assert.equal((await withCookie(again.cookie, '/v2/user')).status, 200);
      await runAdminCommand(server.runtime, 'members.remove', { team: teamId, user: leaver.email });
      assert.equal((await withCookie(again.cookie, '/_storehouse/dashboard/session')).status, 401);
    });

    test('a session made from a token ends when the token is revoked', async () => {
      const made = await server.request('/v3/user/tokens', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'short-lived' }),
      });
      const { bearerToken } = (await made.json()) as any;
      const { cookie } = await signIn({ token: bearerToken });
      assert.equal((await withCookie(cookie, '/v2/user')).status, 200);
      const revoked = await server.request('/v3/user/tokens/current', { method: 'DELETE', token: bearerToken });
      assert.equal(revoked.status, 200);
      assert.equal((await withCookie(cookie, '/v2/user')).status, 401);
      // A session from a one-time link has no token to end with.
      const { code } = await server.runtime.dashboardSessions.createLinkCode(ownerId, teamId);
      const linked = await signIn({ code });
      assert.equal((await withCookie(linked.cookie, '/v2/user')).status, 200);
    });

    test('a bearer token beside a cookie is what authenticates, and needs no CSRF token', async () => {
      const { cookie } = await signIn({ token: viewerToken });
      const response = await server.request('/_storehouse/payment-methods', {
        method: 'POST',
        headers: { ...json, cookie },
        body: JSON.stringify({ cardNumber: '4242424242424242' }),
      });
      assert.equal(response.status, 200, 'the owner token wrote, not the viewer cookie');
      const viewerWrite = await withCookie(cookie, '/_storehouse/payment-methods', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ cardNumber: '4242424242424242' }),
      });
      assert.equal(viewerWrite.status, 403);
    });

    test('its answers match /openapi.json', async () => {
      const doc = await loadOpenApi(`${server.url}/openapi.json`);
      const problems: string[] = [];
      const check = async (method: string, path: string, response: Response, status: number) => {
        assert.equal(response.status, status, `${method} ${path}`);
        problems.push(...(await checkFetchResponse(doc, method, path, response)).problems);
      };
      const session = '/_storehouse/dashboard/session';
      const { response, cookie } = await signIn({ token: server.token });
      const { csrfToken } = (await response.clone().json()) as any;
      await check('POST', session, response, 200);
      await check('POST', session, (await signIn({ code: '' })).response, 400);
      await check('POST', session, (await signIn({ code: 'nope' })).response, 401);
      await check('GET', session, await withCookie(cookie, session), 200);
      await check('GET', session, await server.request(session), 401);
      await check(
        'GET',
        '/_storehouse/stores/store_nothing/secrets',
        await server.request('/_storehouse/stores/store_nothing/secrets'),
        404,
      );
      await check('DELETE', session, await withCookie(cookie, session, { method: 'DELETE' }), 403);
      await check(
        'DELETE',
        session,
        await withCookie(cookie, session, { method: 'DELETE', headers: { 'x-storehouse-csrf': csrfToken } }),
        204,
      );
      assert.deepEqual(problems, []);
    });

    test('members and own tokens: owners change roles, everyone their own tokens, and the answers match /openapi.json', async () => {
      const doc = await loadOpenApi(`${server.url}/openapi.json`);
      const problems: string[] = [];
      const call = async (method: string, path: string, status: number, init: { token?: string; body?: unknown } = {}) => {
        const response = await server.request(path, {
          method,
          ...(init.token && { token: init.token }),
          ...(init.body !== undefined && { headers: json, body: JSON.stringify(init.body) }),
        });
        const checked = await checkFetchResponse(doc, method, path, response);
        assert.equal(response.status, status, `${method} ${path}: ${JSON.stringify(checked.body)}`);
        problems.push(...checked.problems);
        return checked.body as any;
      };
      const viewerId = (await call('GET', '/v2/user', 200, { token: viewerToken })).user.id;
      const members = await call('GET', `/v3/teams/${teamId}/members`, 200, { token: viewerToken });
      assert.deepEqual(members.members.map((m: any) => m.role).sort(), ['OWNER', 'VIEWER']);
      await call('PATCH', `/v1/teams/${teamId}/members/${viewerId}`, 403, { token: viewerToken, body: { role: 'OWNER' } });
      await call('PATCH', `/v1/teams/${teamId}/members/${viewerId}`, 400, { body: { role: 'EMPEROR' } });
      await call('PATCH', `/v1/teams/${teamId}/members/${ownerId}`, 409, { body: { role: 'MEMBER' } });
      await call('PATCH', `/v1/teams/${teamId}/members/nobody`, 404, { body: { role: 'MEMBER' } });
      await call('PATCH', `/v1/teams/${teamId}/members/${viewerId}`, 200, { body: { role: 'DEVELOPER' } });
      assert.equal((await call('GET', `/v3/teams/${teamId}/members`, 200)).members.find((m: any) => m.uid === viewerId).role, 'DEVELOPER');
      await call('PATCH', `/v1/teams/${teamId}/members/${viewerId}`, 200, { body: { role: 'VIEWER' } });
      const other = await createTeam(server.runtime.db, { slug: 'dash-elsewhere' });
      await call('GET', `/v3/teams/${other.id}/members`, 403);
      await call('DELETE', `/v1/teams/${teamId}/members/${ownerId}`, 403, { token: viewerToken });

      const created = await call('POST', '/v3/user/tokens', 200, { token: viewerToken, body: { name: 'mine' } });
      assert.match(created.bearerToken, /^sh_/);
      assert.equal((await call('GET', '/v2/user', 200, { token: created.bearerToken })).user.id, viewerId);
      await call('POST', '/v3/user/tokens', 400, { token: viewerToken, body: { name: ' ' } });
      await call('POST', '/v3/user/tokens', 400, { token: viewerToken, body: { name: 'old', expiresAt: Date.now() - 1000 } });
      const listed = await call('GET', '/v6/user/tokens', 200, { token: viewerToken });
      assert.deepEqual(listed.tokens.map((t: any) => t.name).sort(), ['mine', 'viewer']);
      assert.ok(!JSON.stringify(listed).includes(created.bearerToken), 'no value is listed');
      const ownersToken = (await call('GET', '/v6/user/tokens', 200)).tokens[0].id;
      await call('DELETE', `/v3/user/tokens/${ownersToken}`, 404, { token: viewerToken });
      await call('DELETE', '/v3/user/tokens/current', 200, { token: created.bearerToken });
      await call('GET', '/v2/user', 401, { token: created.bearerToken });
      const events = (await call('GET', '/_storehouse/audit', 200)).events.map((e: any) => `${e.action}:${e.actorId}`);
      assert.ok(events.includes(`token.created:${viewerId}`) && events.includes(`member.role_set:${ownerId}`), JSON.stringify(events));
      assert.deepEqual(problems, []);
    });

    test('members and own tokens through @vercel/sdk: its calls, its filters, and its parsing of the answers', async () => {
      const sdk = server.sdk();
      const db = server.runtime.db;
      const developer = await createUser(db, { email: 'sdk-dev@example.com', name: 'Ada Developer' });
      await setMember(db, teamId, developer.id, 'DEVELOPER');
      const everyone = await sdk.teams.getTeamMembers({ teamId });
      assert.ok(everyone.members.length >= 3 && everyone.pagination.hasNext === false, JSON.stringify(everyone));
      // The SDK's filters are answered, not ignored: one role, a search, a limit.
      const developers = await sdk.teams.getTeamMembers({ teamId, role: 'DEVELOPER' });
      assert.deepEqual(
        developers.members.map((m) => m.uid),
        [developer.id],
      );
      assert.deepEqual((await sdk.teams.getTeamMembers({ teamId, role: 'SECURITY' })).members, []);
      assert.deepEqual(
        (await sdk.teams.getTeamMembers({ teamId, search: 'ada dev' })).members.map((m) => m.email),
        ['sdk-dev@example.com'],
      );
      const one = await sdk.teams.getTeamMembers({ teamId, limit: 1 });
      assert.equal(one.members.length, 1);
      assert.equal(one.pagination.hasNext, true);
      await assert.rejects(sdk.teams.getTeamMembers({ teamId: 'team_elsewhere' }), (error: any) => error.statusCode === 403);

      assert.deepEqual(await sdk.teams.updateTeamMember({ teamId, uid: developer.id, requestBody: { role: 'BILLING' } }), {
        id: developer.id,
      });
      assert.equal((await sdk.teams.getTeamMembers({ teamId, role: 'BILLING' })).members[0]?.uid, developer.id);
      await assert.rejects(
        sdk.teams.updateTeamMember({ teamId, uid: ownerId, requestBody: { role: 'MEMBER' } }),
        (error: any) => error.statusCode === 409,
      );

      const created = await sdk.authentication.createAuthToken({ teamId, requestBody: { name: 'through the sdk' } });
      assert.match(created.bearerToken, /^sh_/);
      const listed = await sdk.authentication.listAuthTokens();
      assert.ok(
        listed.tokens.some((t) => t.id === created.token.id && t.name === 'through the sdk'),
        JSON.stringify(listed),
      );
      assert.deepEqual(await sdk.authentication.deleteAuthToken({ tokenId: created.token.id }), { tokenId: created.token.id });
      assert.equal((await server.request('/v2/user', { token: created.bearerToken })).status, 401);
      await assert.rejects(sdk.authentication.deleteAuthToken({ tokenId: 'tok_nothing' }), (error: any) => error.statusCode === 404);

      assert.deepEqual(await sdk.teams.removeTeamMember({ teamId, uid: developer.id }), { id: developer.id });
      assert.equal((await sdk.teams.getTeamMembers({ teamId, search: 'sdk-dev' })).members.length, 0);
      await assert.rejects(sdk.teams.removeTeamMember({ teamId, uid: developer.id }), (error: any) => error.statusCode === 404);
    });

    test("a store's secrets are read back by those who may read credentials: a viewer is refused, another team sees nothing", async () => {
      const created = await server.request('/v1/storage/stores/integration/direct', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          name: 'secrets-read',
          integrationConfigurationId: ((await (await server.request('/v1/integrations/configurations?view=account')).json()) as any)[0].id,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 3 },
        }),
      });
      let store = ((await created.json()) as any).store;
      assert.ok(store?.id, JSON.stringify(store));
      await eventually(
        'the store becoming available',
        async () => {
          store = ((await (await server.request(`/v1/storage/stores/${store.id}`)).json()) as any).store;
          return store.status === 'available';
        },
        120_000,
      );
      assert.ok(store.secrets.length > 0);
      const read = await server.request(`/_storehouse/stores/${store.id}/secrets`);
      assert.equal(read.status, 200);
      assert.equal(read.headers.get('cache-control'), 'no-store');
      const { secrets } = (await read.json()) as any;
      assert.deepEqual(
        secrets.map((secret: any) => [secret.name, secret.value.length]),
        store.secrets.map((secret: any) => [secret.name, secret.length]),
      );
      assert.match(secrets.find((secret: any) => secret.name === 'POSTGRES_URL').value, /^postgres(ql)?:\/\//);
      const viewer = await server.request(`/_storehouse/stores/${store.id}/secrets`, { token: viewerToken });
      assert.equal(viewer.status, 403);
      const db = server.runtime.db;
      const other = await createTeam(db, { slug: 'dash-other' });
      const stranger = await createUser(db, { email: 'stranger@example.com' });
      await setMember(db, other.id, stranger.id, 'OWNER');
      const strangerToken = (await createToken(db, { userId: stranger.id, teamId: other.id, name: 's' })).value;
      assert.equal((await server.request(`/_storehouse/stores/${store.id}/secrets`, { token: strangerToken })).status, 404);

      // The rule env pull keeps: billing members never; a developer until the store is connected
      // as sensitive, then only its configuration's admins (the owner here).
      const tokenOf = async (email: string, role: 'BILLING' | 'DEVELOPER') => {
        const user = await createUser(db, { email });
        await setMember(db, teamId, user.id, role);
        return (await createToken(db, { userId: user.id, teamId, name: role })).value;
      };
      const billing = await tokenOf('secrets-billing@example.com', 'BILLING');
      const developer = await tokenOf('secrets-dev@example.com', 'DEVELOPER');
      const readBy = async (token?: string) =>
        (await server.request(`/_storehouse/stores/${store.id}/secrets`, token ? { token } : {})).status;
      assert.equal(await readBy(billing), 403);
      assert.equal(await readBy(developer), 200);
      const project = await server.request('/v11/projects', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'secrets-web' }),
      });
      assert.equal(project.status, 200);
      const connected = await server.request(`/v1/storage/stores/${store.id}/connections`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ projectId: 'secrets-web', makeEnvVarsSensitive: true }),
      });
      assert.equal(connected.status, 201, await connected.text());
      assert.equal(await readBy(developer), 403);
      assert.equal(await readBy(), 200);
    });
  });
}

describe('failed dashboard sign-ins', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer('embedded', { env: { STOREHOUSE_AUTH_FAILURE_LIMIT: '3' } });
  });
  after(() => server.close());

  test('count with failed tokens per address: past the limit, the address gets 429', async () => {
    const signIn = (body: unknown) =>
      server.request('/_storehouse/dashboard/session', { method: 'POST', token: null, headers: json, body: JSON.stringify(body) });
    for (const body of [{ token: 'sh_wrong' }, { code: 'wrong' }, { token: 'sh_wrong_again' }]) {
      assert.equal((await signIn(body)).status, 401);
    }
    // The limit of 3 is used up: the next sign-in from this address is refused before it is checked.
    const refused = await signIn({ token: server.token });
    assert.equal(refused.status, 429);
    assert.equal((await errorOf(refused)).code, 'rate_limited');
    assert.equal(refused.headers.get('set-cookie'), null);
  });
});

describe('failed dashboard cookies', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer('embedded', { env: { STOREHOUSE_AUTH_FAILURE_LIMIT: '3' } });
  });
  after(() => server.close());

  test('count as failed authentications per address, as bad tokens do: past the limit, 429, sign-in too', async () => {
    for (const guess of ['shd_guess1', 'shd_guess2', 'shd_guess3']) {
      const response = await server.request('/v2/user', { token: null, headers: { cookie: `storehouse_session=${guess}` } });
      assert.equal(response.status, 401);
    }
    const refused = await server.request('/v2/user', { token: null, headers: { cookie: 'storehouse_session=shd_guess4' } });
    assert.equal(refused.status, 429);
    const signIn = await server.request('/_storehouse/dashboard/session', {
      method: 'POST',
      token: null,
      headers: json,
      body: JSON.stringify({ token: server.token }),
    });
    assert.equal(signIn.status, 429, 'the address is refused before its token is looked up');
  });
});

describe('the dashboard without a build', () => {
  test('answers its pages with a 503 that says to run npm run build', async () => {
    const app = Fastify();
    await app.register(dashboardRoutes, { dir: '/nonexistent/dashboard' });
    try {
      for (const path of ['/dashboard/', '/dashboard/stores/x']) {
        const response = await app.inject(path);
        assert.equal(response.statusCode, 503);
        assert.match(response.headers['content-type'] as string, /^text\/html/);
        assert.match(response.body, /npm run build/);
      }
      assert.equal((await app.inject('/')).headers.location, '/dashboard/');
    } finally {
      await app.close();
    }
  });
});

describe('dashboard sessions on two nodes', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let nodes: TwoNodes;
  before(async () => {
    nodes = await twoNodes();
  });
  after(() => nodes?.close());

  test('a session made on one node works on the other, follows a role change made there, and signing out on either ends it on both', async () => {
    const { a, b } = nodes;
    const made = await a.request('/_storehouse/dashboard/session', {
      method: 'POST',
      token: null,
      headers: json,
      body: JSON.stringify({ token: a.token }),
    });
    assert.equal(made.status, 200);
    const cookie = (made.headers.get('set-cookie') ?? '').split(';')[0]!;
    const { csrfToken, user, team } = (await made.json()) as any;
    const on = (node: TestServer, path: string, init: RequestInit = {}) =>
      node.request(path, { ...init, token: null, headers: { ...(init.headers as Record<string, string>), cookie } });
    assert.equal((await on(b, '/v2/user')).status, 200);
    // A second owner, so the first may step down; B's cached role follows A's change.
    const other = await createUser(a.runtime.db, { email: 'second-owner@example.com' });
    await setMember(a.runtime.db, team.id, other.id, 'OWNER');
    const viewerOnB = () =>
      on(b, '/v11/projects', {
        method: 'POST',
        headers: { ...json, 'x-storehouse-csrf': csrfToken },
        body: JSON.stringify({ name: 'two-nodes' }),
      });
    const demoted = await on(a, `/v1/teams/${team.id}/members/${user.id}`, {
      method: 'PATCH',
      headers: { ...json, 'x-storehouse-csrf': csrfToken },
      body: JSON.stringify({ role: 'VIEWER' }),
    });
    assert.equal(demoted.status, 200, await demoted.text());
    await eventually('node B refusing the demoted owner a write', async () => (await viewerOnB()).status === 403, 30_000);
    const out = await on(b, '/_storehouse/dashboard/session', { method: 'DELETE', headers: { 'x-storehouse-csrf': csrfToken } });
    assert.equal(out.status, 204);
    assert.equal((await on(a, '/v2/user')).status, 401, 'signed out on B, refused on A at once');
    assert.equal((await on(b, '/v2/user')).status, 401);
  });
});
