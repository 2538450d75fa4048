/**
 * How the benches load an HTTP route (bench/run.ts, bench/hot-routes.ts): autocannon runs of
 * CONNECTIONS connections, after a WARMUP_S warm-up, against Storehouse and against a bare Fastify
 * server (bench/bare-server.ts) serving the same bodies, the baseline measured in the same run.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import autocannon from 'autocannon';
import type { Result as CannonResult } from 'autocannon';
import { HOST, makeTempDir, ROOT, spawnTracked, stop, waitFor200, type Spawned } from './children.ts';
import { freePort } from './measure.ts';

export const CONNECTIONS = 10;
export const WARMUP_S = 1;

/** The bare Fastify baseline: each route path answers its body, as sent. */
export async function startBare(routes: Record<string, string>): Promise<Spawned & { port: number }> {
  const dir = await makeTempDir('storehouse-bench-bare-');
  const routesFile = path.join(dir, 'routes.json');
  await writeFile(routesFile, JSON.stringify(routes));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST, BENCH_ROUTES_FILE: routesFile };
  const proc = spawnTracked(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/bare-server.ts')], env);
  try {
    await waitFor200(proc, port, Object.keys(routes)[0]!);
  } catch (error) {
    await stop(proc).catch(() => undefined);
    throw error;
  }
  return { ...proc, port };
}

/**
 * One load run. Every target's requests go through the same setupRequest (which sets the
 * authorization header), so the load generator does the same work for each; emulate's rotates
 * its tokens (bench/emulate.ts), the others send Storehouse's. A run with an error, a timeout or
 * an answer other than 2xx fails.
 */
export async function cannon(url: string, durationS: number, token: () => string): Promise<CannonResult> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: durationS,
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${token()}` } }),
      },
    ],
    renderProgressBar: false,
    renderResultsTable: false,
    renderLatencyTable: false,
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `load run against ${url} was not clean: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx ` +
        `(status codes ${JSON.stringify(result.statusCodeStats)})`,
    );
  }
  return result;
}
