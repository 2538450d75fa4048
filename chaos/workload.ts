/**
 * The requests a chaos run sends, and the ledger of what Storehouse acknowledged: every create
 * answered 200 must leave its store, every delete answered 200 must leave nothing. Creates mix
 * both products, with and without an Idempotency-Key; a keyed create is sent again (at once, or
 * concurrently, or after a failure such as the server being killed), and every 200 it gets must
 * name the same store. With several nodes a concurrent twin goes to another node than the first
 * request, and every final answer of one key (a 200 or a 4xx that is not "try again") must be
 * the same answer: a replay that disagreed is a finding.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Answer, Product, StorehouseApi } from './api.ts';
import type { Random } from './random.ts';

export interface CreateRecord {
  name: string;
  product: Product;
  key: string | undefined;
  /** Requests sent for this create (retries with its key included). */
  requests: number;
  /** The store a 200 named; undefined when none came. */
  storeId: string | undefined;
  /** Other store ids 200s of the same key named: each is a duplicate. */
  otherStoreIds: string[];
  /**
   * Repeats refused 409 store_name_taken: every create has a name of its own, so only a store its
   * own earlier attempt left behind can hold it, and a repeat must get that attempt's answer.
   */
  nameTakenAnswers: number;
  /** The distinct final answers of this create's requests: "200 <store id>" or "<status> <code>" (see finalAnswer). */
  finalAnswers: string[];
  /** Concurrent requests of one key sent to two different nodes (each pair counted once). */
  crossNodePairs: number;
  /** Create requests of this record not answered yet: no delete is sent meanwhile (its repeat would meet the delete). */
  createsInFlight: number;
  /** When a request of this keyed create first got no answer (cut by a kill), and how long until a final answer came after it. */
  cutAt: number | undefined;
  resolvedAfterCutMs: number | undefined;
  deleteRequests: number;
  deleteAcknowledged: boolean;
  /**
   * A delete may have removed the store without a 200 to say so: one got no answer, a 5xx or 409
   * store_deleting, or two were under way at once (either may answer 404 for the other's work).
   */
  deleteMaybeDone: boolean;
  deletesInFlight: number;
  /**
   * A delete answered 404: the store is gone, and is not asked again. Unless an earlier delete
   * may have removed it (deleteMaybeDone), an acknowledged store vanished: a loss.
   */
  deleteNotFound: boolean;
}

export class Ledger {
  readonly creates: CreateRecord[] = [];
  private serial = 0;

  constructor(private readonly runId: string) {}

  newCreate(product: Product, keyed: boolean): CreateRecord {
    const n = ++this.serial;
    const record: CreateRecord = {
      name: `chaos-${this.runId}-${n}`,
      product,
      key: keyed ? `chaos-${this.runId}-${n}` : undefined,
      requests: 0,
      storeId: undefined,
      otherStoreIds: [],
      nameTakenAnswers: 0,
      finalAnswers: [],
      crossNodePairs: 0,
      createsInFlight: 0,
      cutAt: undefined,
      resolvedAfterCutMs: undefined,
      deleteRequests: 0,
      deleteAcknowledged: false,
      deleteMaybeDone: false,
      deletesInFlight: 0,
      deleteNotFound: false,
    };
    this.creates.push(record);
    return record;
  }

  acknowledged(): CreateRecord[] {
    return this.creates.filter((c) => c.storeId !== undefined);
  }

  /** Acknowledged stores no delete has been answered 200 or 404 for: candidates for a delete. */
  deletable(): CreateRecord[] {
    return this.creates.filter((c) => c.storeId !== undefined && !c.deleteAcknowledged && !c.deleteNotFound && c.createsInFlight === 0);
  }

  get createRequests(): number {
    return this.creates.reduce((n, c) => n + c.requests, 0);
  }

  get deletesAcknowledged(): number {
    return this.creates.filter((c) => c.deleteAcknowledged).length;
  }

  get deleteRequests(): number {
    return this.creates.reduce((n, c) => n + c.deleteRequests, 0);
  }
}

