/**
 * The reference partner's webhook receiver: `POST /webhook`, where the catalog's `webhookUrl`
 * points, as a provider's `app/webhook/route.ts` is in vercel/example-marketplace-integration. It
 * checks `x-vercel-signature` (hex HMAC-SHA1 of the raw body, keyed with the integration's client
 * secret) before anything else: a missing or wrong one is a 403 and nothing is recorded. An event
 * is recorded once per id; one that comes again (a retry after a lost answer, a redelivery) is
 * counted as a duplicate, as a provider that deduplicates by id would see it.
 *
 * `GET /_partner/webhooks` answers what was received (kept in memory, for tests and for trying
 * Storehouse by hand; `DELETE` forgets it). The `webhook` fault (faults.ts) makes the receiver
 * slow or failing: a status answered instead of 200, a delay before answering, or both after the
 * event was recorded (`afterWork`: the answer is lost, the event was not).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { sendError } from '../http/errors.ts';
import { type Faults, faultAnswer, takeFault } from './faults.ts';

export interface ReceivedWebhook {
  id: string;
  type: string;
  createdAt: number;
  payload: Record<string, unknown>;
  /** When it first arrived (ms). */
  receivedAt: number;
  /** How many times it arrived: 1, plus one for each duplicate. */
  deliveries: number;
  /** The body and `x-vercel-signature` as they first arrived, for checking the signature again. */
  body: string;
  signature: string;
}

export interface WebhookInbox {
  /** Signed requests that arrived, before any fault: recorded, duplicate, or failed on purpose. */
  arrivals: number;
  /** Each event once, in the order they first arrived. */
  events: ReceivedWebhook[];
  /** Arrivals of an event already recorded. */
  duplicates: number;
  /** Requests refused for their signature (missing or wrong). */
  refused: number;
}

export const emptyInbox = (): WebhookInbox => ({ arrivals: 0, events: [], duplicates: 0, refused: 0 });

/** Whether `signature` is the hex HMAC-SHA1 of `body` keyed with `secret` (compared in constant time). */
export function validSignature(body: string, signature: string | undefined, secret: string): boolean {
  if (signature === undefined || !/^[0-9a-f]{40}$/i.test(signature)) return false;
  const expected = createHmac('sha1', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

const MAX_BODY_BYTES = 1_048_576;

export async function webhookRoutes(
  app: FastifyInstance,
  options: { clientSecret: string | undefined; faults: Faults; inbox: WebhookInbox; signal: AbortSignal },
) {
  const { inbox, faults } = options;
  const byId = new Map<string, ReceivedWebhook>();
  const record = (event: Record<string, unknown>, body: string, signature: string) => {
    const id = String(event.id);
    const known = byId.get(id);
    if (known) {
      known.deliveries++;
      inbox.duplicates++;
      return;
    }
    const received: ReceivedWebhook = {
      id,
      type: String(event.type),
      createdAt: Number(event.createdAt),
      payload: (event.payload ?? {}) as Record<string, unknown>,
      receivedAt: Date.now(),
      deliveries: 1,
      body,
      signature,
    };
    byId.set(id, received);
    inbox.events.push(received);
  };

  // The signature is over the raw bytes: this scope reads JSON bodies as text, and parses them itself.
  await app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (_request, body, done) =>
      done(null, body),
    );

    scope.post('/webhook', async (request, reply) => {
      const body = typeof request.body === 'string' ? request.body : '';
      const header = request.headers['x-vercel-signature'];
      const signature = Array.isArray(header) ? header[0] : header;
      if (options.clientSecret === undefined) {
        inbox.refused++;
        return sendError(reply, 403, 'forbidden', 'This partner has no client secret (PARTNER_CLIENT_SECRET) to verify webhooks with');
      }
      if (signature === undefined || !validSignature(body, signature, options.clientSecret)) {
        inbox.refused++;
        return sendError(reply, 403, 'forbidden', 'Invalid x-vercel-signature');
      }
      inbox.arrivals++;
      let event: unknown;
      try {
        event = JSON.parse(body);
      } catch {
        return sendError(reply, 400, 'bad_request', 'The body is not JSON');
      }
      if (typeof event !== 'object' || event === null || typeof (event as { id?: unknown }).id !== 'string') {
        return sendError(reply, 400, 'bad_request', 'The body is not a webhook event ({id, type, createdAt, payload})');
      }
      const fault = takeFault(faults, 'webhook');
      if (fault?.afterWork) record(event as Record<string, unknown>, body, signature);
      if (fault?.delayMs) await sleep(fault.delayMs, undefined, { signal: options.signal }).catch(() => {});
      if (fault?.status !== undefined) {
        const answer = faultAnswer('webhook', fault.status);
        return reply.code(answer.status).send(answer.body);
      }
      if (!fault?.afterWork) record(event as Record<string, unknown>, body, signature);
      return { received: true };
    });
  });

  app.get('/_partner/webhooks', async () => inbox);
  app.delete('/_partner/webhooks', async () => {
    inbox.events.length = 0;
    inbox.arrivals = 0;
    inbox.duplicates = 0;
    inbox.refused = 0;
    byId.clear();
    return inbox;
  });
}
