/** What the tests of the built-in providers share: a provision request, and a provision's secrets by name. */
import assert from 'node:assert/strict';
import type { Product } from '../src/catalog/catalog.ts';
import { AppError } from '../src/errors.ts';
import type { Provider, ProvisionRequest, Secret } from '../src/providers/provider.ts';

/** Secrets by name: `{ REDIS_URL: ..., REDIS_PASSWORD: ... }`. */
export const secretsOf = (secrets: Secret[]) => Object.fromEntries(secrets.map((s) => [s.name, s.value]));

/** A provision of the default catalog's hobby plan of `product` (`<slug>_hobby`); named after its key unless `fields` say otherwise. */
export function provisionRequest(
  product: Product,
  installationId: string,
  key: string,
  fields: Partial<ProvisionRequest> = {},
): ProvisionRequest {
  return { idempotencyKey: key, installationId, product, name: key, metadata: {}, billingPlanId: `${product.slug}_hobby`, ...fields };
}

/**
 * A provider whose server is not there: unavailable, for a reason matching `reason`, and a
 * provision is refused 503 provider_unavailable, never a 500. The provider is closed after.
 */
export async function assertUnreachable(
  provider: Provider & { close(): Promise<void> },
  request: ProvisionRequest,
  reason: RegExp,
): Promise<void> {
  try {
    const answer = await provider.availability();
    assert.equal(answer.available, false);
    assert.match((answer as { reason: string }).reason, reason);
    await assert.rejects(
      provider.provision(request),
      (error) => error instanceof AppError && error.status === 503 && error.code === 'provider_unavailable',
    );
  } finally {
    await provider.close();
  }
}
