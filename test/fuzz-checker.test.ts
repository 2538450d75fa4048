/**
 * The fuzzer's "refused but changed" check (fuzz/checks.ts, fuzz/write-attribution.ts), on a real
 * server: a refused request that really changes a watched table is reported, with the tables it
 * changed (cascades included), and a write the request did not make, committed while the request
 * is in flight, is not, though the snapshot sees it.
 *
 * The request is a real refusal (POST /v11/projects with an empty name: 400). The change it makes
 * on purpose is a real write committed inside its handling: the server's `access.principal`,
 * which its authentication calls, is wrapped for that one request to write first. The write it
 * does not make comes from this test's own context, and from the server's real token-use flush
 * (`markTokensUsed`), while the request waits in its authentication for them to commit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeJudge, type Judge } from '../fuzz/checks.ts';
import { makeFixtures, startFuzzServer, type Fixtures } from '../fuzz/fixtures.ts';
import { loadOpenApi, responseChecker } from '../fuzz/openapi.ts';
import type { FuzzRequest } from '../fuzz/requests.ts';
import { changes, snapshot } from '../fuzz/state.ts';
import { hashToken } from '../src/ids.ts';
import type { Access } from '../src/tenancy/access.ts';
import { markTokensUsed } from '../src/tenancy/tokens.ts';
import { BACKENDS, type TestServer } from './helpers.ts';

/** Refused with 400 (a project needs a name), after authentication. */
const REFUSED: FuzzRequest = {
  operation: 'POST /v11/projects',
  method: 'POST',
  target: '/v11/projects',
  auth: 'owner',
  headers: { 'content-type': 'application/json' },
  body: '{"name":""}',
};

/** Runs `fault` inside the next request's authentication, in that request's async context; returns the undo. */
function duringNextRequest(access: Access, fault: () => Promise<void>): () => void {
  const principal = access.principal;
  let used = false;
  access.principal = async (authorization) => {
    if (!used) {
      used = true;
      await fault();
    }
    return principal.call(access, authorization);
  };
  return () => {
    access.principal = principal;
  };
}

const refusedButChanged = (failures: Array<{ kind: string; detail: string }>) => failures.filter((f) => f.kind === 'refused-but-changed');

for (const backend of BACKENDS) {
  describe(`the fuzzer's refused-but-changed check (${backend})`, () => {
    let server: TestServer;
    let fx: Fixtures;
    let judge: Judge;
    let ownerTokenId: string;

    before(async () => {
      server = await startFuzzServer(backend, undefined);
      fx = await makeFixtures(server);
      const api = await loadOpenApi(server.url);
      const { check } = await responseChecker(api, server.url);
      judge = await makeJudge(server, api, check, fx, false);
      const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM access_tokens WHERE token_hash = $1', [
        hashToken(server.token),
      ]);
      ownerTokenId = rows[0]!.id;
    });
    after(() => server?.close());

    const rename = (name: string) => server.runtime.db.query('UPDATE projects SET name = $1 WHERE id = $2', [name, fx.projectId]);
    const projectName = async () =>
      (await server.runtime.db.query<{ name: string }>('SELECT name FROM projects WHERE id = $1', [fx.projectId])).rows[0]?.name;

    test('a refusal that changes nothing is not reported', async () => {
      const { response, failures } = await judge(REFUSED);
      assert.equal(response?.status, 400);
      assert.deepEqual(failures, []);
    });

    test('a refused request that commits a change is reported, with the table it changed', async () => {
      const undo = duringNextRequest(server.runtime.access, async () => {
        await server.runtime.db.transaction(async (tx) => {
          await tx.query('UPDATE projects SET name = $1 WHERE id = $2', ['changed-by-the-request', fx.projectId]);
        });
      });
      try {
        const { response, failures } = await judge(REFUSED);
        assert.equal(response?.status, 400);
        assert.equal(await projectName(), 'changed-by-the-request');
        const reported = refusedButChanged(failures);
        assert.equal(reported.length, 1, JSON.stringify(failures));
        assert.match(reported[0]!.detail, /^changed: projects \(\d+ → \d+ rows, a row changed\); answer: /);
      } finally {
        undo();
      }
    });

    test('writes committed while a refused request is in flight, but not by it, are not reported', async () => {
      let arrived!: () => void;
      let release!: () => void;
      const inFlight = new Promise<void>((resolve) => (arrived = resolve));
      const written = new Promise<void>((resolve) => (release = resolve));
      const undo = duringNextRequest(server.runtime.access, async () => {
        arrived();
        await written;
      });
      try {
        const before = await snapshot(server.runtime.db);
        const judged = judge(REFUSED);
        await inFlight;
        // The request waits in its authentication: these commit inside its window, from elsewhere.
        await rename('changed-in-the-background');
        await markTokensUsed(server.runtime.db, [ownerTokenId]);
        release();
        const { response, failures } = await judged;
        assert.equal(response?.status, 400);
        // The snapshot did see both tables change; only the attribution keeps them off the request.
        const seen = changes(before, await snapshot(server.runtime.db)).map((c) => c.split(' ')[0]);
        assert.ok(seen.includes('projects') && seen.includes('access_tokens'), `the snapshot saw ${seen.join(', ') || 'no change'}`);
        assert.deepEqual(failures, []);
      } finally {
        release();
        undo();
      }
    });

    test('with both at once, only the tables the request changed are reported', async () => {
      let renamed!: () => void;
      let release!: () => void;
      const requestWrote = new Promise<void>((resolve) => (renamed = resolve));
      const written = new Promise<void>((resolve) => (release = resolve));
      const undo = duringNextRequest(server.runtime.access, async () => {
        await rename('changed-by-the-request-again');
        renamed();
        await written;
      });
      try {
        const judged = judge(REFUSED);
        await requestWrote;
        await markTokensUsed(server.runtime.db, [ownerTokenId]);
        release();
        const { response, failures } = await judged;
        assert.equal(response?.status, 400);
        const reported = refusedButChanged(failures);
        assert.equal(reported.length, 1, JSON.stringify(failures));
        assert.match(reported[0]!.detail, /^changed: projects \([^)]*\); answer: /);
      } finally {
        release();
        undo();
      }
    });

    test('a change reaching other tables through cascading deletes is reported for each of them', async () => {
      const undo = duringNextRequest(server.runtime.access, async () => {
        await server.runtime.db.query('DELETE FROM projects WHERE id = $1', [fx.projectId]);
      });
      try {
        const { response, failures } = await judge(REFUSED);
        assert.equal(response?.status, 400);
        const reported = refusedButChanged(failures);
        assert.equal(reported.length, 1);
        const tables = [...reported[0]!.detail.matchAll(/(\w+) \(\d+ → \d+ rows/g)].map((m) => m[1]);
        // The statement names projects only: its connection and variables went by ON DELETE CASCADE.
        assert.deepEqual(tables, ['projects', 'project_env', 'store_connections']);
      } finally {
        undo();
      }
    });
  });
}
