/**
 * Amounts as Storehouse shows them. It keeps money as whole cents (integers, so sums are exact);
 * Vercel's API carries dollars as decimal strings with two decimals, and messages say them in
 * dollars too.
 */

/** Cents as the decimal string of dollars Vercel's API carries (`"20.00"`, `"-0.50"`); exact for any whole number of cents. */
export function dollarsOf(cents: number): string {
  const whole = Math.abs(cents);
  return `${cents < 0 ? '-' : ''}${Math.floor(whole / 100)}.${String(whole % 100).padStart(2, '0')}`;
}

/** Cents as a message says them (`$20.00`). */
export const usd = (cents: number) => `$${dollarsOf(cents)}`;
