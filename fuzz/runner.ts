/**
 * A fuzz run: a server started in-process, its real ids gathered, then requests drawn by
 * fast-check from every operation of its /openapi.json, each judged (fuzz/checks.ts).
 *
 * The first pass never fails the property: it records every failure, so one run reports every
 * kind of failure instead of stopping at the first. Then each distinct failure is replayed from
 * its place in the run (fast-check's `seed` + `path`) and shrunk, with a property that fails only
 * on that same failure, to the smallest request that still shows it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc, { type Arbitrary } from 'fast-check';
import { FAILURE_KINDS, makeJudge, type Failure, type FailureKind } from './checks.ts';
import { makeFixtures, restoreFixtures, startFuzzServer, type Fixtures } from './fixtures.ts';
import { loadOpenApi, responseChecker } from './openapi.ts';
import { requestArbitrary, toCurl, type FuzzRequest } from './requests.ts';
import type { Backend } from '../test/helpers.ts';

export interface FuzzOptions {
  count: number;
  seconds: number;
  seed: number;
  backend: Backend;
  /** A Redis the Redis provider may use; without one its products answer 503 `provider_unavailable`. */
  redisUrl?: string;
  /** Time for shrinking, all failures together. */
  shrinkSeconds: number;
  log?: (line: string) => void;
  /** Log every request's operation, method and status (to see what a run reaches). */
  trace?: boolean;
}

export interface FailureGroup {
  kind: FailureKind;
  signature: string;
  count: number;
  detail: string;
  /** The first request that showed it, and its smallest version after shrinking (the same when it did not shrink). */
  first: FuzzRequest;
  smallest: FuzzRequest;
  shrunk: boolean;
  curl: string;
}

export interface FuzzReport {
  seed: number;
  backend: Backend;
  checker: string;
  /** Requests of the first pass, and all requests including replays and shrinking. */
  sent: number;
  /** Whether the first pass stopped at its time limit, before its count. */
  interrupted: boolean;
  sentTotal: number;
  seconds: number;
  statuses: Record<string, number>;
  byKind: Record<FailureKind, number>;
  groups: FailureGroup[];
  fixtures: Pick<Fixtures, 'teamId' | 'installationId' | 'storeId' | 'projectId'>;
  /** Where every reproducer is written in full (reproducers.sh, and long bodies). */
  reproducerDir: string;
}

