/**
 * The invoice lifecycle, billing history and balances (issue 14), over real HTTP: the partner's
 * calls through the unmodified @vercel/sdk `marketplace.*` functions with the installation access
 * token the reference partner received in its upsert, the team's view through Storehouse's own
 * API with users' tokens. Invoices are charged by the server's housekeeping against test cards;
 * what the card processor charged is read from its ledger, and the webhooks each change records
 * from the outbox (webhook_events), where they wait for delivery.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Vercel } from '@vercel/sdk';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { validSignature } from '../src/partner-server/webhooks.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember, type TeamRole } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { errorOf, eventually, sdkFailure, type TestServer } from './helpers.ts';
import { checkFetchResponse, documentProblems, findOperation, loadOpenApi } from './openapi-check.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

const CLIENT_SECRET = 'invoices-test-client-secret-0123456789';
const SUCCEEDS = '4242424242424242';
const DECLINES = '4000000000000002';
const RETRIES = 3;

type InvoiceBody = Parameters<Vercel['marketplace']['submitInvoice']>[0]['requestBody'];

describe('invoices, billing history and balances', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let installationId: string;
  let teamId: string;
  /** The installation's access token, as the partner received it. */
  let token: string;
  /** The partner's resource ids of two stores of the installation. */
  let resourceA: string;
  let resourceB: string;

  const mp = (bearer = token) => server.sdk(bearer).marketplace;
  const icfg = () => ({ integrationConfigurationId: installationId });

  /** A month of its own per test (2027-`month`), so no test's invoice is another's duplicate. */
  const invoice = (month: number, extra: Partial<InvoiceBody> = {}): InvoiceBody => ({
    invoiceDate: new Date(Date.UTC(2027, month, 2)),
    period: { start: new Date(Date.UTC(2027, month, 1)), end: new Date(Date.UTC(2027, month + 1, 1)) },
    items: [
      { billingPlanId: 'partner_pro', resourceId: resourceA, name: 'Pro', price: '10.00', quantity: 2, units: 'month', total: '20.00' },
    ],
    ...extra,
  });
  /** A submission as sent on the wire (for bodies the SDK would not send), with the installation's token unless told. */
  const rawSubmit = (body: unknown, bearer: string | null = token, installation = installationId) =>
    server.request(`/v1/installations/${installation}/billing/invoices`, {
      method: 'POST',
      token: bearer,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const wire = (month: number, change: (body: any) => void = () => {}) => {
    const body = JSON.parse(JSON.stringify(invoice(month)));
    change(body);
    return body;
  };

  const useCard = async (cardNumber: string) => {
    const response = await server.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber, default: true }),
    });
    assert.equal(response.status, 200, await response.clone().text());
  };
  const stateOf = async (invoiceId: string) => (await mp().getInvoice({ ...icfg(), invoiceId })).state;
  const waitFor = (invoiceId: string, state: string) =>
    eventually(`invoice ${invoiceId} ${state}`, async () => (await stateOf(invoiceId)) === state);
  /** The webhooks recorded for the invoice, in order: their types, and payloads. */
  const webhooks = async (invoiceId: string) => {
    const { rows } = await server.runtime.db.query<{ type: string; body: string }>(
      `SELECT type, body FROM webhook_events WHERE body::jsonb -> 'payload' ->> 'invoiceId' = $1 ORDER BY seq`,
      [invoiceId],
    );
    return rows.map((row) => ({ type: row.type, payload: JSON.parse(row.body).payload }));
  };
  const types = async (invoiceId: string) => (await webhooks(invoiceId)).map((w) => w.type.replace('marketplace.invoice.', ''));
  /** What the card processor charged for the invoice: each attempt's outcome. */
  const processorCharges = async (invoiceId: string) => {
    const { rows } = await server.runtime.db.query<{ idempotency_key: string; outcome: string; amount_cents: string }>(
      "SELECT idempotency_key, outcome, amount_cents FROM card_charges WHERE idempotency_key LIKE $1 || ':%' ORDER BY created_at",
      [invoiceId],
    );
    return rows;
  };
  const invoiceCount = async () => Number((await server.runtime.db.query<{ n: string }>('SELECT count(*) AS n FROM invoices')).rows[0]!.n);
  /** A member of the team with `role`, and their token. */
  const memberToken = async (email: string, role: TeamRole) => {
    const db = server.runtime.db;
    const user = await createUser(db, { email });
    await setMember(db, teamId, user.id, role);
    return (await createToken(db, { userId: user.id, teamId, name: 'test' })).value;
  };

  before(async () => {
    setup = await startStorehouseWithPartner({
      env: {
        STOREHOUSE_INVOICE_RETRIES: String(RETRIES),
        STOREHOUSE_INVOICE_RETRY_INTERVAL_MS: '1000',
        STOREHOUSE_PROVISION_TIMEOUT_MS: '30000',
        STOREHOUSE_PARTNER_TIMEOUT_MS: '30000',
      },
      // Webhooks recorded (a webhook URL and the secret they are signed with), and a prepayment
      // plan in the catalog for the threshold test's imported resource.
      integration: (url) => {
        const entry = catalogWithPartner({ url }).integrations.find((i: { id: string }) => i.id === 'oac_partner');
        entry.products[0].plans.push({
          id: 'partner_credits',
          type: 'prepayment',
          scope: 'resource',
          name: 'Credits',
          description: 'Prepaid credit',
          paymentMethodRequired: true,
          minimumAmount: '5.00',
          maximumAmount: '100.00',
        });
        return { clientSecret: CLIENT_SECRET, webhookUrl: `${url}/webhook`, products: entry.products };
      },
      partnerClientSecret: CLIENT_SECRET,
    });
    ({ server, installationId } = setup);
    resourceA = (await setup.createStore('inv-a')).externalResourceId!;
    resourceB = (await setup.createStore('inv-b')).externalResourceId!;
    const upsert = setup.partnerCalls('PUT', `/v1/installations/${installationId}`)[0];
    assert.ok(upsert, 'the installation was announced to the partner');
    token = (upsert.body as { credentials: { access_token: string } }).credentials.access_token;
    teamId = (await server.runtime.db.query<{ team_id: string }>('SELECT team_id FROM installations WHERE id = $1', [installationId]))
      .rows[0]!.team_id;
  });

  after(async () => {
    await setup?.close();
  });

  test('an invoice charged to a card that succeeds is paid; Get Invoice returns it; created and paid are sent', async () => {
    await useCard(SUCCEEDS);
    const submitted = await mp().submitInvoice({ ...icfg(), requestBody: invoice(0, { externalId: 'ext-paid', memo: 'January' }) });
    assert.match(submitted.invoiceId!, /^inv_/);
    assert.equal(submitted.test, undefined);
    const invoiceId = submitted.invoiceId!;
    await waitFor(invoiceId, 'paid');
    const got = await mp().getInvoice({ ...icfg(), invoiceId });
    assert.equal(got.invoiceId, invoiceId);
    assert.equal(got.externalId, 'ext-paid');
    assert.equal(got.total, '20.00');
    assert.equal(got.memo, 'January');
    assert.match(got.invoiceNumber!, /^SH-\d+$/);
    assert.equal(got.period.start, '2027-01-01T00:00:00.000Z');
    assert.equal(got.invoiceDate, '2027-01-02T00:00:00.000Z');
    assert.equal(got.items[0]!.resourceId, resourceA);
    assert.equal(got.items[0]!.total, '20.00');
    assert.equal(got.test, undefined);
    assert.ok(Date.parse(got.updated) >= Date.parse(got.created));
    const charged = await processorCharges(invoiceId);
    assert.deepEqual(
      charged.map((c) => [c.idempotency_key, c.outcome, Number(c.amount_cents)]),
      [[`${invoiceId}:1`, 'succeeded', 2000]],
    );
    assert.deepEqual(await types(invoiceId), ['created', 'paid']);
    const [created] = await webhooks(invoiceId);
    assert.deepEqual(created!.payload, {
      installationId,
      invoiceId,
      externalInvoiceId: 'ext-paid',
      period: { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' },
      invoiceDate: '2027-01-02T00:00:00.000Z',
      invoiceTotal: '20.00',
    });
  });

  test('declined, then paid on the next retry after a card change; every attempt is recorded, the card charged once', async () => {
    await useCard(DECLINES);
    const { invoiceId } = await mp().submitInvoice({ ...icfg(), requestBody: invoice(1) });
    await waitFor(invoiceId!, 'notpaid');
    await useCard(SUCCEEDS);
    await waitFor(invoiceId!, 'paid');
    const charged = await processorCharges(invoiceId!);
    assert.ok(charged.length >= 2 && charged.length <= 1 + RETRIES, `${charged.length} attempts`);
    assert.deepEqual(
      charged.map((c) => c.outcome),
      [...Array(charged.length - 1).fill('declined'), 'succeeded'],
      'declined until the card changed, then charged once',
    );
    const events = await types(invoiceId!);
    assert.deepEqual(events, ['created', ...Array(charged.length - 1).fill('notpaid'), 'paid'], 'a notpaid for each declined attempt');
    // The team's audit log has each outcome.
    const { events: audited } = (await (await server.request('/_storehouse/audit?limit=1000')).json()) as {
      events: Array<{ action: string; targetId: string }>;
    };
    assert.deepEqual(
      audited
        .filter((e) => e.targetId === invoiceId)
        .map((e) => e.action)
        .reverse(),
      ['invoice.submitted', ...Array(charged.length - 1).fill('invoice.notpaid'), 'invoice.paid'],
    );
    // The team sees each attempt.
    const seen = (await (await server.request(`/_storehouse/teams/${teamId}/invoices/${invoiceId}`)).json()) as any;
    assert.equal(seen.state, 'paid');
    assert.deepEqual(
      seen.charges.map((c: { attempt: number; outcome: string }) => c.outcome),
      charged.map((c) => c.outcome),
    );
  });

  test('declined on every attempt: notpaid each time, then overdue once the retries are spent', async () => {
    await useCard(DECLINES);
    const { invoiceId } = await mp().submitInvoice({ ...icfg(), requestBody: invoice(2) });
    await waitFor(invoiceId!, 'overdue');
    const charged = await processorCharges(invoiceId!);
    assert.deepEqual(
      charged.map((c) => c.outcome),
      Array(1 + RETRIES).fill('declined'),
    );
    assert.deepEqual(await types(invoiceId!), ['created', ...Array(1 + RETRIES).fill('notpaid'), 'overdue']);
    // Overdue is final: no attempt is due any more, even with a card that works.
    await useCard(SUCCEEDS);
    const { rows } = await server.runtime.db.query('SELECT next_attempt_at FROM invoices WHERE id = $1', [invoiceId]);
    assert.equal(rows[0]!.next_attempt_at, null);
    // Refunding an invoice never paid is refused, and changes nothing.
    const refused = await sdkFailure(
      mp().updateInvoice({ ...icfg(), invoiceId: invoiceId!, requestBody: { action: 'refund', total: '1.00', reason: 'goodwill' } }),
    );
    assert.equal(refused.status, 409);
    assert.match(refused.message, /overdue: only a paid invoice can be refunded/);
    assert.equal(await stateOf(invoiceId!), 'overdue');
  });

  test('refunds: in parts up to the total, each sent with its amount and reason; a larger one is refused', async () => {
    await useCard(SUCCEEDS);
    const { invoiceId } = await mp().submitInvoice({ ...icfg(), requestBody: invoice(3) });
    await waitFor(invoiceId!, 'paid');
    const refund = (total: string, reason = 'outage credit') =>
      mp().updateInvoice({ ...icfg(), invoiceId: invoiceId!, requestBody: { action: 'refund', total, reason } });
    const tooMuch = await sdkFailure(refund('20.01'));
    assert.equal(tooMuch.status, 400);
    assert.equal(tooMuch.body.error.fields[0].key, 'total');
    assert.match(tooMuch.message, /total: 20\.01 is more than what is left to refund of the invoice: 20\.00 of its 20\.00/);
    assert.equal((await sdkFailure(refund('0.00'))).status, 400);
    assert.equal((await sdkFailure(refund('five'))).status, 400);
    assert.equal(await stateOf(invoiceId!), 'paid', 'a refused refund changes nothing');

    await refund('5.00');
    let got = await mp().getInvoice({ ...icfg(), invoiceId: invoiceId! });
    assert.equal(got.state, 'refunded');
    assert.equal(got.refundTotal, '5.00');
    assert.equal(got.refundReason, 'outage credit');
    const left = await sdkFailure(refund('15.01'));
    assert.match(left.message, /15\.00 of its 20\.00/);
    await refund('15.00', 'cancelled');
    got = await mp().getInvoice({ ...icfg(), invoiceId: invoiceId! });
    assert.equal(got.refundTotal, '20.00');
    assert.equal(got.refundReason, 'cancelled');
    assert.equal((await sdkFailure(refund('0.01'))).status, 400, 'nothing is left to refund');
    const sent = await webhooks(invoiceId!);
    assert.deepEqual(
      sent.map((w) => w.type),
      ['created', 'paid', 'refunded', 'refunded'].map((t) => `marketplace.invoice.${t}`),
    );
    assert.equal(sent[2]!.payload.amount, '5.00');
    assert.equal(sent[2]!.payload.reason, 'outage credit');
    assert.equal(sent[3]!.payload.amount, '15.00');
    assert.equal(sent[3]!.payload.invoiceTotal, '20.00');
  });

  test('test invoices: validate keeps nothing and lists what is wrong; result keeps a test invoice in that state, charging nothing', async () => {
    const before = await invoiceCount();
    const valid = await mp().submitInvoice({ ...icfg(), requestBody: invoice(4, { test: { validate: true } }) });
    assert.deepEqual(valid, { test: true });
    const invalid = await mp().submitInvoice({
      ...icfg(),
      requestBody: invoice(4, {
        test: { validate: true },
        items: [
          { billingPlanId: 'partner_pro', resourceId: resourceA, name: 'Pro', price: '10.00', quantity: 2, units: 'm', total: '25.00' },
        ],
      }),
    });
    assert.equal(invalid.test, true);
    assert.equal(invalid.invoiceId, undefined);
    assert.equal(invalid.validationErrors?.length, 1);
    assert.match(invalid.validationErrors![0]!, /^items\[0\]\.total: is 25\.00, but price × quantity/);
    assert.equal(await invoiceCount(), before, 'validation-only invoices are not kept');

    for (const result of ['paid', 'notpaid', 'overdue'] as const) {
      const { invoiceId, test: isTest } = await mp().submitInvoice({ ...icfg(), requestBody: invoice(4, { test: { result } }) });
      assert.equal(isTest, true);
      const got = await mp().getInvoice({ ...icfg(), invoiceId: invoiceId! });
      assert.equal(got.state, result);
      assert.equal(got.test, true);
      assert.deepEqual(await processorCharges(invoiceId!), [], 'a test invoice charges nothing');
      const expected = { paid: ['paid'], notpaid: ['notpaid'], overdue: ['notpaid', 'overdue'] }[result];
      assert.deepEqual(await types(invoiceId!), ['created', ...expected]);
    }
    // Test invoices bill nothing: a real one for the same resource and period is taken.
    await useCard(SUCCEEDS);
    const { invoiceId } = await mp().submitInvoice({ ...icfg(), requestBody: invoice(4) });
    await waitFor(invoiceId!, 'paid');
  });

  test('every bad invoice is refused with its field named, and changes nothing', async () => {
    const before = await invoiceCount();
    const refusals: Array<[string, (body: any) => void, RegExp]> = [
      [
        'a total that is not price × quantity',
        (b) => (b.items[0].total = '19.99'),
        /items\[0\]\.total: is 19\.99, but price × quantity \(10\.00 × 2\) is 20\.00/,
      ],
      ['an amount with 3 decimals', (b) => (b.items[0].total = '20.001'), /items\[0\]\.total/],
      [
        'a plan of another integration',
        (b) => (b.items[0].billingPlanId = 'postgres_pro'),
        /items\[0\]\.billingPlanId: postgres_pro is not a subscription plan of this integration/,
      ],
      ['a prepayment plan', (b) => (b.items[0].billingPlanId = 'partner_credits'), /items\[0\]\.billingPlanId/],
      [
        'a period that ends before it starts',
        (b) => (b.period.end = '2026-01-01T00:00:00.000Z'),
        /period\.end: must be after period\.start/,
      ],
      ['an invoice date outside the period', (b) => (b.invoiceDate = '2027-09-01T00:00:00.000Z'), /invoiceDate: must be inside the period/],
      [
        'discounts larger than the items',
        (b) => (b.discounts = [{ billingPlanId: 'partner_pro', name: 'Promo', amount: '25.00' }]),
        /discounts: come to 25\.00/,
      ],
      ['a price with 7 decimals', (b) => (b.items[0].price = '0.0000001'), /items\[0\]\.price: "0\.0000001" is not a dollar amount/],
      ['an amount of ten billion dollars', (b) => (b.items[0].total = '10000000000.00'), /items\[0\]\.total/],
      ['a negative quantity', (b) => (b.items[0].quantity = -1), /items\[0\]\.quantity/],
      ['no items', (b) => (b.items = []), /items/],
      ['an item without a price', (b) => delete b.items[0].price, /price/],
      [
        'an item line outside the period',
        (b) => (b.items[0].end = '2027-12-01T00:00:00.000Z'),
        /items\[0\]\.end: must be inside the period/,
      ],
    ];
    for (const [what, change, message] of refusals) {
      const refused = await errorOf(await rawSubmit(wire(5, change)));
      assert.equal(refused.status, 400, what);
      assert.match(refused.message, message, what);
    }
    // The fields are listed too, Vercel's validation_error.
    const fields = await errorOf(
      await rawSubmit(
        wire(5, (b) => {
          b.items[0].total = '1.00';
          b.invoiceDate = '2020-01-01T00:00:00.000Z';
        }),
      ),
    );
    assert.equal(fields.code, 'validation_error');
    assert.deepEqual(fields.body.error.fields.map((f: { key: string }) => f.key).sort(), ['invoiceDate', 'items[0].total']);
    // A resource the installation does not have is a 404.
    const unknown = await errorOf(await rawSubmit(wire(5, (b) => (b.items[0].resourceId = 'no-such-resource'))));
    assert.equal(unknown.status, 404);
    assert.equal(await invoiceCount(), before, 'no refused invoice was kept');
  });

  test("another installation's resource and invoices are 404; a user's token is 401; a duplicate is 409", async () => {
    const db = server.runtime.db;
    const team = await createTeam(db, { slug: 'invoices-other' });
    const other = await install(db, { teamId: team.id, integrationId: 'oac_partner', installedBy: null });
    const otherToken = (await mintInstallationToken(db, other.id)).value;
    await mp(otherToken).importResource({
      integrationConfigurationId: other.id,
      resourceId: 'ext-foreign',
      requestBody: {
        productId: 'postgres',
        name: 'foreign',
        status: 'ready',
        billingPlan: { id: 'partner_pro', type: 'subscription', name: 'Pro', description: 'Pro' },
      },
    });
    const before = await invoiceCount();
    const foreign = await errorOf(await rawSubmit(wire(6, (b) => (b.items[0].resourceId = 'ext-foreign'))));
    assert.equal(foreign.status, 404);
    assert.match(foreign.message, /ext-foreign/);
    // Their own invoice for it is theirs: our installation's path does not find it, and our token is not theirs.
    const theirs = await mp(otherToken).submitInvoice({
      integrationConfigurationId: other.id,
      requestBody: invoice(6, {
        items: [
          {
            billingPlanId: 'partner_pro',
            resourceId: 'ext-foreign',
            name: 'Pro',
            price: '10.00',
            quantity: 1,
            units: 'month',
            total: '10.00',
          },
        ],
      }),
    });
    assert.equal((await sdkFailure(mp().getInvoice({ ...icfg(), invoiceId: theirs.invoiceId! }))).status, 404);
    assert.equal((await sdkFailure(mp().getInvoice({ integrationConfigurationId: other.id, invoiceId: theirs.invoiceId! }))).status, 403);
    const refundTheirs = await sdkFailure(
      mp().updateInvoice({ ...icfg(), invoiceId: theirs.invoiceId!, requestBody: { action: 'refund', total: '1.00', reason: 'x' } }),
    );
    assert.equal(refundTheirs.status, 404);
    // The team's view of another team's invoice is a 404 too.
    assert.equal((await server.request(`/_storehouse/teams/${teamId}/invoices/${theirs.invoiceId}`)).status, 404);

    // A user's token is not the installation's.
    const user = await errorOf(await rawSubmit(wire(6), server.token));
    assert.equal(user.status, 401);
    assert.equal((await server.request(`/v1/installations/${installationId}/billing/invoices/${theirs.invoiceId}`)).status, 401);

    // One invoice per resource per period per plan, and one per externalId.
    await useCard(SUCCEEDS);
    const first = await mp().submitInvoice({ ...icfg(), requestBody: invoice(6, { externalId: 'ext-june' }) });
    const again = await errorOf(await rawSubmit(wire(6)));
    assert.equal(again.status, 409);
    assert.match(
      again.message,
      new RegExp(
        `items\\[0\\]\\.resourceId: the resource ${resourceA} is already billed on partner_pro for this period, by the invoice ${first.invoiceId}`,
      ),
    );
    const overlapping = await errorOf(
      await rawSubmit(
        wire(6, (b) => {
          b.items[0].start = '2027-07-15T00:00:00.000Z';
          b.items[0].end = '2027-07-20T00:00:00.000Z';
        }),
      ),
    );
    assert.equal(overlapping.status, 409, 'an overlapping stretch of the same period is billed already');
    const sameExternal = await errorOf(
      await rawSubmit(
        wire(7, (b) => {
          b.externalId = 'ext-june';
          b.items[0].resourceId = resourceB;
        }),
      ),
    );
    assert.equal(sameExternal.status, 409);
    assert.match(sameExternal.message, /^externalId: ext-june is already the invoice/);
    // Another resource, or another plan, in the same period is not a duplicate.
    const otherResource = await mp().submitInvoice({
      ...icfg(),
      requestBody: invoice(6, {
        items: [
          { billingPlanId: 'partner_pro', resourceId: resourceB, name: 'Pro', price: '10.00', quantity: 1, units: 'month', total: '10.00' },
          {
            billingPlanId: 'partner_pro',
            resourceId: resourceB,
            name: 'Extra',
            price: '0.001',
            quantity: 1500,
            units: 'req',
            total: '1.50',
          },
        ],
      }),
    });
    assert.equal((await mp().getInvoice({ ...icfg(), invoiceId: otherResource.invoiceId! })).total, '11.50');
    assert.equal(await invoiceCount(), before + 3, 'only the accepted invoices were kept');
  });

  test("the team's invoices: owners and billing members see them, other roles are refused", async () => {
    const listed = (await (await server.request(`/_storehouse/teams/${teamId}/invoices?installationId=${installationId}`)).json()) as any;
    assert.ok(listed.invoices.length >= 5);
    assert.ok(listed.invoices.every((i: { installationId: string }) => i.installationId === installationId));
    const seqs = listed.invoices.map((i: { invoiceNumber: string }) => Number(i.invoiceNumber.slice(3)));
    assert.deepEqual(
      seqs,
      [...seqs].sort((a: number, b: number) => b - a),
      'newest first',
    );
    const page = (await (await server.request(`/_storehouse/teams/${teamId}/invoices?limit=2`)).json()) as any;
    assert.equal(page.invoices.length, 2);
    const next = (await (await server.request(`/_storehouse/teams/${teamId}/invoices?limit=2&before=${page.next}`)).json()) as any;
    assert.equal(next.invoices[0].invoiceId, listed.invoices[2].invoiceId);

    const billing = await memberToken('billing@invoices.test', 'BILLING');
    assert.equal((await server.request(`/_storehouse/teams/${teamId}/invoices`, { token: billing })).status, 200);
    for (const role of ['VIEWER', 'DEVELOPER', 'MEMBER'] as const) {
      const member = await memberToken(`${role.toLowerCase()}@invoices.test`, role);
      const refused = await errorOf(await server.request(`/_storehouse/teams/${teamId}/invoices`, { token: member }));
      assert.equal(refused.status, 403, role);
      // Usage and balances are every member's to see.
      assert.equal((await server.request(`/_storehouse/teams/${teamId}/billing/balances`, { token: member })).status, 200, role);
    }
    // Another team's path is refused.
    const stranger = await createTeam(server.runtime.db, { slug: 'invoices-stranger' });
    assert.equal((await server.request(`/_storehouse/teams/${stranger.id}/invoices`)).status, 403);
  });

  test('billing data and balances are kept as a history, every report with its timestamp', async () => {
    const day = new Date(Date.UTC(2027, 0, 1));
    for (const [hour, units] of [
      [1, 3],
      [2, 5],
    ] as const) {
      await mp().submitBillingData({
        ...icfg(),
        requestBody: {
          timestamp: new Date(day.getTime() + hour * 3_600_000),
          eod: day,
          period: { start: day, end: new Date(Date.UTC(2027, 1, 1)) },
          billing: {
            items: [
              {
                billingPlanId: 'partner_pro',
                resourceId: resourceA,
                name: 'Storage',
                price: '0.10',
                quantity: units,
                units: 'GB',
                total: (units / 10).toFixed(2),
              },
            ],
          },
          usage: [{ resourceId: resourceA, name: 'Storage', type: 'total', units: 'GB', dayValue: units, periodValue: units }],
        },
      });
    }
    const usage = (await (await server.request(`/_storehouse/teams/${teamId}/billing/usage`)).json()) as any;
    assert.deepEqual(
      usage.reports.slice(0, 2).map((r: any) => [r.timestamp, r.usage[0].periodValue, r.billing.items[0].total]),
      [
        ['2027-01-01T02:00:00.000Z', 5, '0.50'],
        ['2027-01-01T01:00:00.000Z', 3, '0.30'],
      ],
    );
    for (const [minute, cents] of [
      [1, 1500],
      [2, 900],
    ] as const) {
      await mp().submitPrepaymentBalances({
        ...icfg(),
        requestBody: {
          timestamp: new Date(day.getTime() + minute * 60_000),
          balances: [
            { resourceId: resourceB, currencyValueInCents: cents, credit: `${cents} tokens`, nameLabel: 'Tokens' },
            { currencyValueInCents: cents * 2 },
          ],
        },
      });
    }
    const { balances } = (await (await server.request(`/_storehouse/teams/${teamId}/billing/balances`)).json()) as any;
    const ofB = balances.filter((b: any) => b.resourceId === resourceB);
    assert.deepEqual(
      ofB.map((b: any) => [b.timestamp, b.currencyValueInCents, b.credit]),
      [
        ['2027-01-01T00:02:00.000Z', 900, '900 tokens'],
        ['2027-01-01T00:01:00.000Z', 1500, '1500 tokens'],
      ],
    );
    assert.equal(balances.filter((b: any) => b.resourceId === null).length, 2, "the installation's own balance too");
    // The store shows the last one.
    const { store } = (await (await server.request(`/v1/storage/stores/${ofB[0].storeId}`)).json()) as any;
    assert.equal(store.prepaidBalanceCents, 900);
  });

  test('a balance that falls below its threshold buys the top-up once per crossing, within the most per period', async () => {
    // A prepaid resource the partner made on its side, and the team's threshold on it (vercel integration resource create-threshold).
    await mp().importResource({
      ...icfg(),
      resourceId: 'ext-credits',
      requestBody: {
        productId: 'postgres',
        name: 'inv-credits',
        status: 'ready',
        billingPlan: { id: 'partner_credits', type: 'prepayment', name: 'Credits', description: 'Prepaid credit' },
      },
    });
    const threshold = await server.request(`/v1/integrations/installations/${installationId}/resources/ext-credits/billing/threshold`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ minimumAmountInCents: 500, purchaseAmountInCents: 1000, maximumAmountPerPeriodInCents: 2500 }),
    });
    assert.equal(threshold.status, 200, await threshold.clone().text());
    await useCard(SUCCEEDS);
    const report = (cents: number) =>
      mp().submitPrepaymentBalances({
        ...icfg(),
        requestBody: { timestamp: new Date(), balances: [{ resourceId: 'ext-credits', currencyValueInCents: cents }] },
      });
    const topUps = async () =>
      ((await (await server.request(`/_storehouse/teams/${teamId}/billing/balances`)).json()) as any).topUps
        .reverse()
        .map((t: any) => [t.balanceInCents, t.purchaseAmountInCents, t.outcome]);
    await report(2000);
    await report(400); // crosses: bought
    await report(300); // still below: nothing
    assert.deepEqual(await topUps(), [[400, 1000, 'purchased']]);
    await report(800);
    await useCard(DECLINES);
    await report(450); // crosses again, with a card that declines
    await useCard(SUCCEEDS);
    await report(700);
    await report(100); // crosses: the second purchase this month, 2000 of 2500
    await report(600);
    await report(200); // a third would pass the period's most
    assert.deepEqual(await topUps(), [
      [400, 1000, 'purchased'],
      [450, 1000, 'declined'],
      [100, 1000, 'purchased'],
      [200, 1000, 'over_period_maximum'],
    ]);
    const { rows } = await server.runtime.db.query<{ outcome: string; n: string }>(
      `SELECT c.outcome, count(*) AS n FROM card_charges c JOIN balance_top_ups t ON t.id = c.idempotency_key GROUP BY c.outcome ORDER BY c.outcome`,
    );
    assert.deepEqual(
      rows.map((r) => [r.outcome, Number(r.n)]),
      [
        ['declined', 1],
        ['succeeded', 2],
      ],
      'the card was charged for the two purchases only',
    );
  });

  test('the invoice webhooks arrive at the partner, each once, signed with the client secret', async () => {
    const { rows } = await server.runtime.db.query<{ id: string; type: string; body: string }>(
      "SELECT id, type, body FROM webhook_events WHERE type LIKE 'marketplace.invoice.%' ORDER BY seq",
    );
    assert.deepEqual(
      [...new Set(rows.map((row) => row.type))].sort(),
      ['created', 'notpaid', 'overdue', 'paid', 'refunded'].map((t) => `marketplace.invoice.${t}`),
    );
    const inbox = setup.partner.webhooks;
    const received = () => new Map(inbox.events.map((event) => [event.id, event]));
    await eventually('every invoice webhook received', async () => rows.every((row) => received().has(row.id)));
    for (const row of rows) {
      const event = received().get(row.id)!;
      assert.equal(event.type, row.type);
      assert.equal(event.body, row.body, 'the envelope recorded is the one sent');
      assert.ok(validSignature(event.body, event.signature, CLIENT_SECRET), `${row.type} ${row.id} is signed`);
      assert.equal(event.deliveries, 1);
    }
  });

  test('the billing operations answer what /openapi.json documents', async () => {
    const doc = await loadOpenApi(server.url);
    assert.deepEqual(
      (await documentProblems(doc)).filter((p) => /invoice|billing/i.test(p)),
      [],
    );
    const problems: string[] = [];
    const check = async (method: string, path: string, init: RequestInit & { token?: string | null }, expect: number) => {
      const response = await server.request(path, { method, ...init });
      const template = findOperation(doc, method, path)?.template;
      assert.ok(template, `${method} ${path} is documented`);
      const { problems: found, body } = await checkFetchResponse(doc, method, path, response);
      problems.push(...found);
      assert.equal(response.status, expect, `${method} ${path}: ${JSON.stringify(body)}`);
      return body as any;
    };
    const json = (body: unknown, bearer: string | null = token) => ({
      token: bearer,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const base = `/v1/installations/${installationId}/billing`;
    await useCard(SUCCEEDS);
    const { invoiceId } = await check('POST', `${base}/invoices`, json(wire(8)), 200);
    await check('POST', `${base}/invoices`, json({ ...wire(9), test: { validate: true } }), 200);
    await check('POST', `${base}/invoices`, json(wire(9, (b) => (b.items[0].total = '1.00'))), 400);
    await check('POST', `${base}/invoices`, json(wire(9, (b) => (b.items[0].resourceId = 'nope'))), 404);
    await check('POST', `${base}/invoices`, json(wire(8)), 409);
    await check('POST', `${base}/invoices`, json(wire(9), server.token), 401);
    await waitFor(invoiceId, 'paid');
    await check('GET', `${base}/invoices/${invoiceId}`, { token }, 200);
    await check('GET', `${base}/invoices/inv_nothing`, { token }, 404);
    const refund = (total: string) => json({ action: 'refund', total, reason: 'check' });
    await check('POST', `${base}/invoices/${invoiceId}/actions`, refund('99.00'), 400);
    await check('POST', `${base}/invoices/${invoiceId}/actions`, refund('1.00'), 204);
    const { invoiceId: unpaid } = await check('POST', `${base}/invoices`, json({ ...wire(10), test: { result: 'notpaid' } }), 200);
    await check('POST', `${base}/invoices/${unpaid}/actions`, refund('1.00'), 409);
    const day = '2027-01-01T00:00:00.000Z';
    await check(
      'POST',
      base,
      json({ timestamp: day, eod: day, period: { start: day, end: '2027-02-01T00:00:00.000Z' }, billing: [], usage: [] }),
      201,
    );
    await check('POST', `${base}/balance`, json({ timestamp: day, balances: [{ currencyValueInCents: 1 }] }), 201);
    const team = `/_storehouse/teams/${teamId}`;
    await check('GET', `${team}/invoices?limit=1`, {}, 200);
    await check('GET', `${team}/invoices/${invoiceId}`, {}, 200);
    await check('GET', `${team}/invoices/inv_nothing`, {}, 404);
    await check('GET', `${team}/billing/usage`, {}, 200);
    await check('GET', `${team}/billing/balances?installationId=${installationId}`, {}, 200);
    const viewer = await memberToken('openapi-viewer@invoices.test', 'VIEWER');
    await check('GET', `${team}/invoices`, { token: viewer }, 403);
    assert.deepEqual(problems, []);
  });
});
