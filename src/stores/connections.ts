/**
 * Connecting a store to a project: the store's secrets become the project's environment
 * variables for the chosen environments, and follow the store until it is disconnected.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { conflict, forbidden, notFound, validationError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Secret } from '../providers/provider.ts';
import { assertCanChangeProjects, ENVIRONMENTS, findProject, projectChanged, type Environment } from '../projects/projects.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertMayReadCredentials, hasSensitiveConnection, storeGuard } from './credential-access.ts';
import { findStore, readSecrets, STORE_COLUMNS, toStore, type Store, type StoreStatus } from './stores.ts';
import { projectConnected, projectDisconnected } from '../webhooks/events.ts';

export interface ConnectInput {
  projectId: string;
  envVarEnvironments?: string[] | undefined;
  /** Unset: sensitive when a connection of the store already is (see credential-access.ts), else not. */
  makeEnvVarsSensitive?: boolean | undefined;
  /** Put before each variable's name (the CLI's `envVarPrefix`), e.g. `STAGING_`. */
  envVarPrefix?: string | undefined;
}

const CONNECTABLE: StoreStatus[] = ['available', 'onboarding', 'suspended'];

const PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Which store: by Storehouse id, or within an installation also by the provider's id (externalResourceId). */
export interface StoreRef {
  installationId?: string | undefined;
  resourceId: string;
}

async function findStoreByRef(db: Queryable, actor: Actor, ref: StoreRef, lock = false): Promise<Store> {
  const { installationId, resourceId } = ref;
  if (installationId === undefined) return findStore(db, actor.team.id, resourceId, { lock });
  const { rows } = await db.query(
    `SELECT ${STORE_COLUMNS} FROM stores WHERE team_id = $1 AND installation_id = $3 AND (id = $2 OR external_resource_id = $2)
      ORDER BY (id = $2) DESC LIMIT 1${lock ? ' FOR UPDATE' : ''}`,
    [actor.team.id, resourceId, installationId],
  );
  if (!rows[0]) throw notFound('resource', resourceId);
  return toStore(rows[0]);
}

function environmentsOf(requested: string[] | undefined): Environment[] {
  if (requested === undefined) return [...ENVIRONMENTS];
  const unknown = requested.filter((e) => !(ENVIRONMENTS as readonly string[]).includes(e));
  if (unknown.length > 0 || requested.length === 0) {
    const message = `must be one or more of ${ENVIRONMENTS.join(', ')}${unknown.length ? ` (got ${unknown.join(', ')})` : ''}`;
    throw validationError([{ key: 'envVarEnvironments', message }], `envVarEnvironments ${message}`);
  }
  return [...new Set(requested)] as Environment[];
}

/** The variables a secret becomes: one for its value, one per environment whose value it overrides. */
function variablesOf(secret: Secret, environments: Environment[]): Array<{ key: string; value: string; targets: Environment[] }> {
  const overrides = secret.environmentOverrides ?? {};
  const overridden = environments.filter((e) => overrides[e] !== undefined);
  const plain = environments.filter((e) => overrides[e] === undefined);
  return [
    ...(plain.length ? [{ key: secret.name, value: secret.value, targets: plain }] : []),
    ...overridden.map((e) => ({ key: secret.name, value: overrides[e]!, targets: [e] })),
  ];
}

export class StoreConnections {
  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {}

