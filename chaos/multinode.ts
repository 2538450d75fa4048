/**
 * The phases of the multi-node mode (`npm run chaos -- --nodes 3`), beside run.ts's outages:
 *
 * "crashes": creates and deletes of both products, with and without keys, a keyed one often sent
 * to two nodes at once, while a random node is killed with SIGKILL at a moment it has a create
 * or delete under way (read from the state database; after a deadline, anyway). The node stays
 * dead until that work is finished or rolled back by a survivor (its sweep, or a keyed retry
 * sent to it), timed from the death, or until TAKEOVER_BOUND_MS; then it is started again.
 *
 * "hangs": Redis (the provider's and the shared rate limits') and then the state PostgreSQL are
 * paused with SIGSTOP (every process of the server: a stopped postmaster alone leaves its backends
 * answering) during requests, for longer than its bound, and resumed. Every request in flight
 * meanwhile must be answered within that bound, which the configured timeouts give (HANG_BOUNDS_MS).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Product, Timing } from './api.ts';
import { type HangBound, hangWaits } from './checks.ts';
import { lastFor, restartExited } from './outages.ts';
import type { PhaseResult } from './report.ts';
import { checkPhase, emptyPhase, type Rig, type Size, startNode } from './run.ts';
import { holdRoleCatalog, leaseLeftMs, postgresWorkUnderWay, untilTakenOver, workUnderWay } from './takeover.ts';
import { Ledger, Workload } from './workload.ts';

/** The timeouts every node is configured with in this mode, from which the bounds below follow. */
export const NODE_TIMEOUTS = {
  /** STOREHOUSE_LEASE_MS: a dead node's work may be taken over this soon after its last renewal. */
  leaseMs: 3_000,
  /** STOREHOUSE_PROVISION_TIMEOUT_MS, as run.ts sets it for every mode. */
  provisionMs: 5_000,
  /** STOREHOUSE_DB_CONNECT_TIMEOUT_MS: opening a state connection, or waiting for a free one. */
  dbConnectMs: 2_000,
  /** STOREHOUSE_DB_QUERY_TIMEOUT_MS: one state statement unanswered. */
  dbQueryMs: 5_000,
  /** STOREHOUSE_RATE_LIMIT_REDIS_TIMEOUT_MS: a rate-limit count waiting on Redis. */
  rateLimitRedisMs: 250,
  /**
   * Not configurable (UNDO_WAIT_MS in src/stores/store-creation.ts): a create whose provision
   * failed or timed out waits this long for its undo before it answers the failure.
   */
  undoWaitMs: 2_000,
};

/** Added to every bound below for a loaded 2-core machine. */
const SLACK_MS = 3_000;

/** The longest a request waits while a provider's server hangs: a provider call, and for a create that failed its undo's wait. */
const PROVIDER_CALL_MS = NODE_TIMEOUTS.provisionMs + NODE_TIMEOUTS.undoWaitMs;

/**
 * The longest a request waits on another request's work before its own: a keyed create on the
 * request holding its key (which holds it through its provision and then its undo, each bounded
 * by the provision timeout: StoreRemoval.deprovision), a delete on another delete of the same store
 * (its deprovision). Only a provider's hang holds that work; a state hang fails it at its statement.
 */
const OTHERS_WORK_MS = 2 * NODE_TIMEOUTS.provisionMs;

/**
 * The longest a request may wait while each dependency hangs: every configured wait it may meet
 * on that dependency before it answers, plus SLACK_MS.
 * - Redis (the provider's and the rate limits'): a rate-limit count (then the node counts in
 *   process), a provider call (the provision timeout) and the undo's wait: 0.25 + 5 + 2 + 3 = 10.25 s.
 * - The state PostgreSQL: a create's provider call (its provider writes its books there: the provision
 *   timeout), then its undo's first statement, a connection (or a free one in the pool) and the
 *   statement: 5 + 2 + 5 + 3 = 15 s.
 * - The stores PostgreSQL (the Postgres provider's): a provider call and the undo's wait: 5 + 2 + 3 = 10 s.
 * A request that may wait on another's work (Timing.waitsOnAnother) has OTHERS_WORK_MS more in a
 * provider's hang (`waiting`): 20.25 s and 20 s. A provider call that times out is undone; an undo
 * that waits on the hung dependency again, past the provision timeout, holds its work past the
 * bound: the provider must fail fast.
 */
