/**
 * The catalog's `webhookUrl`: a URL with credentials in it (user:password@) is refused when the
 * catalog is loaded, naming the field. fetch refuses to send to such a URL and quotes it, whole,
 * in its error, which every attempt would record where the team's owners read it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadCatalogFile } from '../src/catalog/catalog-file.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { writeCatalogFile } from './helpers.ts';

const load = (webhookUrl: string) => {
  const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
  Object.assign(
    catalog.integrations.find((i: { id: string }) => i.id === 'oac_partner'),
    { clientSecret: 'a-client-secret-long-enough', webhookUrl },
  );
  const file = writeCatalogFile(catalog);
  try {
    return loadCatalogFile(file, fs.readFileSync(file, 'utf8'));
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
};

test('a webhookUrl with credentials is refused, naming the field; one with a path, query or @ in its path is kept', () => {
  for (const url of ['http://hooks:s3cret@127.0.0.1:9/webhook', 'https://token@example.com/webhook', 'http://a:b@example.com']) {
    assert.throws(() => load(url), /webhookUrl/, url);
  }
  for (const url of ['http://127.0.0.1:9/webhook', 'https://example.com', 'https://example.com/hooks/@team?key=1#x']) {
    const catalog = load(url);
    assert.equal(catalog.integrations.find((i) => i.id === 'oac_partner')?.webhookUrl, url);
  }
});
