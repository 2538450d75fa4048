/**
 * The built-in Redis provider: given an admin connection to a Redis server, each resource is an
 * ACL user with a random password, limited to its own key prefix (`~<prefix>:*`) and, when the
 * product's metadata allows Pub/Sub, its own channels (`&<prefix>:*`), and denied the commands
 * that reveal other stores' keys or change the server.
 *
 * ACL users vanish when Redis restarts without an ACL file, so every live resource's user is
 * set again each time the admin connection becomes ready (at start and after every reconnect).
 *
 * A user is set (provision, reapply, rotation, update) by any node, any time, while others may
 * be rotating its password or deleting it: a SETUSER built from a record read before another
 * writer changed the record would land with what the record no longer says (reapply putting an
 * old password back after a rotation; a deleted store's user made again, for good if its sender
 * died before it could take it away: the chaos run's orphan). So every SETUSER is a transaction
 * WATCHing two keys of the user's, its fence (`storehouse:acl-fence:<user>`, set by a delete in
 * one transaction with its DELUSER) and its version (`storehouse:acl-version:<user>`, bumped by
 * every SETUSER's transaction), and built from the record read again from the state database
 * after the WATCH. Redis applies it only if no other SETUSER and no delete reached the user since
 * that read; one that lost the race reads again and retries. So whatever instant a node dies at,
 * the last SETUSER Redis applied was built from the record as it is now (every change to a record
 * is followed by its own SETUSER, or by the next reapply), or the user was deleted after it.
 *
 * A rotation keeps its new password pending in the record until Redis has it: while pending, a
 * user accepts both the current and the pending password (the store's credentials keep working
 * until it has the new ones); once promoted, the user is set again with the new one only.
 *
 * A user no live record has (made by a node of an older version after its fence was lost with a
 * flushed or restarted Redis, saved in an ACL file before its delete, or left by a state database
 * restored from a backup) is removed by a sweep: after each reapply (at start and after every
 * reconnect) and every SWEEP_INTERVAL_MS. Several deployments may share one Redis, so names carry
 * this deployment's tag (table `deployment`): `sh_<tag>_<id>`; the sweep removes users of that
 * form, and users of the older untagged form (`sh_<id>`, the record's id) only when this
 * deployment's records have them deleted.
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
import { ResourceRecords, type RecordState, type ResourceRecord } from './resource-records.ts';

interface RedisDetails {
  username: string;
  prefix: string;
}

/** How long a call waits for a connection being made before it answers that Redis is unavailable. */
const CONNECT_WAIT_MS = 3_000;

/**
 * The key that fences a deleted user's name (see the top of this file). It outlives by far any
 * SETUSER a node could still have under way for the name (a command times out in 10 s), and then
 * expires: user names are random, never used again.
 */
const fenceOf = (username: string) => `storehouse:acl-fence:${username}`;
const FENCE_TTL_SECS = 24 * 3600;

/** The key every SETUSER of the user bumps in its transaction, and WATCHes (see the top of this file); removed with the user. */
const versionOf = (username: string) => `storehouse:acl-version:${username}`;

/** How many times a SETUSER that another writer of the same user overtook is tried again (each loss is another writer's success). */
const SET_TRIES = 10;

/** Users a reapply sets in one transaction (one WATCH of their keys, one read of their records). */
const REAPPLY_BATCH = 50;

/** How often users no live record has are swept away (besides after each reapply). */
const SWEEP_INTERVAL_MS = 10 * 60_000;

/** A record whose user should exist. */
const LIVE: RecordState[] = ['provisioning', 'ready'];

/** A user's name: `sh_<deployment tag>_<the record id's random part>` (record ids are `sh_` and 20 of [0-9a-z]). */
const userOf = (tag: string, id: string) => `sh_${tag}_${id.slice('sh_'.length)}`;
/** The names this deployment gives its users. */
const taggedWith = (tag: string) => new RegExp(`^sh_${tag}_[0-9a-z]{20}$`);
/** The names given before names had a tag: the record's id, whichever deployment made it. */
const UNTAGGED = /^sh_[0-9a-z]{20}$/;

/** Connections for fenced SETUSERs (WATCH holds a connection to itself), at most this many at once; they stay open once made. */
const FENCED_CONNECTIONS = 8;

/** How long a SETUSER waits for one of those connections (each is busy for a round trip or three). */
const TURN_WAIT_MS = 10_000;

/** How soon a reapply that failed (the connection still up) is tried again. */
const REAPPLY_RETRY_MS = 1_000;

