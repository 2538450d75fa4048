/**
 * The server a fuzz run talks to, and the real things in it that generated requests mix in so
 * they reach past the "not found" checks: the team's id and slug, an installation, its products
 * and plans, a payment method, a project, a store connected to it (so the project has
 * environment variables), and tokens of every kind (owner, viewer, installation).
 */
import { hashToken } from '../src/ids.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { startServer, type Backend, type TestServer } from '../test/helpers.ts';

export type AuthKind = 'owner' | 'viewer' | 'installation' | 'none' | 'garbage';

export interface Fixtures {
  teamId: string;
  teamSlug: string;
  installationId: string;
  integrationIds: string[];
  productIds: string[];
  productSlugs: string[];
  planIds: string[];
  paymentMethodId: string;
  projectId: string;
  projectName: string;
  storeId: string;
  storeName: string;
  /** The store's resource id, as the marketplace API names it. */
  resourceId: string;
  envVarId: string;
  connectionId: string;
  tokens: Record<Exclude<AuthKind, 'none'>, string>;
}

/** Every limit off: a run sends thousands of requests a minute, and a 429 would hide the answer underneath. */
export function unlimitedEnv(): Record<string, string> {
  return {
    STOREHOUSE_RATE_LIMIT_REQUESTS: '0',
    STOREHOUSE_RATE_LIMIT_STORE_CREATES: '0',
    STOREHOUSE_RATE_LIMIT_STORE_UPDATES: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_EVENTS: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_SECRETS: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_ACCOUNT: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_BILLING: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_MEMBERS: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_IMPORTS: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_CREDENTIALS: '0',
    STOREHOUSE_RATE_LIMIT_MARKETPLACE_INSTALLATIONS: '0',
    // The fuzzer sends garbage and missing tokens on purpose: past 60 a minute they would all be 429.
    STOREHOUSE_AUTH_FAILURE_LIMIT: '0',
  };
}

/**
 * Stores the fuzzer may create on top of the fixture's own: each valid create provisions a real
 * database (a role and a database on a PostgreSQL server), so beyond this many the team's quota
 * refuses them (403 `store_quota_exceeded`, after every other check has run).
 */
export const EXTRA_STORES = 3;

export async function startFuzzServer(backend: Backend, redisUrl: string | undefined): Promise<TestServer> {
  return startServer(backend, {
    env: {
      ...unlimitedEnv(),
      STOREHOUSE_TEAM_STORE_QUOTA: String(1 + EXTRA_STORES),
      ...(redisUrl && { STOREHOUSE_REDIS_ADMIN_URL: redisUrl }),
    },
  });
}

