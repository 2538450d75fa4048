// The two hot reads of issue 12 alone, in about a minute instead of npm run bench's four:
// GET /v2/user and GET /v1/storage/stores/{id} on the embedded default, against a bare Fastify
// route serving the same JSON, measured as npm run bench measures them (10 connections, 1 s
// warm-up + 5 s measured, rounds alternating between targets, medians).
//
//   node --import tsx bench/hot-routes.ts [--rounds N] [--duration S] [--cpu-prof DIR] [--only user|store]
//                                         [--emulate] [name=path/to/main.js ...]
//
// Each name=path is a Storehouse build to measure (default: current=dist/storehouse.js, so run npm run
// build first), each on an empty data dir of its own; several builds are measured in the same
// alternating rounds, so a build before a change and one after it compare on the same machine
// at the same time. --cpu-prof DIR starts them with node --cpu-prof (a .cpuprofile per build in
// DIR, written when it stops). --emulate adds emulate 0.8.0's own GET /v2/user, as npm run bench
// installs and loads it (bench/emulate.ts). Prints a line per run, then medians and ratios, then
// one JSON line.
import path from 'node:path';
import { HOST, makeTempDir, ROOT, stop, stopEverything } from './children.ts';
import { createStore, getOk, openApi, startStorehouse, TOKEN, type Server } from './embedded.ts';
import { emulateTokens, emulateUrl, startEmulate } from './emulate.ts';
import { cannon, CONNECTIONS, startBare, WARMUP_S } from './load.ts';
import { median } from './measure.ts';

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
  if (options.builds.length === 0) options.builds.push({ name: 'current', entry: path.join(ROOT, 'dist/storehouse.js') });
  return options;
}

/** The embedded default as the main bench starts it (bench/embedded.ts), from any build. */
async function startBuild(entry: string, cpuProfDir: string | undefined, name: string): Promise<Server> {
  const nodeArgs = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `${name}.cpuprofile`] : [];
  return startStorehouse(await makeTempDir('storehouse-hot-'), { entry, nodeArgs });
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
    const userBody = await getOk(first.server.port, first.paths.user);
    const storeBody = await getOk(first.server.port, first.paths.store);
    const bare = await startBare({ [first.paths.user]: userBody, [first.paths.store]: storeBody });
    const fixed = () => TOKEN;
    const targets: Array<{ name: string; url: string; token: () => string; runs: number[] }> = [];
    const routes = (['user', 'store'] as const).filter((route) => !options.only || options.only === route);
    for (const route of routes) {
      for (const { name, server, paths } of servers) {
        targets.push({ name: `${name} ${route}`, url: `http://${HOST}:${server.port}${paths[route]}`, token: fixed, runs: [] });
      }
      targets.push({ name: `bare ${route}`, url: `http://${HOST}:${bare.port}${first.paths[route]}`, token: fixed, runs: [] });
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
