/**
 * The built-in Redis provider: given an admin connection to a Redis server, each resource is an
 * ACL user with a random password, limited to its own key prefix (`~<prefix>:*`) and, when the
 * product's metadata allows Pub/Sub, its own channels (`&<prefix>:*`), and denied the commands
 * that reveal other stores' keys or change the server.
 *
 * ACL users vanish when Redis restarts without an ACL file, so every live resource's user is
 * set again each time the admin connection becomes ready (at start and after every reconnect).
 *
 * A user is set (provision, reapply, rotation, update) by whoever read its record live, and a
 * delete may begin meanwhile: a SETUSER that reached Redis after the delete's DELUSER would leave
 * a user no record owns, for good if its sender died before it could take the user away again
 * (kill -9 of a node in the middle of reapply, the chaos run's orphan). So a delete first fences
 * the name, in one transaction with its DELUSER (a key, `storehouse:acl-fence:<user>`), and every
 * SETUSER is a transaction WATCHing that key: Redis applies it only while no fence exists, and
 * refuses it once one is set. Whatever instant a node dies at, a user Redis holds was set before
 * its delete's DELUSER, which removes it (a delete recorded as begun is finished by whoever comes
 * next), or its record is live and its store still holds it.
 */
import { Redis } from 'ioredis';
import { offeredPlans, type BillingPlan, type Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { AppError, conflict } from '../errors.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import {
  providerUnavailable,
  type Provider,
  type ProviderResource,
  type ProvisionRequest,
  type ResourceUpdate,
  type Secret,
} from './provider.ts';
import { ResourceRecords, type ResourceRecord } from './resource-records.ts';

interface RedisDetails {
  username: string;
  prefix: string;
}

/**
 * Denied on top of @dangerous (which already covers KEYS, FLUSHALL, FLUSHDB, CONFIG, ACL, INFO,
 * CLIENT LIST/KILL, MONITOR, SORT...): commands that list or count the whole key space or switch
 * databases; PUBSUB, whose introspection lists every store's channels; CLIENT TRACKING, whose
 * broadcast mode streams every key name written; Redis functions and the script cache's
 * FLUSH/KILL/EXISTS, which are shared by every user; MEMORY but MEMORY USAGE (its STATS count the
 * key space); and COPY and MOVE, which can put keys in databases a store's deletion never sees.
 */
/** How long a call waits for a connection being made before it answers that Redis is unavailable. */
const CONNECT_WAIT_MS = 3_000;

/**
 * The key that fences a deleted user's name (see the top of this file). It outlives by far any
 * SETUSER a node could still have under way for the name (a command times out in 10 s), and then
 * expires: user names are random, never used again.
 */
const fenceOf = (username: string) => `storehouse:acl-fence:${username}`;
const FENCE_TTL_SECS = 24 * 3600;

/** Connections for fenced SETUSERs (WATCH holds a connection to itself), at most this many at once; they stay open once made. */
const FENCED_CONNECTIONS = 8;

/** How long a SETUSER waits for one of those connections (each is busy for a round trip or three). */
const TURN_WAIT_MS = 10_000;

/** How soon a reapply that failed (the connection still up) is tried again. */
const REAPPLY_RETRY_MS = 1_000;

/** The commands the admin user must be allowed (docs/providers.md, the Redis provider). */
const ADMIN_NEEDS = 'ACL, SCAN, UNLINK, SET, EXISTS, WATCH, UNWATCH, MULTI and EXEC';

const DENIED = [
  '-@dangerous',
  '-scan',
  '-randomkey',
  '-dbsize',
  '-keys',
  '-select',
  '-flushall',
  '-flushdb',
  '-config',
  '-acl',
  '-swapdb',
  '-move',
  '-copy',
  '-pubsub',
  '-client|tracking',
  '-client|caching',
  '-client|trackinginfo',
  '-client|getredir',
  '-function',
  '-fcall',
  '-fcall_ro',
  '-script|flush',
  '-script|kill',
  '-script|exists',
  '-memory',
  '+memory|usage',
];

export interface RedisProviderOptions {
  adminUrl: string;
  onError?: (error: Error) => void;
}

export class RedisProvider implements Provider {
  private readonly admin: Redis;
  /** Why the admin connection last failed (a wrong password, a refused connection), for availability's answer. */
  private lastError: string | undefined;
  private readonly records: ResourceRecords<RedisDetails>;
  private readonly host: string;
  private readonly port: number;
  /** Connections for fenced SETUSERs: those idle, and every one open (closed with the provider). */
  private readonly idle: Redis[] = [];
  private readonly fencing = new Set<Redis>();
  private turns = 0;
  /** Callers waiting for a turn: given it (`go`) or refused (`refuse`, at their deadline or at close). */
  private readonly waiting: Array<{ go: () => void; refuse: (error: Error) => void }> = [];
  private closed = false;
  private reapplyTimer: NodeJS.Timeout | undefined;

