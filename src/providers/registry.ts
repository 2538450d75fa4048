/**
 * Which provider serves a product, from the product's `provider` binding in the catalog and the
 * configuration. A product whose provider is not configured resolves to a 503 that says what to
 * configure, never to a 500.
 */
import { offeredPlans, type BillingPlan, type Product } from '../catalog/catalog.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { PartnerClient } from '../partners/partner-client.ts';
import type { SigningKeys } from '../partners/signing-keys.ts';
import { HttpProvider, type PartnerSettings } from './http.ts';
import { PostgresProvider, type PostgresProviderOptions } from './postgres.ts';
import { RedisProvider } from './redis.ts';
import { providerUnavailable, type Provider } from './provider.ts';

/** What calling partner servers takes: the keys calls are signed with, and where Storehouse is. */
export interface PartnerContext extends PartnerSettings {
  keys: SigningKeys;
  issuer(): string;
}

export class Providers {
  /** Partner servers' providers, one per integration and base URL, made on first use. */
  private readonly partners = new Map<string, HttpProvider>();

  private constructor(
    private readonly configured: Map<string, Provider & { close?(): Promise<void> }>,
    private readonly missing: Map<string, string>,
    private readonly state: Database,
    private readonly config: Config,
    private readonly partnerContext: PartnerContext | undefined,
  ) {}

  static create(
    config: Config,
    state: Database,
    box: SecretBox,
    options: {
      onError?: (error: Error) => void;
      partners?: PartnerContext;
      logger?: PostgresProviderOptions['log'];
      /** On the embedded default: the redis-server Storehouse runs itself, or why there is none. */
      embeddedRedis?: { adminUrl: string } | { unavailable: string } | undefined;
    } = {},
  ): Providers {
    const configured = new Map<string, Provider & { close?(): Promise<void> }>();
    const missing = new Map<string, string>();
    // Configured, or the embedded default's own server, which is Storehouse's alone: there it
    // revokes PUBLIC's CONNECT itself, so store roles reach no database but their own.
    const postgresAdminUrl = config.postgresAdminUrl ?? state.embeddedAdminUrl;
    if (postgresAdminUrl) {
      configured.set(
        'postgres',
        new PostgresProvider(state, box, {
          adminUrl: postgresAdminUrl,
          revokePublicConnect: config.postgresAdminUrl ? config.postgresRevokePublicConnect : true,
          log: options.logger,
          // Without an admin URL of its own it is the embedded server, which holds the state too.
          onStateServer: !config.postgresAdminUrl,
        }),
      );
    } else {
      missing.set('postgres', 'no PostgreSQL server is configured for stores: set STOREHOUSE_POSTGRES_ADMIN_URL');
    }
    const redis = options.embeddedRedis;
    const redisAdminUrl = config.redisAdminUrl ?? (redis && 'adminUrl' in redis ? redis.adminUrl : undefined);
    if (redisAdminUrl) {
      configured.set(
        'redis',
        new RedisProvider(state, box, {
          adminUrl: redisAdminUrl,
          onError: options.onError,
          // Its own redis-server keeps users in an ACL file, saved by every change (redis-server.ts).
          saveAcl: config.redisAdminUrl === undefined,
        }),
      );
    } else {
      missing.set(
        'redis',
        redis && 'unavailable' in redis ? redis.unavailable : 'no Redis server is configured: set STOREHOUSE_REDIS_ADMIN_URL',
      );
    }
    return new Providers(configured, missing, state, config, options.partners);
  }

  /** Checks which databases a Postgres store's role could reach besides its own, and what the Redis admin may do. */
  async start(): Promise<void> {
    for (const provider of this.configured.values()) {
      if (provider instanceof PostgresProvider) await provider.start();
      // Not awaited: a Redis that is away must not hold the start. An admin user that lacks a
      // command every SETUSER needs is named at once, not at the first create.
      if (provider instanceof RedisProvider) {
        void provider.reportAvailability();
      }
    }
  }

  /**
   * Why no provider serves `product` on this node (a built-in one that is not configured, or the
   * embedded redis-server that could not be had), in words for a person; undefined when one does.
   * A partner server's availability is only known by calling it, so its products have none here.
   */
  unavailableReason(product: Product): string | undefined {
    if (product.provider.type === 'http' || this.configured.has(product.provider.type)) return undefined;
    return this.missing.get(product.provider.type) ?? `unknown provider type ${product.provider.type}`;
  }

  /** The provider serving `product`; 503 `provider_unavailable` when there is none. */
  for(product: Product): Provider {
    if (product.provider.type === 'http') return this.partnerFor(product.integrationId, String(product.provider.url));
    const provider = this.configured.get(product.provider.type);
    if (!provider)
      throw providerUnavailable(product.slug, this.missing.get(product.provider.type) ?? `unknown provider type ${product.provider.type}`);
    return provider;
  }

  /**
   * The plans a product is offered on, as its provider says (a partner decides its own, from the
   * metadata filled in so far). A built-in provider that is not configured still has the
   * catalog's plans to show: creating on them is what answers 503.
   */
  plansFor(
    product: Product,
    metadata: Record<string, unknown>,
    asker: { teamId: string; installationId?: string | undefined },
  ): Promise<BillingPlan[]> {
    const provider = product.provider.type === 'http' ? this.for(product) : this.configured.get(product.provider.type);
    return provider ? provider.listPlans(product, metadata, asker) : Promise.resolve(offeredPlans(product));
  }

  /** The plans a store's resource may change to, as its provider says: its resource plans, else its product's. */
  resourcePlansFor(
    product: Product,
    resource: { installationId: string; externalResourceId: string },
    metadata: Record<string, unknown>,
    asker: { teamId: string; installationId?: string | undefined },
  ): Promise<BillingPlan[]> {
    const provider = this.for(product);
    return provider.listResourcePlans
      ? provider.listResourcePlans(resource.installationId, resource.externalResourceId, product, metadata)
      : this.plansFor(product, metadata, asker);
  }

  /** The partner server behind an integration's products, if one is; used for install and uninstall. */
  partnerOf(products: Product[]): HttpProvider | undefined {
    const product = products.find((p) => p.provider.type === 'http');
    return product && this.partnerFor(product.integrationId, String(product.provider.url));
  }

  private partnerFor(integrationId: string, url: string): HttpProvider {
    const key = `${integrationId} ${url}`;
    let provider = this.partners.get(key);
    if (!provider) {
      const context = this.partnerContext;
      if (!context) throw providerUnavailable(integrationId, 'partner servers are not reachable from this process');
      const client = new PartnerClient({
        baseUrl: url,
        clientId: integrationId,
        keys: context.keys,
        issuer: context.issuer,
        timeoutMs: this.config.partnerTimeoutMs,
        maxBodyBytes: this.config.outboundMaxBodyBytes,
        retries: this.config.partnerRetries,
        backoffMs: 200,
      });
      provider = new HttpProvider(this.state, integrationId, client, context);
      this.partners.set(key, provider);
    }
    return provider;
  }

  async close(): Promise<void> {
    for (const provider of this.configured.values()) await provider.close?.();
  }
}
