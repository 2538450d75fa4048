/**
 * Which methods a path takes, for the `Allow` header of a 405 and of an OPTIONS answer, and the
 * OPTIONS route of every path of the API.
 *
 * OPTIONS asks what a path supports (RFC 9110 §9.3.7, §10.2.1): every path that exists answers
 * 204 with `Allow`, without a token (a browser's CORS preflight carries none), and a path that
 * does not exist is a 404 as for any other method. Storehouse sends no CORS headers: browsers
 * keep refusing cross-origin calls, which is what an API holding owner tokens wants.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import FindMyWay, { type HTTPMethod } from 'find-my-way';

/**
 * The longest path segment the router takes (Fastify's default is 100; partner resource ids and
 * names may be longer). The same bound for both routers, or a long segment is routed by one and
 * not the other (a 405 for a path taken by another method became a 404).
 */
export const MAX_PARAM_LENGTH = 500;

/** The methods a route may be registered with, in the order `Allow` names them. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

interface PathEntry {
  /** The path parameters' schema, from the first route of the path that has one. */
  params?: unknown;
}

export class RouteMethods {
  /** A second router, fed every route, that answers "which methods does this path take?". */
  private readonly router = FindMyWay({ maxParamLength: MAX_PARAM_LENGTH });
  /** Every route path, as registered (`/v1/storage/stores/:id`). */
  readonly paths = new Map<string, PathEntry>();

  /** An `onRoute` hook: the route's path and methods. */
  add(route: RouteOptions): void {
    const schema = (route.schema ?? {}) as { params?: unknown };
    const entry = this.paths.get(route.url) ?? {};
    entry.params ??= schema.params;
    this.paths.set(route.url, entry);
    for (const method of [route.method].flat() as HTTPMethod[]) {
      if (!this.router.hasRoute(method, route.url)) this.router.on(method, route.url, () => {});
    }
  }

  /**
   * The methods a concrete path takes, as `Allow` names them: HEAD wherever GET is (Fastify
   * answers it from the GET route), OPTIONS wherever anything is. Empty for a path that does not exist.
   */
  allowed(path: string): string[] {
    const found = new Set<string>(METHODS.filter((method) => this.router.find(method, path)));
    if (found.has('GET')) found.add('HEAD');
    if (found.size > 0) found.add('OPTIONS');
    return METHODS.filter((method) => found.has(method));
  }
}

/** The answer to OPTIONS: 204, what the path takes in `Allow`, no body. */
const optionsResponse = {
  204: {
    type: 'null',
    description: 'The methods the path takes, in the Allow header',
    headers: { allow: { type: 'string', description: 'For example "GET, HEAD, OPTIONS"' } },
  },
};

/** A params schema from the path's own names, for a path whose routes have none. */
function paramsOf(url: string): Record<string, unknown> | undefined {
  const names = [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1]!);
  if (!names.length) return undefined;
  return { type: 'object', required: names, properties: Object.fromEntries(names.map((name) => [name, { type: 'string' }])) };
}

/**
 * An OPTIONS route for every path registered so far: register it after every other route. Its
 * routes take no token (`public`) and are left out of /openapi.json.
 */
export const optionsPlugin = fp(async function optionsPlugin(app: FastifyInstance, options: { methods: RouteMethods }) {
  const { methods } = options;
  for (const [url, entry] of [...methods.paths]) {
    const params = entry.params ?? paramsOf(url);
    app.options(
      url,
      {
        config: { public: true },
        schema: {
          summary: 'The methods this path takes (Allow)',
          tags: ['system'],
          ...(params && { params }),
          // Not in /openapi.json: one OPTIONS operation per path would double the document and
          // tell a client nothing the document does not already say.
          hide: true,
          response: optionsResponse,
        },
      },
      async (request: FastifyRequest, reply: FastifyReply) => {
        reply.header('allow', methods.allowed(request.url.split('?')[0]!).join(', '));
        return reply.code(204).send();
      },
    );
  }
});
