/**
 * Storehouse's own redis-server (src/providers/redis-server.ts), run for real: loopback with an
 * admin user and nothing for anyone else; ACL users (once saved) and keys kept across a stop and
 * a kill -9 of redis-server; a crashed one started again; one that a killed Storehouse left
 * running taken over; the port kept, and a taken one refused with a message that says what to do.
 * The Redis provider serves stores from it through its admin URL.
 *
 * Needs redis-server 7 on PATH (skipped, saying so, without one). Umask 077, as Storehouse sets it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, afterEach, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisProvider } from '../src/providers/redis.ts';
import {
  ADMIN_USER,
  findRedisServer,
  parseRedisLogLine,
  RedisServer,
  RedisServerError,
  type RedisServerLog,
} from '../src/providers/redis-server.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, providerState, ROOT } from './helpers.ts';

process.umask(0o077);

const BINARY = findRedisServer();

/** A program on `port` (0: any) that accepts connections and answers nothing; `close` ends them too. */
async function squat(port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port nothing listens on now. */
async function unusedPort(): Promise<number> {
  const probe = await squat(0);
  await probe.close();
  return probe.port;
}

/** What the helpers below need of a server: one of ours, or one a killed process left running. */
type Served = Pick<RedisServer, 'port' | 'adminUrl'>;

/** The error `promise` rejects with; fails the test if it resolves (and stops what it started). */
async function refusal(promise: Promise<RedisServer>): Promise<unknown> {
  let started: RedisServer;
  try {
    started = await promise;
  } catch (error) {
    return error;
  }
  await started.stop();
  return assert.fail('it started');
}

interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: object;
}

function capture(): RedisServerLog & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (obj: object, msg: string) => lines.push({ level, msg, obj });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Whether `pid` runs (a zombie no parent reaped does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** What a command answers: its reply, or the first word of its error (NOAUTH, WRONGPASS, NOPERM...). */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    return (error as Error).message.split(' ')[0];
  }
}

