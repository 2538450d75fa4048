/**
 * The real `vercel` CLI (58.10.0, the pinned devDependency) against a Storehouse started here:
 * `vercel integration add` and the integration commands, asserting what a user sees and what the
 * API then holds. The CLI runs with a HOME of its own and telemetry off (test/cli-harness.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { randomBase62 } from '../src/ids.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { findRedisServer } from '../src/providers/redis-server.ts';
import { cliUser, readDotenv, VERCEL_BIN, type CliResult, type CliUser } from './cli-harness.ts';
import { errorOf, eventually, startServer, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

const run = promisify(execFile);

/**
 * Runs `vercel <args>` in a terminal of its own (util-linux `script`), as a user at a prompt
 * does: each answer is typed once the output shows its question. The CLI asks for the terms only
 * in a terminal.
 */
function runInTerminal(
  server: TestServer,
  cli: CliUser,
  args: string[],
  answers: Array<{ when: RegExp; type: string }>,
  timeoutMs = 120_000,
): Promise<CliResult> {
  const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
  const command = [VERCEL_BIN, ...args, '--api', server.url, '--token', server.token].map(quote).join(' ');
  // Nothing of the suite's environment: no variable an agent detector reads, the CLI's state in its HOME.
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: cli.home,
    TERM: 'dumb',
    VERCEL_TELEMETRY_DISABLED: '1',
    NO_UPDATE_NOTIFIER: '1',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: cli.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const pending = [...answers];
    const onData = (chunk: Buffer) => {
      output += chunk.toString().replaceAll('\r', '');
      while (pending[0]?.when.test(output)) child.stdin.write(pending.shift()!.type);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vercel ${args.join(' ')} in a terminal did not finish within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, stdout: output, stderr: '', output });
    });
  });
}

const ok = (result: CliResult) => assert.equal(result.code, 0, `the command failed:\n${result.output}`);
const failed = (result: CliResult) => assert.equal(result.code, 1, `the command did not fail:\n${result.output}`);

