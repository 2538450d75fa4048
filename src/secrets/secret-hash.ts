/**
 * Secrets Storehouse only ever checks and never reads back (an integration's client secret): kept
 * as a salted scrypt hash, so a copy of the database does not give them away, and an operator's
 * guessable secret is slow to guess from its hash. Unlike access tokens (256 random bits, where a
 * fast hash is enough) these are written by people.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const PREFIX = 'scrypt';
/** scrypt's usual interactive cost: about 50 ms and 16 MiB a check, paid only on rare calls (credential rotation). */
const COST = { N: 16_384, r: 8, p: 1 };
const KEY_LENGTH = 32;

const derive = (secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => scrypt(secret, salt, KEY_LENGTH, options, (error, key) => (error ? reject(error) : resolve(key))));

/** `scrypt$N$r$p$<salt>$<key>` (base64url): the parameters travel with the hash, so they can be raised later. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt, COST);
  return [PREFIX, COST.N, COST.r, COST.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Whether `secret` is the one hashed; compared in constant time. A malformed hash matches nothing. */
export async function verifySecret(secret: string, hash: string): Promise<boolean> {
  const [prefix, n, r, p, salt, key] = hash.split('$');
  if (prefix !== PREFIX || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64url');
  if (expected.length !== KEY_LENGTH) return false;
  const actual = await derive(secret, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return timingSafeEqual(actual, expected);
}
