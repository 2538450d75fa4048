/**
 * The RS256 keys Storehouse signs its calls to partner servers with (OIDC JWTs, as Vercel's
 * marketplace does: docs/partner-api.md §2.1), and the JWKS partners verify them by.
 *
 * Keys live in the database, the private half sealed with the secret key, so every node signs
 * with the same key and a restart keeps it. The first key is made on first use (generating one
 * takes a moment; start-up does not pay it). Rotating retires the current key but keeps it in the
 * JWKS until every token it signed has expired, so a partner that verifies a token signed a
 * moment before the rotation still finds its key.
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { JWK } from 'jose';
import type { Database, Queryable } from '../db/database.ts';
import { isUniqueViolation } from '../db/database.ts';
import { randomBase62 } from '../ids.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

const generate = promisify(generateKeyPair);

/** Where a key's private half is sealed: bound to its row (the kid is the primary key). */
const sealedAt = (kid: string) => ({ table: 'signing_keys', id: kid, column: 'private_key' }) as const;

/** jose is loaded on the first signature, not at start-up (it costs ~40 ms to load). */
const jose = () => import('jose');

/** How long a token Storehouse signs is valid: one call, with its retries and some clock skew. */
export const TOKEN_TTL_SECONDS = 300;

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
}

export interface PublishedKey {
  kid: string;
  jwk: JWK;
}

export class SigningKeys {
  private current: Promise<SigningKey> | undefined;
  /** The published set, read again after a minute (a retired key leaves it in time) or a change. */
  private publishedSet: { keys: Promise<PublishedKey[]>; readAt: number } | undefined;

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {}

  /** Forgets the key held in memory (another node rotated it). */
  invalidate(): void {
    this.current = undefined;
    this.publishedSet = undefined;
  }

  /** Signs `claims` for one call: RS256 with the current key, valid for TOKEN_TTL_SECONDS. */
  async sign(claims: Record<string, unknown>, issuer: string): Promise<string> {
    const key = await this.currentKey();
    const { SignJWT } = await jose();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .setIssuer(issuer)
      .setIssuedAt()
      .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
      .setJti(randomBase62(16))
      .sign(key.privateKey);
  }

  /** The keys partners may meet in a valid token: the current one and those retired too recently for their tokens to have expired. */
  published(): Promise<PublishedKey[]> {
    if (!this.publishedSet || Date.now() - this.publishedSet.readAt > 60_000) {
      const keys = this.readPublished().catch((error) => {
        this.publishedSet = undefined;
        throw error;
      });
      this.publishedSet = { keys, readAt: Date.now() };
    }
    return this.publishedSet.keys;
  }

  private async readPublished(): Promise<PublishedKey[]> {
    await this.currentKey();
    const { rows } = await this.db.query<{ kid: string; public_jwk: JWK }>(
      `SELECT kid, public_jwk FROM signing_keys
        WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
        ORDER BY retired_at IS NOT NULL, created_at DESC`,
      [TOKEN_TTL_SECONDS + 60],
    );
    return rows.map((row) => ({ kid: row.kid, jwk: row.public_jwk }));
  }

  /** Retires the current key and makes a new one; returns the new key's id. */
  async rotate(): Promise<{ kid: string; retired: string[] }> {
    const made = await makeKey(this.box);
    const retired = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ kid: string }>('UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL RETURNING kid');
      await insertKey(tx, made);
      // Keys whose tokens expired long ago are of no use to anyone.
      await tx.query("DELETE FROM signing_keys WHERE retired_at < now() - interval '1 day'");
      return rows.map((row) => row.kid);
    });
    this.invalidate();
    return { kid: made.kid, retired };
  }

  private currentKey(): Promise<SigningKey> {
    this.current ??= this.loadOrCreate().catch((error) => {
      this.current = undefined;
      throw error;
    });
    return this.current;
  }

  private async loadOrCreate(): Promise<SigningKey> {
    for (;;) {
      const { rows } = await this.db.query<{ kid: string; private_key: string }>(
        'SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL',
      );
      if (rows[0]) return { kid: rows[0].kid, privateKey: createPrivateKey(this.box.open(rows[0].private_key, sealedAt(rows[0].kid))) };
      const made = await makeKey(this.box);
      try {
        await insertKey(this.db, made);
        return { kid: made.kid, privateKey: made.privateKey };
      } catch (error) {
        // Another node made the first key at the same moment: use theirs.
        if (!isUniqueViolation(error)) throw error;
      }
    }
  }
}

interface MadeKey {
  kid: string;
  privateKey: KeyObject;
  sealed: string;
  jwk: JWK;
}

async function makeKey(box: SecretBox): Promise<MadeKey> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength: 2048 });
  const kid = `key_${randomBase62(16)}`;
  const { exportJWK } = await jose();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, sealed: box.seal(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, sealedAt(kid)), jwk };
}

async function insertKey(db: Queryable, key: MadeKey): Promise<void> {
  await db.query('INSERT INTO signing_keys (kid, private_key, public_jwk) VALUES ($1, $2, $3)', [
    key.kid,
    key.sealed,
    JSON.stringify(key.jwk),
  ]);
}
