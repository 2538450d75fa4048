/**
 * The marketplace API's per-installation rate limits, credential rotation and revocation, and
 * `PATCH /v1/installations/{id}`, driven by the unmodified @vercel/sdk `marketplace.*` functions
 * with installation access tokens. Effects are checked through what users see (the owner's
 * configuration views and audit log) and through the tokens themselves (do they still work?).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Vercel } from '@vercel/sdk';
import { SDKError } from '@vercel/sdk/models/sdkerror.js';
import { validateCatalog } from '../src/catalog/catalog-file.ts';
import { hashToken, randomBase62 } from '../src/ids.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createUser } from '../src/tenancy/users.ts';
import { BACKENDS, errorOf, eventually, POSTGRES_URL, sdkFailure, startServer, writeCatalogFile, type TestServer } from './helpers.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;
const CLIENT_SECRET = `cs_${randomBase62(40)}`;

/**
 * The default catalog, its integration (oac_storehouse) given CLIENT_SECRET, beside a partner
 * integration (oac_partner, never called here) that has no client secret. In a directory of its
 * own: remove `path.dirname(file)` afterwards.
 */
function writeCatalog(): string {
  const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
  catalog.integrations.find((i: { id: string }) => i.id === 'oac_storehouse').clientSecret = CLIENT_SECRET;
  return writeCatalogFile(catalog);
}

/**
 * Sends each bad request: each answered 400 must be `bad_request` naming its field (and never
 * quote the client secret). Returns those not answered 400, described, for one assertion.
 */
async function notRefused(
  cases: Array<{ what: string; field: string | null | undefined; send: () => Promise<Response> }>,
): Promise<string[]> {
  const accepted: string[] = [];
  for (const { what, field, send } of cases) {
    const response = await send();
    if (response.status !== 400) {
      accepted.push(`${what} → ${response.status}`);
      continue;
    }
    const error = await errorOf(response);
    assert.equal(error.code, 'bad_request', what);
    if (field) assert.ok(error.message.includes(field), `${what}: "${error.message}" names ${field}`);
    assert.ok(!error.message.includes(CLIENT_SECRET), what);
  }
  return accepted;
}

/** Small limits, so tests reach them; a call each route makes before its limit is spent is counted. */
const SMALL_LIMITS = {
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_ACCOUNT: '3',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_MEMBERS: '2',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_EVENTS: '2',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_IMPORTS: '2',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_SECRETS: '2',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_BILLING: '1',
  // Reached in their own test below: the tests here rotate, revoke and update one installation often.
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_CREDENTIALS: '1000',
  STOREHOUSE_RATE_LIMIT_MARKETPLACE_INSTALLATIONS: '1000',
};

/** `ok`, or the HTTP status an SDK call failed with. */
async function outcome(call: Promise<unknown>): Promise<'ok' | number> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof SDKError) return error.statusCode;
    throw error;
  }
}

