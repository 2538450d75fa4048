/**
 * The one place that decides whether an error means "the state database cannot be reached"
 * (answered 503 `database_unavailable`) rather than a bug (500) or a bad value (400).
 *
 * Only errors raised by the state database's own pool count (open.ts marks them): a refused
 * connection to a partner server or a store's Redis is that provider's failure, not ours.
 */

const fromStateDatabase = new WeakSet<object>();

/** Marks an error as raised by the state database's pool; returns it, for `throw markDatabaseError(e)`. */
export function markDatabaseError<E>(error: E): E {
  if (error !== null && typeof error === 'object') fromStateDatabase.add(error);
  return error;
}

/** Socket-level failures: the server is down, unreachable, or dropped the connection. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that is there but will not serve: class 08 (connection exception),
 * 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting up, or in
 * recovery), 53300 too many connections.
 */
const isUnavailableState = (code: string) =>
  code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';

/** node-postgres and pg-pool say these in words only, without a code. */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated', // "... unexpectedly", "... due to connection timeout"
  'timeout exceeded when trying to connect', // pg-pool: no connection within connectionTimeoutMillis
  'Query read timeout', // node-postgres: no answer within query_timeout
  'is not queryable', // a client whose connection already broke
  'Connection ended',
];

function isConnectionFailure(error: { code?: unknown; message?: unknown }): boolean {
  const code = typeof error.code === 'string' ? error.code : '';
  if (NETWORK_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && isUnavailableState(code))) return true;
  const message = typeof error.message === 'string' ? error.message : '';
  return UNAVAILABLE_MESSAGES.some((words) => message.includes(words));
}

/** The errors inside `error`: itself, its causes, and an AggregateError's parts (a refused IPv4 and IPv6 connect). */
function* chain(error: unknown, depth = 0): Generator<{ code?: unknown; message?: unknown }> {
  if (error === null || typeof error !== 'object' || depth > 5) return;
  yield error as { code?: unknown; message?: unknown };
  if (error instanceof AggregateError) for (const part of error.errors) yield* chain(part, depth + 1);
  yield* chain((error as { cause?: unknown }).cause, depth + 1);
}

/**
 * Why the state database could not serve this request (the underlying error's message, for
 * the log), or undefined when `error` is something else.
 */
export function databaseUnavailableCause(error: unknown): string | undefined {
  const errors = [...chain(error)];
  if (!errors.some((e) => fromStateDatabase.has(e))) return undefined;
  const failure = errors.find(isConnectionFailure);
  if (!failure) return undefined;
  const code = typeof failure.code === 'string' ? `${failure.code}: ` : '';
  return `${code}${String(failure.message ?? 'connection failure')}`;
}

export const isDatabaseUnavailable = (error: unknown) => databaseUnavailableCause(error) !== undefined;
