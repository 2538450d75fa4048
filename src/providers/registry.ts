/**
 * Which provider serves a product, from the product's `provider` binding in the catalog and the
 * configuration. A product whose provider is not configured resolves to a 503 that says what to
 * configure, never to a 500.
 */
import type { Product } from '../catalog/catalog.ts';
import type { Config } from '../config.ts';
import type { Queryable } from '../db/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { EmbeddedPostgresProvider } from './embedded-postgres.ts';
import { PostgresProvider } from './postgres.ts';
import { RedisProvider } from './redis.ts';
import { providerUnavailable, type Provider } from './provider.ts';

export class Providers {
  private constructor(
    private readonly configured: Map<string, Provider & { close?(): Promise<void> }>,
    private readonly missing: Map<string, string>,
  ) {}

  static create(config: Config, state: Queryable, box: SecretBox, options: { onError?: (error: Error) => void } = {}): Providers {
    const configured = new Map<string, Provider & { close?(): Promise<void> }>();
    const missing = new Map<string, string>();
    configured.set(
      'postgres',
      config.postgresAdminUrl
        ? new PostgresProvider(state, box, { adminUrl: config.postgresAdminUrl })
        : new EmbeddedPostgresProvider(state, box, config.dataDir),
    );
    if (config.redisAdminUrl) {
      configured.set('redis', new RedisProvider(state, box, { adminUrl: config.redisAdminUrl, onError: options.onError }));
    } else {
      missing.set('redis', 'no Redis server is configured: set STOREHOUSE_REDIS_ADMIN_URL');
    }
    missing.set('http', 'partner servers are not supported by this version of Storehouse');
    return new Providers(configured, missing);
  }

  /** Starts what providers serve themselves (the embedded Postgres stores) again after a restart. */
  async start(onError?: (error: Error) => void): Promise<void> {
    for (const provider of this.configured.values()) {
      if (provider instanceof EmbeddedPostgresProvider) await provider.start(onError);
    }
  }

  /** The provider serving `product`; 503 `provider_unavailable` when there is none. */
  for(product: Product): Provider {
    const provider = this.configured.get(product.provider.type);
    if (!provider) throw providerUnavailable(product.slug, this.missing.get(product.provider.type) ?? `unknown provider type ${product.provider.type}`);
    return provider;
  }

  async close(): Promise<void> {
    for (const provider of this.configured.values()) await provider.close?.();
  }
}