/** The commands the admin user must be allowed (docs/providers.md, the Redis provider). */
const ADMIN_NEEDS = 'ACL, SCAN, UNLINK, SET, INCR, EXISTS, WATCH, UNWATCH, MULTI and EXEC';

/**
 * What a store's user may not run: @dangerous (which already covers KEYS, FLUSHALL, FLUSHDB,
 * CONFIG, ACL, INFO, CLIENT LIST/KILL, MONITOR, SORT...); commands that list or count the whole
 * key space or switch databases; PUBSUB, whose introspection lists every store's channels; CLIENT
 * TRACKING, whose broadcast mode streams every key name written; MEMORY but MEMORY USAGE (its
 * STATS count the key space); COPY and MOVE, which can put keys in databases a store's deletion
 * never sees. Scripting is refused whole (`@scripting`: EVAL, EVALSHA, FCALL, SCRIPT, FUNCTION):
 * Redis runs one script at a time, so one store's endless script (or a SCRIPT DEBUG SYNC session)
 * blocks every store on the server, and a script that wrote cannot be killed short of stopping
 * the server.
 */
const DENIED = [
  '-@dangerous',
  '-@scripting',
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
  '-memory',
  '+memory|usage',
];

export interface RedisProviderOptions {
  adminUrl: string;
  onError?: (error: Error) => void;
  /** How often users no live record has are swept away; SWEEP_INTERVAL_MS unless given. */
  sweepIntervalMs?: number;
  /**
   * The server keeps its users in an ACL file (the embedded default's own redis-server): every
   * transaction that changes users ends with ACL SAVE, so they are on disk before it answers. A
   * server without an ACL file refuses ACL SAVE, so this is only for one known to have it.
   */
  saveAcl?: boolean;
}

