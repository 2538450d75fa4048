/**
 * What the parts of the store lifecycle share (store-service.ts puts them together): the
 * database, the catalog, the providers, the node's lease and the idempotency keys, and the
 * provision a store is created with.
 */
import type { Logger } from 'pino';
import type { Catalog, Product } from '../catalog/catalog.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Database } from '../db/database.ts';
import type { NodeLease } from '../db/node-lease.ts';
import type { Discovery } from '../marketplace/discovery.ts';
import type { ProvisionRequest } from '../providers/provider.ts';
import type { Providers } from '../providers/registry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { IdempotencyKeys } from './idempotency.ts';
import type { Store } from './stores.ts';

export interface StoreServiceOptions {
  /** The most stores a team may hold, unless the team has a quota of its own. */
  defaultStoreQuota: number;
  /** How long a provider may take to provision before the create fails with 503. */
  provisionTimeoutMs: number;
  /** How long a store its provider answered `pending` for may take to become ready before it is marked `error`. */
  pendingTimeoutMs: number;
  /** This node's lease: the creates and deletes it works on are recorded as its own. */
  lease: NodeLease;
  /** When given, a store's view is served from memory between changes (StoreViews); else read each time. */
  feed?: ChangeFeed | undefined;
  logger?: Logger | undefined;
}

export interface StoreContext {
  readonly db: Database;
  readonly catalog: () => Catalog;
  readonly discovery: Discovery;
  readonly providers: Providers;
  readonly box: SecretBox;
  readonly options: StoreServiceOptions;
  readonly keys: IdempotencyKeys;
  /** How long after its last update a create or delete under way is taken for interrupted: twice the provision timeout. */
  readonly staleMs: number;
  /** How long a request waits for another one's work under way on the same store or key. */
  readonly waitMs: number;
  /** Work was left for the recovery sweep (an undo or delete to try again): it looks now. */
  wakeRecovery(): void;
  /** A store became pending: its checks are scheduled. */
  pendingChanged(): void;
  /** Whether the node is shutting down (loops over work stop early). */
  readonly stopping: boolean;
}

/** The provision a store was (or is being) created with: repeated with its key, it names the same resource. */
export function provisionRequest(store: Store, product: Product): ProvisionRequest {
  return {
    idempotencyKey: store.provisionKey,
    installationId: store.installationId,
    product,
    name: store.name,
    metadata: store.metadata,
    billingPlanId: store.billingPlanId,
    ...(store.externalId !== null && { externalId: store.externalId }),
    ...(store.protocolSettings && { protocolSettings: store.protocolSettings }),
    // Its creator was an admin of the installation when creating it.
    ...(store.createdBy && { caller: { userId: store.createdBy, role: 'ADMIN' as const } }),
  };
}
