/**
 * The README's walkthrough, and the partner walkthrough in docs/providers.md, work as a newcomer
 * pastes them: their shell blocks are run with bash (`set -euo pipefail`, so a failed call, a
 * refused request or a variable never set stops the run) against Storehouse started as `npm start`
 * starts it (from source) on a fresh data dir, the owner token read from the file the README
 * names, the partner run as `npm run partner` runs it. Only the ports differ from the defaults
 * (the blocks take `API`, `PARTNER` and `STOREHOUSE_DATA_DIR` from the environment for that), and
 * a static test checks that the defaults the walkthrough relies on fit together.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { loadCatalogFile } from '../src/catalog/catalog-file.ts';
import { DEFAULT_CATALOG_PATH, loadConfig } from '../src/config.ts';
import { optionsFromEnv } from '../src/partner-server/main.ts';
import { freshDataDir, ROOT } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { answering as answeringWithin, type Proc, runFromSource, stop } from './spawned.ts';

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
const EXAMPLE_CATALOG = path.join(ROOT, 'catalog', 'example.yaml');

/** The fenced `sh` blocks of the section under `heading` (up to the next heading of its level or above). */
function shellBlocks(file: string, heading: string): string[] {
  const text = read(file);
  const level = /^#+/.exec(heading)![0].length;
  const start = text.split('\n').indexOf(heading);
  assert.ok(start >= 0, `${file} has the heading "${heading}"`);
  const lines = text.split('\n').slice(start + 1);
  // A shell comment in a block ("# 1. Discover") is not a heading.
  let fenced = false;
  const end = lines.findIndex((line) => {
    if (line.startsWith('```')) fenced = !fenced;
    return !fenced && new RegExp(`^#{1,${level}} `).test(line);
  });
  const section = (end === -1 ? lines : lines.slice(0, end)).join('\n');
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]!);
}

const README_BLOCKS = () => shellBlocks('README.md', '## Walkthrough');
/** The partner walkthrough: its first block is the two terminals, the rest the commands run beside them. */
const PARTNER_BLOCKS = () => shellBlocks('docs/providers.md', '### Try a partner server');

const PSQL = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v psql'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

/** Storehouse as `npm start` runs it, on `dataDir`, with nothing configured but the port (and the catalog, when given). */
function startStorehouse(dataDir: string, port: number, catalog = ''): Proc {
  return runFromSource([path.join('src', 'main.ts')], {
    HOST: '',
    PORT: String(port),
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_CATALOG: catalog,
    STOREHOUSE_BOOTSTRAP_TOKEN: '',
    STOREHOUSE_PUBLIC_URL: '',
    STOREHOUSE_OIDC_ISSUER: '',
    DATABASE_URL: '',
    STOREHOUSE_POSTGRES_ADMIN_URL: '',
    STOREHOUSE_REDIS_ADMIN_URL: '',
    REDIS_URL: '',
    LOG_LEVEL: 'warn',
  });
}

/** The reference partner as `npm run partner` runs it, on `port`, trusting the Storehouse at `issuer`. */
function startPartner(dataDir: string, port: number, issuer: string): Proc {
  return runFromSource([path.join('src', 'partner-server', 'main.ts')], {
    HOST: '',
    PORT: String(port),
    PARTNER_DATA_DIR: dataDir,
    PARTNER_ISSUER: issuer,
    PARTNER_CLIENT_ID: '',
    PARTNER_DATABASE_URL: '',
    PARTNER_POSTGRES_ADMIN_URL: '',
    PARTNER_JWKS_URL: '',
    PARTNER_MARKETPLACE_URL: '',
    LOG_LEVEL: 'warn',
  });
}

const answering = (what: string, url: string, proc: Proc) => answeringWithin(what, url, proc, 180_000);

