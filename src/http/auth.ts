import { isIPv4 } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.ts';
import type { Access, Actor, TeamSelector } from '../tenancy/access.ts';
import type { Principal } from '../tenancy/tokens.ts';
import { type DashboardSession, type DashboardSessions, CSRF_HEADER } from '../tenancy/dashboard-sessions.ts';
import type { RateLimits } from './rate-limit.ts';
import { requestSessionSecret, setSessionCookie } from './session-cookie.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Routes anyone may call without a token (health, the OpenAPI document). */
    public?: boolean;
  }
  interface FastifyInstance {
    /** Authentication and team resolution, and the users they name, served from memory between changes. */
    access: Access;
  }
  interface FastifyRequest {
    principal: Principal;
    /** The caller and the team the request acts on (from `teamId`/`slug`, else the token's default team). */
    actor: Actor;
    /** The dashboard session the request came with, when its cookie (not a bearer token) authenticated it. */
    dashboardSession: DashboardSession | undefined;
  }
}

/** Methods that change nothing: a cookie-authenticated request of any other method must carry the CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The key failed authentications are counted under: the client's address as Fastify gives it
 * (`request.ip`, which believes X-Forwarded-For only from the proxies `trustProxy` names), an
 * IPv4-mapped IPv6 address as IPv4, and IPv6 by its /64, the block one subscriber gets.
 */
export function clientAddressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIPv4(ip) || !ip.includes(':')) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * Every route but the public ones needs `Authorization: Bearer`, or else the web dashboard's
 * session cookie (src/tenancy/dashboard-sessions.ts: its user's principal, and for any method but
 * GET/HEAD/OPTIONS the session's CSRF token in `x-storehouse-csrf`, 403 without it): the token or
 * cookie is checked first (401), and once the query is validated the team is resolved from
 * `teamId`/`slug` (403 for a team the caller is not in). A bearer token, when sent, is all that counts.
 *
 * Failed authentications are counted per client address (issue 17): past the limit, the address
 * is refused with 429 before its token is looked up, unless the token is one that authenticated
 * on this node lately (`Access.recentlyAuthenticated`), which is then checked as usual.
 *
 * The hooks are the routes' own (added as each route is), not the app's: a public route or a
 * path no route takes pays nothing for them, and none asks which route it is on every request.
 * A token this node verified since the last change (and its team) is answered synchronously:
 * no promise, no hash, no address check (a token that works is no guess).
 */
export const authPlugin = fp(async function authPlugin(
  app: FastifyInstance,
  options: { access: Access; limits?: RateLimits; sessions?: DashboardSessions },
) {
  const { access, limits, sessions } = options;
  app.decorate('access', access);
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('actor', null as unknown as Actor);
  app.decorateRequest('dashboardSession', undefined);
  const countsFailures = limits?.limitsAuthFailures === true;

  /** A token not verified lately: the address's failures first, then the lookup, counted if it fails. */
  const authenticateSlowly = async (request: FastifyRequest, reply: FastifyReply, started?: Promise<Principal>) => {
    if (!countsFailures) {
      request.principal = await started!;
      return;
    }
    const address = clientAddressKey(request.ip);
    if (started === undefined && limits!.failuresSpent(address) && !access.recentlyAuthenticated(request.headers.authorization)) {
      limits!.refuseAddress(address, reply);
    }
    try {
      request.principal = await (started ?? access.principal(request.headers.authorization));
    } catch (error) {
      if (error instanceof AppError && error.status === 401) {
        // Once a window: an address refused is everyone behind it (a proxy not in STOREHOUSE_TRUST_PROXY).
        await limits!.authFailure(address, reply, (refused) =>
          request.log.warn({ address: refused }, 'refusing a client address after too many failed authentications this minute'),
        );
      }
      throw error;
    }
  };

  /**
   * The dashboard's cookie, when no bearer token came: the session's user, and for a write its
   * CSRF token too (a page of another site can make the browser send the cookie, never the token).
   */
  const authenticateBySession = async (request: FastifyRequest, reply: FastifyReply, secret: string) => {
    let session: DashboardSession;
    try {
      session = await sessions!.session(secret);
    } catch (error) {
      // A cookie that opens no session counts as a failed authentication, as a bad token does, so
      // guessed cookies cost their address as guessed tokens do. Counted only after the lookup: a
      // stale cookie is every returning browser's, and must not cost it its sign-in.
      if (countsFailures && error instanceof AppError && error.status === 401) {
        await limits!.authFailure(clientAddressKey(request.ip), reply, (refused) =>
          request.log.warn({ address: refused }, 'refusing a client address after too many failed authentications this minute'),
        );
      }
      throw error;
    }
    if (!SAFE_METHODS.has(request.method)) sessions!.checkCsrf(session, request.headers[CSRF_HEADER]);
    request.dashboardSession = session;
    request.principal = session.principal;
    // The server extended the session: the browser's cookie must not expire before it does.
    if (session.renewedFor !== undefined) setSessionCookie(reply, request, secret, Math.floor(session.renewedFor / 1000));
  };

  const authenticate = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => {
    const header = request.headers.authorization;
    if (header === undefined && sessions !== undefined) {
      const secret = requestSessionSecret(request);
      if (secret !== undefined) {
        authenticateBySession(request, reply, secret).then(() => done(), done);
        return;
      }
    }
    let started: Promise<Principal> | undefined;
    if (!countsFailures || access.verifiedLately(header)) {
      let found: Principal | Promise<Principal>;
      try {
        found = access.principal(header);
      } catch (error) {
        found = Promise.reject(error);
      }
      if (!(found instanceof Promise)) {
        request.principal = found;
        return done();
      }
      started = found;
    }
    authenticateSlowly(request, reply, started).then(() => done(), done);
  };

  const resolveActor = (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
    const query = (request.query ?? {}) as TeamSelector;
    let found: Actor | Promise<Actor>;
    try {
      found = access.actor(request.principal, { teamId: query.teamId, slug: query.slug });
    } catch (error) {
      return done(error as Error);
    }
    if (!(found instanceof Promise)) {
      request.actor = found;
      return done();
    }
    found.then((actor) => {
      request.actor = actor;
      done();
    }, done);
  };

  app.addHook('onRoute', (route) => {
    if (route.config?.public) return;
    // First of the route's own hooks: the rate limits' (added after this) count the principal found here.
    route.onRequest = [authenticate, ...(route.onRequest === undefined ? [] : [route.onRequest].flat())] as typeof route.onRequest;
    route.preHandler = [resolveActor, ...(route.preHandler === undefined ? [] : [route.preHandler].flat())] as typeof route.preHandler;
  });
});
