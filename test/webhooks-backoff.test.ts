/**
 * The arithmetic of webhook delivery: the signature is Vercel's (hex HMAC-SHA1 of the raw body
 * keyed with the client secret, checked against the published test vector), and the wait before
 * each retry doubles from the base up to the cap, with equal jitter: never below half of it,
 * never above it, and not the same every time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs, signWebhook } from '../src/webhooks/delivery.ts';

test('the signature is the hex HMAC-SHA1 of the body with the secret', () => {
  assert.equal(signWebhook('The quick brown fox jumps over the lazy dog', 'key'), 'de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9');
  // Over the bytes sent (UTF-8), not a re-encoding: one changed byte is another signature.
  assert.notEqual(signWebhook('{"a":"é"}', 'key'), signWebhook('{"a":"e"}', 'key'));
});

test('each retry waits between half and all of base × 2^(attempt−1), capped, and jittered', () => {
  const config = { backoffMs: 1_000, backoffMaxMs: 60_000 };
  for (const [attempt, ceiling] of [
    [1, 1_000],
    [2, 2_000],
    [5, 16_000],
    [7, 60_000],
    [40, 60_000],
    [10_000, 60_000],
  ] as const) {
    const waits = Array.from({ length: 200 }, () => backoffMs(config, attempt));
    for (const wait of waits) {
      assert.ok(wait >= ceiling / 2 && wait <= ceiling, `attempt ${attempt} waited ${wait}, not within [${ceiling / 2}, ${ceiling}]`);
      assert.ok(Number.isInteger(wait));
    }
    assert.ok(new Set(waits).size > 10, `attempt ${attempt}: the waits are spread, not one value`);
  }
});