const redisOwnMs = NODE_TIMEOUTS.rateLimitRedisMs + PROVIDER_CALL_MS + SLACK_MS;
const storesOwnMs = PROVIDER_CALL_MS + SLACK_MS;
const stateMs = NODE_TIMEOUTS.provisionMs + NODE_TIMEOUTS.dbConnectMs + NODE_TIMEOUTS.dbQueryMs + SLACK_MS;
export const HANG_BOUNDS_MS: Record<'redis' | 'state' | 'stores', HangBound> = {
  redis: { ownMs: redisOwnMs, waitingMs: redisOwnMs + OTHERS_WORK_MS },
  state: { ownMs: stateMs, waitingMs: stateMs },
  stores: { ownMs: storesOwnMs, waitingMs: storesOwnMs + OTHERS_WORK_MS },
};

/** A hang lasts its bound and this much more, so a request held for the whole hang is caught. */
const HANG_BEYOND_BOUND_MS = 7_000;

/**
 * The longest from a node's death to its work finished or rolled back: its lease runs out (at most
 * the lease after its death), a survivor takes the work over at once and finishes or undoes it with
 * one provider call (at most the provision timeout), plus 5 s for a loaded machine: 13 s.
 */
export const TAKEOVER_BOUND_MS = NODE_TIMEOUTS.leaseMs + NODE_TIMEOUTS.provisionMs + 5_000;

/**
 * How long a kill waits for its node to have work under way before it kills it anyway (the role
 * catalog held meanwhile: well below the provision timeout, so no create times out for it).
 */
const WORK_DEADLINE_MS = 3_000;

/** How long a late takeover is still watched (for the table), the dead node started again meanwhile. */
const LATE_WATCH_MS = 120_000;

export async function multiNodeCrashPhase(rig: Rig, size: Size): Promise<PhaseResult> {
  const result = emptyPhase();
  rig.tally.phase = 'crashes';
  const ledger = new Ledger(`m${rig.random.int(1e6, 9e6)}`);
  const workload = new Workload(rig.api, rig.installationId, ledger, rig.random);
  let killing = true;
  const driving = workload.run({
    concurrency: size.concurrency,
    stop: () => !killing,
    products: ['postgres', 'redis'],
    deleteShare: 0.3,
    retries: 10,
    retryDelayMs: 500,
    maxCreates: size.maxCreates,
    twinShare: 0.4,
    // Paced, so the creates last until the last kill (a kill spends seconds waiting for its
    // takeover, a start seconds more); maxCreates is only a bound.
    pauseMs: 300,
  });
  let driven = false;
  void driving.finally(() => (driven = true)).catch(() => {});
  const lateWatches: Array<Promise<void>> = [];
  try {
    for (let kill = 1; kill <= size.kills; kill++) {
      await sleep(rig.random.int(200, 2_500));
      // At a moment a node has a create or delete under way, so its death leaves work to take over:
      // the provider's role catalog is held meanwhile, so Postgres work reaching it waits there, and
      // the node killed is a random one of those whose work has waited (not one about to finish).
      const held = await holdRoleCatalog(rig.storesPostgres.adminUrl);
      let victim: number | undefined;
      let waited = 0;
      let diedAt: number;
      let work: string[] = [];
      let kinds = new Map<string, string>();
      let left: number | undefined;
      try {
        const began = Date.now();
        const seen = new Map<string, number>();
        while (!driven && Date.now() - began < WORK_DEADLINE_MS) {
          const rows = await postgresWorkUnderWay(rig.state).catch(() => []);
          const now = Date.now();
          for (const row of rows) if (!seen.has(row.id)) seen.set(row.id, now);
          const waiting = rows.filter((row) => now - seen.get(row.id)! >= 100 && rig.nodeIds.includes(row.owner));
          if (waiting.length > 0) {
            victim = rig.nodeIds.indexOf(rig.random.pick(waiting).owner);
            break;
          }
          await sleep(20);
        }
        waited = Date.now() - began;
        victim ??= rig.random.int(0, rig.nodes.length - 1);
        const node = rig.nodes[victim]!;
        const nodeId = rig.nodeIds[victim];
        if (!node.running) result.unexpectedExits.push(`node ${victim} before kill ${kill}`);
        const killed = node.kill(); // SIGKILL sent now; its exit awaited below
        diedAt = Date.now();
        await killed;
        result.kills++;
        if (nodeId) {
          ({ ids: work, what: kinds } = await workUnderWay(rig.state, nodeId).catch(() => ({ ids: [], what: new Map<string, string>() })));
          left = await leaseLeftMs(rig.state, nodeId).catch(() => undefined);
        } else result.notes.push(`kill ${kill}: node ${victim}'s lease was not known, its work not timed`);
      } finally {
        await held.release();
      }
      rig.log(
        `crashes: kill ${kill}/${size.kills}: node ${victim} with ${work.length} create(s)/delete(s) under way` +
          (work.length ? ` (${[...kinds.values()].join(', ')})` : '') +
          ` (waited ${waited} ms for them; its lease had ${left === undefined ? '?' : Math.round(left)} ms left);` +
          ` ${ledger.acknowledged().length} creates, ${ledger.deletesAcknowledged} deletes acknowledged so far`,
      );
      if (work.length > 0) {
        // The node stays dead meanwhile: only the survivors (their sweeps, keyed retries sent to them) can take its work over.
        const taken = await untilTakenOver(rig.state, work, diedAt, TAKEOVER_BOUND_MS);
        if (taken.ms !== undefined) result.takeoverMs.push(taken.ms);
        else {
          const still = taken.left;
          lateWatches.push(
            untilTakenOver(rig.state, still, diedAt, LATE_WATCH_MS).then((late) => {
              if (late.ms !== undefined) result.takeoverMs.push(late.ms);
              result.takeoversLate.push(
                `kill ${kill} (node ${victim}): ${still.length} of ${work.length} stores still under way ${TAKEOVER_BOUND_MS / 1000} s after its death ` +
                  `(${still.map((id) => `${kinds.get(id) ?? 'work'} ${id}`).join(', ')}; its lease had ${left === undefined ? '?' : Math.round(left)} ms left), ` +
                  (late.ms === undefined
                    ? `and still ${LATE_WATCH_MS / 1000} s after it`
                    : `done ${(late.ms / 1000).toFixed(1)} s after it, the node started again meanwhile`),
              );
            }),
          );
        }
      }
      await startNode(rig, victim);
    }
  } finally {
    killing = false;
    await driving;
    await Promise.all(lateWatches);
  }
  result.notes.push(
    `starts took ${rig.nodes.map((node, index) => `node ${index}: ${node.startTimesMs.join(', ')}`).join('; ')} ms; ` +
      `takeovers ${result.takeoverMs.map((ms) => (ms / 1000).toFixed(1)).join(', ')} s (bound ${TAKEOVER_BOUND_MS / 1000} s, lease ${NODE_TIMEOUTS.leaseMs / 1000} s)`,
  );
  if (result.takeoverMs.length + result.takeoversLate.length === 0)
    result.idle.push('no kill found its node with work under way, so no takeover was timed');
  await checkPhase(rig, 'crashes', result, ledger, size.settleMs);
  if (result.crossNodePairs === 0) result.idle.push('no keyed create was sent to two nodes at once and answered by both');
  return result;
}

