/**
 * The reference partner's calls back to the marketplace (docs/partner-api.md §2.2,
 * §5): `Authorization: Bearer <the installation's access token>` from its upsert, at the
 * configured marketplace URL instead of Vercel's fixed hosts (§0.2).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { DEFAULT_MAX_BODY_BYTES, OutboundFailure, send } from '../outbound/outbound-http.ts';

/** What the marketplace answered: its status (0 when it could not be reached) and body. */
export interface MarketplaceAnswer {
  status: number;
  /** The parsed JSON body; the raw text when it is not JSON; null when empty. */
  body: unknown;
  /** Why there is no answer (status 0), or why it was not read (a redirect, not followed; a body past the limit). */
  error?: string;
}

const TIMEOUT_MS = 10_000;

export class MarketplaceClient {
  /** Aborted on close, so retries in progress stop instead of outliving the server. */
  private readonly closing = new AbortController();

  constructor(
    private readonly baseUrl: string,
    private readonly tokenOf: (installationId: string) => Promise<string | undefined>,
    private readonly logger: Logger | undefined,
  ) {}

  /** One call, no retry: the partner's own actions report exactly what the marketplace said. */
  async call(installationId: string, method: 'POST' | 'PUT' | 'PATCH', path: string, body: unknown): Promise<MarketplaceAnswer> {
    const token = await this.tokenOf(installationId);
    if (!token) return { status: 0, body: null, error: `no access token for installation ${installationId} (it was never upserted)` };
    const url = `${this.baseUrl.replace(/\/+$/, '')}${path}`;
    let text: string;
    let status: number;
    try {
      // Through the outbound module, as Storehouse's own calls: a redirect would carry the access token elsewhere.
      ({ status, text } = await send(
        url,
        {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify(body),
        },
        { timeoutMs: TIMEOUT_MS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES, signal: this.closing.signal },
      ));
    } catch (error) {
      if (!(error instanceof OutboundFailure)) throw error;
      return { status: error.status, body: null, error: `${method} ${url}: ${error.message}` };
    }
    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status, body: parsed };
  }

  /**
   * Tells the marketplace a resource changed (`resource.updated`, §5), so it reads the resource
   * again. Sent when no one is waiting on the answer, so an unreachable marketplace, a 5xx or a
   * 429 is retried with backoff, a few times; a 4xx is final (the marketplace refused it).
   */
  async resourceUpdated(installationId: string, resourceId: string, productId: string, attempts = 5): Promise<MarketplaceAnswer> {
    const body = { event: { type: 'resource.updated', resourceId, productId } };
    let answer: MarketplaceAnswer = { status: 0, body: null, error: 'not sent' };
    for (let attempt = 1; attempt <= attempts && !this.closing.signal.aborted; attempt++) {
      answer = await this.call(installationId, 'POST', `/v1/installations/${encodeURIComponent(installationId)}/events`, body);
      const retry = answer.status === 0 || answer.status === 429 || answer.status >= 500;
      if (!retry) break;
      this.logger?.warn(
        { installationId, resourceId, attempt, status: answer.status, error: answer.error },
        'the resource.updated event was not accepted; retrying',
      );
      if (attempt < attempts) await sleep(250 * 2 ** (attempt - 1), undefined, { signal: this.closing.signal }).catch(() => {});
    }
    if (answer.status >= 200 && answer.status < 300) this.logger?.info({ installationId, resourceId }, 'sent resource.updated');
    else
      this.logger?.error(
        { installationId, resourceId, status: answer.status, body: answer.body, error: answer.error },
        'the marketplace did not take the resource.updated event',
      );
    return answer;
  }

  close(): void {
    this.closing.abort();
  }
}
