/**
 * The HTTP edges: requests that arrive slowly or never finish, odd methods, and values in the
 * query, path or body the database cannot hold. Every one gets a clear answer in Vercel's error
 * format, never a hang, an empty reply or a 500, and none of them keeps other requests waiting.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { errorsPlugin } from '../src/http/errors.ts';
import { BACKENDS, errorOf, eventually, startServer, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

interface RawAnswer {
  /** Everything the server sent before it closed the connection. */
  text: string;
  status: number | undefined;
  body: any;
  /** When the answer came, in ms after the request was sent. */
  ms: number;
}

function parseAnswer(text: string, ms: number): RawAnswer {
  const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
  const bodyText = text.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    body = undefined;
  }
  return { text, status: status === undefined ? undefined : Number(status), body, ms };
}

/** Opens a raw connection and writes `payload`; `answer` settles when the server closes the connection. */
function rawConnection(port: number, payload: string) {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let sentAt = Date.now();
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => {});
  const connected = new Promise<void>((resolve) =>
    socket.once('connect', () => {
      sentAt = Date.now();
      socket.write(payload, () => resolve());
    }),
  );
  const answer = new Promise<RawAnswer>((resolve) => socket.once('close', () => resolve(parseAnswer(text, Date.now() - sentAt))));
  return { socket, connected, answer, closed: () => socket.closed };
}

/** One whole request on a connection the server is asked to close after answering. */
const raw = (port: number, payload: string) => rawConnection(port, payload).answer;

function assertVercelError(answer: RawAnswer, status: number, code: string) {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.body?.error?.code, code, answer.text);
  assert.equal(typeof answer.body?.error?.message, 'string', answer.text);
}

const REQUEST_TIMEOUT_MS = 4000;
const HEADERS_TIMEOUT_MS = 1500;
const KEEP_ALIVE_TIMEOUT_MS = 1000;

