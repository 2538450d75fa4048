/**
 * Vercel's wire shapes of projects and environment variables, as @vercel/sdk parses them
 * (createProject/getProject/getProjects, filterProjectEnvs/getProjectEnv) and the `vercel` CLI
 * reads them (`updatedAt` in ms, `pagination.next`).
 */
import type { EnvVar, Project } from '../projects/projects.ts';
import { ENVIRONMENTS } from '../projects/projects.ts';
import { str, num, bool } from './vercel-shapes.ts';

const nullableStr = { type: ['string', 'null'] };
const regions = {
  type: 'object',
  required: ['functionDefaultRegions'],
  properties: { functionDefaultRegions: { type: 'array', items: str } },
};

/** Storehouse runs no functions; these are the defaults a new Vercel project shows. */
const REGION = 'iad1';
const NODE_VERSION = '22.x';

export const projectSchema = {
  $id: 'Project',
  type: 'object',
  required: [
    'id',
    'name',
    'accountId',
    'nodeVersion',
    'alias',
    'defaultResourceConfig',
    'resourceConfig',
    'deploymentExpiration',
    'directoryListing',
  ],
  properties: {
    id: str,
    name: str,
    accountId: str,
    createdAt: num,
    updatedAt: num,
    framework: nullableStr,
    nodeVersion: str,
    directoryListing: bool,
    serverlessFunctionRegion: str,
    alias: { type: 'array', items: { type: 'object' } },
    latestDeployments: { type: 'array', items: { type: 'object' } },
    targets: { type: 'object' },
    defaultResourceConfig: regions,
    resourceConfig: regions,
    deploymentExpiration: { type: 'object' },
  },
};

export function toProject(project: Project) {
  return {
    id: project.id,
    name: project.name,
    accountId: project.teamId,
    createdAt: project.createdAt.getTime(),
    updatedAt: project.updatedAt.getTime(),
    framework: project.framework,
    nodeVersion: NODE_VERSION,
    directoryListing: false,
    serverlessFunctionRegion: REGION,
    alias: [],
    latestDeployments: [],
    targets: {},
    defaultResourceConfig: { functionDefaultRegions: [REGION] },
    resourceConfig: { functionDefaultRegions: [REGION] },
    deploymentExpiration: {},
  };
}

export const envVarSchema = {
  $id: 'EnvVar',
  type: 'object',
  required: ['id', 'key', 'type', 'target', 'securityIssues'],
  properties: {
    id: str,
    key: str,
    value: {
      ...str,
      description:
        'A plain value; an encrypted one decrypted with decrypt=true (else ""); never for sensitive variables (docs/vercel-api.md §9.1)',
    },
    type: { type: 'string', enum: ['encrypted', 'sensitive', 'plain', 'secret', 'system'] },
    target: { type: 'array', items: { type: 'string', enum: [...ENVIRONMENTS] } },
    configurationId: nullableStr,
    contentHint: {
      type: ['object', 'null'],
      description: "A store's variable: Vercel's integration-store-secret hint (the store, product, integration, installation)",
      required: ['type', 'storeId', 'integrationId', 'integrationProductId', 'integrationConfigurationId'],
      properties: {
        type: { type: 'string', enum: ['integration-store-secret'] },
        storeId: str,
        integrationId: str,
        integrationProductId: str,
        integrationConfigurationId: str,
      },
    },
    decrypted: bool,
    createdAt: num,
    updatedAt: num,
    createdBy: nullableStr,
    updatedBy: nullableStr,
    comment: str,
    customEnvironmentIds: { type: 'array', items: str },
    securityIssues: { type: 'array', items: str },
  },
};

export function toEnvVar(env: EnvVar) {
  return {
    id: env.id,
    key: env.key,
    ...(env.value !== undefined && { value: env.value }),
    type: env.type,
    target: env.targets,
    configurationId: env.configurationId,
    contentHint: env.contentHint,
    decrypted: env.decrypted,
    createdAt: env.createdAt.getTime(),
    updatedAt: env.updatedAt.getTime(),
    createdBy: env.createdBy,
    updatedBy: null,
    comment: '',
    customEnvironmentIds: [],
    securityIssues: [],
  };
}

/**
 * A variable as a write answers it (createProjectEnv's `created`, editProjectEnv, removeProjectEnv):
 * the SDK requires `value` there, so an encrypted or sensitive one has `""`, never its value.
 */
export function toWrittenEnvVar(env: EnvVar) {
  return { ...toEnvVar(env), value: env.value ?? '' };
}