async function json(server: TestServer, method: string, path: string, body?: unknown): Promise<any> {
  const response = await server.request(path, {
    method,
    ...(body !== undefined && { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`fixture ${method} ${path} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** A project for the fixtures. */
async function makeProject(server: TestServer): Promise<{ id: string; name: string }> {
  return json(server, 'POST', '/v11/projects', { name: `fuzz-web-${Date.now().toString(36)}` });
}

/** A Postgres store connected to the project (so the project has variables), and what it made. */
async function makeStore(server: TestServer, installationId: string, projectId: string) {
  const { store } = await json(server, 'POST', '/v1/storage/stores/integration/direct', {
    name: `fuzz-store-${Date.now().toString(36)}`,
    integrationConfigurationId: installationId,
    integrationProductIdOrSlug: 'postgres',
    metadata: { connectionLimit: 5 },
  });
  await json(server, 'POST', `/v1/storage/stores/${store.id}/connections`, { projectId, envVarEnvironments: ['production', 'preview'] });
  // The connect answers 201 with no body; the connection's id is only in the database.
  const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM store_connections WHERE store_id = $1', [store.id]);
  const { envs } = await json(server, 'GET', `/v10/projects/${projectId}/env`);
  return {
    storeId: store.id as string,
    storeName: store.name as string,
    resourceId: store.externalResourceId as string,
    connectionId: rows[0]!.id,
    envVarId: (envs[0]?.id as string) ?? 'env_none',
  };
}

export async function makeFixtures(server: TestServer): Promise<Fixtures> {
  const db = server.runtime.db;
  const { teams } = await json(server, 'GET', '/v1/teams');
  const team = teams[0];
  const [configuration] = await json(server, 'GET', '/v1/integrations/configurations?view=account');
  const installationId: string = configuration.id;
  const { products, integration } = await json(server, 'GET', `/v1/integrations/configuration/${installationId}/products`);
  const planIds: string[] = [];
  for (const product of products) {
    const { plans } = await json(
      server,
      'GET',
      `/v1/integrations/integration/${integration.slug}/products/${product.slug}/plans?integrationConfigurationId=${installationId}`,
    );
    planIds.push(...plans.map((p: { id: string }) => p.id));
  }
  const card = await json(server, 'POST', '/_storehouse/payment-methods', { cardNumber: '4242424242424242', default: true });
  const project = await makeProject(server);
  const store = await makeStore(server, installationId, project.id);
  const viewer = await createUser(db, { email: 'fuzz-viewer@example.com' });
  await setMember(db, team.id, viewer.id, 'VIEWER');
  const viewerToken = (await createToken(db, { userId: viewer.id, teamId: team.id, name: 'fuzz viewer' })).value;
  const installationToken = (await mintInstallationToken(db, installationId)).value;
  return {
    teamId: team.id,
    teamSlug: team.slug,
    installationId,
    integrationIds: [integration.id, integration.slug],
    productIds: products.map((p: { id: string }) => p.id),
    productSlugs: products.map((p: { slug: string }) => p.slug),
    planIds,
    paymentMethodId: card.id,
    projectId: project.id,
    projectName: project.name,
    ...store,
    tokens: { owner: server.token, viewer: viewerToken, installation: installationToken, garbage: 'not-a-token' },
  };
}

/** Every real id, for fields whose generator has no better idea. */
export function allIds(fx: Fixtures): string[] {
  return [
    fx.teamId,
    fx.teamSlug,
    fx.installationId,
    ...fx.integrationIds,
    ...fx.productIds,
    ...fx.productSlugs,
    ...fx.planIds,
    fx.paymentMethodId,
    fx.projectId,
    fx.projectName,
    fx.storeId,
    fx.storeName,
    fx.resourceId,
    fx.envVarId,
    fx.connectionId,
  ];
}

/**
 * Makes again what a request that succeeded removed (the installation, its token, the store, the
 * project, the card), so the rest of the run still has real ids to reach deep code with.
 * Generated values read the fixtures when they are drawn, so they pick up the new ids. Returns
 * what it remade.
 */
export async function restoreFixtures(server: TestServer, fx: Fixtures): Promise<string[]> {
  const db = server.runtime.db;
  const exists = async (sql: string, id: string) => (await db.query(sql, [id])).rows.length > 0;
  const remade: string[] = [];
  if (!(await exists('SELECT 1 FROM installations WHERE id = $1', fx.installationId))) {
    const owner = await db.query<{ user_id: string }>("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'OWNER' LIMIT 1", [
      fx.teamId,
    ]);
    fx.installationId = (
      await install(db, { teamId: fx.teamId, integrationId: fx.integrationIds[0]!, installedBy: owner.rows[0]?.user_id ?? null })
    ).id;
    remade.push('installation');
  }
  if (!(await exists('SELECT 1 FROM installation_tokens WHERE token_hash = $1', hashToken(fx.tokens.installation)))) {
    fx.tokens.installation = (await mintInstallationToken(db, fx.installationId)).value;
    remade.push('installation token');
  }
  if (!(await exists('SELECT 1 FROM payment_methods WHERE id = $1 AND removed_at IS NULL', fx.paymentMethodId))) {
    fx.paymentMethodId = (await json(server, 'POST', '/_storehouse/payment-methods', { cardNumber: '4242424242424242', default: true })).id;
    remade.push('payment method');
  }
  if (!(await exists('SELECT 1 FROM projects WHERE id = $1', fx.projectId))) {
    const project = await makeProject(server);
    Object.assign(fx, { projectId: project.id, projectName: project.name });
    remade.push('project');
  }
  const storeGone = !(await exists("SELECT 1 FROM stores WHERE id = $1 AND status = 'available'", fx.storeId));
  if (storeGone || !(await exists('SELECT 1 FROM store_connections WHERE id = $1', fx.connectionId))) {
    // The store's quota slot may be taken by the fuzzer's own stores: theirs go first.
    if (storeGone) await freeQuota(server, fx);
    Object.assign(fx, storeGone ? await makeStore(server, fx.installationId, fx.projectId) : await reconnect(server, fx));
    remade.push(storeGone ? 'store' : 'connection');
  }
  return remade;
}

/** Reconnects the fixture store to the project, after a request disconnected it. */
async function reconnect(server: TestServer, fx: Fixtures) {
  await json(server, 'POST', `/v1/storage/stores/${fx.storeId}/connections`, {
    projectId: fx.projectId,
    envVarEnvironments: ['production', 'preview'],
  });
  const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM store_connections WHERE store_id = $1', [fx.storeId]);
  const { envs } = await json(server, 'GET', `/v10/projects/${fx.projectId}/env`);
  return { connectionId: rows[0]!.id, envVarId: (envs[0]?.id as string) ?? 'env_none' };
}

/** Deletes the stores the fuzzer made, so the team's quota has room for a new fixture store. */
async function freeQuota(server: TestServer, fx: Fixtures): Promise<void> {
  const { rows } = await server.runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE team_id = $1 AND status = 'available'", [
    fx.teamId,
  ]);
  for (const { id } of rows) {
    const response = await server.request(`/v1/storage/stores/integration/${id}?disconnect=true`, { method: 'DELETE' });
    // A store of a product whose provider is not configured here (imported by the marketplace API)
    // cannot be deleted: its documented answer is 503, and the sweep retries it. Any other refusal is the run's failure.
    if (response.status === 503 && ((await response.json()) as { error?: { code?: string } }).error?.code === 'provider_unavailable')
      continue;
    if (response.status >= 300) throw new Error(`fixture DELETE of store ${id} answered ${response.status}: ${await response.text()}`);
  }
}
