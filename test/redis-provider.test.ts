/**
 * The built-in Redis provider against a real Redis server: what it returns must work with
 * ioredis and redis-cli, and a store must see nothing of any other.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState } from './helpers.ts';
import { assertUnreachable, provisionRequest, secretsOf } from './provider-fixtures.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;
const run = promisify(execFile);

/** The error a command fails with ('NOPERM', 'WRONGPASS', ...), or 'ok'. */
async function outcome(work: () => Promise<unknown>): Promise<string> {
  try {
    await work();
    return 'ok';
  } catch (error) {
    return (error as Error).message.split(' ')[0]!;
  }
}

describe('the Redis provider', { skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set' }, () => {
  let setup: Awaited<ReturnType<typeof providerState>>;
  let state: Database;
  let provider: RedisProvider;
  let product: Product;
  let admin: Redis;
  const clients: Redis[] = [];
  const installationId = 'icfg_redistest';
  const box = SecretBox.fromKey(randomBytes(32));
  const provision = (name: string, metadata: Record<string, unknown> = { pubsub: true }, key = `key-${randomBytes(6).toString('hex')}`) =>
    provider.provision({ idempotencyKey: key, installationId, product, name, metadata, billingPlanId: 'redis_hobby' });
  const connect = (url: string) => {
    const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };

  /** What AUTH answers for the credentials in `url`: 'ok' or the error ('WRONGPASS'). */
  const auth = async (url: string) => {
    const { hostname, port, username, password } = new URL(url);
    const client = connect(`redis://${hostname}:${port}`);
    await client.connect();
    return outcome(() => client.call('AUTH', decodeURIComponent(username), decodeURIComponent(password)));
  };

  before(async () => {
    setup = await providerState('redis');
    ({ state, product } = setup);
    provider = new RedisProvider(state, box, { adminUrl: REDIS_URL! });
    admin = new Redis(REDIS_URL!);
    await eventually('the provider connecting', async () => (await provider.availability()).available);
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    const { rows } = await state.query<{ id: string }>("SELECT id FROM provider_resources WHERE state <> 'deleted'");
    for (const row of rows) await provider.delete(installationId, row.id, `cleanup-${row.id}`);
    admin.disconnect();
    await provider.close();
    await setup.close();
  });

  test('provisions a user its secrets authenticate as, with ioredis and redis-cli', async () => {
    const env = secretsOf((await provision('cache')).secrets);
    for (const name of ['REDIS_URL', 'KV_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_KEY_PREFIX']) {
      assert.ok(env[name], `${name} is among the secrets`);
    }
    assert.equal(env.KV_URL, env.REDIS_URL);
    const client = connect(env.REDIS_URL!);
    await client.connect();
    await client.set(`${env.REDIS_KEY_PREFIX}greeting`, 'hello');
    assert.equal(await client.get(`${env.REDIS_KEY_PREFIX}greeting`), 'hello');
    const { stdout } = await run('redis-cli', ['-u', env.REDIS_URL!, '--no-auth-warning', 'GET', `${env.REDIS_KEY_PREFIX}greeting`]);
    assert.equal(stdout.trim(), 'hello');
  });

  test('a store sees nothing of another, and cannot touch the server', async () => {
    const a = secretsOf((await provision('a')).secrets);
    const b = secretsOf((await provision('b')).secrets);
    const clientB = connect(b.REDIS_URL!);
    await clientB.connect();
    await clientB.set(`${b.REDIS_KEY_PREFIX}private`, 'B only');
    const clientA = connect(a.REDIS_URL!);
    await clientA.connect();
    const denied: Array<[string, () => Promise<unknown>]> = [
      ["GET of B's key", () => clientA.get(`${b.REDIS_KEY_PREFIX}private`)],
      ['SET outside its prefix', () => clientA.set('unprefixed', 'x')],
      ['SCAN', () => clientA.scan('0')],
      ['KEYS', () => clientA.keys('*')],
      ['RANDOMKEY', () => clientA.randomkey()],
      ['DBSIZE', () => clientA.dbsize()],
      ['SELECT', () => clientA.select(1)],
      ['FLUSHALL', () => clientA.flushall()],
      ['FLUSHDB', () => clientA.flushdb()],
      ['CONFIG GET', () => clientA.config('GET', 'maxmemory')],
      ['ACL LIST', () => clientA.call('ACL', 'LIST')],
      ['INFO', () => clientA.info()],
      ['CLIENT LIST', () => clientA.call('CLIENT', 'LIST')],
      ['PUBSUB CHANNELS', () => clientA.call('PUBSUB', 'CHANNELS')],
      ["PUBLISH to B's channel", () => clientA.publish(`${b.REDIS_KEY_PREFIX}news`, 'x')],
      ['CLIENT TRACKING (its BCAST mode streams every key name written)', () => clientA.call('CLIENT', 'TRACKING', 'on', 'BCAST')],
      ['FUNCTION LIST (libraries are shared)', () => clientA.call('FUNCTION', 'LIST')],
      ['FUNCTION LOAD', () => clientA.call('FUNCTION', 'LOAD', "#!lua name=x\nredis.register_function('f', function() return 1 end)")],
      ['FUNCTION FLUSH', () => clientA.call('FUNCTION', 'FLUSH')],
      ['FCALL', () => clientA.call('FCALL', 'f', '0')],
      ['SCRIPT FLUSH', () => clientA.call('SCRIPT', 'FLUSH')],
      ['SCRIPT KILL', () => clientA.call('SCRIPT', 'KILL')],
      ['MEMORY STATS (counts the key space)', () => clientA.call('MEMORY', 'STATS')],
      ['COPY into another database', () => clientA.call('COPY', `${a.REDIS_KEY_PREFIX}k`, `${a.REDIS_KEY_PREFIX}k`, 'DB', '1')],
    ];
    for (const [what, command] of denied) assert.equal(await outcome(command), 'NOPERM', what);
    assert.equal(await outcome(() => clientA.publish(`${a.REDIS_KEY_PREFIX}news`, 'x')), 'ok', 'its own channels');
    assert.equal(await outcome(() => clientA.call('MEMORY', 'USAGE', `${b.REDIS_KEY_PREFIX}private`)), 'NOPERM');
    assert.equal(await outcome(() => clientA.eval(`return redis.call('GET', KEYS[1])`, 1, `${b.REDIS_KEY_PREFIX}private`)), 'NOPERM');
    // No scripts at all, even on its own keys: one store's endless script would block every store.
    // (A script that ends: were EVAL let through, an endless one would hang the shared test server, not fail.)
    assert.equal(await outcome(() => clientA.eval('return 1', 0)), 'NOPERM', 'a script touching no key');
    assert.equal(await outcome(() => clientA.eval(`return redis.call('SET', KEYS[1], 'v')`, 1, `${a.REDIS_KEY_PREFIX}scripted`)), 'NOPERM');
    assert.equal(await outcome(() => clientA.call('SCRIPT', 'DEBUG', 'SYNC')), 'NOPERM', 'a debugging session');
    assert.equal(await clientB.get(`${b.REDIS_KEY_PREFIX}private`), 'B only');
  });

  test('without Pub/Sub in its metadata a store has no channels at all', async () => {
    const env = secretsOf((await provision('quiet', { pubsub: false })).secrets);
    const client = connect(env.REDIS_URL!);
    await client.connect();
    assert.equal(await outcome(() => client.publish(`${env.REDIS_KEY_PREFIX}news`, 'x')), 'NOPERM');
    assert.equal(await outcome(() => client.set(`${env.REDIS_KEY_PREFIX}k`, 'v')), 'ok');
  });

  test('rotation: the old password is refused, the new one accepted; a retried rotation changes nothing more', async () => {
    const { resource, secrets } = await provision('rotating');
    const before = secretsOf(secrets);
    const rotated = secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-1'));
    assert.notEqual(rotated.REDIS_PASSWORD, before.REDIS_PASSWORD);
    assert.equal(await auth(before.REDIS_URL!), 'WRONGPASS');
    assert.equal(await auth(rotated.REDIS_URL!), 'ok');
    assert.deepEqual(secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-1')), rotated);
    assert.equal(await auth(rotated.REDIS_URL!), 'ok');
  });

  test('delete leaves nothing: no user, no key', async () => {
    const { resource, secrets } = await provision('doomed');
    const env = secretsOf(secrets);
    const client = connect(env.REDIS_URL!);
    await client.connect();
    for (let i = 0; i < 50; i++) await client.set(`${env.REDIS_KEY_PREFIX}k${i}`, String(i));
    await provider.delete(installationId, resource.id, 'delete-1');
    assert.equal(await admin.call('ACL', 'GETUSER', env.REDIS_USERNAME!), null);
    const [, keys] = await admin.scan('0', 'MATCH', `${env.REDIS_KEY_PREFIX}*`, 'COUNT', 10_000);
    assert.deepEqual(keys, []);
    assert.equal(await auth(env.REDIS_URL!), 'WRONGPASS');
    await provider.delete(installationId, resource.id, 'delete-1'); // again: no error
  });

  test('users Redis forgot (a restart without an ACL file) are set again when the connection comes back', async () => {
    const env = secretsOf((await provision('survivor')).secrets);
    await admin.call('ACL', 'DELUSER', env.REDIS_USERNAME!); // what a restart does to ACL users
    assert.equal(await auth(env.REDIS_URL!), 'WRONGPASS');
    // Drop this provider's admin connection (found by its local port: other files' providers
    // share the server and the connection name), as a restart would; it reconnects by itself.
    const localPort = (provider as unknown as { admin: { stream: { localPort: number } } }).admin.stream.localPort;
    await admin.call('CLIENT', 'KILL', 'ADDR', `127.0.0.1:${localPort}`);
    await eventually('the user being set again', async () => (await auth(env.REDIS_URL!)) === 'ok', 30_000);
  });

  test('retries with one key make one user; ten provisions make ten separate users', async () => {
    const key = `retry-${randomBytes(4).toString('hex')}`;
    const [first, second] = await Promise.all([provision('retried', {}, key), provision('retried', {}, key)]);
    assert.equal(second.resource.id, first.resource.id);
    assert.deepEqual(second.secrets, first.secrets);
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => provision(`many ${i}`)));
    assert.equal(new Set(many.map((r) => secretsOf(r.secrets).REDIS_USERNAME)).size, 10);
    for (const result of many) assert.equal(await auth(secretsOf(result.secrets).REDIS_URL!), 'ok');
  });

  test('an admin that may not run ACL commands, or whose password is wrong, is unavailable with that reason', async () => {
    await admin.call('ACL', 'SETUSER', 'sh_limited_admin', 'on', '>limited-password', '~*', '+@all', '-@dangerous');
    try {
      const limited = new RedisProvider(state, box, { adminUrl: 'redis://sh_limited_admin:limited-password@127.0.0.1:6379' });
      await eventually(
        'connecting',
        async () =>
          (await limited.availability()).available === false && /ACL/.test(((await limited.availability()) as { reason: string }).reason),
        30_000,
      );
      await limited.close();
      const wrong = new RedisProvider(state, box, { adminUrl: 'redis://sh_limited_admin:not-the-password@127.0.0.1:6379' });
      await eventually(
        'the reason naming the password',
        async () => /WRONGPASS/.test(((await wrong.availability()) as { reason?: string }).reason ?? ''),
        30_000,
      );
      await wrong.close();
    } finally {
      await admin.call('ACL', 'DELUSER', 'sh_limited_admin');
    }
  });

  test('an admin that may not run a fenced transaction is unavailable, naming what it needs; its failures carry no password', async () => {
    // Everything but EXEC: ACL USERS works, every SETUSER (a WATCHed MULTI/EXEC) is refused.
    await admin.call('ACL', 'SETUSER', 'sh_noexec_admin', 'on', '>noexec-password', '~*', '+@all', '-exec');
    const limited = new RedisProvider(state, box, { adminUrl: 'redis://sh_noexec_admin:noexec-password@127.0.0.1:6379' });
    try {
      await eventually('the reason naming EXEC', async () => {
        const answer = await limited.availability();
        return answer.available === false && /EXEC/.test(answer.reason);
      });
      const failed = (await limited
        .provision({
          idempotencyKey: `noexec-${randomBytes(4).toString('hex')}`,
          installationId,
          product,
          name: 'n',
          metadata: {},
          billingPlanId: 'redis_hobby',
        })
        .then(
          () => undefined,
          (error: unknown) => error,
        )) as Error & Record<string, unknown>;
      assert.ok(failed instanceof Error, 'the provision failed');
      // What a logger would print of it (pino's err serialiser walks every own property).
      const printed = JSON.stringify({ ...failed, message: failed.message, stack: failed.stack });
      assert.doesNotMatch(printed, /SETUSER|previousErrors|>[A-Za-z0-9]{16,}/, printed);
    } finally {
      await limited.close();
      await admin.call('ACL', 'DELUSER', 'sh_noexec_admin');
    }
  });

  test('an unreachable Redis is unavailable, with the reason, never a 500', async () => {
    const away = new RedisProvider(state, box, { adminUrl: 'redis://127.0.0.1:1' });
    await assertUnreachable(away, provisionRequest(product, installationId, 'away'), /cannot reach the Redis server/);
  });
});