  async connect(actor: Actor, ref: StoreRef, input: ConnectInput): Promise<void> {
    assertCanChangeProjects(actor);
    const environments = environmentsOf(input.envVarEnvironments);
    const prefix = input.envVarPrefix ?? '';
    if (prefix !== '' && !PREFIX.test(prefix)) {
      const message = 'must be letters, digits and "_", not starting with a digit (at most 64)';
      throw validationError([{ key: 'envVarPrefix', message }], `envVarPrefix ${message}`);
    }
    await this.db.transaction(async (tx) => {
      const store = await findStoreByRef(tx, actor, ref, true);
      // Only a store with its secrets: one still being created has none to hand out yet.
      if (!CONNECTABLE.includes(store.status)) {
        const state =
          store.status === 'deleting' ? 'being deleted' : store.status === 'initializing' ? 'still being created' : store.status;
        throw conflict(
          'store_not_connectable',
          `The store ${store.name} is ${state} and cannot be connected${store.status === 'initializing' ? ' yet' : ''}`,
        );
      }
      // Connections to one project take turns, so two stores' variables cannot both pass the clash check.
      const project = await findProject(tx, actor.team.id, input.projectId, { lock: true });
      // The installation may be limited to some projects (vercel integration update --projects).
      const { rows: selection } = await tx.query<{ project_ids: string[] | null }>(
        'SELECT project_ids FROM installations WHERE id = $1 FOR SHARE',
        [store.installationId],
      );
      if (selection[0]?.project_ids && !selection[0].project_ids.includes(project.id)) {
        throw forbidden(
          `The installation ${store.installationId} may connect its stores to selected projects only, and ${project.name} is not one: add it with PATCH /v1/integrations/configuration/${store.installationId} (vercel integration update --projects)`,
        );
      }
      // A sensitive store stays so unless one who may read its credentials says otherwise: variables
      // that are not sensitive can be read back, by anyone who may change the project.
      const guard = await storeGuard(tx, actor.team.id, store.id);
      const sensitive = input.makeEnvVarsSensitive ?? guard.sensitive;
      if (!sensitive) {
        assertMayReadCredentials(
          actor,
          guard,
          'connect it with makeEnvVarsSensitive false',
          'Connect it as sensitive (true, or leave it out)',
        );
      }
      const secrets = await readSecrets(tx, this.box, store.id);
      const variables = await this.writeVariables(
        tx,
        store,
        { projectId: project.id, projectName: project.name, environments, sensitive, prefix, createdBy: actor.userId },
        secrets,
      );
      await tx.query(
        `INSERT INTO store_connections (id, store_id, project_id, environments, sensitive, env_var_prefix, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (store_id, project_id) DO UPDATE SET environments = EXCLUDED.environments, sensitive = EXCLUDED.sensitive, env_var_prefix = EXCLUDED.env_var_prefix`,
        [newId('spc'), store.id, project.id, JSON.stringify(environments), sensitive, prefix, actor.userId],
      );
      await projectConnected(tx, store, project, environments, actor.userId);
      await projectChanged(tx, project.id, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'store.connected',
        targetType: 'store',
        targetId: store.id,
        details: { projectId: project.id, environments, sensitive, prefix, variables: [...new Set(variables.map((v) => v.key))] },
      });
    });
  }

  /**
   * Removes connections of a store and the variables they made: the one with this connection id
   * or project (id or name), or with `which: 'all'` every one.
   */
  async disconnect(actor: Actor, storeId: string, which: { connection: string } | 'all'): Promise<number> {
    assertCanChangeProjects(actor);
    return this.db.transaction(async (tx) => {
      const store = await findStore(tx, actor.team.id, storeId, { lock: true });
      const guard = await storeGuard(tx, actor.team.id, store.id);
      const { rows } = await tx.query<{ project_id: string; environments: string[] }>(
        `DELETE FROM store_connections c USING projects p
          WHERE c.store_id = $1 AND p.id = c.project_id AND ($2::text IS NULL OR c.id = $2 OR p.id = $2 OR p.name = $2)
          RETURNING c.project_id, c.environments`,
        [store.id, which === 'all' ? null : which.connection],
      );
      if (rows.length === 0 && which !== 'all') throw notFound('connection', which.connection);
      // Without a sensitive connection left the store would be readable again, by anyone: the
      // refusal aborts the transaction, so nothing is removed.
      if (guard.sensitive && !(await hasSensitiveConnection(tx, store.id))) {
        assertMayReadCredentials(actor, guard, 'remove its last sensitive connection');
      }
      const projects = rows.map((row) => row.project_id);
      if (projects.length > 0) {
        await tx.query('DELETE FROM project_env WHERE store_id = $1 AND project_id = ANY($2)', [store.id, projects]);
        await tx.query('UPDATE projects SET updated_at = now() WHERE id = ANY($1)', [projects]);
        await audit(tx, {
          teamId: actor.team.id,
          actorId: actor.userId,
          action: 'store.disconnected',
          targetType: 'store',
          targetId: store.id,
          details: { projects },
        });
        for (const row of rows) await projectDisconnected(tx, store, row.project_id, row.environments, actor.userId);
      }
      return projects.length;
    });
  }

  /**
   * Replaces the variables every project connected to the store has from it, after its secrets
   * changed (the provider replaced them). Projects are not redeployed: new values apply from the
   * next deployment, as on Vercel. A new name that clashes with a project's own variable is 409.
   */
  async rewriteVariables(tx: Queryable, store: Store, secrets: Secret[]): Promise<void> {
    const { rows } = await tx.query<MappedRow>(
      `SELECT c.project_id, p.name, c.environments, c.sensitive, c.env_var_prefix, c.created_by
         FROM store_connections c JOIN projects p ON p.id = c.project_id WHERE c.store_id = $1 ORDER BY c.project_id FOR UPDATE OF p`,
      [store.id],
    );
    for (const row of rows) {
      await this.writeVariables(
        tx,
        store,
        {
          projectId: row.project_id,
          projectName: row.name,
          environments: row.environments,
          sensitive: row.sensitive,
          prefix: row.env_var_prefix,
          createdBy: row.created_by,
        },
        secrets,
      );
      await tx.query('UPDATE projects SET updated_at = now() WHERE id = $1', [row.project_id]);
    }
  }

  /** Writes the project's variables from the store's secrets, replacing those it had from the store. */
  private async writeVariables(
    tx: Queryable,
    store: Store,
    to: {
      projectId: string;
      projectName: string;
      environments: Environment[];
      sensitive: boolean;
      prefix: string;
      createdBy: string | null;
    },
    secrets: Secret[],
  ): Promise<Array<{ key: string; value: string; targets: Environment[] }>> {
    // A connection again replaces the earlier one's variables (new environments, sensitivity).
    await tx.query('DELETE FROM project_env WHERE project_id = $1 AND store_id = $2', [to.projectId, store.id]);
    const variables = secrets.flatMap((secret) => variablesOf({ ...secret, name: to.prefix + secret.name }, to.environments));
    const clashes = await this.clashes(tx, to.projectId, variables);
    if (clashes.length > 0) {
      throw conflict(
        'env_var_conflict',
        `The project ${to.projectName} already has ${clashes.join(', ')} for the same environments: remove ${clashes.length === 1 ? 'it' : 'them'} first`,
      );
    }
    // One statement for all of them: this runs for every connected project when secrets change.
    if (variables.length > 0) {
      const ids = variables.map(() => newId('env')); // made first: each value is sealed for its row
      await tx.query(
        `INSERT INTO project_env (id, project_id, key, value, type, targets, store_id, created_by)
         SELECT v.id, $1, v.key, v.value, $2, v.targets, $3, $4 FROM unnest($5::text[], $6::text[], $7::text[], $8::jsonb[]) AS v(id, key, value, targets)`,
        [
          to.projectId,
          to.sensitive ? 'sensitive' : 'encrypted',
          store.id,
          to.createdBy,
          ids,
          variables.map((v) => v.key),
          variables.map((v, i) => this.box.seal(v.value, { table: 'project_env', id: ids[i]!, column: 'value' })),
          variables.map((v) => JSON.stringify(v.targets)),
        ],
      );
    }
    return variables;
  }

  /** Keys the project already has, from elsewhere, for an environment a variable is for. */
  private async clashes(tx: Queryable, projectId: string, variables: Array<{ key: string; targets: Environment[] }>): Promise<string[]> {
    if (variables.length === 0) return [];
    const { rows } = await tx.query<{ key: string; targets: Environment[] }>(
      'SELECT key, targets FROM project_env WHERE project_id = $1 AND key = ANY($2)',
      [projectId, [...new Set(variables.map((v) => v.key))]],
    );
    const clashing = rows.filter((row) => variables.some((v) => v.key === row.key && v.targets.some((t) => row.targets.includes(t))));
    return [...new Set(clashing.map((row) => row.key))];
  }
}
