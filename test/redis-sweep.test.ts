/**
 * The sweep of ACL users no live record has (issue 11's leftovers): fences live in Redis, so a
 * Redis restarted without persistence, or flushed, forgets them, and a stale writer could then
 * make a deleted store's user again. The sweep removes this deployment's users that no live record
 * has, and leaves other deployments' users (another tag, or an untagged name it has no record
 * of), live stores' users, and a user whose record is mid-provision.
 *
 * The users a stale writer would leave are made here with a plain ACL SETUSER (what a node of an
 * older version, which did not read the record again after its WATCH, could send).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { PrivateRedis } from '../chaos/redis-server.ts';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { randomBase62 } from '../src/ids.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { provisionRequest, secretsOf } from './provider-fixtures.ts';
import { execAnswered, HoldingProxy } from './redis-proxy.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;
/** What a record id's random part looks like (record ids are `sh_` and these 20). */
const randomPart = () => randomBase62(20).toLowerCase();

describe('the sweep of ACL users no live record has', { skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set' }, () => {
  let setup: Awaited<ReturnType<typeof providerState>>;
  let state: Database;
  let product: Product;
  let tag: string;
  let provider: RedisProvider;
  let admin: Redis;
  const started: RedisProvider[] = [];
  /** Users this file made by hand, removed at the end whatever happened. */
  const made = new Set<string>();
  const installationId = 'icfg_redissweep';
  const box = SecretBox.fromKey(randomBytes(32));
  const request = (key: string) => provisionRequest(product, installationId, key);
  const fresh = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

  /** An ACL user set by hand, with a password of its own; answers the password. */
  const setUserByHand = async (redis: Redis, username: string) => {
    const password = randomBase62(24);
    made.add(username);
    await redis.call('ACL', 'SETUSER', username, 'on', `>${password}`, `~${username}:*`, '+get');
    return password;
  };
  const userExists = async (redis: Redis, username: string) => (await redis.call('ACL', 'GETUSER', username)) !== null;
  /** What AUTH answers: 'ok' or the error ('WRONGPASS'). */
  const auth = async (url: string, username: string, password: string) => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.call('AUTH', username, password);
      return 'ok';
    } catch (error) {
      return (error as Error).message.split(' ')[0]!;
    } finally {
      client.disconnect();
    }
  };
  const startNode = (adminUrl: string, sweepIntervalMs?: number) => {
    const node = new RedisProvider(state, box, { adminUrl, ...(sweepIntervalMs && { sweepIntervalMs }) });
    started.push(node);
    return node;
  };

  before(async () => {
    setup = await providerState('redis');
    ({ state, product } = setup);
    tag = (await state.query<{ tag: string }>('SELECT tag FROM deployment')).rows[0]!.tag;
    admin = new Redis(REDIS_URL!);
    provider = startNode(REDIS_URL!);
    await eventually('the provider connecting', async () => (await provider.availability()).available);
  });
  after(async () => {
    const { rows } = await state.query<{ id: string }>("SELECT id FROM provider_resources WHERE state IN ('provisioning', 'ready')");
    for (const row of rows) await provider.delete(installationId, row.id, `cleanup-${row.id}`);
    for (const username of made) await admin.call('ACL', 'DELUSER', username);
    for (const node of started) await node.close();
    admin.disconnect();
    await setup.close();
  });

  test("this deployment's users no record has go; another deployment's, and a live store's, stay", async () => {
    const live = secretsOf((await provider.provision(request(fresh('live')))).secrets);
    assert.match(live.REDIS_USERNAME!, new RegExp(`^sh_${tag}_[0-9a-z]{20}$`), "a user's name carries the deployment's tag");
    const orphan = `sh_${tag}_${randomPart()}`;
    const otherTag = tag === 'aaaaaaaaaaaa' ? 'bbbbbbbbbbbb' : 'aaaaaaaaaaaa';
    const others = [`sh_${otherTag}_${randomPart()}`, `sh_${randomPart()}`]; // another deployment's; an untagged one it has no record of
    await setUserByHand(admin, orphan);
    for (const user of others) await setUserByHand(admin, user);
    assert.equal(await provider.sweep(), 1);
    assert.equal(await userExists(admin, orphan), false, 'the orphan is removed');
    assert.equal(await admin.exists(`storehouse:acl-fence:${orphan}`), 1, 'and its name fenced, as a delete does');
    for (const user of others) assert.ok(await userExists(admin, user), `${user} is left alone`);
    assert.equal(await auth(REDIS_URL!, live.REDIS_USERNAME!, live.REDIS_PASSWORD!), 'ok', "the live store's user works");
    assert.equal(await provider.sweep(), 0, 'nothing more to sweep');
  });

  test('untagged users (named before tags, by their record id) go when their record here is deleted, and stay while it is live', async () => {
    // Two records as an older version made them: the user's name is the record's id.
    const untagged = async (what: string) => {
      const { resource } = await provider.provision(request(fresh(what)));
      await state.query("UPDATE provider_resources SET details = jsonb_set(details, '{username}', to_jsonb(id)) WHERE id = $1", [
        resource.id,
      ]);
      return resource.id;
    };
    const [gone, kept] = [await untagged('untagged-gone'), await untagged('untagged-kept')];
    await provider.reapply(); // sets the untagged users from their records
    // The tagged users the provisions made now belong to no record: the sweep takes them too.
    assert.equal(await provider.sweep(), 2);
    await provider.delete(installationId, gone, 'delete-untagged');
    // A stale writer makes the deleted one's user again.
    await setUserByHand(admin, gone);
    assert.equal(await provider.sweep(), 1);
    assert.equal(await userExists(admin, gone), false);
    assert.ok(await userExists(admin, kept));
    const { rows } = await state.query<{ secret: string }>('SELECT secret FROM provider_resources WHERE id = $1', [kept]);
    const password = box.open(rows[0]!.secret, { table: 'provider_resources', id: kept, column: 'secret' });
    assert.equal(await auth(REDIS_URL!, kept, password), 'ok', 'the live untagged user works');
  });

  test('a user whose record is mid-provision (set, not yet marked ready) stays', async () => {
    const proxy = await HoldingProxy.to(REDIS_URL!);
    try {
      const provisioning = startNode(proxy.url);
      await eventually('the node connecting', async () => (await provisioning.availability()).available);
      await provisioning.reapply();
      const caught = proxy.hold('SETUSER');
      const key = fresh('mid-provision');
      const result = provisioning.provision(request(key));
      const held = await caught;
      await proxy.pass(held, execAnswered); // Redis has the user; the node has not heard yet
      const { rows } = await state.query<{ username: string; state: string }>(
        "SELECT details->>'username' AS username, state FROM provider_resources WHERE provision_key = $1",
        [key],
      );
      assert.deepEqual(
        rows.map((row) => row.state),
        ['provisioning'],
      );
      assert.ok(await userExists(admin, rows[0]!.username));
      assert.equal(await provider.sweep(), 0);
      assert.ok(await userExists(admin, rows[0]!.username), 'the user being provisioned is left');
      proxy.deliver(held);
      const env = secretsOf((await result).secrets);
      assert.equal(await auth(REDIS_URL!, env.REDIS_USERNAME!, env.REDIS_PASSWORD!), 'ok');
      await provisioning.close();
    } finally {
      await proxy.close();
    }
  });

  test('Redis restarted empty: the live users are set again and a deleted store’s user made again (its fence lost) is swept, at start and on the timer', async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    const own = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    own.on('error', () => {});
    try {
      // The sweep runs on its own every 200 ms here.
      const node = startNode(redis.url, 200);
      await eventually('the node connecting', async () => (await node.availability()).available);
      const live = secretsOf((await node.provision(request(fresh('restart-live')))).secrets);
      const { resource, secrets } = await node.provision(request(fresh('restart-deleted')));
      const deleted = secretsOf(secrets).REDIS_USERNAME!;
      await node.delete(installationId, resource.id, 'delete-before-restart');
      assert.equal(await own.exists(`storehouse:acl-fence:${deleted}`), 1);

      await redis.stop();
      await redis.start();
      assert.equal(await own.exists(`storehouse:acl-fence:${deleted}`), 0, 'the restart lost the fence');
      // A stale writer makes the deleted store's user again: no fence stops it now.
      const password = await setUserByHand(own, deleted);
      await eventually('the live user set again', async () => (await auth(redis.url, live.REDIS_USERNAME!, live.REDIS_PASSWORD!)) === 'ok');
      await eventually('the deleted store’s user swept', async () => !(await userExists(own, deleted)));
      assert.equal(await auth(redis.url, deleted, password), 'WRONGPASS');
      // And again later, by the timer alone.
      const later = `sh_${tag}_${randomPart()}`;
      await setUserByHand(own, later);
      await eventually('the timer sweeping', async () => !(await userExists(own, later)));
      assert.equal(await auth(redis.url, live.REDIS_USERNAME!, live.REDIS_PASSWORD!), 'ok');
      await node.close();
    } finally {
      own.disconnect();
      await redis.stop();
    }
  });
});
