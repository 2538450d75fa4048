import { exactBodies } from '../lazy-compilers.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../../db/database.ts';
import { createProject, findProject, listProjects, type ProjectEnv } from '../../projects/projects.ts';
import { toEnvVar, toProject, toWrittenEnvVar } from '../project-shapes.ts';
import type { EnvInput } from '../../projects/env-writes.ts';
import { errorResponses, pageQuery, teamQuery, type PageQuery, type TeamQuery } from './common.ts';
import { ENVIRONMENTS } from '../../projects/projects.ts';

const tags = ['projects'];
/** The most variables one create takes (Vercel's batch limit is not documented; this bounds one transaction). */
const MAX_BATCH = 100;
const writtenEnvVar = { $ref: 'EnvVar#' };
/** A variable as createProjectEnv and editProjectEnv take it; env-writes.ts checks the values (in Vercel's codes). */
const envInputSchema = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    value: { type: 'string' },
    type: { type: 'string' },
    target: { type: 'array', items: { type: 'string' } },
    gitBranch: { type: ['string', 'null'] },
    customEnvironmentIds: { type: 'array', items: { type: 'string' } },
    comment: { type: 'string' },
    visibility: { type: 'string', enum: ['config', 'secret'] },
  },
};
const idOrNameParams = { type: 'object', required: ['idOrName'], properties: { idOrName: { type: 'string' } } };
const projectResponse = { $ref: 'Project#' };

/**
 * Projects, minimal but real: create, list, get, and their environment variables: read, and
 * written as the SDK and the `vercel` CLI write them (env-writes.ts).
 */