export function createBody(installationId: string, record: CreateRecord): Record<string, unknown> {
  return {
    name: record.name,
    integrationConfigurationId: installationId,
    integrationProductIdOrSlug: record.product,
    metadata: record.product === 'postgres' ? { connectionLimit: 5 } : {},
  };
}

/** Answers after which a keyed create is worth sending again: no answer, a 5xx, or its key still held. */
const retryable = (answer: Answer) =>
  answer.status === 0 || answer.status >= 500 || answer.code === 'idempotency_key_in_use' || answer.status === 429 || answer.status === 408;

/**
 * What a create's answer decided, when it decided something: a 200 names its store, a refusal
 * its status and code. Undefined for the answers that say "try again" (none, a 5xx, the key still
 * held, 408, 429): a failed request gives its key back, so a retry may rightly end otherwise.
 */
export function finalAnswer(answer: Answer): string | undefined {
  if (retryable(answer)) return undefined;
  if (answer.status === 200) return `200 ${answer.body?.store?.id}`;
  return `${answer.status} ${answer.code ?? ''}`.trim();
}

export class Workload {
  constructor(
    private readonly api: StorehouseApi,
    private readonly installationId: string,
    readonly ledger: Ledger,
    private readonly random: Random,
  ) {}

  /**
   * The last answer was none at all (the server killed and not back yet): workers wait for it to
   * answer again before their next operation, so the run's creates and deletes reach a live
   * server (and some are cut by its kill) instead of being spent on refused connections.
   */
  private serverGone = false;