  private readonly onError: ((error: Error) => void) | undefined;

  constructor(state: Queryable, box: SecretBox, options: RedisProviderOptions) {
    this.onError = options.onError;
    this.records = new ResourceRecords(state, box, 'redis');
    const url = new URL(options.adminUrl);
    this.host = url.hostname || 'localhost';
    this.port = Number(url.port || 6379);
    // No offline queue: while Redis is away, calls fail at once (as "unavailable") instead of hanging.
    this.admin = new Redis(options.adminUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 10_000, // a server that stops answering is unavailable, not a hang
      connectionName: 'storehouse-admin',
    });
    this.admin.on('error', (error) => {
      this.lastError = withoutArguments(error).message;
      options.onError?.(error);
    });
    this.admin.on('ready', () => this.reapplySoon(0, options.onError));
  }

  /**
   * Reapplies after `delayMs`, and again a second later for as long as it fails while the admin
   * connection is up: until it succeeds, stores whose users Redis forgot cannot connect.
   */
  private reapplySoon(delayMs: number, onError: ((error: Error) => void) | undefined): void {
    clearTimeout(this.reapplyTimer);
    this.reapplyTimer = setTimeout(() => {
      this.reapply().catch((error: Error) => {
        onError?.(withoutArguments(error));
        if (!this.closed && this.admin.status === 'ready') this.reapplySoon(REAPPLY_RETRY_MS, onError);
      });
    }, delayMs);
    this.reapplyTimer.unref();
  }

  /**
   * Sets every live resource's user again (Redis may have restarted and forgotten them), then
   * takes away any whose resource a delete began on meanwhile (one read for all of them).
   */
  async reapply(): Promise<number> {
    const live = await this.records.live();
    // A user whose name a delete fenced meanwhile is not set again (setUser refuses it).
    await this.withFenced(async (redis) => {
      for (const record of live) await this.setUserOn(redis, record);
    });
    const still = new Set((await this.records.liveDetails()).map((record) => record.id));
    for (const record of live) {
      if (!still.has(record.id)) await this.call((redis) => redis.call('ACL', 'DELUSER', record.details.username));
    }
    return live.length;
  }

  /**
   * After setting a user: if a delete began meanwhile, take the user away again and answer 409.
   * (A delete that begins after this check removes the user itself.)
   */
  private async unlessDeleted(record: ResourceRecord<RedisDetails>): Promise<void> {
    try {
      await this.records.expectState(record, ['provisioning', 'ready']);
    } catch (error) {
      await this.call((redis) => redis.call('ACL', 'DELUSER', record.details.username));
      throw error;
    }
  }

  /** Checks availability once and reports an unavailable provider through `onError` (at start). */
  async reportAvailability(): Promise<void> {
    const answer = await this.availability();
    if (!answer.available) this.onError?.(new Error(`the Redis provider is unavailable: ${answer.reason}`));
  }

  async availability() {
    if (!(await this.connected())) return { available: false as const, reason: this.unreachable() };
    try {
      // Every command this provider sends, on a key of its own: PING would prove none of the
      // permissions, and ACL USERS alone not the fenced transactions every SETUSER is.
      const probe = fenceOf('storehouse-probe');
      await this.admin.call('ACL', 'USERS');
      await this.admin.scan('0', 'MATCH', probe, 'COUNT', 1);
      await this.withFenced(async (redis) => {
        await redis.watch(probe);
        await redis.exists(probe);
        await redis.unwatch();
        const replies = await redis.multi().set(probe, '1', 'EX', 60).unlink(probe).exec();
        const failed = replies?.find(([error]) => error)?.[0];
        if (failed) throw failed;
      });
      return { available: true as const };
    } catch (error) {
      if (/NOPERM|EXECABORT/.test((error as Error).message)) {
        return { available: false as const, reason: `the admin user may not run every command this provider needs: ${ADMIN_NEEDS}` };
      }
      return { available: false as const, reason: `lost the Redis server (${(error as Error).message})` };
    }
  }

  private unreachable(): string {
    return `cannot reach the Redis server (${this.lastError ?? `connection ${this.admin.status}`})`;
  }

  async listPlans(product: Product): Promise<BillingPlan[]> {
    return offeredPlans(product);
  }

  /**
   * Waits, briefly, for a connection being made (at start, or a reconnect under way): a call that
   * comes a moment too early is not one to refuse. A Redis known to be away is not waited for.
   */
  private async connected(): Promise<boolean> {
    if (this.admin.status === 'ready') return true;
    if (this.admin.status !== 'connecting' && this.admin.status !== 'connect') return false;
    return new Promise<boolean>((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.admin.off('ready', onReady).off('close', onClose);
        resolve(ready);
      };
      const onReady = () => done(true);
      const onClose = () => done(false);
      const timer = setTimeout(() => done(this.admin.status === 'ready'), CONNECT_WAIT_MS);
      this.admin.once('ready', onReady).once('close', onClose);
    });
  }

  /** A call on the admin connection; Redis being away is the provider being unavailable, not a 500. */
  private async call<T>(work: (redis: Redis) => Promise<T>): Promise<T> {
    if (!(await this.connected())) {
      throw providerUnavailable('redis', this.unreachable());
    }
    try {
      return await work(this.admin);
    } catch (error) {
      throw unavailableOr(error as Error);
    }
  }

  /**
   * Work on a connection of its own (WATCH is per connection, so fenced SETUSERs cannot share the
   * admin connection): an idle one, or a new one, at most FENCED_CONNECTIONS at once (50 creates
   * together wait their turn for a few milliseconds each, rather than opening 50 connections at
   * once, which on a loaded machine took longer than the connect wait). One that failed is closed.
   */
  private async withFenced<T>(work: (redis: Redis) => Promise<T>): Promise<T> {
    if (!(await this.connected())) throw providerUnavailable('redis', this.unreachable());
    await this.takeTurn();
    try {
      let redis = this.idle.pop();
      // One Redis dropped while it was idle (a restart) is no use.
      while (redis && redis.status !== 'ready') {
        this.discard(redis);
        redis = this.idle.pop();
      }
      if (!redis) {
        redis = this.admin.duplicate({ connectionName: 'storehouse-fenced', lazyConnect: true, retryStrategy: () => null });
        redis.on('error', (error) => (this.lastError = withoutArguments(error).message));
        this.fencing.add(redis);
        try {
          await connectWithin(redis, CONNECT_WAIT_MS);
        } catch (error) {
          this.discard(redis);
          throw unavailableOr(error as Error);
        }
      }
      try {
        const result = await work(redis);
        if (!this.closed && redis.status === 'ready') this.idle.push(redis);
        else this.discard(redis);
        return result;
      } catch (error) {
        this.discard(redis); // a WATCH may still be on it
        throw unavailableOr(error as Error);
      }
    } finally {
      this.endTurn();
    }
  }

  /** Waits for one of the FENCED_CONNECTIONS turns, for at most TURN_WAIT_MS. */
  private takeTurn(): Promise<void> {
    if (this.closed) return Promise.reject(providerUnavailable('redis', 'the provider is shutting down'));
    if (this.turns < FENCED_CONNECTIONS) {
      this.turns++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        go: () => {
          clearTimeout(timer);
          resolve();
        },
        refuse: (error: Error) => {
          clearTimeout(timer);
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          reject(error);
        },
      };
      const timer = setTimeout(
        () => waiter.refuse(providerUnavailable('redis', `every connection to the Redis server stayed busy for ${TURN_WAIT_MS} ms`)),
        TURN_WAIT_MS,
      );
      timer.unref();
      this.waiting.push(waiter);
    });
  }

  /** Hands the turn to the next waiter, or gives it back. */
  private endTurn(): void {
    const next = this.waiting.shift();
    if (next) next.go();
    else this.turns--;
  }

  private discard(redis: Redis): void {
    this.fencing.delete(redis);
    redis.disconnect();
  }

  /** Sets the record's user; false when its name is fenced (a delete began: the user is not set). */
  private setUser(record: ResourceRecord<RedisDetails>): Promise<boolean> {
    return this.withFenced((redis) => this.setUserOn(redis, record));
  }

  private async setUserOn(redis: Redis, record: ResourceRecord<RedisDetails>): Promise<boolean> {
    const { username, prefix } = record.details;
    const fence = fenceOf(username);
    await redis.watch(fence);
    if ((await redis.exists(fence)) === 1) {
      await redis.unwatch();
      return false;
    }
    const channels = record.metadata.pubsub === false ? [] : [`&${prefix}:*`];
    // `reset` first: the rules below are the whole truth, whatever the user had before. EXEC
    // answers null, applying nothing, when a delete set the fence since the WATCH.
    const replies = await redis
      .multi()
      .call(
        'ACL',
        'SETUSER',
        username,
        'reset',
        'on',
        `>${record.secret!}`,
        `~${prefix}:*`,
        'resetchannels',
        ...channels,
        '+@all',
        ...DENIED,
      )
      .exec();
    if (replies === null) return false;
    const failed = replies.find(([error]) => error)?.[0];
    if (failed) throw failed;
    return true;
  }

  /** The user's name fenced and the user deleted, at once (see the top of this file); also disconnects its clients. */
  private async fenceAndDelete(redis: Redis, username: string): Promise<void> {
    const replies = await redis.multi().set(fenceOf(username), '1', 'EX', FENCE_TTL_SECS).call('ACL', 'DELUSER', username).exec();
    const failed = replies?.find(([error]) => error)?.[0];
    if (failed) throw failed;
  }

  checkMetadata(): void {
    // The product's schema says all there is to say (a boolean).
  }

  async provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    const record = await this.records.claimFor(request, (id) => ({ username: id, prefix: id }));
    // ACL SETUSER is atomic and idempotent: a retry sets the same user. Refused once an abandon
    // of this provision fenced the name.
    if (!(await this.setUser(record))) throw deleted(record);
    let ready: ResourceRecord<RedisDetails>;
    try {
      ready = await this.records.markReady(record);
    } catch (error) {
      // A delete began meanwhile (its DELUSER removes the user too, once it has fenced the name).
      await this.call((redis) => this.fenceAndDelete(redis, record.details.username));
      throw error;
    }
    return { resource: ResourceRecords.asResource(ready), secrets: this.secrets(ready) };
  }

  private secrets(record: ResourceRecord<RedisDetails>): Secret[] {
    const { username, prefix } = record.details;
    const password = record.secret!;
    const url = `redis://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${this.host}:${this.port}`;
    const values: Array<[string, string]> = [
      ['REDIS_URL', url],
      ['KV_URL', url],
      ['REDIS_HOST', this.host],
      ['REDIS_PORT', String(this.port)],
      ['REDIS_USERNAME', username],
      ['REDIS_PASSWORD', password],
      ['REDIS_KEY_PREFIX', `${prefix}:`],
    ];
    return values.map(([name, value]) => ({ name, value }));
  }

  async get(installationId: string, resourceId: string): Promise<ProviderResource> {
    const record = await this.records.get(installationId, resourceId);
    const resource = ResourceRecords.asResource(record);
    if (record.state !== 'ready' || this.admin.status !== 'ready') return resource;
    const user = await this.admin.call('ACL', 'GETUSER', record.details.username).catch(() => 'unknown');
    return user === null ? { ...resource, status: 'error' } : resource;
  }

  async update(installationId: string, resourceId: string, update: ResourceUpdate, _idempotencyKey?: string): Promise<ProviderResource> {
    const { record, next } = await this.records.forUpdate(installationId, resourceId, update);
    if (update.metadata) {
      if (!(await this.setUser(next))) throw deleted(next);
      await this.unlessDeleted(next);
    }
    await this.records.update(record.id, update);
    return ResourceRecords.asResource(next);
  }

  async delete(installationId: string, resourceId: string, _idempotencyKey?: string): Promise<void> {
    const record = await this.records.beginDelete(installationId, resourceId);
    if (!record) return;
    const { username, prefix } = record.details;
    await this.call(async (redis) => {
      await this.fenceAndDelete(redis, username);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        if (keys.length > 0) await redis.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    });
    await this.records.setState(record.id, 'deleted');
  }

  abandon({ installationId, idempotencyKey }: ProvisionRequest): Promise<void> {
    return this.records.abandon(installationId, idempotencyKey, (id) => this.delete(installationId, id, idempotencyKey));
  }

  async rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]> {
    const record = await this.records.rotation(installationId, resourceId, idempotencyKey);
    // The user's open connections keep working until they reconnect, as with Postgres.
    if (!(await this.setUser(record))) throw deleted(record);
    await this.unlessDeleted(record);
    await this.records.promote(record.id);
    return this.secrets(record);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reapplyTimer);
    for (const waiter of [...this.waiting]) waiter.refuse(providerUnavailable('redis', 'the provider is shutting down'));
    this.admin.disconnect();
    for (const redis of this.fencing) redis.disconnect();
    this.fencing.clear();
    this.idle.length = 0;
  }
}

const deleted = (record: ResourceRecord<RedisDetails>) => conflict('resource_deleted', `The resource ${record.id} is being deleted`);

/** Redis being away (a refused, closed or silent connection) is the provider being unavailable; other errors keep their message, without their arguments. */
function unavailableOr(error: Error): Error {
  if (error instanceof AppError) return error;
  if (/Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|Command timed out|no connection within/.test(error.message)) {
    return providerUnavailable('redis', `lost the Redis server (${error.message})`);
  }
  return withoutArguments(error);
}

/** Connects a lazy connection, or fails after `ms` (a Redis that accepts and never answers). */
async function connectWithin(redis: Redis, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** ioredis puts a failed command's arguments on its errors; for ACL SETUSER they hold a password. */
function withoutArguments(error: Error): Error {
  // A fresh error with the message only: ioredis hangs the command, with its arguments (an ACL
  // SETUSER's `>password`), on the error and, for a transaction that failed, on each of its
  // `previousErrors`, and a logger prints them all. A message that quotes a modifier loses it too.
  const clean = new Error(error.message.replace(/'>[^']*'/g, "'>[redacted]'"));
  clean.name = error.name;
  return clean;
}
