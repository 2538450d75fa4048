import http from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.ts';
import { databaseUnavailableCause } from '../db/unavailable.ts';
import { RouteMethods } from './route-methods.ts';

/** Vercel's error body: `{"error":{"code","message",...extra}}`, and `topLevel`'s fields beside `error` when an AppError has them. */
export const errorSchema = {
  $id: 'VercelError',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      additionalProperties: true,
    },
  },
};

export function sendError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
  topLevel: Record<string, unknown> = {},
) {
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({ ...topLevel, error: { code, message, ...extra } });
}

const LOCATIONS: Record<string, string> = {
  querystring: 'query parameter',
  params: 'path parameter',
  body: 'body field',
  headers: 'header',
};

/** "Invalid query parameter `view`: must be one of account, project" from Fastify's Ajv errors. */
function validationMessage(error: FastifyError): string {
  const where = LOCATIONS[error.validationContext ?? ''] ?? 'value';
  const first = error.validation?.[0];
  if (!first) return error.message;
  const params = first.params as Record<string, unknown>;
  const field = [first.instancePath.replace(/^\//, '').replace(/\//g, '.'), params.missingProperty].filter(Boolean).join('.');
  if (first.keyword === 'required') return `Missing required ${where} "${field}"`;
  if (first.keyword === 'enum') {
    return `Invalid ${where} "${field}": must be one of ${(params.allowedValues as string[]).join(', ')}`;
  }
  // Named with its path, so a nested one says where it is ("notification.extra").
  if (first.keyword === 'additionalProperties') return `Unknown ${where} "${[field, params.additionalProperty].filter(Boolean).join('.')}"`;
  return `Invalid ${where}${field ? ` "${field}"` : ''}: ${first.message}`;
}

const errorBody = (code: string, message: string) => JSON.stringify({ error: { code, message } });
/**
 * Errors the router raises before any route runs (Fastify's `frameworkErrors`): a path that is
 * not valid percent-encoding, or a path segment longer than any id.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return sendError(reply, 414, 'uri_too_long', 'A path segment of the request is too long');
  }
  return sendError(reply, 400, 'bad_request', 'The request path is not valid: check its percent-encoding');
}

/**
 * The method of the request a client error is about, when it can be known: the parser's request
 * once its headers were read (a body too slow), else the request line at the start of the bytes
 * that failed (headers too large, a malformed header). Undefined when those bytes are not the
 * request's start (headers too large over several packets, a request line never finished).
 */
function methodOf(error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): string | undefined {
  const parsed = (socket as Socket & { parser?: { incoming?: { method?: string } } }).parser?.incoming?.method;
  if (parsed) return parsed;
  const start = error.rawPacket?.subarray(0, 16).toString('latin1');
  return start ? /^([A-Z]+) /.exec(start)?.[1] : undefined;
}

/**
 * Writes a whole Vercel-format error response on a raw socket (outside Fastify), then destroys
 * the socket: a small write is flushed at once, and the client may still be sending. The answer
 * to a HEAD has the headers a GET's would, and no body (RFC 9110 §9.3.2): Node's own responses
 * leave it out, but these bytes are written by hand.
 */
function answerOnSocket(socket: Socket, status: number, code: string, message: string, method?: string): void {
  const body = errorBody(code, message);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${method === 'HEAD' ? '' : body}`,
    );
  }
  socket.destroy();
}

/** Requests Node's HTTP parser refuses (malformed, headers too large, too slow), answered in Vercel's format. */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket) {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // A response already under way cannot be followed by another on the same socket.
  if ((socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy(error);
    return;
  }
  const [status, code, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'request_timeout', 'The request took too long to arrive']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'The request headers are too large']
        : // A method Node's parser does not know (FOO, a lowercase get): the method is what is wrong.
          error.code === 'HPE_INVALID_METHOD'
          ? [405, 'method_unknown', 'The request method is not supported']
          : [400, 'bad_request', 'The request is not valid HTTP'];
  answerOnSocket(socket, status, code, message, methodOf(error, socket));
}

/**
 * CONNECT requests (a proxy tunnel), which Node hands to the server's 'connect' event instead of
 * the router: no path of Storehouse takes them, so they get the 405 any other unsupported method gets.
 */
export function connectHandler(_request: http.IncomingMessage, socket: Socket): void {
  socket.on('error', () => {});
  answerOnSocket(socket, 405, 'method_unknown', 'This server does not support CONNECT');
}

/**
 * A PostgreSQL "data exception" (class 22): a value from the request the database cannot hold.
 * The request checks (request-values.ts, schema bounds) refuse such values by name first; this
 * is the last resort, and the database's own text never reaches the client.
 */
const isDataException = (error: unknown) => {
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && code.startsWith('22') && typeof severity === 'string';
};

/** How long a client is told to wait before retrying while the database is unavailable. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** Fastify's own client errors (body parsing and the like), as Vercel codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
};

/**
 * Every error leaves in Vercel's format with the right status: the services' AppErrors as they
 * are, validation and body-parsing failures as 400, an unknown route as 404 and a known route
 * with the wrong method as 405. Anything else is a bug: logged in full, answered 500 without detail.
 */
export const errorsPlugin = fp(async function errorsPlugin(app: FastifyInstance, options: { methods?: RouteMethods }) {
  // Which methods a path takes, for 405s (shared with the OPTIONS routes when the app passes one).
  const methods = options.methods ?? new RouteMethods();
  app.addHook('onRoute', (route) => methods.add(route));

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    const allowed = methods.allowed(path);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      const main = allowed.filter((method) => method !== 'HEAD' && method !== 'OPTIONS');
      return sendError(reply, 405, 'method_unknown', `This endpoint only responds to ${main.join(', ')}`);
    }
    return sendError(reply, 404, 'not_found', `The requested path ${path} was not found`);
  });

  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof AppError) return sendError(reply, error.status, error.code, error.message, error.extra, error.topLevel);
    if (error.validation) return sendError(reply, 400, 'bad_request', validationMessage(error));
    const unavailable = databaseUnavailableCause(error);
    if (unavailable !== undefined) {
      request.log.warn({ err: error, cause: unavailable }, `the state database is unavailable: ${unavailable}`);
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
      return sendError(reply, 503, 'database_unavailable', 'The database is unavailable right now; retry shortly');
    }
    if (isDataException(error)) {
      request.log.warn({ err: error }, 'a request value the database cannot hold');
      return sendError(reply, 400, 'bad_request', 'A value in the request is not valid');
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[error.code] ?? 'bad_request';
      const message = error.code?.startsWith('FST_ERR_CTP') && status === 400 ? `Invalid request body: ${error.message}` : error.message;
      return sendError(reply, status, code, message);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendError(reply, 500, 'internal_server_error', 'An unexpected internal error occurred');
  });
});
