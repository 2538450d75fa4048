/**
 * The generated form's accessibility and weight in real Chromium (issue 15, "How it is built":
 * labels, keyboard, focus, contrast, a phone-sized window, initial JavaScript at most 150 KB
 * gzipped), against a Storehouse with the test catalog test/fixtures/every-control.yaml, whose
 * product has every ui:control. Each test opens the create page in a window of its own.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { ensureDashboardBuilt, launchChromium, newWindow, screenshot } from './dashboard-harness.ts';
import { BACKENDS, ROOT, startServer, type TestServer } from './helpers.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/every-control.yaml');
const ASSETS = path.join(ROOT, 'dist', 'dashboard');
/** The issue's budget for the JavaScript a first visit loads. */
const JS_BUDGET = 150 * 1024;

describe('the generated form: accessibility and weight in Chromium', () => {
  let server: TestServer;
  let browser: Browser;
  let createPath: string;

  before(async () => {
    await ensureDashboardBuilt();
    server = await startServer(BACKENDS.at(-1)!, { catalogPath: FIXTURE });
    const [configuration] = await server.sdk().integrations.getConfigurations({ view: 'account' });
    createPath = `/dashboard/create/${configuration!.id}/every-control`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A signed-in window on the create page, its form shown; the scripts it loaded on the way. */
  async function openCreatePage(options: { phone?: boolean; dark?: boolean } = {}) {
    const { context, page } = await newWindow(browser, server.url, options.phone);
    // tsx compiles the functions given to page.evaluate with esbuild's keepNames, which calls __name.
    await context.addInitScript('globalThis.__name = (f) => f');
    if (options.dark) await page.emulateMedia({ colorScheme: 'dark' });
    const scripts: string[] = [];
    page.on('request', (request) => {
      if (request.resourceType() === 'script') scripts.push(new URL(request.url()).pathname);
    });
    await page.goto(server.url + createPath);
    await page.getByLabel('Access token').fill(server.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: /Create a Every Control store/ }).waitFor();
    await page.locator('.mf-field[data-key="tier"]').waitFor();
    return { context, page, scripts };
  }

  const field = (page: Page, key: string) => page.locator(`.mf-field[data-key="${key}"]`);

  test('the JavaScript a first visit loads, and all the built JavaScript, is at most 150 KB gzipped', async () => {
    const { context, scripts } = await openCreatePage();
    await context.close();
    assert.ok(scripts.length > 0, 'the page loaded its scripts');
    const gzipped = (files: string[]) =>
      files.reduce((sum, file) => sum + zlib.gzipSync(fs.readFileSync(path.join(ASSETS, file.replace(/^\/dashboard\//, '')))).length, 0);
    const initial = gzipped(scripts);
    const all = gzipped(
      fs
        .readdirSync(path.join(ASSETS, 'assets'))
        .filter((name) => name.endsWith('.js'))
        .map((name) => `assets/${name}`),
    );
    console.log(`# dashboard JavaScript gzipped: ${initial} bytes loaded by the create page, ${all} bytes built`);
    assert.ok(initial <= JS_BUDGET, `initial JavaScript is ${initial} bytes gzipped, over ${JS_BUDGET}`);
    assert.ok(all <= JS_BUDGET, `the built JavaScript is ${all} bytes gzipped, over ${JS_BUDGET}`);
  });

  test('every control of the form has an accessible name', async () => {
    const { context, page } = await openCreatePage();
    // Pro shows the read replicas, backups the backup window: every control the schema has on create.
    await page.getByRole('radio', { name: 'Pro', exact: true }).check();
    await page.getByRole('switch', { name: 'Daily backups' }).check();
    await field(page, 'replicaRegions').waitFor();
    await field(page, 'backupWindow').waitFor();
    const form = page.locator('.mf');
    const tree = await form.ariaSnapshot();
    const roles = /^\s*- (textbox|combobox|checkbox|radio|switch|slider|spinbutton|group|listbox)\b(.*)$/;
    const controls = tree
      .split('\n')
      .map((line) => roles.exec(line))
      .filter((match) => match !== null);
    const unnamed = controls.filter((match) => !/^\s*"[^"]+"/.test(match[2]!));
    assert.deepEqual(
      unnamed.map((match) => match[0]),
      [],
      `unnamed controls in:\n${tree}`,
    );
    // The accessibility tree has every control the page has (none left out of it, none without a role).
    const inputs = await form.locator('input, select').count();
    const named = controls.filter((match) => match[1] !== 'group').length;
    assert.equal(named, inputs, `one named control per input or select:\n${tree}`);
    await context.close();
  });

  test('Tab visits every enabled control once, in the form order, each with a visible focus ring', async () => {
    const { context, page } = await openCreatePage();
    // A paid plan and the Pro tier unlock the slider, encryption, time series and the read replicas.
    await page.getByRole('radio', { name: /Pro/ }).and(page.locator('[name="plan"]')).check();
    await page.getByRole('radio', { name: 'Pro', exact: true }).check();
    await page.getByRole('slider', { name: 'Throughput' }).and(page.locator(':enabled')).waitFor();
    await field(page, 'replicaRegions').waitFor();
    // What the keyboard should reach: enabled inputs and selects in document order, a radio group once (at its checked radio).
    const expected = await page.evaluate(() => {
      const seen = new Set<string>();
      return [...document.querySelectorAll<HTMLInputElement | HTMLSelectElement>('.mf input, .mf select')]
        .filter((control) => !control.disabled)
        .filter((control) => {
          if (!(control instanceof HTMLInputElement) || control.type !== 'radio') return true;
          const group = [...document.querySelectorAll<HTMLInputElement>(`input[name="${CSS.escape(control.name)}"]:enabled`)];
          const stop = group.find((radio) => radio.checked) ?? group[0];
          if (seen.has(control.name) || stop !== control) return false;
          seen.add(control.name);
          return true;
        })
        .map((control) => control.id);
    });
    assert.ok(expected.length >= 8, `the form has its enabled controls: ${expected.join(', ')}`);

    await page.getByLabel('Name', { exact: true }).focus();
    const visited: string[] = [];
    for (let presses = 0; presses < 60; presses++) {
      await page.keyboard.press('Tab');
      const stop = await page.evaluate(() => {
        const active = document.activeElement as HTMLElement;
        const style = getComputedStyle(active);
        return {
          id: active.id,
          inForm: active.closest('.mf') !== null,
          focusVisible: active.matches(':focus-visible'),
          outline: `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`,
          width: Number.parseFloat(style.outlineWidth),
          styleName: style.outlineStyle,
        };
      });
      if (!stop.inForm) {
        if (visited.length > 0) break;
        continue;
      }
      visited.push(stop.id);
      assert.ok(stop.focusVisible, `${stop.id} matches :focus-visible`);
      assert.ok(stop.styleName !== 'none' && stop.width >= 2, `${stop.id} has a visible focus ring: ${stop.outline}`);
    }
    assert.deepEqual(visited, expected);
    for (const kind of ['range', 'checkbox', 'radio', 'text']) {
      assert.ok(
        await page.evaluate(({ ids, type }) => ids.some((id) => (document.getElementById(id) as HTMLInputElement).type === type), {
          ids: visited,
          type: kind,
        }),
        `Tab reached a ${kind} control`,
      );
    }
    await context.close();
  });

  test('each kind of control works from the keyboard alone, and Enter sends what it chose', async () => {
    const { context, page } = await openCreatePage();
    const focused = () => page.evaluate(() => document.activeElement?.id ?? '');

    // Radio buttons: arrows move the choice.
    await page.getByRole('radio', { name: /^Hobby/ }).focus();
    await page.keyboard.press('ArrowDown');
    assert.ok(await page.getByRole('radio', { name: 'Pro', exact: true }).isChecked());
    // Text of a number: typed.
    const size = page.getByRole('textbox', { name: 'Size' });
    await page.keyboard.press('Tab');
    assert.equal(await focused(), await size.getAttribute('id'));
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('24');
    // A select: the arrow picks the next option.
    await page.keyboard.press('Tab');
    const region = page.getByRole('combobox', { name: 'Primary region' });
    assert.equal(await focused(), await region.getAttribute('id'));
    await page.keyboard.press('ArrowDown');
    assert.equal(await region.inputValue(), 'fra1');
    // A toggle: Space.
    await page.keyboard.press('Tab');
    assert.equal(await focused(), await page.getByRole('switch', { name: 'Daily backups' }).getAttribute('id'));
    await page.keyboard.press('Space');
    assert.ok(await page.getByRole('switch', { name: 'Daily backups' }).isChecked());
    await page.getByRole('combobox', { name: 'Backup window' }).waitFor();
    // A checkbox of a multi-select: Space.
    await page.getByRole('checkbox', { name: 'Search' }).focus();
    await page.keyboard.press('Space');
    assert.ok(await page.getByRole('checkbox', { name: 'Search' }).isChecked());

    // The slider (paid plans only): arrows, Home and End move over its steps.
    await page.getByRole('radio', { name: /Pro/ }).and(page.locator('[name="plan"]')).check();
    const slider = page.getByRole('slider', { name: 'Throughput' });
    await slider.and(page.locator(':enabled')).focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await slider.getAttribute('aria-valuetext'), '1000');
    await page.keyboard.press('End');
    assert.equal(await slider.getAttribute('aria-valuetext'), '10000');
    await page.keyboard.press('Home');
    assert.equal(await slider.getAttribute('aria-valuetext'), '100');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await slider.getAttribute('aria-valuetext'), '100', 'the first step is the end');
    await page.getByRole('radio', { name: /Free/ }).and(page.locator('[name="plan"]')).check();

    // Enter in a text box sends the form.
    await page.getByLabel('Name', { exact: true }).fill('keyboard-store');
    const sent = page.waitForRequest(
      (request) => request.method() === 'POST' && new URL(request.url()).pathname === '/v1/storage/stores/integration/direct',
    );
    await page.getByRole('textbox', { name: 'Key prefix' }).focus();
    await page.keyboard.type('kb-');
    await page.keyboard.press('Enter');
    const metadata = (await sent).postDataJSON().metadata;
    assert.deepEqual(metadata, {
      tier: 'pro',
      size: 24,
      region: 'fra1',
      backups: true,
      encryption: true,
      features: ['json', 'search'],
      // Shown on Pro and left empty: sent as the empty choice it shows.
      replicaRegions: [],
      country: 'US',
      keyPrefix: 'kb-',
    });
    await page.waitForURL(/\/dashboard\/stores\/[^/]+$/);
    await context.close();
  });

  test("the schema's bounds are shown, checked before sending and announced beside the field; the server's errors still are", async () => {
    const { context, page } = await openCreatePage();
    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && new URL(request.url()).pathname === '/v1/storage/stores/integration/direct')
        posts.push(request.url());
    });
    const size = page.getByRole('textbox', { name: 'Size' });
    const prefix = page.getByRole('textbox', { name: 'Key prefix' });
    await field(page, 'size').getByText('A number, at least 1 and at most 64.').waitFor();
    await field(page, 'keyPrefix').getByText('2 to 20 characters.').waitFor();

    /** The field's error, once it shows: its text, tied to the control by aria-invalid and aria-describedby. */
    const announced = async (key: string, control: typeof size) => {
      const error = field(page, key).locator('.mf-error');
      await error.waitFor();
      assert.equal(await error.getAttribute('role'), 'alert');
      assert.equal(await control.getAttribute('aria-invalid'), 'true');
      assert.ok((await control.getAttribute('aria-describedby'))!.split(' ').includes((await error.getAttribute('id'))!));
      return (await error.textContent())!;
    };

    // A mistyped number is its message, not the default sent in its place.
    await size.focus();
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('1e');
    await prefix.focus();
    assert.equal(await announced('size', size), 'must be number');
    // Too short and not the pattern: the server's own words, shown once the field is left.
    await page.keyboard.type('A');
    assert.equal(await field(page, 'keyPrefix').locator('.mf-error').count(), 0, 'no message while typing the first character');
    await page.getByLabel('Name', { exact: true }).fill('bounded-store');
    await page.getByRole('button', { name: 'Create store' }).click();
    assert.equal(await announced('keyPrefix', prefix), 'must NOT have fewer than 2 characters');
    assert.equal(await page.evaluate(() => document.activeElement?.closest('.mf-field')?.getAttribute('data-key')), 'size');
    await prefix.fill('A1');
    assert.equal(await announced('keyPrefix', prefix), 'must match pattern "^[a-z][a-z0-9-]*$"');
    await size.fill('65');
    assert.equal(await announced('size', size), 'must be <= 64');
    await page.getByRole('button', { name: 'Create store' }).click();
    await screenshot(page, 'create-store-bounds');
    assert.deepEqual(posts, [], 'nothing was sent while a value breaks the schema');

    // The server's own validation_error (here for a body changed on its way, as a client with an
    // older copy of the schema would send it) lands beside its field, announced the same way.
    await prefix.fill('a1');
    await size.fill('32');
    await page.route(
      (url) => url.pathname === '/v1/storage/stores/integration/direct',
      async (route) => {
        const body = route.request().postDataJSON();
        await route.continue({ postData: JSON.stringify({ ...body, metadata: { ...body.metadata, size: 100 } }) });
      },
    );
    await page.getByRole('button', { name: 'Create store' }).click();
    assert.equal(await announced('size', size), 'must be <= 64');
    assert.equal(posts.length, 1);
    assert.equal(await field(page, 'keyPrefix').locator('.mf-error').count(), 0);
    await context.close();
  });

  /**
   * Every text on the page against what is behind it, as WCAG 2 computes contrast: the text's
   * colour (with the opacity of it and its ancestors) over the first opaque background behind it.
   * Placeholders and control borders too. Large text (24px, or 18.66px bold) needs 3:1, the rest 4.5:1.
   */
  async function contrastFailures(page: Page) {
    return page.evaluate(() => {
      const parse = (colour: string): number[] => {
        const match = /rgba?\(([^)]+)\)/.exec(colour);
        if (!match) throw new Error(`a colour the test does not read: ${colour}`);
        const [r, g, b, a = '1'] = match[1]!.split(/[\s,/]+/).filter(Boolean);
        return [Number(r), Number(g), Number(b), Number(a)];
      };
      const over = (top: number[], bottom: number[]) => top.slice(0, 3).map((c, i) => c * top[3]! + bottom[i]! * (1 - top[3]!));
      const luminance = (rgb: number[]) => {
        const [r, g, b] = rgb.map((c) => {
          const s = c / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
      };
      const ratio = (a: number[], b: number[]) => {
        const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
        return (x! + 0.05) / (y! + 0.05);
      };
      const background = (element: Element): number[] => {
        const chain: Element[] = [];
        for (let e: Element | null = element; e; e = e.parentElement) chain.push(e);
        // Under everything, the canvas: white, or Chromium's dark canvas in the dark scheme.
        let colour = matchMedia('(prefers-color-scheme: dark)').matches ? [18, 18, 18] : [255, 255, 255];
        for (const e of chain.reverse()) colour = over(parse(getComputedStyle(e).backgroundColor), colour);
        return colour;
      };
      const opacity = (element: Element) => {
        let product = 1;
        for (let e: Element | null = element; e; e = e.parentElement) product *= Number(getComputedStyle(e).opacity);
        return product;
      };
      const describe = (e: Element) => {
        const key = e.closest('.mf-field')?.getAttribute('data-key');
        return `${e.tagName.toLowerCase()}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''}${key ? ` [${key}]` : ''}`;
      };
      const failures: { what: string; text: string; ratio: number; needed: number; inForm: boolean }[] = [];
      const checked = new Set<string>();
      const check = (e: Element, colour: string, text: string, large: boolean, alpha = 1) => {
        checked.add(e.tagName === 'BUTTON' ? 'button' : (String(e.className).split(' ')[0] ?? ''));
        const fg = parse(colour);
        const bg = background(e);
        const shown = over([fg[0]!, fg[1]!, fg[2]!, fg[3]! * alpha * opacity(e)], bg);
        const needed = large ? 3 : 4.5;
        const r = ratio(shown, bg);
        if (r < needed)
          failures.push({
            what: describe(e),
            text: text.slice(0, 40),
            ratio: Math.round(r * 100) / 100,
            needed,
            inForm: e.closest('.mf') !== null,
          });
      };
      for (const e of document.querySelectorAll('body *')) {
        if (e.getClientRects().length === 0 || getComputedStyle(e).visibility === 'hidden') continue;
        const style = getComputedStyle(e);
        const size = Number.parseFloat(style.fontSize);
        const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
        const own = [...e.childNodes]
          .filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent!.trim())
          .map((n) => n.textContent!.trim());
        const inert = (e as HTMLInputElement).disabled === true;
        if (own.length > 0 && !inert) check(e, style.color, own.join(' '), large);
        if (e instanceof HTMLInputElement && ['text', 'number', ''].includes(e.type) && !e.disabled) {
          if (e.value) check(e, style.color, e.value, large);
          else if (e.placeholder) check(e, getComputedStyle(e, '::placeholder').color, e.placeholder, large);
        }
        // A text box's or select's edge tells where it is: WCAG 1.4.11 asks 3:1 of it against its surroundings.
        if ((e instanceof HTMLInputElement && e.type === 'text') || e instanceof HTMLSelectElement) {
          if (!e.disabled && style.borderTopStyle !== 'none') {
            const edge = over(parse(style.borderTopColor), background(e.parentElement!));
            const r = ratio(edge, background(e.parentElement!));
            if (r < 3)
              failures.push({
                what: `${describe(e)} border`,
                text: '',
                ratio: Math.round(r * 100) / 100,
                needed: 3,
                inForm: e.closest('.mf') !== null,
              });
          }
        }
      }
      return { failures, checked: [...checked] };
    });
  }

  for (const dark of [false, true]) {
    test(`text and controls of the form have enough contrast (${dark ? 'dark' : 'light'} scheme)`, async (t) => {
      const { context, page } = await openCreatePage({ dark });
      await page.getByRole('radio', { name: 'Pro', exact: true }).check();
      await page.getByRole('switch', { name: 'Daily backups' }).check();
      await page.getByRole('textbox', { name: 'Size' }).fill('100');
      await page.getByRole('textbox', { name: 'Key prefix' }).fill('A');
      await page.getByRole('textbox', { name: 'Git namespace' }).focus();
      await field(page, 'keyPrefix').locator('.mf-error').waitFor();
      await screenshot(page, `create-store-contrast-${dark ? 'dark' : 'light'}`);
      const { failures, checked } = await contrastFailures(page);
      // The form's texts and the page's button were among those measured.
      for (const kind of ['mf-label', 'mf-description', 'mf-hint', 'mf-error', 'mf-value', 'mf-input', 'mf-required', 'button']) {
        assert.ok(checked.includes(kind), `${kind} was measured (measured: ${checked.join(' ')})`);
      }
      // The page's own styles (dashboard/src/styles.css) are not the form's: reported, not failed on here.
      for (const failure of failures.filter((f) => !f.inForm)) t.diagnostic(`page contrast: ${JSON.stringify(failure)}`);
      assert.deepEqual(
        failures.filter((f) => f.inForm),
        [],
      );
      await context.close();
    });
  }

  test('the create form fits a 390×844 window without scrolling sideways, with every field and its messages shown', async () => {
    const { context, page } = await openCreatePage({ phone: true });
    await page.getByRole('radio', { name: 'Pro', exact: true }).check();
    await page.getByRole('switch', { name: 'Daily backups' }).check();
    await page.getByRole('textbox', { name: 'Key prefix' }).fill('A1');
    await page.getByRole('textbox', { name: 'Git namespace' }).focus();
    await field(page, 'keyPrefix').locator('.mf-error').waitFor();
    await page.getByRole('radio', { name: /Pro/ }).and(page.locator('[name="plan"]')).check();
    await screenshot(page, 'create-store-phone-every-control');
    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    assert.ok(widths.scroll <= widths.inner, `the page is ${widths.scroll} px wide in a ${widths.inner} px window`);
    await context.close();
  });
});
