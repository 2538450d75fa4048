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
import { eventually } from './helpers.ts';
import {
  apiCall,
  cspViolations,
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

/**
 * Nothing a page's script can read keeps the sign-in's secrets: not the address or its history
 * entry, not localStorage or sessionStorage, not document.cookie (the session cookie is HttpOnly).
 */
async function assertNothingSecretKept(page: Page, secrets: string[]): Promise<void> {
  const readable = await page.evaluate(() =>
    JSON.stringify({
      url: location.href,
      state: history.state,
      local: { ...localStorage },
      session: { ...sessionStorage },
      cookie: document.cookie,
    }),
  );
  assert.ok(!readable.includes('storehouse_session'), `the session cookie is not readable: ${readable}`);
  for (const secret of secrets) {
    assert.ok(secret.length >= 20, 'a real secret to look for');
    assert.ok(!readable.includes(secret), `a sign-in secret is kept where scripts read it: ${readable}`);
  }
}

/** The owner's team (the bootstrapped my-team). */
let teamIdOf: (() => Promise<string>) | undefined;
const teamId = () => teamIdOf!();

/** Every form control on the page has a label (a <label>, aria-label or aria-labelledby), and every button a name. */
async function assertLabelled(page: Page, what: string) {
  const unnamed = await page.locator('input, select, textarea, button').evaluateAll((controls) =>
    controls
      .filter((control) => {
        const element = control as HTMLInputElement;
        if (element.type === 'hidden') return false;
        const named = (element.labels?.length ?? 0) > 0 || element.getAttribute('aria-label') || element.getAttribute('aria-labelledby');
        return !named && !(element.tagName === 'BUTTON' && element.textContent?.trim());
      })
      .map((control) => control.outerHTML.slice(0, 120)),
  );
  assert.deepEqual(unnamed, [], `unlabelled controls on ${what}`);
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
    teamIdOf = async () => ((await (await apiCall(server, '/v2/user', { token: server.ownerToken })).json()) as any).user.defaultTeamId;
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
    await assertNothingSecretKept(owner, [new URL(server.link).hash.slice('#code='.length)]);
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
    await assertLabelled(owner, 'the create form');
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
    await assertLabelled(owner, 'the store page');
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
  it('asks a paid plan for a payment method, takes a new test card, and makes the store', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-paid');
    await owner.getByRole('radio', { name: /Pro/ }).check();
    await owner.getByText('This plan needs a payment method and the team has none yet').waitFor();
    await owner.getByLabel('Card number').fill('4242 4242 4242 4242');
    await owner.getByRole('button', { name: 'Add card' }).click();
    await owner.getByRole('radio', { name: /ending in 4242/ }).waitFor();
    assert.equal(await owner.getByRole('radio', { name: /ending in 4242/ }).isChecked(), true, 'the new card is chosen');
    await screenshot(owner, 'create-store-paid');
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    await owner.getByRole('heading', { name: 'dash-paid' }).waitFor();
    const [store] = await storesNamed(server, 'dash-paid');
    assert.equal(store.billingPlan.name, 'Pro');
  });

  it('shows a declined card’s refusal and makes nothing', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-declined');
    await owner.getByRole('radio', { name: /Pro/ }).check();
    await owner.getByRole('button', { name: 'Add a test card' }).click();
    await owner.getByLabel('Card number').fill('4000000000000002');
    await owner.getByRole('button', { name: 'Add card' }).click();
    await owner.getByRole('radio', { name: /ending in 0002/ }).waitFor();
    assert.equal(await owner.getByRole('radio', { name: /ending in 0002/ }).isChecked(), true);
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner
      .getByRole('alert')
      .filter({ hasText: /declined/ })
      .waitFor();
    await screenshot(owner, 'create-store-declined');
    assert.match(owner.url(), /\/dashboard\/create\//, 'the form stays, to choose another card');
    assert.deepEqual(await storesNamed(server, 'dash-declined'), []);
  });

  it('asks a prepayment plan for an amount within its bounds', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-prepaid');
    await owner.getByRole('radio', { name: /Pay as you go/ }).check();
    await owner.getByText('At least $5.00, at most $500.00').waitFor();
    const amount = owner.getByLabel('Prepayment amount (USD)');
    await amount.fill('600');
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner
      .locator('#prepayment-error')
      .filter({ hasText: /at most/ })
      .waitFor();
    assert.equal(await amount.getAttribute('aria-invalid'), 'true');
    assert.deepEqual(await storesNamed(server, 'dash-prepaid'), []);
    await amount.fill('25');
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    const [store] = await storesNamed(server, 'dash-prepaid');
    assert.equal(store.billingPlan.type, 'prepayment');
    assert.equal(store.prepaidBalanceCents, 2500);
  });

  it('puts the server’s validation errors beside their fields', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-invalid');
    await owner.getByRole('radio', { name: /Hobby/ }).check();
    const limit = owner.getByLabel('Connection limit');
    await limit.fill('500');
    await owner.getByRole('button', { name: 'Create store' }).click();
    // The form checks the schema's bounds itself before sending (in the server's words); the
    // server's own validation_error beside a field is the prepayment amount's, above.
    await eventually('the connection limit marked invalid', async () => (await limit.getAttribute('aria-invalid')) === 'true');
    // The message is tied to its input (aria-describedby), next to it in the form.
    const described = (await limit.getAttribute('aria-describedby'))?.split(/\s+/) ?? [];
    const notes = await Promise.all(described.map((id) => owner.locator(`[id="${id}"]`).textContent()));
    assert.ok(
      notes.some((note) => /100/.test(note ?? '')),
      `a note of the field names its maximum: ${JSON.stringify(notes)}`,
    );
    await screenshot(owner, 'create-store-invalid');
    // An empty name: the server's message beside the name field.
    await owner.getByLabel('Name').fill('');
    await limit.fill('5');
    await owner.getByRole('button', { name: 'Create store' }).click();
    await owner.locator('#store-name-error').waitFor();
    assert.equal(await owner.getByLabel('Name').getAttribute('aria-describedby'), 'store-name-error');
    assert.deepEqual(await storesNamed(server, 'dash-invalid'), []);
    // The same form on a phone-sized window: one column, nothing wider than the window.
    await owner.setViewportSize({ width: 390, height: 844 });
    try {
      assert.equal(await owner.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'the form fits 390 px');
      await screenshot(owner, 'create-store-phone');
    } finally {
      await owner.setViewportSize({ width: 1280, height: 720 });
    }
  });

  it('makes one store of a form sent twice at once (its Idempotency-Key)', async () => {
    await openPostgresForm(owner, server);
    await owner.getByLabel('Name').fill('dash-double');
    await owner.getByRole('radio', { name: /Hobby/ }).check();
    const creating = (request: { method(): string; url(): string }) =>
      request.method() === 'POST' && request.url().includes('/v1/storage/stores/integration/direct');
    let creates = 0;
    const count = (request: { method(): string; url(): string }) => {
      if (creating(request)) creates++;
    };
    owner.on('request', count);
    const sent = owner.waitForRequest(creating);
    // Both in one task: the second goes before the page can disable the button; the page sends
    // once while a send is under way.
    await owner.locator('form.create').evaluate((form) => {
      (form as HTMLFormElement).requestSubmit();
      (form as HTMLFormElement).requestSubmit();
    });
    await owner.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    owner.off('request', count);
    assert.equal(creates, 1, 'the form was sent once');
    // The same request again (a retry after a lost answer), as the page sent it: its
    // Idempotency-Key gets the store made the first time, not a second one.
    const first = await sent;
    const headers = first.headers();
    assert.match(headers['idempotency-key'] ?? '', /^[0-9a-f-]{36}$/);
    const again = await owner.evaluate(
      async ({ url, body, key, csrf }) => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-storehouse-csrf': csrf },
          body,
        });
        return { status: response.status, id: ((await response.json()) as { store?: { id: string } }).store?.id };
      },
      { url: first.url(), body: first.postData() ?? '', key: headers['idempotency-key']!, csrf: headers['x-storehouse-csrf'] ?? '' },
    );
    const stores = await storesNamed(server, 'dash-double');
    assert.equal(stores.length, 1);
    assert.deepEqual(again, { status: 200, id: stores[0].id });
  });

  it('shows projects, billing and the team to the owner', async () => {
    const nav = owner.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Projects' }).click();
    await owner.getByLabel('Project name').fill('dash-web');
    await owner.getByRole('button', { name: 'Create project' }).click();
    await owner.getByRole('heading', { name: 'dash-web' }).waitFor();
    await owner.getByLabel('Name', { exact: true }).fill('GREETING');
    await owner.getByLabel('Value').fill('hello');
    await owner.getByRole('button', { name: 'Add variable' }).click();
    await owner.getByRole('button', { name: 'Reveal GREETING' }).first().click();
    await owner.getByText('hello', { exact: true }).first().waitFor();
    await screenshot(owner, 'project');
    await nav.getByRole('link', { name: 'Billing' }).click();
    await owner.getByText('Visa ending in 4242').waitFor();
    await owner.getByRole('cell', { name: 'preauthorization' }).first().waitFor();
    await screenshot(owner, 'billing');
    await assertLabelled(owner, 'the billing page');
    await nav.getByRole('link', { name: 'Team' }).click();
    await owner.getByRole('cell', { name: 'store.created' }).first().waitFor();
    await owner.getByLabel('Action').fill('payment_method');
    await owner.getByRole('cell', { name: 'store.created' }).first().waitFor({ state: 'detached' });
    await owner.getByLabel('Action').fill('');
    await owner.getByLabel('Actor').fill('owner@storehouse.local');
    await owner.getByRole('cell', { name: 'store.created' }).first().waitFor();
    assert.ok((await owner.getByRole('cell', { name: 'owner@storehouse.local' }).count()) > 0, 'actors are shown by their email');
    await screenshot(owner, 'team');
  });

  it('connects a project (environments, prefix) and disconnects it, changes settings, and deletes after naming what goes', async () => {
    const nav = owner.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Stores' }).click();
    await owner.getByRole('link', { name: 'dash-double' }).click();
    await owner.locator('.badge', { hasText: 'available' }).waitFor({ timeout: 180_000 });
    const projectId = ((await (await apiCall(server, '/v9/projects', { token: server.ownerToken })).json()) as any).projects.find(
      (project: any) => project.name === 'dash-web',
    ).id;
    const envKeys = async () =>
      ((await (await apiCall(server, `/v10/projects/${projectId}/env`, { token: server.ownerToken })).json()) as any).envs.map(
        (env: any) => `${env.key}:${[env.target].flat().sort().join(',')}`,
      );
    const connect = async () => {
      await owner.getByLabel('Project', { exact: true }).selectOption({ label: 'dash-web' });
      await owner.getByRole('checkbox', { name: 'preview' }).uncheck();
      await owner.getByLabel('Variable prefix (optional)').fill('DB_');
      await owner.getByRole('button', { name: 'Connect', exact: true }).click();
      await owner.getByRole('button', { name: 'Disconnect dash-web' }).waitFor();
    };
    await connect();
    assert.ok((await envKeys()).includes('DB_POSTGRES_URL:development,production'), JSON.stringify(await envKeys()));
    await owner.getByRole('cell', { name: /DB_POSTGRES_URL/ }).waitFor();
    await screenshot(owner, 'store-connected');
    await owner.getByRole('button', { name: 'Disconnect dash-web' }).click();
    await owner.getByRole('button', { name: 'Disconnect dash-web' }).waitFor({ state: 'detached' });
    assert.ok(!(await envKeys()).some((key: string) => key.startsWith('DB_')), 'its variables went with it');

    await owner.getByLabel('Connection limit').fill('9');
    await owner.getByRole('button', { name: 'Save changes' }).click();
    await owner.getByText('Saved.').waitFor();
    assert.equal((await storesNamed(server, 'dash-double'))[0].metadata.connectionLimit, 9);
    // A change to a prepayment plan asks for its amount as the create form does, bounds and all.
    await owner.getByRole('radio', { name: /Pay as you go/ }).check();
    const settingsAmount = owner.getByLabel('Prepayment amount (USD)');
    await owner.getByText('At least $5.00, at most $500.00').waitFor();
    assert.equal(await settingsAmount.getAttribute('max'), '500.00');
    await owner.getByRole('radio', { name: /Hobby/ }).check();
    await settingsAmount.waitFor({ state: 'detached' });

    await connect();
    await owner.getByRole('button', { name: 'Delete this store' }).click();
    const dialog = owner.getByRole('dialog', { name: 'Delete dash-double?' });
    await dialog.waitFor();
    const text = (await dialog.textContent()) ?? '';
    assert.match(text, /dash-web/, 'the confirmation names the connected project');
    assert.match(text, /POSTGRES_URL/, 'and the secrets that go');
    await screenshot(owner, 'store-delete');
    await dialog.getByRole('button', { name: 'Delete dash-double' }).click();
    await owner.waitForURL(/\/dashboard\/stores$/);
    await eventually('the store being gone', async () => (await storesNamed(server, 'dash-double')).length === 0, 120_000);
  });

  it('shows a viewer no write controls, on a phone-sized window too', async () => {
    await server.cli('members', 'add', 'my-team', 'viewer@example.com', '--role', 'VIEWER');
    const created = await server.cli('tokens', 'create', 'viewer@example.com', '--team', 'my-team');
    const token = created.trim().split('\n').at(-1)!;
    const { page, context } = await newWindow(browser, server.url, true);
    await page.goto(`${server.url}/dashboard/`);
    // By keyboard: the token field, then Enter.
    await page.getByLabel('Access token').fill(token);
    await page.getByLabel('Access token').press('Enter');
    await page.getByRole('heading', { name: 'Marketplace' }).waitFor();
    await assertNothingSecretKept(page, [token]);
    await page.keyboard.press('Tab');
    assert.equal(
      await page.evaluate(() => document.activeElement?.textContent),
      'Skip to content',
      'the first Tab offers to skip to the content',
    );
    await page.getByText('$20.00/month', { exact: false }).first().waitFor({ state: 'attached' });
    assert.equal(await page.getByRole('link', { name: /^Create a/ }).count(), 0, 'no create links');
    assert.equal(await page.getByRole('link', { name: 'Billing' }).count(), 0, 'no billing for a viewer');
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.equal(await fits(), true, 'the marketplace fits a 390 px window');
    await screenshot(page, 'marketplace-phone');
    await page.getByRole('link', { name: 'Stores' }).click();
    await page.getByRole('link', { name: 'dash-free' }).click();
    await page.getByRole('heading', { name: 'dash-free' }).waitFor();
    await page.getByRole('heading', { name: 'Connected projects' }).waitFor();
    assert.equal(await page.locator('main button, main input, main select, main textarea').count(), 0, 'no controls on the store page');
    assert.equal(await fits(), true, 'the store page fits a 390 px window');
    await screenshot(page, 'store-viewer-phone');
    // What a viewer may not do, the API refuses too: its message is shown, not a blank page.
    await page.goto(`${server.url}/dashboard/billing`);
    await page.getByText('Only the team').waitFor();
    // A refusal from the API is its message on the page, never a blank one.
    await page.goto(`${server.url}/dashboard/stores/store_nothing_here`);
    await page
      .getByRole('alert')
      .filter({ hasText: /Cannot load the store.*store_nothing_here/ })
      .waitFor();
    await screenshot(page, 'store-not-found-phone');
    // The Team page: the members without role controls, and no audit log (the API keeps it for owners).
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Team' }).click();
    await page.getByRole('rowheader', { name: /viewer@example\.com/ }).waitFor();
    await page.getByText("The audit log is for the team's owners.").waitFor();
    assert.equal(await page.getByRole('alert').count(), 0, 'no refusal shown: the page asks for nothing the viewer may not read');
    assert.equal(await page.locator('main button, main input, main select, main textarea').count(), 0, 'no controls on the team page');
    await context.close();
  });

  it("manages the team's members and the owner's own tokens on the Team page", async () => {
    await owner.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Team' }).click();
    const members = async () =>
      ((await (await apiCall(server, `/v3/teams/${await teamId()}/members`, { token: server.ownerToken })).json()) as any).members;
    await owner.getByLabel('Role of viewer@example.com').selectOption('DEVELOPER');
    await eventually(
      'the role change',
      async () => (await members()).find((m: any) => m.email === 'viewer@example.com')?.role === 'DEVELOPER',
    );
    await owner.getByLabel('Token name').fill('dash-cli');
    await owner.getByRole('button', { name: 'Create token' }).click();
    const value = ((await owner.locator('[data-new-token]').textContent()) ?? '').trim();
    assert.match(value, /^sh_\w+$/);
    assert.equal((await apiCall(server, '/v2/user', { token: value })).status, 200, 'the new token works');
    await screenshot(owner, 'team-tokens');
    await assertLabelled(owner, 'the team page');
    await owner.reload();
    await owner.getByRole('button', { name: 'Revoke dash-cli' }).waitFor();
    assert.equal(await owner.locator('[data-new-token]').count(), 0, 'its value is shown once only');
    await owner.getByRole('button', { name: 'Revoke dash-cli' }).click();
    await owner.getByRole('button', { name: 'Revoke dash-cli' }).waitFor({ state: 'detached' });
    assert.equal((await apiCall(server, '/v2/user', { token: value })).status, 401, 'the revoked token is refused');
    await owner.getByLabel('Role of viewer@example.com').selectOption('VIEWER');
    await eventually(
      'the role change back',
      async () => (await members()).find((m: any) => m.email === 'viewer@example.com')?.role === 'VIEWER',
    );
  });

  it('switches teams: the pages then act on the chosen one (?teamId=)', async () => {
    await server.cli('teams', 'create', 'dash-second', '--name', 'Second Team');
    await server.cli('members', 'add', 'dash-second', 'owner@storehouse.local', '--role', 'OWNER');
    await owner.goto(`${server.url}/dashboard/stores`);
    await owner.getByRole('link', { name: 'dash-free' }).waitFor();
    const storeLists: string[] = [];
    const seen = (request: { url(): string }) => {
      if (new URL(request.url()).pathname === '/v1/storage/stores')
        storeLists.push(new URL(request.url()).searchParams.get('teamId') ?? '');
    };
    owner.on('request', seen);
    await owner.getByLabel('Team', { exact: true }).selectOption({ label: 'Second Team' });
    await owner.getByText('No stores yet.').waitFor();
    const second = ((await (await apiCall(server, '/v2/teams', { token: server.ownerToken })).json()) as any).teams.find(
      (team: any) => team.slug === 'dash-second',
    ).id;
    assert.ok(storeLists.includes(second), `the list asked for the second team: ${JSON.stringify(storeLists)}`);
    await owner.getByLabel('Team', { exact: true }).selectOption({ label: 'My Team' });
    await owner.getByRole('link', { name: 'dash-free' }).waitFor();
    owner.off('request', seen);
  });

  it('signs out on the server: the old cookie is refused by the API', async () => {
    const printed = await server.cli('dashboard-link');
    const link = /(http:\/\/\S+\/dashboard\/#code=\w+)/.exec(printed)?.[1];
    assert.ok(link, printed);
    const { page, context } = await newWindow(browser, server.url);
    await page.goto(link);
    await page.getByRole('heading', { name: 'Marketplace' }).waitFor();
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'storehouse_session');
    assert.ok(session, JSON.stringify(cookies));
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    const cookie = `storehouse_session=${session.value}`;
    assert.equal((await apiCall(server, '/v2/user', { cookie })).status, 200, 'the cookie works before signing out');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Access token').waitFor();
    const after = await apiCall(server, '/v2/user', { cookie });
    assert.equal(after.status, 401);
    assert.equal(((await after.json()) as any).error.code, 'unauthorized');
    await context.close();
  });

  it('refuses a write with the session cookie but without its CSRF token, and changes nothing', async () => {
    const session = (await owner.context().cookies()).find((cookie) => cookie.name === 'storehouse_session')!;
    const cookie = `storehouse_session=${session.value}`;
    const { csrfToken } = (await (await apiCall(server, '/_storehouse/dashboard/session', { cookie })).json()) as any;
    const cards = async () =>
      ((await (await apiCall(server, '/_storehouse/payment-methods', { token: server.ownerToken })).json()) as any).paymentMethods.length;
    const before = await cards();
    const body = JSON.stringify({ cardNumber: '4242424242424242' });
    const refused = await apiCall(server, '/_storehouse/payment-methods', { method: 'POST', cookie, body });
    assert.equal(refused.status, 403);
    const error = ((await refused.json()) as any).error;
    assert.equal(error.code, 'forbidden');
    assert.match(error.message, /CSRF/);
    const wrong = await apiCall(server, '/_storehouse/payment-methods', { method: 'POST', cookie, csrf: `${csrfToken}x`, body });
    assert.equal(wrong.status, 403);
    assert.equal(await cards(), before, 'nothing was added');
    const accepted = await apiCall(server, '/_storehouse/payment-methods', { method: 'POST', cookie, csrf: csrfToken, body });
    assert.equal(accepted.status, 200, 'the same write with the token goes through');
    assert.equal(await cards(), before + 1);
    // A bearer token needs no CSRF token (no browser sends it by itself).
    const bearer = await apiCall(server, '/_storehouse/payment-methods', { method: 'POST', token: server.ownerToken, body });
    assert.equal(bearer.status, 200);
  });

  it('shows each of several installations of one integration as its own, with ids unique on the page', async () => {
    // The second team (made above) gets the integration twice: once, then --another.
    const first = /icfg_\w+/.exec(await server.cli('installations', 'create', 'dash-second', 'storehouse'))?.[0];
    const second = /icfg_\w+/.exec(await server.cli('installations', 'create', 'dash-second', 'storehouse', '--another'))?.[0];
    assert.ok(first && second && first !== second);
    await owner.goto(`${server.url}/dashboard/`);
    await owner.getByRole('heading', { name: 'Marketplace' }).waitFor();
    await owner.getByLabel('Team', { exact: true }).selectOption({ label: 'Second Team' });
    for (const id of [first, second]) await owner.getByRole('heading', { name: `Storehouse (installation ${id})` }).waitFor();
    assert.equal(await owner.getByRole('link', { name: 'Create a Postgres store' }).count(), 2);
    const duplicates = await owner.evaluate(() => {
      const ids = [...document.querySelectorAll('[id]')].map((element) => element.id);
      return ids.filter((id, i) => ids.indexOf(id) !== i);
    });
    assert.deepEqual(duplicates, [], 'element ids are unique (aria-labelledby names the right heading)');
    await owner.getByLabel('Team', { exact: true }).selectOption({ label: 'My Team' });
    await owner.getByRole('heading', { name: 'Storehouse', exact: true }).waitFor();
  });

  it('broke no rule of the pages’ Content-Security-Policy on any page it visited', () => {
    assert.deepEqual(cspViolations, []);
  });
});
