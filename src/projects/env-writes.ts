/**
 * A project's own environment variables, written as Vercel's API takes them (`vercel env add`,
 * `env update`, `env rm`, and the SDK's createProjectEnv/editProjectEnv/removeProjectEnv):
 * plain, encrypted or sensitive, each for one or more of production, preview and development.
 * Values are sealed at rest for their row, whatever the type (secret-box.ts); a plain one is
 * read back by anyone who may list the project's variables, an encrypted one only with decrypt
 * (by those who may change projects), a sensitive one never (docs/vercel-api.md §9.1).
 *
 * A key may appear more than once, for environments that do not overlap; one that overlaps is
 * Vercel's ENV_ALREADY_EXISTS unless `upsert` is asked for, which replaces the variable for those
 * environments. The variables a store connection made (store_id set) stay the store's: they
 * follow its secrets and go with its disconnection, so writing them by hand is refused (409
 * env_var_owned_by_store) with what to do instead, and a variable of the project's own never
 * takes a key and environment a store's variable has.
 *
 * Writes to one project take turns on its row (as connections do), so two writes cannot both
 * pass the overlap check. Storehouse keeps no branch-specific variables and no custom
 * environments: `gitBranch` and `customEnvironmentIds` are refused rather than dropped.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { AppError, conflict, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { Actor } from '../tenancy/access.ts';
import {
  assertCanChangeProjects,
  ENVIRONMENTS,
  type EnvVar,
  type Environment,
  findProject,
  type Project,
  projectChanged,
} from './projects.ts';

export const WRITABLE_TYPES = ['plain', 'encrypted', 'sensitive'] as const;
export type WritableType = (typeof WRITABLE_TYPES)[number];

/** Vercel's rule: letters, digits and underscores, not starting with a digit. */
const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_KEY_LENGTH = 256;
/** Vercel allows 64 KB of variables per deployment; no one value may exceed that either. */
const MAX_VALUE_BYTES = 65_536;

export interface EnvInput {
  key?: string | undefined;
  value?: string | undefined;
  type?: string | undefined;
  target?: string[] | string | undefined;
  gitBranch?: string | null | undefined;
  customEnvironmentIds?: string[] | undefined;
  comment?: string | undefined;
  /** Vercel's newer name for sensitivity: `secret` is a sensitive variable, `config` any other. */
  visibility?: string | undefined;
}

/** A 400 with one of Vercel's environment-variable codes (the CLI prints its message as is for these). */
const envError = (code: string, message: string, extra: Record<string, unknown> = {}) => new AppError(400, code, message, extra);

function checkKey(key: string | undefined): string {
  if (key === undefined || key === '') throw envError('MISSING_KEY', 'The environment variable needs a key');
  if (key.length > MAX_KEY_LENGTH) {
    throw envError('KEY_INVALID_LENGTH', `The key of an environment variable is at most ${MAX_KEY_LENGTH} characters`, { key });
  }
  if (!KEY.test(key)) {
    throw envError(
      'KEY_INVALID_CHARACTERS',
      `The key ${key} contains invalid characters: only letters, digits and underscores are allowed, and it cannot start with a digit`,
      { key },
    );
  }
  return key;
}

function checkValue(value: string | undefined, key: string): string {
  if (value === undefined) throw envError('MISSING_VALUE', `The environment variable ${key} needs a value`, { key });
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
    throw envError('VALUE_INVALID_LENGTH', `The value of ${key} is over ${MAX_VALUE_BYTES / 1024} KB`, { key });
  }
  return value;
}

function checkType(type: string | undefined, key: string): WritableType {
  if (type === undefined)
    throw envError('MISSING_TYPE', `The environment variable ${key} needs a type: plain, encrypted or sensitive`, { key });
  if (!(WRITABLE_TYPES as readonly string[]).includes(type)) {
    throw envError(
      'VALUE_INVALID_TYPE',
      `An environment variable's type is plain, encrypted or sensitive (got ${type}); system variables are Vercel's own`,
      { key },
    );
  }
  return type as WritableType;
}

