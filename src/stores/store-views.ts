/** The API's view of a store: the store with the catalog entries it was created from, and the projects it is connected to. */
import { offeredPlans, type BillingPlan, type Catalog, type Integration, type Product } from '../catalog/catalog.ts';
import { ReadCache, type ChangeFeed } from '../db/change-feed.ts';
import type { MappedRow, Queryable } from '../db/database.ts';
import { findStore, type Store } from './stores.ts';

/** A store with the catalog entries it was created from, which its API view shows. */
export interface StoreView {
  store: Store;
  product: Product;
  integration: Integration;
  plan: BillingPlan | undefined;
  /** Projects the store is connected to. */
  connections: StoreConnection[];
}

export interface StoreConnection {
  /** The connection's id (`spc_...`), which the CLI disconnects by. */
  id: string;
  projectId: string;
  projectName: string;
  environments: string[];
  sensitive: boolean;
  envVarPrefix: string;
  envVarNames: string[];
}

/** The view of a store in hand, with the connections read for it. */
export function viewWith(catalog: Catalog, store: Store, connections: StoreConnection[]): StoreView {
  const product = catalog.productById(store.productId);
  const integration = catalog.integrationById(product.integrationId)!;
  const plan = offeredPlans(product).find((p) => p.id === store.billingPlanId);
  return { store, product, integration, plan, connections };
}

/** The connections of these stores, by store id (one query for all of them). */
export async function connectionsOf(db: Queryable, storeIds: string[]): Promise<Map<string, StoreConnection[]>> {
  const found = new Map<string, StoreConnection[]>();
  if (storeIds.length === 0) return found;
  const { rows } = await db.query<MappedRow>(
    `SELECT c.id, c.store_id, c.project_id, p.name AS project_name, c.environments, c.sensitive, c.env_var_prefix,
            coalesce((SELECT jsonb_agg(DISTINCT e.key) FROM project_env e WHERE e.store_id = c.store_id AND e.project_id = c.project_id), '[]') AS env_names
       FROM store_connections c JOIN projects p ON p.id = c.project_id
      WHERE c.store_id = ANY($1) ORDER BY c.created_at, c.project_id`,
    [storeIds],
  );
  for (const row of rows) {
    const list = found.get(row.store_id) ?? [];
    list.push({
      id: row.id,
      projectId: row.project_id,
      projectName: row.project_name,
      environments: row.environments,
      sensitive: row.sensitive,
      envVarPrefix: row.env_var_prefix,
      envVarNames: row.env_names,
    });
    found.set(row.store_id, list);
  }
  return found;
}

/** What a store's view is read from, besides the catalog: its row, and its connections; and its view in the last catalog asked with. */
interface StoreRows {
  store: Store;
  connections: StoreConnection[];
  view?: { catalog: Catalog; view: StoreView };
}

/** The tables a store's view is read from (their triggers notify the change feed, migration 0012). */
const VIEW_TABLES = ['stores', 'store_connections', 'projects', 'project_env'];

/**
 * The rows of GET /v1/storage/stores/{id}, read through a cache that any write to what a view
 * shows empties, on every node (the change feed): this node's own writes at once, another
 * node's (or an operator's SQL) as soon as its notification arrives, as authorization's caches
 * are. While the feed cannot hear changes, every read goes to the database. The catalog entries
 * are looked up on each read, so a catalog reload shows at once.
 */
export class StoreViews {
  private readonly rows: ReadCache<StoreRows>;

  constructor(
    private readonly db: Queryable,
    feed: ChangeFeed,
  ) {
    this.rows = new ReadCache(feed, { tables: VIEW_TABLES });
  }

  /**
   * The team's store (404 for any other team's, uncached) with its connections. Between changes
   * (and catalog reloads) it is the same object each time, so what is made of it can be kept
   * beside it (the route keeps its JSON).
   */
  async get(catalog: Catalog, teamId: string, id: string): Promise<StoreView> {
    // The team is in the key: the same id asked for by another team is its own 404.
    const key = `${teamId}\0${id}`;
    const rows = await this.rows.read(key, async () => {
      const store = await findStore(this.db, teamId, id);
      return { store, connections: (await connectionsOf(this.db, [store.id])).get(store.id) ?? [] };
    });
    if (rows.view?.catalog !== catalog) rows.view = { catalog, view: viewWith(catalog, rows.store, rows.connections) };
    return rows.view.view;
  }
}