  /** Polls the server (outside the tally) until it answers at all, or the deadline. */
  private async untilAnswering(timeoutMs = 180_000): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; this.serverGone && Date.now() < deadline; ) {
      if (await this.api.answers()) this.serverGone = false;
      else await sleep(100);
    }
  }

  /** One create request for `record` (to `node`, or the balancer's next), noting a 200 in the ledger. */
  async sendCreate(record: CreateRecord, node?: number): Promise<Answer> {
    record.requests++;
    record.createsInFlight++;
    const answer = await this.api
      .createStore(createBody(this.installationId, record), record.key, node)
      .finally(() => record.createsInFlight--);
    this.serverGone = answer.status === 0;
    if (record.key !== undefined) {
      if (answer.status === 0 && record.cutAt === undefined) record.cutAt = answer.sentAt ?? Date.now();
      const final = finalAnswer(answer);
      if (final !== undefined) {
        if (!record.finalAnswers.includes(final)) record.finalAnswers.push(final);
        if (record.cutAt !== undefined && record.resolvedAfterCutMs === undefined) record.resolvedAfterCutMs = Date.now() - record.cutAt;
      }
    }
    if (answer.status === 409 && answer.code === 'store_name_taken') record.nameTakenAnswers++;
    if (answer.status === 200) {
      const id = answer.body?.store?.id as string | undefined;
      if (!id) throw new Error(`a 200 create without a store: ${JSON.stringify(answer.body)}`);
      if (record.storeId === undefined) record.storeId = id;
      else if (record.storeId !== id && !record.otherStoreIds.includes(id)) record.otherStoreIds.push(id);
    }
    return answer;
  }

  /** Keyed retries still running, detached from the worker that began them. */
  private readonly retrying = new Set<Promise<void>>();
  private readonly retryErrors: Error[] = [];

  /**
   * A create, and for a keyed one its repeats: sometimes a concurrent twin, sometimes a repeat
   * once it is answered, and after a failure retries (up to `retries`, backing off from
   * `retryDelayMs`), in the background so the worker goes on meanwhile: a create whose server was
   * killed holds its key until recovery gives it back, seconds later.
   */
  async create(
    product: Product,
    options: { keyed: boolean; retries: number; retryDelayMs: number; twinShare?: number },
  ): Promise<CreateRecord> {
    const record = this.ledger.newCreate(product, options.keyed);
    const twin = options.keyed && this.random.chance(options.twinShare ?? 0.15);
    // With several nodes the twins go to two different nodes: the one to answer second must replay the first's answer.
    // (Pinned only then: an unpinned request moves on past a node that is down.)
    const first = twin && this.api.nodes > 1 ? this.api.nextNode() : undefined;
    const second = first === undefined ? undefined : (first + 1 + this.random.int(0, this.api.nodes - 2)) % this.api.nodes;
    const answers = await Promise.all([this.sendCreate(record, first), ...(twin ? [this.sendCreate(record, second)] : [])]);
    if (twin && first !== undefined && answers.every((answer) => answer.status !== 0)) record.crossNodePairs++;
    if (!options.keyed) return record;
    if (record.storeId !== undefined) {
      if (this.random.chance(0.3)) await this.sendCreate(record);
      return record;
    }
    const retrying = (async () => {
      let last = answers.at(-1)!;
      for (
        let retry = 0, delay = options.retryDelayMs;
        retry < options.retries && record.storeId === undefined && retryable(last);
        retry++
      ) {
        await sleep(delay);
        delay = Math.min(delay * 2, 5_000);
        last = await this.sendCreate(record);
      }
    })().catch((error: Error) => {
      this.retryErrors.push(error);
    });
    this.retrying.add(retrying);
    void retrying.finally(() => this.retrying.delete(retrying));
    return record;
  }

  /** Waits until one create more than now is acknowledged (a minute at most): requests are flowing. */
  async untilFlowing(): Promise<void> {
    const before = this.ledger.acknowledged().length;
    for (const deadline = Date.now() + 60_000; this.ledger.acknowledged().length === before && Date.now() < deadline; ) await sleep(50);
  }

  /** Waits for every keyed retry still running. */
  async retriesDone(): Promise<void> {
    while (this.retrying.size > 0) await Promise.all(this.retrying);
    if (this.retryErrors.length > 0) throw this.retryErrors[0];
  }

  /** A delete of a random acknowledged store (perhaps one whose earlier delete got no answer). */
  async deleteOne(): Promise<void> {
    const candidates = this.ledger.deletable();
    if (candidates.length === 0) return;
    const record = this.random.pick(candidates);
    record.deleteRequests++;
    const concurrent = record.deletesInFlight++ > 0;
    if (concurrent) record.deleteMaybeDone = true;
    const answer = await this.api.deleteStore(record.storeId!, concurrent).finally(() => record.deletesInFlight--);
    this.serverGone = answer.status === 0;
    if (answer.status === 200) record.deleteAcknowledged = true;
    if (answer.status === 404) record.deleteNotFound = true;
    if (answer.status === 0 || answer.status >= 500 || answer.code === 'store_deleting') record.deleteMaybeDone = true;
  }

  /**
   * Workers that create and delete, `concurrency` at a time, until `stop()` says so. `deleteShare`
   * of the operations are deletes once there is something to delete.
   */
  async run(options: {
    concurrency: number;
    stop: () => boolean;
    products: Product[];
    deleteShare: number;
    retries: number;
    retryDelayMs: number;
    /** Pause between a worker's operations. */
    pauseMs?: number;
    /** No new create once the ledger holds this many (a bound on the run, whatever the timings). */
    maxCreates: number;
    /** The share of keyed creates sent twice at once (to two nodes when there are several); 0.15 unless given. */
    twinShare?: number;
  }): Promise<void> {
    const worker = async () => {
      while (!options.stop() && this.ledger.creates.length < options.maxCreates) {
        // A server that is down refuses at once: without waiting a worker would spend every create on it.
        if (this.serverGone) await this.untilAnswering();
        if (this.random.chance(options.deleteShare) && this.ledger.deletable().length > 0) await this.deleteOne();
        else {
          await this.create(this.random.pick(options.products), {
            keyed: this.random.chance(0.6),
            retries: options.retries,
            retryDelayMs: options.retryDelayMs,
            twinShare: options.twinShare,
          });
        }
        if (options.pauseMs) await sleep(options.pauseMs);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    await this.retriesDone();
  }
}