describe("Storehouse's own redis-server", { skip: BINARY ? false : 'no redis-server on PATH' }, () => {
  const dirs: string[] = [];
  const servers: RedisServer[] = [];
  const clients: Redis[] = [];
  /** redis-servers a test left for another to take over, killed at the end whatever happened. */
  const strays: number[] = [];

  const dataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-redis-'));
    dirs.push(dir);
    return dir;
  };
  const start = async (options: Parameters<typeof RedisServer.start>[0]) => {
    const server = await RedisServer.start(options);
    servers.push(server);
    return server;
  };
  const connect = (url: string | { port: number; username?: string; password?: string }) => {
    const options = { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableReadyCheck: false };
    const client = typeof url === 'string' ? new Redis(url, options) : new Redis({ host: '127.0.0.1', ...url, ...options });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };
  /** A user of the server's, as the provider makes them: ACL SETUSER, then (if `save`) ACL SAVE. */
  const makeUser = async (server: Served, name: string, password: string, save: boolean) => {
    const admin = connect(server.adminUrl);
    await admin.connect();
    await admin.call('ACL', 'SETUSER', name, 'on', `>${password}`, `~${name}:*`, '+@all');
    if (save) assert.equal(await admin.call('ACL', 'SAVE'), 'OK');
    admin.disconnect();
  };
  /** Authenticates as `name` and runs `work` (the error's first word when AUTH is refused: WRONGPASS). */
  const asUser = async <T>(server: Served, name: string, password: string, work: (redis: Redis) => Promise<T>) => {
    const client = connect({ port: server.port });
    try {
      await client.connect();
      const auth = await outcome(() => client.call('AUTH', name, password));
      return auth === 'OK' ? await work(client) : auth;
    } finally {
      client.disconnect();
    }
  };

  afterEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    for (const server of servers.splice(0)) await server.stop();
  });
  after(() => {
    for (const pid of strays) if (running(pid)) process.kill(pid, 'SIGKILL');
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('listens on loopback with an admin user; a client that has not authenticated, or as default, may do nothing', async () => {
    const log = capture();
    const dir = dataDir();
    const server = await start({ dataDir: dir, log });
    assert.match(server.adminUrl, new RegExp(`^redis://${ADMIN_USER}:[0-9a-f]{64}@127\\.0\\.0\\.1:${server.port}$`));

    const admin = connect(server.adminUrl);
    await admin.connect();
    assert.equal(await admin.ping(), 'PONG');
    assert.equal(await admin.call('ACL', 'WHOAMI'), ADMIN_USER);
    // Only what the provider needs: not the commands that empty or reconfigure the server.
    assert.equal(await outcome(() => admin.flushall()), 'NOPERM');
    assert.equal(await outcome(() => admin.call('CONFIG', 'GET', 'port')), 'NOPERM');

    const anonymous = connect({ port: server.port });
    await anonymous.connect();
    assert.equal(await outcome(() => anonymous.ping()), 'NOAUTH');
    assert.equal(await outcome(() => anonymous.get('k')), 'NOAUTH');
    assert.equal(await outcome(() => anonymous.call('AUTH', '')), 'WRONGPASS', 'requirepass-style AUTH, as default');
    assert.equal(await outcome(() => anonymous.call('AUTH', 'default', 'anything')), 'WRONGPASS');
    const [password] = new URL(server.adminUrl).password.split(':');
    assert.equal(await outcome(() => anonymous.call('AUTH', password!)), 'WRONGPASS', "the admin's password is no default password");
    assert.equal(await outcome(() => anonymous.call('AUTH', ADMIN_USER, 'not-the-password')), 'WRONGPASS');

    // Its files: owner-only, the password only in its own file (the ACL file holds a hash).
    const files = path.join(dir, 'redis');
    assert.equal(server.dir, files);
    assert.equal(fs.statSync(files).mode & 0o777, 0o700);
    for (const name of ['admin-password', 'users.acl', 'redis.conf', 'port']) {
      assert.equal(fs.statSync(path.join(files, name)).mode & 0o777, 0o600, name);
    }
    assert.equal(fs.readFileSync(path.join(files, 'admin-password'), 'utf8').trim(), password);
    assert.ok(!fs.readFileSync(path.join(files, 'users.acl'), 'utf8').includes(password!));
    assert.equal(Number(fs.readFileSync(path.join(files, 'redis.pid'), 'utf8')), server.pid);
    const conf = fs.readFileSync(path.join(files, 'redis.conf'), 'utf8');
    assert.match(conf, /^bind 127\.0\.0\.1 -::1$/m);
    assert.match(conf, /^protected-mode yes$/m);
    assert.match(conf, /^appendonly yes$/m);
    assert.match(conf, /^maxmemory-policy noeviction$/m);
    assert.doesNotMatch(conf, /requirepass/);
    assert.ok(fs.readdirSync(path.join(files, 'appendonlydir')).length > 0, 'the append-only file is in the dir');

    // Its log lines reached the log, at their level.
    assert.ok(log.lines.some((line) => line.level === 'info' && /redis-server: Ready to accept connections/.test(line.msg)));
    assert.ok(
      log.lines.some(
        (line) =>
          line.level === 'info' && line.msg === 'redis-server started on a port picked for this data dir (kept for its next starts)',
      ),
    );

    const pid = server.pid!;
    await server.stop();
    assert.equal(running(pid), false);
    assert.equal(server.pid, undefined);
    assert.equal(fs.existsSync(path.join(files, 'redis.pid')), false, 'a clean shutdown: Redis removed its pid file');
    assert.ok(log.lines.some((line) => line.level === 'info' && /redis-server: Redis is now ready to exit/.test(line.msg)));
  });

  test('a user saved with ACL SAVE, and the keys it wrote, survive a stop and a start; the port and password are kept', async () => {
    const dir = dataDir();
    const first = await start({ dataDir: dir });
    await makeUser(first, 'store_a', 'secret-a', true);
    assert.equal(await asUser(first, 'store_a', 'secret-a', (redis) => redis.set('store_a:greeting', 'hello')), 'OK');
    await first.stop();

    const second = await start({ dataDir: dir });
    assert.equal(second.port, first.port, 'the port kept in the dir: stores keep their URLs');
    assert.equal(second.adminUrl, first.adminUrl, 'the admin password kept too');
    assert.equal(await asUser(second, 'store_a', 'secret-a', (redis) => redis.get('store_a:greeting')), 'hello');
    assert.equal(
      await asUser(second, 'store_a', 'secret-a', (redis) => outcome(() => redis.get('store_b:x'))),
      'NOPERM',
      'its rules kept too',
    );
  });

  test('a killed redis-server is started again with its saved users and its data; a user set without ACL SAVE is lost', async () => {
    const log = capture();
    const server = await start({ dataDir: dataDir(), log });
    await makeUser(server, 'store_saved', 'pw-saved', true);
    await makeUser(server, 'store_unsaved', 'pw-unsaved', false);
    assert.equal(await asUser(server, 'store_saved', 'pw-saved', (redis) => redis.set('store_saved:k', 'v')), 'OK');
    assert.equal(await asUser(server, 'store_unsaved', 'pw-unsaved', (redis) => redis.ping()), 'PONG');

    const killed = server.pid!;
    const exit = once(server, 'exit');
    const ready = once(server, 'ready');
    process.kill(killed, 'SIGKILL');
    const [exited] = (await exit) as [{ pid: number; signal: string; expected: boolean }];
    assert.deepEqual([exited.pid, exited.signal, exited.expected], [killed, 'SIGKILL', false]);
    const [back] = (await ready) as [{ pid: number; port: number }];
    assert.notEqual(back.pid, killed);
    assert.equal(back.pid, server.pid);
    assert.equal(back.port, server.port);
    assert.ok(log.lines.some((line) => line.level === 'warn' && line.msg === 'redis-server exited unexpectedly; starting it again'));
    assert.ok(log.lines.some((line) => line.level === 'info' && line.msg === 'redis-server is running again'));

    // The key was written to the append-only file before Redis answered OK: kill -9 loses nothing.
    assert.equal(await asUser(server, 'store_saved', 'pw-saved', (redis) => redis.get('store_saved:k')), 'v');
    // Redis writes the ACL file only on ACL SAVE, so the Redis provider must send one after
    // each ACL SETUSER and DELUSER (or set its users again after every restart, as it does).
    assert.equal(await asUser(server, 'store_unsaved', 'pw-unsaved', (redis) => redis.ping()), 'WRONGPASS');

    // And again: each crash is restarted.
    const again = once(server, 'ready');
    process.kill(server.pid!, 'SIGKILL');
    await again;
    assert.equal(await asUser(server, 'store_saved', 'pw-saved', (redis) => redis.ping()), 'PONG');
  });

  test('stop() ends supervision: the server is not started again', async () => {
    const server = await start({ dataDir: dataDir() });
    const pid = server.pid!;
    const exit = once(server, 'exit');
    await server.stop();
    const [exited] = (await exit) as [{ expected: boolean; code: number }];
    assert.deepEqual([exited.expected, exited.code], [true, 0], 'asked to exit, and it exited cleanly');
    assert.equal(running(pid), false);
    assert.equal(server.pid, undefined);
    // Nothing on its port: no restart came after the exit (stop resolves after it and the restart would have been launched).
    const socket = net.connect(server.port, '127.0.0.1');
    const [refused] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(refused.code, 'ECONNREFUSED');
    await server.stop(); // a second stop is a no-op
  });

  test('a Storehouse killed with kill -9 takes its redis-server along; one left running (no setpriv) is taken over, keeping its data and users', async () => {
    const dir = dataDir();
    const module = pathToFileURL(path.join(ROOT, 'src/providers/redis-server.ts')).href;
    const script = `
      import { RedisServer } from ${JSON.stringify(module)};
      const server = await RedisServer.start({ dataDir: process.env.DATA_DIR });
      process.stdout.write(JSON.stringify({ pid: server.pid, port: server.port, adminUrl: server.adminUrl }) + '\\n');
      setInterval(() => {}, 1 << 30);
    `;
    const storehouse: ChildProcess = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    const [line] = (await new Promise<[string]>((resolve, reject) => {
      storehouse.stdout!.on('data', (chunk) => {
        output += chunk;
        if (output.includes('\n')) resolve([output.split('\n')[0]!]);
      });
      storehouse.once('exit', (code) => reject(new Error(`the Storehouse process exited (${code}) before it started Redis`)));
    })) as [string];
    const orphan = JSON.parse(line) as { pid: number; port: number; adminUrl: string };
    strays.push(orphan.pid);
    storehouse.removeAllListeners('exit');
    const dead = once(storehouse, 'exit');
    storehouse.kill('SIGKILL');
    await dead;

    // Its redis-server gets SIGTERM as its parent dies (PR_SET_PDEATHSIG), and stops.
    await eventually('the killed Storehouse redis-server to stop', async () => !running(orphan.pid));
    // Without setpriv it would have stayed: as such a leftover, the same server started on its own.
    const leftover = spawn('redis-server', [path.join(dir, 'redis', 'redis.conf')], { stdio: 'ignore', detached: true });
    orphan.pid = leftover.pid!;
    strays.push(orphan.pid);
    const stray: Served = { port: orphan.port, adminUrl: orphan.adminUrl };
    await eventually('the leftover answering', async () => {
      try {
        const redis = new Redis(stray.adminUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        redis.on('error', () => {});
        await redis.connect();
        redis.disconnect();
        return true;
      } catch {
        return false;
      }
    });
    await makeUser(stray, 'store_t', 'pw-t', true);
    assert.equal(await asUser(stray, 'store_t', 'pw-t', (redis) => redis.set('store_t:k', 'kept')), 'OK');

    const log = capture();
    const server = await start({ dataDir: dir, log });
    assert.equal(running(orphan.pid), false, 'the one left running was stopped');
    assert.notEqual(server.pid, orphan.pid);
    assert.equal(server.port, orphan.port);
    assert.equal(server.adminUrl, orphan.adminUrl);
    assert.ok(
      log.lines.some(
        (entry) =>
          entry.level === 'warn' &&
          /still running on this data dir/.test(entry.msg) &&
          (entry.obj as { redisPid: number }).redisPid === orphan.pid,
      ),
    );
    assert.equal(await asUser(server, 'store_t', 'pw-t', (redis) => redis.get('store_t:k')), 'kept');
  });

  test('takes over one left running on this dir whatever port it is on: never two on one dir', async () => {
    const dir = dataDir();
    const first = await start({ dataDir: dir });
    // As if its Storehouse were killed: the server left running, its supervisor gone (it restarts
    // nothing), and its pid file lost too; the next start is configured to another port.
    const left = first.pid!;
    strays.push(left);
    servers.splice(servers.indexOf(first), 1);
    (first as unknown as { stopping: boolean }).stopping = true;
    fs.rmSync(path.join(dir, 'redis', 'redis.pid'));
    const port = await unusedPort();
    const log = capture();
    const second = await start({ dataDir: dir, port, log });
    assert.equal(running(left), false, 'the one left running was stopped');
    assert.notEqual(second.pid, left);
    assert.equal(second.port, port);
    assert.ok(log.lines.some((entry) => entry.level === 'warn' && (entry.obj as { redisPid: number }).redisPid === left));
    const socket = net.connect(first.port, '127.0.0.1');
    const [refused] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(refused.code, 'ECONNREFUSED', 'nothing on the old port');
  });

  test('a kept port another program took is refused with a message naming it and what to do', async () => {
    const dir = dataDir();
    const first = await start({ dataDir: dir });
    const { port } = first;
    await first.stop();
    const squatter = await squat(port);
    try {
      const refused = await refusal(RedisServer.start({ dataDir: dir }));
      assert.ok(refused instanceof RedisServerError);
      assert.equal(refused.reason, 'port_taken');
      assert.match(refused.message, new RegExp(`port ${port}, kept in .*/redis/port`));
      assert.match(refused.message, /another program is listening on it/);
      assert.match(refused.message, /delete .*\/redis\/port to have a free one picked/);
      assert.equal(fs.existsSync(path.join(dir, 'redis', 'redis.pid')), false, 'no redis-server was started');
    } finally {
      await squatter.close();
    }
    const again = await start({ dataDir: dir });
    assert.equal(again.port, port, 'once the port is free, the same one');
  });

  test('a configured port is used, kept, and refused with a clear message when taken', async () => {
    const squatter = await squat(0);
    const taken = squatter.port;
    try {
      const dir = dataDir();
      const refused = await refusal(RedisServer.start({ dataDir: dir, port: taken }));
      assert.ok(refused instanceof RedisServerError);
      assert.equal(refused.reason, 'port_taken');
      assert.match(refused.message, new RegExp(`the port ${taken} it is configured to use`));
      assert.equal(fs.existsSync(path.join(dir, 'redis', 'port')), false, 'a port it never listened on is not kept');
    } finally {
      await squatter.close();
    }
    // Configured to a free one: used, and kept for a start without configuration.
    const free = await unusedPort();
    const dir = dataDir();
    const configured = await start({ dataDir: dir, port: free });
    assert.equal(configured.port, free);
    await configured.stop();
    const unconfigured = await start({ dataDir: dir });
    assert.equal(unconfigured.port, free);
  });

  test('finds redis-server on PATH, and without a usable one refuses with what to install or set', async () => {
    const bin = dataDir();
    assert.equal(findRedisServer(`${path.join(bin, 'none')}${path.delimiter}${bin}`), undefined);
    fs.writeFileSync(path.join(bin, 'redis-server'), '#!/bin/sh\necho "Redis server v=6.2.14 sha=00000000:0"\n', { mode: 0o700 });
    assert.equal(findRedisServer(`${path.join(bin, 'none')}${path.delimiter}${bin}`), path.join(bin, 'redis-server'));
    const old = await refusal(RedisServer.start({ dataDir: dataDir(), binary: path.join(bin, 'redis-server') }));
    assert.ok(old instanceof RedisServerError);
    assert.equal(old.reason, 'not_found');
    assert.match(old.message, /version 6\.2\.14: .* needs redis-server 7\.0 or later .*STOREHOUSE_REDIS_ADMIN_URL/);
    const missing = await refusal(RedisServer.start({ dataDir: dataDir(), binary: path.join(bin, 'none', 'redis-server') }));
    assert.ok(missing instanceof RedisServerError);
    assert.equal(missing.reason, 'not_found');
  });

  test('the Redis provider serves stores from it, and they outlive a restart', async () => {
    const server = await start({ dataDir: dataDir() });
    const setup = await providerState('redis');
    const provider = new RedisProvider(setup.state, SecretBox.fromKey(randomBytes(32)), { adminUrl: server.adminUrl });
    try {
      await eventually('the provider connecting', async () => (await provider.availability()).available, 60_000);
      assert.deepEqual(await provider.availability(), { available: true }, 'the admin user may run every command the provider sends');
      const installationId = 'icfg_ownredis';
      const { resource, secrets } = await provider.provision({
        idempotencyKey: 'own-redis',
        installationId,
        product: setup.product,
        name: 'own',
        metadata: { pubsub: true },
        billingPlanId: 'redis_hobby',
      });
      const env = Object.fromEntries(secrets.map((secret) => [secret.name, secret.value]));
      assert.equal(new URL(env.REDIS_URL!).port, String(server.port));
      const store = connect(env.REDIS_URL!);
      await store.connect();
      assert.equal(await store.set(`${env.REDIS_KEY_PREFIX}k`, 'v'), 'OK');
      store.disconnect();

      await server.stop();
      await start({ dataDir: path.dirname(server.dir) });
      const restarted = connect(env.REDIS_URL!);
      await restarted.connect();
      assert.equal(await restarted.get(`${env.REDIS_KEY_PREFIX}k`), 'v');
      restarted.disconnect();

      await eventually('the provider reconnecting', async () => (await provider.availability()).available, 60_000);
      await provider.delete(installationId, resource.id, 'own-redis-delete');
      assert.equal(
        await asUser(server, env.REDIS_USERNAME!, env.REDIS_PASSWORD!, (redis) => redis.ping()),
        'WRONGPASS',
        'its user went with it',
      );
    } finally {
      await provider.close();
      await setup.close();
    }
  });
});

describe('redis-server log lines', () => {
  test('go to the log at the level their marker gives, the routine warnings of a start and a stop at info', () => {
    const at = (line: string, stream?: 'stdout' | 'stderr') => parseRedisLogLine(line, stream);
    assert.deepEqual(at('7124:M 03 Dec 2026 17:33:28.618 * Ready to accept connections'), {
      level: 'info',
      text: 'Ready to accept connections',
      pid: 7124,
    });
    assert.equal(at('7124:M 03 Dec 2026 17:33:28.618 . Client closed connection').level, 'debug');
    assert.equal(at('7124:M 03 Dec 2026 17:33:28.618 - Accepted 127.0.0.1:5555').level, 'debug');
    assert.equal(at('7124:M 03 Dec 2026 17:33:28.617 # WARNING Memory overcommit must be enabled!').level, 'warn');
    assert.equal(at('7124:C 03 Dec 2026 17:33:28.617 # Write error saving DB on disk: No space left on device').level, 'warn');
    assert.equal(at('7124:M 03 Dec 2026 17:33:28.617 # Server initialized').level, 'info');
    assert.equal(at('7124:C 03 Dec 2026 17:33:28.616 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo').level, 'info');
    assert.equal(at('7124:M 03 Dec 2026 17:33:33.038 # User requested shutdown...').level, 'info');
    assert.equal(at('7124:signal-handler (1796319212) Received SIGTERM scheduling shutdown...').level, 'info');
    assert.equal(at('*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***', 'stderr').level, 'error');
  });
});
