import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Uniformly random base62 string (rejection sampling, so no character is favoured). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Identifiers in Vercel's style: `team_...`, `icfg_...`; users have no prefix, as on Vercel. */
export const newId = (prefix: string) => (prefix ? `${prefix}_` : '') + randomBase62(24);

/** Token values: 256 bits of randomness behind a recognisable prefix (`sh` for users', `shi` for installations'). */
export const newTokenValue = (prefix = 'sh') => `${prefix}_${randomBase62(43)}`;

/** Tokens are stored only as this hash; they are random enough that a fast hash is safe. */
export const hashToken = (value: string) => createHash('sha256').update(value).digest('hex');
