/**
 * What the webhook tests share: the partner's webhook settings, the reference partner as a
 * receiver with the catalog pointing at it, a change that records an event, its inbox over HTTP,
 * and the signature check.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runAdminCommand } from '../src/admin/commands.ts';
import { startPartnerServer, type PartnerServer, type PartnerServerOptions } from '../src/partner-server/app.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import type { ReceivedWebhook, WebhookInbox } from '../src/partner-server/webhooks.ts';
import { eventually, freshDataDir, writeCatalogFile, type TestServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';

export const CLIENT_SECRET = 'acme-webhook-test-client-secret';

/** The partner's catalog entry's webhook fields, given the partner's URL (startStorehouseWithPartner's `integration`). */
export const webhookIntegration = (partnerUrl: string) => ({ clientSecret: CLIENT_SECRET, webhookUrl: `${partnerUrl}/webhook` });

/** A reference partner on a data dir of its own; `close` stops it and removes that dir. */
export interface WebhookReceiver {
  partner: PartnerServer;
  close(): Promise<void>;
}

/** Starts the reference partner on `options.port` (chosen earlier: the catalog names it), on a fresh data dir. */
export async function startWebhookReceiver(options: Omit<PartnerServerOptions, 'dataDir'>): Promise<WebhookReceiver> {
  const dataDir = await freshDataDir();
  const remove = () => fs.rmSync(dataDir, { recursive: true, force: true });
  try {
    const partner = await startPartnerServer({ ...options, dataDir });
    return {
      partner,
      close: async () => {
        await partner.close();
        remove();
      },
    };
  } catch (error) {
    remove();
    throw error;
  }
}

/**
 * The reference partner (oac_partner, CLIENT_SECRET) as the receiver of a Storehouse the test
 * starts itself. Its port is chosen and the catalog written first, since the catalog must name the
 * partner's URL before Storehouse starts, and the partner names Storehouse's URL as its issuer.
 */
export interface WebhookPartner {
  /** A catalog file (in a directory of its own) whose oac_partner sends its webhooks to the partner. */
  catalogFile: string;
  /** Starts the partner on its port, trusting tokens from `issuer`; until then nothing listens there. */
  start(issuer: string, options?: Pick<PartnerServerOptions, 'postgresAdminUrl'>): Promise<PartnerServer>;
  /** Stops the partner if it was started, and removes its data dir and the catalog file. */
  close(): Promise<void>;
}

export async function prepareWebhookPartner(): Promise<WebhookPartner> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const catalog = catalogWithPartner({ url });
  Object.assign(
    catalog.integrations.find((i: { id: string }) => i.id === 'oac_partner'),
    webhookIntegration(url),
  );
  const catalogFile = writeCatalogFile(catalog);
  let receiver: WebhookReceiver | undefined;
  return {
    catalogFile,
    start: async (issuer, options = {}) => {
      receiver = await startWebhookReceiver({ port, clientId: 'oac_partner', issuer, clientSecret: CLIENT_SECRET, ...options });
      return receiver.partner;
    },
    close: async () => {
      try {
        await receiver?.close();
      } finally {
        fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
      }
    },
  };
}

/** The operator adds `email` to the bootstrapped team as a MEMBER (as the CLI does): a change whose event every webhook receiver gets. */
export const addTeamMember = (server: TestServer, email: string) =>
  runAdminCommand(server.runtime, 'members.add', {
    team: server.runtime.bootstrapped!.team.id,
    user: email,
    role: 'MEMBER',
  });

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
