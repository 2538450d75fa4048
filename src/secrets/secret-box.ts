/**
 * Encryption at rest for secrets Storehouse must be able to read back (store passwords,
 * connection URLs): AES-256-GCM under one key. The key comes from STOREHOUSE_SECRET_KEY (32 bytes,
 * base64 or hex; the same on every node), or is generated once into `<data dir>/secret.key`
 * (mode 0600) for a single node.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const VERSION = 'v1';

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  static fromKey(key: Buffer): SecretBox {
    if (key.length !== 32) throw new Error('The secret key must be 32 bytes');
    return new SecretBox(key);
  }

  /** The configured key, or the data dir's, made on first use. */
  static load(configured: string | undefined, dataDir: string): SecretBox {
    if (configured) return SecretBox.fromKey(parseKey(configured));
    const file = path.join(dataDir, 'secret.key');
    try {
      return SecretBox.fromKey(parseKey(fs.readFileSync(file, 'utf8').trim()));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another process made it first
    }
    return SecretBox.fromKey(parseKey(fs.readFileSync(file, 'utf8').trim()));
  }

  seal(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split(':');
    if (version !== VERSION || !iv || !tag || body === undefined) throw new Error('Not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('A sealed secret does not open with this key: is STOREHOUSE_SECRET_KEY the same on every node?');
    }
  }
}

function parseKey(text: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error('STOREHOUSE_SECRET_KEY must be 32 bytes, as 64 hex digits or base64');
  return key;
}
