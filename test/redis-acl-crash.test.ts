/**
 * A node that dies at the worst instant leaves no ACL user without a store (issue 11's chaos
 * finding). The instant: a node read a record live and sent its ACL SETUSER (reapplying users
 * after a reconnect, or provisioning), a delete of the same record ran on another node meanwhile,
 * and the SETUSER reached Redis after the delete's DELUSER, its sender dying before it heard the
 * answer and could take the user away again.
 *
 * The dying node's connections to Redis go through a proxy in this file that holds the chunk
 * carrying its SETUSER, lets the other node's delete run, then passes the chunk to the real Redis,
 * waits for Redis to have acted on it, and closes the node without its answer: the node never
 * learns what happened and sends nothing more (ioredis does not send it again), as after kill -9.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState } from './helpers.ts';

const REDIS_URL = process.env.STOREHOUSE_TEST_REDIS_URL || undefined;

interface Held {
  client: net.Socket;
  upstream: net.Socket;
  chunks: Buffer[];
}

/** A TCP proxy to Redis that can hold the first chunk a client sends containing `pattern`, and everything after it. */
class HoldingProxy {
  private readonly server: net.Server;
  private trap: { pattern: string; caught: (held: Held) => void } | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {
    this.server = net.createServer((client) => this.connection(client));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Resolves once a client sends a chunk containing `pattern`: that chunk, and all its connection sends after it, are held. */
  hold(pattern: string): Promise<Held> {
    return new Promise((caught) => {
      this.trap = { pattern, caught };
    });
  }

  /**
   * Passes the held chunks to Redis, then a PING, and waits for its PONG (so Redis has acted on
   * every held command), none of the answers reaching the client; then `kill` ends the client
   * (it must not reconnect and send anything again), and both sides are cut.
   */
  async releaseThenKill(held: Held, kill: () => Promise<void>): Promise<void> {
    held.upstream.removeAllListeners('data');
    held.client.removeAllListeners('data');
    let answered = '';
    const done = new Promise<void>((resolve) =>
      held.upstream.on('data', (chunk) => {
        answered += chunk.toString('latin1');
        if (answered.includes('+PONG\r\n')) resolve();
      }),
    );
    for (const chunk of held.chunks) held.upstream.write(chunk);
    held.upstream.write('PING\r\n');
    await done;
    await kill();
    held.client.destroy();
    held.upstream.destroy();
  }

  private connection(client: net.Socket): void {
    const upstream = net.connect(this.upstream.port, this.upstream.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
    }
    let held: Held | undefined;
    client.on('data', (chunk) => {
      if (held) {
        held.chunks.push(chunk);
        return;
      }
      const trap = this.trap;
      if (trap && chunk.includes(trap.pattern)) {
        this.trap = undefined;
        held = { client, upstream, chunks: [chunk] };
        trap.caught(held);
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

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
  const request = (key: string) => ({
    idempotencyKey: key,
    installationId,
    product,
    name: key,
    metadata: {},
    billingPlanId: 'redis_hobby',
  });
  const userExists = async (username: string) => (await admin.call('ACL', 'GETUSER', username)) !== null;

  before(async () => {
    setup = await providerState('redis');
    ({ state, product } = setup);
    admin = new Redis(REDIS_URL!);
    survivor = new RedisProvider(state, box, { adminUrl: REDIS_URL! });
    await eventually('the provider connecting', async () => (await survivor.availability()).available);
    const url = new URL(REDIS_URL!);
    proxy = new HoldingProxy({ host: url.hostname || '127.0.0.1', port: Number(url.port || 6379) });
    await proxy.start();
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
