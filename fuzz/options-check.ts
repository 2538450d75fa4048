/**
 * What OPTIONS must answer, which /openapi.json cannot say: its routes are left out of the document
 * (src/http/route-methods.ts). Every path an operation takes answers 204, no body, and `Allow`
 * naming exactly the methods the document gives that path (HEAD wherever GET is, OPTIONS
 * always; `Allow` is what the router finds for each method, so every template the path matches
 * counts); a path no operation takes, or one with an empty segment where an id goes, is a 404 in
 * Vercel's format.
 */
import type { OpenApi } from './openapi.ts';
import type { FuzzResponse } from './requests.ts';

/** The order `Allow` names methods in (src/http/route-methods.ts). */
const ALLOW_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

interface Template {
  pattern: RegExp;
  /** The same with every parameter non-empty: what the router matches and the app does not refuse. */
  nonEmpty: RegExp;
  methods: string[];
}

function templatesOf(api: OpenApi): Template[] {
  const byPath = new Map<string, string[]>();
  for (const op of api.operations) byPath.set(op.path, [...(byPath.get(op.path) ?? []), op.method]);
  return [...byPath].map(([template, methods]) => {
    const source = (parameter: string) =>
      template
        .split('/')
        .map((segment) => (/^\{[^}]+\}$/.test(segment) ? parameter : segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
        .join('/');
    return { pattern: new RegExp(`^${source('[^/]*')}$`), nonEmpty: new RegExp(`^${source('[^/]+')}$`), methods };
  });
}

/** A checker of OPTIONS answers for this document: the problems with one answer, [] when it is right. */
export function optionsChecker(api: OpenApi): (path: string, response: FuzzResponse) => string[] {
  const templates = templatesOf(api);
  return (path, response) => {
    const matching = templates.filter((t) => t.pattern.test(path));
    const withEmptyId = matching.filter((t) => !t.nonEmpty.test(path)).length;
    // Matched both with and without an empty id, the path's route is the router's choice: either answer is right.
    const notFound = matching.length === withEmptyId || (withEmptyId > 0 && response.status === 404);
    if (notFound) {
      if (response.status !== 404) return [`OPTIONS ${path}: no operation takes this path, so 404 was expected, got ${response.status}`];
      const error = (response.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      return typeof error?.code === 'string' && typeof error.message === 'string'
        ? []
        : [`OPTIONS ${path} → 404: the body is not in Vercel's error format`];
    }
    const methods = new Set(matching.flatMap((t) => t.methods));
    if (methods.has('GET')) methods.add('HEAD');
    methods.add('OPTIONS');
    const allow = ALLOW_ORDER.filter((method) => methods.has(method)).join(', ');
    if (response.status !== 204) return [`OPTIONS ${path}: the path takes ${allow}, so 204 was expected, got ${response.status}`];
    const problems: string[] = [];
    if (response.headers.allow !== allow)
      problems.push(`OPTIONS ${path} → 204: Allow is ${JSON.stringify(response.headers.allow)}, not "${allow}"`);
    if (response.text !== '') problems.push(`OPTIONS ${path} → 204: a body came: ${response.text.slice(0, 100)}`);
    return problems;
  };
}
