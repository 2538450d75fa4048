/**
 * The fuzzer's view of a running server's /openapi.json: its operations with their parameters,
 * request bodies and documented responses, every `$ref` resolved (the document has no recursive
 * schemas, so resolving them inline is finite), and a response checker.
 *
 * The checker is test/openapi-check.ts's `checkResponse` when that module exists (the suite's
 * one reading of the document); until then a minimal one here, on Ajv, does the same job.
 */
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

export type Schema = Record<string, any>;

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: Schema;
}

export interface Operation {
  method: string;
  /** The path template, as /openapi.json names it: `/v1/storage/stores/{id}`. */
  path: string;
  parameters: Parameter[];
  body?: { required: boolean; schema: Schema };
  /** Status code (or `default`) → its JSON schema (undefined: no body documented). */
  responses: Record<string, Schema | undefined>;
}

export interface OpenApi {
  document: Schema;
  operations: Operation[];
}

/**
 * Problems with one response against the document (empty: it matches). `path` is the concrete
 * path the request went to, `template` the documented one it was generated from. A problem
 * about the status (rather than the body) says "status not documented" or "was expected".
 */
export type ResponseChecker = (method: string, path: string, template: string, status: number, body: unknown) => string[];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Replaces every `{$ref: '#/...'}` with what it points at. */
export function dereference(value: unknown, root: Schema, depth = 0): any {
  if (depth > 50) throw new Error('schema nesting too deep: a recursive $ref?');
  if (Array.isArray(value)) return value.map((item) => dereference(item, root, depth + 1));
  if (!value || typeof value !== 'object') return value;
  const object = value as Schema;
  if (typeof object.$ref === 'string' && object.$ref.startsWith('#/')) {
    const target = object.$ref
      .slice(2)
      .split('/')
      .reduce((node: any, key: string) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], root);
    if (target === undefined) throw new Error(`unresolved $ref ${object.$ref}`);
    return dereference(target, root, depth + 1);
  }
  return Object.fromEntries(Object.entries(object).map(([key, item]) => [key, dereference(item, root, depth + 1)]));
}

export async function loadOpenApi(baseUrl: string): Promise<OpenApi> {
  const response = await fetch(`${baseUrl}/openapi.json`);
  if (response.status !== 200) throw new Error(`GET /openapi.json answered ${response.status}`);
  const document = (await response.json()) as Schema;
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries<Schema>(document.paths ?? {})) {
    for (const method of METHODS) {
      const raw = item[method];
      if (!raw) continue;
      const op = dereference(raw, document) as Schema;
      const parameters: Parameter[] = [...(dereference(item.parameters ?? [], document) as Schema[]), ...(op.parameters ?? [])].map(
        (p) => ({
          name: p.name,
          in: p.in,
          required: Boolean(p.required),
          schema: p.schema ?? {},
        }),
      );
      const bodySchema = op.requestBody?.content?.['application/json']?.schema;
      const responses: Record<string, Schema | undefined> = {};
      for (const [status, answer] of Object.entries<Schema>(op.responses ?? {})) {
        responses[status] = answer?.content?.['application/json']?.schema;
      }
      operations.push({
        method: method.toUpperCase(),
        path,
        parameters,
        ...(bodySchema && { body: { required: Boolean(op.requestBody.required), schema: bodySchema } }),
        responses,
      });
    }
  }
  return { document, operations };
}

/** A checker on Ajv, by the same rules as test/openapi-check.ts's (for as long as that one is missing). */
export function minimalChecker(api: OpenApi): ResponseChecker {
  const ajv = new Ajv.default({ strict: false, allErrors: false, validateFormats: true });
  addFormats.default(ajv);
  const compiled = new Map<Schema, ValidateFunction>();
  const byKey = new Map(api.operations.map((op) => [`${op.method} ${op.path}`, op]));
  return (method, _path, template, status, body) => {
    const op = byKey.get(`${method === 'HEAD' ? 'GET' : method} ${template}`);
    if (!op) {
      const expected = api.operations.some((o) => o.path === template) ? 405 : 404;
      return status === expected ? [] : [`no operation takes it, so ${expected} was expected, got ${status}`];
    }
    const key = String(status) in op.responses ? String(status) : 'default' in op.responses ? 'default' : undefined;
    if (key === undefined) return [`status not documented (documented: ${Object.keys(op.responses).join(', ')})`];
    const schema = op.responses[key];
    if (!schema || method === 'HEAD') return [];
    if (body === undefined) return ['documented with a body, but none came'];
    const validate = compiled.get(schema) ?? ajv.compile(schema);
    compiled.set(schema, validate);
    if (validate(body)) return [];
    return (validate.errors ?? []).map((e) => `body${e.instancePath} ${e.message}`);
  };
}

/**
 * test/openapi-check.ts's checker when it exists, else the minimal one. Imported by a computed
 * name so this module type-checks before that file lands.
 */
export async function responseChecker(api: OpenApi, baseUrl: string): Promise<{ check: ResponseChecker; source: string }> {
  const shared = new URL('../test/openapi-check.ts', import.meta.url).href;
  let module: any;
  try {
    module = await import(shared);
  } catch (error: any) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
  if (typeof module?.loadOpenApi === 'function' && typeof module?.checkResponse === 'function') {
    const doc = await module.loadOpenApi(`${baseUrl}/openapi.json`);
    return {
      check: (method, path, _template, status, body) => {
        const problems = module.checkResponse(doc, method, path, status, body);
        return Array.isArray(problems) ? problems.map(String) : [];
      },
      source: 'test/openapi-check.ts',
    };
  }
  return { check: minimalChecker(api), source: 'fuzz/openapi.ts (minimal)' };
}
