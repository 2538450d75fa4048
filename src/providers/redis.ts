/**
 * The built-in Redis provider: given an admin connection to a Redis server, each resource is an
 * ACL user with a random password, limited to its own key prefix (`~<prefix>:*`) and, when the
 * product's metadata allows Pub/Sub, its own channels (`&<prefix>:*`), and denied the commands
 * that reveal other stores' keys or change the server.
 *
 * ACL users vanish when Redis restarts without an ACL file, so every live resource's user is
 * set again each time the admin connection becomes ready (at start and after every reconnect).
 */
import { Redis } from 'ioredis';
import { offeredPlans, type BillingPlan, type Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
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

  constructor(state: Queryable, box: SecretBox, options: RedisProviderOptions) {
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
    this.admin.on('ready', () => void this.reapply().catch((error) => options.onError?.(withoutArguments(error))));
  }

  /**
   * Sets every live resource's user again (Redis may have restarted and forgotten them), then
   * takes away any whose resource a delete began on meanwhile (one read for all of them).
   */
  async reapply(): Promise<number> {
    const live = await this.records.live();
    for (const record of live) await this.setUser(record);
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

  async availability() {
    if (!(await this.connected())) return { available: false as const, reason: this.unreachable() };
    try {
      // ACL USERS needs the ACL permission this provider works with, which PING would not prove.
      await this.admin.call('ACL', 'USERS');
      return { available: true as const };
    } catch (error) {
      if (/NOPERM/.test((error as Error).message)) {
        return { available: false as const, reason: 'the admin user may not run ACL commands: it needs ACL, SCAN and UNLINK' };
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
      if (/Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|Command timed out/.test((error as Error).message)) {
        throw providerUnavailable('redis', `lost the Redis server (${(error as Error).message})`);
      }
      throw withoutArguments(error as Error);
    }
  }

  private setUser(record: ResourceRecord<RedisDetails>): Promise<unknown> {
    const { username, prefix } = record.details;
    const channels = record.metadata.pubsub === false ? [] : [`&${prefix}:*`];
    // `reset` first: the rules below are the whole truth, whatever the user had before.
    return this.call((redis) =>
      redis.call(
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
      ),
    );
  }

  checkMetadata(): void {
    // The product's schema says all there is to say (a boolean).
  }

  async provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    const record = await this.records.claimFor(request, (id) => ({ username: id, prefix: id }));
    await this.setUser(record); // ACL SETUSER is atomic and idempotent: a retry sets the same user
    let ready: ResourceRecord<RedisDetails>;
    try {
      ready = await this.records.markReady(record);
    } catch (error) {
      // A delete began meanwhile: it may have removed the user before this set it again.
      await this.call((redis) => redis.call('ACL', 'DELUSER', record.details.username));
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
      await this.setUser(next);
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
      await redis.call('ACL', 'DELUSER', username); // also disconnects the user's clients
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
    await this.setUser(record);
    await this.unlessDeleted(record);
    await this.records.promote(record.id);
    return this.secrets(record);
  }

  async close(): Promise<void> {
    this.admin.disconnect();
  }
}

/** ioredis puts a failed command's arguments on its errors; for ACL SETUSER they hold a password. */
function withoutArguments(error: Error): Error {
  delete (error as { command?: unknown }).command;
  return error;
}
