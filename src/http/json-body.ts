import type { FastifyInstance } from 'fastify';

/**
 * Parses `application/json` as Fastify does, except that an empty body is no body (undefined)
 * rather than a 400: clients that always send the header (a DELETE with no options) are common,
 * and the partner API asks servers to be liberal in what they accept (docs/partner-api.md §0.4). Routes that need a
 * body still refuse one that is missing, through their schema or their own checks.
 */
export function acceptEmptyJsonBody(app: Pick<FastifyInstance, 'getDefaultJsonParser' | 'addContentTypeParser'>): void {
  const json = app.getDefaultJsonParser('error', 'error');
  // Fastify lets the default JSON parser be replaced without removing it first.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    return json(request, body as string, done);
  });
}
