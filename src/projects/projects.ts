/**
 * Projects, minimal but real: a team's projects, which stores connect to, and their environment
 * variables, where a connected store's secrets become variables (sealed at rest).
 */
import { audit, audited, type AuditEntry } from '../audit/audit-log.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { isUniqueViolation, seqPage } from '../db/database.ts';
import { AppError, conflict, forbidden, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import { type SecretBox, UnopenableSecretError } from '../secrets/secret-box.ts';
import { assertMayReadCredentials, GUARD_COLUMNS, GUARD_JOINS, guardOf } from '../stores/credential-access.ts';
import type { Actor } from '../tenancy/access.ts';
import { ProjectEnvWrites } from './env-writes.ts';

export const ENVIRONMENTS = ['production', 'preview', 'development'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export interface Project {
  id: string;
  teamId: string;
  name: string;
  framework: string | null;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface EnvVar {
  id: string;
  projectId: string;
  key: string;
  /**
   * Undefined for a sensitive variable, whose value is never read back; the empty string for an
   * encrypted one read without decrypt; never the sealed value.
   */
  value: string | undefined;
  type: 'encrypted' | 'sensitive' | 'plain';
  /** Whether `value` is the variable's value (opened). */
  decrypted: boolean;
  targets: Environment[];
  /** The store whose secret this is; null for a variable of the project's own. */
  storeId: string | null;
  configurationId: string | null;
  /**
   * For a store's variable, what Vercel's list says of an integration store's secret
   * (`contentHint` of type `integration-store-secret`): the store, its product, integration and
   * installation. Null for a variable of the project's own.
   */
  contentHint: StoreSecretHint | null;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface StoreSecretHint {
  type: 'integration-store-secret';
  storeId: string;
  integrationId: string;
  integrationProductId: string;
  integrationConfigurationId: string;
}

/** Columns for `contentHint`, for a query that names the variable `e` and its store `s`. */
const HINT_COLUMNS =
  's.installation_id, s.product_id, (SELECT integration_id FROM installations WHERE id = s.installation_id) AS integration_id';

const hintOf = (row: MappedRow): StoreSecretHint | null =>
  row.store_id === null
    ? null
    : {
        type: 'integration-store-secret',
        storeId: row.store_id,
        integrationId: row.integration_id,
        integrationProductId: row.product_id,
        integrationConfigurationId: row.installation_id,
      };

/**
 * Marks a project changed (its `updated_at`) by a write to its variables, and records the change:
 * one statement (audit-log.ts `audited`).
 */
export async function projectChanged(db: Queryable, projectId: string, entry: AuditEntry): Promise<void> {
  await audited(db, 'UPDATE projects SET updated_at = now() WHERE id = $1 RETURNING id', [projectId], entry);
}

/** The frameworks Vercel (and @vercel/sdk's closed enum) knows. */
export const FRAMEWORKS = (
  'actix-web angular ash astro axum blitzjs brunch bun container create-react-app django docusaurus docusaurus-2 dojo eleventy elysia ember eve ' +
  'express factory-eve fastapi fasthtml fastify flask gatsby go gridsome h3 hexo hono hugo hydrogen ionic-angular ionic-react jekyll koa mastra ' +
  'middleman nestjs nextjs nitro node nuxtjs parcel polymer preact python react-router redwoodjs remix ruby rust saber sanity sanity-v2 sapper ' +
  'scully services solidstart solidstart-1 stencil storybook svelte sveltekit sveltekit-1 tanstack-start tanstack-start-lovable umijs vite ' +
  'vitepress vue vuepress xmcp zola'
).split(' ');

/** Vercel's rule for project names. */
const PROJECT_NAME = /^[a-z0-9._-]{1,100}$/;

const toProject = (row: MappedRow): Project => ({
  id: row.id,
  teamId: row.team_id,
  name: row.name,
  framework: row.framework,
  createdBy: row.created_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** Roles that may change projects; viewers and billing members only look. */
export function assertCanChangeProjects(actor: Actor): void {
  if (actor.role === 'VIEWER' || actor.role === 'BILLING') {
    throw forbidden(`A team ${actor.role.toLowerCase()} cannot change projects or read their environment variables`);
  }
}

export async function createProject(
  db: Database,
  actor: Actor,
  input: { name: string; framework?: string | null | undefined },
): Promise<Project> {
  assertCanChangeProjects(actor);
  if (!PROJECT_NAME.test(input.name) || input.name.includes('---')) {
    throw new AppError(
      400,
      'invalid_name',
      'Project names are up to 100 lowercase letters, digits, ".", "_" and "-", and cannot contain "---"',
    );
  }
  if (input.framework != null && !FRAMEWORKS.includes(input.framework)) {
    throw new AppError(400, 'invalid_framework', `Unknown framework "${input.framework}": use one of ${FRAMEWORKS.join(', ')}, or null`);
  }
  try {
    return await db.transaction(async (tx) => {
      const { rows } = await tx.query(
        'INSERT INTO projects (id, team_id, name, framework, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [newId('prj'), actor.team.id, input.name, input.framework ?? null, actor.userId],
      );
      const project = toProject(rows[0]!);
      await audit(tx, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'project.created',
        targetType: 'project',
        targetId: project.id,
        details: { name: project.name },
      });
      return project;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict('conflict', `A project named "${input.name}" already exists in this team`);
    throw error;
  }
}

/** The team's project by id or name; 404 for any other. */
export async function findProject(db: Queryable, teamId: string, idOrName: string, options: { lock?: boolean } = {}): Promise<Project> {
  const { rows } = await db.query(
    `SELECT * FROM projects WHERE team_id = $1 AND (id = $2 OR name = $2)${options.lock ? ' FOR UPDATE' : ''}`,
    [teamId, idOrName],
  );
  if (!rows[0]) throw notFound('project', idOrName);
  return toProject(rows[0]);
}

export interface ProjectPage {
  projects: Project[];
  /** The cursor of the next page; null on the last page. */
  next: number | null;
}

/**
 * The team's projects, newest first; `search` matches names. The cursor is the creation order,
 * which (unlike a time) no two projects share, so no page boundary ever skips one.
 */
export async function listProjects(
  db: Queryable,
  teamId: string,
  options: { limit: number; until?: number | undefined; search?: string | undefined },
): Promise<ProjectPage> {
  const { rows } = await db.query(
    `SELECT * FROM projects
      WHERE team_id = $1 AND ($2::bigint IS NULL OR seq < $2) AND ($3::text IS NULL OR strpos(name, $3) > 0)
      ORDER BY seq DESC LIMIT $4`,
    [teamId, options.until ?? null, options.search ?? null, options.limit + 1],
  );
  const page = seqPage(rows, options.limit);
  return { projects: page.rows.map(toProject), next: page.next };
}

export class ProjectEnv {
  /** Writes to the project's own variables (env-writes.ts), with the same database and box. */
  readonly writes: ProjectEnvWrites;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {
    this.writes = new ProjectEnvWrites(db, box);
  }

  /**
   * A row as the API shows it (docs/vercel-api.md §9.1): a sensitive variable never has its value
   * read back; an encrypted one only with `decrypt`; a plain one always. Without `decrypt` an
   * encrypted value is the empty string, never the sealed value Storehouse keeps.
   */
  private toEnvVar(row: MappedRow, decrypt: boolean): EnvVar {
    const readable = row.type === 'plain' || (decrypt && row.type !== 'sensitive');
    return {
      id: row.id,
      projectId: row.project_id,
      key: row.key,
      value: row.type === 'sensitive' ? undefined : readable ? this.openValue(row) : '',
      type: row.type,
      decrypted: readable,
      targets: row.targets,
      storeId: row.store_id,
      configurationId: row.installation_id ?? null,
      contentHint: hintOf(row),
      createdBy: row.created_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** A variable's value; one that does not open (sealed for another row) is a 409 naming the variable, never a 500. */
  private openValue(row: MappedRow): string {
    try {
      return this.box.open(row.value, { table: 'project_env', id: row.id, column: 'value' });
    } catch (error) {
      if (!(error instanceof UnopenableSecretError)) throw error;
      throw new AppError(
        409,
        error.code,
        `The value of ${row.key} (${row.id}) cannot be read: it was not sealed for this variable. ` +
          "Set it again (a store's variable: connect the store to the project again); the server log says why.",
      );
    }
  }

  /** 403 for an encrypted variable of a sensitive store (see credential-access.ts) the actor may not read. */
  private assertMayOpen(actor: Actor, row: MappedRow): void {
    if (row.type !== 'encrypted' || row.store_id === null) return;
    assertMayReadCredentials(actor, guardOf(row), `read the value of ${row.key}, one of its credentials`);
  }

  /** The project's variables; values decrypted only when asked (sensitive ones never). */
  async list(
    actor: Actor,
    idOrName: string,
    options: { decrypt: boolean; target?: string | undefined },
  ): Promise<{ project: Project; envs: EnvVar[] }> {
    if (options.decrypt) assertCanChangeProjects(actor);
    const project = await findProject(this.db, actor.team.id, idOrName);
    // The guard (who may open a store's values) is read only when values are to be opened.
    const guard = options.decrypt ? { columns: `, ${GUARD_COLUMNS}`, joins: GUARD_JOINS } : { columns: '', joins: '' };
    const { rows } = await this.db.query(
      `SELECT e.*, ${HINT_COLUMNS}${guard.columns} FROM project_env e LEFT JOIN stores s ON s.id = e.store_id ${guard.joins}
        WHERE e.project_id = $1 AND ($2::text IS NULL OR e.targets ? $2) ORDER BY e.created_at, e.key, e.id`,
      [project.id, options.target ?? null],
    );
    // Refused whole rather than answered without the values: a pull that silently lacks a
    // variable would fail later, far from the reason.
    if (options.decrypt) for (const row of rows) this.assertMayOpen(actor, row);
    return { project, envs: rows.map((row) => this.toEnvVar(row, options.decrypt)) };
  }

  /** One variable, decrypted unless sensitive (as Vercel's single-variable endpoint returns it). */
  async get(actor: Actor, idOrName: string, id: string): Promise<EnvVar> {
    assertCanChangeProjects(actor);
    const project = await findProject(this.db, actor.team.id, idOrName);
    const { rows } = await this.db.query(
      `SELECT e.*, ${HINT_COLUMNS}, ${GUARD_COLUMNS} FROM project_env e LEFT JOIN stores s ON s.id = e.store_id ${GUARD_JOINS}
        WHERE e.project_id = $1 AND e.id = $2`,
      [project.id, id],
    );
    if (!rows[0]) throw notFound('environment variable', id);
    this.assertMayOpen(actor, rows[0]);
    return this.toEnvVar(rows[0], true);
  }
}