/** What a request was and how it was answered, e.g. "create redis 503 provider_timeout". */
const outcome = (t: Timing) => `${t.what} ${t.status === 0 ? 'no answer' : t.status}${t.code ? ` ${t.code}` : ''}`;
const mayWait = (t: Timing) => (t.waitsOnAnother ? ' (may wait on another request)' : '');

interface Hang {
  what: string;
  /** No request may wait longer while it hangs (HANG_BOUNDS_MS). */
  bound: HangBound;
  products: Product[];
  pause: () => void;
  resume: () => void;
}

export async function hangPhase(rig: Rig, size: Size): Promise<PhaseResult> {
  const result = emptyPhase();
  rig.tally.phase = 'hangs';
  const ledger = new Ledger(`h${rig.random.int(1e6, 9e6)}`);
  const workload = new Workload(rig.api, rig.installationId, ledger, rig.random);
  const hangs: Hang[] = [
    {
      what: 'Redis',
      bound: HANG_BOUNDS_MS.redis,
      products: ['redis', 'redis', 'postgres'],
      pause: () => rig.redis.pause(),
      resume: () => rig.redis.resume(),
    },
    {
      what: 'state PostgreSQL',
      bound: HANG_BOUNDS_MS.state,
      products: ['postgres', 'redis'],
      pause: () => rig.statePostgres.pause(),
      resume: () => rig.statePostgres.resume(),
    },
  ];
  if (size.storesHang) {
    hangs.push({
      what: 'stores PostgreSQL',
      bound: HANG_BOUNDS_MS.stores,
      products: ['postgres', 'postgres', 'redis'],
      pause: () => rig.storesPostgres.pause(),
      resume: () => rig.storesPostgres.resume(),
    });
  }
  for (const hang of hangs) await runHang(rig, workload, result, hang, size);
  await checkPhase(rig, 'hangs', result, ledger, size.settleMs);
  return result;
}

