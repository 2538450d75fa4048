/**
 * Faults the reference partner can be told to show, so Storehouse's handling of a slow, failing
 * or contract-breaking partner can be tested against a real server: per operation, a delay, an
 * error status, a malformed 2xx answer, for the next N calls or until cleared. They are set at
 * run time, in process (the `faults` object) or over HTTP (`PUT /_partner/faults`).
 *
 * `malformed` applies only to operations whose answer Storehouse checks: `uninstall`, `delete` and
 * `webhook` are answered without a body it reads (a 204, a 200 whose body is ignored), so a "malformed"
 * answer there would be a success and break nothing; it is refused for them (a type error in
 * process, a 400 over HTTP). Use a `status` to make them fail.
 */
import { validationError, type FieldError } from '../errors.ts';

/** The partner API calls a fault can be attached to; each names the routes it covers. */
export const OPERATIONS = [
  'install', // PUT and GET /v1/installations/:id
  'uninstall', // DELETE /v1/installations/:id
  'provision', // POST /v1/installations/:id/resources
  'get', // GET .../resources/:rid
  'update', // PATCH .../resources/:rid
  'delete', // DELETE .../resources/:rid
  'plans', // GET /v1/products/:slug/plans and GET .../resources/:rid/plans
  'rotate', // POST .../resources/:rid/secrets/rotate
  'webhook', // POST /webhook, the receiver of Storehouse's webhooks (webhooks.ts)
] as const;

export type Operation = (typeof OPERATIONS)[number];

/** Operations whose answer has no body Storehouse checks: a malformed answer cannot be shown there. */
export const BODILESS_OPERATIONS = ['uninstall', 'delete', 'webhook'] as const satisfies readonly Operation[];

/** An operation whose answer has a body Storehouse checks against the contract. */
export type CheckedOperation = Exclude<Operation, (typeof BODILESS_OPERATIONS)[number]>;

export const hasCheckedBody = (operation: Operation): operation is CheckedOperation =>
  !(BODILESS_OPERATIONS as readonly string[]).includes(operation);

export interface Fault {
  /** Wait this long before answering. */
  delayMs?: number;
  /** Answer with this HTTP status and an error body instead of the real answer. */
  status?: number;
  /** Answer 2xx with a body that breaks the partner API's contract (not for `uninstall` or `delete`). */
  malformed?: boolean;
  /** Apply to the next N calls only, then clear; without it the fault stays until replaced. */
  times?: number;
  /**
   * Do the work first, then delay and answer with the fault: the resource exists (or is gone)
   * but the marketplace hears an error or nothing in time, as when an answer is lost. Without
   * it the fault comes first and nothing is done.
   */
  afterWork?: boolean;
}

/** A fault for `uninstall` or `delete`: their answers have no body to break, so no `malformed`. */
export interface BodilessFault extends Fault {
  malformed?: never;
}

export interface ProvisionFault extends Fault {
  /**
   * Answer `status: pending` (with the secrets, as docs/partner-api.md §1.3 requires), then after this many ms
   * become `ready` and tell the marketplace (resource.updated event); `forever` never does.
   */
  pending?: 'forever' | number;
}

export interface Faults {
  install?: Fault;
  uninstall?: BodilessFault;
  provision?: ProvisionFault;
  get?: Fault;
  update?: Fault;
  delete?: BodilessFault;
  plans?: Fault;
  rotate?: Fault;
  /** The webhook receiver: a status instead of 200, a delay (past Storehouse's timeout: a hang), `afterWork` to lose the answer. */
  webhook?: BodilessFault;
}

/** What a route answers: a status and, unless it is 204, a JSON body. */
export interface Answer {
  status: number;
  body?: unknown;
}

/**
 * The fault for one call of `operation`, if any, counting the call against `times` (a fault
 * whose count runs out is removed, so the next call is served normally).
 */
export function takeFault(faults: Faults, operation: Operation): ProvisionFault | undefined {
  const fault: ProvisionFault | undefined = faults[operation];
  if (!fault) return undefined;
  if (fault.times !== undefined) {
    if (fault.times <= 1) delete faults[operation];
    else fault.times -= 1;
    if (fault.times <= 0) return undefined; // set as `times: 0`: already used up
  }
  return { ...fault };
}

