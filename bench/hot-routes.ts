// The two hot reads of issue 12 alone, in about a minute instead of npm run bench's four:
// GET /v2/user and GET /v1/storage/stores/{id} on the embedded default, against a bare Fastify
// route serving the same JSON, measured as npm run bench measures them (10 connections, 1 s
// warm-up + 5 s measured, rounds alternating between targets, medians).
//
//   node --import tsx bench/hot-routes.ts [--rounds N] [--duration S] [--cpu-prof DIR] [--only user|store]
//                                         [--emulate] [name=path/to/main.js ...]
//
// Each name=path is a Storehouse build to measure (default: current=dist/main.js, so run npm run
// build first), each on an empty data dir of its own; several builds are measured in the same
// alternating rounds, so a build before a change and one after it compare on the same machine
// at the same time. --cpu-prof DIR starts them with node --cpu-prof (a .cpuprofile per build in
// DIR, written when it stops). --emulate adds emulate 0.8.0's own GET /v2/user, as npm run bench
// installs and loads it (bench/emulate.ts). Prints a line per run, then medians and ratios, then
// one JSON line.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import autocannon from 'autocannon';
import type { Result as CannonResult } from 'autocannon';
import { HOST, makeTempDir, request, ROOT, spawnTracked, stop, stopEverything, waitFor200, type Spawned } from './children.ts';
import { auth, createStore, openApi, TOKEN, type Server } from './embedded.ts';
import { emulateTokens, emulateUrl, startEmulate } from './emulate.ts';
import { freePort, median } from './measure.ts';

const CONNECTIONS = 10;
const WARMUP_S = 1;

const log = (line: string) => process.stdout.write(`${line}\n`);

interface Options {
  rounds: number;
  durationS: number;
  cpuProfDir: string | undefined;
  only: 'user' | 'store' | undefined;
  emulate: boolean;
  builds: Array<{ name: string; entry: string }>;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { rounds: 3, durationS: 5, cpuProfDir: undefined, only: undefined, emulate: false, builds: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--rounds') options.rounds = Number(value());
    else if (arg === '--duration') options.durationS = Number(value());
    else if (arg === '--cpu-prof') options.cpuProfDir = path.resolve(value());
    else if (arg === '--emulate') options.emulate = true;
    else if (arg === '--only') {
      const only = value();
      if (only !== 'user' && only !== 'store') throw new Error('--only takes user or store');
      options.only = only;
    } else if (/^[\w.-]+=/.test(arg)) {
      const at = arg.indexOf('=');
      options.builds.push({ name: arg.slice(0, at), entry: path.resolve(arg.slice(at + 1)) });
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (options.builds.length === 0) options.builds.push({ name: 'current', entry: path.join(ROOT, 'dist/main.js') });
  return options;
}

/** The embedded default as the main bench starts it (bench/embedded.ts), from any build. */
async function startBuild(entry: string, cpuProfDir: string | undefined, name: string): Promise<Server> {
  const dataDir = await makeTempDir('storehouse-hot-');
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST,
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
    LOG_LEVEL: 'warn',
    STOREHOUSE_RATE_LIMIT_REQUESTS: '1000000000',
    STOREHOUSE_RATE_LIMIT_STORE_CREATES: '1000000000',
  };
  for (const variable of ['DATABASE_URL', 'STOREHOUSE_POSTGRES_ADMIN_URL', 'STOREHOUSE_REDIS_ADMIN_URL', 'REDIS_URL']) delete env[variable];
  delete env.STOREHOUSE_EMBEDDED_POSTGRES_PORT;
  const args = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `${name}.cpuprofile`, entry] : [entry];
  const started = performance.now();
  const proc = spawnTracked(process.execPath, args, env);
  try {
    await waitFor200(proc, port, '/healthz');
  } catch (error) {
    await stop(proc).catch(() => undefined);
    throw error;
  }
  return { ...proc, port, dataDir, startupMs: performance.now() - started };
}

async function startBare(routes: Record<string, string>): Promise<Spawned & { port: number }> {
  const dir = await makeTempDir('storehouse-hot-bare-');
  const routesFile = path.join(dir, 'routes.json');
  await writeFile(routesFile, JSON.stringify(routes));
  const port = await freePort();
  const proc = spawnTracked(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/bare-server.ts')], {
    ...process.env,
    PORT: String(port),
    HOST,
    BENCH_ROUTES_FILE: routesFile,
  });
  await waitFor200(proc, port, Object.keys(routes)[0]!);
  return { ...proc, port };
}

