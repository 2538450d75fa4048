/**
 * The judgement of one request: sent to the server, its answer checked against the document (an
 * OPTIONS answer against fuzz/options-check.ts: the document leaves those routes out), and, for a
 * refused write, the state compared before and after. A table that changed counts against the
 * request only where the request itself committed rows of it (fuzz/write-attribution.ts): the
 * server's background work writing meanwhile is not the request's doing.
 */
import type { Fixtures } from './fixtures.ts';
import type { Operation, OpenApi, ResponseChecker } from './openapi.ts';
import { optionsChecker } from './options-check.ts';
import { send, type FuzzRequest, type FuzzResponse } from './requests.ts';
import { changes, snapshot } from './state.ts';
import { WriteAttribution } from './write-attribution.ts';
import type { TestServer } from '../test/helpers.ts';

export const FAILURE_KINDS = ['5xx', 'no-answer', 'undocumented-status', 'schema-mismatch', 'refused-but-changed'] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface Failure {
  kind: FailureKind;
  /** What makes two failures the same one: kind, operation, status and the gist of the problem. */
  signature: string;
  detail: string;
}

export interface Judged {
  response?: FuzzResponse;
  failures: Failure[];
}

export type Judge = (request: FuzzRequest) => Promise<Judged>;

const READS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Ids, numbers and quoted values out of a message, so one bug with many inputs is one signature. */
const gist = (text: string) =>
  text
    .replace(/"[^"]*"|'[^']*'/g, '…')
    .replace(/\b[a-z]+_[A-Za-z0-9]{6,}\b/g, '<id>')
    .replace(/\/\d+(?=\/|\b)/g, '/*')
    .replace(/\d+/g, 'N')
    .slice(0, 120);

/**
 * A 503 is a failure unless the operation documents it and the dependency it names is really
 * absent: the Redis provider when this server has no Redis admin URL. (Without an admin URL the
 * Postgres provider runs embedded, so it is never absent.)
 */
function allowedUnavailable(op: Operation, response: FuzzResponse, redisConfigured: boolean): boolean {
  if (response.status !== 503 || !('503' in op.responses)) return false;
  const error = (response.json as { error?: { code?: string; message?: string } } | undefined)?.error;
  return !redisConfigured && error?.code === 'provider_unavailable' && /redis/i.test(error.message ?? '');
}

/** The server's error log lines written while a request ran, for the report of a 5xx. */
function errorLogs(logs: string[], from: number): string {
  return logs
    .slice(from)
    .filter((line) => line.includes('"level":50') || line.includes('"level":60'))
    .map((line) => {
      try {
        const entry = JSON.parse(line);
        return `${entry.msg ?? ''} ${entry.err?.message ?? ''}`.trim();
      } catch {
        return line;
      }
    })
    .join(' | ')
    .slice(0, 300);
}

export async function makeJudge(
  server: TestServer,
  api: OpenApi,
  check: ResponseChecker,
  fx: Fixtures,
  redisConfigured: boolean,
): Promise<Judge> {
  const operations = new Map(api.operations.map((op) => [`${op.method} ${op.path}`, op]));
  const checkOptions = optionsChecker(api);
  const writes = await WriteAttribution.attach(server);
  return async (request) => {
    const [, template] = request.operation.split(' ', 2) as [string, string];
    // HEAD is answered by the GET route (Fastify's own HEAD routes), without a body.
    const asMethod = request.method === 'HEAD' && operations.has(`GET ${template}`) ? 'GET' : request.method;
    const op = operations.get(`${asMethod} ${template}`);
    const write = !READS.has(request.method);
    const before = write ? await snapshot(server.runtime.db) : undefined;
    const arrivalsStart = writes.arrivals.length;
    const logStart = server.logs.length;
    let response: FuzzResponse;
    try {
      response = await send(server.url, request, fx);
    } catch (error) {
      const detail = `no answer: ${(error as Error).message}`;
      return { failures: [{ kind: 'no-answer', signature: `no-answer ${request.method} ${template}: ${gist(detail)}`, detail }] };
    }
    const failures: Failure[] = [];
    const where = `${request.method} ${template} → ${response.status}`;
    const add = (kind: FailureKind, problem: string, detail = problem) =>
      failures.push({ kind, signature: `${kind} ${where}: ${gist(problem)}`, detail });

    if (response.status >= 500 && !(op && allowedUnavailable(op, response, redisConfigured))) {
      const error = (response.json as { error?: { code?: string } } | undefined)?.error;
      add(
        '5xx',
        error?.code ?? 'no error code',
        `${response.text.slice(0, 300)}${errorLogs(server.logs, logStart) ? ` (server log: ${errorLogs(server.logs, logStart)})` : ''}`,
      );
    }
    if (!failures.length) {
      const path = request.target.split('?')[0]!;
      const problems =
        request.method === 'OPTIONS' ? checkOptions(path, response) : check(request.method, path, template, response.status, response.json);
      for (const problem of problems) {
        // A path the server cannot even read (bad percent-encoding, too long) is refused before
        // routing, whatever the method: 400/414/431 in Vercel's format is right there too.
        const refusedBeforeRouting =
          !op && [400, 414, 431].includes(response.status) && typeof (response.json as any)?.error?.code === 'string';
        if (refusedBeforeRouting) continue;
        const aboutStatus = /status not documented|was expected, got/.test(problem);
        const kind = aboutStatus ? 'undocumented-status' : 'schema-mismatch';
        const detail = `${problem.slice(0, 300)} | answer: ${response.text.slice(0, 200) || '(empty)'}`;
        if (/was expected, got/.test(problem) && /\/\/|\/$/.test(path)) {
          // One cause, whatever the route: an empty path segment is taken as an empty parameter.
          failures.push({ kind, signature: `${kind} a path with an empty segment is routed, not 404`, detail });
        } else {
          // The checker names the concrete request first; the signature keeps only what is wrong.
          const what = problem.includes('→') ? problem.slice(problem.indexOf('→')).replace(/^→ \d+:?\s*/, '') : problem;
          add(kind, what, detail);
        }
        break;
      }
    }
    if (before && response.status >= 400 && response.status < 500) {
      // A request refused before it reached the app (the HTTP parser's 400, 431) committed nothing.
      const arrival = writes.arrivalSince(arrivalsStart, request.method, request.target);
      // The app stamps every request it handles: one it handled must have been followed, or its writes would go unseen.
      if (!arrival && response.headers['x-request-id'])
        throw new Error(`the app answered ${request.method} ${request.target} but the write attribution never saw it arrive`);
      const changed = changes(before, await snapshot(server.runtime.db), arrival ? writes.tablesWrittenBy(arrival) : new Set());
      if (changed.length)
        add(
          'refused-but-changed',
          changed.map((c) => c.split(' ')[0]).join(','),
          `changed: ${changed.join('; ')}; answer: ${response.text.slice(0, 200)}`,
        );
    }
    return { response, failures };
  };
}
