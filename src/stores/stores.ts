/** The stores table: what a store is, and the queries the store service runs on it. */
import { isUniqueViolation, type MappedRow, seqPage, sqlLiteral, type Queryable } from '../db/database.ts';
import type { BillingPlan, Product } from '../catalog/catalog.ts';
import { rememberPartnerPlan } from '../catalog/catalog-sync.ts';
import { AppError, conflict, notFound } from '../errors.ts';
import type { ResourceStatus, Secret } from '../providers/provider.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

/** Vercel's store statuses, plus `deleting` while a delete is under way. */
export type StoreStatus = 'initializing' | 'available' | 'error' | 'onboarding' | 'suspended' | 'uninstalled' | 'deleting';

export interface Notification {
  level: 'info' | 'warn' | 'error';
  title: string;
  message?: string;
  /** An http(s) or `sso:` link shown with it. */
  href?: string;
}

export interface SecretSummary {
  name: string;
  length: number;
}

export interface Store {
  id: string;
  teamId: string;
  installationId: string;
  productId: string;
  billingPlanId: string;
  name: string;
  status: StoreStatus;
  createdBy: string | null;
  source: string;
  externalId: string | null;
  metadata: Record<string, unknown>;
  protocolSettings: Record<string, unknown> | null;
  /** The idempotency key the provider is called with, so a provision can be finished or undone. */
  provisionKey: string;
  /** The provider's id for the resource, once it answered. */
  externalResourceId: string | null;
  externalResourceStatus: ResourceStatus | null;
  secretSummary: SecretSummary[];
  notification: Notification | null;
  prepaidBalanceCents: number | null;
  /** `linked` (imported from the provider's side): deleting the store does not deprovision it. */
  ownership: 'owned' | 'linked' | 'sandbox';
  /** Being removed because its create was interrupted (not deleted by a user). */
  rollingBack: boolean;
  /** A change (store-updates.ts) is recorded and not yet answered by the provider. */
  updating: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** Secrets as a store keeps them: sealed, and a summary (names and lengths) the API shows. */
export function sealSecrets(box: SecretBox, storeId: string, secrets: Secret[]): { sealed: string; summary: string } {
  const clean = secrets.map(({ name, value, environmentOverrides }) => ({
    name,
    value,
    ...(environmentOverrides && { environmentOverrides }),
  }));
  const summary: SecretSummary[] = clean.map((secret) => ({ name: secret.name, length: secret.value.length }));
  return { sealed: box.seal(JSON.stringify(clean), { table: 'stores', id: storeId, column: 'secrets' }), summary: JSON.stringify(summary) };
}

/** A store's secrets, opened. */
export async function readSecrets(db: Queryable, box: SecretBox, storeId: string): Promise<Secret[]> {
  const { rows } = await db.query<{ secrets: string | null }>('SELECT secrets FROM stores WHERE id = $1', [storeId]);
  const sealed = rows[0]?.secrets;
  return sealed ? (JSON.parse(box.open(sealed, { table: 'stores', id: storeId, column: 'secrets' })) as Secret[]) : [];
}

/** The store status a provider's resource status shows as. */
export const STORE_STATUS: Record<ResourceStatus, StoreStatus> = {
  ready: 'available',
  pending: 'initializing',
  onboarding: 'onboarding',
  suspended: 'suspended',
  resumed: 'available',
  uninstalled: 'uninstalled',
  error: 'error',
};

export const toStore = (row: MappedRow): Store => ({
  id: row.id,
  teamId: row.team_id,
  installationId: row.installation_id,
  productId: row.product_id,
  billingPlanId: row.billing_plan_id,
  name: row.name,
  status: row.status,
  createdBy: row.created_by,
  source: row.source,
  externalId: row.external_id,
  metadata: row.metadata,
  protocolSettings: row.protocol_settings,
  provisionKey: row.provision_key,
  externalResourceId: row.external_resource_id,
  externalResourceStatus: row.external_resource_status,
  secretSummary: row.secret_summary,
  notification: row.notification,
  prepaidBalanceCents: row.prepaid_balance_cents === null ? null : Number(row.prepaid_balance_cents),
  ownership: row.ownership,
  rollingBack: row.rolling_back,
  updating: row.updating,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** Every column but the sealed secrets. */
export const STORE_COLUMNS = `id, team_id, installation_id, product_id, billing_plan_id, name, status, created_by, source, external_id,
  metadata, protocol_settings, provision_key, external_resource_id, external_resource_status, secret_summary, notification,
  prepaid_balance_cents, ownership, rolling_back, update_key IS NOT NULL AS updating, created_at, updated_at`;

/** The store columns of table alias `alias`, for statements that join or update from a CTE. */
export const prefixed = (alias: string) =>
  STORE_COLUMNS.split(',')
    .map((c) => `${alias}.${c.trim()}`)
    .join(', ');

/** The team's store; any other team's is a 404, like a missing one. */
export async function findStore(db: Queryable, teamId: string, id: string, options: { lock?: boolean } = {}): Promise<Store> {
  const { rows } = await db.query(
    `SELECT ${STORE_COLUMNS} FROM stores WHERE id = $1 AND team_id = $2${options.lock ? ' FOR UPDATE' : ''}`,
    [id, teamId],
  );
  if (!rows[0]) throw notFound('store', id);
  return toStore(rows[0]);
}

export interface StorePage {
  stores: Store[];
  /** The cursor of the next page (older stores); null on the last page. */
  next: number | null;
}

/** A page of the team's stores, newest first; `until` is the previous page's `next`. */
export async function listStores(
  db: Queryable,
  teamId: string,
  options: { limit: number; until?: number | undefined },
): Promise<StorePage> {
  const { rows } = await db.query(
    `SELECT ${STORE_COLUMNS}, seq FROM stores WHERE team_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3`,
    [teamId, options.until ?? null, options.limit + 1],
  );
  const page = seqPage(rows, options.limit);
  return { stores: page.rows.map(toStore), next: page.next };
}

/** How many stores the team holds on each plan of a product, a store changing plans counting for its new one too (as ON_PLAN does). */
async function storesByPlan(db: Queryable, teamId: string, productId: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ billing_plan_id: string; n: number }>(
    `SELECT plan AS billing_plan_id, count(*)::int AS n FROM (
       SELECT billing_plan_id AS plan FROM stores WHERE team_id = $1 AND product_id = $2
       UNION ALL
       SELECT update_request->'plan'->>'id' FROM stores WHERE team_id = $1 AND product_id = $2 AND update_key IS NOT NULL AND update_request ? 'plan'
     ) placed GROUP BY plan`,
    [teamId, productId],
  );
  return new Map(rows.map((row) => [row.billing_plan_id, row.n]));
}

/** The plans a team has used up: those whose per-team resource limit it has reached. */
export async function plansUsedUp(
  db: Queryable,
  teamId: string,
  plans: Array<{ id: string; productId: string; resourceLimit: number | null }>,
): Promise<Set<string>> {
  const limited = plans.filter((plan) => plan.resourceLimit !== null);
  if (limited.length === 0) return new Set();
  const used = await storesByPlan(db, teamId, limited[0]!.productId);
  return new Set(limited.filter((plan) => (used.get(plan.id) ?? 0) >= plan.resourceLimit!).map((plan) => plan.id));
}

export const nameTaken = (name: string, id?: string) =>
  conflict('store_name_taken', `The team already has a store named "${name}"${id ? ` (${id})` : ''}`);

/** Whether a write failed because the team has a store of that name already. */
export const isNameTaken = (error: unknown) =>
  isUniqueViolation(error) && (error as { constraint?: string }).constraint === 'stores_team_id_name_key';

/** 403 when the team holds as many stores on `plan` as the plan allows (`onPlan`, not counting the one being placed on it). */
export function assertPlanRoom(plan: { id: string; resourceLimit: number | null }, onPlan: number): void {
  if (plan.resourceLimit === null || onPlan < plan.resourceLimit) return;
  throw new AppError(
    403,
    'plan_resource_limit_reached',
    `The plan ${plan.id} allows ${plan.resourceLimit} store${plan.resourceLimit === 1 ? '' : 's'} per team and the team has ${onPlan}: choose another plan or delete one`,
    { limit: { total: plan.resourceLimit, used: onPlan } },
  );
}

/** `plans` with those the team has used up marked disabled: shown, not selectable (`current`, a store's own plan, stays as it is). */
export async function disableUsedUp<
  P extends { id: string; productId: string; resourceLimit: number | null; disabled?: boolean | undefined },
>(db: Queryable, teamId: string, plans: P[], current?: string): Promise<P[]> {
  const usedUp = await plansUsedUp(
    db,
    teamId,
    plans.filter((plan) => !plan.disabled && plan.id !== current),
  );
  return usedUp.size === 0 ? plans : plans.map((plan) => (usedUp.has(plan.id) ? { ...plan, disabled: true } : plan));
}

/**
 * SQL: a store of product `product` that is on plan `plan` (parameter placeholders), or changing to
 * it, so a change under way counts against the plan's limit as the store it will be.
 */
export const ON_PLAN = (product: string, plan: string) =>
  `product_id = ${product} AND (billing_plan_id = ${plan} OR (update_key IS NOT NULL AND update_request->'plan'->>'id' = ${plan}))`;

/** A plan a partner server offered that the catalog lacks is kept beside the catalog's, so a store can reference it. */
export async function rememberPlanIfNew(tx: Queryable, product: Product, plan: BillingPlan): Promise<void> {
  if (!product.plans.some((p) => p.id === plan.id && !p.retired)) await rememberPartnerPlan(tx, plan);
}

/** 400 `invalid_billing_plan`: `requested` is not among the `plans` offered (or is, disabled). */
export function planNotOffered(product: Product, requested: string, plans: BillingPlan[], offered: string[], forWhat = ''): AppError {
  const disabled = plans.some((p) => p.id === requested);
  return new AppError(
    400,
    'invalid_billing_plan',
    `${disabled ? `The plan ${requested} is not available` : `${product.name} has no plan ${requested}`}${forWhat}: use one of ${offered.join(', ') || '(none)'}`,
    { fields: [{ key: 'billingPlanId', message: `is not a selectable plan of this product${forWhat}` }] },
  );
}

export const quotaExceeded = (quota: number, used: number) =>
  new AppError(
    403,
    'store_quota_exceeded',
    `The team has reached its quota of ${quota} store${quota === 1 ? '' : 's'}: delete one, or ask an operator to raise the quota`,
    { limit: { total: quota, used } },
  );

/**
 * The statement that locks the team's row and reads its store quota, without parameters (it can
 * travel with BEGIN: TransactionOptions.first). Locking the row makes every create of the team
 * take turns here, so concurrent requests count each other's stores and no quota is ever
 * overshot. NO KEY UPDATE, because it does not conflict with the share locks foreign keys take
 * on the team (an idempotency key's insert, an audit event's): FOR UPDATE did, and two creates
 * deadlocked (40P01).
 */
export const lockTeamQuota = (teamId: string) => `SELECT store_quota FROM teams WHERE id = ${sqlLiteral(teamId)} FOR NO KEY UPDATE`;

/** The quota in lockTeamQuota's answer: the team's own, else the default. */
export const quotaIn = (locked: { rows: Array<{ store_quota?: number | null }> } | undefined, defaultQuota: number): number =>
  locked?.rows[0]?.store_quota ?? defaultQuota;

/** The team's store quota (its own, else the default), its row locked (see lockTeamQuota). */
export async function storeQuota(tx: Queryable, teamId: string, defaultQuota: number): Promise<number> {
  return quotaIn(await tx.query<{ store_quota: number | null }>(lockTeamQuota(teamId)), defaultQuota);
}

/** 403 unless the team has room for one more store under its quota (the team's row locked: see storeQuota). */
export async function assertStoreRoom(tx: Queryable, teamId: string, defaultQuota: number): Promise<void> {
  const quota = await storeQuota(tx, teamId, defaultQuota);
  const { rows } = await tx.query<{ total: number }>('SELECT count(*)::int AS total FROM stores WHERE team_id = $1', [teamId]);
  if (rows[0]!.total >= quota) throw quotaExceeded(quota, rows[0]!.total);
}