/** Draws one operation, then a request for it; operations are equally likely. */
function anyRequest(operations: Arbitrary<FuzzRequest>[]): Arbitrary<FuzzRequest> {
  return fc.oneof(...operations);
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const server = await startFuzzServer(options.backend, options.redisUrl);
  try {
    const fx = await makeFixtures(server);
    const api = await loadOpenApi(server.url);
    const { check, source } = await responseChecker(api, server.url);
    const judge = await makeJudge(server, api, check, fx, Boolean(options.redisUrl));
    const arbitrary = anyRequest(api.operations.map((op) => requestArbitrary(op, fx)));
    log(`# fuzzing ${api.operations.length} operations on ${options.backend}, seed ${options.seed}, checker ${source}`);

    // A write that succeeded may have removed a fixture (the store, the installation, a token): remade at once.
    const restoreAfter = async (request: FuzzRequest, status: number | undefined) => {
      if (status === undefined || status >= 300 || ['GET', 'HEAD', 'OPTIONS'].includes(request.method)) return;
      const remade = await restoreFixtures(server, fx);
      if (remade.length) log(`# remade ${remade.join(', ')} after ${request.method} ${request.target.slice(0, 100)} → ${status}`);
    };
    const groups = new Map<string, FailureGroup & { index: number }>();
    const statuses: Record<string, number> = {};
    let sent = 0;
    let sentTotal = 0;
    const deadline = Date.now() + options.seconds * 1000;
    const record = (failure: Failure, request: FuzzRequest, index: number) => {
      const group = groups.get(failure.signature);
      if (group) group.count++;
      else
        groups.set(failure.signature, {
          kind: failure.kind,
          signature: failure.signature,
          count: 1,
          detail: failure.detail,
          first: request,
          smallest: request,
          shrunk: false,
          curl: '',
          index,
        });
    };

    const firstPass = await fc.check(
      fc.asyncProperty(arbitrary, async (request) => {
        const index = sent++;
        sentTotal++;
        const { response, failures } = await judge(request);
        const status = response ? String(response.status) : 'none';
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (options.trace) log(`# trace ${request.operation} ${request.method} ${status}`);
        for (const failure of failures) record(failure, request, index);
        await restoreAfter(request, response?.status);
        if (sent % 500 === 0) log(`# ${sent} requests, ${groups.size} distinct failures`);
        return true;
      }),
      { seed: options.seed, numRuns: options.count, interruptAfterTimeLimit: Math.max(0, deadline - Date.now()), endOnFailure: true },
    );

    // The property never fails, so a failure here is the fuzzer's own error (thrown in a judge or a restore).
    if (firstPass.failed) throw new Error(`the fuzz run itself failed at request ${sent}: ${firstPass.errorInstance}`);

    // Shrink one failure of each kind first (the report promises a reproducer per kind), then the rest.
    const firstOfKind = new Set(FAILURE_KINDS.map((kind) => [...groups.values()].find((g) => g.kind === kind)).filter(Boolean));
    const order = [...firstOfKind, ...[...groups.values()].filter((g) => !firstOfKind.has(g))];
    const shrinkDeadline = Date.now() + options.shrinkSeconds * 1000;
    for (const group of order) {
      if (!group || Date.now() >= shrinkDeadline) break;
      const groupDeadline = Math.min(shrinkDeadline, Date.now() + Math.max(2000, (options.shrinkSeconds * 1000) / 4));
      let smallest: FuzzRequest | undefined;
      await fc.check(
        fc.asyncProperty(arbitrary, async (request) => {
          // Past the deadline every candidate "passes", which ends the shrinking where it got to.
          if (Date.now() >= groupDeadline) return true;
          sentTotal++;
          const { response, failures } = await judge(request);
          await restoreAfter(request, response?.status);
          const same = failures.some((f) => f.signature === group.signature);
          if (same) smallest = request;
          return !same;
        }),
        { seed: options.seed, path: String(group.index), numRuns: 1, endOnFailure: false },
      );
      if (smallest) {
        group.shrunk = JSON.stringify(smallest) !== JSON.stringify(group.first);
        group.smallest = smallest;
      }
    }
    // Every reproducer in full in a script; the report shows the long ones shortened.
    const reproducerDir = path.join(os.tmpdir(), `storehouse-fuzz-${options.seed}`);
    for (const group of groups.values()) group.curl = toCurl(group.smallest, reproducerDir);
    if (groups.size) {
      fs.mkdirSync(reproducerDir, { recursive: true });
      const script = [...groups.values()].map((g) => `# ${g.signature}\n${g.curl}\n`).join('\n');
      fs.writeFileSync(
        path.join(reproducerDir, 'reproducers.sh'),
        `#!/bin/sh\n# API, TOKEN, VIEWER_TOKEN, INSTALLATION_TOKEN: set them first\n\n${script}`,
      );
    }

    const byKind = Object.fromEntries(FAILURE_KINDS.map((kind) => [kind, 0])) as Record<FailureKind, number>;
    for (const group of groups.values()) byKind[group.kind] += group.count;
    return {
      seed: options.seed,
      backend: options.backend,
      checker: source,
      sent,
      interrupted: firstPass.interrupted,
      sentTotal,
      seconds: Math.round((Date.now() - started) / 100) / 10,
      statuses,
      byKind,
      groups: [...groups.values()].map(({ index: _index, ...group }) => group),
      fixtures: { teamId: fx.teamId, installationId: fx.installationId, storeId: fx.storeId, projectId: fx.projectId },
      reproducerDir,
    };
  } finally {
    await server.close();
  }
}

/** The report as the terminal shows it: totals, failures by kind, then each distinct failure with its curl. */
export function formatReport(report: FuzzReport): string {
  const lines = [
    `requests sent: ${report.sent}${report.interrupted ? ', stopped by its time limit' : ''} (${report.sentTotal} with replays and shrinking) in ${report.seconds} s on ${report.backend}, seed ${report.seed}`,
    `statuses: ${Object.entries(report.statuses)
      .sort()
      .map(([status, n]) => `${status}×${n}`)
      .join(' ')}`,
    `responses checked by ${report.checker}`,
    `failures by kind: ${FAILURE_KINDS.map((kind) => `${kind} ${report.byKind[kind]}`).join(', ')}`,
  ];
  if (report.groups.length) {
    lines.push(
      `distinct failures: ${report.groups.length} (API=the server's URL; TOKEN, VIEWER_TOKEN, INSTALLATION_TOKEN: an owner's, a viewer's and an installation's token; ids are the run's fixtures: ${JSON.stringify(report.fixtures)})`,
    );
  }
  for (const kind of FAILURE_KINDS) {
    const ofKind = report.groups.filter((g) => g.kind === kind);
    if (!ofKind.length) continue;
    lines.push('', `== ${kind} (${ofKind.length} distinct)`);
    for (const group of ofKind) {
      const curl =
        group.curl.length > 1500
          ? `${group.curl.slice(0, 700)} …(${group.curl.length} chars: in full in ${report.reproducerDir}/reproducers.sh)`
          : group.curl;
      lines.push(
        `- ${group.signature}  [${group.count}×${group.shrunk ? ', shrunk' : ''}]`,
        `  ${group.detail.replace(/\s+/g, ' ').slice(0, 400)}`,
        `  ${curl}`,
      );
    }
  }
  lines.push('', `replay: npm run fuzz -- --seed ${report.seed}`);
  return lines.join('\n');
}
