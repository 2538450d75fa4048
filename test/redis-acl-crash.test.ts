/**
 * A node that dies at the worst instant leaves no ACL user without a store (issue 11's chaos
 * finding). The instant: a node read a record live and sent its ACL SETUSER (reapplying users
 * after a reconnect, or provisioning), a delete of the same record ran on another node meanwhile,
 * and the SETUSER reached Redis after the delete's DELUSER, its sender dying before it heard the
 * answer and could take the user away again.
 *
 * The dying node's connections to Redis go through a proxy (redis-proxy.ts) that holds the chunk
 * carrying its SETUSER, lets the other node's delete run, then passes the chunk to the real Redis,
 * waits for Redis to have acted on it, and closes the node without its answer: the node never
 * learns what happened and sends nothing more (ioredis does not send it again), as after kill -9.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState } from './helpers.ts';
import { provisionRequest } from './provider-fixtures.ts';
import { HoldingProxy } from './redis-proxy.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

describe('a node killed while setting an ACL user that another node deletes', {
  skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set',
}, () => {
  let setup: Awaited<ReturnType<typeof providerState>>;
  let state: Database;
  let product: Product;
  let admin: Redis;
  /** The node that lives on: it deletes, straight to Redis. */
  let survivor: RedisProvider;
  let proxy: HoldingProxy;
  const installationId = 'icfg_aclcrash';
  const box = SecretBox.fromKey(randomBytes(32));
  const request = (key: string) => provisionRequest(product, installationId, key);
  const userExists = async (username: string) => (await admin.call('ACL', 'GETUSER', username)) !== null;

  before(async () => {
    setup = await providerState('redis');
    ({ state, product } = setup);
    admin = new Redis(REDIS_URL!);
    survivor = new RedisProvider(state, box, { adminUrl: REDIS_URL! });
    await eventually('the provider connecting', async () => (await survivor.availability()).available);
    proxy = await HoldingProxy.to(REDIS_URL!);
  });
  after(async () => {
    const { rows } = await state.query<{ id: string }>("SELECT id FROM provider_resources WHERE state <> 'deleted'");
    for (const row of rows) await survivor.delete(installationId, row.id, `cleanup-${row.id}`);
    await proxy.close();
    await survivor.close();
    admin.disconnect();
    await setup.close();
  });

  test('reapplying users after a reconnect: the user the other node deleted meanwhile is not set again', async () => {
    const { resource, secrets } = await survivor.provision(request(`reapplied-${randomBytes(4).toString('hex')}`));
    const username = secrets.find((s) => s.name === 'REDIS_USERNAME')!.value;
    assert.ok(await userExists(username));
    // A node starting (or reconnecting) sets every live record's user again: its SETUSER is held.
    const caught = proxy.hold('SETUSER');
    const dying = new RedisProvider(state, box, { adminUrl: proxy.url });
    const held = await caught;
    assert.ok(Buffer.concat(held.chunks).includes(username), 'the held SETUSER is of the user being deleted');
    await survivor.delete(installationId, resource.id, 'delete-while-reapplied');
    assert.equal(await userExists(username), false, 'the delete removed the user');
    // The SETUSER reaches Redis now, and its node dies without hearing the answer.
    await proxy.releaseThenKill(held, () => dying.close());
    assert.equal(await userExists(username), false, 'no ACL user is left without a live record');
    const { rows } = await state.query<{ state: string }>('SELECT state FROM provider_resources WHERE id = $1', [resource.id]);
    assert.equal(rows[0]!.state, 'deleted');
  });

  test('provisioning: the user of a provision another node abandoned meanwhile is not set', async () => {
    // No live record here, so the dying node's first SETUSER is its provision's.
    assert.equal((await state.query("SELECT 1 FROM provider_resources WHERE state IN ('provisioning', 'ready')")).rows.length, 0);
    const dying = new RedisProvider(state, box, { adminUrl: proxy.url });
    await eventually('the dying node connecting', async () => (await dying.availability()).available);
    const key = `abandoned-${randomBytes(4).toString('hex')}`;
    const caught = proxy.hold('SETUSER');
    const provisioning = dying.provision(request(key)).then(
      () => 'provisioned',
      () => 'failed',
    );
    const held = await caught;
    const { rows } = await state.query<{ id: string; username: string }>(
      "SELECT id, details->>'username' AS username FROM provider_resources WHERE provision_key = $1",
      [key],
    );
    const { username } = rows[0]!;
    // The create timed out on the other node, which undoes it: the record is deleted.
    await survivor.abandon(request(key));
    await proxy.releaseThenKill(held, () => dying.close());
    assert.equal(await provisioning, 'failed', 'the dying node never heard the answer');
    assert.equal(await userExists(username), false, 'no ACL user is left without a live record');
    const after = await state.query<{ state: string }>('SELECT state FROM provider_resources WHERE id = $1', [rows[0]!.id]);
    assert.equal(after.rows[0]!.state, 'deleted');
  });
});
