/**
 * Checks real responses against Storehouse's /openapi.json: the status must be one the operation
 * documents, and the body must match that status's schema (Ajv, with OpenAPI 3.0's `nullable`).
 * Shared by test/openapi.test.ts and the fuzzer, which check every response they get.
 *
 *   const doc = await loadOpenApi(server.url);
 *   const problems = checkResponse(doc, 'GET', '/v1/storage/stores/store_1?teamId=x', 404, body);
 *
 * A request no operation takes is held to what the server answers then: 405 when the path is an
 * operation's under another method (with no empty segment where an id goes), else 404, in Vercel's error format (or what any request may
 * get: 400 for a path that is not valid percent-encoding, 408, 431, 503).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Validator } from '@seriousme/openapi-schema-validator';

// ajv-formats is CommonJS: its function is the default export's `default` under ESM interop.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (
  ajv: Ajv,
) => Ajv;

type JsonSchema = Record<string, unknown>;

export interface OpenApiResponse {
  description?: string;
  content?: Record<string, { schema?: JsonSchema }>;
}

export interface OpenApiOperation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: unknown[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, OpenApiResponse>;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The document at `url`: a server's base URL (its /openapi.json is read) or the document's own URL. */
export async function loadOpenApi(url: string): Promise<OpenApiDocument> {
  const documentUrl = /\.json($|\?)/.test(url) ? url : `${url.replace(/\/+$/, '')}/openapi.json`;
  const response = await fetch(documentUrl);
  if (response.status !== 200) throw new Error(`GET ${documentUrl} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as OpenApiDocument;
}

interface PathMatcher {
  template: string;
  pattern: RegExp;
  /** The same with every parameter non-empty: what takes a path for the 405 of another method. */
  nonEmpty: RegExp;
  /** Literal segments: the router prefers `/stores/integration/direct` to `/stores/{id}/...`. */
  literals: number;
}

interface Compiled {
  ajv: Ajv;
  matchers: PathMatcher[];
  validators: Map<string, ValidateFunction>;
}

const compiled = new WeakMap<OpenApiDocument, Compiled>();
const COMPONENTS_ID = 'openapi-components';

/** `#/components/...` references, pointed at the components schema registered with Ajv. */
function rebase(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(rebase);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `${COMPONENTS_ID}${value}` : rebase(value),
    ]),
  );
}

function compile(doc: OpenApiDocument): Compiled {
  let found = compiled.get(doc);
  if (found) return found;
  // strict: false, so OpenAPI's own keywords (example, discriminator, xml) are annotations;
  // Ajv reads `nullable: true` beside `type` as OpenAPI 3.0 means it.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: COMPONENTS_ID, components: doc.components ?? {} });
  const matchers = Object.keys(doc.paths).map((template) => {
    const segments = template.split('/');
    // `[^/]*`: the router matches an empty segment as a parameter (GET /v1/storage/stores/ is getStore's 404).
    const source = (parameter: string) =>
      segments.map((segment) => (/^\{[^}]+\}$/.test(segment) ? parameter : segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))).join('/');
    return {
      template,
      pattern: new RegExp(`^${source('[^/]*')}$`),
      nonEmpty: new RegExp(`^${source('[^/]+')}$`),
      literals: segments.filter((segment) => !segment.startsWith('{')).length,
    };
  });
  matchers.sort((a, b) => b.literals - a.literals);
  found = { ajv, matchers, validators: new Map() };
  compiled.set(doc, found);
  return found;
}