/** Runs `script` with bash as a person's shell would, with only `env` (and PATH, HOME) set; its exit code and output. */
async function bash(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], {
    cwd: ROOT,
    // `node` first on PATH: the walkthrough's json() runs the node this test runs on.
    env: { PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** psql's answer to `select 1` in its default (aligned) format: the row `1` and `(1 row)`. */
const PSQL_SAID_ONE = /^\s+1\s*$\n^\(1 row\)$/m;

const storesOf = async (url: string, dataDir: string) => {
  const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const answer = await fetch(`${url}/v1/storage/stores`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(answer.status, 200);
  return ((await answer.json()) as { stores: Array<{ id: string; name: string }> }).stores;
};

describe('the README and the example catalog, read', () => {
  test('the README stays short, with one walkthrough that sets every variable it uses', () => {
    const size = Buffer.byteLength(read('README.md'));
    // 6 KiB: what it is, the set-up, one walkthrough, the dashboard with two screenshots, links.
    assert.ok(size <= 6 * 1024, `README.md is ${size} bytes: keep it short, the details belong in docs/`);
    const blocks = README_BLOCKS();
    assert.equal(blocks.length, 1, 'one walkthrough block');
    for (const command of ['npm install && npm start', 'npm test']) assert.ok(read('README.md').includes(command), command);
  });

  test('the walkthroughs paste no example ids, which would 404', () => {
    const ids = /\b(icfg|store|prj|team|pm)_[A-Za-z0-9]{6,}/g;
    for (const block of [...README_BLOCKS(), ...PARTNER_BLOCKS()]) assert.deepEqual(block.match(ids), null, block);
  });

  test('the partner walkthrough is the two terminals, then commands', () => {
    const [terminals, ...commands] = PARTNER_BLOCKS();
    assert.equal(terminals, 'STOREHOUSE_CATALOG=catalog/example.yaml npm start\nnpm run partner\n');
    assert.equal(commands.length, 1);
    assert.match(read('package.json'), /"partner": "node dist\/partner-server\/main\.js"/);
  });

  test("the example catalog is valid, and the partner's defaults and Storehouse's fit it", () => {
    const catalog = loadCatalogFile(EXAMPLE_CATALOG);
    const partner = catalog.integrations.find((integration) => integration.slug === 'acme')!;
    const defaults = optionsFromEnv({});
    const storehouse = loadConfig({});
    // The tokens' audience is the integration's id; their issuer Storehouse's default address.
    assert.equal(partner.id, defaults.clientId);
    assert.equal(defaults.issuer, `http://${storehouse.host}:${storehouse.port}`);
    assert.deepEqual(
      partner.products.map((product) => product.provider),
      [{ type: 'http', url: `http://${defaults.host}:${defaults.port}` }],
    );
    // Webhooks are signed, and SSO codes exchanged, with the secret the partner has by default.
    assert.equal(partner.clientSecret, defaults.clientSecret);
    assert.equal(partner.webhookUrl, `http://${defaults.host}:${defaults.port}/webhook`);
    assert.equal(partner.redirectLoginUrl, `http://${defaults.host}:${defaults.port}/sso`);
  });

  test("the example catalog is the default catalog's integration, with a plan limit, plus the partner", () => {
    const example = parse(fs.readFileSync(EXAMPLE_CATALOG, 'utf8'));
    const builtIn = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
    assert.deepEqual(
      example.integrations.map((integration: { slug: string }) => integration.slug),
      ['storehouse', 'acme'],
    );
    const hobby = (catalog: any) => catalog.integrations[0].products[0].plans[0];
    assert.equal(hobby(example).id, 'postgres_hobby');
    assert.equal(hobby(example).resourceLimit, 3);
    assert.equal(hobby(builtIn).resourceLimit, undefined, 'the default catalog has no plan limit');
    // Apart from that plan, the built-in integration is the default catalog's, so the example does not drift from it.
    example.integrations[0].products[0].plans[0] = hobby(builtIn);
    assert.deepEqual(example.integrations[0], builtIn.integrations[0]);
  });
});

describe('the README walkthrough, run', { skip: PSQL ? false : 'no psql on PATH (the walkthrough uses it)' }, () => {
  let dataDir: string;
  let port: number;
  let server: Proc | undefined;
  const url = () => `http://127.0.0.1:${port}`;

  before(async () => {
    dataDir = await freshDataDir();
    port = await freePort();
    server = startStorehouse(dataDir, port);
    await answering('Storehouse', `${url()}/healthz`, server);
  });
  after(async () => {
    await stop(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('its commands, pasted in order, create, connect, query with psql and delete', { timeout: 600_000 }, async () => {
    const result = await bash(README_BLOCKS().join('\n'), { API: url(), STOREHOUSE_DATA_DIR: dataDir });
    assert.equal(result.code, 0, `the walkthrough failed:\n${result.stdout}\n${result.stderr}\nserver: ${server!.output()}`);
    assert.match(result.stdout, PSQL_SAID_ONE, result.stdout);
    assert.match(result.stdout, /'postgres'/, 'the products were listed');
    assert.match(result.stdout, /postgres_pro/, 'the plans were listed');
    assert.deepEqual(await storesOf(url(), dataDir), [], 'both stores were deleted');
  });
});

describe('the partner walkthrough, run', { skip: PSQL ? false : 'no psql on PATH (the walkthrough uses it)' }, () => {
  let dataDir: string;
  let partnerDir: string;
  let catalogDir: string;
  let port: number;
  let partnerPort: number;
  let server: Proc | undefined;
  let partner: Proc | undefined;
  const url = () => `http://127.0.0.1:${port}`;
  const partnerUrl = () => `http://127.0.0.1:${partnerPort}`;

  before(async () => {
    [dataDir, partnerDir, catalogDir] = await Promise.all([freshDataDir(), freshDataDir(), freshDataDir()]);
    port = await freePort();
    partnerPort = await freePort();
    // The example catalog as it is, but for the partner's port (the defaults are checked above).
    const source = fs.readFileSync(EXAMPLE_CATALOG, 'utf8');
    assert.equal(
      source.split('http://127.0.0.1:4000').length - 1,
      4,
      "the partner URL, in the header comment, the integration's webhookUrl and redirectLoginUrl, and the provider",
    );
    const catalog = path.join(catalogDir, 'example.yaml');
    fs.writeFileSync(catalog, source.replaceAll('http://127.0.0.1:4000', partnerUrl()));
    server = startStorehouse(dataDir, port, catalog);
    partner = startPartner(partnerDir, partnerPort, url());
    await Promise.all([
      answering('Storehouse', `${url()}/healthz`, server),
      answering('the partner', `${partnerUrl()}/_partner/resources`, partner),
    ]);
  });
  after(async () => {
    await stop(partner);
    await stop(server);
    for (const dir of [dataDir, partnerDir, catalogDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('its commands create a store on the partner, read its secrets, and delete it on the partner too', { timeout: 600_000 }, async () => {
    const [, ...commands] = PARTNER_BLOCKS();
    const result = await bash(commands.join('\n'), { API: url(), PARTNER: partnerUrl(), STOREHOUSE_DATA_DIR: dataDir });
    const logs = `\nstorehouse: ${server!.output()}\npartner: ${partner!.output()}`;
    assert.equal(result.code, 0, `the walkthrough failed:\n${result.stdout}\n${result.stderr}${logs}`);
    assert.match(result.stdout, PSQL_SAID_ONE, result.stdout);
    assert.match(result.stdout, /'partner_free'/, "the partner's plans were listed");
    assert.match(result.stdout, /"resources":\[\{"id":"sh_[a-z0-9]+"/, 'the partner showed the resource it made');
    assert.deepEqual(await storesOf(url(), dataDir), []);
    const left = (await (await fetch(`${partnerUrl()}/_partner/resources`)).json()) as { resources: unknown[] };
    assert.deepEqual(left.resources, [], 'the partner deprovisioned it');
  });

  test("the example's free Postgres plan stops at its resourceLimit", { timeout: 300_000 }, async () => {
    const token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    const api = (pathAndQuery: string, init: RequestInit = {}) =>
      fetch(url() + pathAndQuery, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    const configurations = (await (await api('/v1/integrations/configurations?view=account')).json()) as Array<{
      id: string;
      slug: string;
    }>;
    const icfg = configurations.find((configuration) => configuration.slug === 'storehouse')!.id;
    const create = (name: string) =>
      api('/v1/storage/stores/integration/direct', {
        method: 'POST',
        body: JSON.stringify({ name, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
      });
    const created: string[] = [];
    for (const name of ['limit-1', 'limit-2', 'limit-3']) {
      const answer = await create(name);
      assert.equal(answer.status, 200, await answer.clone().text());
      created.push(((await answer.json()) as { store: { id: string } }).store.id);
    }
    const fourth = await create('limit-4');
    assert.equal(fourth.status, 400);
    assert.equal(((await fourth.json()) as { error: { code: string } }).error.code, 'no_free_plan');
    for (const id of created) assert.equal((await api(`/v1/storage/stores/integration/${id}`, { method: 'DELETE' })).status, 200);
  });
});