describe('vercel integration add', () => {
  let server: TestServer;
  let cli: CliUser;
  let project: { id: string; name: string };

  const storeNames = async () => {
    const response = await server.request('/v1/storage/stores?limit=100');
    assert.equal(response.status, 200);
    return ((await response.json()) as { stores: Array<{ name: string }> }).stores.map((store) => store.name).sort();
  };
  const addCard = async (cardNumber: string) => {
    const response = await server.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber, default: true }),
    });
    assert.equal(response.status, 200, await response.text());
  };

  before(async () => {
    // The CLI refuses a --token with a "-" in it, which the harness's default tokens have.
    server = await startServer('embedded', { bootstrapToken: `cli${randomBase62(24)}` });
    cli = cliUser(server);
    const created = await server.request('/v11/projects', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cli-app' }),
    });
    const text = await created.text();
    assert.equal(created.status, 200, text);
    project = JSON.parse(text) as { id: string; name: string };
    ok(await cli.run(['link', '--yes', '--project', project.name]));
  });
  after(async () => {
    cli?.remove();
    await server?.close();
  });

  test('in a linked directory: a store on the free plan, connected to the project, and a POSTGRES_URL in .env.local that psql connects to', async () => {
    const result = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'cli-db']);
    ok(result);
    assert.match(result.output, /Installing Postgres by Storehouse under my-team/);
    assert.match(result.output, /Postgres successfully provisioned: cli-db/);
    assert.match(result.output, /cli-db successfully connected to cli-app/);
    assert.match(result.output, /Created\s+\.env\.local/);

    const env = readDotenv(path.join(cli.cwd, '.env.local'));
    assert.ok(env.POSTGRES_URL, `no POSTGRES_URL in .env.local: ${Object.keys(env).join(', ')}`);
    const { stdout } = await run('psql', [env.POSTGRES_URL, '-Atc', 'SELECT current_database(), 41 + 1']);
    assert.equal(stdout.trim(), `${env.POSTGRES_DATABASE}|42`);

    const stores = (await (await server.request('/v1/storage/stores')).json()) as { stores: any[] };
    const store = stores.stores.find((s) => s.name === 'cli-db');
    assert.equal(store.status, 'available');
    assert.equal(store.billingPlan.id, 'postgres_hobby');
    assert.deepEqual(
      store.projectsMetadata.map((p: any) => [p.projectId, [...p.environments].sort()]),
      [[project.id, ['development', 'preview', 'production']]],
    );
  });

  test('--environment and --prefix: the variables are named with the prefix and set for those environments only', async () => {
    const result = await cli.run([
      'integration',
      'add',
      'storehouse/postgres',
      '--name',
      'cli-db-prod',
      '--environment',
      'production',
      '--prefix',
      'PROD_',
      '-m',
      'connectionLimit=5',
    ]);
    ok(result);
    assert.match(result.output, /cli-db-prod successfully connected to cli-app/);
    const listed = (await (await server.request(`/v10/projects/${project.id}/env`)).json()) as { envs: any[] };
    const prefixed = listed.envs.filter((e) => e.key.startsWith('PROD_'));
    assert.ok(
      prefixed.some((e) => e.key === 'PROD_POSTGRES_URL'),
      `no PROD_POSTGRES_URL: ${prefixed.map((e) => e.key).join(', ')}`,
    );
    for (const variable of prefixed) assert.deepEqual(variable.target, ['production'], variable.key);
    // .env.local is the development environment's: the production-only variables are not in it.
    const env = readDotenv(path.join(cli.cwd, '.env.local'));
    assert.ok(env.POSTGRES_URL);
    assert.equal(env.PROD_POSTGRES_URL, undefined);
    const stores = (await (await server.request('/v1/storage/stores')).json()) as { stores: any[] };
    assert.equal(stores.stores.find((s) => s.name === 'cli-db-prod').metadata.connectionLimit, 5);
  });

  test('a paid plan: refused without a card and with a declining one (nothing created), made with a card that is approved', async () => {
    const before = await storeNames();
    const args = ['integration', 'add', 'storehouse/postgres', '--name', 'cli-paid', '--plan', 'postgres_pro', '--no-connect'];

    const noCard = await cli.run(args);
    failed(noCard);
    assert.match(noCard.output, /Error: The plan postgres_pro is paid and the team has no default payment method.*\(402\)/);
    assert.deepEqual(await storeNames(), before);

    await addCard('4000000000000002');
    const declined = await cli.run(args);
    failed(declined);
    assert.match(declined.output, /Error: The payment method \S+ \(visa ending in 0002\) was declined.*\(402\)/);
    assert.deepEqual(await storeNames(), before);

    await addCard('4242424242424242');
    const paid = await cli.run(args);
    ok(paid);
    assert.match(paid.output, /Postgres successfully provisioned: cli-paid/);
    const stores = (await (await server.request('/v1/storage/stores')).json()) as { stores: any[] };
    assert.equal(stores.stores.find((s) => s.name === 'cli-paid').billingPlan.id, 'postgres_pro');
  });

  test('a prepayment plan is bought at its minimum, as the CLI has no amount to give', async () => {
    const result = await cli.run([
      'integration',
      'add',
      'storehouse/postgres',
      '--name',
      'cli-prepaid',
      '--plan',
      'postgres_payg',
      '--no-connect',
      '--format',
      'json',
    ]);
    ok(result);
    const answer = JSON.parse(result.stdout.slice(result.stdout.indexOf('{')));
    assert.equal(answer.resource.name, 'cli-prepaid');
    assert.deepEqual(answer.billingPlan, { id: 'postgres_payg', name: answer.billingPlan.name, type: 'prepayment' });
    const store = (await (await server.request(`/v1/storage/stores/${answer.resource.id}`)).json()) as { store: any };
    assert.equal(store.store.billingPlan.id, 'postgres_payg');
  });

  test('a plan that does not exist and bad metadata: a clear error, nothing created, never a 5xx', async () => {
    const before = await storeNames();
    const noPlan = await cli.run([
      'integration',
      'add',
      'storehouse/postgres',
      '--name',
      'cli-bad',
      '--plan',
      'postgres_gold',
      '--no-connect',
    ]);
    failed(noPlan);
    assert.match(
      noPlan.output,
      /Error: Postgres has no plan postgres_gold: use one of postgres_hobby, postgres_pro, postgres_payg \(400\)/,
    );

    // The CLI checks --metadata against the product's schema the server sent it...
    const outOfRange = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'cli-bad', '-m', 'connectionLimit=500']);
    failed(outOfRange);
    assert.match(outOfRange.output, /Error: Metadata "connectionLimit" must be <= 100/);
    const unknown = await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'cli-bad', '-m', 'color=blue']);
    failed(unknown);
    assert.match(unknown.output, /Error: Unknown metadata key: "color"/);

    // ...and the server checks it again, as the seed endpoint does, for what the CLI let through.
    const response = await server.request('/v1/integrations/integration/storehouse/marketplace/auto-provision/postgres', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cli-bad', metadata: { connectionLimit: 500, color: 'blue' }, acceptedPolicies: {}, source: 'cli' }),
    });
    const error = await errorOf(response);
    assert.equal(error.status, 400);
    assert.equal(error.code, 'validation_error');
    assert.deepEqual(error.body.error.fields.map((f: any) => f.key).sort(), ['metadata.color', 'metadata.connectionLimit']);
    assert.deepEqual(await storeNames(), before);
  });

  test("the CLI's retries of one create (one invocation id) make one store and get its answer", async () => {
    const before = await storeNames();
    const send = (invocation: string) =>
      server.request('/v1/integrations/integration/storehouse/marketplace/auto-provision/postgres', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-vercel-cli-invocation-id': invocation },
        body: JSON.stringify({ name: 'cli-retried', metadata: {}, acceptedPolicies: {}, source: 'cli' }),
      });
    const invocation = randomBase62(16);
    const first = await send(invocation);
    assert.equal(first.status, 200);
    const again = await send(invocation);
    assert.equal(again.status, 200);
    const [a, b] = [(await first.json()) as any, (await again.json()) as any];
    assert.equal(b.resource.id, a.resource.id);
    assert.deepEqual(await storeNames(), [...before, 'cli-retried'].sort());
    // Another invocation is another create: the name is taken.
    const other = await errorOf(await send(randomBase62(16)));
    assert.deepEqual([other.status, other.code], [409, 'store_name_taken']);
  });

  test('an integration or product that does not exist', async () => {
    const noProduct = await cli.run(['integration', 'add', 'storehouse/mysql']);
    failed(noProduct);
    assert.match(noProduct.output, /Error: Product "mysql" not found\. Available products: postgres, redis/);
    const noIntegration = await cli.run(['integration', 'add', 'nosuchthing']);
    failed(noIntegration);
    assert.match(noIntegration.output, /No integration found matching "nosuchthing"/);
  });

  test('--installation-id: the installation named is used; one the team does not have is a 404', async () => {
    const configurations = (await (
      await server.request('/v2/integrations/configurations?view=account&integrationIdOrSlug=storehouse')
    ).json()) as any[];
    assert.equal(configurations.length, 1);
    assert.equal(configurations[0].installationType, 'marketplace');
    assert.equal(configurations[0].integration.slug, 'storehouse');
    const id = configurations[0].id;

    const wrong = await cli.run(['integration', 'add', 'storehouse/postgres', '--no-connect', '--installation-id', 'icfg_nope']);
    failed(wrong);
    assert.match(wrong.output, /Error: Could not find the installation of storehouse: icfg_nope \(404\)/);
    const right = await cli.run([
      'integration',
      'add',
      'storehouse/postgres',
      '--name',
      'cli-chosen',
      '--no-connect',
      '--installation-id',
      id,
    ]);
    ok(right);
    assert.match(right.output, new RegExp(`Dashboard: .*/storehouse/${id}/resources/store_`));
  });

  test('a keyword instead of a slug: the one product matching it is the one added', async () => {
    const result = await cli.run(['integration', 'add', 'postgres', '--name', 'cli-keyword', '--no-connect']);
    ok(result);
    assert.match(result.output, /Postgres successfully provisioned: cli-keyword/);
  });

  test('discover, categories, guide and installations show the catalog and the team installation', async () => {
    const discover = await cli.run(['integration', 'discover']);
    ok(discover);
    assert.match(discover.output, /storehouse\/postgres/);
    assert.match(discover.output, /storehouse\/redis/);
    const json = await cli.run(['integration', 'discover', 'redis', '--format', 'json']);
    ok(json);
    const { products } = JSON.parse(json.stdout);
    assert.deepEqual(
      products.map((p: any) => p.slug),
      ['storehouse/redis'],
    );
    assert.ok(products[0].tags.includes('Databases'), products[0].tags.join(', '));
    const byCategory = await cli.run(['integration', 'discover', '--category', 'databases', '--format', 'json']);
    ok(byCategory);
    assert.equal(JSON.parse(byCategory.stdout).products.length, 2);
    const noneInCategory = await cli.run(['integration', 'discover', '--category', 'ai', '--format', 'json']);
    ok(noneInCategory);
    assert.deepEqual(JSON.parse(noneInCategory.stdout).products, []);

    const categories = await cli.run(['integration', 'categories', '--format', 'json']);
    ok(categories);
    assert.deepEqual(JSON.parse(categories.stdout), { categories: [{ slug: 'databases', title: 'Databases' }] });

    const guide = await cli.run(['integration', 'guide', 'storehouse/postgres']);
    ok(guide);
    assert.match(guide.output, /No guides or snippets available for "Postgres" yet/);

    const installations = await cli.run(['integration', 'installations']);
    ok(installations);
    const team = ((await (await server.request('/v2/user')).json()) as any).user.defaultTeamId;
    assert.match(installations.output, new RegExp(`icfg_\\w+\\s+storehouse\\s+${team}`));
  });

  test('storehouse/redis: created when this node serves Redis, else a 400 saying why (a 5xx the CLI would send again)', async () => {
    const integration = (await (await server.request('/v2/integrations/integration/storehouse')).json()) as { products: any[] };
    const redis = integration.products.find((product) => product.slug === 'redis');
    // Whether this node serves Redis is the machine's (a redis-server 7 on PATH runs as the
    // test server's own), not the server's to say: the server's answer is checked against it.
    const served = findRedisServer() !== undefined;
    assert.equal(redis.unavailableReason === undefined, served, `redis-server on PATH: ${served}; ${redis.unavailableReason}`);
    const result = await cli.run(['integration', 'add', 'storehouse/redis', '--name', 'cli-cache', '--no-connect', '--format', 'json']);
    if (served) {
      ok(result);
      const answer = JSON.parse(result.stdout.slice(result.stdout.indexOf('{')));
      assert.equal(answer.product.slug, 'redis');
      assert.equal(answer.resource.status, 'available');
      assert.equal((await storeNames()).filter((name) => name === 'cli-cache').length, 1);
    } else {
      failed(result);
      assert.match(result.output, /Redis cannot be created on this server: .* \(400\)/);
      assert.ok(!(await storeNames()).includes('cli-cache'));
    }
  });

  test('vercel install is the same command', async () => {
    const result = await cli.run(['install', 'storehouse/postgres', '--name', 'cli-install', '--no-connect']);
    ok(result);
    assert.match(result.output, /Postgres successfully provisioned: cli-install/);
    assert.ok((await storeNames()).includes('cli-install'));
  });

  test("balance and resource create-threshold: a prepaid store's balance, and the threshold kept and shown", async () => {
    const before = await cli.run(['integration', 'balance', 'storehouse']);
    ok(before);
    assert.match(before.output, /No thresholds found for this integration/);
    assert.match(before.output, /● cli-prepaid\n>?\s*Balance: \$5\.00/);

    const created = await cli.run(['integration', 'resource', 'create-threshold', 'cli-prepaid', '5', '10', '50', '--yes']);
    ok(created);
    assert.match(created.output, /Threshold for resource cli-prepaid created successfully/);
    const after = await cli.run(['integration', 'balance', 'storehouse', '--format', 'json']);
    ok(after);
    const { balances, thresholds } = JSON.parse(after.stdout);
    assert.deepEqual(
      balances.map((b: any) => [b.resourceName, b.amount]),
      [['cli-prepaid', '$5.00']],
    );
    assert.deepEqual(
      thresholds.map((t: any) => [t.resourceName, t.minimumAmountInCents, t.purchaseAmountInCents]),
      [['cli-prepaid', 500, 1000]],
    );
    // Set again, it replaces the first.
    ok(await cli.run(['integration', 'resource', 'create-threshold', 'cli-prepaid', '6', '12', '60', '--yes']));
    const text = await cli.run(['integration', 'balance', 'storehouse']);
    assert.match(text.output, /Threshold: Spend \$12\.00 if balance goes below \$6\.00/);

    // What the CLI checks itself, the server checks again.
    const stores = (await (await server.request('/v1/storage/stores')).json()) as { stores: any[] };
    const byName = (name: string) => stores.stores.find((store) => store.name === name);
    const installation = byName('cli-prepaid').product.integrationConfigurationId;
    const threshold = (store: string, body: object) =>
      server.request(`/v1/integrations/installations/${installation}/resources/${byName(store).id}/billing/threshold`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const notPrepaid = await errorOf(await threshold('cli-db', { minimumAmountInCents: 500, purchaseAmountInCents: 1000 }));
    assert.deepEqual([notPrepaid.status, notPrepaid.code], [400, 'not_prepayment']);
    const belowPlan = await errorOf(await threshold('cli-prepaid', { minimumAmountInCents: 50, purchaseAmountInCents: 100 }));
    assert.deepEqual([belowPlan.status, belowPlan.code], [400, 'validation_error']);
    assert.match(belowPlan.message, /purchaseAmountInCents: must be at least the plan's minimum, \$5\.00/);
  });

  test('update --projects limits the projects its stores may connect to; --plan is refused: plans are per store', async () => {
    const created = await server.request('/v11/projects', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cli-other' }),
    });
    const other = JSON.parse(await created.text()) as { id: string };
    // cli-app has stores connected: it cannot be left out.
    const leftOut = await cli.run(['integration', 'update', 'storehouse', '--projects', other.id]);
    failed(leftOut);
    assert.match(leftOut.output, /Failed to update storehouse: Stores of Storehouse are connected to projects left out: cli-db to cli-app/);

    const selected = await cli.run(['integration', 'update', 'storehouse', '--projects', project.id, '--format', 'json']);
    ok(selected);
    assert.deepEqual(JSON.parse(selected.stdout).projects, [project.id]);
    const listed = await cli.run(['integration', 'installations', '--format', 'json']);
    const [installation] = JSON.parse(listed.stdout).installations;
    assert.deepEqual([installation.projectSelection, installation.projects], ['selected', [project.id]]);
    const refused = await cli.run(['integration', 'resource', 'connect', 'cli-install', 'cli-other', '--yes']);
    failed(refused);
    assert.match(refused.output, /may connect its stores to selected projects only, and cli-other is not one/);

    ok(await cli.run(['integration', 'update', 'storehouse', '--projects', 'all']));
    const connected = await cli.run(['integration', 'resource', 'connect', 'cli-install', 'cli-other', '--yes']);
    ok(connected);
    const envs = (await (await server.request(`/v10/projects/${other.id}/env`)).json()) as { envs: any[] };
    assert.ok(envs.envs.some((e) => e.key === 'POSTGRES_URL'));

    const plan = await cli.run(['integration', 'update', 'storehouse', '--plan', 'postgres_pro']);
    failed(plan);
    assert.match(plan.output, /postgres_pro is a plan of each Storehouse store, not of the installation/);
  });

  test('remove: refused while stores exist, naming them; removed once they are gone; then installed again by accepting the terms', async () => {
    const refused = await cli.run(['integration', 'remove', 'storehouse', '--yes']);
    failed(refused);
    assert.match(refused.output, /Cannot uninstall storehouse because it still has resources\./);
    for (const name of await storeNames()) assert.match(refused.output, new RegExp(`- ${name}\\n`));

    const removedOne = await cli.run(['integration', 'resource', 'remove', 'cli-db', '--disconnect-all', '--yes']);
    ok(removedOne);
    assert.match(removedOne.output, /cli-db successfully deleted/);
    const stores = (await (await server.request('/v1/storage/stores')).json()) as { stores: any[] };
    for (const store of stores.stores) {
      const deleted = await server.request(`/v1/storage/stores/integration/${store.id}?disconnect=true`, { method: 'DELETE' });
      assert.equal(deleted.status, 200, await deleted.text());
    }
    const removed = await cli.run(['integration', 'remove', 'storehouse', '--yes']);
    ok(removed);
    assert.match(removed.output, /storehouse successfully removed/);
    const none = await cli.run(['integration', 'installations']);
    ok(none);
    assert.match(none.output, /No marketplace installations found/);

    // Without an installation and no terminal to accept the terms in, the CLI says what to do; nothing is made.
    const noTerms = await cli.run(['integration', 'add', 'storehouse/postgres', '--no-connect', '--non-interactive']);
    failed(noTerms);
    assert.match(noTerms.output, /"status": "action_required"/);
    assert.match(noTerms.output, /Accept marketplace terms for \\"Storehouse\\"/);
    const provision = (body: object) =>
      server.request('/v1/integrations/integration/storehouse/marketplace/auto-provision/postgres', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'cli-raw', metadata: {}, source: 'cli', ...body }),
      });
    const unaccepted = await errorOf(await provision({ acceptedPolicies: {} }));
    assert.deepEqual([unaccepted.status, unaccepted.code], [403, 'terms_not_accepted']);
    assert.match(unaccepted.message, /vercel integration accept-terms storehouse/);
    // Terms accepted in the call but the store refused: the installation made for it goes too.
    const badPlan = await errorOf(await provision({ acceptedPolicies: { toc: new Date().toISOString() }, billingPlanId: 'postgres_gold' }));
    assert.equal(badPlan.status, 400);
    const configurations = async () =>
      (await (await server.request('/v2/integrations/configurations?view=account&installationType=marketplace')).json()) as any[];
    assert.deepEqual(await configurations(), []);
    assert.deepEqual(await storeNames(), []);

    // In a terminal, add asks for the terms and installs the integration with the store.
    const accept = [{ when: /Accept all of the documents listed above\?/, type: 'y\r' }];
    const added = await runInTerminal(
      server,
      cli,
      ['integration', 'add', 'storehouse/postgres', '--name', 'cli-terms', '--no-connect'],
      accept,
    );
    assert.equal(added.code, 0, added.output);
    assert.match(added.output, /Installing Storehouse requires accepting the following/);
    assert.match(added.output, /Postgres successfully provisioned: cli-terms/);
    assert.equal((await configurations()).length, 1);
    assert.deepEqual(await storeNames(), ['cli-terms']);

    // accept-terms: the terms flow alone.
    const [store] = ((await (await server.request('/v1/storage/stores')).json()) as { stores: any[] }).stores;
    assert.equal((await server.request(`/v1/storage/stores/integration/${store.id}`, { method: 'DELETE' })).status, 200);
    ok(await cli.run(['integration', 'remove', 'storehouse', '--yes']));
    const accepted = await runInTerminal(server, cli, ['integration', 'accept-terms', 'storehouse'], accept);
    assert.equal(accepted.code, 0, accepted.output);
    assert.match(accepted.output, /Terms accepted\. Integration storehouse is installed for this team/);
    const [installation] = await configurations();
    assert.equal(installation.integration.slug, 'storehouse');
    assert.equal(installation.source, 'cli');
    const again = await cli.run(['integration', 'accept-terms', 'storehouse']);
    ok(again);
    assert.match(again.output, /Integration storehouse is already installed for this team/);
    const twice = await errorOf(
      await server.request('/v2/integrations/integration/storehouse/marketplace/install', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ acceptedPolicies: { toc: new Date().toISOString() }, source: 'cli' }),
      }),
    );
    assert.deepEqual([twice.status, twice.code], [409, 'already_installed']);
    // And add works without a terminal again.
    ok(await cli.run(['integration', 'add', 'storehouse/postgres', '--name', 'cli-after', '--no-connect']));
  });
});

