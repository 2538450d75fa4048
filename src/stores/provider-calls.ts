/**
 * What the store lifecycle needs around a call to a provider: a deadline, and the reading of its
 * failures: whether the resource is gone, whether the call may still have taken effect, and the
 * error the API answers with.
 */
import { AppError, validationError, type FieldError } from '../errors.ts';
import { PartnerError } from '../partners/partner-client.ts';
import type { Store } from './stores.ts';

/** A provider call that did not answer by its deadline (it may still be running, and may still take effect). */
export class CallTimeout extends Error {}

/** `call`, or CallTimeout once `ms` have passed. */
export async function within<T>(call: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CallTimeout()), ms);
  });
  try {
    return await Promise.race([call, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A provider's answer that the resource is gone already (deleted by an earlier attempt, or never created). */
export const isGone = (error: unknown) => error instanceof AppError && (error.status === 404 || error.code === 'resource_deleted');

/**
 * Whether a failed call may still take effect, or succeed if sent again: no answer (a timeout,
 * an unreachable partner), a server error, a 409 (the partner API's answer while the same key's
 * first call is still running) or a 429. A provider's other refusals (a partner's 4xx, a built-in
 * provider's 4xx) are definite.
 */
export function mayHaveHappened(error: unknown): boolean {
  if (error instanceof PartnerError)
    return error.partnerStatus === 0 || error.partnerStatus >= 500 || error.partnerStatus === 409 || error.partnerStatus === 429;
  if (error instanceof AppError) return error.status >= 500 && !brokeContract(error);
  return true;
}

/** A 2xx answer that broke the partner contract: the call succeeded, but its answer cannot be read. */
export const brokeContract = (error: unknown): error is AppError => error instanceof AppError && error.code === 'provider_invalid_response';

/** The error a provider's failure is answered with: its own if it is one of ours, else 502 (503 for a timeout). */
export function providerFailure(store: Store, error: unknown, operation = 'provision'): AppError {
  if (error instanceof CallTimeout) {
    const outcome = operation === 'provision' ? '; nothing was created, retry later' : ', retry later';
    return new AppError(503, 'provider_timeout', `The provider did not ${operation} the store ${store.name} in time${outcome}`);
  }
  if (error instanceof AppError) {
    if (error.status >= 500) return error;
    // A partner server checks metadata itself: its 400 naming fields is the caller's to fix.
    if (error instanceof PartnerError && error.partnerStatus === 400 && Array.isArray(error.extra.fields)) {
      return validationError(error.extra.fields as FieldError[], `The provider refused the store ${store.name}: ${error.message}`);
    }
    // The provider refused what we sent: not the caller's mistake (validation ran first), so a 502.
    return new AppError(502, 'provider_error', `The provider refused to ${operation} the store ${store.name}: ${error.message}`);
  }
  return new AppError(502, 'provider_error', `The provider failed to ${operation} the store ${store.name}: ${(error as Error).message}`);
}
