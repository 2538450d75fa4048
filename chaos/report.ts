/**
 * The run's table (one column per phase) and the verdict: which counts mean a bug.
 */

export interface PhaseResult {
  creates: number;
  acknowledged: number;
  deletes: number;
  deletesAcknowledged: number;
  kills: number;
  lost: string[];
  deletedButPresent: string[];
  duplicates: string[];
  stuck: string[];
  orphanRoles: string[];
  orphanDatabases: string[];
  orphanAclUsers: string[];
  brokenCredentials: string[];
  tenantLeaks: string[];
  secretsInLogs: string[];
  /** 500 answers (a bug in any phase). */
  fiveHundreds: string[];
  /** 5xx other than 503 (a dependency that is down must be a 503 that says so). */
  otherServerErrors: string[];
  /** Error answers without Vercel's error body. */
  malformedErrors: string[];
  /** Storehouse exiting by itself (not killed by the run). */
  unexpectedExits: string[];
  /** 503s answered (expected during outages). */
  unavailable: number;
  /**
   * Repeats of a keyed create refused 409 store_name_taken: every create has a name of its own, so
   * only a repeat can meet its name taken, by a store its own failed attempt left behind, and it
   * must get that attempt's answer instead (a bug in any phase).
   */
  keyedRepeatsNameTaken: string[];
  /** Keys whose requests got different final answers (several nodes: one sent to two nodes at once, or repeated on another). */
  disagreements: string[];
  /** Keyed creates sent to two different nodes at once, both answered. */
  crossNodePairs: number;
  /** Nodes whose list of stores differs from the first node's, once every store settled. */
  listsDiffer: string[];
  /** For each node killed while it had work under way: ms from its death to that work finished or rolled back. */
  takeoverMs: number[];
  /** Takeovers slower than their bound (the lease plus the provision timeout plus slack), or never done. */
  takeoversLate: string[];
  /** Keyed creates cut by a kill: ms from the cut to their first final answer (on any node). */
  keyedRetryAfterCutMs: number[];
  /** Requests of a hang (a dependency paused with SIGSTOP) answered later than the bound after they were sent, or not at all. */
  hangWaits: string[];
  /** The slowest answer to a request sent while a dependency hung, in ms. */
  slowestInHangMs: number | undefined;
  /** What the run did not manage to test in this phase (each a failure: zeros that mean nothing). */
  idle: string[];
  settleMs: number;
  /** e.g. "state PostgreSQL: list 312 ms, create 540 ms". */
  recovery: string[];
  notes: string[];
}

/** The lists whose any entry fails the run, with the label the table shows. */
const FAILING: Array<[keyof PhaseResult, string]> = [
  ['lost', 'lost'],
  ['deletedButPresent', 'deleted, still there'],
  ['duplicates', 'duplicates (one key, two stores)'],
  ['keyedRepeatsNameTaken', 'keyed repeats refused: name taken'],
  ['disagreements', 'replays that disagreed'],
  ['listsDiffer', 'nodes listing other stores'],
  ['takeoversLate', 'takeovers past the bound'],
  ['hangWaits', 'waits past the bound in a hang'],
  ['stuck', 'stuck'],
  ['orphanRoles', 'orphan roles'],
  ['orphanDatabases', 'orphan databases'],
  ['orphanAclUsers', 'orphan ACL users'],
  ['brokenCredentials', 'broken credentials'],
  ['tenantLeaks', 'tenant leaks'],
  ['secretsInLogs', 'secrets in logs'],
  ['fiveHundreds', '500s'],
  ['otherServerErrors', '5xx other than 503'],
  ['malformedErrors', 'errors not in Vercel format'],
  ['unexpectedExits', 'Storehouse exited by itself'],
];

/**
 * A run whose zeros mean nothing: the kills not all made, no create or delete acknowledged between
 * them, or no outage seen. Each is a failure of its own, so a run that tested nothing never passes.
 */
function idleRun(phases: Record<string, PhaseResult>, kills: number): string[] {
  const { crashes, outages } = phases;
  const idle: string[] = [];
  if (crashes) {
    if (crashes.kills !== kills) idle.push(`crashes: ${crashes.kills} of ${kills} kills made`);
    if (crashes.acknowledged === 0) idle.push('crashes: no create acknowledged between the kills');
    if (crashes.deletesAcknowledged === 0) idle.push('crashes: no delete acknowledged between the kills');
  }
  if (outages && outages.unavailable === 0) idle.push('outages: no 503 answered, so no outage was seen');
  return idle;
}

export function failuresOf(phases: Record<string, PhaseResult>, kills: number): string[] {
  const failures = idleRun(phases, kills);
  for (const [phase, result] of Object.entries(phases)) {
    for (const idle of result.idle) failures.push(`${phase}: ${idle}`);
    for (const [key, label] of FAILING) {
      const items = result[key] as string[];
      if (items.length > 0)
        failures.push(`${phase}: ${items.length} ${label}: ${items.slice(0, 5).join('; ')}${items.length > 5 ? '; …' : ''}`);
    }
  }
  return failures;
}

const seconds = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

export function table(phases: Record<string, PhaseResult>): string {
  const names = Object.keys(phases);
  const results = Object.values(phases);
  const rows: Array<[string, ...string[]]> = [
    ['creates (requests)', ...results.map((r) => String(r.creates))],
    ['acknowledged', ...results.map((r) => String(r.acknowledged))],
    ['deletes (requests)', ...results.map((r) => String(r.deletes))],
    ['deletes acknowledged', ...results.map((r) => String(r.deletesAcknowledged))],
    ['kills (kill -9)', ...results.map((r) => String(r.kills))],
    ['same key on two nodes at once', ...results.map((r) => String(r.crossNodePairs))],
    ['death → its work done (slowest)', ...results.map((r) => seconds(r.takeoverMs.length ? Math.max(...r.takeoverMs) : undefined))],
    [
      'keyed retry after a cut (slowest)',
      ...results.map((r) => seconds(r.keyedRetryAfterCutMs.length ? Math.max(...r.keyedRetryAfterCutMs) : undefined)),
    ],
    ['slowest answer in a hang', ...results.map((r) => seconds(r.slowestInHangMs))],
    ...FAILING.map(([key, label]): [string, ...string[]] => [label, ...results.map((r) => String((r[key] as string[]).length))]),
    ['503s answered', ...results.map((r) => String(r.unavailable))],
    ['settled after', ...results.map((r) => `${(r.settleMs / 1000).toFixed(1)} s`)],
  ];
  const width = [
    Math.max(...rows.map((r) => r[0].length)),
    ...names.map((n, i) => Math.max(n.length, ...rows.map((r) => r[i + 1]!.length))),
  ];
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(width[0]!) : cell.padStart(width[i]!))).join('  ');
  const out = [line(['', ...names]), ...rows.map(line)];
  for (const [name, result] of Object.entries(phases)) {
    for (const recovery of result.recovery) out.push(`recovery (${name}) ${recovery}`);
    for (const note of result.notes) out.push(`${name}: ${note}`);
  }
  return out.join('\n');
}