describe('vercel integration add and remove on a partner integration', () => {
  let fixture: StorehouseWithPartner;
  let server: TestServer;
  let cli: CliUser;
  let installationId: string;

  const partnerResourceIds = () => fixture.partnerResourceIds();
  const uninstallsHeard = (id = installationId) =>
    fixture.partnerCalls('DELETE', `/v1/installations/${id}`).filter((r) => !r.url.includes('/resources/'));

  before(async () => {
    // The CLI refuses a --token with a "-" in it, which the harness's default tokens have.
    fixture = await startStorehouseWithPartner({ bootstrapToken: `cli${randomBase62(24)}` });
    ({ server, installationId } = fixture);
    cli = cliUser(server);
  });
  after(async () => {
    cli?.remove();
    await fixture?.close();
  });

  test('the partner provisions the store; once it is gone, remove tells the partner of the uninstall', async () => {
    const added = await cli.run(['integration', 'add', 'acme/postgres', '--name', 'partner-db', '--no-connect', '--format', 'json']);
    ok(added);
    const answer = JSON.parse(added.stdout.slice(added.stdout.indexOf('{')));
    assert.equal(answer.installation.id, installationId);
    assert.deepEqual(await partnerResourceIds(), [answer.resource.externalResourceId]);

    const refused = await cli.run(['integration', 'remove', 'acme', '--yes']);
    failed(refused);
    assert.match(refused.output, /Cannot uninstall acme because it still has resources\.[\s\S]*- partner-db\n/);
    assert.equal(uninstallsHeard().length, 0);

    ok(await cli.run(['integration', 'resource', 'remove', 'partner-db', '--disconnect-all', '--yes']));
    assert.deepEqual(await partnerResourceIds(), []);
    const removed = await cli.run(['integration', 'remove', 'acme', '--yes']);
    ok(removed);
    assert.match(removed.output, /acme successfully removed/);
    assert.equal(uninstallsHeard().length, 1);
  });

  test('a store refused whose rollback outlasts the answer: the installation made for it goes once the store has, and the partner hears of it', async () => {
    const acme = async () =>
      (await (await server.request('/v2/integrations/configurations?view=account&integrationIdOrSlug=acme')).json()) as any[];
    assert.deepEqual(await acme(), [], 'the test before removes the installation');
    // The partner refuses the create; the undo's delete of what it made answers only after the
    // create's answer has stopped waiting for it (2 s, store-creation.ts).
    replaceFaults(fixture.partner.faults, { provision: { status: 400, times: 1 }, delete: { delayMs: 4_000, times: 1 } });
    try {
      const refused = await server.request('/v1/integrations/integration/acme/marketplace/auto-provision/postgres', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'refused-db',
          metadata: { connectionLimit: 5 },
          source: 'cli',
          acceptedPolicies: { toc: new Date().toISOString() },
        }),
      });
      assert.equal(refused.status, 400, await refused.text());
      const [upsert] = fixture.partnerCalls('PUT', '/v1/installations/').filter((r) => !r.url.includes(installationId));
      assert.ok(upsert, 'the partner heard of the installation made for the store');
      const made = upsert.url.split('/')[3]!;
      await eventually('the installation made for the refused store is gone', async () => (await acme()).length === 0);
      assert.equal(uninstallsHeard(made).length, 1);
      assert.deepEqual(await partnerResourceIds(), []);
      const { stores } = (await (await server.request('/v1/storage/stores')).json()) as { stores: unknown[] };
      assert.deepEqual(stores, []);
    } finally {
      replaceFaults(fixture.partner.faults, {});
    }
  });
});
