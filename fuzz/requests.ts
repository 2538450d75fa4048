/**
 * One generated HTTP request per draw: an operation of the document, its path and query
 * parameters and body valid or near-valid (or, now and then, raw garbage), an auth header of a
 * random kind, now and then a method the path does not take. Requests are plain data, so a
 * failing one prints as a curl command, and are sent over node:http, which sends what it is
 * given (fetch refuses some methods, CONNECT among them).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import fc, { type Arbitrary } from 'fast-check';
import type { AuthKind, Fixtures } from './fixtures.ts';
import type { Operation, Parameter } from './openapi.ts';
import { recipeFor } from './recipes.ts';
import { MUTATIONS, mutate, NASTY_STRINGS, nearValidValue, validValue } from './values.ts';

export interface FuzzRequest {
  /** The documented operation it was generated from: `GET /v1/storage/stores/{id}`. */
  operation: string;
  method: string;
  /** Already percent-encoded, query string included. */
  target: string;
  auth: AuthKind;
  headers: Record<string, string>;
  /** The raw body, when there is one. */
  body?: string;
}

export interface FuzzResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed JSON body; undefined when there was none or it was not JSON. */
  json: unknown;
}

const ODD_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT'];

/**
 * Percent-encodes a string as UTF-8, and a lone surrogate as the three bytes WTF-8 gives it
 * (encodeURIComponent throws on one; a real client can still send those bytes).
 */
export function encodeComponent(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    const isHigh = unit >= 0xd800 && unit <= 0xdbff;
    const next = value.charCodeAt(i + 1);
    if (isHigh && next >= 0xdc00 && next <= 0xdfff) {
      out += encodeURIComponent(value.slice(i, i + 2));
      i++;
    } else if (unit >= 0xd800 && unit <= 0xdfff) {
      out += `%${(0xe0 | (unit >> 12)).toString(16).toUpperCase()}%${(0x80 | ((unit >> 6) & 0x3f)).toString(16).toUpperCase()}%${(0x80 | (unit & 0x3f)).toString(16).toUpperCase()}`;
    } else {
      out += encodeURIComponent(value[i]!);
    }
  }
  return out;
}

/** A parameter's value as text: valid, near-valid (as the query string carries it), or absent. */
function parameterArbitrary(parameter: Parameter, fx: Fixtures): Arbitrary<string | undefined> {
  const asText = (value: unknown) =>
    value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  const valid = validValue(parameter.schema, fx, parameter.name).map(asText);
  const nearValid = nearValidValue(parameter.schema, fx, parameter.name).map(asText);
  const nasty = fc.constantFrom(...NASTY_STRINGS);
  const present = fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: nearValid, weight: 2 }, { arbitrary: nasty, weight: 1 });
  if (parameter.required) return present;
  // Team selectors mostly absent: the token's default team is the fixtures' team.
  const absent = parameter.name === 'teamId' || parameter.name === 'slug' ? 8 : 2;
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: absent }, { arbitrary: present, weight: 3 });
}

function authArbitrary(op: Operation): Arbitrary<AuthKind> {
  const marketplace = op.path.startsWith('/v1/installations/');
  return fc.oneof(
    { arbitrary: fc.constant<AuthKind>(marketplace ? 'installation' : 'owner'), weight: 14 },
    { arbitrary: fc.constant<AuthKind>(marketplace ? 'owner' : 'installation'), weight: 1 },
    { arbitrary: fc.constant<AuthKind>('viewer'), weight: 2 },
    { arbitrary: fc.constant<AuthKind>('none'), weight: 1 },
    { arbitrary: fc.constant<AuthKind>('garbage'), weight: 1 },
  );
}

/** A body: valid JSON of the schema, near-valid, or something that is not that at all. */
function bodyArbitrary(op: Operation, fx: Fixtures): Arbitrary<{ body?: string; contentType?: string }> {
  const json = (value: unknown) => ({ body: JSON.stringify(value), contentType: 'application/json' });
  const garbage = fc.constantFrom<{ body?: string; contentType?: string }>(
    {},
    { body: '', contentType: 'application/json' },
    { body: '{', contentType: 'application/json' },
    { body: 'null', contentType: 'application/json' },
    { body: '[]', contentType: 'application/json' },
    { body: '"x"', contentType: 'application/json' },
    { body: '{"a":1}', contentType: 'text/plain' },
    { body: '{"__proto__":{"x":1}}', contentType: 'application/json' },
    { body: '{"name":"\\ud800"}', contentType: 'application/json' },
    { body: '{"name":"a\\u0000b"}', contentType: 'application/json' },
    { body: `{"n":1e+23${',"x":1'.repeat(3)}}`, contentType: 'application/json' },
    { body: JSON.stringify({ deep: JSON.parse('['.repeat(200) + ']'.repeat(200)) }), contentType: 'application/json' },
  );
  if (!op.body) return fc.oneof({ arbitrary: fc.constant({}), weight: 10 }, { arbitrary: garbage, weight: 1 });
  const choices = [
    { arbitrary: validValue(op.body.schema, fx).map(json), weight: 6 },
    { arbitrary: nearValidValue(op.body.schema, fx).map(json), weight: 4 },
    { arbitrary: garbage, weight: 1 },
  ];
  const recipe = recipeFor(`${op.method} ${op.path}`, fx);
  if (recipe) {
    choices.push({ arbitrary: recipe.map(json), weight: 6 });
    choices.push({
      arbitrary: fc
        .tuple(recipe, fc.constantFrom(...MUTATIONS), fc.nat(20), fc.nat(60))
        .map(([value, mutation, at, nasty]) => json(mutate(value, mutation, at, nasty))),
      weight: 6,
    });
  }
  return fc.oneof(...choices);
}

