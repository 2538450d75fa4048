/**
 * The requests a chaos run sends, and the ledger of what Storehouse acknowledged: every create
 * answered 200 must leave its store, every delete answered 200 must leave nothing. Creates mix
 * both products, with and without an Idempotency-Key; a keyed create is sent again (at once, or
 * concurrently, or after a failure such as the server being killed), and every 200 it gets must
 * name the same store.
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
    return this.creates.filter((c) => c.storeId !== undefined && !c.deleteAcknowledged && !c.deleteNotFound);
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
  answer.status === 0 || answer.status >= 500 || answer.code === 'idempotency_key_in_use' || answer.status === 429;

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

  /** One create request for `record`, noting a 200 in the ledger. */
  async sendCreate(record: CreateRecord): Promise<Answer> {
    record.requests++;
    const answer = await this.api.createStore(createBody(this.installationId, record), record.key);
    this.serverGone = answer.status === 0;
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
  async create(product: Product, options: { keyed: boolean; retries: number; retryDelayMs: number }): Promise<CreateRecord> {
    const record = this.ledger.newCreate(product, options.keyed);
    const twin = options.keyed && this.random.chance(0.15);
    const answers = await Promise.all([this.sendCreate(record), ...(twin ? [this.sendCreate(record)] : [])]);
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
    if (record.deletesInFlight++ > 0) record.deleteMaybeDone = true;
    const answer = await this.api.deleteStore(record.storeId!).finally(() => record.deletesInFlight--);
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
          });
        }
        if (options.pauseMs) await sleep(options.pauseMs);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    await this.retriesDone();
  }
}
