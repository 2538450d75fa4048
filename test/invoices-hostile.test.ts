/**
 * The invoice and billing calls against a hostile partner (issue 14's review), over real HTTP
 * with the installation's access token: bodies meant to make them fail (huge numbers, negative
 * quantities, NaN-ish and non-ASCII amounts, arrays for objects, dates JavaScript or PostgreSQL
 * cannot hold) are each a 4xx in Vercel's error format that changes nothing; billing data whose
 * period runs backwards is refused; and concurrent refunds or duplicate submissions of one
 * invoice never refund more than its total, nor keep or charge it twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

const SUCCEEDS = '4242424242424242';

describe('invoices and billing reports against a hostile partner', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let installationId: string;
  let token: string;
  let resourceA: string;
  let resourceB: string;

  /** A valid invoice of resource A for month `month` of 2028 (each test its own month). */
  const invoice = (month: number, resourceId = resourceA): any => ({
    invoiceDate: new Date(Date.UTC(2028, month, 2)).toISOString(),
    period: { start: new Date(Date.UTC(2028, month, 1)).toISOString(), end: new Date(Date.UTC(2028, month + 1, 1)).toISOString() },
    items: [{ billingPlanId: 'partner_pro', resourceId, name: 'Pro', price: '10.00', quantity: 2, units: 'month', total: '20.00' }],
  });
  const post = (path: string, body: unknown) =>
    server.request(`/v1/installations/${installationId}${path}`, {
      method: 'POST',
      token,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const count = async (table: string) =>
    Number((await server.runtime.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
  /** What any accepted call would have added to. */
  const everything = async () =>
    Object.fromEntries(
      await Promise.all(
        ['invoices', 'partner_reports', 'balance_history', 'webhook_events', 'card_charges', 'invoice_refunds', 'audit_events'].map(
          async (table) => [table, await count(table)] as const,
        ),
      ),
    );
  const stateOf = async (invoiceId: string) =>
    ((await (await server.request(`/v1/installations/${installationId}/billing/invoices/${invoiceId}`, { token })).json()) as any).state;

  before(async () => {
    // A webhook URL, so each change records its webhook (what a refused call must not record).
    const clientSecret = 'invoices-hostile-client-secret-0123456789';
    setup = await startStorehouseWithPartner({
      env: { STOREHOUSE_INVOICE_RETRY_INTERVAL_MS: '1000' },
      integration: (url) => ({ clientSecret, webhookUrl: `${url}/webhook` }),
      partnerClientSecret: clientSecret,
    });
    ({ server, installationId } = setup);
    resourceA = (await setup.createStore('hostile-a')).externalResourceId!;
    resourceB = (await setup.createStore('hostile-b')).externalResourceId!;
    const upsert = setup.partnerCalls('PUT', `/v1/installations/${installationId}`)[0];
    token = (upsert!.body as { credentials: { access_token: string } }).credentials.access_token;
    const card = await server.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber: SUCCEEDS, default: true }),
    });
    assert.equal(card.status, 200);
  });
  after(async () => setup?.close());

  test('every hostile invoice, refund and report is a 4xx in Vercel format naming what is wrong, and changes nothing', async () => {
    const { invoiceId: paid } = (await (await post('/billing/invoices', { ...invoice(0), test: { result: 'paid' } })).json()) as any;
    const item = (change: Record<string, unknown>) => (b: any) => Object.assign(b.items[0], change);
    const refund = (total: unknown) => (b: any) => Object.assign(b, { action: 'refund', total, reason: 'x' });
    const balances = (sent: unknown) => (b: any) => Object.assign(b, { timestamp: '2028-01-01T00:00:00Z', balances: sent });
    const cases: Array<[string, string, (b: any) => void, number, RegExp]> = [
      [
        'a leap second (valid RFC 3339, no JavaScript Date)',
        '/billing/invoices',
        (b) => (b.invoiceDate = '2028-01-31T23:59:60Z'),
        400,
        /invoiceDate/,
      ],
      ['a date without a time zone', '/billing/invoices', (b) => (b.invoiceDate = '2028-01-03T00:00:00'), 400, /invoiceDate/],
      ['February 30th', '/billing/invoices', (b) => (b.period.end = '2028-02-30T00:00:00Z'), 400, /period\.end/],
      ['a quantity of 2^53 - 1', '/billing/invoices', item({ quantity: 9007199254740991 }), 400, /items\[0\]\.total/],
      ['a quantity beyond 2^53', '/billing/invoices', item({ quantity: 1e300 }), 400, /items\.0\.quantity/],
      ['a negative quantity', '/billing/invoices', item({ quantity: -2, total: '-20.00' }), 400, /items\[0\]\.quantity/],
      ['a quantity "NaN"', '/billing/invoices', item({ quantity: 'NaN' }), 400, /items\.0\.quantity/],
      ['a price "NaN"', '/billing/invoices', item({ price: 'NaN' }), 400, /items\[0\]\.price/],
      ['a price "Infinity"', '/billing/invoices', item({ price: 'Infinity' }), 400, /items\[0\]\.price/],
      ['a price in exponent form', '/billing/invoices', item({ price: '1e1' }), 400, /items\[0\]\.price/],
      ['a price in Arabic-Indic digits', '/billing/invoices', item({ price: '١٠.٠٠' }), 400, /items\[0\]\.price/],
      ['a total with a space', '/billing/invoices', item({ total: ' 20.00' }), 400, /items\[0\]\.total/],
      ['a total of "0x14"', '/billing/invoices', item({ total: '0x14' }), 400, /items\[0\]\.total/],
      ['a price as a number', '/billing/invoices', item({ price: 10 }), 400, /items\.0\.price/],
      [
        'a thousand items of nearly ten billion dollars each',
        '/billing/invoices',
        (b) =>
          (b.items = Array.from({ length: 1000 }, () => ({ ...b.items[0], price: '99999999.00', quantity: 100, total: '9999999900.00' }))),
        400,
        /items: come to 9999999900000\.00: an invoice's total must be below 10000000000\.00/,
      ],
      [
        'a negative discount',
        '/billing/invoices',
        (b) => (b.discounts = [{ billingPlanId: 'partner_pro', name: 'x', amount: '-5.00' }]),
        400,
        /discounts\[0\]\.amount/,
      ],
      ['items as an object', '/billing/invoices', (b) => (b.items = { 0: b.items[0] }), 400, /items/],
      ['an item as an array', '/billing/invoices', (b) => (b.items = [[b.items[0]]]), 400, /items\.0/],
      ['the period as an array', '/billing/invoices', (b) => (b.period = [b.period.start, b.period.end]), 400, /period/],
      ['test as an array', '/billing/invoices', (b) => (b.test = []), 400, /test/],
      ['a plan named __proto__', '/billing/invoices', item({ billingPlanId: '__proto__' }), 400, /items\[0\]\.billingPlanId/],
      ['a unicode resource id nobody has', '/billing/invoices', item({ resourceId: 'ресурс-😀' }), 404, /ресурс-😀/],
      ['a NUL in the memo', '/billing/invoices', (b) => (b.memo = 'a\u0000b'), 400, /memo/],
      ['a lone surrogate in a name', '/billing/invoices', item({ name: '\ud800' }), 400, /items\.0\.name/],
      ['a refund in exponent form', `/billing/invoices/${paid}/actions`, refund('1e1'), 400, /total/],
      ['a refund of 99 billion dollars', `/billing/invoices/${paid}/actions`, refund('99999999999.00'), 400, /total/],
      ['a refund as a number', `/billing/invoices/${paid}/actions`, refund(5), 400, /total/],
      ['a refund of -1.00', `/billing/invoices/${paid}/actions`, refund('-1.00'), 400, /total/],
      ['a balance beyond 2^53', '/billing/balance', balances([{ currencyValueInCents: 1e20 }]), 400, /currencyValueInCents/],
      ['a negative balance', '/billing/balance', balances([{ currencyValueInCents: -1 }]), 400, /currencyValueInCents/],
      ['balances as an object', '/billing/balance', balances({ currencyValueInCents: 1 }), 400, /balances/],
      [
        'a balance at a leap second',
        '/billing/balance',
        (b) => Object.assign(b, { timestamp: '2028-01-31T23:59:60Z', balances: [] }),
        400,
        /timestamp/,
      ],
    ];
    cases.push(['a body that is an array', '/billing/invoices', () => {}, 400, /body/]);
    for (const [what, path, change, status, message] of cases) {
      const body = path === '/billing/invoices' ? invoice(1) : {};
      change(body);
      const before = await everything();
      const response = await post(path, what === 'a body that is an array' ? [body] : body);
      const text = await response.text();
      assert.equal(response.status, status, `${what}: ${text}`);
      const error = JSON.parse(text).error;
      assert.equal(typeof error?.code, 'string', `${what}: Vercel's error format`);
      assert.match(error.message, message, what);
      assert.deepEqual(await everything(), before, `${what} changed nothing`);
    }
    assert.equal(await stateOf(paid), 'paid', 'the refused refunds left the invoice paid');
  });

  test("a balance report's timestamp is kept as the instant sent, year 0000 included; a leap second is refused by name", async () => {
    const response = await post('/billing/balance', {
      timestamp: '0000-01-01T00:00:00Z',
      balances: [{ resourceId: resourceB, currencyValueInCents: 700 }],
    });
    assert.equal(response.status, 201, await response.text());
    const { rows } = await server.runtime.db.query<{ reported_at: Date }>(
      'SELECT reported_at FROM balance_history WHERE resource_id = $1 ORDER BY created_at DESC LIMIT 1',
      [resourceB],
    );
    assert.equal(rows[0]!.reported_at.toISOString(), '0000-01-01T00:00:00.000Z');
    const leap = await post('/billing/balance', { timestamp: '2028-06-30T23:59:60Z', balances: [] });
    assert.equal(leap.status, 400);
    assert.deepEqual(((await leap.json()) as any).error.fields, [{ key: 'timestamp', message: 'must be an ISO 8601 date-time' }]);
  });

  test('billing data whose period runs backwards, or whose eod is outside it, is refused by field and not kept', async () => {
    const report = (period: { start: string; end: string }, eod: string) =>
      post('/billing', { timestamp: eod, eod, period, billing: [], usage: [] });
    const before = await count('partner_reports');
    const backwards = await report({ start: '2028-02-01T00:00:00Z', end: '2028-01-01T00:00:00Z' }, '2028-01-15T00:00:00Z');
    assert.equal(backwards.status, 400);
    assert.deepEqual(((await backwards.json()) as any).error.fields, [{ key: 'period.end', message: 'must be after period.start' }]);
    const outside = await report({ start: '2028-01-01T00:00:00Z', end: '2028-02-01T00:00:00Z' }, '2028-03-01T00:00:00Z');
    assert.equal(outside.status, 400);
    const { error } = (await outside.json()) as any;
    assert.equal(error.code, 'validation_error');
    assert.equal(error.fields[0].key, 'eod');
    assert.equal(await count('partner_reports'), before, 'nothing refused was kept');
    const inside = await report({ start: '2028-01-01T00:00:00Z', end: '2028-02-01T00:00:00Z' }, '2028-01-15T00:00:00Z');
    assert.equal(inside.status, 201);
    assert.equal(await count('partner_reports'), before + 1);
  });

  test('concurrent refunds of one paid invoice refund no more than its total, each counted once', async () => {
    const submitted = await post('/billing/invoices', invoice(2));
    assert.equal(submitted.status, 200);
    const { invoiceId } = (await submitted.json()) as { invoiceId: string };
    await eventually(`invoice ${invoiceId} paid`, async () => (await stateOf(invoiceId)) === 'paid');
    const statuses = await Promise.all(
      Array.from(
        { length: 12 },
        async () => (await post(`/billing/invoices/${invoiceId}/actions`, { action: 'refund', total: '5.00', reason: 'race' })).status,
      ),
    );
    assert.deepEqual(
      statuses.sort((a: number, b: number) => a - b),
      [...Array(4).fill(204), ...Array(8).fill(400)],
      'four refunds of 5.00 fit in 20.00, the rest are refused',
    );
    const got = (await (
      await server.request(`/v1/installations/${installationId}/billing/invoices/${invoiceId}`, { token })
    ).json()) as any;
    assert.equal(got.refundTotal, '20.00');
    assert.equal(got.state, 'refunded');
    const { rows } = await server.runtime.db.query<{ number: number }>(
      'SELECT number FROM invoice_refunds WHERE invoice_id = $1 ORDER BY number',
      [invoiceId],
    );
    assert.deepEqual(
      rows.map((r) => r.number),
      [1, 2, 3, 4],
    );
    const { rows: sent } = await server.runtime.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM webhook_events WHERE type = 'marketplace.invoice.refunded' AND body::jsonb -> 'payload' ->> 'invoiceId' = $1",
      [invoiceId],
    );
    assert.equal(Number(sent[0]!.n), 4, 'one refunded webhook per refund');
  });

  test('the same invoice submitted concurrently is kept and charged once; the others are 409', async () => {
    const before = await count('invoices');
    const answers = await Promise.all(Array.from({ length: 8 }, () => post('/billing/invoices', invoice(3, resourceB))));
    const statuses = answers.map((a) => a.status).sort((a: number, b: number) => a - b);
    assert.deepEqual(statuses, [200, ...Array(7).fill(409)]);
    assert.equal(await count('invoices'), before + 1);
    const { invoiceId } = (await answers.find((a) => a.status === 200)!.json()) as { invoiceId: string };
    await eventually(`invoice ${invoiceId} paid`, async () => (await stateOf(invoiceId)) === 'paid');
    const { rows } = await server.runtime.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM card_charges WHERE idempotency_key LIKE $1 || ':%'",
      [invoiceId],
    );
    assert.equal(Number(rows[0]!.n), 1, 'charged once');
    // One externalId, submitted concurrently for different resources and months: one is kept.
    const external = await Promise.all(
      [4, 5, 6, 7].map((month) =>
        post('/billing/invoices', { ...invoice(month, month % 2 === 0 ? resourceA : resourceB), externalId: 'ext-race' }),
      ),
    );
    assert.deepEqual(
      external.map((a) => a.status).sort((a: number, b: number) => a - b),
      [200, 409, 409, 409],
    );
  });
});
