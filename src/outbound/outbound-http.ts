/**
 * Every HTTP call Storehouse makes to a server it does not run (partner servers now, webhooks
 * later) goes through `send`, which holds what such a call must never do:
 *
 * - follow a redirect. A 3xx would have the request (its body: an install upsert's access token,
 *   say) sent again to wherever the remote server points, inside Storehouse's network too; it
 *   is answered with an OutboundFailure naming the status instead, and nothing is sent there.
 * - read an answer without bound. The body is read as a stream and the connection dropped as
 *   soon as it passes `maxBodyBytes` (the decompressed bytes, so a compressed bomb stops too).
 * - wait without bound. One deadline covers the connection, the headers and the body.
 *
 * Remote text that goes into an error message, a log line or an answer goes through `excerpt`:
 * control characters out, whitespace folded, at most EXCERPT_CHARS characters.
 */

/** The default of STOREHOUSE_OUTBOUND_MAX_BODY_BYTES: the partner API's answers are a few KiB. */
export const DEFAULT_MAX_BODY_BYTES = 1_048_576;

/** The most characters of remote text an error message quotes. */
export const EXCERPT_CHARS = 200;

export interface OutboundLimits {
  /** How long the call may take, from connecting to the answer's last byte. */
  timeoutMs: number;
  /** The most bytes of answer read; past them the call fails with `too_large`. */
  maxBodyBytes: number;
  /** Aborts the call early (a shutdown, say); reported as `aborted`. */
  signal?: AbortSignal | undefined;
}

export interface OutboundRequest {
  method: string;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
}

/** A non-redirect answer, read whole (within the limit). */
export interface OutboundAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * Why a call has no readable answer: `unreachable` (no connection, or it broke), `timeout`,
 * `aborted` (the caller's signal), `redirect` (a 3xx, not followed) or `too_large` (the answer
 * passed the limit; its status and headers had arrived).
 */
export type OutboundFailureKind = 'unreachable' | 'timeout' | 'aborted' | 'redirect' | 'too_large';

export class OutboundFailure extends Error {
  constructor(
    readonly kind: OutboundFailureKind,
    message: string,
    /** The answer's status, for `redirect` and `too_large`; 0 when there was no answer. */
    readonly status = 0,
    /** A redirect's target, excerpted. */
    readonly location?: string | undefined,
  ) {
    super(message);
    this.name = 'OutboundFailure';
  }
}

/** Makes one call; the answer, or an OutboundFailure (never a redirect followed, never more than the limit read). */
export async function send(url: URL | string, request: OutboundRequest, limits: OutboundLimits): Promise<OutboundAnswer> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const stop = new AbortController();
  const signal = AbortSignal.any([timeout, stop.signal, ...(limits.signal ? [limits.signal] : [])]);
  const failure = (error: unknown, status = 0): OutboundFailure => {
    if (error instanceof OutboundFailure) return error;
    if (timeout.aborted) return new OutboundFailure('timeout', `no answer within ${limits.timeoutMs} ms`, status);
    if (limits.signal?.aborted) return new OutboundFailure('aborted', 'the call was cancelled', status);
    const cause = (error as { cause?: { code?: unknown } }).cause?.code;
    return new OutboundFailure('unreachable', typeof cause === 'string' ? cause : excerpt((error as Error).message), status);
  };
  let response: Response;
  try {
    response = await fetch(url, { method: request.method, headers: request.headers, body: request.body, redirect: 'manual', signal });
  } catch (error) {
    throw failure(error);
  }
  const { status } = response;
  try {
    if (status >= 300 && status < 400) {
      const location = response.headers.get('location');
      throw new OutboundFailure(
        'redirect',
        `${status}, a redirect${location ? ` to ${excerpt(location)}` : ''}, not followed`,
        status,
        location ? excerpt(location) : undefined,
      );
    }
    return { status, headers: response.headers, text: await readCapped(response, limits.maxBodyBytes) };
  } catch (error) {
    throw failure(error, status);
  } finally {
    // Whatever is left unread is dropped with the connection, and the deadline's timer goes.
    stop.abort();
  }
}

/** The body as UTF-8 text, or `too_large` as soon as more than `max` bytes have come. */
async function readCapped(response: Response, max: number): Promise<string> {
  const tooLarge = () => new OutboundFailure('too_large', `an answer larger than ${max} bytes, not read`, response.status);
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > max) throw tooLarge();
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/**
 * Remote text made safe to quote: terminal escape sequences, C0 and C1 control characters, DEL, and the Unicode
 * direction overrides and line separators removed (they would forge lines in a log, or turn
 * text around in a terminal or a page), whitespace runs folded to one space, and at most
 * `max` characters kept, with an ellipsis when cut.
 */
export function excerpt(text: string, max = EXCERPT_CHARS): string {
  // Cleaned from a bounded prefix: a remote body may be a megabyte.
  const clean = text
    .slice(0, max * 8)
    .replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '') // terminal escape sequences, whole
    .replace(/[\t\n\r\f\v]+/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/ {2,}/g, ' ')
    .trim();
  const chars = Array.from(clean); // by code point, so a cut never splits a surrogate pair
  return chars.length <= max ? clean : `${chars.slice(0, max - 1).join('')}…`;
}
