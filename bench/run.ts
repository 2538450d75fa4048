// Storehouse benchmark, `npm run bench` (issue 12's figures, on the embedded default as
// `npm start` runs it): start-up, memory, creating Postgres stores, and the requests/s of
// GET /v2/user, GET /v1/storage/stores/{id} and the products endpoint, each against a baseline
// measured in the same run, alternating (the machine may be noisy: compare the ratios). Then the
// in-process benches: provisioning (bench/provision.ts), creates and lists (bench/stores.ts),
// partner creates (bench/partners.ts), `vercel integration add` (bench/cli.ts) and webhook
// deliveries (bench/webhooks.ts).
//
// Prints a human-readable report to stdout and, as the last line, one JSON object with every
// number. Exits 0 whether or not targets are met; non-zero only when something fails to run.
// Every child process (servers, their PostgreSQL) is stopped at the end, also on a failure.
import os from 'node:os';
import type { Result as CannonResult } from 'autocannon';
import { benchCliAdd } from './cli.ts';
import { descendants, HOST, runCommand, stop, stopEverything, treeMemory } from './children.ts';
import {
  benchCreates,
  benchMemory,
  benchStartup,
  getOk,
  openApi,
  startStorehouse,
  TARGETS,
  TOKEN,
  type Api,
  type CreateResult,
  type MemoryResult,
  type Server,
  type StartupResult,
} from './embedded.ts';
import { emulateTokens, emulateUrl, EMULATE_VERSION, startEmulate, type Emulate } from './emulate.ts';
import { cannon, CONNECTIONS, startBare, WARMUP_S } from './load.ts';
import { median } from './measure.ts';
import { benchPartners } from './partners.ts';
import { benchProvisioning, TARGET_PROVISION_RATIO } from './provision.ts';
import { benchStores } from './stores.ts';
import { benchWebhooks } from './webhooks.ts';

const LOAD_ROUNDS = 3;
const DURATION_S = 5;

const TARGET_EMULATE_RATIO = 3;
const TARGET_BARE_RATIO = 0.6;

const log = (line: string) => process.stdout.write(`${line}\n`);
const round = (value: number, digits = 0) => Number(value.toFixed(digits));
/** autocannon records latencies in whole milliseconds, so 0 means under 1 ms. */
const ms = (value: number) => (value === 0 ? '<1 ms' : `${value} ms`);
const mark = (met: boolean) => (met ? 'MET' : 'MISSED');

/** The bench's descendants but tsx's esbuild service (which transpiles the bench itself). */
const leftovers = () => descendants(process.pid).filter((p) => p.name !== 'esbuild');

interface LoadTarget {
  name: string;
  url: string;
  token: () => string;
  runs: CannonResult[];
}

interface LoadSummary {
  rpsMedian: number;
  p99MedianMs: number;
  rpsRuns: number[];
}

const summarize = (target: LoadTarget): LoadSummary => ({
  rpsMedian: round(median(target.runs.map((r) => r.requests.average)), 1),
  p99MedianMs: median(target.runs.map((r) => r.latency.p99)),
  rpsRuns: target.runs.map((r) => round(r.requests.average, 1)),
});

