/**
 * The dashboard's invoices, balances and usage (Billing) and webhook deliveries (Team), in a real
 * Chromium against a Storehouse selling the reference partner's products, with webhooks on: the
 * partner submits invoices (one paid by a card, one declined) and a balance with the installation
 * token it received, through @vercel/sdk; the owner, a billing member and a viewer see what their
 * roles allow; "Send again" makes a new attempt that the partner receives again, same id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { setMember, type TeamRole } from '../src/tenancy/teams.ts';
import { createUser } from '../src/tenancy/users.ts';
import { ensureDashboardBuilt, launchChromium, newWindow, screenshot } from './dashboard-harness.ts';
import { eventually } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import { CLIENT_SECRET, inboxOf, webhookIntegration } from './webhooks-fixtures.ts';

const SUCCEEDS = '4242424242424242';
const DECLINES = '4000000000000002';

describe("the dashboard's invoices, balances, usage and webhook deliveries", { timeout: 600_000 }, () => {
  let env: StorehouseWithPartner;
  let browser: Browser;
  let teamId: string;
  let resourceId: string;
  let paidId: string;
  let declinedId: string;
  /** Submits an invoice for month `month` of 2027 as the partner (its installation token); its id. */
  let submitInvoice: (month: number, name: string, total: string, memo?: string) => Promise<string>;

  const api = async (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const response = await env.server.request(path, init);
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const invoiceState = async (invoiceId: string) => (await api(`/_storehouse/teams/${teamId}/invoices/${invoiceId}`)).body.state;
  const useCard = async (cardNumber: string) => {
    const added = await api('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber, default: true }),
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
  };
  const deliveries = async () => (await api('/_storehouse/webhooks/deliveries?limit=100')).body.deliveries as any[];

  /** A browser window signed in as `userId` through a one-time link, opened at `page`. */
  const signedIn = async (userId: string, page: string, phone = false): Promise<Page> => {
    const { code } = await env.server.runtime.dashboardSessions.createLinkCode(userId, teamId);
    const window = await newWindow(browser, env.server.url, phone);
    await window.page.goto(`${env.server.url}/dashboard${page}#code=${code}`);
    return window.page;
  };
  const member = async (email: string, role: TeamRole) => {
    const user = await createUser(env.server.runtime.db, { email });
    await setMember(env.server.runtime.db, teamId, user.id, role);
    return user.id;
  };
  const fits = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

  before(async () => {
    await ensureDashboardBuilt(); // before the server starts: it serves the build it finds then
    env = await startStorehouseWithPartner({
      integration: webhookIntegration,
      partnerClientSecret: CLIENT_SECRET,
      env: {
        // Webhooks go out at once and a failed attempt is tried again 3 s later (long enough to see it pending).
        STOREHOUSE_WEBHOOK_POLL_MS: '250',
        STOREHOUSE_WEBHOOK_BACKOFF_MS: '3000',
        STOREHOUSE_WEBHOOK_BACKOFF_MAX_MS: '3000',
        STOREHOUSE_WEBHOOK_TIMEOUT_MS: '5000',
        STOREHOUSE_PROVISION_TIMEOUT_MS: '30000',
        STOREHOUSE_PARTNER_TIMEOUT_MS: '30000',
      },
    });
    browser = await launchChromium();
    resourceId = (await env.createStore('billed')).externalResourceId!;
    const upsert = env.partnerCalls('PUT', `/v1/installations/${env.installationId}`)[0];
    assert.ok(upsert, 'the installation was announced to the partner');
    const token = (upsert.body as { credentials: { access_token: string } }).credentials.access_token;
    teamId = (await api('/v2/user')).body.user.defaultTeamId;
    const mp = env.server.sdk(token).marketplace;
    const icfg = { integrationConfigurationId: env.installationId };
    submitInvoice = async (month, name, total, memo) =>
      (
        await mp.submitInvoice({
          ...icfg,
          requestBody: {
            invoiceDate: new Date(Date.UTC(2027, month, 2)),
            period: { start: new Date(Date.UTC(2027, month, 1)), end: new Date(Date.UTC(2027, month + 1, 1)) },
            items: [{ billingPlanId: 'partner_pro', resourceId, name, price: total, quantity: 1, units: 'month', total }],
            ...(memo && { memo }),
          },
        })
      ).invoiceId!;
    // The partner bills the team: charged to its default card by the server's housekeeping.
    await useCard(SUCCEEDS);
    paidId = await submitInvoice(0, 'Pro, January', '20.00', 'January');
    await eventually('the first invoice paid', async () => (await invoiceState(paidId)) === 'paid', 60_000);
    await useCard(DECLINES);
    declinedId = await submitInvoice(1, 'Pro, February', '30.00');
    await eventually('the second invoice declined', async () => (await invoiceState(declinedId)) === 'notpaid', 60_000);
    await mp.submitPrepaymentBalances({
      ...icfg,
      requestBody: {
        timestamp: new Date(),
        balances: [{ resourceId, currencyValueInCents: 1234, credit: '1234 tokens', nameLabel: 'Tokens' }],
      },
    });
    await mp.submitBillingData({
      ...icfg,
      requestBody: {
        timestamp: new Date(),
        eod: new Date(Date.UTC(2027, 1, 1)),
        period: { start: new Date(Date.UTC(2027, 1, 1)), end: new Date(Date.UTC(2027, 2, 1)) },
        billing: { items: [] },
        usage: [{ resourceId, name: 'Connections', type: 'total', units: 'conn', dayValue: 7, periodValue: 41 }],
      },
    });
  });

  after(async () => {
    await browser?.close();
    await env?.close();
  });

  test('the owner sees both invoices with their states and opens one; its balance and usage show', async () => {
    const me = (await api('/v2/user')).body.user;
    const page = await signedIn(me.id, '/billing');
    const invoices = page.getByRole('table', { name: 'Invoices' });
    const paidRow = invoices.locator(`tr[data-invoice="${paidId}"]`);
    await paidRow.locator('.badge', { hasText: /^paid$/ }).waitFor();
    const declinedRow = invoices.locator(`tr[data-invoice="${declinedId}"]`);
    await declinedRow.locator('.badge', { hasText: /^not paid$/ }).waitFor();
    assert.match(String(await paidRow.textContent()), /\$20\.00/);
    await paidRow.getByRole('cell', { name: 'Acme', exact: true }).waitFor(); // the partner's integration, once its name is loaded
    assert.match(String(await paidRow.textContent()), new RegExp(resourceId));
    assert.match(String(await declinedRow.textContent()), /\$30\.00/);
    // Opened by keyboard: the invoice's button, then Enter.
    const opener = paidRow.getByRole('button');
    assert.equal(await opener.getAttribute('aria-expanded'), 'false');
    await opener.focus();
    await page.keyboard.press('Enter');
    assert.equal(await opener.getAttribute('aria-expanded'), 'true');
    const detail = page.getByRole('region', { name: /^Invoice / });
    await detail.getByRole('heading', { name: 'Charge attempts' }).waitFor();
    await detail.getByText('Pro, January').waitFor();
    await detail.getByText('January', { exact: true }).waitFor(); // the memo
    await detail.locator('.attempts li', { hasText: 'succeeded' }).waitFor();
    assert.equal(await detail.locator('.attempts li').count(), 1, 'one charge attempt');
    // The declined one's attempt says so.
    await declinedRow.getByRole('button').click();
    await page
      .getByRole('region', { name: /^Invoice / })
      .locator('.attempts li', { hasText: 'declined' })
      .waitFor();
    // Balances and usage, as the partner reported them.
    const balances = page.getByRole('region', { name: 'Prepaid balances' });
    await balances.locator(`[data-resource="${resourceId}"]`, { hasText: '$12.34' }).waitFor();
    await balances.getByText('1234 tokens', { exact: false }).waitFor();
    const usage = page.getByRole('region', { name: 'Usage', exact: true });
    await usage.getByRole('cell', { name: 'Connections' }).waitFor();
    await usage.getByRole('cell', { name: '41 conn' }).waitFor();
    await opener.click(); // the paid one again, for the screenshot
    await page
      .getByRole('region', { name: /^Invoice / })
      .locator('.attempts li', { hasText: 'succeeded' })
      .waitFor();
    await screenshot(page, 'billing-invoices');
    await page.context().close();
  });

  test('a billing member sees the invoices, on a phone-sized window', async () => {
    const page = await signedIn(await member('billing@example.com', 'BILLING'), '/billing', true);
    const invoices = page.getByRole('table', { name: 'Invoices' });
    await invoices.locator(`tr[data-invoice="${paidId}"] .badge`, { hasText: /^paid$/ }).waitFor();
    await invoices.locator(`tr[data-invoice="${declinedId}"] .badge`, { hasText: /^not paid$/ }).waitFor();
    await page.getByRole('region', { name: 'Prepaid balances' }).getByText('$12.34').waitFor();
    assert.equal(await fits(page), true, 'the billing page fits a 390 px window');
    await screenshot(page, 'billing-invoices-phone');
    // Webhook deliveries are the owners': the Team page has none for a billing member.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Team' }).click();
    await page.getByRole('heading', { name: 'Members' }).waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Webhook deliveries' }).count(), 0);
    await page.context().close();
  });

  test('a viewer sees balances and usage but no invoices, which the API refuses them too', async () => {
    const viewerId = await member('viewer@example.com', 'VIEWER');
    const page = await signedIn(viewerId, '/', true);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage and balances' }).waitFor();
    await page.getByRole('region', { name: 'Prepaid balances' }).getByText('$12.34').waitFor();
    await page.getByRole('region', { name: 'Usage', exact: true }).getByRole('cell', { name: 'Connections' }).waitFor();
    await page.getByText("Only the team's owners and billing members see its payment methods, charges and invoices.").waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Invoices' }).count(), 0, 'no invoices for a viewer');
    assert.equal(await nav.getByRole('link', { name: 'Billing' }).count(), 0);
    assert.equal(await fits(page), true, 'the usage page fits a 390 px window');
    await screenshot(page, 'billing-viewer-phone');
    // The same refusal through the API, with the viewer's own session (the cookie the browser holds).
    const refused = await page.evaluate(async (path) => {
      const response = await fetch(path);
      return { status: response.status, body: await response.json() };
    }, `/_storehouse/teams/${teamId}/invoices`);
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /owners and billing members/);
    await page.context().close();
  });

  test('the owner sees the invoice events delivered, filters them, and sends one again: the partner gets it again, same id', async () => {
    await eventually(
      'the invoice events delivered',
      async () => {
        const list = await deliveries();
        return list.length >= 3 && list.every((delivery) => delivery.status === 'delivered');
      },
      60_000,
    );
    const paidEvent = (await deliveries()).find((delivery) => delivery.type === 'marketplace.invoice.paid');
    assert.ok(paidEvent, 'a marketplace.invoice.paid event');
    const before = await inboxOf(env.partner.url);
    assert.equal(before.events.find((event) => event.id === paidEvent.id)?.deliveries, 1);

    const me = (await api('/v2/user')).body.user;
    const page = await signedIn(me.id, '/team');
    const section = page.getByRole('region', { name: 'Webhook deliveries' });
    const row = section.locator(`tr[data-delivery="${paidEvent.id}"]`);
    await row.waitFor();
    for (const type of ['marketplace.invoice.created', 'marketplace.invoice.paid', 'marketplace.invoice.notpaid'])
      await section.getByRole('button', { name: type, exact: true }).first().waitFor();
    const cell = (n: number) => row.locator(':scope > td').nth(n);
    await cell(1)
      .filter({ hasText: /^Acme$/ })
      .waitFor(); // the partner's integration, once its name is loaded
    assert.equal(String(await cell(2).textContent()), 'delivered');
    assert.equal(String(await cell(3).textContent()), '1', 'one attempt');
    assert.equal(String(await cell(4).textContent()), '200', 'the last answer');
    // Filtered by status: none is pending or failed.
    const status = section.getByLabel('Status');
    await status.selectOption('failed');
    await section.getByText('No deliveries failed.').waitFor();
    await status.selectOption('delivered');
    await row.waitFor();
    await status.selectOption('');
    await row.waitFor();
    // Its detail: the event as sent and one attempt.
    await row.getByRole('button', { name: 'marketplace.invoice.paid', exact: true }).click();
    const detail = page.getByRole('region', { name: `Delivery ${paidEvent.id}` });
    await detail.locator('.attempts li', { hasText: 'HTTP 200' }).waitFor();
    assert.equal(await detail.locator('.attempts li').count(), 1);

    // Sent again while the partner fails its first try: pending (and not to be sent again) until the retry delivers it.
    env.partner.faults.webhook = { status: 500, times: 1 };
    const send = row.getByRole('button', { name: 'Send marketplace.invoice.paid again' });
    await send.click();
    await row.getByText('Sending: it can be sent again once delivered or failed.').waitFor();
    assert.equal(await send.isDisabled(), true, 'a pending delivery cannot be sent again');
    await row.locator('.badge', { hasText: 'pending' }).waitFor();
    await screenshot(page, 'team-webhooks-pending');
    await row.locator('.badge', { hasText: 'delivered' }).waitFor({ timeout: 60_000 });
    assert.equal(await send.isDisabled(), false);
    await detail.locator('.attempts li', { hasText: 'HTTP 500' }).waitFor();
    await eventually('three attempts in the detail', async () => (await detail.locator('.attempts li').count()) === 3);
    assert.equal(String(await cell(3).textContent()), '3', 'three attempts in the row');
    assert.equal(String(await cell(4).textContent()), '200');

    const afterwards = await inboxOf(env.partner.url);
    const received = afterwards.events.find((event) => event.id === paidEvent.id);
    assert.equal(received?.deliveries, 2, 'the partner received the same event id twice');
    assert.equal(afterwards.duplicates, before.duplicates + 1, 'one more duplicate at the partner');
    assert.equal(afterwards.events.length, before.events.length, 'no new event id');
    replaceFaults(env.partner.faults, {});
    await screenshot(page, 'team-webhooks');
    await page.setViewportSize({ width: 390, height: 844 });
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('body *')]
        .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1 && !element.closest('.table-wrap'))
        .map((element) => `${element.tagName}.${element.className} ${Math.round(element.getBoundingClientRect().right)}`)
        .slice(0, 15),
    );
    assert.equal(await fits(page), true, `the team page fits a 390 px window: ${wide.join(', ')}`);
    await screenshot(page, 'team-webhooks-phone');
    await page.context().close();
  });

  test('the deliveries list pages: older ones are shown on request', async () => {
    // Each new member is an event for the installation (marketplace.member.changed): past one page of 50.
    for (let n = 0; n < 50; n++) await member(`member-${n}@example.com`, 'MEMBER');
    const oldest = (await deliveries()).length; // the API's first page is at most 100: all of them
    assert.ok(oldest > 50, `${oldest} deliveries`);
    const firstEvent = (await api('/_storehouse/webhooks/deliveries?limit=100')).body.deliveries.at(-1).id;
    const me = (await api('/v2/user')).body.user;
    const page = await signedIn(me.id, '/team');
    const section = page.getByRole('region', { name: 'Webhook deliveries' });
    const rows = section.locator('tr[data-delivery]');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 50, 'one page');
    assert.equal(await section.locator(`tr[data-delivery="${firstEvent}"]`).count(), 0, 'the oldest is on the next page');
    await section.getByRole('button', { name: 'Show older deliveries' }).click();
    await section.locator(`tr[data-delivery="${firstEvent}"]`).waitFor();
    assert.equal(await rows.count(), oldest);
    await section.getByRole('button', { name: 'Show older deliveries' }).waitFor({ state: 'detached' });
    await page.context().close();
  });

  test('the invoices list pages: older ones are shown on request', async () => {
    for (let month = 2; month < 52; month++) await submitInvoice(month, `Pro, month ${month}`, '1.00');
    const me = (await api('/v2/user')).body.user;
    const page = await signedIn(me.id, '/billing');
    const invoices = page.getByRole('table', { name: 'Invoices' });
    const rows = invoices.locator('tr[data-invoice]');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 50, 'one page');
    assert.equal(await invoices.locator(`tr[data-invoice="${paidId}"]`).count(), 0, 'the oldest is on the next page');
    await page.getByRole('button', { name: 'Show older invoices' }).click();
    await invoices.locator(`tr[data-invoice="${paidId}"]`).waitFor();
    assert.equal(await rows.count(), 52);
    await page.getByRole('button', { name: 'Show older invoices' }).waitFor({ state: 'detached' });
    await page.context().close();
  });
});
