/**
 * The store lifecycle, as the routes and the marketplace API see it: creating a store
 * (store-creation.ts), importing one a provider made (store-imports.ts), reading and listing
 * stores (store-views.ts), deleting them and finishing what a dead node left (store-removal.ts),
 * and asking providers about pending ones (pending-stores.ts). This class puts those parts
 * together around one context (store-context.ts) and runs their background work.
 */
import type { Catalog } from '../catalog/catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import type { Discovery } from '../marketplace/discovery.ts';
import type { Providers } from '../providers/registry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { Actor } from '../tenancy/access.ts';
import { IdempotencyKeys } from './idempotency.ts';
import { PendingStores } from './pending-stores.ts';
import { Schedule } from './schedule.ts';
import type { StoreContext, StoreServiceOptions } from './store-context.ts';
import { StoreCreation, type CreateStoreInput } from './store-creation.ts';
import { StoreImports } from './store-imports.ts';
import { StoreRemoval } from './store-removal.ts';
import { connectionsOf, StoreViews, viewWith, type StoreView } from './store-views.ts';
import { findStore, listStores, type Store, type StorePage } from './stores.ts';

export type { StoreContext, StoreServiceOptions } from './store-context.ts';
export type { CreateStoreInput } from './store-creation.ts';
export type { StoreConnection, StoreView } from './store-views.ts';

export class StoreService {
  private recovery: Schedule | undefined;
  private pending: Schedule | undefined;
  private readonly ctx: StoreContext;
  private readonly removal: StoreRemoval;
  private readonly pendingStores: PendingStores;
  private readonly creation: StoreCreation;
  private readonly imports: StoreImports;
  private readonly views: StoreViews | undefined;

  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    discovery: Discovery,
    providers: Providers,
    box: SecretBox,
    private readonly options: StoreServiceOptions,
  ) {
    this.views = options.feed && new StoreViews(db, options.feed);
    const staleMs = 2 * options.provisionTimeoutMs;
    const waitMs = options.provisionTimeoutMs + 30_000;
    const keys = new IdempotencyKeys(db, {
      waitMs,
      staleSecs: staleMs / 1000,
      // A retry whose first attempt died with its node, or is being rolled back, finishes that work itself.
      recover: (storeId) => this.removal.recoverStore(storeId),
    });
    const service = this;
    this.ctx = {
      db,
      catalog,
      discovery,
      providers,
      box,
      options,
      keys,
      staleMs,
      waitMs,
      wakeRecovery: () => this.recovery?.wake(),
      pendingChanged: () => this.pendingChanged(),
      get stopping() {
        return service.recovery?.isStopped === true || service.pending?.isStopped === true;
      },
    };
    this.removal = new StoreRemoval(this.ctx);
    this.pendingStores = new PendingStores(this.ctx);
    this.creation = new StoreCreation(this.ctx, this.removal, this.pendingStores);
    this.imports = new StoreImports(this.ctx, this.pendingStores);
  }

  /**
   * Background work, until the returned function stops it: creates and deletes interrupted by a
   * node that died are finished when they turn stale (and looked for every minute); stores a
   * provider answered `pending` for are asked about when due; expired idempotency keys are
   * forgotten every hour.
   */
  startHousekeeping(onError: (error: Error) => void): () => Promise<void> {
    // The first runs wait a moment, so they do not compete with the start's first requests.
    // Idle, it looks again every lease period: another node may begin work after this sweep and
    // die, and nothing else would wake this one before its minute was up (its lease long expired).
    this.recovery = new Schedule(
      async () => {
        await this.removal.recoverInterrupted();
        return this.removal.msUntilNextStale();
      },
      Math.min(60_000, this.options.lease.leaseMs),
      onError,
    ).start(2_000);
    this.pending = new Schedule(() => this.pendingStores.checkPending(), 60_000, onError).start(2_000);
    const purge = setInterval(() => void this.ctx.keys.purge().catch(onError), 3_600_000);
    purge.unref();
    return async () => {
      clearInterval(purge);
      // A failed create's undo that outlived its answer is finished, not cut off with the database.
      await Promise.all([this.recovery?.stop(), this.pending?.stop(), this.creation.undosDone()]);
    };
  }

  /** The node this service records its work under way as. */
  get nodeId(): string {
    return this.options.lease.nodeId;
  }

  /** A store became pending (here or through its provider): its checks are scheduled. */
  pendingChanged(): void {
    this.pending?.wake();
  }

  /** Finishes the creates and deletes dead nodes left, and the undos and deletes due again (StoreRemoval.recoverInterrupted). */
  recoverInterrupted(): Promise<number> {
    return this.removal.recoverInterrupted();
  }

  /** Asks providers about the pending stores that are due (PendingStores.checkPending). */
  checkPending(): Promise<number | undefined> {
    return this.pendingStores.checkPending();
  }

  /** Reads a store's resource from its provider again and records what it says. */
  refresh(store: Store): Promise<Store> {
    return this.pendingStores.refresh(store);
  }

  /** Schedules checks of a store its provider reports `pending`; call pendingChanged() once committed. */
  schedulePending(db: Queryable, storeId: string): Promise<void> {
    return this.pendingStores.schedulePending(db, storeId);
  }

  /** Imports a resource the provider made on its side as a new store (StoreImports.importResource). */
  importResource(...args: Parameters<StoreImports['importResource']>): Promise<Store> {
    return this.imports.importResource(...args);
  }

  /** Creates a store, or answers as the first request with the same idempotency key did (StoreCreation.create). */
  create<R>(
    actor: Actor,
    input: CreateStoreInput,
    options: { idempotencyKey?: string | undefined; render(view: StoreView): R; answer?: string },
  ): Promise<R> {
    return this.creation.create(actor, input, options);
  }

  async get(actor: Actor, id: string): Promise<StoreView> {
    if (this.views) return this.views.get(this.catalog(), actor.team.id, id);
    return this.view(await findStore(this.db, actor.team.id, id));
  }

  async list(actor: Actor, options: { limit: number; until?: number | undefined }): Promise<{ page: StorePage; views: StoreView[] }> {
    const page = await listStores(this.db, actor.team.id, options);
    const connections = await connectionsOf(
      this.db,
      page.stores.map((s) => s.id),
    );
    const catalog = this.catalog();
    return { page, views: page.stores.map((store) => viewWith(catalog, store, connections.get(store.id) ?? [])) };
  }

  /** The API's view of a store in hand: its catalog entries and its connections. */
  async view(store: Store): Promise<StoreView> {
    const connections = await connectionsOf(this.db, [store.id]);
    return viewWith(this.catalog(), store, connections.get(store.id) ?? []);
  }

  /** Deletes a store (StoreRemoval.delete). */
  delete(actor: Actor, id: string, options: { disconnect?: boolean } = {}): Promise<void> {
    return this.removal.delete(actor, id, options);
  }

  /** Removes a store whose resource its provider deleted on its own side (the provider is not called). */
  async forget(store: Store, reason: string): Promise<void> {
    await this.removal.remove(store, { actorId: null, reason });
  }
}