for (const backend of BACKENDS) {
  describe(`installation credentials, limits and updates (${backend})`, () => {
    let server: TestServer;
    let catalogFile: string;
    /** The bootstrap team's installation of oac_storehouse, and a token of it. */
    let installationId: string;
    let token: string;

    /** The marketplace client of a token, retries off (the SDK's default, said out loud: a 429 must surface). */
    const mp = (bearer: string) =>
      new Vercel({ bearerToken: bearer, serverURL: server.url, retryConfig: { strategy: 'none' } }).marketplace;
    /** Whether a token still works on the marketplace API (a route without a limit of its own). */
    const works = async (bearer: string, icfg = installationId) =>
      outcome(mp(bearer).getIntegrationResources({ integrationConfigurationId: icfg }));
    const liveTokens = async (icfg: string) =>
      (
        await server.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM installation_tokens WHERE installation_id = $1', [
          icfg,
        ])
      ).rows[0]!.n;
    /** A raw marketplace call (bodies the SDK would refuse to send). */
    const raw = (method: string, pathAndQuery: string, body: string | undefined, bearer: string) =>
      server.request(pathAndQuery, {
        method,
        token: bearer,
        headers: { 'content-type': 'application/json' },
        ...(body !== undefined && { body }),
      });

    /** A team of its own with one owner, its installation of `integrationId`, and a token of it. */
    const freshInstallation = async (integrationId = 'oac_storehouse') => {
      const db = server.runtime.db;
      const slug = `t-${randomBase62(10).toLowerCase()}`;
      const team = await createTeam(db, { slug });
      const owner = await createUser(db, { email: `${slug}@example.com` });
      await setMember(db, team.id, owner.id, 'OWNER');
      const installation = await install(db, { teamId: team.id, integrationId, installedBy: owner.id });
      const minted = await mintInstallationToken(db, installation.id);
      return { id: installation.id, teamId: team.id, ownerId: owner.id, token: minted.value };
    };

    before(async () => {
      catalogFile = writeCatalog();
      server = await startServer(backend, { catalogPath: catalogFile, env: SMALL_LIMITS });
      const [configuration] = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'storehouse' });
      installationId = configuration!.id!;
      token = (await mintInstallationToken(server.runtime.db, installationId)).value;
    });

    after(async () => {
      await server?.close();
      if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
    });

    test('the client secret is stored as a slow salted hash; a short one is refused by the catalog', async () => {
      const { rows } = await server.runtime.db.query<{ client_secret_hash: string | null; row: string }>(
        "SELECT client_secret_hash, to_jsonb(i)::text AS row FROM integrations i WHERE id IN ('oac_storehouse', 'oac_partner') ORDER BY id",
      );
      assert.equal(rows[0]!.client_secret_hash, null, 'the partner integration has none');
      assert.match(rows[1]!.client_secret_hash!, /^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/);
      assert.ok(!rows[1]!.row.includes(CLIENT_SECRET), 'the secret itself is nowhere in the row');
      const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
      catalog.integrations[0].clientSecret = 'too-short';
      assert.throws(
        () => validateCatalog(catalog, 'catalog.yaml'),
        /\/integrations\/0\/clientSecret: must NOT have fewer than 16 characters/,
      );
    });

    test('rotate: a new token (hashed, the old one still working), with the client secret and optionally the client id', async () => {
      const before = await liveTokens(installationId);
      const rotated = await mp(token).rotateInstallationCredential({
        integrationConfigurationId: installationId,
        requestBody: { clientSecret: CLIENT_SECRET },
      });
      assert.match(rotated.accessToken, /^shi_\w{43}$/);
      assert.notEqual(rotated.accessToken, token);
      assert.equal(rotated.tokenType, 'oauth2-token');
      assert.equal(rotated.expiresIn, 0, 'installation tokens do not expire');
      const configuration = await server.sdk().integrations.getConfiguration({ id: installationId });
      assert.equal(rotated.scope, configuration.scopes!.join(' '), "the integration's scopes");
      assert.equal(await liveTokens(installationId), before + 1);
      // Both work: the old one until it is revoked.
      assert.equal(await works(token), 'ok');
      assert.equal(await works(rotated.accessToken), 'ok');
      // Only its hash is kept.
      const { rows } = await server.runtime.db.query<{ token_hash: string }>(
        'SELECT token_hash FROM installation_tokens WHERE installation_id = $1',
        [installationId],
      );
      assert.ok(rows.some((row) => row.token_hash === hashToken(rotated.accessToken)));
      assert.ok(rows.every((row) => row.token_hash !== rotated.accessToken));

      // With the integration's client id too; the new token rotates in turn.
      const again = await mp(rotated.accessToken).rotateInstallationCredential({
        integrationConfigurationId: installationId,
        requestBody: { clientSecret: CLIENT_SECRET, clientId: 'oac_storehouse' },
      });
      assert.equal(await works(again.accessToken), 'ok');
      assert.equal(await liveTokens(installationId), before + 2);

      // The audit log names the tokens by id, never by value.
      const audit = (await (await server.request('/_storehouse/audit?limit=20')).json()) as {
        events: Array<{ action: string; targetId: string; details: Record<string, unknown> }>;
      };
      const rotations = audit.events.filter((e) => e.action === 'installation.credential_rotated' && e.targetId === installationId);
      assert.equal(rotations.length, 2);
      for (const event of rotations) assert.match(String(event.details.tokenId), /^itok_/);
      const text = JSON.stringify(audit);
      for (const secret of [token, rotated.accessToken, again.accessToken, CLIENT_SECRET])
        assert.ok(!text.includes(secret), 'no token or secret in the audit log');
      // A guard: nothing logs request bodies today, and a change that would must not leak these.
      const logs = server.logs.join('\n');
      for (const secret of [rotated.accessToken, again.accessToken, CLIENT_SECRET])
        assert.ok(!logs.includes(secret), 'no token or secret in the logs');
    });

    test('revoke: the token stops working at once; a repeat or an unknown token is already_revoked; the last live token is kept (409)', async () => {
      const own = await freshInstallation();
      const icfg = { integrationConfigurationId: own.id };
      const old = own.token;
      const { accessToken: replacement } = await mp(old).rotateInstallationCredential({
        ...icfg,
        requestBody: { clientSecret: CLIENT_SECRET },
      });

      // The ordinary flow: authenticate with the replacement, revoke the old one.
      assert.deepEqual(
        await mp(replacement).revokeInstallationCredential({ ...icfg, requestBody: { token: old, clientSecret: CLIENT_SECRET } }),
        {
          revoked: true,
          alreadyRevoked: false,
        },
      );
      assert.equal(await works(old, own.id), 401, 'the revoked token is refused from the next request on');
      assert.equal(await works(replacement, own.id), 'ok');
      assert.equal(await liveTokens(own.id), 1);

      // Again, or a token never made, or another installation's (left alone): already revoked, nothing changes.
      const other = await freshInstallation();
      for (const named of [old, 'shi_never_made', other.token]) {
        assert.deepEqual(
          await mp(replacement).revokeInstallationCredential({ ...icfg, requestBody: { token: named, clientSecret: CLIENT_SECRET } }),
          {
            revoked: false,
            alreadyRevoked: true,
          },
        );
      }
      assert.equal(await works(other.token, other.id), 'ok', "another installation's token is not this one's to revoke");
      assert.equal(await liveTokens(own.id), 1);

      // The installation's last live token is refused: the partner would be locked out.
      const last = await sdkFailure(
        mp(replacement).revokeInstallationCredential({ ...icfg, requestBody: { token: replacement, clientSecret: CLIENT_SECRET } }),
      );
      assert.equal(last.status, 409);
      assert.equal(last.code, 'last_credential');
      assert.equal(await works(replacement, own.id), 'ok');

      // The token a call authenticates with may revoke itself once another is live: it stops working then.
      const { accessToken: third } = await mp(replacement).rotateInstallationCredential({
        ...icfg,
        requestBody: { clientSecret: CLIENT_SECRET, clientId: 'oac_storehouse' },
      });
      assert.deepEqual(
        await mp(replacement).revokeInstallationCredential({
          ...icfg,
          requestBody: { token: replacement, clientSecret: CLIENT_SECRET, clientId: 'oac_storehouse' },
        }),
        { revoked: true, alreadyRevoked: false },
      );
      assert.equal(await works(replacement, own.id), 401);
      assert.equal(
        (await sdkFailure(mp(replacement).rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: CLIENT_SECRET } }))).status,
        401,
        'a revoked token cannot rotate either',
      );
      assert.equal(await works(third, own.id), 'ok');

      const { rows } = await server.runtime.db.query<{ action: string; details: Record<string, unknown> }>(
        "SELECT action, details FROM audit_events WHERE target_id = $1 AND action LIKE 'installation.credential_%' ORDER BY seq",
        [own.id],
      );
      assert.deepEqual(
        rows.map((r) => r.action),
        [
          'installation.credential_rotated',
          'installation.credential_revoked',
          'installation.credential_rotated',
          'installation.credential_revoked',
        ],
        'a revoke that changed nothing is not recorded',
      );
      assert.equal(rows[3]!.details.tokenId, rows[3]!.details.revokedWith, 'the token that revoked itself');
    });

    test('a wrong client secret or client id is 403, an integration without a secret is 403, other tokens 401/403: nothing changes', async () => {
      const own = await freshInstallation();
      const icfg = { integrationConfigurationId: own.id };
      const { accessToken: second } = await mp(own.token).rotateInstallationCredential({
        ...icfg,
        requestBody: { clientSecret: CLIENT_SECRET },
      });
      const refused: Array<[string, () => Promise<unknown>]> = [
        [
          'rotate, wrong secret',
          () => mp(own.token).rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: `${CLIENT_SECRET}x` } }),
        ],
        [
          'rotate, secret in other case',
          () => mp(own.token).rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: CLIENT_SECRET.toUpperCase() } }),
        ],
        [
          'rotate, wrong client id',
          () =>
            mp(own.token).rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: CLIENT_SECRET, clientId: 'oac_partner' } }),
        ],
        [
          'revoke, wrong secret',
          () => mp(second).revokeInstallationCredential({ ...icfg, requestBody: { token: own.token, clientSecret: 'not-the-secret' } }),
        ],
        [
          'revoke, wrong client id',
          () =>
            mp(second).revokeInstallationCredential({
              ...icfg,
              requestBody: { token: own.token, clientSecret: CLIENT_SECRET, clientId: 'oac_nope' },
            }),
        ],
      ];
      for (const [what, call] of refused) {
        const failure = await sdkFailure(call());
        assert.equal(failure.status, 403, what);
        assert.equal(failure.code, 'forbidden', what);
        assert.ok(!failure.message.includes(CLIENT_SECRET), what);
      }
      assert.equal(await liveTokens(own.id), 2);
      assert.equal(await works(own.token, own.id), 'ok', 'the token a wrong secret tried to revoke still works');

      // The partner integration has no client secret: there is nothing to prove, so nothing rotates.
      const partner = await freshInstallation('oac_partner');
      const none = await sdkFailure(
        mp(partner.token).rotateInstallationCredential({
          integrationConfigurationId: partner.id,
          requestBody: { clientSecret: CLIENT_SECRET },
        }),
      );
      assert.equal(none.status, 403);
      assert.match(none.message, /no client secret/);
      assert.equal(await liveTokens(partner.id), 1);

      // Tokens that are not this installation's: unknown is 401, another installation's 403, a user's 401.
      assert.equal(
        (await sdkFailure(mp('shi_unknown').rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: CLIENT_SECRET } })))
          .status,
        401,
      );
      assert.equal(
        (await sdkFailure(mp(partner.token).rotateInstallationCredential({ ...icfg, requestBody: { clientSecret: CLIENT_SECRET } })))
          .status,
        403,
      );
      assert.equal(
        (
          await sdkFailure(
            mp(server.token).revokeInstallationCredential({ ...icfg, requestBody: { token: own.token, clientSecret: CLIENT_SECRET } }),
          )
        ).status,
        401,
      );
      assert.equal(await liveTokens(own.id), 2);
      // A guard: the refusals above log nothing of the body today; a change that would must not leak the secret.
      assert.ok(!server.logs.join('\n').includes(CLIENT_SECRET), 'the secret never reaches the logs');
    });

    test("bad rotate and revoke bodies are 400s in Vercel's format naming the field, and change nothing", async () => {
      const own = await freshInstallation();
      const { accessToken: second } = await mp(own.token).rotateInstallationCredential({
        integrationConfigurationId: own.id,
        requestBody: { clientSecret: CLIENT_SECRET },
      });
      const rotate = `/v1/installations/${own.id}/credentials/rotate`;
      const revoke = `/v1/installations/${own.id}/credentials/revoke`;
      const secret = JSON.stringify(CLIENT_SECRET);
      const cases: Array<[string, string | undefined, string | null]> = [
        [rotate, undefined, null],
        [rotate, '', null],
        [rotate, '[]', null],
        [rotate, 'not json', null],
        [rotate, '{}', 'client_secret'],
        [rotate, '{"client_secret":""}', 'client_secret'],
        [rotate, '{"client_secret":5}', 'client_secret'],
        [rotate, `{"clientSecret":${secret}}`, 'client_secret'],
        [rotate, `{"client_secret":${secret},"client_id":""}`, 'client_id'],
        [rotate, `{"client_secret":${secret},"client_id":7}`, 'client_id'],
        [rotate, `{"client_secret":${secret},"scope":"all"}`, 'scope'],
        [revoke, undefined, null],
        [revoke, `{"client_secret":${secret}}`, 'token'],
        [revoke, `{"token":${JSON.stringify(own.token)}}`, 'client_secret'],
        [revoke, `{"token":"","client_secret":${secret}}`, 'token'],
        [revoke, `{"token":["a"],"client_secret":${secret}}`, 'token'],
        [revoke, `{"token":${JSON.stringify(own.token)},"client_secret":${secret},"all":true}`, 'all'],
      ];
      const accepted = await notRefused(
        cases.map(([url, body, field]) => ({
          what: `${url.split('/').pop()} ${body ?? '(no body)'}`,
          field,
          send: () => raw('POST', url, body, second),
        })),
      );
      assert.deepEqual(accepted, [], 'every bad body is a 400');
      assert.equal(await liveTokens(own.id), 2);
      assert.equal(await works(own.token, own.id), 'ok');
      // What the SDK sends without a requestBody: an empty body labelled JSON.
      assert.equal((await sdkFailure(mp(second).rotateInstallationCredential({ integrationConfigurationId: own.id }))).status, 400);
      assert.equal((await sdkFailure(mp(second).revokeInstallationCredential({ integrationConfigurationId: own.id }))).status, 400);
      assert.equal(await liveTokens(own.id), 2);
    });

    test('updateInstallation: status, external id, plan and notification are shown with the configuration; "" and null clear', async () => {
      const icfg = { integrationConfigurationId: installationId };
      /** The owner's view, as sent (the SDK keeps only the fields of its own schemas). */
      const shown = async () => {
        const response = await server.request(`/v1/integrations/configuration/${installationId}`);
        assert.equal(response.status, 200);
        return (await response.json()) as Record<string, any>;
      };
      assert.equal((await shown()).status, 'ready', 'ready until the partner says otherwise');

      const billingPlan = {
        id: 'team_pro',
        type: 'subscription' as const,
        name: 'Pro',
        description: 'For teams',
        cost: '$20/month',
        paymentMethodRequired: true,
        details: [{ label: 'Seats', value: '10' }],
        effectiveDate: '2030-01-01',
        additionalProperties: { tier: 'gold' },
      };
      const notification = {
        level: 'warn' as const,
        title: 'Payment due',
        message: 'Update the card',
        href: 'https://acme.example.com/billing',
      };
      // The SDK resolves only on a 204 (anything else is an "unexpected status" error).
      await mp(token).updateInstallation({
        ...icfg,
        requestBody: { status: 'suspended', externalId: 'acme-42', billingPlan, notification },
      });
      let seen = await shown();
      assert.equal(seen.status, 'suspended');
      assert.equal(seen.externalId, 'acme-42');
      assert.deepEqual(seen.notification, notification);
      assert.deepEqual(seen.billingPlan, {
        id: 'team_pro',
        type: 'subscription',
        name: 'Pro',
        description: 'For teams',
        cost: '$20/month',
        paymentMethodRequired: true,
        details: [{ label: 'Seats', value: '10' }],
        effectiveDate: '2030-01-01',
      });
      const { rows } = await server.runtime.db.query<{ billing_plan: Record<string, unknown> }>(
        'SELECT billing_plan FROM installations WHERE id = $1',
        [installationId],
      );
      assert.equal(rows[0]!.billing_plan.tier, 'gold', 'the plan is kept as the partner sent it');
      // Through the SDK: its configuration schemas have status and externalId.
      const one = await server.sdk().integrations.getConfiguration({ id: installationId });
      assert.equal(one.status, 'suspended');
      assert.equal(one.externalId, 'acme-42');
      const listed = (await server.sdk().integrations.getConfigurations({ view: 'account' })).find((c) => c.id === installationId);
      assert.deepEqual([listed?.status, listed?.externalId], ['suspended', 'acme-42']);

      // Only the fields sent change; "" clears the notification (the SDK cannot send null) and the external id.
      await mp(token).updateInstallation({ ...icfg, requestBody: { notification: '', externalId: '' } });
      seen = await shown();
      assert.equal(seen.notification, undefined);
      assert.equal(seen.externalId, undefined);
      assert.equal(seen.status, 'suspended');
      assert.equal(seen.billingPlan.id, 'team_pro');
      // null clears it too (a raw body); {} changes nothing; both are 204s.
      await mp(token).updateInstallation({ ...icfg, requestBody: { status: 'resumed', notification: { level: 'info', title: 'Back' } } });
      assert.deepEqual((await shown()).notification, { level: 'info', title: 'Back' });
      const cleared = await raw('PATCH', `/v1/installations/${installationId}`, '{"notification":null}', token);
      assert.equal(cleared.status, 204);
      assert.equal((await shown()).notification, undefined);
      const before = await shown();
      assert.equal((await raw('PATCH', `/v1/installations/${installationId}`, '{}', token)).status, 204);
      assert.deepEqual(await shown(), before);

      const audit = (await (await server.request('/_storehouse/audit?limit=50')).json()) as {
        events: Array<{ action: string; targetId: string; details: Record<string, any> }>;
      };
      const updates = audit.events.filter((e) => e.action === 'installation.updated' && e.targetId === installationId);
      assert.equal(updates.length, 4, 'one event a change; {} records nothing');
      assert.deepEqual(updates.at(-1)!.details.fields.sort(), ['billingPlan', 'externalId', 'notification', 'status']);
      assert.equal(updates.at(-1)!.details.billingPlanId, 'team_pro');
    });

    test('updateInstallation: every bad body is a 400 naming the field, and changes nothing; another installation is 403', async () => {
      const before = await (await server.request(`/v1/integrations/configuration/${installationId}`)).text();
      const url = `/v1/installations/${installationId}`;
      const cases: Array<[string | undefined, string | null]> = [
        [undefined, null],
        ['', null],
        ['[]', null],
        ['"suspended"', null],
        ['{"status":"paused"}', 'status'],
        ['{"status":5}', 'status'],
        ['{"externalId":7}', 'externalId'],
        ['{"externalId":"line\\nbreak"}', 'externalId'],
        [`{"externalId":"${'x'.repeat(257)}"}`, 'externalId'],
        ['{"billingPlan":"pro"}', 'billingPlan'],
        ['{"billingPlan":{"id":"pro","name":"Pro"}}', 'billingPlan'],
        ['{"billingPlan":{"id":"pro","type":"free","name":"Pro"}}', 'billingPlan'],
        ['{"billingPlan":{"id":"","type":"subscription","name":"Pro"}}', 'billingPlan'],
        ['{"billingPlan":{"id":"pro","type":"subscription","name":"Pro","details":[{"value":"x"}]}}', 'billingPlan'],
        ['{"billingPlan":{"id":"pro","type":"subscription","name":"Pro","effectiveDate":20300101}}', 'billingPlan'],
        ['{"notification":"Pay now"}', 'notification'],
        ['{"notification":5}', 'notification'],
        ['{"notification":false}', 'notification'],
        ['{"notification":{"title":"no level"}}', 'notification'],
        ['{"notification":{"level":"loud","title":"t"}}', 'notification'],
        ['{"notification":{"level":"info","title":"t","extra":1}}', 'notification'],
        ['{"notification":{"level":"info","title":"t","href":5}}', 'notification'],
        ['{"status":"ready","surprise":true}', 'surprise'],
      ];
      const accepted = await notRefused(
        cases.map(([body, field]) => ({ what: `PATCH ${body ?? '(no body)'}`, field, send: () => raw('PATCH', url, body, token) })),
      );
      assert.deepEqual(accepted, [], 'every bad body is a 400');
      assert.equal(
        await (await server.request(`/v1/integrations/configuration/${installationId}`)).text(),
        before,
        'the 400s changed nothing',
      );
      assert.equal((await sdkFailure(mp(token).updateInstallation({ integrationConfigurationId: installationId }))).status, 400, 'no body');

      const other = await freshInstallation();
      const crossed = await sdkFailure(
        mp(token).updateInstallation({ integrationConfigurationId: other.id, requestBody: { status: 'error' } }),
      );
      assert.equal(crossed.status, 403);
      const { rows } = await server.runtime.db.query<{ status: string }>('SELECT status FROM installations WHERE id = $1', [other.id]);
      assert.equal(rows[0]!.status, 'ready');
      assert.equal(
        (
          await sdkFailure(
            mp('shi_unknown').updateInstallation({ integrationConfigurationId: installationId, requestBody: { status: 'error' } }),
          )
        ).status,
        401,
      );
      assert.equal(await (await server.request(`/v1/integrations/configuration/${installationId}`)).text(), before);
    });

    test("rate limits per installation: a 429 in Vercel's format with Retry-After once a limit is spent; other installations and routes unaffected", async () => {
      // Installations of the partner integration: only a partner's products are imported.
      const a = await freshInstallation('oac_partner');
      const b = await freshInstallation('oac_partner');
      const now = new Date();
      const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
      const billing = {
        timestamp: now,
        eod: day,
        period: { start: day, end: new Date(day.getTime() + 30 * 86_400_000) },
        billing: [{ billingPlanId: 'postgres_hobby', name: 'Storage', price: '0.10', quantity: 1, units: 'GB', total: '0.10' }],
        usage: [{ name: 'Storage', type: 'total' as const, units: 'GB', dayValue: 1, periodValue: 1 }],
      };
      // Each installation has a resource to change secrets of (an import, which counts against its own limit).
      for (const one of [a, b]) {
        await mp(one.token).importResource({
          integrationConfigurationId: one.id,
          resourceId: 'ext_limited',
          requestBody: { productId: 'postgres', name: `limited-${one.id.slice(-6)}`, status: 'ready' },
        });
      }
      type Installation = typeof a;
      const routes: Array<{ name: string; total: number; spent?: number; call: (i: Installation, n: number) => Promise<unknown> }> = [
        { name: 'marketplace.account', total: 3, call: (i) => mp(i.token).getAccountInfo({ integrationConfigurationId: i.id }) },
        {
          name: 'marketplace.members',
          total: 2,
          call: (i) => mp(i.token).getMember({ integrationConfigurationId: i.id, memberId: i.ownerId }),
        },
        {
          name: 'marketplace.events',
          total: 2,
          call: (i) =>
            mp(i.token).createEvent({ integrationConfigurationId: i.id, requestBody: { event: { type: 'installation.updated' } } }),
        },
        {
          name: 'marketplace.imports',
          total: 2,
          spent: 1,
          call: (i, n) =>
            mp(i.token).importResource({
              integrationConfigurationId: i.id,
              resourceId: `ext_more_${n}`,
              requestBody: { productId: 'postgres', name: `more-${n}-${i.id.slice(-6)}`, status: 'ready' },
            }),
        },
        {
          // Both secrets paths count against one limit.
          name: 'marketplace.secrets',
          total: 2,
          call: (i, n) =>
            n % 2 === 0
              ? mp(i.token).updateResourceSecretsById({
                  integrationConfigurationId: i.id,
                  resourceId: 'ext_limited',
                  requestBody: { secrets: [{ name: 'K', value: `v${n}` }] },
                })
              : mp(i.token).updateResourceSecrets({
                  integrationConfigurationId: i.id,
                  integrationProductIdOrSlug: 'postgres',
                  resourceId: 'ext_limited',
                  requestBody: { secrets: [{ name: 'K', value: `v${n}` }] },
                }),
        },
        {
          name: 'marketplace.billing',
          total: 1,
          call: (i) => mp(i.token).submitBillingData({ integrationConfigurationId: i.id, requestBody: billing }),
        },
      ];
      for (const route of routes) {
        let n = route.spent ?? 0;
        for (; n < route.total; n++) assert.equal(await outcome(route.call(a, n)), 'ok', `${route.name}: call ${n + 1} of ${route.total}`);
        let limited: SDKError | undefined;
        try {
          await route.call(a, n);
        } catch (error) {
          if (error instanceof SDKError) limited = error;
          else throw error;
        }
        assert.ok(limited, `${route.name}: the call past the limit was answered`);
        assert.equal(limited.statusCode, 429, route.name);
        const retryAfter = Number(limited.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 60, `${route.name}: Retry-After ${retryAfter}`);
        assert.ok(Number(limited.headers.get('retry-after-ms')) <= 60_000);
        assert.equal(limited.headers.get('x-ratelimit-limit'), String(route.total));
        assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
        const { error } = JSON.parse(limited.body) as { error: { code: string; message: string; limit: Record<string, number> } };
        assert.equal(error.code, 'rate_limited');
        assert.match(
          error.message,
          new RegExp(`The rate limit of ${route.total} exceeded for '${route.name}'. Try again in \\d+ seconds?`),
        );
        assert.deepEqual(Object.keys(error.limit).sort(), ['remaining', 'reset', 'resetMs', 'total']);
        assert.equal(error.limit.total, route.total);
        assert.equal(error.limit.remaining, 0);
        assert.equal(error.limit.reset, Math.ceil(error.limit.resetMs! / 1000));
        assert.ok(error.limit.resetMs! > Date.now() && error.limit.resetMs! <= Date.now() + 61_000);
        // Another installation (the same integration, the same node) is not affected.
        assert.equal(await outcome(route.call(b, 100)), 'ok', `${route.name}: another installation`);
      }
      // Routes without a limit of their own still answer the limited installation.
      assert.equal(await works(a.token, a.id), 'ok');
      assert.equal(
        await outcome(
          mp(a.token).submitPrepaymentBalances({
            integrationConfigurationId: a.id,
            requestBody: { timestamp: now, balances: [{ currencyValueInCents: 100 }] },
          }),
        ),
        'ok',
      );
      // A refused call changed nothing: only the first billing data was kept.
      const { rows } = await server.runtime.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM partner_reports WHERE installation_id = $1 AND kind = 'billing'",
        [a.id],
      );
      assert.equal(rows[0]!.n, 1, 'the refused billing data was not kept');
    });
  });
}