function checkTargets(target: string[] | string | undefined, key: string): Environment[] {
  const given = typeof target === 'string' ? [target] : target;
  if (given === undefined || given.length === 0) {
    throw envError('MISSING_TARGET', `The environment variable ${key} needs at least one target: ${ENVIRONMENTS.join(', ')}`, { key });
  }
  const unknown = given.filter((t) => !(ENVIRONMENTS as readonly string[]).includes(t));
  if (unknown.length > 0) {
    throw envError('INVALID_TARGET', `Unknown target ${unknown.join(', ')} for ${key}: use ${ENVIRONMENTS.join(', ')}`, { key });
  }
  return ENVIRONMENTS.filter((e) => given.includes(e));
}

/** What Storehouse does not keep is refused rather than silently dropped. */
function checkUnsupported(input: EnvInput, key: string): void {
  if (input.gitBranch) {
    throw envError(
      'BAD_REQUEST',
      `Storehouse keeps no branch-specific variables: leave out the Git branch (${input.gitBranch}) to set ${key} for every Preview branch`,
      { key },
    );
  }
  if (input.customEnvironmentIds && input.customEnvironmentIds.length > 0) {
    throw envError('BAD_REQUEST', `Storehouse has no custom environments: target ${ENVIRONMENTS.join(', ')}`, { key });
  }
  if (input.comment) throw envError('BAD_REQUEST', 'Storehouse keeps no comments on environment variables: leave comment out', { key });
}

/** `visibility`, when given, must agree with the type: `secret` is sensitive, `config` plain or encrypted. */
function checkVisibility(visibility: string | undefined, type: WritableType, key: string): void {
  if (visibility === undefined || (visibility === 'secret') === (type === 'sensitive')) return;
  throw envError(
    'BAD_REQUEST',
    `Visibility ${visibility} does not go with type ${type} for ${key}: secret is for sensitive variables only`,
    {
      key,
    },
  );
}

const sameTargets = (a: Environment[], b: Environment[]) => a.length === b.length && a.every((t) => b.includes(t));

export class ProjectEnvWrites {
  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {}