/** The answer an injected error status gets: the partner API's error body (docs/partner-api.md §1). */
export function faultAnswer(operation: Operation, status: number): Answer {
  if (status === 204 || status === 304) return { status };
  const message = `The partner server was told to answer ${operation} with ${status}`;
  // A 400 names a field, as a partner's validation error does (§1: `fields` on 400 only).
  if (status === 400)
    return {
      status,
      body: {
        error: { code: 'validation_error', message, fields: [{ key: 'metadata', message: 'refused by the partner (injected fault)' }] },
      },
    };
  return { status, body: { error: { code: 'injected_fault', message } } };
}

/** A 2xx answer that breaks the contract, in a way a careless partner might. */
export function malformedAnswer(operation: CheckedOperation): Answer {
  switch (operation) {
    case 'provision':
      // No id, an unknown status, and secrets that are not a list.
      return { status: 201, body: { productId: 'postgres', name: 'broken', status: 'bogus', secrets: 'DATABASE_URL=postgres://' } };
    case 'get':
    case 'update':
      return { status: 200, body: { productId: 'postgres', name: 'broken', status: 'bogus' } };
    case 'plans':
      return { status: 200, body: { plans: [{ name: 'A plan without id or type' }] } };
    case 'rotate':
      return { status: 200, body: { sync: true } }; // sync, yet no secrets
    case 'install':
      return { status: 200, body: { billingPlan: { id: 42, type: 'forever' }, notification: { level: 'loud' } } };
  }
}

/** Checks a `PUT /_partner/faults` body (400 `validation_error` naming each bad key); returns it as Faults. */
export function parseFaults(body: unknown): Faults {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw validationError([{ key: '(body)', message: 'must be an object of operation to fault' }]);
  const fields: FieldError[] = [];
  const number = (key: string, value: unknown) => {
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0))
      fields.push({ key, message: 'must be a number, 0 or more' });
  };
  for (const [operation, fault] of Object.entries(body)) {
    if (!(OPERATIONS as readonly string[]).includes(operation)) {
      fields.push({ key: operation, message: `is not an operation (${OPERATIONS.join(', ')})` });
      continue;
    }
    if (typeof fault !== 'object' || fault === null || Array.isArray(fault)) {
      fields.push({ key: operation, message: 'must be an object' });
      continue;
    }
    const { delayMs, status, malformed, times, afterWork, pending, ...rest } = fault as Record<string, unknown>;
    number(`${operation}.delayMs`, delayMs);
    number(`${operation}.times`, times);
    if (status !== undefined && !(Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599)) {
      fields.push({ key: `${operation}.status`, message: 'must be an HTTP status (200 to 599)' });
    }
    if (malformed !== undefined && typeof malformed !== 'boolean')
      fields.push({ key: `${operation}.malformed`, message: 'must be a boolean' });
    else if (malformed !== undefined && !hasCheckedBody(operation as Operation)) {
      fields.push({
        key: `${operation}.malformed`,
        message: `does not apply to ${operation}: its answer has no body Storehouse checks (use a status)`,
      });
    }
    if (afterWork !== undefined && typeof afterWork !== 'boolean')
      fields.push({ key: `${operation}.afterWork`, message: 'must be a boolean' });
    if (pending !== undefined) {
      if (operation !== 'provision') fields.push({ key: `${operation}.pending`, message: 'applies to provision only' });
      else if (pending !== 'forever') number(`${operation}.pending`, pending);
    }
    for (const key of Object.keys(rest)) fields.push({ key: `${operation}.${key}`, message: 'is not a fault setting' });
  }
  if (fields.length > 0) throw validationError(fields);
  return body as Faults;
}

/** Replaces the faults in place, so everyone holding the object sees the new ones. */
export function replaceFaults(faults: Faults, next: Faults): void {
  for (const operation of OPERATIONS) delete faults[operation];
  Object.assign(faults, structuredClone(next));
}
