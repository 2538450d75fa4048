import type { FastifyReply, FastifyRequest } from 'fastify';
import { SESSION_COOKIE } from '../tenancy/dashboard-sessions.ts';

/**
 * Sets the dashboard's session cookie: HttpOnly (no script reads it), SameSite=Strict (no other
 * site's page sends it), Path=/ (the API and the pages), and Secure when the request came over
 * https (directly, or through a proxy STOREHOUSE_TRUST_PROXY believes). Its Max-Age is the
 * session's idle time from now, set again whenever the server extends the session, so the browser
 * keeps a session in use as long as the server does. An empty value and 0 clear it.
 */
export function setSessionCookie(reply: FastifyReply, request: FastifyRequest, value: string, maxAgeSeconds: number): void {
  const attributes = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${Math.max(0, maxAgeSeconds)}`];
  if (request.protocol === 'https') attributes.push('Secure');
  reply.header('set-cookie', attributes.join('; '));
}
