/** Schema pieces every route module shares. */

export const teamQuery = {
  teamId: { type: 'string', description: 'The Team identifier to perform the request on behalf of.' },
  slug: { type: 'string', description: 'The Team slug to perform the request on behalf of.' },
};

/** A store's metadata value, as the SDK types it: a string, a number, a boolean, or a list of strings or numbers. */
export const metadataValue = {
  anyOf: [
    { type: 'string' },
    { type: 'number' },
    { type: 'boolean' },
    { type: 'array', items: { type: 'string' } },
    { type: 'array', items: { type: 'number' } },
  ],
};

/** The query of a list of integration configurations (v1, and v2 as the CLI reads it). */
export const configurationsQuery = {
  type: 'object',
  required: ['view'],
  properties: {
    view: { type: 'string', enum: ['account', 'project'] },
    installationType: { type: 'string', enum: ['marketplace', 'external', 'provisioning'] },
    integrationIdOrSlug: { type: 'string', description: 'ID or slug of the integration' },
    ...teamQuery,
  },
};

/** What `configurationsQuery` lets through. */
export type ConfigurationsQuery = TeamQuery & {
  view: 'account' | 'project';
  installationType?: 'marketplace' | 'external' | 'provisioning';
  integrationIdOrSlug?: string;
};

export interface TeamQuery {
  teamId?: string;
  slug?: string;
}

/** Response schemas of the error statuses a route documents, all in Vercel's error format. */
export const errorResponses = (...statuses: number[]) => Object.fromEntries(statuses.map((status) => [status, { $ref: 'VercelError#' }]));

/** Vercel's list pagination: `next` is passed back (as `until`/`from`) for the following page. */
export const paginationSchema = {
  $id: 'Pagination',
  type: 'object',
  required: ['count', 'next', 'prev'],
  properties: { count: { type: 'number' }, next: { type: ['number', 'null'] }, prev: { type: ['number', 'null'] } },
};

/** The query of a paged list: `limit`, and the previous page's `pagination.next` as `until` (or `from`). */
export const pageQuery = (defaultLimit: number, maxLimit: number) => ({
  limit: { type: 'integer', minimum: 1, maximum: maxLimit, default: defaultLimit },
  until: { type: 'integer', description: 'The `pagination.next` of the previous page' },
  from: { type: 'integer', description: 'Same as until' },
});

export interface PageQuery {
  limit?: number;
  until?: number;
  from?: number;
}
