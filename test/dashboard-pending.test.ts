/**
 * A store whose provider answers `pending` (the reference partner server, told to) shows as
 * initializing in the dashboard, and its list and page update by themselves, with no reload,
 * once the provider has made it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { ensureDashboardBuilt, launchChromium, newWindow, screenshot } from './dashboard-harness.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

describe('a store being made, in the dashboard', { timeout: 300_000 }, () => {
  let env: StorehouseWithPartner;
  let browser: Browser;

  before(async () => {
    await ensureDashboardBuilt(); // before the server starts: it serves the build it finds then
    env = await startStorehouseWithPartner();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await env?.close();
  });

  test('is listed as initializing, and the list and its page turn available by themselves', async () => {
    // Pending until the test tells the partner to finish (after the page showed it initializing),
    // whatever time the page took to load.
    const finish = async (storeId: string) => {
      const { store } = (await (await env.server.request(`/v1/storage/stores/${storeId}`)).json()) as any;
      const ready = await fetch(`${env.partner.url}/_partner/resources/${store.externalResourceId}/ready`, { method: 'POST' });
      assert.equal(ready.status, 200, await ready.text());
    };
    env.partner.faults.provision = { pending: 'forever', times: 1 };
    const idOf = async (name: string): Promise<string> =>
      ((await (await env.server.request('/v1/storage/stores')).json()) as any).stores.find((s: any) => s.name === name).id;
    const store = await env.createStore('dash-pending');
    assert.equal(store.status, 'initializing');
    const storeId = await idOf('dash-pending');
    const me = ((await (await env.server.request('/v2/user')).json()) as any).user;
    const { code } = await env.server.runtime.dashboardSessions.createLinkCode(me.id, me.defaultTeamId);
    const { page } = await newWindow(browser, env.server.url);
    await page.goto(`${env.server.url}/dashboard/stores#code=${code}`);
    const badge = page.locator(`[data-store="${storeId}"] .badge`);
    await badge.filter({ hasText: 'initializing' }).waitFor();
    await screenshot(page, 'stores-initializing');
    // Marks this page load: a reload would lose it.
    await page.evaluate(() => ((window as any).sameLoad = true));
    await finish(storeId);
    await badge.filter({ hasText: 'available' }).waitFor({ timeout: 120_000 });
    assert.equal(await page.evaluate(() => (window as any).sameLoad), true, 'the list updated without a reload');

    env.partner.faults.provision = { pending: 'forever', times: 1 };
    assert.equal((await env.createStore('dash-pending-2')).status, 'initializing');
    const secondId = await idOf('dash-pending-2');
    await page.goto(`${env.server.url}/dashboard/stores/${secondId}`);
    await page.getByText('The store is being made; this page updates by itself.').waitFor();
    await page.evaluate(() => ((window as any).sameLoad = true));
    await finish(secondId);
    await page.locator('.badge', { hasText: 'available' }).waitFor({ timeout: 120_000 });
    await page.getByText('The store is being made').waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => (window as any).sameLoad), true, 'the page updated without a reload');
  });
});
