import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { notFound } from '../../errors.ts';
import { packagePath } from '../../package-root.ts';

/** Where `npm run build` puts the dashboard (vite build). */
export const DASHBOARD_DIR = packagePath('dist', 'dashboard');

/**
 * The dashboard's pages may load only what this server sends: no CDN, no fonts or scripts from
 * elsewhere (product icons are data: URLs in the catalog), and no framing by another site. No
 * inline styles either: the build's CSS is a file, and Preact sets style properties through the
 * CSSOM, which style-src does not govern (the browser tests fail on any violation).
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Storehouse dashboard not built</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5">
<h1>The dashboard has not been built</h1>
<p>This Storehouse runs from its sources without a dashboard build. Run <code>npm run build</code>
(which <code>npm install</code> does too), then reload this page. The API works without it.</p>
</body></html>
`;

/** A hashed asset (Vite names them by their content): it never changes under its name. */
const HASHED_ASSET = /^assets\/[^/]+$/;

const sendIndex = (reply: FastifyReply) => {
  reply.header('cache-control', 'no-cache');
  reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  return reply.sendFile('index.html');
};

/**
 * The web dashboard (dashboard/, built into dist/dashboard): static files under /dashboard/, the
 * hashed assets cached for good and index.html revalidated every time; any other path under
 * /dashboard/ is a page of the single-page app, so it gets index.html. Without a build, a page
 * that says how to make one (503: the server is fine, this part of it is not there).
 */
export default async function dashboardRoutes(app: FastifyInstance, options: { dir?: string } = {}) {
  const dir = options.dir ?? DASHBOARD_DIR;
  const built = fs.existsSync(`${dir}/index.html`);
  const route = { config: { public: true }, schema: { hide: true } };

  app.get('/', route, async (_request, reply) => reply.redirect('/dashboard/', 302));
  app.get('/dashboard', route, async (_request, reply) => reply.redirect('/dashboard/', 301));

  if (!built) {
    const notBuilt = async (_request: unknown, reply: FastifyReply) =>
      reply.code(503).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(NOT_BUILT);
    app.get('/dashboard/', route, notBuilt);
    app.get('/dashboard/*', route, notBuilt);
    return;
  }

  await app.register(fastifyStatic, { root: dir, serve: false, cacheControl: false, index: false, dotfiles: 'deny' });
  // Its own route: the wildcard's empty match is an empty path segment, which the app answers 404.
  app.get('/dashboard/', route, async (_request, reply) => sendIndex(reply));
  app.get<{ Params: { '*': string } }>('/dashboard/*', route, async (request, reply) => {
    const file = request.params['*'];
    // A file that is not there is a 404 in the API's format (sendFile would pass it to the app's
    // not-found handler, which answers a path some route takes with 405).
    const isFile = (name: string) => {
      const full = path.resolve(dir, name);
      return full.startsWith(path.resolve(dir) + path.sep) && fs.statSync(full, { throwIfNoEntry: false })?.isFile() === true;
    };
    if (HASHED_ASSET.test(file)) {
      if (!isFile(file)) throw notFound('file', `/dashboard/${file}`);
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      return reply.sendFile(file);
    }
    // Files Vite copies as they are (the favicon): a day, since their names do not change with them.
    if (/^[\w-]+\.(svg|png|ico|txt|webmanifest)$/.test(file) && isFile(file)) {
      reply.header('cache-control', 'public, max-age=86400');
      return reply.sendFile(file);
    }
    return sendIndex(reply);
  });
}
