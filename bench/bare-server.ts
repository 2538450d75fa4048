// Baseline for the bench: a bare Fastify server with one GET route that sends a fixed,
// pre-serialized JSON body. Env: BENCH_BODY_FILE (path of the JSON to serve), PORT, HOST,
// BENCH_ROUTE (route path; defaults to the products path so URLs are the same length).
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const bodyFile = process.env.BENCH_BODY_FILE;
if (!bodyFile) {
  process.stderr.write('bare-server: BENCH_BODY_FILE is required\n');
  process.exit(1);
}
const body = readFileSync(bodyFile, 'utf8');
const port = Number(process.env.PORT ?? '0');
const host = process.env.HOST ?? '127.0.0.1';
const route = process.env.BENCH_ROUTE ?? '/v1/integrations/configuration/:id/products';

const app = Fastify({ logger: false });
app.get(route, async (_request, reply) => {
  return reply.header('content-type', 'application/json; charset=utf-8').send(body);
});

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

await app.listen({ port, host });
