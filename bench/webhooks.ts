/**
 * Webhook delivery (src/webhooks/): the latency from a change's commit (an event recorded in its
 * transaction) to the receiver's 2xx, and sustained deliveries a second, against the same signed
 * POSTs sent to the same receiver by a bare loop (fetch, with as many at once as the dispatcher
 * sends), in the same run. The receiver is a plain node:http server on loopback that checks every
 * signature and answers 200, so what is measured is Storehouse's side. Storehouse runs on the
 * embedded default, in this process.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { DEFAULT_CATALOG_PATH } from '../src/config.ts';
import { randomBase62 } from '../src/ids.ts';
import { validSignature } from '../src/partner-server/webhooks.ts';
import { signWebhook } from '../src/webhooks/delivery.ts';
import { recordWebhookEvent } from '../src/webhooks/outbox.ts';
import { startInProcess } from './in-process.ts';
import { freePort, median, quantile } from './measure.ts';

const LATENCY_ROUNDS = 200;
const THROUGHPUT_EVENTS = 2_000;
const CONCURRENCY = 16;
const SECRET = 'bench-webhook-client-secret-0123456789';

export interface WebhookBenchResult {
  latencyMedianMs: number;
  latencyP99Ms: number;
  bareLatencyMedianMs: number;
  bareLatencyP99Ms: number;
  latencyRatio: number;
  deliveriesPerSecond: number;
  bareDeliveriesPerSecond: number;
  throughputRatio: number;
}

/** The loopback receiver: checks each signature, answers 200, and tells who waits for an id when it came. */
async function startReceiver(port: number) {
  const waiting = new Map<string, (at: number) => void>();
  let received = 0;
  let badSignatures = 0;
  let allDone: (() => void) | undefined;
  let expect = Number.POSITIVE_INFINITY;
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = request.headers['x-vercel-signature'];
      if (!validSignature(body, Array.isArray(header) ? header[0] : header, SECRET)) {
        badSignatures++;
        response.writeHead(403).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      const at = performance.now();
      const { id } = JSON.parse(body) as { id: string };
      waiting.get(id)?.(at);
      waiting.delete(id);
      if (++received >= expect) allDone?.();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    /** Resolves with when `id` arrived (performance.now()). */
    arrival: (id: string) => new Promise<number>((resolve) => waiting.set(id, resolve)),
    /** Resolves once `count` more requests have arrived. */
    expectMore: (count: number) =>
      new Promise<void>((resolve) => {
        expect = received + count;
        allDone = resolve;
      }),
    badSignatures: () => badSignatures,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

export async function benchWebhooks(log: (line: string) => void): Promise<WebhookBenchResult> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-bench-webhooks-'));
  fs.chmodSync(scratch, 0o711); // its PostgreSQL may run as another user, which must pass through
  const port = await freePort();
  const webhookUrl = `http://127.0.0.1:${port}/webhook`;
  const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
  Object.assign(catalog.integrations[0], { clientSecret: SECRET, webhookUrl });
  const catalogFile = path.join(scratch, 'catalog.yaml');
  fs.writeFileSync(catalogFile, stringify(catalog));
  const integrationId: string = catalog.integrations[0].id;
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const receiver = await startReceiver(port);
    closers.push(() => receiver.close());
    const { runtime } = await startInProcess(
      {
        STOREHOUSE_DATA_DIR: path.join(scratch, 'storehouse'),
        STOREHOUSE_BOOTSTRAP_TOKEN: `bench-${randomBase62(24)}`,
        STOREHOUSE_CATALOG: catalogFile,
        STOREHOUSE_WEBHOOK_CONCURRENCY: String(CONCURRENCY),
      },
      closers,
    );
    const { db } = runtime;
    const teamId = runtime.bootstrapped!.team.id;
    const payload = (i: number) => ({ installationId: `icfg_bench${i}`, memberId: `user${i}`, role: 'USER', team: { id: teamId } });
    const bodies = async (ids: string[]) =>
      (await db.query<{ body: string }>('SELECT body FROM webhook_events WHERE id = ANY($1) ORDER BY seq', [ids])).rows.map((r) => r.body);
    const bare = (body: string) =>
      fetch(webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-vercel-signature': signWebhook(body, SECRET) },
        body,
      }).then(async (response) => {
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`the receiver answered ${response.status}`);
      });

    // Latency, one at a time: Storehouse's (commit to arrival) alternating with the bare POST of the same body.
    const storehouseMs: number[] = [];
    const bareMs: number[] = [];
    for (let i = 0; i < LATENCY_ROUNDS + 10; i++) {
      let arrived: Promise<number> | undefined;
      // The id is known only inside the transaction; the arrival is awaited from before the commit.
      const eventId = await db.transaction(async (tx) => {
        const recorded = await recordWebhookEvent(tx, { integrationId, type: 'marketplace.member.changed', payload: payload(i), teamId });
        arrived = receiver.arrival(recorded!);
        return recorded!;
      });
      const committedAt = performance.now();
      const at = await arrived!;
      const [body] = await bodies([eventId]);
      const started = performance.now();
      await bare(body!);
      const bareTook = performance.now() - started;
      if (i >= 10) {
        // The first rounds warm both paths up.
        storehouseMs.push(at - committedAt);
        bareMs.push(bareTook);
      }
    }

    // Throughput: many events committed at once (one transaction), sent by the dispatcher from the commit on...
    const all = receiver.expectMore(THROUGHPUT_EVENTS);
    const ids = await db.transaction(async (tx) => {
      const recorded: string[] = [];
      for (let i = 0; i < THROUGHPUT_EVENTS; i++) {
        recorded.push((await recordWebhookEvent(tx, { integrationId, type: 'marketplace.member.changed', payload: payload(i), teamId }))!);
      }
      return recorded;
    });
    const throughputStarted = performance.now();
    await all;
    const storehouseSeconds = (performance.now() - throughputStarted) / 1000;
    await waitFor(async () => {
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_events WHERE status = 'pending'");
      return rows[0]!.n === 0;
    });
    // ...against the same bodies POSTed by a bare loop, as many at once.
    const sent = await bodies(ids);
    const bareAll = receiver.expectMore(sent.length);
    const bareStarted = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < sent.length) await bare(sent[next++]!);
      }),
    );
    await bareAll;
    const bareSeconds = (performance.now() - bareStarted) / 1000;
    if (receiver.badSignatures() > 0) throw new Error(`${receiver.badSignatures()} webhooks arrived with a bad signature`);

    const result: WebhookBenchResult = {
      latencyMedianMs: median(storehouseMs),
      latencyP99Ms: quantile(storehouseMs, 0.99),
      bareLatencyMedianMs: median(bareMs),
      bareLatencyP99Ms: quantile(bareMs, 0.99),
      latencyRatio: median(storehouseMs) / median(bareMs),
      deliveriesPerSecond: THROUGHPUT_EVENTS / storehouseSeconds,
      bareDeliveriesPerSecond: sent.length / bareSeconds,
      throughputRatio: THROUGHPUT_EVENTS / storehouseSeconds / (sent.length / bareSeconds),
    };
    log(
      `webhooks: commit to 2xx median ${result.latencyMedianMs.toFixed(2)} ms (p99 ${result.latencyP99Ms.toFixed(2)}) vs a bare POST ` +
        `${result.bareLatencyMedianMs.toFixed(2)} ms (p99 ${result.bareLatencyP99Ms.toFixed(2)}): ratio ${result.latencyRatio.toFixed(2)}`,
    );
    log(
      `webhooks: ${THROUGHPUT_EVENTS} events, ${Math.round(result.deliveriesPerSecond)} deliveries/s from their commit vs a bare loop ` +
        `${Math.round(result.bareDeliveriesPerSecond)}/s (${CONCURRENCY} at once): ratio ${result.throughputRatio.toFixed(2)}`,
    );
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not done within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Run on its own: node --import tsx bench/webhooks.ts
if (process.argv[1]?.endsWith('/bench/webhooks.ts')) {
  const result = await benchWebhooks((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