/** The templated path of the operation that takes `method` on this concrete path, if one does. */
export function findOperation(
  doc: OpenApiDocument,
  method: string,
  path: string,
): { template: string; operation: OpenApiOperation } | undefined {
  const wanted = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
  const bare = path.split(/[?#]/)[0]!;
  for (const { template, pattern } of compile(doc).matchers) {
    const operation = doc.paths[template]?.[wanted];
    if (operation && pattern.test(bare)) return { template, operation };
  }
  return undefined;
}

/** The documented response for a status: exact, else its class (`4XX`), else `default`. */
function documentedResponse(operation: OpenApiOperation, status: number): OpenApiResponse | undefined {
  const responses = operation.responses ?? {};
  return responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default;
}

function schemaProblems(compiledDoc: Compiled, key: string, schema: JsonSchema, body: unknown): string[] {
  let validate = compiledDoc.validators.get(key);
  if (!validate) {
    validate = compiledDoc.ajv.compile(rebase(schema) as JsonSchema);
    compiledDoc.validators.set(key, validate);
  }
  if (validate(body)) return [];
  return (validate.errors ?? []).map(
    (error) =>
      `body${error.instancePath || ''} ${error.message}${error.params && 'additionalProperty' in error.params ? ` (${String(error.params.additionalProperty)})` : ''}`,
  );
}

const isEmpty = (body: unknown) => body === undefined || body === '';

function isValidPercentEncoding(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * What is wrong with a response, against the document: [] when nothing is. `path` is the
 * concrete path the request went to (a query string is ignored); `body` the parsed JSON body, or
 * undefined when there was none.
 */
export function checkResponse(doc: OpenApiDocument, method: string, path: string, status: number, body: unknown): string[] {
  const compiledDoc = compile(doc);
  const request = `${method.toUpperCase()} ${path}`;
  const found = findOperation(doc, method, path);
  if (!found) {
    const bare = path.split(/[?#]/)[0]!;
    // An empty segment where an id goes names nothing: 404 whatever the method, not 405.
    const others = compiledDoc.matchers
      .filter(({ nonEmpty }) => nonEmpty.test(bare))
      .flatMap(({ template }) => Object.keys(doc.paths[template] ?? {}).filter((m) => METHODS.includes(m)));
    // CONNECT is answered on the socket, before any routing (src/http/errors.ts): 405 whatever the path.
    const expected = others.length > 0 || method.toUpperCase() === 'CONNECT' ? 405 : 404;
    const anyRequest = [408, 431, 503, ...(isValidPercentEncoding(bare) ? [] : [400])];
    if (status !== expected && !anyRequest.includes(status))
      return [`${request}: no operation takes it, so ${expected} was expected, got ${status}`];
    const error = doc.components?.schemas?.VercelError;
    return error && method.toUpperCase() !== 'HEAD'
      ? schemaProblems(compiledDoc, 'VercelError', { $ref: '#/components/schemas/VercelError' }, body).map(
          (p) => `${request} → ${status}: ${p}`,
        )
      : [];
  }
  const { template, operation } = found;
  const label = `${request} (${method.toUpperCase()} ${template}) → ${status}`;
  const response = documentedResponse(operation, status);
  if (!response) return [`${label}: status not documented (documented: ${Object.keys(operation.responses ?? {}).join(', ')})`];
  if (method.toUpperCase() === 'HEAD') return [];
  const json = response.content?.['application/json']?.schema ?? Object.values(response.content ?? {})[0]?.schema;
  if (!json) return isEmpty(body) ? [] : [`${label}: documented without a body, but one came: ${JSON.stringify(body).slice(0, 200)}`];
  if (isEmpty(body)) return [`${label}: documented with a body, but none came`];
  return schemaProblems(compiledDoc, `${method.toLowerCase()} ${template} ${status}`, json, body).map((problem) => `${label}: ${problem}`);
}

/** Reads a fetch() Response (its body is consumed) and checks it; the parsed body comes back too. */
export async function checkFetchResponse(
  doc: OpenApiDocument,
  method: string,
  path: string,
  response: Response,
): Promise<{ problems: string[]; body: unknown }> {
  const text = await response.text();
  if (text === '') return { problems: checkResponse(doc, method, path, response.status, undefined), body: undefined };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { problems: [`${method.toUpperCase()} ${path} → ${response.status}: the body is not JSON: ${text.slice(0, 200)}`], body: text };
  }
  const type = response.headers.get('content-type') ?? '';
  const problems = checkResponse(doc, method, path, response.status, body);
  if (!type.startsWith('application/json'))
    problems.push(`${method.toUpperCase()} ${path} → ${response.status}: a JSON body labelled ${JSON.stringify(type)}`);
  return { problems, body };
}

/**
 * What is wrong with the document itself: not valid OpenAPI (the specification's own schema, via
 * @seriousme/openapi-schema-validator), or an operation without a summary or tags.
 */
export async function documentProblems(doc: OpenApiDocument): Promise<string[]> {
  const validator = new Validator();
  // The validator keeps what it is given: a copy leaves the caller's document as it was.
  const result = await validator.validate(structuredClone(doc) as never);
  const problems: string[] = [];
  if (!result.valid) problems.push(...[result.errors].flat().map((error) => `not valid OpenAPI ${doc.openapi}: ${JSON.stringify(error)}`));
  for (const [template, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!METHODS.includes(method)) continue;
      if (!operation.summary) problems.push(`${method.toUpperCase()} ${template} has no summary`);
      if (!operation.tags?.length) problems.push(`${method.toUpperCase()} ${template} has no tags`);
      if (!operation.responses || !Object.keys(operation.responses).some((status) => /^2/.test(status)))
        problems.push(`${method.toUpperCase()} ${template} documents no success response`);
    }
  }
  return problems;
}
