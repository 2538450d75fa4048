/**
 * The HTTP edges: requests that arrive slowly or never finish, odd methods, and values in the
 * query, path or body the database cannot hold. Every one gets a clear answer in Vercel's error
 * format, never a hang, an empty reply or a 500, and none of them keeps other requests waiting.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BACKENDS, errorOf, eventually, startServer, type TestServer } from './helpers.ts';

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
        const connections = () => new Promise<number>((resolve, reject) => server.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
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
        const stillWaiting = slow.filter((connection) => !connection.closed()).length;
        assert.equal(stillWaiting, 500, `the normal requests were answered while the slow ones waited (${Date.now() - started} ms)`);
        const answers = await Promise.all(slow.map((connection) => connection.answer));
        for (const answer of answers) assertVercelError(answer, 408, 'request_timeout');
      });
    });

    describe('methods', () => {
      it('CONNECT is a 405 in Vercel\'s format, not an empty reply', async () => {
        const answer = await raw(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
        assertVercelError(answer, 405, 'method_unknown');
        const path = await raw(port, 'CONNECT /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\n\r\n');
        assertVercelError(path, 405, 'method_unknown');
      });

      it('TRACE, PROPFIND and OPTIONS on a route are 405 with Allow; methods Node does not know (FOO, lowercase) are 405 too', async () => {
        for (const method of ['TRACE', 'PROPFIND', 'OPTIONS', 'PURGE']) {
          const answer = await raw(port, `${method} /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n`);
          assertVercelError(answer, 405, 'method_unknown');
          assert.match(answer.text, /\r\nallow: GET\r\n/i, answer.text);
        }
        for (const method of ['FOO', 'get', 'Post']) {
          const answer = await raw(port, `${method} /v1/storage/stores HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n`);
          assertVercelError(answer, 405, 'method_unknown');
        }
      });

      it('an odd method on an unknown path is a 404 in Vercel\'s format', async () => {
        const answer = await raw(port, 'PROPFIND /nowhere HTTP/1.1\r\nHost: storehouse\r\nConnection: close\r\n\r\n');
        assertVercelError(answer, 404, 'not_found');
      });
    });
  });
}