async function runHang(rig: Rig, workload: Workload, result: PhaseResult, hang: Hang, size: Size): Promise<void> {
  let driving = true;
  const driven = workload.run({
    concurrency: 3,
    stop: () => !driving,
    products: hang.products,
    deleteShare: 0.2,
    retries: 3,
    retryDelayMs: 500,
    pauseMs: 50,
    maxCreates: workload.ledger.creates.length + size.maxCreates / 2,
    twinShare: 0.3,
  });
  // Besides the workload, a read on each node in turn: authenticated, so it is counted against the shared rate limit.
  const probing = (async () => {
    while (driving) {
      await rig.api.call('GET', '/v1/integrations/configurations?view=account', { what: 'list installations' });
      await sleep(200);
    }
  })();
  try {
    await workload.untilFlowing();

    const hangMs = hang.bound.ownMs + HANG_BEYOND_BOUND_MS;
    const bound = `${hang.bound.ownMs / 1000} s${hang.bound.waitingMs > hang.bound.ownMs ? ` (${hang.bound.waitingMs / 1000} s one that may wait on another's work)` : ''}`;
    rig.log(`hangs: pausing ${hang.what} (SIGSTOP) for ${hangMs / 1000} s; no request may wait past ${bound}`);
    hang.pause();
    const pausedAt = Date.now();
    // What each node's /healthz says late in the hang, its own probes having had their interval
    // and timeout (5 s and 2 s by default) to notice, and answered before the resume (not counted:
    // a report, not a check).
    const healthAfterMs = hangMs - 6_000;
    const health = (async () => {
      await sleep(healthAfterMs);
      return Promise.all(
        rig.nodes.map(async (node, index) => {
          try {
            const response = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
            // Its status, and what it says it cannot reach (the checks it reports unavailable), when it says.
            const body = (await response.json().catch(() => undefined)) as
              | { status?: string; checks?: Record<string, { status?: string }> }
              | undefined;
            const down = Object.entries(body?.checks ?? {})
              .filter(([, check]) => check.status === 'unavailable')
              .map(([name]) => name);
            return `node ${index} ${response.status}${body?.status ? ` ${body.status}` : ''}${down.length ? ` (${down.join(', ')} unavailable)` : ''}`;
          } catch {
            return `node ${index} no answer within 5 s`;
          }
        }),
      );
    })();
    try {
      await lastFor(rig, hangMs);
    } finally {
      hang.resume();
    }
    const resumedAt = Date.now();
    rig.log(`hangs: ${hang.what} resumed`);
    result.notes.push(`${hang.what} hung: /healthz ${(healthAfterMs / 1000).toFixed(1)} s in: ${(await health).join(', ')}`);
    await restartExited(rig, result, `the ${hang.what} hang`);
    driving = false;
    await Promise.all([driven, probing]);

    const { inHang, late } = hangWaits(rig.tally.timings, 'hangs', { pausedAt, resumedAt }, hang.bound);
    for (const t of late) {
      result.hangWaits.push(
        `${hang.what} hang: ${t.what} on node ${t.node}, sent ${((t.sentAt - pausedAt) / 1000).toFixed(1)} s into it, ` +
          `answered ${t.status === 0 ? 'nothing' : `${t.status}${t.code ? ` ${t.code}` : ''}`} after ${(t.ms / 1000).toFixed(1)} s${mayWait(t)}`,
      );
    }
    const slowest = Math.max(0, ...inHang.map((t) => t.ms));
    result.slowestInHangMs = Math.max(result.slowestInHangMs ?? 0, slowest);
    const answers = new Map<string, number>();
    for (const t of inHang) {
      const key = outcome(t);
      answers.set(key, (answers.get(key) ?? 0) + 1);
    }
    const slowestThree = [...inHang]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 3)
      .map((t) => `${outcome(t)} ${(t.ms / 1000).toFixed(1)} s${mayWait(t)}`);
    result.notes.push(
      `${hang.what} hung ${hangMs / 1000} s (bound ${bound}): ${inHang.length} requests in flight, the slowest ${slowestThree.join(', ')}; all: ` +
        [...answers].map(([key, n]) => `${key} ×${n}`).join(', '),
    );
    if (inHang.length === 0) result.idle.push(`no request was in flight while ${hang.what} hung`);
  } finally {
    driving = false;
    await Promise.all([driven, probing]);
  }
}
