/**
 * Bodies a schema alone cannot make valid: a store create whose metadata fits its product, a
 * card number that is a test card, a connection to the real project. Drawn beside the
 * schema-made bodies so some requests get all the way through (provisioning, billing, env vars)
 * and the near-valid ones mutate something that was nearly accepted.
 */
import fc, { type Arbitrary } from 'fast-check';
import type { Fixtures } from './fixtures.ts';
import { oneOfLive } from './values.ts';

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,30}$/);

export function recipeFor(operation: string, fx: Fixtures): Arbitrary<Record<string, unknown>> | undefined {
  const installation = oneOfLive(fx, (f) => [f.installationId]);
  switch (operation) {
    case 'POST /v1/storage/stores/integration/direct':
      return fc.oneof(
        fc.record(
          {
            name,
            integrationConfigurationId: installation,
            integrationProductIdOrSlug: fc.constantFrom('postgres', 'iap_storehouse_postgres'),
            metadata: fc.record(
              { connectionLimit: fc.integer({ min: 1, max: 100 }), statementTimeout: fc.constantFrom('off', '30s', '5min') },
              { requiredKeys: ['connectionLimit'] },
            ),
            billingPlanId: fc.constantFrom('postgres_hobby', 'postgres_pro', 'postgres_payg'),
            prepaymentAmountCents: fc.integer({ min: 500, max: 50_000 }),
            source: fc.constantFrom('marketplace', 'cli'),
          },
          { requiredKeys: ['name', 'integrationConfigurationId', 'integrationProductIdOrSlug', 'metadata'] },
        ),
        fc.record(
          {
            name,
            integrationConfigurationId: installation,
            integrationProductIdOrSlug: fc.constantFrom('redis', 'iap_storehouse_redis'),
            metadata: fc.record({ pubsub: fc.boolean() }),
            billingPlanId: fc.constantFrom('redis_hobby', 'redis_pro'),
          },
          { requiredKeys: ['name', 'integrationConfigurationId', 'integrationProductIdOrSlug'] },
        ),
      );
    case 'PATCH /v1/storage/stores/{id}':
      return fc.oneof(
        fc.record({ name }),
        fc.record({ metadata: fc.record({ connectionLimit: fc.integer({ min: 1, max: 100 }) }) }),
        fc.record({ billingPlanId: fc.constantFrom('postgres_hobby', 'postgres_pro') }),
      );
    case 'POST /_storehouse/payment-methods':
      return fc.record(
        {
          cardNumber: fc.constantFrom('4242424242424242', '5555555555554444', '378282246310005', '4000000000000002'),
          default: fc.boolean(),
        },
        { requiredKeys: ['cardNumber'] },
      );
    case 'POST /v1/storage/stores/{id}/connections':
    case 'POST /v1/integrations/installations/{integrationConfigurationId}/resources/{resourceId}/connections':
      return fc.record(
        {
          projectId: oneOfLive(fx, (f) => [f.projectId]),
          envVarEnvironments: fc.subarray(['production', 'preview', 'development'], { minLength: 1 }),
          envVarPrefix: fc.constantFrom('', 'APP_'),
        },
        { requiredKeys: ['projectId'] },
      );
    case 'POST /v11/projects':
      return fc.record({ name });
    default:
      return undefined;
  }
}
