/**
 * The error statuses a route answers whatever it does, added to every route's `schema.response`
 * (so /openapi.json lists them, and their bodies are serialized in Vercel's error format) unless
 * the route documents the status itself. Each route documents only what its own handler and the
 * services it calls may answer.
 */
import type { RouteOptions } from 'fastify';

const VERCEL_ERROR = { $ref: 'VercelError#' };

/** Methods whose bodies Fastify parses: a body it cannot take is a 413 or a 415 on any of them. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Why each shared status happens:
 * - 400: a path that is not valid percent-encoding, or a request Node's HTTP parser refuses;
 *   on authenticated routes also `teamId` and `slug` naming different teams
 * - 408: a request that took too long to arrive; 431: headers too large
 * - 503: the server is shutting down, or its database cannot be reached
 * - 404: an empty path segment where an id goes; 414: a path segment longer than any id (routes with path parameters)
 * - 413, 415: a body too large, or of a media type no parser takes (routes that read a body)
 * - 401, 403, 429: routes that take a user's token: missing or unknown token; a `teamId`/`slug`
 *   the caller is not in; the per-token rate limit. Routes with a limit of their own answer 429 too.
 */
export const SHARED_STATUSES = {
  every: [400, 408, 431, 503],
  withParams: [404, 414],
  withBody: [413, 415],
  authenticated: [401, 403, 429],
  rateLimited: [429],
} as const;

type Route = Pick<RouteOptions, 'method' | 'url' | 'schema' | 'config'>;

/** The shared statuses of one route, from its method, path, and whether it takes a user's token or has a limit of its own. */
export function sharedStatusesOf(route: Route): number[] {
  const statuses = new Set<number>(SHARED_STATUSES.every);
  const methods = [route.method].flat().map(String);
  if (route.url.includes(':')) for (const status of SHARED_STATUSES.withParams) statuses.add(status);
  if (methods.some((method) => BODY_METHODS.has(method))) for (const status of SHARED_STATUSES.withBody) statuses.add(status);
  const config = (route.config ?? {}) as { public?: boolean; rateLimit?: unknown };
  // Public routes take no user token (the marketplace API checks its own and documents 401/403 itself).
  if (!config.public) for (const status of SHARED_STATUSES.authenticated) statuses.add(status);
  if (config.rateLimit) for (const status of SHARED_STATUSES.rateLimited) statuses.add(status);
  return [...statuses].sort((a, b) => a - b);
}

/**
 * An `onRoute` hook: the route's response schemas, with the shared statuses it does not document
 * itself. A new schema object, not an edit: route modules share response objects between routes
 * that do not share every status.
 */
export function documentSharedResponses(route: RouteOptions): void {
  const schema = (route.schema ?? {}) as { response?: Record<string, unknown> };
  const response: Record<string, unknown> = { ...schema.response };
  for (const status of sharedStatusesOf(route)) response[status] ??= VERCEL_ERROR;
  route.schema = { ...schema, response } as RouteOptions['schema'];
}
