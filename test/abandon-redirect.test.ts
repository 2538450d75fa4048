/**
 * A create that timed out is undone by asking the partner again with the same key (HttpProvider
 * .abandon). A redirect in answer to that repeat says nothing about the first call, which may still
 * be making the resource: the store must stay, being rolled back, and not be forgotten as if the
 * partner had nothing (review finding: a 3xx was taken for "nothing there", and the resource the
 * first call made was orphaned at the partner).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { PLANS } from '../src/partner-server/plans.ts';
import { sdkFailure, startServer, type TestServer } from './helpers.ts';
import { writePartnerCatalog } from './partner-fixtures.ts';

describe('a partner that redirects the repeat of a provision that timed out', () => {
  const requests: string[] = [];
  const hanging: http.ServerResponse[] = [];
  let posts = 0;
  const partner = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && req.url!.startsWith('/v1/products/postgres/plans')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ plans: PLANS }));
      } else if (req.method === 'PUT') {
        res.writeHead(204).end();
      } else if (req.method === 'POST' && req.url!.endsWith('/resources')) {
        posts++;
        if (posts === 1)
          hanging.push(res); // the first provision is slow: it is still making the resource
        else res.writeHead(307, { location: 'http://127.0.0.1:9/elsewhere' }).end();
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such thing' } }));
      }
    });
  });
  let server: TestServer;
  let installationId: string;

  before(async () => {
    await new Promise<void>((resolve) => partner.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(partner.address() as { port: number }).port}`;
    server = await startServer('embedded', {
      catalogPath: writePartnerCatalog({ url }),
      env: { STOREHOUSE_PROVISION_TIMEOUT_MS: '1000', STOREHOUSE_PARTNER_RETRIES: '0' },
    });
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    installationId = configurations[0]!.id!;
  });
  after(async () => {
    for (const response of hanging) response.destroy();
    partner.closeAllConnections();
    partner.close();
    await server?.close();
  });

  test('keeps the store being rolled back, with its name, instead of forgetting it', async () => {
    const failed = await sdkFailure(
      server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'slow-then-redirect',
          integrationConfigurationId: installationId,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        },
      }),
    );
    assert.equal(failed.status, 503);
    assert.equal(posts, 2, 'the provision was asked for again, to undo it');
    // Answered after the undo was tried: the store is still there, as the record of what may exist.
    const { rows } = await server.runtime.db.query<{ status: string; rolling_back: boolean }>(
      "SELECT status, rolling_back FROM stores WHERE name = 'slow-then-redirect'",
    );
    assert.deepEqual(rows, [{ status: 'deleting', rolling_back: true }]);
    assert.ok(!requests.some((request) => request.startsWith('DELETE')), 'nothing was deleted on a guess');
  });
});