for (const backend of BACKENDS) {
  describe(`HTTP edges (${backend})`, { timeout: 180_000 }, () => {
    let server: TestServer;
    let port: number;

    before(async () => {
      server = await startServer(backend, {
        env: {
          STOREHOUSE_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
          STOREHOUSE_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
          STOREHOUSE_HTTP_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
        },
      });
      port = Number(new URL(server.url).port);
    });

    after(() => server?.close());

    const partialBody = () =>
      `POST /v11/projects HTTP/1.1\r\nHost: storehouse\r\nAuthorization: Bearer ${server.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":"w`;

    describe('slow clients', () => {
      it('a body that stops short of its Content-Length gets 408 request_timeout once the request timeout passes', async () => {
        const answer = await raw(port, partialBody());
        assertVercelError(answer, 408, 'request_timeout');
        assert.ok(answer.ms >= REQUEST_TIMEOUT_MS - 50, `answered after ${answer.ms} ms, before the timeout`);
        const projects = (await (await server.request('/v10/projects')).json()) as { projects: Array<{ name: string }> };
        assert.ok(!projects.projects.some((project) => project.name.startsWith('w')), 'nothing was created');
      });

      it('headers that never end get 408 after the headers timeout, and so does a connection that sends nothing', async () => {
        const [partial, silent] = await Promise.all([raw(port, 'GET /healthz HTTP/1.1\r\nHost: storehouse\r\n'), raw(port, '')]);
        for (const answer of [partial, silent]) {
          assertVercelError(answer, 408, 'request_timeout');
          assert.ok(answer.ms >= HEADERS_TIMEOUT_MS - 50 && answer.ms < REQUEST_TIMEOUT_MS, `answered after ${answer.ms} ms`);
        }
      });

      it('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
        const connection = rawConnection(port, 'GET /livez HTTP/1.1\r\nHost: storehouse\r\n\r\n');
        const answer = await connection.answer;
        assert.equal(answer.status, 200, answer.text);
        assert.match(answer.text, /keep-alive/i);
        assert.ok(answer.ms >= KEEP_ALIVE_TIMEOUT_MS - 50, `closed after ${answer.ms} ms`);
      });

      it('500 slow connections do not keep normal requests from being answered, and each gets its 408', async () => {
        const slow = Array.from({ length: 500 }, () => rawConnection(port, partialBody()));
        await Promise.all(slow.map((connection) => connection.connected));
        // Every slow connection is open on the server's side before the normal requests go.
        const connections = () =>
          new Promise<number>((resolve, reject) =>
            server.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
          );
        await eventually('the server holding the 500 slow connections', async () => (await connections()) >= 500, 30_000);
        const started = Date.now();
        for (let round = 0; round < 5; round++) {
          const answers = await Promise.all([
            server.request('/healthz'),
            server.request('/v1/storage/stores'),
            server.request('/v1/integrations/configurations?view=account'),
          ]);
          for (const response of answers) assert.equal(response.status, 200, await response.text());
        }
        // Answered while slow ones were still held: a server that served nobody else until the slow
        // ones timed out would have closed them all by now. (Not all 500: on a loaded machine the
        // first ones reach their short request timeout while the last ones are still connecting.)
        const stillWaiting = slow.filter((connection) => !connection.closed()).length;
        assert.ok(stillWaiting > 0, `the normal requests were answered while the slow ones waited (${Date.now() - started} ms)`);
        const answers = await Promise.all(slow.map((connection) => connection.answer));
        for (const answer of answers) assertVercelError(answer, 408, 'request_timeout');
      });
    });

    describe('methods', () => {
      it("CONNECT is a 405 in Vercel's format, not an empty reply", async () => {
        const answer = await raw(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
        assertVercelError(answer, 405, 'method_unknown');
        const path = await raw(port, 'CONNECT /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\n\r\n');
        assertVercelError(path, 405, 'method_unknown');
      });

      it('TRACE, PROPFIND and PURGE on a route are 405 with Allow; methods Node does not know (FOO, lowercase) are 405 too', async () => {
        for (const method of ['TRACE', 'PROPFIND', 'PURGE']) {
          const answer = await raw(port, `${method} /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n`);
          assertVercelError(answer, 405, 'method_unknown');
          assert.match(answer.text, /\r\nallow: GET, HEAD, OPTIONS\r\n/i, answer.text);
        }
        for (const method of ['FOO', 'get', 'Post']) {
          const answer = await raw(port, `${method} /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n`);
          assertVercelError(answer, 405, 'method_unknown');
        }
      });

      it('OPTIONS on a path that exists is 204 with Allow and no body, without a token; on one that does not, 404', async () => {
        const stores = await raw(port, 'OPTIONS /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assert.match(stores.text, /^HTTP\/1\.1 204 /, stores.text);
        assert.match(stores.text, /\r\nallow: GET, HEAD, OPTIONS\r\n/i, stores.text);
        assert.equal(stores.text.split('\r\n\r\n')[1], '', 'no body');
        const store = await raw(port, 'OPTIONS /v1/storage/stores/store_nope HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assert.match(store.text, /\r\nallow: GET, HEAD, PATCH, OPTIONS\r\n/i, store.text);
        const nowhere = await raw(port, 'OPTIONS /nowhere HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assertVercelError(nowhere, 404, 'not_found');
        // A segment longer than any id: 414 for OPTIONS as for the path's other methods.
        const long = await raw(
          port,
          `OPTIONS /v1/storage/stores/${'a'.repeat(600)} HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n`,
        );
        assertVercelError(long, 414, 'uri_too_long');
        // An empty segment where an id goes names no store, for OPTIONS as for every method.
        const noId = await raw(port, 'OPTIONS /v1/storage/stores/ HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assertVercelError(noId, 404, 'not_found');
        const noIdDelete = await raw(port, 'DELETE /v1/storage/stores/ HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assertVercelError(noIdDelete, 404, 'not_found');
      });

      it("an odd method on an unknown path is a 404 in Vercel's format", async () => {
        const answer = await raw(port, 'PROPFIND /nowhere HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assertVercelError(answer, 404, 'not_found');
      });
    });

    describe('integers in the query', () => {
      it('only plain decimal integers: hex, binary, exponents, blanks, signs and fractions are 400 naming the parameter', async () => {
        const refused: Array<[string, string]> = [
          ['/v1/storage/stores?limit=0x3', 'limit'],
          ['/v1/storage/stores?limit=0b11', 'limit'],
          ['/v1/storage/stores?limit=0o7', 'limit'],
          ['/v1/storage/stores?limit=1e1', 'limit'],
          ['/v1/storage/stores?limit=%2B3', 'limit'],
          ['/v1/storage/stores?limit=3.0', 'limit'],
          ['/v1/storage/stores?limit=', 'limit'],
          ['/v1/storage/stores?until=%20', 'until'],
          ['/v1/storage/stores?until=%203', 'until'],
          ['/v1/storage/stores?until=1e%2B23', 'until'],
          ['/v1/storage/stores?until=Infinity', 'until'],
          ['/v1/storage/stores?from=-0x10', 'from'],
          ['/v1/storage/stores?limit=2&limit=0x3', 'limit'],
          ['/v10/projects?limit=0x3', 'limit'],
          ['/_storehouse/audit?before=%20', 'before'],
        ];
        for (const [path, parameter] of refused) {
          const error = await errorOf(await server.request(path));
          assert.equal(error.status, 400, `${path}: ${JSON.stringify(error.body)}`);
          assert.equal(error.code, 'bad_request');
          assert.match(error.message, new RegExp(`query parameter "${parameter}"`), path);
        }
      });

      it("integers past what a bigint (or JavaScript) holds are 400 naming the parameter, not the database's words", async () => {
        for (const value of ['99999999999999999999', '-99999999999999999999', '9007199254740992']) {
          const error = await errorOf(await server.request(`/v1/storage/stores?until=${value}`));
          assert.equal(error.status, 400, JSON.stringify(error.body));
          assert.match(error.message, /query parameter "until": must be from -9007199254740991 to 9007199254740991/);
        }
      });

      it('plain decimal integers, negative ones included where the schema allows them, still work', async () => {
        for (const path of [
          '/v1/storage/stores?limit=3',
          '/v1/storage/stores?limit=003&until=9007199254740991',
          '/v1/storage/stores?until=-1',
          '/v10/projects?limit=5',
        ]) {
          const response = await server.request(path);
          assert.equal(response.status, 200, `${path}: ${await response.text()}`);
        }
        const below = await errorOf(await server.request('/v1/storage/stores?limit=-1'));
        assert.equal(below.status, 400);
        assert.match(below.message, /query parameter "limit"/);
      });
    });

    describe('values no route can store', () => {
      let installationId: string;
      before(async () => {
        const configurations = (await (await server.request('/v1/integrations/configurations?view=account')).json()) as Array<{
          id: string;
        }>;
        installationId = configurations[0]!.id;
      });

      const createStore = (body: Record<string, unknown>) =>
        server.request('/v1/storage/stores/integration/direct', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ integrationConfigurationId: installationId, integrationProductIdOrSlug: 'postgres', ...body }),
        });
      const storeNames = async () => {
        const { stores } = (await (await server.request('/v1/storage/stores?limit=100')).json()) as { stores: Array<{ name: string }> };
        return stores.map((store) => store.name).sort();
      };

      it('a NUL, a lone surrogate or a number past 2^53 anywhere in a body is a 400 naming the field, and nothing is created', async () => {
        const before = await storeNames();
        const cases: Array<[Record<string, unknown>, RegExp]> = [
          [{ name: 'nul\u0000name' }, /body field "name": must not contain a NUL/],
          [{ name: 'lone-\ud800' }, /body field "name": must be valid Unicode/],
          [{ name: 'ok-name', externalId: 'ext-\udfff' }, /body field "externalId": must be valid Unicode/],
          [{ name: 'ok-name', externalId: 'ext-\u0000' }, /body field "externalId": must not contain a NUL/],
          [{ name: 'ok-name', metadata: { region: 'x\ud83d' } }, /body field "metadata.region": must be valid Unicode/],
          [{ name: 'ok-name', metadata: { 'key\u0000': 'x' } }, /body field "metadata.key\\u0000": its name must not contain a NUL/],
          [{ name: 'ok-name', metadata: { list: ['a', '\ud800'] } }, /body field "metadata.list.1": must be valid Unicode/],
          [{ name: 'ok-name', prepaymentAmountCents: 1e23 }, /body field "prepaymentAmountCents": must be a number from/],
        ];
        for (const [body, message] of cases) {
          const response = await createStore(body);
          const error = await errorOf(response);
          assert.equal(error.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(error.body)}`);
          assert.equal(error.code, 'bad_request');
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /invalid input syntax|invalid byte sequence|out of range for type|type json/);
        }
        assert.deepEqual(await storeNames(), before, 'nothing was created');
        // Astral characters are well-formed pairs, not lone surrogates: kept as sent.
        const emoji = await createStore({ name: 'emoji-\u{1F600}', externalId: 'ext-\u{1F600}' });
        assert.equal(emoji.status, 200, await emoji.clone().text());
        const { store } = (await emoji.json()) as { store: { name: string; externalId?: string } };
        assert.equal(store.name, 'emoji-\u{1F600}');
      });

      it("a NUL in a path or query value is a 400 naming it, not the database's words", async () => {
        const path = await errorOf(await server.request('/v1/storage/stores/store_%00x'));
        assert.equal(path.status, 400, JSON.stringify(path.body));
        assert.match(path.message, /path parameter "id": must not contain a NUL/);
        const query = await errorOf(await server.request('/v1/storage/stores?teamId=team_%00'));
        assert.equal(query.status, 400, JSON.stringify(query.body));
        assert.match(query.message, /query parameter "teamId": must not contain a NUL/);
        // A route limited per team reads the team from the query first: the check comes before that too.
        const limited = await errorOf(
          await server.request('/v1/storage/stores/integration/direct?teamId=team_%00', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ name: 'nul-team' }),
          }),
        );
        assert.equal(limited.status, 400, JSON.stringify(limited.body));
        assert.match(limited.message, /query parameter "teamId": must not contain a NUL/);
      });

      it("a connection limit that is not whole is refused with the bounds of the product's metadataSchema (1 to 100), not the provider's own", async () => {
        const products = (await (await server.request(`/v1/integrations/configuration/${installationId}/products`)).json()) as {
          products: Array<{ slug: string; metadataSchema: { properties: Record<string, { minimum: number; maximum: number }> } }>;
        };
        const schema = products.products.find((product) => product.slug === 'postgres')!.metadataSchema.properties.connectionLimit!;
        const error = await errorOf(await createStore({ name: 'fractional-limit', metadata: { connectionLimit: 50.5 } }));
        assert.equal(error.status, 400, JSON.stringify(error.body));
        assert.equal(error.code, 'validation_error');
        assert.deepEqual(error.body.error.fields, [
          { key: 'metadata.connectionLimit', message: `must be a whole number from ${schema.minimum} to ${schema.maximum}` },
        ]);
        assert.equal(`${schema.minimum}-${schema.maximum}`, '1-100');
      });

      it('a name in a PATCH with a lone surrogate is refused the same way', async () => {
        const created = await createStore({ name: 'to-rename' });
        const { store } = (await created.json()) as { store: { id: string } };
        const error = await errorOf(
          await server.request(`/v1/storage/stores/${store.id}`, {
            method: 'PATCH',
            headers: { 'content-type': 'application/json' },
            body: '{"name":"bad\\ud800"}',
          }),
        );
        assert.equal(error.status, 400);
        assert.match(error.message, /body field "name": must be valid Unicode/);
        const after = (await (await server.request(`/v1/storage/stores/${store.id}`)).json()) as { store: { name: string } };
        assert.equal(after.store.name, 'to-rename');
      });
    });
  });
}

describe('the last resort for a value the database refused', () => {
  it("a PostgreSQL data exception (class 22) is a 400 without the database's words; a refused connection raised elsewhere is not a 503", async () => {
    const app = Fastify();
    await app.register(errorsPlugin);
    const raise = (fields: Record<string, unknown>) => async () => {
      throw Object.assign(new Error(String(fields.message)), fields);
    };
    app.get('/bigint', raise({ message: 'invalid input syntax for type bigint: "1e+23"', code: '22P02', severity: 'ERROR' }));
    app.get('/range', raise({ message: 'value "99999999999999999999" is out of range for type bigint', code: '22003', severity: 'ERROR' }));
    app.get('/json', raise({ message: 'invalid input syntax for type json', code: '22P02', severity: 'ERROR' }));
    // Not raised by the state database's pool (a provider's own connection, say): a bug to log, not "our database is down".
    app.get('/elsewhere', raise({ message: 'connect ECONNREFUSED 127.0.0.1:6379', code: 'ECONNREFUSED' }));
    try {
      for (const path of ['/bigint', '/range', '/json']) {
        const response = await app.inject(path);
        assert.equal(response.statusCode, 400, path);
        assert.deepEqual(response.json(), { error: { code: 'bad_request', message: 'A value in the request is not valid' } });
      }
      const elsewhere = await app.inject('/elsewhere');
      assert.equal(elsewhere.statusCode, 500);
      assert.doesNotMatch(elsewhere.body, /ECONNREFUSED/);
    } finally {
      await app.close();
    }
  });
});

describe('environment variable values from a partner', { timeout: 180_000 }, () => {
  let setup: StorehouseWithPartner;

  before(async () => {
    setup = await startStorehouseWithPartner({ env: { STOREHOUSE_PROVISION_TIMEOUT_MS: '30000', STOREHOUSE_PARTNER_TIMEOUT_MS: '30000' } });
  });
  after(() => setup?.close());

  it("a secret value with a lone surrogate or a NUL is a 400 naming it, and the connected project's variables stay as they were", async () => {
    const { server, installationId } = setup;
    const store = await setup.createStore('env-values');
    const upsert = setup.partnerCalls('PUT', `/v1/installations/${installationId}`)[0];
    const token = (upsert!.body as { credentials: { access_token: string } }).credentials.access_token;
    const project = await server.sdk().projects.createProject({ requestBody: { name: 'env-values-app' } });
    await server.sdk().integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: installationId,
      resourceId: store.externalResourceId!,
      requestBody: { projectId: project.id },
    });
    const variables = async () =>
      (await (await server.request(`/v10/projects/${project.id}/env?decrypt=true`)).json()) as {
        envs: Array<{ key: string; value?: string }>;
      };
    const before = await variables();
    assert.ok(before.envs.length > 0, "the store's secrets are the project's variables");
    for (const [value, problem] of [
      ['\ud800', /must be valid Unicode/],
      ['a\u0000b', /must not contain a NUL/],
    ] as const) {
      const response = await server.request(`/v1/installations/${installationId}/resources/${store.externalResourceId}/secrets`, {
        method: 'PUT',
        token,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          secrets: [
            { name: 'OK', value: 'fine' },
            { name: 'BAD', value },
          ],
        }),
      });
      const error = await errorOf(response);
      assert.equal(error.status, 400, JSON.stringify(error.body));
      assert.match(error.message, /body field "secrets\.1\.value"/);
      assert.match(error.message, problem);
    }
    assert.deepEqual(await variables(), before, 'nothing changed');
  });
});
