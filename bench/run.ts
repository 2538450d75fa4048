// Storehouse benchmark: start-up time, idle RSS, and throughput of the products endpoint
// against a bare Fastify baseline measured in the same run. `npm run bench`.
//
// Prints a human-readable report to stdout and, as the last line, one JSON object with every
// number. Exits 0 whether or not targets are met; non-zero only when something fails to run.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { benchProvisioning, TARGET_PROVISION_RATIO } from './provision.ts';
import { benchStores } from './stores.ts';
import { benchPartners } from './partners.ts';
import { freePort } from './measure.ts';
import type { Result as CannonResult } from 'autocannon';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'bench-token-0123456789abcdef';
const HOST = '127.0.0.1';

const FRESH_RUNS = 3;
const EXISTING_RUNS = 5;
const LOAD_ROUNDS = 3;
const CONNECTIONS = 10;
const DURATION_S = 5;
const WARMUP_S = 1.5;
const IDLE_MS = 2000;
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

const TARGET_EXISTING_STARTUP_MS = 1000;
const TARGET_IDLE_RSS_MB = 250;
const TARGET_RPS_RATIO = 0.6;

// ---------------------------------------------------------------------------------------------
// Child-process bookkeeping: every child is tracked so none outlives the bench.

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function killAllNow(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: got ${signal}, stopping children\n`);
    killAllNow();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}

interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Last few KB of the child's stdout+stderr, for diagnostics. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnTracked(command: string, args: string[], env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  if (child.pid === undefined) throw new Error(`cannot spawn ${command}`);
  return { child, pid: child.pid, output: () => tail, exited };
}

/** SIGTERM, then wait for the exit (SIGKILL if it takes longer than STOP_TIMEOUT_MS). */
async function stop(proc: Spawned): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timeout = sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const);
  const result = await Promise.race([proc.exited, timeout]);
  if (result === 'timeout') {
    proc.child.kill('SIGKILL');
    await proc.exited;
    throw new Error(`process ${proc.pid} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM`);
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

interface HttpResponse {
  status: number;
  body: string;
}

/** A single GET with its own connection (no keep-alive) and a per-request timeout. */
function get(port: number, urlPath: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: HOST, port, path: urlPath, headers, agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
  });
}

const auth = { authorization: `Bearer ${TOKEN}` };

async function getOk(port: number, urlPath: string): Promise<string> {
  const response = await get(port, urlPath, 10_000, auth);
  if (response.status !== 200) {
    throw new Error(`GET ${urlPath} answered ${response.status}: ${response.body.slice(0, 500)}`);
  }
  return response.body;
}

/** Polls `urlPath` every ~10 ms until it answers 200; fails if the process exits first. */
async function waitFor200(proc: Spawned, port: number, urlPath: string): Promise<void> {
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  const deadline = performance.now() + STARTUP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (exited) {
      throw new Error(
        `process exited before answering ${urlPath} (exit ${proc.child.exitCode ?? proc.child.signalCode}):\n${proc.output()}`,
      );
    }
    try {
      const response = await get(port, urlPath, 250);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
  throw new Error(`no 200 from ${urlPath} within ${STARTUP_TIMEOUT_MS} ms:\n${proc.output()}`);
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const round = (value: number, digits = 0) => Number(value.toFixed(digits));
const log = (line: string) => process.stdout.write(`${line}\n`);
/** autocannon records latencies in whole milliseconds, so 0 means under 1 ms. */
const ms = (value: number) => (value === 0 ? '<1 ms' : `${value} ms`);

async function runCommand(command: string, args: string[]): Promise<void> {
  const proc = spawnTracked(command, args, process.env);
  const { code, signal } = await proc.exited;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${code ?? signal}):\n${proc.output()}`);
}

// ---------------------------------------------------------------------------------------------
// The servers under test.

interface Server extends Spawned {
  port: number;
  /** Milliseconds from spawn to the first 200 on the readiness path. */
  startupMs: number;
}

