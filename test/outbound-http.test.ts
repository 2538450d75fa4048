/**
 * What Storehouse's calls to servers it does not run must never do (src/outbound/outbound-http.ts):
 * follow a redirect (the request, an install upsert's access token with it, would go wherever the
 * partner points), read an answer without bound, or put a remote body into its own messages
 * beyond a short, sanitised excerpt. Against a partner server made here, answering as each test
 * says, and a second origin that records what reaches it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { hashToken } from '../src/ids.ts';
import { excerpt } from '../src/outbound/outbound-http.ts';
import { PLANS } from '../src/partner-server/plans.ts';
import { eventually, sdkFailure, startServer, type TestServer } from './helpers.ts';
import { writePartnerCatalog } from './partner-fixtures.ts';

interface Recorded {
  method: string;
  url: string;
  body: string;
}

/** A server on a port of the kernel's, recording every request (with its body) before `handle` answers it. */
async function recordingServer(handle: (request: Recorded, response: http.ServerResponse) => void) {
  const requests: Recorded[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const recorded = { method: request.method ?? '', url: request.url ?? '', body: Buffer.concat(chunks).toString('utf8') };
      requests.push(recorded);
      handle(recorded, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const json = (response: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
};

const MAX_BODY_BYTES = 65_536;

describe('outbound calls: no redirects followed, answers capped, remote text excerpted', () => {
  /** How the partner answers a request it did not get a test's own handler for: the plans, else 404. */
  let partnerAnswers: (request: Recorded, response: http.ServerResponse) => void;
  let partner: Awaited<ReturnType<typeof recordingServer>>;
  let elsewhere: Awaited<ReturnType<typeof recordingServer>>;
  let server: TestServer;
  let catalogFile: string;
  let installationId: string;

  const plansAnswer = (request: Recorded, response: http.ServerResponse) => {
    if (request.method === 'GET' && request.url.startsWith('/v1/products/postgres/plans')) return json(response, 200, { plans: PLANS });
    json(response, 404, { error: { code: 'not_found', message: 'no such thing here' } });
  };
  const askPlans = () =>
    server.sdk().integrations.getBillingPlans({
      integrationIdOrSlug: 'acme',
      productIdOrSlug: 'postgres',
      integrationConfigurationId: installationId,
      metadata: JSON.stringify({ connectionLimit: 5 }),
    });
  const partnerCalls = (method: string, pathPart: string) =>
    partner.requests.filter((r) => r.method === method && r.url.includes(pathPart));

  before(async () => {
    partner = await recordingServer((request, response) => partnerAnswers(request, response));
    elsewhere = await recordingServer((_request, response) => json(response, 200, { plans: PLANS }));
    catalogFile = writePartnerCatalog({ url: partner.url });
    server = await startServer('embedded', {
      catalogPath: catalogFile,
      env: { STOREHOUSE_OUTBOUND_MAX_BODY_BYTES: String(MAX_BODY_BYTES), STOREHOUSE_PARTNER_RETRIES: '0' },
    });
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    installationId = configurations[0]!.id!;
  });
  after(async () => {
    await server?.close();
    await partner?.close();
    await elsewhere?.close();
    if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
  });
  beforeEach(() => {
    partnerAnswers = plansAnswer;
  });

  test('a partner redirecting the plans call: a 502 naming the status, and nothing reaches the other origin', async () => {
    partnerAnswers = (request, response) => {
      response.writeHead(307, { location: `${elsewhere.url}${request.url}` });
      response.end('moved');
    };
    const before = partnerCalls('GET', '/plans').length;
    const failed = await sdkFailure(askPlans());
    assert.equal(failed.status, 502);
    assert.equal(failed.code, 'provider_redirect');
    assert.match(
      failed.message,
      /answered GET \/v1\/products\/postgres\/plans with 307, a redirect to http:\/\/127\.0\.0\.1:\d+\/v1\/products/,
    );
    assert.match(failed.message, /Storehouse follows none/);
    assert.equal(partnerCalls('GET', '/plans').length, before + 1, 'asked once: a redirect is not retried');
    assert.equal(elsewhere.requests.length, 0, 'the redirect was not followed');
  });

  test("a partner redirecting the install upsert: the installation's access token never reaches the other origin, and the create fails with a 502", async () => {
    partnerAnswers = (request, response) => {
      if (request.method === 'PUT' && request.url === `/v1/installations/${installationId}`) {
        response.writeHead(307, { location: `${elsewhere.url}/steal${request.url}` });
        return response.end();
      }
      plansAnswer(request, response);
    };
    const stores = async () =>
      (await server.runtime.db.query('SELECT 1 FROM stores WHERE installation_id = $1', [installationId])).rows.length;
    const storesBefore = await stores();
    const failed = await sdkFailure(
      server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'redirected-upsert',
          integrationConfigurationId: installationId,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        },
      }),
    );
    const [upsert] = partnerCalls('PUT', `/v1/installations/${installationId}`);
    assert.ok(upsert, 'the partner was sent the upsert');
    const token = (JSON.parse(upsert.body) as { credentials: { access_token: string } }).credentials.access_token;
    assert.ok(token);
    assert.ok(!elsewhere.requests.some((r) => r.body.includes(token)), 'the access token did not reach the other origin');
    assert.equal(elsewhere.requests.length, 0, 'nothing reached the other origin');

    assert.equal(failed.status, 502);
    assert.equal(failed.code, 'provider_redirect');
    assert.match(failed.message, new RegExp(`answered PUT /v1/installations/${installationId} with 307`));
    // The token minted for the refused upsert is gone, and nothing was created.
    const { rows } = await server.runtime.db.query('SELECT 1 FROM installation_tokens WHERE token_hash = $1', [hashToken(token)]);
    assert.equal(rows.length, 0, 'the refused upsert left no live token');
    assert.equal(partnerCalls('POST', '/resources').length, 0, 'no provision followed the refused upsert');
    assert.equal(await stores(), storesBefore, 'no store was left behind');
  });

  test('an answer larger than STOREHOUSE_OUTBOUND_MAX_BODY_BYTES: a 502 saying so, whether its length is declared or not', async () => {
    // Valid plans, padded past the limit (unknown fields are ignored): declared in content-length.
    partnerAnswers = (_request, response) => json(response, 200, { plans: PLANS, padding: 'x'.repeat(MAX_BODY_BYTES * 2) });
    const declared = await sdkFailure(askPlans());
    assert.equal(declared.status, 502);
    assert.equal(declared.code, 'provider_invalid_response');
    assert.match(declared.message, new RegExp(`answer to GET /v1/products/postgres/plans is larger than ${MAX_BODY_BYTES} bytes`));
    assert.match(declared.message, /STOREHOUSE_OUTBOUND_MAX_BODY_BYTES/);
    assert.ok(!declared.message.includes('xxxxxxxx'), 'nothing of the body is quoted');
  });

  test('an endless answer: Storehouse stops reading past the limit and drops the connection', async () => {
    const endless = { written: 0, closed: false, finished: false };
    const total = 1024 * 1024 * 1024; // far more than any buffer on the way holds
    partnerAnswers = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length declared
      const chunk = Buffer.alloc(64 * 1024, ' ');
      response.write('{"plans":[');
      const pump = () => {
        while (!endless.closed && endless.written < total) {
          endless.written += chunk.length;
          if (!response.write(chunk)) return void response.once('drain', pump);
        }
        if (!endless.closed) {
          endless.finished = true;
          response.end(']}');
        }
      };
      response.on('close', () => {
        endless.closed = true;
      });
      pump();
    };
    const failed = await sdkFailure(askPlans());
    assert.equal(failed.status, 502);
    assert.equal(failed.code, 'provider_invalid_response');
    assert.match(failed.message, /is larger than 65536 bytes/);
    await eventually('the partner to see its connection dropped', async () => endless.closed, 30_000);
    assert.equal(endless.finished, false, 'the answer was never read to its end');
    // What socket buffers on the way hold (a few MiB on loopback), not the GiB the partner meant to send.
    assert.ok(endless.written < 64 * 1024 * 1024, `the partner wrote ${endless.written} bytes before Storehouse hung up`);
  });

  test("a partner's error text reaches Storehouse's message only as a short excerpt, without control characters", async () => {
    const long = `\u001b[2J\u0007first line\r\n{"level":50,"msg":"forged log line"}\u202e${'y'.repeat(10_000)}THE-END`;
    const controls = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

    // A JSON error body (a 403: the provider's failure, 502), its code and message both hostile.
    partnerAnswers = (_request, response) => json(response, 403, { error: { code: 'forbidden\u001b[31m', message: long } });
    const refused = await sdkFailure(askPlans());
    assert.equal(refused.status, 502);
    assert.equal(refused.code, 'provider_refused');
    assert.match(refused.message, /with 403 \(first line \{"level":50,"msg":"forged log line"\}y+…\)$/);
    assert.doesNotMatch(refused.message, controls);
    assert.ok(!refused.message.includes('THE-END'), 'the rest of the remote text is not quoted');
    assert.ok(!refused.message.includes('forbidden'), 'a code that is not one is not quoted');
    assert.ok(refused.message.length < 400, `the message is ${refused.message.length} characters`);

    // A plain-text 5xx.
    partnerAnswers = (_request, response) => {
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(long);
    };
    const broken = await sdkFailure(askPlans());
    assert.equal(broken.status, 502);
    assert.equal(broken.code, 'provider_error');
    assert.match(broken.message, /with 500 \("first line/);
    assert.doesNotMatch(broken.message, controls);
    assert.ok(!broken.message.includes('THE-END'));
    assert.ok(broken.message.length < 400, `the message is ${broken.message.length} characters`);

    // A provision refused with a 400 keeps its status and the partner's fields (a few, each
    // excerpted); a code that is not one is not the answer's.
    partnerAnswers = (request, response) => {
      if (request.method === 'PUT') return void response.writeHead(204).end(); // the install upsert
      if (request.method === 'POST' && request.url.endsWith('/resources'))
        return json(response, 400, {
          error: {
            code: `bad code ${'z'.repeat(100)}`,
            message: long,
            // 40 fields of 1,000 characters: the body stays under the limit (an error past it is not read).
            fields: Array.from({ length: 40 }, (_, i) => ({ key: `field${i}\u0000`, message: `\u0007${'w'.repeat(1000)}THE-END` })),
          },
        });
      plansAnswer(request, response);
    };
    const invalid = await sdkFailure(
      server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'refused-with-fields',
          integrationConfigurationId: installationId,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        },
      }),
    );
    assert.equal(invalid.status, 400, invalid.message);
    assert.equal(invalid.code, 'validation_error');
    assert.match(invalid.message, /with 400 \(first line/);
    assert.doesNotMatch(invalid.message, controls);
    assert.ok(!invalid.message.includes('THE-END') && !invalid.message.includes('zzz'));
    const fields = invalid.body.error.fields as Array<{ key: string; message: string }>;
    assert.equal(fields.length, 20, 'at most 20 fields are passed on');
    assert.equal(fields[0]!.key, 'field0');
    for (const field of fields) {
      assert.doesNotMatch(field.key + field.message, controls);
      assert.ok(field.message.length <= 200 && !field.message.includes('THE-END'));
    }
  });
});

describe('excerpt', () => {
  test('strips control characters and direction overrides, folds whitespace, and cuts at the limit with an ellipsis', () => {
    assert.equal(excerpt('  a\r\n\tb \u0000\u001b[31mc\u007f\u009b\u202ed\u2028 '), 'a b cd');
    assert.equal(excerpt('short'), 'short');
    assert.equal(excerpt('x'.repeat(500)), `${'x'.repeat(199)}…`);
    assert.equal(excerpt('abcdef', 4), 'abc…');
    // Cut by code point: an emoji is never split into half a surrogate pair.
    assert.equal(excerpt('😀😀😀😀', 3), '😀😀…');
    assert.equal(excerpt(''), '');
  });
});