/** The request arbitrary for one operation. */
export function requestArbitrary(op: Operation, fx: Fixtures): Arbitrary<FuzzRequest> {
  const pathParameters = op.parameters.filter((p) => p.in === 'path');
  const queryParameters = op.parameters.filter((p) => p.in === 'query');
  const headerParameters = op.parameters.filter((p) => p.in === 'header');
  const method = fc.oneof({ arbitrary: fc.constant(op.method), weight: 30 }, { arbitrary: fc.constantFrom(...ODD_METHODS), weight: 1 });
  const pathValues = fc.tuple(...pathParameters.map((p) => parameterArbitrary({ ...p, required: true }, fx)));
  const queryValues = fc.tuple(...queryParameters.map((p) => parameterArbitrary(p, fx)));
  const headerValues = fc.tuple(
    ...headerParameters.map((p) =>
      fc.option(fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/), { nil: undefined, freq: 2 }).map((v) => [p.name, v] as const),
    ),
  );
  return fc
    .record({ method, pathValues, queryValues, headerValues, auth: authArbitrary(op), body: bodyArbitrary(op, fx) })
    .map(({ method: chosen, pathValues: paths, queryValues: queries, headerValues: headers, auth, body }) => {
      let target = op.path;
      pathParameters.forEach((p, i) => {
        target = target.replace(`{${p.name}}`, encodeComponent(paths[i] ?? ''));
      });
      const query = queryParameters
        .map((p, i) => (queries[i] === undefined ? undefined : `${encodeComponent(p.name)}=${encodeComponent(queries[i]!)}`))
        .filter(Boolean);
      if (query.length) target += `?${query.join('&')}`;
      const requestHeaders: Record<string, string> = {};
      for (const [name, value] of headers) if (value !== undefined) requestHeaders[name] = value;
      if (body.contentType) requestHeaders['content-type'] = body.contentType;
      return {
        operation: `${op.method} ${op.path}`,
        method: chosen,
        target,
        auth,
        headers: requestHeaders,
        ...(body.body !== undefined && { body: body.body }),
      };
    });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** Sends the request to `baseUrl` as given, and reads the whole answer. */
export function send(baseUrl: string, request: FuzzRequest, fx: Fixtures, timeoutMs = 60_000): Promise<FuzzResponse> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { ...request.headers };
  if (request.auth !== 'none') headers.authorization = `Bearer ${fx.tokens[request.auth]}`;
  if (request.body !== undefined) headers['content-length'] = String(Buffer.byteLength(request.body));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const finish = (status: number, responseHeaders: http.IncomingHttpHeaders) => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status, headers: responseHeaders, text, json });
    };
    const outgoing = http.request({
      host: url.hostname,
      port: url.port,
      method: request.method,
      path: request.target,
      headers,
      // A CONNECT answer hands over the socket; a fresh one keeps the shared agent's sockets clean.
      agent: request.method === 'CONNECT' ? false : agent,
      timeout: timeoutMs,
    });
    outgoing.on('response', (response) => {
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => finish(response.statusCode ?? 0, response.headers));
      response.on('error', reject);
    });
    outgoing.on('connect', (response, socket, head) => {
      chunks.push(head);
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => finish(response.statusCode ?? 0, response.headers));
      socket.on('error', () => finish(response.statusCode ?? 0, response.headers));
      socket.setTimeout(2000, () => socket.destroy());
      socket.on('close', () => finish(response.statusCode ?? 0, response.headers));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    outgoing.on('error', reject);
    outgoing.end(request.body);
  });
}

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

/**
 * The request as a curl command against $API, its token as a shell variable the reader sets.
 * A body too long to read in a terminal is written to a file under `bodyDir`, which curl sends.
 */
export function toCurl(request: FuzzRequest, bodyDir?: string): string {
  const parts = ['curl', '-sS', '-X', request.method, `"$API"${shellQuote(request.target)}`];
  const tokenVariable = { owner: '$TOKEN', viewer: '$VIEWER_TOKEN', installation: '$INSTALLATION_TOKEN', garbage: 'not-a-token' } as const;
  if (request.auth !== 'none') parts.push('-H', `"Authorization: Bearer ${tokenVariable[request.auth]}"`);
  for (const [name, value] of Object.entries(request.headers)) parts.push('-H', shellQuote(`${name}: ${value}`));
  if (request.body !== undefined) {
    if (request.body.length > 2000 && bodyDir) {
      fs.mkdirSync(bodyDir, { recursive: true });
      const file = path.join(bodyDir, `body-${createHash('sha256').update(request.body).digest('hex').slice(0, 12)}.json`);
      fs.writeFileSync(file, request.body);
      parts.push('--data-binary', shellQuote(`@${file}`), `# ${request.body.length} bytes`);
    } else {
      parts.push('--data-raw', shellQuote(request.body));
    }
  }
  return parts.join(' ');
}
