/**
 * Storehouse as an operator runs it: real processes started the way `npm start` and the CLI
 * start them, on a copied embedded data dir.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually, freshDataDir, ROOT } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { answering, type Proc, runFromSource } from './spawned.ts';

const TOKEN = 'process-test-token-0123456789';

function run(script: 'main' | 'cli', args: string[], env: Record<string, string>): Proc {
  return runFromSource([path.join(ROOT, 'src', `${script}.ts`), ...args], { DATABASE_URL: '', STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN, ...env });
}

async function cli(dataDir: string, ...args: string[]) {
  const proc = run('cli', args, { STOREHOUSE_DATA_DIR: dataDir });
  const code = await proc.exit;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

const waitForHealth = (url: string, proc: Proc) => answering('the server', `${url}/healthz`, proc, 30_000);

describe('the server process', () => {
  let dataDir: string;
  let port: number;
  let server: Proc;
  const url = () => `http://127.0.0.1:${port}`;

  before(async () => {
    dataDir = await freshDataDir();
    port = await freePort();
    server = run('main', [], { STOREHOUSE_DATA_DIR: dataDir, PORT: String(port) });
    await waitForHealth(url(), server);
  });
  after(async () => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('bootstraps my-team with the configured token, saved 0600 in the data dir', async () => {
    const tokenFile = path.join(dataDir, 'admin-token');
    assert.equal(fs.readFileSync(tokenFile, 'utf8').trim(), TOKEN);
    assert.equal(fs.statSync(tokenFile).mode & 0o777, 0o600);
    const response = await fetch(`${url()}/v1/integrations/configurations?view=account&slug=my-team`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as unknown[]).length, 1);
    assert.match(server.stderr(), /bootstrapped team "my-team"/);
  });

  test('logs JSON lines with request ids and never the token', async () => {
    const entries = () =>
      server
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line));
    // The earlier test's request is logged as it is answered: its line may still be on its way.
    await eventually(
      "the request's log line",
      async () => entries().some((entry) => entry.reqId && entry.req?.url?.startsWith('/v1/integrations/configurations')),
      30_000,
    );
    assert.ok(!server.stdout().includes(TOKEN), 'the token is not in the logs');
  });

  test('a second server on the same data dir exits with a clear message', async () => {
    const second = run('main', [], { STOREHOUSE_DATA_DIR: dataDir, PORT: String(await freePort()) });
    assert.equal(await second.exit, 1);
    assert.match(second.stderr(), /data directory .* is in use by another Storehouse process \(pid \d+\)/);
  });

  test('the CLI works while the server runs, through its control socket', async () => {
    const team = await cli(dataDir, 'teams', 'create', 'acme', '--name', 'Acme Inc');
    assert.equal(team.code, 0, team.stderr);
    assert.match(team.stdout, /created team acme \(team_[A-Za-z0-9]+\)/);
    const member = await cli(dataDir, 'members', 'add', 'acme', 'alice@acme.dev', '--role', 'owner');
    assert.equal(member.code, 0, member.stderr);
    const install = await cli(dataDir, 'install', 'create', 'acme', 'storehouse', '--by', 'alice@acme.dev');
    assert.equal(install.code, 0, install.stderr);
    const created = await cli(dataDir, '--json', 'tokens', 'create', 'alice@acme.dev', '--team', 'acme', '--name', 'laptop');
    assert.equal(created.code, 0, created.stderr);
    const { value, id } = JSON.parse(created.stdout);
    assert.match(value, /^sh_[A-Za-z0-9]{43}$/);

    // Alice's token works against the running server, for her team only.
    const mine = await fetch(`${url()}/v1/integrations/configurations?view=account`, { headers: { authorization: `Bearer ${value}` } });
    assert.equal(mine.status, 200);
    const [configuration] = (await mine.json()) as Array<{ id: string; userId: string; source: string }>;
    assert.equal(configuration!.source, 'cli');
    const notHers = await fetch(`${url()}/v1/integrations/configurations?view=account&slug=my-team`, {
      headers: { authorization: `Bearer ${value}` },
    });
    assert.equal(notHers.status, 403);

    // The listing never shows a token's value; revoking takes effect at once.
    const list = await cli(dataDir, 'tokens', 'list');
    assert.ok(list.stdout.includes(id) && !list.stdout.includes(value));
    assert.equal((await cli(dataDir, 'tokens', 'revoke', id)).code, 0);
    const revoked = await fetch(`${url()}/v1/integrations/configurations?view=account`, { headers: { authorization: `Bearer ${value}` } });
    assert.equal(revoked.status, 401);
  });

  test("the CLI never writes its own catalog file over the servers' catalog", async () => {
    const other = path.join(dataDir, 'other-catalog.yaml');
    fs.writeFileSync(
      other,
      fs.readFileSync(path.join(ROOT, 'catalog/default.yaml'), 'utf8').replace('name: Postgres\n', 'name: Not Postgres\n'),
    );
    const proc = run('cli', ['teams', 'list'], { STOREHOUSE_DATA_DIR: dataDir, STOREHOUSE_CATALOG: other });
    assert.equal(await proc.exit, 0, proc.stderr());
    const [configuration] = (await (
      await fetch(`${url()}/v1/integrations/configurations?view=account`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as Array<{ id: string }>;
    const products = (await (
      await fetch(`${url()}/v1/integrations/configuration/${configuration!.id}/products`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { products: Array<{ name: string }> };
    assert.equal(products.products[0]!.name, 'Postgres');
  });

  test('CLI mistakes are clear and change nothing', async () => {
    const duplicate = await cli(dataDir, 'teams', 'create', 'acme');
    assert.equal(duplicate.code, 2);
    assert.match(duplicate.stderr, /The team slug "acme" is already taken/);
    const badRole = await cli(dataDir, 'members', 'add', 'acme', 'bob@acme.dev', '--role', 'emperor');
    assert.notEqual(badRole.code, 0);
    assert.match(badRole.stderr, /emperor/);
    const lastOwner = await cli(dataDir, 'members', 'add', 'acme', 'alice@acme.dev', '--role', 'viewer');
    assert.equal(lastOwner.code, 2);
    assert.match(lastOwner.stderr, /at least one OWNER/);
    const members = await cli(dataDir, '--json', 'members', 'list', 'acme');
    assert.deepEqual(
      JSON.parse(members.stdout).map((m: { email: string; role: string }) => [m.email, m.role]),
      [['alice@acme.dev', 'OWNER']],
    );
  });

  test('SIGTERM lets an in-flight request finish, then closes cleanly', async () => {
    // A request whose body is still arriving is in flight when the signal comes.
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let response = '';
    socket.on('data', (chunk) => (response += chunk));
    const body = '{"reason":"drain test"}';
    socket.write(
      `DELETE /v1/integrations/configuration/icfg_missing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 5)}`,
    );
    // Waited for, not slept on (a loaded machine can take longer than any fixed pause): the
    // server has the request before the signal, and has begun stopping before it is checked.
    const logged = (line: string) => async () => server.stdout().includes(line);
    await eventually('the server to receive the request', logged('icfg_missing'));
    server.child.kill('SIGTERM');
    await eventually('the server to begin stopping', logged('shutting down: draining in-flight requests'));
    assert.equal(server.child.exitCode, null, 'still running while a request is in flight');
    // New connections are no longer accepted (once the listener has closed, which follows the log line).
    await eventually('new connections refused', () =>
      fetch(`${url()}/healthz`).then(
        () => false,
        () => true,
      ),
    );
    socket.write(body.slice(5));
    await new Promise((resolve) => socket.once('close', resolve));
    assert.match(response, /^HTTP\/1.1 404/);
    assert.match(response, /Could not find the configuration: icfg_missing/);
    assert.equal(await server.exit, 0);
    assert.match(server.stdout(), /"msg":"stopped"/);
    assert.ok(!fs.existsSync(path.join(dataDir, 'control.sock')), 'the control socket is removed');
  });

  test('restarting on the same data dir keeps everything and bootstraps nothing new', async () => {
    const again = run('main', [], {
      STOREHOUSE_DATA_DIR: dataDir,
      PORT: String(port),
      STOREHOUSE_BOOTSTRAP_TOKEN: 'another-token-0123456789',
    });
    try {
      await waitForHealth(url(), again);
      assert.doesNotMatch(again.stderr(), /bootstrapped/);
      const teams = await fetch(`${url()}/v1/integrations/configurations?view=account`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(teams.status, 200);
      const other = await fetch(`${url()}/v1/integrations/configurations?view=account`, {
        headers: { authorization: 'Bearer another-token-0123456789' },
      });
      assert.equal(other.status, 401);
    } finally {
      again.child.kill('SIGTERM');
      assert.equal(await again.exit, 0);
    }
    const migrate = await cli(dataDir, 'migrate');
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(migrate.stdout, /up to date/);
    const teams = await cli(dataDir, '--json', 'teams', 'list');
    assert.deepEqual(
      JSON.parse(teams.stdout).map((t: { slug: string }) => t.slug),
      ['my-team', 'acme'],
    );
  });
});

describe('start-up refuses bad configuration', () => {
  test('the CLI on state no server has set up says so', async () => {
    const dataDir = await freshDataDir();
    try {
      const result = await cli(dataDir, 'teams', 'create', 'early');
      assert.equal(result.code, 2);
      assert.match(result.stderr, /has not been started on this state yet: start the server once/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a bad catalog file stops start-up, naming the file, the field and what was expected', async () => {
    const dataDir = await freshDataDir();
    const catalog = path.join(dataDir, 'broken.yaml');
    const source = fs.readFileSync(path.join(ROOT, 'catalog/default.yaml'), 'utf8').replace('type: prepayment', 'type: lifetime');
    fs.writeFileSync(catalog, source);
    try {
      const proc = run('main', [], { STOREHOUSE_DATA_DIR: dataDir, PORT: String(await freePort()), STOREHOUSE_CATALOG: catalog });
      assert.equal(await proc.exit, 1);
      assert.match(proc.stderr(), new RegExp(`Invalid catalog ${catalog.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      assert.match(proc.stderr(), /\/integrations\/0\/products\/0\/plans\/2\/type: must be one of "subscription", "prepayment"/);
      assert.ok(!fs.existsSync(path.join(dataDir, 'admin-token')), 'nothing was bootstrapped');
      const check = await cli(dataDir, 'catalog', 'validate', catalog);
      assert.equal(check.code, 1);
      assert.match(check.stderr, /plans\/2\/type/);
      const good = await cli(dataDir, 'catalog', 'validate', path.join(ROOT, 'catalog/default.yaml'));
      assert.equal(good.code, 0);
      assert.match(good.stdout, /is valid: 1 integration\(s\), 2 product\(s\), 6 plan\(s\)/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('bad environment values stop start-up with the variable named', async () => {
    const proc = run('main', [], { PORT: 'eighty' });
    assert.equal(await proc.exit, 1);
    assert.match(proc.stderr(), /PORT must be an integer from 0 to 65535, got "eighty"/);
  });
});
