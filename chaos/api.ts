/**
 * The few Storehouse calls a chaos run makes, over plain fetch (so a killed server is a network
 * error, not an exception inside a client), each answer recorded in the run's tally: its status,
 * whether an error answer had Vercel's error format, which node answered and how long it took.
 *
 * With several nodes the client is a round-robin balancer: each request goes to the next node,
 * or to the one it is pinned to; a refused connection (the node is down: nothing was sent) is
 * tried on the next node, as a load balancer would, while a connection cut mid-request is the
 * caller's no-answer, since the request may have been served.
 */

export type Product = 'postgres' | 'redis';

export interface Answer {
  /** 0 when no HTTP answer came (connection refused or cut, timeout). */
  status: number;
  body: any;
  /** The Vercel error code of an error answer. */
  code?: string;
  networkError?: string;
  /** The node (index into the client's URLs) that answered, or was asked last. */
  node?: number;
  /** When the request was sent (Date.now()) and how long its answer took. */
  sentAt?: number;
  ms?: number;
}

/** One request's timing, for the waits of a hang. */
export interface Timing {
  phase: string;
  what: string;
  node: number;
  sentAt: number;
  ms: number;
  status: number;
  code?: string;
  /**
   * The request may wait on another's work before its own (HangBound.waitingMs): a keyed create,
   * on the request holding its key; a delete sent while another delete of its store was under way.
   */
  waitsOnAnother?: boolean;
}

export interface Store {
  id: string;
  name: string;
  status: string;
  externalResourceId: string;
  notification?: { title?: string; message?: string };
  product?: { slug?: string };
}

/** What happened to every request, by phase; a run fails on the counts that mean a bug. */
export class Tally {
  /** Answers by "<phase> <status>", e.g. "outages 503". */
  readonly byStatus = new Map<string, number>();
  /** Answers by phase, then by what was asked and how it was answered, e.g. "create redis 503 provider_unavailable". */
  readonly byOutcome = new Map<string, Map<string, number>>();
  /** Every 5xx answer, with what it said (the first few are shown in the report). */
  readonly serverErrors: Array<{ phase: string; what: string; status: number; code?: string; message?: string }> = [];
  /** Error answers whose body is not `{"error":{"code","message"}}`. */
  readonly malformedErrors: Array<{ phase: string; what: string; status: number; body: string }> = [];
  /** Every request's timing (the hang phase looks for the ones that waited past its bound). */
  readonly timings: Timing[] = [];
  phase = 'setup';

  record(what: string, answer: Answer, waitsOnAnother = false): void {
    if (answer.sentAt !== undefined) {
      this.timings.push({
        phase: this.phase,
        what,
        node: answer.node ?? 0,
        sentAt: answer.sentAt,
        ms: answer.ms ?? 0,
        status: answer.status,
        code: answer.code,
        ...(waitsOnAnother && { waitsOnAnother }),
      });
    }
    const key = `${this.phase} ${answer.status}`;
    this.byStatus.set(key, (this.byStatus.get(key) ?? 0) + 1);
    const outcomes = this.byOutcome.get(this.phase) ?? new Map<string, number>();
    this.byOutcome.set(this.phase, outcomes);
    const outcome = `${what} ${answer.status === 0 ? 'no answer' : answer.status}${answer.code ? ` ${answer.code}` : ''}`;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    if (answer.status >= 400) {
      const error = answer.body?.error;
      if (typeof error?.code !== 'string' || typeof error?.message !== 'string') {
        this.malformedErrors.push({
          phase: this.phase,
          what,
          status: answer.status,
          body: JSON.stringify(answer.body)?.slice(0, 300) ?? '',
        });
      }
    }
    if (answer.status >= 500) {
      this.serverErrors.push({ phase: this.phase, what, status: answer.status, code: answer.code, message: answer.body?.error?.message });
    }
  }

  count(phase: string, predicate: (status: number) => boolean): number {
    let total = 0;
    for (const [key, n] of this.byStatus) {
      const [p, status] = key.split(' ');
      if (p === phase && Number(status) !== 0 && predicate(Number(status))) total += n;
    }
    return total;
  }
}

