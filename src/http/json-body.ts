import type { FastifyInstance } from 'fastify';
import { unstorableInBody } from './request-values.ts';

/**
 * Parses `application/json` as Fastify does, except that an empty body is no body (undefined)
 * rather than a 400: clients that always send the header (a DELETE with no options) are common,
 * and the partner API asks servers to be liberal in what they accept (docs/partner-api.md §0.4). Routes that need a
 * body still refuse one that is missing, through their schema or their own checks. A body
 * holding a value no route can store (a NUL, a lone surrogate, a number past 2^53) is refused
 * here, naming the field, so no route needs to check for them.
 */
export function acceptEmptyJsonBody(app: Pick<FastifyInstance, 'getDefaultJsonParser' | 'addContentTypeParser'>): void {
  const json = app.getDefaultJsonParser('error', 'error');
  // Fastify lets the default JSON parser be replaced without removing it first.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    return json(request, body as string, (error: Error | null, parsed?: unknown) => {
      if (error) return done(error, undefined);
      const unstorable = unstorableInBody(parsed);
      return unstorable ? done(unstorable, undefined) : done(null, parsed);
    });
  });
}