/** What a SETUSER needs to know of a record before reading it again: which record, and the user's name. */
type Target = Pick<ResourceRecord<RedisDetails>, 'id' | 'details'>;

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
  private readonly sweepTimer: NodeJS.Timeout;
  /** The reapply under way, which a call meanwhile waits for instead of starting another. */
  private reapplying: Promise<number> | undefined;
  /** This deployment's tag, read once. */
  private tag: Promise<string> | undefined;

  private readonly onError: ((error: Error) => void) | undefined;
  private readonly saveAcl: boolean;

  constructor(
    private readonly state: Queryable,
    box: SecretBox,
    options: RedisProviderOptions,
  ) {
    this.onError = options.onError;
    this.saveAcl = options.saveAcl ?? false;
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
    this.sweepTimer = setInterval(() => {
      if (this.admin.status === 'ready') this.sweepReporting();
    }, options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  /**
   * Reapplies after `delayMs`, and again a second later for as long as it fails while the admin
   * connection is up: until it succeeds, stores whose users Redis forgot cannot connect. Then
   * sweeps away users no live record has.
   */
  private reapplySoon(delayMs: number, onError: ((error: Error) => void) | undefined): void {
    clearTimeout(this.reapplyTimer);
    this.reapplyTimer = setTimeout(() => {
      this.reapply().then(
        () => this.sweepReporting(),
        (error: Error) => {
          onError?.(withoutArguments(error));
          if (!this.closed && this.admin.status === 'ready') this.reapplySoon(REAPPLY_RETRY_MS, onError);
        },
      );
    }, delayMs);
    this.reapplyTimer.unref();
  }

  /**
   * Sets every live resource's user again (Redis may have restarted and forgotten them), as each
   * record says when its user is set; answers how many were set. A call while a reapply is under
   * way answers when that one ends: it holds one connection throughout, so a restart of Redis
   * during it fails it (and the reconnect's reapply is tried again) rather than going unnoticed.
   */
  reapply(): Promise<number> {
    this.reapplying ??= this.reapplyAll().finally(() => {
      this.reapplying = undefined;
    });
    return this.reapplying;
  }

  private async reapplyAll(): Promise<number> {
    // Ids and names only: each batch's records (and their secrets) are read again after its WATCH.
    const live = await this.records.liveDetails();
    return this.withFenced(async (redis) => {
      let set = 0;
      for (let start = 0; start < live.length; start += REAPPLY_BATCH) {
        const batch = live.slice(start, start + REAPPLY_BATCH);
        const done = await this.setUsersOnce(redis, batch);
        if (done) set += done.length;
        // Another writer got to one of them first: each on its own, each until it holds.
        else for (const target of batch) if (await this.setUserOn(redis, target)) set++;
      }
      return set;
    });
  }

  /**
   * Removes the ACL users of this deployment that no live record has: users of its tagged form
   * whose record is not live or does not exist, and users of the untagged form whose record it
   * has, not live. Users of other deployments (another tag, or an untagged name it has no record
   * of) are left alone. Each is removed as a delete removes one (fenced), so no writer that read
   * its record live long ago can set it again. Answers how many were removed.
   */
  async sweep(): Promise<number> {
    const tag = await this.deploymentTag();
    const tagged = taggedWith(tag);
    // The users first, the records after: a provision records its resource before it sets the
    // user, so a user in this list whose record is mid-provision has its record seen live below.
    const users = (await this.call((redis) => redis.call('ACL', 'USERS'))) as string[];
    const candidates = users.filter((user) => tagged.test(user) || UNTAGGED.test(user));
    if (candidates.length === 0) return 0;
    const idOf = (user: string) => (tagged.test(user) ? `sh_${user.slice(-20)}` : user);
    const { rows } = await this.state.query<{ username: string; state: RecordState }>(
      "SELECT details->>'username' AS username, state FROM provider_resources WHERE provider = 'redis' AND id = ANY($1)",
      [candidates.map(idOf)],
    );
    const states = new Map(rows.map((row) => [row.username, row.state]));
    const orphans = candidates.filter((user) => {
      const state = states.get(user);
      return state === undefined ? tagged.test(user) : !LIVE.includes(state);
    });
    if (orphans.length > 0) await this.call((redis) => this.fenceAndDelete(redis, ...orphans));
    return orphans.length;
  }

  /** A sweep whose failure is reported, not thrown (at start, after a reconnect, on the timer). */
  private sweepReporting(): void {
    this.sweep().catch((error: Error) => this.onError?.(withoutArguments(error)));
  }

  /** This deployment's tag (table `deployment`), read once (again after a failed read). */
  private deploymentTag(): Promise<string> {
    if (!this.tag) {
      const reading = this.state.query<{ tag: string }>('SELECT tag FROM deployment').then(({ rows }) => {
        if (!rows[0]) throw new Error('the state database names no deployment (table deployment is empty)');
        return rows[0].tag;
      });
      reading.catch(() => {
        if (this.tag === reading) this.tag = undefined;
      });
      this.tag = reading;
    }
    return this.tag;
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
      // No ACL SAVE: it would rewrite the ACL file at every probe, and the embedded server's admin,
      // the only one saveAcl is for, may run every ACL subcommand (redis-server.ts, ADMIN_RIGHTS).
      await this.admin.call('ACL', 'USERS');
      await this.admin.scan('0', 'MATCH', probe, 'COUNT', 1);
      await this.withFenced(async (redis) => {
        await redis.watch(probe);
        await redis.exists(probe);
        await redis.unwatch();
        const replies = await redis.multi().set(probe, '1', 'EX', 60).incr(probe).unlink(probe).exec();
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

  /** Sets the record's user as its record says now; false when the record is not live (a delete began: the user is not set). */
  private setUser(target: Target): Promise<boolean> {
    return this.withFenced((redis) => this.setUserOn(redis, target));
  }

  /** setUser on a fenced connection: tried again while other writers of the user get in first, at most SET_TRIES times. */
  private async setUserOn(redis: Redis, target: Target): Promise<boolean> {
    for (let attempt = 0; attempt < SET_TRIES; attempt++) {
      const set = await this.setUsersOnce(redis, [target]);
      if (set) return set.length === 1;
    }
    throw providerUnavailable('redis', `the ACL user ${target.details.username} kept being changed by others (${SET_TRIES} tries)`);
  }

  /**
   * One try at setting these records' users (see the top of this file): WATCHes each one's fence
   * and version, reads the records again, and sets the users of those still live and not fenced,
   * in one transaction that bumps each one's version. Answers the ids set; undefined when another
   * writer reached one of the users since the WATCH, and then nothing was set.
   */
  private async setUsersOnce(redis: Redis, targets: Target[]): Promise<string[] | undefined> {
    const names = targets.map((target) => target.details.username);
    const watching = redis.pipeline().watch(...names.flatMap((name) => [fenceOf(name), versionOf(name)]));
    for (const name of names) watching.exists(fenceOf(name));
    const watched = (await watching.exec()) ?? [];
    const failed = watched.find(([error]) => error)?.[0];
    if (failed) throw failed;
    const fenced = watched.slice(1).map(([, exists]) => exists === 1);
    // Read after the WATCH: a change made to a record after this read is followed by a SETUSER
    // (or a delete) of its own, whose transaction makes this one's EXEC answer null.
    const records = await this.records.byIds(targets.map((target) => target.id));
    const live = targets.flatMap((target, i) => {
      const record = records.get(target.id);
      return record && !fenced[i] && LIVE.includes(record.state) ? [record] : [];
    });
    if (live.length === 0) {
      await redis.unwatch();
      return [];
    }
    const transaction = redis.multi();
    for (const record of live) transaction.call('ACL', 'SETUSER', ...this.rulesOf(record)).incr(versionOf(record.details.username));
    if (this.saveAcl) transaction.call('ACL', 'SAVE');
    const replies = await transaction.exec();
    if (replies === null) return undefined;
    const refused = replies.find(([error]) => error)?.[0];
    if (refused) throw refused;
    return live.map((record) => record.id);
  }

  /**
   * The SETUSER arguments that make the record's user what the record says: `reset` first, so
   * they are the whole truth whatever the user had before; during a rotation both passwords.
   */
  private rulesOf(record: ResourceRecord<RedisDetails>): string[] {
    const { username, prefix } = record.details;
    const passwords = [
      record.secret!,
      ...(record.pendingSecret !== undefined && record.pendingSecret !== record.secret ? [record.pendingSecret] : []),
    ];
    const channels = record.metadata.pubsub === false ? [] : [`&${prefix}:*`];
    return [
      username,
      'reset',
      'on',
      ...passwords.map((password) => `>${password}`),
      `~${prefix}:*`,
      'resetchannels',
      ...channels,
      '+@all',
      ...DENIED,
    ];
  }

  /**
   * The users' names fenced and the users deleted, at once (see the top of this file), their
   * versions gone with them; also disconnects their clients. One transaction (one ACL SAVE) for all.
   */
  private async fenceAndDelete(redis: Redis, ...usernames: string[]): Promise<void> {
    const transaction = redis.multi();
    for (const username of usernames) {
      transaction.set(fenceOf(username), '1', 'EX', FENCE_TTL_SECS).unlink(versionOf(username)).call('ACL', 'DELUSER', username);
    }
    // Saved with it: a DELUSER only in memory would bring a deleted store's user back at a restart.
    if (this.saveAcl) transaction.call('ACL', 'SAVE');
    const replies = await transaction.exec();
    const failed = replies?.find(([error]) => error)?.[0];
    if (failed) throw failed;
  }

  checkMetadata(): void {
    // The product's schema says all there is to say (a boolean).
  }

  async provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    const tag = await this.deploymentTag();
    const record = await this.records.claimFor(request, (id) => ({ username: userOf(tag, id), prefix: id }));
    // ACL SETUSER is atomic and idempotent: a retry sets the same user. Refused once an abandon
    // of this provision began deleting the record.
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
    // The record first: the user is set from it (a failure here is sent again with the same key,
    // and a node dying before the SETUSER leaves it to the next reapply).
    await this.records.update(record.id, update);
    if (update.metadata && !(await this.setUser(record))) throw deleted(record);
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

  /**
   * The rotation's password is recorded pending, the user set to take both, the pending one
   * promoted in the record, and the user set again with it alone. A node dying at any step leaves
   * a user the record's credentials work with (both until the promotion, the new one after it),
   * which the next reapply sets again; a retry with the same key finishes the rotation.
   */
  async rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]> {
    const record = await this.records.rotation(installationId, resourceId, idempotencyKey);
    // The user's open connections keep working until they reconnect, as with Postgres.
    if (record.pendingSecret !== undefined) {
      if (!(await this.setUser(record))) throw deleted(record);
      if (!(await this.records.promote(record.id, record.pendingSecret))) throw rotationRaced(record.id);
    }
    if (!(await this.setUser(record))) throw deleted(record);
    return this.secrets(record);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reapplyTimer);
    clearInterval(this.sweepTimer);
    for (const waiter of [...this.waiting]) waiter.refuse(providerUnavailable('redis', 'the provider is shutting down'));
    this.admin.disconnect();
    for (const redis of this.fencing) redis.disconnect();
    this.fencing.clear();
    this.idle.length = 0;
  }
}

const deleted = (record: ResourceRecord<RedisDetails>) => conflict('resource_deleted', `The resource ${record.id} is being deleted`);
/** Another rotation (another key) replaced this one's password before it was promoted: that one's wins. */
const rotationRaced = (id: string) =>
  conflict('resource_rotating', `Another rotation of the resource ${id}'s secrets began meanwhile: try again once it is done`);

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
