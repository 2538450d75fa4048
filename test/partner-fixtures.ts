/**
 * What the partner-server tests share: a port chosen before a server starts (the catalog must
 * name the partner's URL before Storehouse starts, and the partner must name Storehouse's), the
 * catalog file selling the reference partner, and the Vercel error an SDK call failed with.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SDKError } from '@vercel/sdk/models/sdkerror.js';
import { stringify } from 'yaml';
import { catalogWithPartner, type PartnerEntryOptions } from '../src/partner-server/catalog.ts';

/** A free loopback port. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A catalog file (in a directory of its own: remove `path.dirname(file)` afterwards) selling the partner's products. */
export function writePartnerCatalog(options: PartnerEntryOptions): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
  fs.writeFileSync(file, stringify(catalogWithPartner(options)));
  return file;
}

/** The status and Vercel-format error of a failed SDK call. */
export async function sdkFailure(call: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SDKError, `expected an SDKError, got ${error}`);
    const body = JSON.parse(error.body);
    assert.equal(typeof body.error?.code, 'string', `not a Vercel error body: ${error.body}`);
    assert.equal(typeof body.error?.message, 'string', `not a Vercel error body: ${error.body}`);
    return { status: error.statusCode, code: body.error.code, message: body.error.message };
  }
  assert.fail('expected the call to fail');
}