async function benchLoad(storehouse: Server, paths: { user: string; store: string; products: string }) {
  const bodies = {
    [paths.user]: await getOk(storehouse.port, paths.user),
    [paths.store]: await getOk(storehouse.port, paths.store),
    [paths.products]: await getOk(storehouse.port, paths.products),
  };
  for (const body of Object.values(bodies)) JSON.parse(body); // must be JSON
  const bare = await startBare(bodies);
  let emulate: Emulate | { skipped: string } | undefined;
  try {
    for (const [urlPath, body] of Object.entries(bodies)) {
      if ((await getOk(bare.port, urlPath)) !== body)
        throw new Error(`the bare server does not serve the same body as Storehouse on ${urlPath}`);
    }
    emulate = await startEmulate(log);
    if ('skipped' in emulate) log(`  emulate: SKIPPED, ${emulate.skipped}`);
    const fixed = () => TOKEN;
    const sh = (p: string) => `http://${HOST}:${storehouse.port}${p}`;
    const bareUrl = (p: string) => `http://${HOST}:${bare.port}${p}`;
    const targets: Record<string, LoadTarget> = {};
    const add = (name: string, url: string, token: () => string) => (targets[name] = { name, url, token, runs: [] });
    add('storehouse /v2/user', sh(paths.user), fixed);
    add('bare /v2/user', bareUrl(paths.user), fixed);
    if (!('skipped' in emulate)) add(`emulate ${EMULATE_VERSION} /v2/user`, emulateUrl(emulate), emulateTokens());
    add('storehouse /v1/storage/stores/{id}', sh(paths.store), fixed);
    add('bare /v1/storage/stores/{id}', bareUrl(paths.store), fixed);
    add('storehouse .../products', sh(paths.products), fixed);
    add('bare .../products', bareUrl(paths.products), fixed);
    log(`  ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s measured, ${LOAD_ROUNDS} alternating rounds`);
    for (let r = 0; r < LOAD_ROUNDS; r++) {
      for (const target of Object.values(targets)) {
        await cannon(target.url, WARMUP_S, target.token);
        const result = await cannon(target.url, DURATION_S, target.token);
        target.runs.push(result);
        log(
          `  round ${r + 1} ${target.name.padEnd(36)} ${String(round(result.requests.average)).padStart(6)} req/s  p99 ${ms(result.latency.p99)}`,
        );
      }
    }
    const afterLoad = treeMemory(storehouse.pid);
    const get = (name: string) => (targets[name] ? summarize(targets[name]) : undefined);
    return {
      afterLoadMb: afterLoad.totalMb,
      bodyBytes: Object.fromEntries(Object.entries(bodies).map(([p, b]) => [p, Buffer.byteLength(b)])),
      user: get('storehouse /v2/user')!,
      bareUser: get('bare /v2/user')!,
      emulateUser: get(`emulate ${EMULATE_VERSION} /v2/user`),
      emulateSkipped: 'skipped' in emulate ? emulate.skipped : undefined,
      store: get('storehouse /v1/storage/stores/{id}')!,
      bareStore: get('bare /v1/storage/stores/{id}')!,
      products: get('storehouse .../products')!,
      bareProducts: get('bare .../products')!,
    };
  } finally {
    if (emulate && !('skipped' in emulate)) await stop(emulate).catch(() => undefined);
    await stop(bare).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const benchStarted = performance.now();
  log(
    `Storehouse bench — node ${process.version}, ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}, load average ${os.loadavg()[0]!.toFixed(2)}`,
  );
  log('building (npm run build)...');
  await runCommand('npm', ['run', 'build', '--silent']);

  log('start-up to the first 200 of /healthz, alternating with the same PostgreSQL cluster started alone (src/db/postgres-server.ts)');
  const { result: startup, dataDir } = await benchStartup(log);

  const storehouse = await startStorehouse(dataDir);
  let memory: MemoryResult;
  let creates: CreateResult;
  let load: Awaited<ReturnType<typeof benchLoad>>;
  let api: Api | undefined;
  try {
    api = await openApi(storehouse);
    const productsPath = `/v1/integrations/configuration/${encodeURIComponent(api.installationId)}/products`;
    log(
      'memory: PSS of Storehouse and every process it started (its PostgreSQL, a redis-server, the lock helper), from /proc/<pid>/smaps_rollup',
    );
    const measured = await benchMemory(api, productsPath, log);
    memory = measured.result;
    log('creating Postgres stores through the API against raw CREATE ROLE + CREATE DATABASE on the same cluster, alternating');
    creates = await benchCreates(api, log);
    log('requests/s: Storehouse against a bare Fastify route serving the same JSON, and emulate serving its own GET /v2/user');
    load = await benchLoad(storehouse, { user: '/v2/user', store: `/v1/storage/stores/${measured.storeIds[0]}`, products: productsPath });
  } finally {
    api?.agent.destroy();
    await stop(storehouse).catch(() => undefined);
  }
  const left = leftovers();
  if (left.length > 0) throw new Error(`processes left after the API benches: ${JSON.stringify(left)}`);

  log('provisioning: the built-in providers against the raw work they wrap, alternating (medians of 20 after 2 warm-up rounds)');
  const provisioning = await benchProvisioning(log);
  log('stores: creates through the API alternating with raw provisions (medians of 20), then a list of 10,000 stores');
  const stores = await benchStores(log);
  log('partners: creates through a partner server alternating with the same provision sent to it directly (medians of 20)');
  const partners = await benchPartners(log);
  log('vercel integration add: the CLI against the same steps through @vercel/sdk, alternating (medians of 5), and vercel --version');
  const cli = await benchCliAdd(log);
  log('webhooks: commit to 2xx one at a time alternating with a bare POST (medians of 200), then 2000 events against a bare loop');
  const webhooks = await benchWebhooks(log);

  printSummary(startup, memory, creates, load, provisioning, stores, partners, cli, webhooks, benchStarted);
}

function printSummary(
  startup: StartupResult,
  memory: MemoryResult,
  creates: CreateResult,
  load: Awaited<ReturnType<typeof benchLoad>>,
  provisioning: Awaited<ReturnType<typeof benchProvisioning>>,
  stores: Awaited<ReturnType<typeof benchStores>>,
  partners: Awaited<ReturnType<typeof benchPartners>>,
  cli: Awaited<ReturnType<typeof benchCliAdd>>,
  webhooks: Awaited<ReturnType<typeof benchWebhooks>>,
  benchStarted: number,
): void {
  const num = (value: number, width = 6) => String(round(value)).padStart(width);
  const targets = {
    existingStart: startup.existingMedianMs <= TARGETS.existingStartMs,
    freshStart: startup.freshMedianMs <= TARGETS.freshStartMs,
    idleMemory: memory.idle.totalMb <= TARGETS.idleMemoryMb,
    perStore: memory.perStoreMb <= TARGETS.perStoreMb,
    createMedian: creates.apiMedianMs <= TARGETS.createMedianMs,
    createRatio: creates.ratio <= TARGETS.createRatio,
    concurrentCreates: creates.concurrentApiMedianMs <= TARGETS.concurrentCreatesMs,
  };
  const ratios = {
    userVsEmulate: load.emulateUser ? load.user.rpsMedian / load.emulateUser.rpsMedian : undefined,
    userVsBare: load.user.rpsMedian / load.bareUser.rpsMedian,
    storeVsBare: load.store.rpsMedian / load.bareStore.rpsMedian,
    productsVsBare: load.products.rpsMedian / load.bareProducts.rpsMedian,
  };
  const emulateLine = (ratio: number | undefined) =>
    ratio === undefined
      ? `emulate SKIPPED (${load.emulateSkipped})`
      : `${ratio.toFixed(2)}x emulate (target >= ${TARGET_EMULATE_RATIO}: ${mark(ratio >= TARGET_EMULATE_RATIO)})`;
  const bareLine = (ratio: number) => `${ratio.toFixed(2)}x bare (target >= ${TARGET_BARE_RATIO}: ${mark(ratio >= TARGET_BARE_RATIO)})`;

  log('');
  log('Summary (medians)');
  log(
    `start to first 200, existing data dir   ${num(startup.existingMedianMs)} ms  (its PostgreSQL alone ${round(startup.existingPostgresMedianMs)} ms; ` +
      `ratio ${(startup.existingMedianMs / startup.existingPostgresMedianMs).toFixed(2)})   target <= ${TARGETS.existingStartMs} ms: ${mark(targets.existingStart)}`,
  );
  log(
    `first start, empty data dir             ${num(startup.freshMedianMs)} ms  (its PostgreSQL alone, initdb + start ${round(startup.freshPostgresMedianMs)} ms; ` +
      `ratio ${(startup.freshMedianMs / startup.freshPostgresMedianMs).toFixed(2)})   target <= ${TARGETS.freshStartMs} ms: ${mark(targets.freshStart)}`,
  );
  const kinds = (m: MemoryResult['idle']) =>
    Object.entries(m.byKindMb)
      .map(([kind, mb]) => `${kind} ${mb.toFixed(1)}`)
      .join(', ');
  log(
    `idle memory (PSS, summed)               ${num(memory.idle.totalMb)} MB  (${kinds(memory.idle)})   target <= ${TARGETS.idleMemoryMb} MB: ${mark(targets.idleMemory)}`,
  );
  log(
    `${`with ${memory.stores} stores more`.padEnd(40)}${num(memory.withStores.totalMb)} MB  (${kinds(memory.withStores)}): ` +
      `${memory.perStoreMb.toFixed(2)} MB a store   target <= ${TARGETS.perStoreMb} MB: ${mark(targets.perStore)}`,
  );
  log(`after the load runs                     ${num(load.afterLoadMb)} MB`);
  log(
    `create a Postgres store (API)           ${creates.apiMedianMs.toFixed(1).padStart(6)} ms  (p95 ${creates.apiP95Ms.toFixed(1)})   target <= ${TARGETS.createMedianMs} ms: ${mark(targets.createMedian)}`,
  );
  log(
    `  vs raw CREATE ROLE + CREATE DATABASE  ${creates.rawMedianMs.toFixed(1).padStart(6)} ms  (p95 ${creates.rawP95Ms.toFixed(1)}): ratio ${creates.ratio.toFixed(2)}   target <= ${TARGETS.createRatio}: ${mark(targets.createRatio)}`,
  );
  log(
    `${creates.concurrent} concurrent creates (API), wall time  ${num(creates.concurrentApiMedianMs)} ms  (raw ${round(creates.concurrentRawMedianMs)} ms; ` +
      `ratio ${(creates.concurrentApiMedianMs / creates.concurrentRawMedianMs).toFixed(2)})   target <= ${TARGETS.concurrentCreatesMs} ms: ${mark(targets.concurrentCreates)}`,
  );
  const rps = (name: string, s: { rpsMedian: number; p99MedianMs: number }) =>
    log(`${name.padEnd(44)}${num(s.rpsMedian)} req/s  p99 ${ms(s.p99MedianMs)}`);
  rps('GET /v2/user                 storehouse', load.user);
  rps('GET /v2/user                 bare', load.bareUser);
  if (load.emulateUser) rps(`GET /v2/user                 emulate ${EMULATE_VERSION}`, load.emulateUser);
  rps('GET /v1/storage/stores/{id}  storehouse', load.store);
  rps('GET /v1/storage/stores/{id}  bare', load.bareStore);
  rps('GET .../products             storehouse', load.products);
  rps('GET .../products             bare', load.bareProducts);
  log(`GET /v2/user: ${emulateLine(ratios.userVsEmulate)}; ${bareLine(ratios.userVsBare)}`);
  // Against bare only: emulate serves no /v1/storage/stores/{id} (its /v2/user is another route's baseline).
  log(`GET /v1/storage/stores/{id}: ${bareLine(ratios.storeVsBare)}`);
  log(`GET .../products: ${bareLine(ratios.productsVsBare)}`);
  for (const p of provisioning) {
    log(
      `provision ${p.provider.padEnd(8)} (${p.server}) median ${p.storehouseMedianMs.toFixed(1)} ms (p95 ${p.storehouseP95Ms.toFixed(1)}) vs raw ${p.rawMedianMs.toFixed(1)} ms (p95 ${p.rawP95Ms.toFixed(1)}): ` +
        `ratio ${p.ratio.toFixed(2)}  (target <= ${TARGET_PROVISION_RATIO}: ${mark(p.targetMet)})`,
    );
  }
  for (const c of stores.create) {
    log(
      `create ${c.product.padEnd(8)} in process, median ${c.createMedianMs.toFixed(1)} ms (p95 ${c.createP95Ms.toFixed(1)}) vs raw provision ${c.rawMedianMs.toFixed(1)} ms (p95 ${c.rawP95Ms.toFixed(1)}): ratio ${c.ratio.toFixed(2)}`,
    );
  }
  log(
    `list of ${stores.list.stores} stores: page of 100 median ${stores.list.pageMedianMs.toFixed(1)} ms (p95 ${stores.list.pageP95Ms.toFixed(1)}) vs the service's list ${stores.list.serviceMedianMs.toFixed(1)} ms: ratio ${stores.list.ratio.toFixed(2)}; all ${stores.list.pages} pages ${round(stores.list.fullWalkMs)} ms`,
  );
  log(
    `create through partner (${partners.partnerBackend}) median ${partners.createMedianMs.toFixed(1)} ms (p95 ${partners.createP95Ms.toFixed(1)}) vs direct to the partner ${partners.directMedianMs.toFixed(1)} ms (p95 ${partners.directP95Ms.toFixed(1)}): ratio ${partners.ratio.toFixed(2)}`,
  );
  log(
    `change through partner median ${partners.updateMedianMs.toFixed(1)} ms vs direct to the partner ${partners.directUpdateMedianMs.toFixed(1)} ms: ratio ${partners.updateRatio.toFixed(2)}`,
  );
  log(
    `vercel integration add median ${round(cli.cliAddMedianMs)} ms vs the same steps through @vercel/sdk ${round(cli.sdkStepsMedianMs)} ms: ratio ${cli.ratio.toFixed(2)}; ` +
      `vercel --version ${round(cli.cliVersionMedianMs)} ms (without it: ratio ${cli.ratioWithoutStartup.toFixed(2)})`,
  );
  log(
    `webhook commit to 2xx median ${webhooks.latencyMedianMs.toFixed(2)} ms (p99 ${webhooks.latencyP99Ms.toFixed(2)}) vs a bare POST ${webhooks.bareLatencyMedianMs.toFixed(2)} ms (p99 ${webhooks.bareLatencyP99Ms.toFixed(2)}): ratio ${webhooks.latencyRatio.toFixed(2)}`,
  );
  log(
    `webhook deliveries ${round(webhooks.deliveriesPerSecond)}/s vs a bare loop ${round(webhooks.bareDeliveriesPerSecond)}/s: ratio ${webhooks.throughputRatio.toFixed(2)}`,
  );
  const benchSeconds = round((performance.now() - benchStarted) / 1000, 1);
  log(`bench took ${benchSeconds} s`);

  const r1 = (values: number[]) => values.map((v) => round(v, 1));
  log(
    JSON.stringify({
      node: process.version,
      cpus: os.cpus().length,
      startup: {
        freshMedianMs: round(startup.freshMedianMs, 1),
        freshPostgresMedianMs: round(startup.freshPostgresMedianMs, 1),
        existingMedianMs: round(startup.existingMedianMs, 1),
        existingPostgresMedianMs: round(startup.existingPostgresMedianMs, 1),
        freshRunsMs: r1(startup.freshRunsMs),
        freshPostgresRunsMs: r1(startup.freshPostgresRunsMs),
        existingRunsMs: r1(startup.existingRunsMs),
        existingPostgresRunsMs: r1(startup.existingPostgresRunsMs),
      },
      memory: { ...memory, afterLoadMb: round(load.afterLoadMb, 1) },
      creates,
      load,
      ratios,
      targets: {
        ...targets,
        userVsEmulate: ratios.userVsEmulate === undefined ? 'skipped' : ratios.userVsEmulate >= TARGET_EMULATE_RATIO,
        userVsBare: ratios.userVsBare >= TARGET_BARE_RATIO,
        storeVsBare: ratios.storeVsBare >= TARGET_BARE_RATIO,
        productsVsBare: ratios.productsVsBare >= TARGET_BARE_RATIO,
      },
      provisioning,
      stores,
      partners,
      cli,
      webhooks,
      benchSeconds,
    }),
  );
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await stopEverything();
  // The in-process benches' PostgreSQL servers are the bench's own children: none may be left.
  const left = leftovers();
  if (left.length > 0) {
    process.stderr.write(`bench: processes still running at the end, killed: ${JSON.stringify(left)}\n`);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    process.exitCode = 1;
  }
}