async function body(port: number, urlPath: string): Promise<string> {
  const response = await request(port, 'GET', urlPath, 30_000, auth);
  if (response.status !== 200) throw new Error(`GET ${urlPath} answered ${response.status}: ${response.body.slice(0, 300)}`);
  return response.body;
}

async function cannon(url: string, durationS: number, token: () => string = () => TOKEN): Promise<CannonResult> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: durationS,
    // As bench/run.ts sends them: every request through a setupRequest that sets the header.
    requests: [{ method: 'GET', setupRequest: (r) => ({ ...r, headers: { ...r.headers, authorization: `Bearer ${token()}` } }) }],
    renderProgressBar: false,
    renderResultsTable: false,
    renderLatencyTable: false,
  });
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(
      `load run against ${url} was not clean: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`,
    );
  }
  return result;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const servers: Array<{ name: string; server: Server; paths: { user: string; store: string } }> = [];
  try {
    for (const build of options.builds) {
      const server = await startBuild(build.entry, options.cpuProfDir, build.name);
      const api = await openApi(server);
      const storeId = await createStore(api, 'hot-routes');
      servers.push({ name: build.name, server, paths: { user: '/v2/user', store: `/v1/storage/stores/${storeId}` } });
      log(`${build.name}: ${build.entry} on port ${server.port}, started in ${Math.round(server.startupMs)} ms`);
    }
    // Every build serves the same bodies but for the store's id: the bare server serves the first build's.
    const first = servers[0]!;
    const userBody = await body(first.server.port, first.paths.user);
    const storeBody = await body(first.server.port, first.paths.store);
    const bare = await startBare({ [first.paths.user]: userBody, [first.paths.store]: storeBody });
    const targets: Array<{ name: string; url: string; token?: () => string; runs: number[] }> = [];
    const routes = (['user', 'store'] as const).filter((route) => !options.only || options.only === route);
    for (const route of routes) {
      for (const { name, server, paths } of servers) {
        targets.push({ name: `${name} ${route}`, url: `http://${HOST}:${server.port}${paths[route]}`, runs: [] });
      }
      targets.push({ name: `bare ${route}`, url: `http://${HOST}:${bare.port}${first.paths[route]}`, runs: [] });
      if (route === 'user' && options.emulate) {
        const emulate = await startEmulate(log);
        if ('skipped' in emulate) log(`emulate: SKIPPED, ${emulate.skipped}`);
        else targets.push({ name: 'emulate user', url: emulateUrl(emulate), token: emulateTokens(), runs: [] });
      }
    }
    log(`${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${options.durationS} s measured, ${options.rounds} alternating rounds`);
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of targets) {
        await cannon(target.url, WARMUP_S, target.token);
        const result = await cannon(target.url, options.durationS, target.token);
        target.runs.push(result.requests.average);
        log(
          `  round ${round} ${target.name.padEnd(24)} ${String(Math.round(result.requests.average)).padStart(6)} req/s  p99 ${result.latency.p99} ms`,
        );
      }
    }
    const medians = Object.fromEntries(targets.map((t) => [t.name, Math.round(median(t.runs))]));
    log('medians:');
    for (const route of routes) {
      const bareMedian = medians[`bare ${route}`]!;
      log(`  bare ${route}: ${bareMedian} req/s`);
      if (route === 'user' && medians['emulate user']) log(`  emulate user: ${medians['emulate user']} req/s`);
      for (const { name } of servers) {
        const rps = medians[`${name} ${route}`]!;
        const emulateMedian = route === 'user' ? medians['emulate user'] : undefined;
        const vsEmulate = emulateMedian ? `, ${(rps / emulateMedian).toFixed(2)}x emulate` : '';
        log(`  ${name} ${route}: ${rps} req/s, ${(rps / bareMedian).toFixed(2)}x bare${vsEmulate}`);
      }
    }
    log(JSON.stringify({ medians, runs: Object.fromEntries(targets.map((t) => [t.name, t.runs.map(Math.round)])) }));
    await stop(bare);
  } finally {
    for (const { server } of servers) await stop(server).catch(() => undefined);
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`hot-routes failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await stopEverything();
}
