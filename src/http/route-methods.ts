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
import { AppError } from '../errors.ts';

/**
 * The longest path segment the router takes (Fastify's default is 100; partner resource ids and
 * names may be longer). The same bound for both routers, or a long segment is routed by one and
 * not the other (a 405 for a path taken by another method became a 404).
 */
export const MAX_PARAM_LENGTH = 500;

/** The methods a route may be registered with, in the order `Allow` names them. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** The one OPTIONS route's path: every path, answered from what the other routes take. */
const EVERY_PATH = '*';

export class RouteMethods {
  /** Every route's methods and path, as registered (`/v1/storage/stores/:id`). */
  private readonly routes: Array<{ methods: HTTPMethod[]; url: string }> = [];
  /**
   * A second router, fed every route, that answers "which methods does this path take?"; made
   * at the first question (a 405 or an OPTIONS), not at start, where it was a tenth of the time.
   */
  private built: ReturnType<typeof FindMyWay> | undefined;

  /**
   * An `onRoute` hook: the route's path and methods (not the OPTIONS route of every path, which
   * answers from these). Fastify takes no route once the app is ready, so none comes after the router is made.
   */
  add(route: RouteOptions): void {
    if (route.url === EVERY_PATH) return;
    this.routes.push({ methods: [route.method].flat() as HTTPMethod[], url: route.url });
  }

  private get router(): ReturnType<typeof FindMyWay> {
    if (this.built) return this.built;
    // A segment too long for a route's parameter matches as TOO_LONG, as the app's router raises it.
    const router = FindMyWay({ maxParamLength: MAX_PARAM_LENGTH, onMaxParamLength: TOO_LONG });
    for (const { methods, url } of this.routes) {
      for (const method of methods) if (!router.hasRoute(method, url)) router.on(method, url, () => {}, {});
    }
    return (this.built = router);
  }

  /**
   * The methods a concrete path takes, as `Allow` names them: HEAD wherever GET is (Fastify
   * answers it from the GET route), OPTIONS wherever anything is. Empty for a path that does not
   * exist, which includes an empty segment where an id goes (the app answers those 404 too).
   */
  allowed(path: string): string[] {
    const router = this.router;
    const takes = (method: HTTPMethod) => {
      const match = router.find(method, path);
      return match !== null && match.store !== null && !Object.values(match.params).some((value) => value === '');
    };
    const found = new Set<string>(METHODS.filter(takes));
    if (found.has('GET')) found.add('HEAD');
    if (found.size > 0) found.add('OPTIONS');
    return METHODS.filter((method) => found.has(method));
  }

  /** Whether a route would take the path but for a segment longer than a parameter may be (414, as for the other methods). */
  tooLong(path: string): boolean {
    const router = this.router;
    return METHODS.some((method) => router.find(method, path)?.store === null);
  }
}

// Its handle is the only one with no store: every route's is `{}` (see `router.on` above).
const TOO_LONG = () => {};

/** The answer to OPTIONS: 204, what the path takes in `Allow`, no body. */
const optionsResponse = {
  204: {
    type: 'null',
    description: 'The methods the path takes, in the Allow header',
    headers: { allow: { type: 'string', description: 'For example "GET, HEAD, OPTIONS"' } },
  },
};

/**
 * OPTIONS for every path: register it after every other route. One route, not one a path: the
 * answer is the router's, and 84 more routes made a start ~10% slower. It takes no token
 * (`public`) and is left out of /openapi.json.
 */
export const optionsPlugin = fp(async function optionsPlugin(app: FastifyInstance, options: { methods: RouteMethods }) {
  const { methods } = options;
  app.options(
    EVERY_PATH,
    {
      config: { public: true },
      schema: {
        summary: 'The methods a path takes (Allow)',
        tags: ['system'],
        // Not in /openapi.json: an OPTIONS operation per path would tell a client nothing the
        // document does not already say.
        hide: true,
        response: optionsResponse,
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const path = request.url.split('?')[0]!;
      const allowed = methods.allowed(path);
      if (allowed.length === 0) {
        if (methods.tooLong(path)) throw new AppError(414, 'uri_too_long', 'A path segment of the request is too long');
        // A path no route takes is a 404 as for any other method (the not-found handler's).
        return reply.callNotFound();
      }
      reply.header('allow', allowed.join(', '));
      return reply.code(204).send();
    },
  );
});