/** A refused connection: nothing reached the server, so another node may be asked instead. */
const refused = (error: unknown) => (error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';

export class StorehouseApi {
  readonly urls: string[];
  private turn = 0;

  constructor(
    url: string | string[],
    private readonly token: string,
    private readonly tally: Tally,
    /** An answer slower than this is given up on (a hung request is a finding of its own). */
    private readonly timeoutMs = 60_000,
  ) {
    this.urls = typeof url === 'string' ? [url] : url;
  }

  get url(): string {
    return this.urls[0]!;
  }

  get nodes(): number {
    return this.urls.length;
  }

  /** The node the next unpinned request goes to (and moves the turn on). */
  nextNode(): number {
    return this.turn++ % this.urls.length;
  }

  async call(
    method: string,
    pathAndQuery: string,
    options: { body?: unknown; headers?: Record<string, string>; what?: string; node?: number; waitsOnAnother?: boolean } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...options.headers };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let answer: Answer;
    const first = options.node ?? this.nextNode();
    // A pinned request is asked of its node only; an unpinned one moves on past refused connections.
    const tries = options.node === undefined ? this.urls.length : 1;
    const sentAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      const node = (first + attempt) % this.urls.length;
      try {
        const response = await fetch(this.urls[node] + pathAndQuery, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await response.text();
        let body: any = text;
        try {
          body = text === '' ? null : JSON.parse(text);
        } catch {
          /* kept as text: a non-JSON error body is a finding */
        }
        answer = { status: response.status, body, code: body?.error?.code, node };
        break;
      } catch (error) {
        if (refused(error) && attempt + 1 < tries) continue;
        answer = { status: 0, body: null, networkError: (error as Error).cause ? String((error as Error).cause) : String(error), node };
        break;
      }
    }
    answer.sentAt = sentAt;
    answer.ms = Date.now() - sentAt;
    this.tally.record(options.what ?? `${method} ${pathAndQuery.split('?')[0]}`, answer, options.waitsOnAnother);
    return answer;
  }

  /** Whether a server (any node, or `node`) answers HTTP at all (any status), not counted in the tally. */
  async answers(node?: number): Promise<boolean> {
    for (const [index, url] of this.urls.entries()) {
      if (node !== undefined && index !== node) continue;
      try {
        await (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) })).arrayBuffer();
        return true;
      } catch {
        /* this one does not: the next */
      }
    }
    return false;
  }

  createStore(body: Record<string, unknown>, idempotencyKey?: string, node?: number): Promise<Answer> {
    return this.call('POST', '/v1/storage/stores/integration/direct', {
      body,
      headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
      what: `create ${body.integrationProductIdOrSlug}`,
      node,
      waitsOnAnother: idempotencyKey !== undefined,
    });
  }

  /** `concurrent`: another delete of the store is under way, whose work this one waits for. */
  deleteStore(id: string, concurrent = false): Promise<Answer> {
    return this.call('DELETE', `/v1/storage/stores/integration/${id}?disconnect=true`, { what: 'delete', waitsOnAnother: concurrent });
  }

  /** The team's stores, all of them, page by page (newest first; `next` is the `until` of the next page), from one node or the next. */
  async stores(node?: number): Promise<Store[]> {
    const all: Store[] = [];
    for (let until: number | null | undefined = undefined; ; ) {
      const answer = await this.call('GET', `/v1/storage/stores?limit=1000${until ? `&until=${until}` : ''}`, {
        what: 'list stores',
        node,
      });
      if (answer.status !== 200)
        throw new Error(`listing the stores answered ${answer.status} ${answer.networkError ?? JSON.stringify(answer.body)}`);
      all.push(...(answer.body.stores as Store[]));
      until = answer.body.pagination?.next;
      if (!until) return all;
    }
  }

  /** The one installation of the storehouse integration the bootstrap made. */
  async installationId(): Promise<string> {
    const answer = await this.call('GET', '/v1/integrations/configurations?view=account&integrationIdOrSlug=storehouse');
    if (answer.status !== 200 || !answer.body[0]?.id) throw new Error(`no installation: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body[0].id;
  }

  /**
   * Every store's secrets, through the way a user gets them: connect each to one new project
   * (with a prefix of its own so the variables do not clash) and read the project's variables
   * decrypted. Returns them by store id; a store that could not be connected is missing.
   */
  async secretsOf(stores: Store[], projectName: string): Promise<{ secrets: Map<string, Record<string, string>>; failures: string[] }> {
    const failures: string[] = [];
    const project = await this.call('POST', '/v11/projects', { body: { name: projectName }, what: 'create project' });
    if (project.status !== 200)
      throw new Error(`creating project ${projectName} answered ${project.status} ${JSON.stringify(project.body)}`);
    const prefixes = new Map<string, string>();
    for (const [index, store] of stores.entries()) {
      const prefix = `S${index}_`;
      const connected = await this.call('POST', `/v1/storage/stores/${store.id}/connections`, {
        body: { projectId: projectName, envVarPrefix: prefix, envVarEnvironments: ['production'] },
        what: 'connect',
      });
      if (connected.status === 201) prefixes.set(store.id, prefix);
      else failures.push(`${store.name} (${store.id}): connecting answered ${connected.status} ${JSON.stringify(connected.body)}`);
    }
    const envs = await this.call('GET', `/v10/projects/${projectName}/env?decrypt=true`, { what: 'read variables' });
    if (envs.status !== 200) throw new Error(`reading ${projectName}'s variables answered ${envs.status}`);
    const secrets = new Map<string, Record<string, string>>();
    for (const [storeId, prefix] of prefixes) {
      const values: Record<string, string> = {};
      for (const env of envs.body.envs as Array<{ key: string; value: string }>) {
        if (env.key.startsWith(prefix)) values[env.key.slice(prefix.length)] = env.value;
      }
      secrets.set(storeId, values);
    }
    return { secrets, failures };
  }
}
