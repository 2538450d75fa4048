/**
 * The Provider interface: the operations the marketplace performs on an integration provider
 * (docs/partner-api.md §1.3, §1.4), so a built-in provider (Postgres, Redis, served
 * in-process) and a partner server reached over HTTP are interchangeable. The store service
 * never knows which one it is talking to.
 *
 * Every mutating operation takes an idempotency key: repeating a call with the same key (a
 * retry after a timeout or a crash) has the effect of one call and returns the same answer.
 */
import type { BillingPlan, Product } from '../catalog/catalog.ts';
import { AppError } from '../errors.ts';

/** The partner API's resource statuses. */
export const RESOURCE_STATUSES = ['ready', 'pending', 'onboarding', 'suspended', 'resumed', 'uninstalled', 'error'] as const;
export type ResourceStatus = (typeof RESOURCE_STATUSES)[number];

export interface Secret {
  name: string;
  value: string;
  /** Values that replace `value` in one environment of a connected project. */
  environmentOverrides?: Partial<Record<'development' | 'preview' | 'production', string>>;
}

export interface ProviderResource {
  /** The provider's id for the resource (Vercel's externalResourceId). */
  id: string;
  /** The product's slug, as the partner API names products. */
  productId: string;
  name: string;
  metadata: Record<string, unknown>;
  status: ResourceStatus;
  billingPlanId: string;
  /** Shown with the store; null clears one shown before. */
  notification?: { level: 'info' | 'warn' | 'error'; title: string; message?: string; href?: string } | null | undefined;
}

/**
 * The user a call is made for, when there is one: partner servers receive a user-style token
 * (ADMIN may change things, USER only reads). Built-in providers do not need it.
 */
export interface Caller {
  userId: string;
  role: 'ADMIN' | 'USER';
}

export interface ProvisionRequest {
  idempotencyKey: string;
  caller?: Caller | undefined;
  installationId: string;
  product: Product;
  name: string;
  metadata: Record<string, unknown>;
  billingPlanId: string;
  externalId?: string;
  protocolSettings?: Record<string, unknown>;
}

export interface ResourceUpdate {
  name?: string;
  metadata?: Record<string, unknown>;
  billingPlanId?: string;
}

export interface Provider {
  /**
   * True when what `provision` creates lives on the PostgreSQL server that holds Storehouse's
   * state (the built-in Postgres provider on the embedded default). The server writes one WAL,
   * and a synchronous commit flushes all of it written before, so no crash can keep a later write
   * and lose an earlier one. State written before the call may then commit without its own flush:
   * what the provision creates commits after it. And `provision` flushes none of its writes
   * itself: the caller records the result in a synchronous commit on the state server (which
   * makes them durable with it) before anyone is told of the resource.
   */
  readonly onStateServer?: boolean;
  /** Whether the provider can serve requests now; when not, why, in words for the API's error. */
  availability(): Promise<{ available: true } | { available: false; reason: string }>;
  /** The plans offered for a product, which may depend on the metadata being filled in. */
  listPlans(
    product: Product,
    metadata: Record<string, unknown>,
    asker?: { teamId: string; installationId?: string | undefined },
  ): Promise<BillingPlan[]>;
  /**
   * The plans an existing resource may change to (the partner API's resource plans), when the
   * provider has its own answer; a provider without one offers its product's plans.
   */
  listResourcePlans?(
    installationId: string,
    resourceId: string,
    product: Product,
    metadata: Record<string, unknown>,
  ): Promise<BillingPlan[]>;
  /**
   * Refuses metadata the provider cannot apply, beyond what the product's schema says (400
   * `validation_error` naming the key); called before anything is recorded or billed. Its
   * messages give the bounds of `product`'s metadataSchema, which the caller was shown.
   */
  checkMetadata(metadata: Record<string, unknown>, product?: Product): void;
  /** Creates the resource; the only operation whose answer carries its secrets. */
  provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }>;
  get(installationId: string, resourceId: string): Promise<ProviderResource>;
  update(
    installationId: string,
    resourceId: string,
    update: ResourceUpdate,
    idempotencyKey: string,
    caller?: Caller,
  ): Promise<ProviderResource>;
  /** Removes the resource and everything in it; deleting one already gone is not an error. */
  delete(installationId: string, resourceId: string, idempotencyKey: string, caller?: Caller): Promise<void>;
  /**
   * Undoes `request`, a provision that failed or timed out, whether or not it got anywhere:
   * afterwards no resource exists for its idempotency key, and a provision with it still in
   * flight, or retried later, is refused (409) instead of creating one. (A partner server learns
   * which resource it made by being asked again with the key.)
   */
  abandon(request: ProvisionRequest): Promise<void>;
  /** Replaces the resource's credentials; the old ones stop working. */
  rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]>;
}

/** A provider that is not configured or cannot be reached: never a 500. */
export const providerUnavailable = (product: string, reason: string) =>
  new AppError(503, 'provider_unavailable', `The provider of ${product} is unavailable: ${reason}`);
