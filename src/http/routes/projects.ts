import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../../db/database.ts';
import { createProject, findProject, listProjects, type ProjectEnv } from '../../projects/projects.ts';
import { toEnvVar, toProject } from '../project-shapes.ts';
import { errorResponses, pageQuery, teamQuery, type PageQuery, type TeamQuery } from './common.ts';
import { ENVIRONMENTS } from '../../projects/projects.ts';

const tags = ['projects'];
const idOrNameParams = { type: 'object', required: ['idOrName'], properties: { idOrName: { type: 'string' } } };
const projectResponse = { $ref: 'Project#' };

/** Projects, minimal but real: create, list, get, and read their environment variables. */
export default async function projectsRoutes(app: FastifyInstance, options: { db: Database; env: ProjectEnv }) {
  const { db, env } = options;

  app.post<{ Querystring: TeamQuery; Body: { name: string; framework?: string | null } }>(
    '/v11/projects',
    {
      schema: {
        operationId: 'createProject',
        summary: 'Create a project',
        tags,
        querystring: { type: 'object', properties: teamQuery },
        body: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, framework: { type: ['string', 'null'] } } },
        response: { 200: projectResponse, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request) => toProject(await createProject(db, request.actor, request.body)),
  );

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

  app.get<{ Params: { idOrName: string; target: string }; Querystring: TeamQuery & { source?: string } }>(
    '/v3/env/pull/:idOrName/:target',
    {
      schema: {
        operationId: 'pullProjectEnv',
        summary: "A project's variables for one environment as KEY: value (what `vercel env pull` reads)",
        tags,
        hide: true,
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
