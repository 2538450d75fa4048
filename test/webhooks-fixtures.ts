/** What the webhook tests share: the partner's webhook settings, its inbox over HTTP, and the signature check. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { ReceivedWebhook, WebhookInbox } from '../src/partner-server/webhooks.ts';
import { eventually } from './helpers.ts';

export const CLIENT_SECRET = 'acme-webhook-test-client-secret';

/** The partner's catalog entry's webhook fields, given the partner's URL (startStorehouseWithPartner's `integration`). */
export const webhookIntegration = (partnerUrl: string) => ({ clientSecret: CLIENT_SECRET, webhookUrl: `${partnerUrl}/webhook` });

/** Short retries, so a test sees several within seconds. */
export const FAST_RETRIES = {
  STOREHOUSE_WEBHOOK_BACKOFF_MS: '50',
  STOREHOUSE_WEBHOOK_BACKOFF_MAX_MS: '400',
  STOREHOUSE_WEBHOOK_TIMEOUT_MS: '1000',
  STOREHOUSE_WEBHOOK_POLL_MS: '250',
};

/** What the reference partner received (GET /_partner/webhooks, over HTTP as any client sees it). */
export async function inboxOf(partnerUrl: string): Promise<WebhookInbox> {
  const response = await fetch(`${partnerUrl}/_partner/webhooks`);
  assert.equal(response.status, 200);
  return (await response.json()) as WebhookInbox;
}

/** Waits for the partner to have received an event matching `matches`; returns it, its signature checked here too. */
export async function received(
  partnerUrl: string,
  what: string,
  matches: (event: ReceivedWebhook) => boolean,
  secret = CLIENT_SECRET,
  timeoutMs?: number,
): Promise<ReceivedWebhook> {
  let found: ReceivedWebhook | undefined;
  await eventually(
    what,
    async () => {
      found = (await inboxOf(partnerUrl)).events.find(matches);
      return found !== undefined;
    },
    timeoutMs,
  );
  const event = found!;
  assert.equal(event.signature, createHmac('sha1', secret).update(event.body).digest('hex'), 'signed with the client secret');
  const envelope = JSON.parse(event.body);
  assert.deepEqual(Object.keys(envelope).sort(), ['createdAt', 'id', 'payload', 'type']);
  assert.equal(envelope.id, event.id);
  assert.equal(typeof envelope.createdAt, 'number');
  return event;
}
