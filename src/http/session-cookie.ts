import type { FastifyReply, FastifyRequest } from 'fastify';
import { sessionCookie, sessionCookieName } from '../tenancy/dashboard-sessions.ts';

/**
 * Sets the dashboard's session cookie: HttpOnly (no script reads it), SameSite=Strict (no other
 * site's page sends it), Path=/ (the API and the pages), and Secure when the request came over
 * https (directly, or through a proxy STOREHOUSE_TRUST_PROXY believes). Its Max-Age is the
 * session's idle time from now, set again whenever the server extends the session, so the browser
 * keeps a session in use as long as the server does. An empty value and 0 clear it. Over https
 * its name has the `__Host-` prefix (src/tenancy/dashboard-sessions.ts says why).
 */
export function setSessionCookie(reply: FastifyReply, request: FastifyRequest, value: string, maxAgeSeconds: number): void {
  const secure = overHttps(request);
  const attributes = [
    `${sessionCookieName(secure)}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.max(0, maxAgeSeconds)}`,
  ];
  if (secure) attributes.push('Secure');
  reply.header('set-cookie', attributes.join('; '));
}

/** Whether the request came over https (directly, or through a proxy STOREHOUSE_TRUST_PROXY believes). */
const overHttps = (request: FastifyRequest) => request.protocol === 'https';

/** The session secret the request's cookie carries, under the name its protocol uses. */
export const requestSessionSecret = (request: FastifyRequest) => sessionCookie(request.headers.cookie, overHttps(request));