describe('two nodes on one PostgreSQL', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let catalogFile: string;
  let first: TestServer;
  let second: TestServer;
  let installationId: string;

  const mpOn = (node: TestServer, bearer: string) =>
    new Vercel({ bearerToken: bearer, serverURL: node.url, retryConfig: { strategy: 'none' } }).marketplace;
  const worksOn = (node: TestServer, bearer: string) =>
    outcome(mpOn(node, bearer).getIntegrationResources({ integrationConfigurationId: installationId }));

  before(async () => {
    catalogFile = writeCatalog();
    // With a Redis, both nodes count in it (the limits test below); without one the revocation test runs alone.
    const env = { STOREHOUSE_RATE_LIMIT_MARKETPLACE_EVENTS: '3', ...(REDIS_URL && { REDIS_URL }) };
    first = await startServer('postgres', { catalogPath: catalogFile, env });
    second = await startServer('postgres', {
      catalogPath: catalogFile,
      env,
      databaseUrl: first.config.databaseUrl!,
      bootstrapToken: first.token,
    });
    installationId = (await first.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'storehouse' }))[0]!.id!;
  });
  after(async () => {
    await second?.close();
    await first?.close();
    if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
  });

  test('a token revoked on one node is refused by the other at once, though it remembered the token', async () => {
    const old = (await mintInstallationToken(first.runtime.db, installationId)).value;
    const { accessToken: replacement } = await mpOn(first, old).rotateInstallationCredential({
      integrationConfigurationId: installationId,
      requestBody: { clientSecret: CLIENT_SECRET },
    });
    // The second node has both in memory now.
    for (let i = 0; i < 3; i++) {
      assert.equal(await worksOn(second, old), 'ok');
      assert.equal(await worksOn(second, replacement), 'ok');
    }
    await mpOn(first, replacement).revokeInstallationCredential({
      integrationConfigurationId: installationId,
      requestBody: { token: old, clientSecret: CLIENT_SECRET },
    });
    assert.equal(await worksOn(first, old), 401, 'on the node that revoked it, from the next request');
    // The other node hears of it through the change feed (a notification, within milliseconds).
    await eventually('the other node refusing the revoked token', async () => (await worksOn(second, old)) === 401, 10_000);
    assert.equal(await worksOn(second, replacement), 'ok');
  });

  test('what a partner reports of the installation on one node, the other node shows, though it had the configuration in memory', async () => {
    const bearer = (await mintInstallationToken(first.runtime.db, installationId)).value;
    const shownBy = async (node: TestServer) => (await node.sdk().integrations.getConfiguration({ id: installationId })).status;
    for (let i = 0; i < 3; i++) assert.equal(await shownBy(second), 'ready');
    await mpOn(first, bearer).updateInstallation({ integrationConfigurationId: installationId, requestBody: { status: 'suspended' } });
    await eventually('the other node showing the new status', async () => (await shownBy(second)) === 'suspended', 10_000);
    await mpOn(first, bearer).updateInstallation({ integrationConfigurationId: installationId, requestBody: { status: 'resumed' } });
    await eventually('the other node showing it again', async () => (await shownBy(second)) === 'resumed', 10_000);
  });

  test("with REDIS_URL both nodes count against one installation's limit", {
    skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set',
  }, async () => {
    const bearer = (await mintInstallationToken(first.runtime.db, installationId)).value;
    const event = (node: TestServer) =>
      outcome(
        mpOn(node, bearer).createEvent({
          integrationConfigurationId: installationId,
          requestBody: { event: { type: 'installation.updated' } },
        }),
      );
    const outcomes = [];
    for (const node of [first, second, first, second]) outcomes.push(await event(node));
    assert.deepEqual(outcomes, ['ok', 'ok', 'ok', 429]);
  });
});

