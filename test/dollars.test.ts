/** Cents shown as dollars (src/billing/dollars.ts): what Vercel's API carries and what messages say. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dollarsOf, usd } from '../src/billing/dollars.ts';

test('whole cents as two-decimal dollars, exactly, at any size and sign', () => {
  const cases: Array<[number, string]> = [
    [0, '0.00'],
    [5, '0.05'],
    [50, '0.50'],
    [2000, '20.00'],
    [123_456, '1234.56'],
    [999_999_999_999, '9999999999.99'],
    [-50, '-0.50'],
    [-123_456, '-1234.56'],
  ];
  for (const [cents, dollars] of cases) assert.equal(dollarsOf(cents), dollars, String(cents));
  assert.equal(usd(50), '$0.50');
  assert.equal(usd(1_000_000), '$10000.00');
});
