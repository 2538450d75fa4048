/**
 * The dashboard's generated form in real Chromium (issue 15): against a Storehouse started with
 * the test catalog test/fixtures/every-control.yaml, whose product has all twelve ui:control
 * variants and every kind of ui:hidden / ui:disabled / ui:read-only value, a signed-in owner
 * opens the create page, sees each control, drives them with the keyboard and the mouse while
 * the expressions show, hide, lock and unlock fields, gets the server's validation error beside
 * its field, and creates a store whose metadata is exactly what the form says.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ensureDashboardBuilt, launchChromium, newWindow, screenshot } from './dashboard-harness.ts';
import { BACKENDS, ROOT, startServer, type TestServer } from './helpers.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/every-control.yaml');

describe('the generated form in Chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    await ensureDashboardBuilt();
    // One backend is enough: the form talks to the public API, whichever database is behind it.
    // In process (not as npm start) because this server needs the test catalog.
    server = await startServer(BACKENDS.at(-1)!, { catalogPath: FIXTURE });
    const [configuration] = await server.sdk().integrations.getConfigurations({ view: 'account' });
    browser = await launchChromium();
    ({ page } = await newWindow(browser, server.url));
    // Signed in on the create page itself: the dashboard asks for sign-in on any of its pages.
    await page.goto(`${server.url}/dashboard/create/${configuration!.id}/every-control`);
    await page.getByLabel('Access token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('a form with every ui:control and expression kind renders and submits the right metadata', async () => {
    await page.getByRole('heading', { name: /Create a Every Control store/ }).waitFor();
    const field = (key: string) => page.locator(`.mf-field[data-key="${key}"]`);

    // Every control is there, named by its label or legend; hidden ones are not.
    await page.getByRole('radio', { name: /^Hobby/ }).waitFor();
    await page.getByRole('textbox', { name: 'Size' }).waitFor();
    await page.getByRole('combobox', { name: 'Primary region' }).waitFor();
    await page.getByRole('switch', { name: 'Daily backups' }).waitFor();
    await page.getByRole('switch', { name: 'Encryption at rest' }).waitFor();
    await page.getByRole('group', { name: 'Modules' }).waitFor();
    await page.getByRole('slider', { name: 'Throughput' }).waitFor();
    await page.getByRole('combobox', { name: 'Billing country' }).waitFor();
    await page.getByRole('textbox', { name: 'Key prefix' }).waitFor();
    await page.getByRole('textbox', { name: 'Custom domain' }).waitFor();
    await page.getByRole('textbox', { name: 'Git namespace' }).waitFor();
    for (const key of ['backupWindow', 'replicaRegions', 'internal']) assert.equal(await field(key).count(), 0, `${key} is hidden`);
    assert.equal(await page.getByRole('radio', { name: 'Scale', exact: true }).count(), 0, 'the scale tier needs 16 GB');

    // Locked by expressions and modes; the paid-only slider explains itself on the free plan.
    assert.ok(await page.getByRole('switch', { name: 'Encryption at rest' }).isDisabled(), 'locked on the hobby tier');
    assert.ok(await page.getByRole('checkbox', { name: 'Time series' }).isDisabled());
    assert.ok(await page.getByRole('combobox', { name: 'Billing country' }).isDisabled(), 'disabled on the create form');
    assert.ok(await page.getByRole('slider', { name: 'Throughput' }).isDisabled());
    await field('throughput').getByText('Available on paid plans').waitFor();
    await field('size').getByText('Up to 8 GB on this tier').waitFor();
    await field('size').locator('output', { hasText: '8 GB' }).waitFor();

    // The keyboard: arrows move the tier to Pro, which unlocks encryption and time series and shows the replicas.
    await page.getByRole('radio', { name: /^Hobby/ }).focus();
    await page.keyboard.press('ArrowDown');
    assert.ok(await page.getByRole('radio', { name: 'Pro', exact: true }).isChecked());
    const focusOutline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    assert.notEqual(focusOutline, 'none', 'keyboard focus is visible');
    await page.getByRole('switch', { name: 'Encryption at rest' }).and(page.locator(':enabled')).waitFor();
    await page.getByRole('switch', { name: 'Encryption at rest' }).press('Space');
    await page.getByRole('checkbox', { name: 'Time series' }).check();
    await page.getByRole('group', { name: 'Read replicas' }).waitFor();
    await page.getByRole('checkbox', { name: 'Tokyo' }).check();
    await field('size').getByText('Up to 64 GB on this tier').waitFor();

    // A number past the schema's maximum is refused before sending, in the server's words, beside
    // Size (the server's own validation_error beside a field: test/dashboard-a11y.test.ts).
    const size = page.getByRole('textbox', { name: 'Size' });
    await size.fill('100');
    await field('size').locator('output', { hasText: '100 GB' }).waitFor();
    await page.getByRole('radio', { name: 'Scale', exact: true }).waitFor(); // shown from 16 GB
    await page.getByLabel('Name', { exact: true }).fill('every-control-store');
    await page.getByRole('button', { name: 'Create store' }).click();
    const sizeError = field('size').locator('.mf-error');
    await sizeError.waitFor();
    assert.match((await sizeError.textContent())!, /64/);
    assert.equal(await size.getAttribute('aria-invalid'), 'true');
    assert.ok((await size.getAttribute('aria-describedby'))!.includes((await sizeError.getAttribute('id'))!));
    await size.fill('32');

    // A shown field that is hidden again is not sent: choose a backup window, then turn backups off.
    await page.getByRole('switch', { name: 'Daily backups' }).check();
    await page.getByRole('combobox', { name: 'Backup window' }).selectOption('night');
    await page.getByRole('switch', { name: 'Daily backups' }).uncheck();
    assert.equal(await field('backupWindow').count(), 0);

    // The slider moves over its steps once a paid plan is chosen; back on the free plan it is not sent.
    await page.getByRole('radio', { name: /Pro/ }).and(page.locator('[name="plan"]')).check();
    const slider = page.getByRole('slider', { name: 'Throughput' });
    await slider.and(page.locator(':enabled')).waitFor();
    await slider.focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await slider.getAttribute('aria-valuetext'), '1000');
    await field('throughput').locator('output', { hasText: '1000 queries/s' }).waitFor();
    await page.getByRole('radio', { name: /Free/ }).and(page.locator('[name="plan"]')).check();
    await slider.and(page.locator(':disabled')).waitFor();

    await page.getByRole('combobox', { name: 'Primary region' }).selectOption('syd1');
    await page.getByRole('textbox', { name: 'Key prefix' }).fill('app-');
    await page.getByRole('textbox', { name: 'Custom domain' }).fill('db.example.com');
    await page.getByRole('textbox', { name: 'Git namespace' }).fill('acme');

    await screenshot(page, 'create-store-every-control');
    const sent = page.waitForRequest(
      (request) => request.method() === 'POST' && new URL(request.url()).pathname === '/v1/storage/stores/integration/direct',
    );
    await page.getByRole('button', { name: 'Create store' }).click();
    const metadata = (await sent).postDataJSON().metadata;
    const expected = {
      tier: 'pro',
      size: 32,
      region: 'syd1',
      backups: false,
      encryption: false,
      features: ['json', 'timeseries'],
      replicaRegions: ['hnd1'],
      country: 'US',
      keyPrefix: 'app-',
      domain: 'db.example.com',
      gitNamespace: 'acme',
    };
    assert.deepEqual(metadata, expected);

    // The page moves to the new store, which holds that metadata and the schema's defaults for what was not sent.
    await page.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    const storeId = decodeURIComponent(new URL(page.url()).pathname.split('/').at(-1)!);
    const response = await server.request(`/v1/storage/stores/${storeId}`);
    assert.equal(response.status, 200);
    const { store } = (await response.json()) as { store: { metadata: Record<string, unknown> } };
    assert.deepEqual(store.metadata, { ...expected, throughput: [500], internal: 'kept' });

    // Its settings are the same form with the update rules: the key prefix is read-only, the
    // domain hidden, the country (disabled on create only) can change.
    const prefix = page.getByRole('textbox', { name: 'Key prefix' });
    await prefix.waitFor();
    assert.equal(await prefix.inputValue(), 'app-');
    assert.equal(await prefix.getAttribute('readonly'), '');
    assert.equal(await field('domain').count(), 0);
    assert.equal(await page.getByRole('textbox', { name: 'Size' }).inputValue(), '32');
    await page.getByRole('combobox', { name: 'Billing country' }).selectOption('DE');
    await page.getByRole('textbox', { name: 'Size' }).fill('40');
    const patch = page.waitForRequest(
      (request) => request.method() === 'PATCH' && new URL(request.url()).pathname === `/v1/storage/stores/${storeId}`,
    );
    await page.getByRole('button', { name: 'Save changes' }).click();
    const changed = { ...expected, size: 40, country: 'DE' } as Record<string, unknown>;
    delete changed.keyPrefix;
    delete changed.domain;
    assert.deepEqual((await patch).postDataJSON().metadata, changed);
    await page.getByText('Saved.').waitFor();
    await screenshot(page, 'store-settings-every-control');
    const saved = (await (await server.request(`/v1/storage/stores/${storeId}`)).json()) as { store: { metadata: unknown } };
    assert.deepEqual(saved.store.metadata, { ...store.metadata, size: 40, country: 'DE' });
  });
});