describe('credential and installation-update limits', () => {
  test('rotations and revocations share a small limit per installation (each checks the slow client secret); installation updates have theirs', async () => {
    const catalogFile = writeCatalog();
    const server = await startServer('embedded', {
      catalogPath: catalogFile,
      env: { STOREHOUSE_RATE_LIMIT_MARKETPLACE_CREDENTIALS: '2', STOREHOUSE_RATE_LIMIT_MARKETPLACE_INSTALLATIONS: '2' },
    });
    try {
      const [configuration] = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'storehouse' });
      const id = configuration!.id!;
      const token = (await mintInstallationToken(server.runtime.db, id)).value;
      const mp = new Vercel({ bearerToken: token, serverURL: server.url, retryConfig: { strategy: 'none' } }).marketplace;
      const rotated = await mp.rotateInstallationCredential({
        integrationConfigurationId: id,
        requestBody: { clientSecret: CLIENT_SECRET },
      });
      // A wrong secret counts too: guesses are what the limit is for.
      assert.equal(
        await outcome(
          mp.revokeInstallationCredential({
            integrationConfigurationId: id,
            requestBody: { token: rotated.accessToken, clientSecret: 'not-the-secret-at-all' },
          }),
        ),
        403,
      );
      const limited = await sdkFailure(
        mp.rotateInstallationCredential({ integrationConfigurationId: id, requestBody: { clientSecret: CLIENT_SECRET } }),
      );
      assert.deepEqual([limited.status, limited.code], [429, 'rate_limited']);
      assert.equal(
        (
          await server.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM installation_tokens WHERE installation_id = $1', [
            id,
          ])
        ).rows[0]!.n,
        2,
        'the refused rotation made no token',
      );

      for (let n = 0; n < 2; n++) await mp.updateInstallation({ integrationConfigurationId: id, requestBody: { externalId: `ext-${n}` } });
      const third = await sdkFailure(mp.updateInstallation({ integrationConfigurationId: id, requestBody: { externalId: 'ext-2' } }));
      assert.deepEqual([third.status, third.code], [429, 'rate_limited']);
      assert.equal((await server.sdk().integrations.getConfiguration({ id })).externalId, 'ext-1', 'the refused update changed nothing');
    } finally {
      await server.close();
      fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
    }
  });
});