export default async function projectsRoutes(app: FastifyInstance, options: { db: Database; env: ProjectEnv }) {
  const { db, env } = options;

  type CreateRequest = FastifyRequest<{ Querystring: TeamQuery; Body: { name: string; framework?: string | null } }>;
  const createRoute = (operationId: string, hide: boolean) => ({
    schema: {
      operationId,
      summary: 'Create a project',
      tags,
      hide,
      querystring: { type: 'object', properties: teamQuery },
      body: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, framework: { type: ['string', 'null'] } } },
      response: { 200: projectResponse, ...errorResponses(400, 401, 403, 409) },
    },
  });
  const create = async (request: CreateRequest) =>
    toProject(await createProject(db, request.actor, { name: request.body.name, framework: request.body.framework }));
  app.post('/v11/projects', createRoute('createProject', false), create);
  // What `vercel project add` and `vercel link` (creating a project) call: the same body and answer.
  // The CLI also sends settings Storehouse has no use for (buildCommand, rootDirectory, ...): ignored.
  app.post('/v1/projects', createRoute('createProjectV1', true), create);

  type ListRequest = FastifyRequest<{ Querystring: TeamQuery & PageQuery & { search?: string } }>;
  const listRoute = (operationId: string, hide: boolean) => ({
    schema: {
      operationId,
      summary: "List the team's projects, newest first",
      tags,
      hide,
      querystring: {
        type: 'object',
        properties: {
          ...pageQuery(20, 100),
          search: { type: 'string' },
          ...teamQuery,
        },
      },
      response: {
        200: {
          type: 'object',
          required: ['projects', 'pagination'],
          properties: { projects: { type: 'array', items: projectResponse }, pagination: { $ref: 'Pagination#' } },
        },
        ...errorResponses(400, 401, 403),
      },
    },
  });
  const list = async (request: ListRequest) => {
    const { limit = 20, from, until, search } = request.query;
    const page = await listProjects(db, request.actor.team.id, { limit, until: until ?? from, search });
    return { projects: page.projects.map(toProject), pagination: { count: page.projects.length, next: page.next, prev: null } };
  };
  app.get('/v10/projects', listRoute('getProjects', false), list);
  app.get('/v9/projects', listRoute('getProjectsV9', true), list); // what the vercel CLI calls

  type GetRequest = FastifyRequest<{ Params: { idOrName: string }; Querystring: TeamQuery }>;
  const getRoute = (operationId: string, hide: boolean) => ({
    schema: {
      operationId,
      summary: 'Find a project by id or name',
      tags,
      hide,
      params: idOrNameParams,
      querystring: { type: 'object', properties: teamQuery },
      response: { 200: projectResponse, ...errorResponses(400, 401, 403, 404) },
    },
  });
  const get = async (request: GetRequest) => toProject(await findProject(db, request.actor.team.id, request.params.idOrName));
  app.get('/v9/projects/:idOrName', getRoute('getProject', false), get);
  app.get('/v8/projects/:idOrName', getRoute('getProjectV8', true), get); // what the vercel CLI calls

  app.get<{
    Params: { idOrName: string };
    Querystring: TeamQuery & { decrypt?: 'true' | 'false'; target?: string; gitBranch?: string; source?: string };
  }>(
    '/v10/projects/:idOrName/env',
    {
      schema: {
        operationId: 'filterProjectEnvs',
        summary: "List a project's environment variables (decrypt=true for their values)",
        tags,
        params: idOrNameParams,
        querystring: {
          type: 'object',
          properties: {
            decrypt: { type: 'string', enum: ['true', 'false'] },
            target: { type: 'string', enum: [...ENVIRONMENTS] },
            gitBranch: { type: 'string' },
            source: { type: 'string' },
            customEnvironmentId: { type: 'string' },
            ...teamQuery,
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['envs', 'pagination'],
            properties: { envs: { type: 'array', items: { $ref: 'EnvVar#' } }, pagination: { $ref: 'Pagination#' } },
          },
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const decrypt = request.query.decrypt === 'true';
      const { envs } = await env.list(request.actor, request.params.idOrName, { decrypt, target: request.query.target });
      return { envs: envs.map(toEnvVar), pagination: { count: envs.length, next: null, prev: null } };
    },
  );

  app.get<{ Params: { idOrName: string; id: string }; Querystring: TeamQuery }>(
    '/v1/projects/:idOrName/env/:id',
    {
      schema: {
        operationId: 'getProjectEnv',
        summary: 'Read one environment variable, decrypted',
        tags,
        params: { type: 'object', required: ['idOrName', 'id'], properties: { idOrName: { type: 'string' }, id: { type: 'string' } } },
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: { $ref: 'EnvVar#' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => toEnvVar(await env.get(request.actor, request.params.idOrName, request.params.id)),
  );

  type CreateEnvRequest = FastifyRequest<{
    Params: { idOrName: string };
    Querystring: TeamQuery & { upsert?: string };
    Body: EnvInput | EnvInput[];
  }>;
  app.post(
    '/v10/projects/:idOrName/env',
    {
      // Values as sent: the app's coercing validator would make `"value": null` an empty string.
      validatorCompiler: exactBodies,
      schema: {
        operationId: 'createProjectEnv',
        summary: "Add environment variables of the project's own (upsert=true replaces one set for the same environments)",
        tags,
        params: idOrNameParams,
        querystring: { type: 'object', properties: { upsert: { type: 'string', enum: ['true', 'false', ''] }, ...teamQuery } },
        body: { anyOf: [envInputSchema, { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: envInputSchema }] },
        response: {
          201: {
            type: 'object',
            required: ['created', 'failed'],
            properties: {
              created: { anyOf: [writtenEnvVar, { type: 'array', items: writtenEnvVar }] },
              failed: { type: 'array', maxItems: 0 },
            },
          },
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request: CreateEnvRequest, reply) => {
      const batch = Array.isArray(request.body);
      const inputs = Array.isArray(request.body) ? request.body : [request.body];
      const created = await env.writes.create(request.actor, request.params.idOrName, inputs, { upsert: request.query.upsert === 'true' });
      // All or none: a variable that cannot be added refuses the request, so `failed` is always empty.
      reply.code(201);
      return { created: batch ? created.map(toWrittenEnvVar) : toWrittenEnvVar(created[0]!), failed: [] };
    },
  );

  type OneEnvRequest = FastifyRequest<{ Params: { idOrName: string; id: string }; Querystring: TeamQuery }>;
  const oneEnvParams = {
    type: 'object',
    required: ['idOrName', 'id'],
    properties: { idOrName: { type: 'string' }, id: { type: 'string' } },
  };
  const editRoute = (operationId: string) => ({
    // Values as sent: coerced, a PATCH of `"value": null` would blank the variable.
    validatorCompiler: exactBodies,
    schema: {
      operationId,
      summary: "Change a variable of the project's own: key, value, type or environments (a store's is 409)",
      tags,
      params: oneEnvParams,
      querystring: { type: 'object', properties: teamQuery },
      body: envInputSchema,
      response: { 200: writtenEnvVar, ...errorResponses(400, 401, 403, 404, 409) },
    },
  });
  const edit = async (request: OneEnvRequest) =>
    toWrittenEnvVar(await env.writes.update(request.actor, request.params.idOrName, request.params.id, request.body as EnvInput));
  app.patch('/v9/projects/:idOrName/env/:id', editRoute('editProjectEnv'), edit); // the SDK's editProjectEnv
  app.patch('/v10/projects/:idOrName/env/:id', editRoute('editProjectEnvV10'), edit); // what `vercel env update` calls

  const removeRoute = (operationId: string) => ({
    schema: {
      operationId,
      summary: "Remove a variable of the project's own (a store's goes when the store is disconnected: 409)",
      tags,
      params: oneEnvParams,
      querystring: { type: 'object', properties: { customEnvironmentId: { type: 'string' }, ...teamQuery } },
      response: { 200: writtenEnvVar, ...errorResponses(400, 401, 403, 404, 409) },
    },
  });
  const remove = async (request: OneEnvRequest) =>
    toWrittenEnvVar(await env.writes.remove(request.actor, request.params.idOrName, request.params.id));
  app.delete('/v9/projects/:idOrName/env/:id', removeRoute('removeProjectEnv'), remove); // the SDK's removeProjectEnv
  app.delete('/v10/projects/:idOrName/env/:id', removeRoute('removeProjectEnvV10'), remove); // what `vercel env rm` calls

  app.get<{ Params: { idOrName: string; target: string }; Querystring: TeamQuery & { source?: string } }>(
    '/v3/env/pull/:idOrName/:target',
    {
      schema: {
        operationId: 'pullProjectEnv',
        summary: "A project's variables for one environment as KEY: value (what `vercel env pull` reads)",
        tags,
        params: {
          type: 'object',
          required: ['idOrName', 'target'],
          properties: { idOrName: { type: 'string' }, target: { type: 'string', enum: [...ENVIRONMENTS] } },
        },
        querystring: { type: 'object', properties: { source: { type: 'string' }, ...teamQuery } },
        response: {
          200: {
            type: 'object',
            required: ['env', 'buildEnv'],
            properties: {
              env: { type: 'object', additionalProperties: { type: 'string' } },
              buildEnv: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const { envs } = await env.list(request.actor, request.params.idOrName, { decrypt: true, target: request.params.target });
      const values = Object.fromEntries(envs.filter((e) => e.value !== undefined).map((e) => [e.key, e.value!]));
      return { env: values, buildEnv: values };
    },
  );
}
