/**
 * The dashboard's browser tests' pieces: a dashboard build (made once, reused while it is newer
 * than its sources), a Storehouse started as `npm start` starts it (its first-start output gives
 * the sign-in link), Debian's Chromium driven by playwright-core, and screenshots of each page.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { eventually, freshDataDir, freshPostgresDatabase, POSTGRES_URL, ROOT } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { type Proc, runFromSource, stop } from './spawned.ts';

export const CHROMIUM = process.env.STOREHOUSE_TEST_CHROMIUM || '/usr/bin/chromium';
const BUILT_INDEX = path.join(ROOT, 'dist', 'dashboard', 'index.html');
const LOCK = path.join(ROOT, 'dist', '.dashboard-build.lock');
export const SCREENSHOTS = path.join(ROOT, 'test-results', 'screenshots');

/** The newest modification time of anything the build reads. */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  walk(path.join(ROOT, 'dashboard'));
  for (const file of ['package-lock.json']) newest = Math.max(newest, fs.statSync(path.join(ROOT, file)).mtimeMs);
  return newest;
}

const fresh = () => fs.existsSync(BUILT_INDEX) && fs.statSync(BUILT_INDEX).mtimeMs >= newestSource();

/**
 * Builds the dashboard unless dist/dashboard is newer than its sources (the server run from
 * source serves dist/dashboard, as npm start does). Test files that run at once build it once:
 * the first takes a lock file, the others wait for it to go.
 */
export async function ensureDashboardBuilt(): Promise<void> {
  if (fresh()) return;
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      // A lock left by a killed run is stale after two minutes (a build takes seconds).
      const age = Date.now() - (fs.statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 120_000) fs.rmSync(LOCK, { force: true });
      await eventually('the other dashboard build to finish', async () => !fs.existsSync(LOCK), 180_000);
      if (fresh()) return;
    }
  }
  try {
    if (fresh()) return;
    const built = spawnSync(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'dashboard/vite.config.ts'],
      {
        cwd: ROOT,
        encoding: 'utf8',
      },
    );
    if (built.status !== 0) throw new Error(`vite build failed:\n${built.stdout}\n${built.stderr}`);
  } finally {
    fs.rmSync(LOCK, { force: true });
  }
}

export interface DashboardServer {
  url: string;
  /** The one-time sign-in link the first start printed. */
  link: string;
  /** The bootstrap owner's token (from the data dir's admin-token file). */
  ownerToken: string;
  /** The environment it runs with: the CLI run with it reaches the same state. */
  env: Record<string, string>;
  proc: Proc;
  /** Runs the `storehouse` CLI on the same state; its stdout. */
  cli(...args: string[]): Promise<string>;
  close(): Promise<void>;
}

/** Storehouse as `npm start` runs it, on state of its own: PostgreSQL when the tests have one, else the embedded default. */
export async function startDashboardServer(): Promise<DashboardServer> {
  const dataDir = await freshDataDir();
  const database = POSTGRES_URL ? await freshPostgresDatabase() : undefined;
  const port = await freePort();
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: String(port),
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_CATALOG: '',
    STOREHOUSE_BOOTSTRAP_TOKEN: '',
    STOREHOUSE_PUBLIC_URL: '',
    STOREHOUSE_OIDC_ISSUER: '',
    DATABASE_URL: database?.url ?? '',
    STOREHOUSE_POSTGRES_ADMIN_URL: database ? POSTGRES_URL! : '',
    STOREHOUSE_REDIS_ADMIN_URL: '',
    REDIS_URL: '',
    LOG_LEVEL: 'warn',
  };
  const proc = runFromSource([path.join('src', 'main.ts')], env);
  const url = `http://127.0.0.1:${port}`;
  let link = '';
  try {
    await eventually(
      'the first start printing the dashboard link',
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`Storehouse exited early: ${proc.output()}`);
        link = /(http:\/\/\S+\/dashboard\/#code=[A-Za-z0-9]+)/.exec(proc.stderr())?.[1] ?? '';
        return link !== '';
      },
      180_000,
    );
  } catch (error) {
    await stop(proc);
    throw error;
  }
  const ownerToken = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  return {
    url,
    link,
    ownerToken,
    env,
    proc,
    cli: async (...args) => {
      const cli = runFromSource([path.join('src', 'cli.ts'), ...args], env);
      const code = await cli.exit;
      if (code !== 0) throw new Error(`storehouse ${args.join(' ')} exited ${code}: ${cli.output()}`);
      return cli.stdout();
    },
    close: async () => {
      await stop(proc);
      await database?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchChromium(): Promise<Browser> {
  // Playwright's own message for a missing binary talks of `npx playwright install`, which cannot work here.
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `The dashboard's browser tests need Chromium at ${CHROMIUM}: install Debian's chromium package (.ci/run does: apt-get install chromium), or name another binary in STOREHOUSE_TEST_CHROMIUM`,
    );
  }
  // --no-sandbox: CI runs the tests as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** What the Content-Security-Policy refused in any window a test opened: a test file asserts it stays empty. */
export const cspViolations: string[] = [];

/** A browser window of its own (its own cookies), phone-sized when asked, that may use the clipboard. */
export async function newWindow(browser: Browser, url: string, phone = false): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(phone ? { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } : {});
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text()))
      cspViolations.push(`${page.url()}: ${message.text()}`);
  });
  page.setDefaultTimeout(60_000);
  return { context, page };
}

/** Saves what the page shows as test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** The API as a test calls it, with a bearer token or a session cookie (and that session's CSRF token, when given). */
export function apiCall(
  server: DashboardServer,
  pathAndQuery: string,
  init: RequestInit & { token?: string; cookie?: string; csrf?: string } = {},
) {
  const { token, cookie, csrf, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (cookie) headers.set('cookie', cookie);
  if (csrf) headers.set('x-storehouse-csrf', csrf);
  if (rest.body !== undefined) headers.set('content-type', 'application/json');
  return fetch(server.url + pathAndQuery, { ...rest, headers });
}
