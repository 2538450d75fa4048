/**
 * Writers of one store's ACL user racing each other (issue 11's leftovers): a reapply that read
 * the record before a rotation, whose SETUSER reaches Redis after the rotation's, must not put
 * the old password back; a node killed at any step of a rotation leaves a user the record's
 * credentials work with, which the next reapply makes exactly the record's; and rotations,
 * reapplies, provisions and deletes on several nodes at once leave every user as its record says.
 *
 * The slow node's connections go through the proxy of redis-proxy.ts, which holds its SETUSER
 * while other nodes (straight to Redis, sharing the state database) act.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { ResourceRecords } from '../src/providers/resource-records.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState } from './helpers.ts';
import { provisionRequest, secretsOf } from './provider-fixtures.ts';
import { execAnswered, HoldingProxy } from './redis-proxy.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

describe('writers of one ACL user racing', { skip: REDIS_URL ? false : 'STOREHOUSE_TEST_REDIS_URL is not set' }, () => {
  let setup: Awaited<ReturnType<typeof providerState>>;
  let state: Database;
  let product: Product;
  let records: ResourceRecords<{ username: string; prefix: string }>;
  /** A node straight to Redis. */
  let node: RedisProvider;
  let proxy: HoldingProxy;
  const started: RedisProvider[] = [];
  const installationId = 'icfg_redisraces';
  const box = SecretBox.fromKey(randomBytes(32));
  const request = (key: string) => provisionRequest(product, installationId, key);
  const fresh = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

  /** A node sharing the state database; through the proxy when `proxied`. Ready, and done with its start's reapply. */
  const startNode = async (proxied: boolean) => {
    const started_ = new RedisProvider(state, box, { adminUrl: proxied ? proxy.url : REDIS_URL! });
    started.push(started_);
    await eventually('the node connecting', async () => (await started_.availability()).available);
    await started_.reapply(); // the start's own, or one after it: either way nothing is left under way
    return started_;
  };

  /** What AUTH answers for this user and password: 'ok' or the error ('WRONGPASS'). */
  const auth = async (username: string, password: string) => {
    const client = new Redis(REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
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
  /** The passwords the user takes, of those given. */
  const accepted = async (username: string, ...passwords: string[]) => {
    const answers = await Promise.all(passwords.map((password) => auth(username, password)));
    return passwords.filter((_, i) => answers[i] === 'ok');
  };
  const recordOf = (id: string) => records.get(installationId, id);

  before(async () => {
    setup = await providerState('redis');
    ({ state, product } = setup);
    records = new ResourceRecords(state, box, 'redis');
    proxy = await HoldingProxy.to(REDIS_URL!);
    node = await startNode(false);
  });
  after(async () => {
    const { rows } = await state.query<{ id: string }>("SELECT id FROM provider_resources WHERE state IN ('provisioning', 'ready')");
    for (const row of rows) await node.delete(installationId, row.id, `cleanup-${row.id}`);
    await proxy.close();
    for (const provider of started) await provider.close();
    await setup.close();
  });

  test('a reapply whose SETUSER reaches Redis after a rotation: the new password works, the old does not', async () => {
    const { resource, secrets } = await node.provision(request(fresh('reapplied')));
    const before = secretsOf(secrets);
    // A node starting sets every live record's user again: it read the record (the old password)
    // and its SETUSER is held.
    const caught = proxy.hold((chunk) => chunk.includes('SETUSER') && chunk.includes(before.REDIS_USERNAME!));
    const slow = new RedisProvider(state, box, { adminUrl: proxy.url });
    started.push(slow);
    const held = await caught;
    assert.ok(
      Buffer.concat(held.chunks).includes(before.REDIS_PASSWORD!),
      'the held SETUSER carries the password read before the rotation',
    );
    // Meanwhile another node rotates, to the end.
    const rotated = secretsOf(await node.rotateSecrets(installationId, resource.id, fresh('rotation')));
    assert.deepEqual(await accepted(before.REDIS_USERNAME!, before.REDIS_PASSWORD!, rotated.REDIS_PASSWORD!), [rotated.REDIS_PASSWORD]);
    // The held SETUSER reaches Redis now: Redis refuses it (another SETUSER came since its WATCH).
    await proxy.pass(held, execAnswered);
    assert.deepEqual(await accepted(before.REDIS_USERNAME!, before.REDIS_PASSWORD!, rotated.REDIS_PASSWORD!), [rotated.REDIS_PASSWORD]);
    // The slow node hears it, reads the record again and sets the user as it says now.
    proxy.deliver(held);
    await slow.reapply(); // the reapply under way
    assert.deepEqual(await accepted(before.REDIS_USERNAME!, before.REDIS_PASSWORD!, rotated.REDIS_PASSWORD!), [rotated.REDIS_PASSWORD]);
    assert.equal((await recordOf(resource.id)).secret, rotated.REDIS_PASSWORD);
    await slow.close();
  });

  test('a node killed before its rotation reached Redis: the old password works, then both, and a retry finishes the rotation', async () => {
    const { resource, secrets } = await node.provision(request(fresh('rotated-crash-early')));
    const env = secretsOf(secrets);
    const [username, old] = [env.REDIS_USERNAME!, env.REDIS_PASSWORD!];
    const dying = await startNode(true);
    const caught = proxy.hold('SETUSER');
    const rotating = dying.rotateSecrets(installationId, resource.id, 'rotation-early').then(
      () => 'rotated',
      () => 'failed',
    );
    const held = await caught;
    proxy.cut(held); // kill -9: its SETUSER never left
    assert.equal(await rotating, 'failed');
    await dying.close();
    const pending = (await recordOf(resource.id)).pendingSecret!;
    assert.ok(pending, 'the rotation is recorded pending');
    assert.deepEqual(await accepted(username, old, pending), [old]);
    // The next reapply (any node's) sets a user that takes both: the store's credentials still work.
    await node.reapply();
    assert.deepEqual(await accepted(username, old, pending), [old, pending]);
    // A retry with the same key finishes it: the pending password alone.
    const rotated = secretsOf(await node.rotateSecrets(installationId, resource.id, 'rotation-early'));
    assert.equal(rotated.REDIS_PASSWORD, pending);
    assert.deepEqual(await accepted(username, old, pending), [pending]);
    const record = await recordOf(resource.id);
    assert.deepEqual([record.secret, record.pendingSecret], [pending, undefined]);
  });

  test('a node killed after its rotation was promoted, before its last SETUSER: the next reapply leaves the new password alone', async () => {
    const { resource, secrets } = await node.provision(request(fresh('rotated-crash-late')));
    const env = secretsOf(secrets);
    const [username, old] = [env.REDIS_USERNAME!, env.REDIS_PASSWORD!];
    const dying = await startNode(true);
    // Its first SETUSER (both passwords) goes through; the second (the new one alone) is held.
    let setusers = 0;
    const caught = proxy.hold((chunk) => chunk.includes('SETUSER') && ++setusers === 2);
    const rotating = dying.rotateSecrets(installationId, resource.id, 'rotation-late').then(
      () => 'rotated',
      () => 'failed',
    );
    const held = await caught;
    proxy.cut(held);
    assert.equal(await rotating, 'failed');
    await dying.close();
    const record = await recordOf(resource.id);
    assert.equal(record.pendingSecret, undefined, 'promoted');
    const fresh_ = record.secret!;
    assert.notEqual(fresh_, old);
    assert.deepEqual(await accepted(username, old, fresh_), [old, fresh_], 'Redis has both, as the rotation left it');
    await node.reapply();
    assert.deepEqual(await accepted(username, old, fresh_), [fresh_]);
  });

  test('rotations, reapplies, provisions and deletes on three nodes at once leave every user as its record says', async () => {
    const others = [await startNode(false), await startNode(false)];
    const [a, b] = others as [RedisProvider, RedisProvider];
    const { resource, secrets } = await node.provision(request(fresh('contended')));
    const username = secretsOf(secrets).REDIS_USERNAME!;
    const passwords = [secretsOf(secrets).REDIS_PASSWORD!];
    for (let round = 0; round < 12; round++) {
      const [, , rotation] = await Promise.all([
        a.reapply(),
        b.reapply(),
        [node, a, b][round % 3]!.rotateSecrets(installationId, resource.id, `contended-${round}`),
        (async () => {
          const made = await b.provision(request(fresh(`passing-${round}`)));
          await Promise.all([a.delete(installationId, made.resource.id, `delete-${round}`), node.reapply()]);
          return secretsOf(made.secrets).REDIS_USERNAME!;
        })(),
        node.reapply(),
      ]);
      passwords.push(secretsOf(rotation).REDIS_PASSWORD!);
      const current = (await recordOf(resource.id)).secret!;
      assert.equal(current, passwords.at(-1), `round ${round}: the record has the last rotation's password`);
      assert.deepEqual(await accepted(username, ...passwords.slice(-3)), [current], `round ${round}`);
    }
    const { rows } = await state.query<{ username: string }>(
      "SELECT details->>'username' AS username FROM provider_resources WHERE provider = 'redis' AND state = 'deleted' AND name LIKE 'passing-%'",
    );
    assert.equal(rows.length, 12);
    const admin = new Redis(REDIS_URL!);
    try {
      for (const row of rows) assert.equal(await admin.call('ACL', 'GETUSER', row.username), null, `${row.username} was deleted`);
    } finally {
      admin.disconnect();
    }
  });

  test('rotations with different keys at once: each answers a password the user keeps, or 409, never one that stops working', async () => {
    const other = await startNode(false);
    const { resource, secrets } = await node.provision(request(fresh('rotated-twice')));
    const username = secretsOf(secrets).REDIS_USERNAME!;
    for (let round = 0; round < 6; round++) {
      const outcomes = await Promise.allSettled([
        node.rotateSecrets(installationId, resource.id, fresh(`first-${round}`)),
        other.rotateSecrets(installationId, resource.id, fresh(`second-${round}`)),
      ]);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') assert.equal((outcome.reason as { status?: number }).status, 409, String(outcome.reason));
      }
      const answered = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [secretsOf(outcome.value).REDIS_PASSWORD!] : []));
      assert.ok(answered.length >= 1, `round ${round}: one rotation wins`);
      const current = (await recordOf(resource.id)).secret!;
      assert.ok(answered.includes(current), `round ${round}: the record keeps a password a rotation answered`);
      assert.deepEqual(await accepted(username, ...answered), [current], `round ${round}: only the record's works`);
    }
  });
});
