/**
 * Encryption at rest for secrets Storehouse must be able to read back (store passwords,
 * connection URLs, signing keys): AES-256-GCM under one key. The key comes from
 * STOREHOUSE_SECRET_KEY (32 bytes, base64 or hex; the same on every node), or is generated once
 * into `<data dir>/secret.key` (mode 0600) for a single node.
 *
 * A sealed value is `v2:<iv>:<tag>:<ciphertext>` (base64), and is bound to where it lives: the
 * table, the row's id and the column are the cipher's additional data, so a ciphertext copied
 * to another row or column (by anyone who can write the database but has no key) does not open
 * there. The v1 format (no additional data) is only read: the start re-seals every v1 value as
 * v2 (reseal.ts), after which this process refuses v1.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.ts';
import type { SealContext } from './sealed-columns.ts';

export type { SealContext } from './sealed-columns.ts';

const VERSION = 'v2';
const LEGACY = 'v1';

/** Where a box reports a value that does not open: the context and the reason, never the value. */
export interface SecretBoxLogger {
  error(details: Record<string, unknown>, message: string): void;
}

export interface SecretBoxOptions {
  logger?: SecretBoxLogger | undefined;
}

/**
 * A sealed value that does not open: a 409 where it reaches a client (state the client cannot
 * fix by asking again differently, and no 500), with the context but never the value.
 */
export class UnopenableSecretError extends AppError {
  constructor(
    readonly context: SealContext,
    readonly reason: string,
  ) {
    super(409, 'secret_unreadable', `A sealed value (${context.table} ${context.id}, ${context.column}) cannot be opened: ${reason}`);
    this.name = 'UnopenableSecretError';
  }
}

/** The additional data a value is sealed with: unambiguous (a JSON array), and naming the format. */
const additionalData = (context: SealContext) =>
  Buffer.from(JSON.stringify(['storehouse', VERSION, context.table, context.id, context.column]));

function checkContext(context: SealContext): void {
  if (!context.table || !context.column || typeof context.id !== 'string' || context.id === '') {
    throw new Error(`A sealed value needs its table, row id and column (got ${JSON.stringify(context)})`);
  }
}

export class SecretBox {
  /** Whether v1 values still open through `open` (until the start's re-seal has run). */
  private legacyOpens = true;

  private constructor(
    private readonly key: Buffer,
    private readonly logger: SecretBoxLogger | undefined,
  ) {}

  static fromKey(key: Buffer, options: SecretBoxOptions = {}): SecretBox {
    if (key.length !== 32) throw new Error('The secret key must be 32 bytes');
    return new SecretBox(key, options.logger);
  }

  /** The configured key, or the data dir's, made on first use. */
  static load(configured: string | undefined, dataDir: string, options: SecretBoxOptions = {}): SecretBox {
    if (configured) return SecretBox.fromKey(parseKey(configured), options);
    const file = path.join(dataDir, 'secret.key');
    try {
      return SecretBox.fromKey(parseKey(fs.readFileSync(file, 'utf8').trim()), options);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another process made it first
    }
    return SecretBox.fromKey(parseKey(fs.readFileSync(file, 'utf8').trim()), options);
  }

  /** Seals `plaintext` for one place: it opens only with the same table, row id and column. */
  seal(plaintext: string, context: SealContext): string {
    checkContext(context);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(additionalData(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }

  /**
   * Opens a value sealed for `context`. One that does not open (sealed for another row or
   * column, with another key, or malformed) is logged at error level, without the value, and
   * thrown as an UnopenableSecretError.
   */
  open(sealed: string, context: SealContext): string {
    checkContext(context);
    if (sealed.startsWith(`${LEGACY}:`) && !this.legacyOpens) {
      throw this.unopenable(context, 'it is in the retired v1 format: restart Storehouse to re-seal it');
    }
    return this.openAny(sealed, context);
  }

  /** A v1 value opened and sealed again as v2 for `context` (the start's re-seal; opens v1 even once retired). */
  reseal(sealed: string, context: SealContext): string {
    return this.seal(this.openAny(sealed, context), context);
  }

  /** From now on `open` refuses v1 values: every one was re-sealed, and one seen later was put there by hand (or by an old node). */
  retireLegacy(): void {
    this.legacyOpens = false;
  }

  private openAny(sealed: string, context: SealContext): string {
    const [version, iv, tag, body, extra] = sealed.split(':');
    if ((version !== VERSION && version !== LEGACY) || !iv || !tag || body === undefined || extra !== undefined) {
      throw this.unopenable(context, 'it is not a sealed value');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
      if (version === VERSION) decipher.setAAD(additionalData(context));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw this.unopenable(
        context,
        'it was sealed for another row or column, or with another key (is STOREHOUSE_SECRET_KEY the same on every node?)',
      );
    }
  }

  private unopenable(context: SealContext, reason: string): UnopenableSecretError {
    this.logger?.error({ table: context.table, id: context.id, column: context.column, reason }, 'a sealed value does not open');
    return new UnopenableSecretError(context, reason);
  }
}

function parseKey(text: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error('STOREHOUSE_SECRET_KEY must be 32 bytes, as 64 hex digits or base64');
  return key;
}