async function startStorehouse(dataDir: string): Promise<Server> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST,
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
    LOG_LEVEL: 'warn',
    // The load runs send far more than a token's default 6,000 a minute; the limiter still counts each request.
    STOREHOUSE_RATE_LIMIT_REQUESTS: '1000000000',
  };
  delete env.DATABASE_URL; // always the embedded default
  const started = performance.now();
  const proc = spawnTracked(process.execPath, [path.join(ROOT, 'dist/main.js')], env);
  try {
    await waitFor200(proc, port, '/healthz');
  } catch (error) {
    await stop(proc).catch(() => undefined);
    throw error;
  }
  return { ...proc, port, startupMs: performance.now() - started };
}

async function startBare(bodyFile: string, route: string): Promise<Server> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST, BENCH_BODY_FILE: bodyFile };
  const started = performance.now();
  const proc = spawnTracked(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/bare-server.ts')], env);
  try {
    await waitFor200(proc, port, route);
  } catch (error) {
    await stop(proc).catch(() => undefined);
    throw error;
  }
  return { ...proc, port, startupMs: performance.now() - started };
}

async function cannon(url: string, durationS: number): Promise<CannonResult> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: durationS,
    headers: auth,
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

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const benchStarted = performance.now();
  log(`Storehouse bench — node ${process.version}, ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}`);

  log('building (npm run build)...');
  await runCommand('npm', ['run', 'build', '--silent']);

  // 1. Start-up to the first 200, fresh data dirs; RSS right after each fresh start.
  const freshMs: number[] = [];
  const freshRssMb: number[] = [];
  let dataDir: string | undefined;
  for (let i = 0; i < FRESH_RUNS; i++) {
    const dir = await makeTempDir('storehouse-bench-');
    const server = await startStorehouse(dir);
    const rss = await rssMb(server.pid);
    await stop(server);
    freshMs.push(server.startupMs);
    freshRssMb.push(rss);
    log(`  fresh start ${i + 1}/${FRESH_RUNS}: ${round(server.startupMs)} ms to first 200, RSS ${round(rss)} MB`);
    if (dataDir === undefined) dataDir = dir;
    else await removeTempDir(dir);
  }
  if (dataDir === undefined) throw new Error('no fresh run');

  // 1b. Start-up to the first 200 on the existing data dir.
  const existingMs: number[] = [];
  for (let i = 0; i < EXISTING_RUNS; i++) {
    const server = await startStorehouse(dataDir);
    await stop(server);
    existingMs.push(server.startupMs);
    log(`  existing-dir start ${i + 1}/${EXISTING_RUNS}: ${round(server.startupMs)} ms to first 200`);
  }

  // 2 & 3. One long-lived server on the existing dir: idle RSS, then load.
  const storehouse = await startStorehouse(dataDir);
  let bare: Server | undefined;
  let bodyDir: string | undefined;
  try {
    const configurations: unknown = JSON.parse(await getOk(storehouse.port, '/v1/integrations/configurations?view=account'));
    const first: unknown = Array.isArray(configurations) ? configurations[0] : undefined;
    const id = typeof first === 'object' && first !== null && 'id' in first && typeof first.id === 'string' ? first.id : undefined;
    if (id === undefined)
      throw new Error(
        `no configuration id in GET /v1/integrations/configurations?view=account: ${JSON.stringify(configurations).slice(0, 300)}`,
      );
    const productsPath = `/v1/integrations/configuration/${encodeURIComponent(id)}/products`;
    let productsBody = '';
    for (let i = 0; i < 5; i++) {
      productsBody = await getOk(storehouse.port, productsPath);
      await getOk(storehouse.port, '/healthz');
    }
    JSON.parse(productsBody); // must be JSON
    await sleep(IDLE_MS);
    const idleRssMb = await rssMb(storehouse.pid);
    log(`  idle RSS (existing data dir, after a few requests + ${IDLE_MS / 1000} s idle): ${round(idleRssMb)} MB`);

    // Baseline server serving the very same bytes, on the same path.
    bodyDir = await makeTempDir('storehouse-bench-body-');
    const bodyFile = path.join(bodyDir, 'products.json');
    await writeFile(bodyFile, productsBody);
    bare = await startBare(bodyFile, productsPath);
    const bareBody = await getOk(bare.port, productsPath);
    if (bareBody !== productsBody) throw new Error('the bare server does not serve the same body as the products endpoint');

    const storehouseUrl = `http://${HOST}:${storehouse.port}${productsPath}`;
    const bareUrl = `http://${HOST}:${bare.port}${productsPath}`;
    const runs: { storehouse: CannonResult[]; bare: CannonResult[] } = { storehouse: [], bare: [] };
    log(
      `load: ${CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s measured, ${LOAD_ROUNDS} alternating rounds; body ${productsBody.length} bytes`,
    );
    for (let round_ = 0; round_ < LOAD_ROUNDS; round_++) {
      for (const [name, url] of [
        ['storehouse', storehouseUrl],
        ['bare', bareUrl],
      ] as const) {
        await cannon(url, WARMUP_S);
        const result = await cannon(url, DURATION_S);
        runs[name].push(result);
        log(`  round ${round_ + 1} ${name.padEnd(10)} ${round(result.requests.average)} req/s  p99 ${ms(result.latency.p99)}`);
      }
    }
    const afterLoadRssMb = await rssMb(storehouse.pid);

    const storehouseRps = median(runs.storehouse.map((r) => r.requests.average));
    const storehouseP99 = median(runs.storehouse.map((r) => r.latency.p99));
    const bareRps = median(runs.bare.map((r) => r.requests.average));
    const bareP99 = median(runs.bare.map((r) => r.latency.p99));
    const ratio = storehouseRps / bareRps;

    await stop(bare);
    await stop(storehouse);

    log(`provisioning: ${'alternating raw work and Storehouse provisions, medians of 20 after 2 warm-up rounds'}`);
    const provisioning = await benchProvisioning(log);

    log('stores: creates through the API alternating with raw provisions (medians of 20), then a list of 10,000 stores');
    const stores = await benchStores(log);

    log('partners: creates through a partner server alternating with the same provision sent to it directly (medians of 20)');
    const partners = await benchPartners(log);

    const freshMedian = median(freshMs);
    const existingMedian = median(existingMs);
    const freshRssMedian = median(freshRssMb);
    const mark = (met: boolean) => (met ? 'MET' : 'MISSED');
    const existingMet = existingMedian < TARGET_EXISTING_STARTUP_MS;
    const rssMet = idleRssMb < TARGET_IDLE_RSS_MB;
    const ratioMet = ratio >= TARGET_RPS_RATIO;
    const num = (value: number, width: number) => String(round(value)).padStart(width);

    log('');
    log('Summary');
    log(`start-up to first 200, fresh data dir     median ${num(freshMedian, 5)} ms`);
    log(
      `start-up to first 200, existing data dir  median ${num(existingMedian, 5)} ms   (target < ${TARGET_EXISTING_STARTUP_MS} ms: ${mark(existingMet)})`,
    );
    log(`idle RSS, embedded, existing data dir     ${num(idleRssMb, 5)} MB           (target < ${TARGET_IDLE_RSS_MB} MB: ${mark(rssMet)})`);
    log(`RSS after a fresh start                   ${num(freshRssMedian, 5)} MB           (median of ${FRESH_RUNS})`);
    log(`RSS after the load runs                   ${num(afterLoadRssMb, 5)} MB`);
    log(`GET .../products   storehouse  ${num(storehouseRps, 6)} req/s  p99 ${ms(storehouseP99)}`);
    log(`GET bare route     bare        ${num(bareRps, 6)} req/s  p99 ${ms(bareP99)}`);
    log(`ratio storehouse / bare requests/s: ${ratio.toFixed(2)}  (target >= ${TARGET_RPS_RATIO.toFixed(2)}: ${mark(ratioMet)})`);
    for (const p of provisioning) {
      log(
        `provision ${p.provider.padEnd(8)} median ${p.storehouseMedianMs.toFixed(1)} ms (p95 ${p.storehouseP95Ms.toFixed(1)}) vs raw ${p.rawMedianMs.toFixed(1)} ms (p95 ${p.rawP95Ms.toFixed(1)}): ` +
          `ratio ${p.ratio.toFixed(2)}  (target <= ${TARGET_PROVISION_RATIO}: ${mark(p.targetMet)})`,
      );
    }
    for (const c of stores.create) {
      log(
        `create ${c.product.padEnd(8)} median ${c.createMedianMs.toFixed(1)} ms (p95 ${c.createP95Ms.toFixed(1)}) vs raw provision ${c.rawMedianMs.toFixed(1)} ms (p95 ${c.rawP95Ms.toFixed(1)}): ratio ${c.ratio.toFixed(2)}`,
      );
    }
    log(
      `list of ${stores.list.stores} stores: page of 100 median ${stores.list.pageMedianMs.toFixed(1)} ms (p95 ${stores.list.pageP95Ms.toFixed(1)}) vs the service's list ${stores.list.serviceMedianMs.toFixed(1)} ms: ratio ${stores.list.ratio.toFixed(2)}; all ${stores.list.pages} pages ${round(stores.list.fullWalkMs)} ms`,
    );
    if (partners) {
      log(
        `create through partner (${partners.partnerBackend}) median ${partners.createMedianMs.toFixed(1)} ms (p95 ${partners.createP95Ms.toFixed(1)}) vs direct to the partner ${partners.directMedianMs.toFixed(1)} ms (p95 ${partners.directP95Ms.toFixed(1)}): ratio ${partners.ratio.toFixed(2)}`,
      );
      log(
        `change through partner median ${partners.updateMedianMs.toFixed(1)} ms vs direct to the partner ${partners.directUpdateMedianMs.toFixed(1)} ms: ratio ${partners.updateRatio.toFixed(2)}`,
      );
    } else {
      log('create through partner: skipped (no PostgreSQL for the partner to provision on)');
    }
    log(`bench took ${round((performance.now() - benchStarted) / 1000, 1)} s`);

    const summary = {
      node: process.version,
      cpus: os.cpus().length,
      startup: {
        freshMedianMs: round(freshMedian, 1),
        freshRunsMs: freshMs.map((v) => round(v, 1)),
        existingMedianMs: round(existingMedian, 1),
        existingRunsMs: existingMs.map((v) => round(v, 1)),
        existingTargetMs: TARGET_EXISTING_STARTUP_MS,
        existingTargetMet: existingMet,
      },
      rss: {
        idleExistingMb: round(idleRssMb, 1),
        idleTargetMb: TARGET_IDLE_RSS_MB,
        idleTargetMet: rssMet,
        afterFreshStartMedianMb: round(freshRssMedian, 1),
        afterFreshStartRunsMb: freshRssMb.map((v) => round(v, 1)),
        afterLoadMb: round(afterLoadRssMb, 1),
      },
      load: {
        path: '/v1/integrations/configuration/{id}/products',
        bodyBytes: Buffer.byteLength(productsBody),
        connections: CONNECTIONS,
        durationS: DURATION_S,
        warmupS: WARMUP_S,
        rounds: LOAD_ROUNDS,
        storehouse: {
          rpsMedian: round(storehouseRps, 1),
          p99MedianMs: storehouseP99,
          rpsRuns: runs.storehouse.map((r) => round(r.requests.average, 1)),
          p99RunsMs: runs.storehouse.map((r) => r.latency.p99),
        },
        bare: {
          rpsMedian: round(bareRps, 1),
          p99MedianMs: bareP99,
          rpsRuns: runs.bare.map((r) => round(r.requests.average, 1)),
          p99RunsMs: runs.bare.map((r) => r.latency.p99),
        },
        rpsRatio: round(ratio, 3),
        rpsRatioTarget: TARGET_RPS_RATIO,
        rpsRatioTargetMet: ratioMet,
      },
      provisioning,
      stores,
      // null: skipped, no PostgreSQL reachable.
      partners: partners ?? null,
      benchSeconds: round((performance.now() - benchStarted) / 1000, 1),
    };
    log(JSON.stringify(summary));
  } finally {
    if (bare) await stop(bare).catch(() => undefined);
    await stop(storehouse).catch(() => undefined);
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  // Anything still running at this point (only after a failure): SIGTERM, wait, SIGKILL.
  const leftovers = [...children].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
        }, STOP_TIMEOUT_MS);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  );
  await Promise.all(leftovers);
  for (const dir of [...tempDirs]) await removeTempDir(dir).catch(() => undefined);
}
