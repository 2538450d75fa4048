/**
 * One outage of a dependency during requests: creates and deletes keep coming while it is down;
 * then it is started again and the time to the first 200 is measured (a create of the product
 * that needs it, and for the state database a list too). Every answer lands in the run's tally,
 * where a 5xx other than 503 (a dependency down must be a 503 that says so) is a failure.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Product } from './api.ts';
import type { PhaseResult } from './report.ts';
import { startNode, type Rig } from './run.ts';
import type { Workload } from './workload.ts';

export interface Outage {
  what: string;
  /** What the workload creates meanwhile (repeats weigh a product more). */
  products: Product[];
  outageMs: number;
  /** The ledger size at which the workload stops creating. */
  maxCreates: number;
  down: () => Promise<void>;
  up: () => Promise<void>;
}

/** How long a dependency that is back may take before the run calls it not recovered. */
const RECOVERY_DEADLINE_MS = 120_000;

/** Sends `probe` until it answers 200; the ms from `since` to that answer, or undefined at the deadline. */
async function firstSuccess(since: number, probe: () => Promise<number>): Promise<number | undefined> {
  while (Date.now() - since < RECOVERY_DEADLINE_MS) {
    if ((await probe()) === 200) return Date.now() - since;
    await sleep(100);
  }
  return undefined;
}

/** Lets an outage or a hang last `ms`, or until a node exits by itself (restartExited notes it). */
export async function lastFor(rig: Rig, ms: number): Promise<void> {
  for (const began = Date.now(); Date.now() - began < ms; ) {
    await sleep(100);
    if (rig.nodes.some((node) => !node.running)) return;
  }
}

/** Any node that exited by itself is a finding; it is started again so the run goes on. */
export async function restartExited(rig: Rig, result: PhaseResult, during: string): Promise<void> {
  for (const [index, node] of rig.nodes.entries()) {
    if (node.running) continue;
    const name = rig.nodes.length > 1 ? `node ${index}` : 'Storehouse';
    result.unexpectedExits.push(`${name} during ${during}: ${node.logs().split('\n').slice(-5).join(' | ').slice(0, 600)}`);
    await startNode(rig, index);
  }
}

export async function runOutage(rig: Rig, workload: Workload, result: PhaseResult, outage: Outage): Promise<void> {
  let driving = true;
  const driven = workload.run({
    concurrency: 2,
    stop: () => !driving,
    products: outage.products,
    deleteShare: 0.2,
    retries: 3,
    retryDelayMs: 500,
    pauseMs: 50,
    maxCreates: outage.maxCreates,
  });
  try {
    // Requests are flowing (a create acknowledged) before the dependency goes.
    await workload.untilFlowing();

    rig.log(`outages: stopping ${outage.what} for ${outage.outageMs} ms`);
    await outage.down();
    await lastFor(rig, outage.outageMs);
    await outage.up();
    const upAt = Date.now();
    rig.log(`outages: ${outage.what} is back`);
    await restartExited(rig, result, `the ${outage.what} outage`);

    // The product that needs the dependency: Redis stores for Redis; for the state, any create.
    const product: Product = outage.what === 'Redis' ? 'redis' : 'postgres';
    const probes: Array<Promise<string>> = [
      firstSuccess(upAt, async () => (await workload.sendCreate(workload.ledger.newCreate(product, false))).status).then(
        (ms) => `create ${product} ${ms === undefined ? `none within ${RECOVERY_DEADLINE_MS / 1000} s` : `${ms} ms`}`,
      ),
    ];
    if (outage.what !== 'Redis') {
      probes.push(
        firstSuccess(upAt, async () => (await rig.api.call('GET', '/v1/storage/stores?limit=1', { what: 'list stores' })).status).then(
          (ms) => `list ${ms === undefined ? `none within ${RECOVERY_DEADLINE_MS / 1000} s` : `${ms} ms`}`,
        ),
      );
    }
    const recovered = await Promise.all(probes);
    result.recovery.push(`${outage.what}: first 200 after it was back: ${recovered.join(', ')}`);
    for (const line of recovered) if (line.includes('none within')) result.stuck.push(`no 200 after the ${outage.what} outage: ${line}`);
  } finally {
    driving = false;
    await driven;
  }
}