  /** A written variable as the API answers it: a plain value read back, an encrypted or sensitive one not. */
  private toEnvVar(row: MappedRow, value: string): EnvVar {
    return {
      id: row.id,
      projectId: row.project_id,
      key: row.key,
      value: row.type === 'sensitive' ? undefined : row.type === 'plain' ? value : '',
      type: row.type,
      decrypted: row.type === 'plain',
      targets: row.targets,
      storeId: row.store_id,
      configurationId: null,
      contentHint: null, // only variables of the project's own are written here
      createdBy: row.created_by,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** The project's variables with this key, the store's name beside a store's. */
  private async sameKey(tx: Queryable, projectId: string, key: string): Promise<MappedRow[]> {
    const { rows } = await tx.query(
      `SELECT e.*, s.name AS store_name FROM project_env e LEFT JOIN stores s ON s.id = e.store_id
        WHERE e.project_id = $1 AND e.key = $2 ORDER BY e.created_at, e.id`,
      [projectId, key],
    );
    return rows;
  }

  /** ENV_ALREADY_EXISTS for the variable `row` already set for some of `targets`, naming the store when it is one's. */
  private alreadyExists(project: Project, row: MappedRow, targets: Environment[]): AppError {
    const overlap = targets.filter((t) => row.targets.includes(t));
    const where = `for the target ${overlap.join(', ')} in the project ${project.name}`;
    const message =
      row.store_id === null
        ? `A variable with the name ${row.key} already exists ${where}: update it, or add it with upsert (vercel env add --force)`
        : `${row.key} is already a variable of the store ${row.store_name} ${where}: change it through the store, or disconnect the store first (vercel integration resource disconnect ${row.store_name} ${project.name})`;
    return envError('ENV_ALREADY_EXISTS', message, { key: row.key, envVarId: row.id, envVarKey: row.key, target: overlap });
  }

  /** 409 for a store's variable: it follows the store's secrets, so it is changed through the store. */
  private ownedByStore(project: Project, row: MappedRow, doing: string): AppError {
    return conflict(
      'env_var_owned_by_store',
      `${row.key} is a variable of the store ${row.store_name}, connected to the project ${project.name}, and cannot be ${doing} by hand: ` +
        `it follows the store's credentials. Disconnect the store (vercel integration resource disconnect ${row.store_name} ${project.name}), ` +
        'or connect it again with other environments or a prefix',
    );
  }

  /**
   * Adds variables of the project's own, all or none. With `upsert`, a variable of the project's
   * own already set for some of the same environments is replaced there (updated in place when
   * it is for exactly the same ones); a store's variable never is.
   */
  async create(actor: Actor, idOrName: string, inputs: EnvInput[], options: { upsert: boolean }): Promise<EnvVar[]> {
    assertCanChangeProjects(actor);
    if (inputs.length === 0) throw envError('BAD_REQUEST', 'No environment variable to add');
    // Checked before anything is read: a bad body is a 400 whatever the project.
    const checked = inputs.map((input) => {
      const key = checkKey(input.key);
      checkUnsupported(input, key);
      const type = checkType(input.type, key);
      checkVisibility(input.visibility, type, key);
      return { key, value: checkValue(input.value, key), type, targets: checkTargets(input.target, key) };
    });
    return this.db.transaction(async (tx) => {
      const project = await findProject(tx, actor.team.id, idOrName, { lock: true });
      const written: EnvVar[] = [];
      for (const input of checked) {
        const existing = (await this.sameKey(tx, project.id, input.key)).filter((row) =>
          row.targets.some((t: Environment) => input.targets.includes(t)),
        );
        const store = existing.find((row) => row.store_id !== null);
        if (store) throw this.alreadyExists(project, store, input.targets);
        if (existing.length > 0 && !options.upsert) throw this.alreadyExists(project, existing[0]!, input.targets);
        const same = existing.find((row) => sameTargets(row.targets, input.targets));
        for (const row of existing) {
          if (row === same) continue;
          // The new variable takes these environments from the old one; one left with none goes.
          const left = row.targets.filter((t: Environment) => !input.targets.includes(t));
          if (left.length === 0) await tx.query('DELETE FROM project_env WHERE id = $1', [row.id]);
          else await tx.query('UPDATE project_env SET targets = $2, updated_at = now() WHERE id = $1', [row.id, JSON.stringify(left)]);
        }
        const id = same?.id ?? newId('env');
        const sealed = this.box.seal(input.value, { table: 'project_env', id, column: 'value' });
        const { rows } = same
          ? await tx.query('UPDATE project_env SET value = $2, type = $3, updated_at = now() WHERE id = $1 RETURNING *', [
              id,
              sealed,
              input.type,
            ])
          : await tx.query(
              `INSERT INTO project_env (id, project_id, key, value, type, targets, store_id, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, NULL, $7) RETURNING *`,
              [id, project.id, input.key, sealed, input.type, JSON.stringify(input.targets), actor.userId],
            );
        written.push(this.toEnvVar(rows[0]!, input.value));
        await audit(tx, {
          teamId: actor.team.id,
          actorId: actor.userId,
          action: existing.length > 0 ? 'project.env.replaced' : 'project.env.created',
          targetType: 'project',
          targetId: project.id,
          details: { envId: id, key: input.key, type: input.type, targets: input.targets, replaced: existing.map((row) => row.id) },
        });
      }
      await tx.query('UPDATE projects SET updated_at = now() WHERE id = $1', [project.id]);
      return written;
    });
  }

  /** The variable `id` of the project, locked with its project; 404 for one of another project or team. */
  private async find(tx: Queryable, actor: Actor, idOrName: string, id: string): Promise<{ project: Project; row: MappedRow }> {
    const project = await findProject(tx, actor.team.id, idOrName, { lock: true });
    const { rows } = await tx.query(
      `SELECT e.*, s.name AS store_name FROM project_env e LEFT JOIN stores s ON s.id = e.store_id WHERE e.project_id = $1 AND e.id = $2`,
      [project.id, id],
    );
    if (!rows[0]) throw notFound('environment variable', id);
    return { project, row: rows[0] };
  }

  /**
   * Changes a variable of the project's own: its key, value, type or environments, each left as
   * it is when not given. A sensitive value is never read back, so leaving `sensitive` needs a
   * new value; the new key and environments must not overlap another variable.
   */
  async update(actor: Actor, idOrName: string, id: string, patch: EnvInput): Promise<EnvVar> {
    assertCanChangeProjects(actor);
    if (patch.key !== undefined) checkKey(patch.key);
    if (patch.type !== undefined) checkType(patch.type, patch.key ?? 'the variable');
    if (patch.target !== undefined) checkTargets(patch.target, patch.key ?? 'the variable');
    if (patch.value !== undefined) checkValue(patch.value, patch.key ?? 'the variable');
    return this.db.transaction(async (tx) => {
      const { project, row } = await this.find(tx, actor, idOrName, id);
      if (row.store_id !== null) throw this.ownedByStore(project, row, 'changed');
      const key = patch.key ?? row.key;
      checkUnsupported(patch, key);
      const type = patch.type === undefined ? (row.type as WritableType) : checkType(patch.type, key);
      const targets = patch.target === undefined ? (row.targets as Environment[]) : checkTargets(patch.target, key);
      checkVisibility(patch.visibility, type, key);
      if (row.type === 'sensitive' && type !== 'sensitive' && patch.value === undefined) {
        throw envError('MISSING_VALUE', `${key} is sensitive and its value cannot be read back: give its value to make it ${type}`, {
          key,
          envVarId: row.id,
        });
      }
      const clash = (await this.sameKey(tx, project.id, key)).find(
        (other) => other.id !== row.id && other.targets.some((t: Environment) => targets.includes(t)),
      );
      if (clash) throw this.alreadyExists(project, clash, targets);
      const value = patch.value ?? this.box.open(row.value, { table: 'project_env', id: row.id, column: 'value' });
      const { rows } = await tx.query(
        'UPDATE project_env SET key = $2, value = $3, type = $4, targets = $5, updated_at = now() WHERE id = $1 RETURNING *',
        [row.id, key, this.box.seal(value, { table: 'project_env', id: row.id, column: 'value' }), type, JSON.stringify(targets)],
      );
      await projectChanged(tx, project.id, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'project.env.updated',
        targetType: 'project',
        targetId: project.id,
        details: {
          envId: row.id,
          key,
          type,
          targets,
          valueChanged: patch.value !== undefined,
          ...(key !== row.key && { previousKey: row.key }),
        },
      });
      return this.toEnvVar(rows[0]!, value);
    });
  }

  /** Removes a variable of the project's own; a store's goes with the store's disconnection only. */
  async remove(actor: Actor, idOrName: string, id: string): Promise<EnvVar> {
    assertCanChangeProjects(actor);
    return this.db.transaction(async (tx) => {
      const { project, row } = await this.find(tx, actor, idOrName, id);
      if (row.store_id !== null) throw this.ownedByStore(project, row, 'removed');
      await tx.query('DELETE FROM project_env WHERE id = $1', [row.id]);
      await projectChanged(tx, project.id, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'project.env.removed',
        targetType: 'project',
        targetId: project.id,
        details: { envId: row.id, key: row.key, targets: row.targets },
      });
      // A plain value is answered as listed; only for those it would be read back to anyway.
      const value = row.type === 'plain' ? this.box.open(row.value, { table: 'project_env', id: row.id, column: 'value' }) : '';
      return this.toEnvVar(row, value);
    });
  }
}
