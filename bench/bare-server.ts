// Baseline for the bench: a bare Fastify server whose GET routes send fixed, pre-serialized JSON
// bodies. Env: BENCH_ROUTES_FILE (a JSON object: route path -> the body to send on it), PORT, HOST.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const routesFile = process.env.BENCH_ROUTES_FILE;
if (!routesFile) {
  process.stderr.write('bare-server: BENCH_ROUTES_FILE is required\n');
  process.exit(1);
}
const routes = JSON.parse(readFileSync(routesFile, 'utf8')) as Record<string, string>;
const port = Number(process.env.PORT ?? '0');
const host = process.env.HOST ?? '127.0.0.1';

const app = Fastify({ logger: false });
for (const [route, body] of Object.entries(routes)) {
  app.get(route, async (_request, reply) => {
    return reply.header('content-type', 'application/json; charset=utf-8').send(body);
  });
}

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

await app.listen({ port, host });
