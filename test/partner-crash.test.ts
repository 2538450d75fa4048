/**
 * Crash safety of creates on a partner server (issue 5): "after `kill -9` at any moment there is
 * no provider resource without a store, no store stuck in `initializing`, and no acknowledged
 * store lost."
 *
 * Storehouse runs as a real child process on an embedded data dir and is killed with SIGKILL
 * (no shutdown hook runs) while a create is under way, then started again on the same data dir.
 * The reference partner server runs in this process and outlives every kill, so what it holds
 * afterwards (`GET /_partner/resources`) is compared with the stores the restarted Storehouse
 * lists: every live partner resource must belong to a listed store, every listed store must be
 * settled (`available`) with its resource alive, and a create answered 200 before the kill must
 * still be there.
 *
 * The partner's stores are databases on STOREHOUSE_TEST_DATABASE_URL's server when it is set,
 * else on the partner's own embedded PostgreSQL: milliseconds either way, so every scenario runs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Vercel } from '@vercel/sdk';
import { startPartnerServer, type PartnerServer } from '../src/partner-server/app.ts';
import { eventually, freshDataDir, POSTGRES_URL, ROOT } from './helpers.ts';
import { freePort, writePartnerCatalog } from './partner-fixtures.ts';
import { type Proc, runFromSource } from './spawned.ts';

const TOKEN = 'partner-crash-token-0123456789';
/** A partner's provision takes milliseconds: the provision timeout only has to outlast a busy machine's. */
const PROVISION_TIMEOUT_MS = 2_000;
const PARTNER_TIMEOUT_MS = 5_000;
/** An interrupted create is taken for dead this long after its store was last updated. */
const STALE_MS = 2 * PROVISION_TIMEOUT_MS;
/** How long recovery may take beyond that on a busy machine (the sweep, the partner's repeat and delete). */
const SETTLE_MS = STALE_MS + 20_000;
const KILLS = 5;

/** Storehouse's server as `npm start` runs it (from the sources, through tsx). */
function spawnStorehouse(env: Record<string, string>): Proc {
  return runFromSource([path.join(ROOT, 'src', 'main.ts')], {
    DATABASE_URL: '',
    STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
    LOG_LEVEL: 'info',
    ...env,
  });
}

interface Store {
  id: string;
  name: string;
  status: string;
  externalResourceId: string;
  notification?: { title?: string };
  product: { integrationConfigurationId: string };
}

type Outcome = { ok: true; externalResourceId: string; status: string } | { ok: false; error: string };

describe('kill -9 while creating and changing stores on a partner server', () => {
  let partner: PartnerServer | undefined;
  let partnerDir: string | undefined;
  let dataDir: string | undefined;
  let catalogFile: string | undefined;
  let port: number;
  let url: string;
  let installationId: string;
  let server: Proc | undefined;
  /** Output of every Storehouse process so far, for the failure message. */
  const history: string[] = [];
  const notes: string[] = [];
  let kills = 0;

  const env = () => ({
    STOREHOUSE_DATA_DIR: dataDir!,
    STOREHOUSE_CATALOG: catalogFile!,
    PORT: String(port),
    STOREHOUSE_PROVISION_TIMEOUT_MS: String(PROVISION_TIMEOUT_MS),
    STOREHOUSE_PARTNER_TIMEOUT_MS: String(PARTNER_TIMEOUT_MS),
  });

  /** Starts Storehouse on the data dir and waits until it answers /healthz. */
  const start = async (): Promise<void> => {
    const startedAt = Date.now();
    // The killed process's lock (a flock held by a helper that ends when its pipe closes) goes
    // within milliseconds; a start that still finds it held is retried a few times.
    for (let attempt = 1; ; attempt++) {
      const proc = spawnStorehouse(env());
      server = proc;
      const deadline = Date.now() + 60_000;
      let healthy = false;
      while (Date.now() < deadline && proc.child.exitCode === null) {
        try {
          if ((await fetch(`${url}/healthz`)).status === 200) {
            healthy = true;
            break;
          }
        } catch {
          /* not listening yet */
        }
        await sleep(50);
      }
      if (healthy) {
        notes.push(`start took ${Date.now() - startedAt} ms${attempt > 1 ? ` (${attempt} attempts)` : ''}`);
        return;
      }
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
      await proc.exit;
      history.push(proc.output());
      if (attempt < 10 && /is in use by another Storehouse process/.test(proc.output())) {
        await sleep(300);
        continue;
      }
      throw new Error(`Storehouse did not start:\n${proc.output().slice(-4000)}`);
    }
  };

  /** kill -9: no handler runs, nothing is flushed or closed by Storehouse. */
  const kill = async (): Promise<void> => {
    const proc = server!;
    assert.equal(proc.child.exitCode, null, 'Storehouse is running when it is killed');
    process.kill(proc.child.pid!, 'SIGKILL');
    await proc.exit;
    history.push(proc.output());
    server = undefined;
    kills++;
  };

  const sdk = () => new Vercel({ bearerToken: TOKEN, serverURL: url });
  const body = (name: string) => ({
    name,
    integrationConfigurationId: installationId,
    integrationProductIdOrSlug: 'postgres',
    metadata: { connectionLimit: 5 },
  });
  /** A create through @vercel/sdk, settled either way (a killed server answers nothing). */
  const create = (name: string, idempotencyKey?: string): Promise<Outcome> =>
    sdk()
      .integrations.createIntegrationStoreDirect(
        { requestBody: body(name) },
        idempotencyKey ? { headers: { 'Idempotency-Key': idempotencyKey } } : {},
      )
      .then(
        ({ store }): Outcome => ({ ok: true, externalResourceId: store?.externalResourceId ?? '', status: store?.status ?? '' }),
        (error: Error): Outcome => ({ ok: false, error: `${error.name}: ${error.message.slice(0, 200)}` }),
      );

  /** The installation's stores, as the running Storehouse lists them. */
  const stores = async (): Promise<Store[]> => {
    const response = await fetch(`${url}/v1/storage/stores?limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200, `listing the stores answered ${response.status}`);
    const listed = ((await response.json()) as { stores: Store[] }).stores;
    return listed.filter((store) => store.product.integrationConfigurationId === installationId);
  };
  /** The partner's live resources (not deleted), by id. */
  const live = async (): Promise<string[]> => {
    const response = await fetch(`${partner!.url}/_partner/resources?installationId=${installationId}`);
    return ((await response.json()) as { resources: Array<{ id: string }> }).resources.map((resource) => resource.id).sort();
  };
  const provisionCalls = () =>
    partner!.requests.filter((r) => r.method === 'POST' && r.url === `/v1/installations/${installationId}/resources`);

  /**
   * The invariant, once recovery had its chance: every store is `available` with its resource
   * alive at the partner, and every live partner resource is a store's. Undefined when it
   * holds, else what is wrong.
   */
  const violation = async (): Promise<string | undefined> => {
    const [listed, resources] = [await stores(), await live()];
    const unsettled = listed.filter((store) => store.status !== 'available');
    const owned = listed
      .map((store) => store.externalResourceId)
      .filter(Boolean)
      .sort();
    const orphans = resources.filter((id) => !owned.includes(id));
    const missing = owned.filter((id) => !resources.includes(id));
    if (unsettled.length === 0 && orphans.length === 0 && missing.length === 0) return undefined;
    return JSON.stringify({
      unsettled: unsettled.map((s) => ({
        id: s.id,
        name: s.name,
        status: s.status,
        externalResourceId: s.externalResourceId,
        notification: s.notification?.title,
      })),
      orphans,
      missing,
    });
  };
  const settles = async (what: string, timeoutMs = SETTLE_MS): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last: string | undefined;
    while (Date.now() < deadline) {
      last = await violation();
      if (last === undefined) return;
      await sleep(200);
    }
    assert.fail(`${what}: not settled within ${timeoutMs} ms: ${last}`);
  };

  before(async () => {
    const partnerPort = await freePort();
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    catalogFile = writePartnerCatalog({ url: `http://127.0.0.1:${partnerPort}` });
    partnerDir = await freshDataDir();
    dataDir = await freshDataDir();
    // The partner verifies Storehouse's tokens against its JWKS, fetched when the first call comes.
    partner = await startPartnerServer({
      port: partnerPort,
      dataDir: partnerDir,
      clientId: 'oac_partner',
      issuer: url,
      postgresAdminUrl: POSTGRES_URL,
    });
    await start();
    const configurations = await sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    installationId = configurations[0]!.id!;
  });

  // A test that failed while Storehouse was down leaves it down: the next one starts it again.
  beforeEach(async () => {
    if (!server) await start();
  });

  after(async () => {
    process.stderr.write(`partner-crash: ${kills} kills; ${notes.join('; ')}\n`);
    try {
      // Stores left on the partner are real databases (on the shared PostgreSQL server too):
      // delete them, through a Storehouse started again if a failure left it down.
      if (partner) for (const key of Object.keys(partner.faults)) delete (partner.faults as Record<string, unknown>)[key];
      if (installationId && !server) await start().catch(() => {});
      if (server && server.child.exitCode === null) {
        for (const store of await stores().catch(() => [] as Store[])) {
          await fetch(`${url}/v1/storage/stores/integration/${store.id}?disconnect=true`, {
            method: 'DELETE',
            headers: { authorization: `Bearer ${TOKEN}` },
            signal: AbortSignal.timeout(20_000),
          }).catch(() => {});
        }
      }
    } finally {
      if (server && server.child.exitCode === null) {
        server.child.kill('SIGKILL');
        await server.exit;
      }
      await partner?.close();
      for (const dir of [partnerDir, dataDir, catalogFile && path.dirname(catalogFile)])
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const explain = (error: unknown): never => {
    const tail = [...history, server?.output() ?? '']
      .join('\n')
      .split('\n')
      .filter((line) => /"level":(40|50|60)|storehouse:/.test(line))
      .slice(-30);
    if (tail.length) (error as Error).message += `\nStorehouse warnings and errors:\n${tail.map((line) => line.slice(0, 600)).join('\n')}`;
    throw error;
  };

  test('killed while the partner makes the resource: the create is rolled back, the resource deleted, the key free again', async (t) => {
    try {
      const before = await live();
      const calls = provisionCalls().length;
      partner!.faults.provision = { delayMs: 1500, afterWork: true, times: 1 };
      const key = `crash-a-${Date.now()}`;
      const outcome = create('crash-a', key);
      await eventually('the partner to receive the provision', async () => provisionCalls().length > calls, 30_000);
      let made: string | undefined;
      await eventually(
        'the partner to make the resource',
        async () => (made = (await live()).find((id) => !before.includes(id))) !== undefined,
        30_000,
      );
      assert.equal(partner!.faults.provision, undefined, 'the delayed provision took the fault');
      await kill();
      const answered = await outcome;
      assert.equal(answered.ok, false, 'the killed create was not acknowledged');

      await start();
      // Recorded before the partner was called: the store is there, without a resource, until
      // recovery takes it (a sweep 2 s after the start, or once it is stale).
      // (Being rolled back, it may already be `deleting`, which the list shows as `error`.)
      const early = (await stores()).find((store) => store.name === 'crash-a');
      if (early) {
        assert.equal(early.externalResourceId, '');
        assert.ok(['initializing', 'error', 'deleting'].includes(early.status), `status ${early.status}`);
        notes.push(`crash-a after the restart: ${early.status}`);
      } else {
        // Recovery was quicker than the first look: nothing to check here, and it is said so.
        t.diagnostic('crash-a was already rolled back when first listed after the restart: its state before recovery was not checked');
        notes.push('crash-a after the restart: already gone');
      }
      await settles('the interrupted create');
      assert.ok(!(await stores()).some((store) => store.name === 'crash-a'), 'the store was rolled back');
      assert.ok(!(await live()).includes(made!), 'the resource the partner made was deleted');
      assert.ok(
        partner!.requests.some((r) => r.method === 'DELETE' && r.url.endsWith(`/resources/${made}`) && r.status === 204),
        'Storehouse deleted it at the partner',
      );

      // The key was given back: the same request with it creates the store now.
      const began = Date.now();
      const again = await create('crash-a', key);
      notes.push(`crash-a again: created in ${Date.now() - began} ms`);
      assert.equal(again.ok, true, JSON.stringify(again));
      assert.ok(again.ok && again.status === 'available');
      assert.ok(again.ok && again.externalResourceId !== made, 'a new resource, not the abandoned one');
      assert.equal(await violation(), undefined);
    } catch (error) {
      explain(error);
    }
  });

  test('killed right after an acknowledged create: the store survives, available, with its resource', async () => {
    try {
      const began = Date.now();
      const answered = await create('crash-b');
      notes.push(`crash-b: created in ${Date.now() - began} ms`);
      assert.equal(answered.ok, true, JSON.stringify(answered));
      assert.ok(answered.ok);
      assert.equal(answered.status, 'available');
      await kill();
      await start();
      const check = async () => {
        const store = (await stores()).find((s) => s.name === 'crash-b');
        assert.ok(store, 'the acknowledged store is still there');
        assert.equal(store.status, 'available');
        assert.equal(store.externalResourceId, answered.externalResourceId);
        assert.ok((await live()).includes(answered.externalResourceId), 'its partner resource lives');
      };
      await check();
      // The first recovery sweep (2 s after the start) leaves it alone.
      await sleep(3_000);
      await check();
      assert.equal(await violation(), undefined);
    } catch (error) {
      explain(error);
    }
  });

  test('killed while the partner applies a change to a store: after the restart the change is sent again, with the same key, and recorded', async () => {
    try {
      const created = await create('crash-u');
      assert.equal(created.ok, true, JSON.stringify(created));
      const store = (await stores()).find((s) => s.name === 'crash-u')!;
      const updates = () =>
        partner!.requests.filter((r) => r.method === 'PATCH' && r.url.endsWith(`/resources/${store.externalResourceId}`));
      // The partner applies the change, then answers late: Storehouse dies before the answer.
      partner!.faults.update = { delayMs: 1500, afterWork: true, times: 1 };
      const answered = fetch(`${url}/v1/storage/stores/${store.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ metadata: { connectionLimit: 9 } }),
      }).then(
        (response) => response.status,
        () => 'no answer',
      );
      await eventually('the partner to receive the change', async () => updates().length === 1, 30_000);
      await kill();
      assert.equal(await answered, 'no answer', 'the killed change was not acknowledged');

      await start();
      const metadataOf = async () =>
        ((await (await fetch(`${url}/v1/storage/stores/${store.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as any)
          .store.metadata;
      await eventually('the change to be sent again and recorded', async () => (await metadataOf()).connectionLimit === 9, SETTLE_MS);
      assert.ok(updates().length >= 2, 'sent again after the restart');
      const keys = new Set(updates().map((r) => r.idempotencyKey));
      assert.equal(keys.size, 1, 'with the key of the first send');
      assert.match([...keys][0] ?? '', /\.update\./, 'a key of this change');
      // Nothing is left under way: the store takes the next change.
      const next = await fetch(`${url}/v1/storage/stores/${store.id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'crash-u-renamed' }),
      });
      assert.equal(next.status, 200, await next.text());
      assert.equal(await violation(), undefined);
    } catch (error) {
      explain(error);
    }
  });

  test('killed again while recovering (the partner deleted the resource, the store is not removed yet): recovery finishes', async () => {
    try {
      const before = await live();
      const calls = provisionCalls().length;
      partner!.faults.provision = { delayMs: 1500, afterWork: true, times: 1 };
      const outcome = create('crash-d');
      await eventually('the partner to receive the provision', async () => provisionCalls().length > calls, 30_000);
      let made: string | undefined;
      await eventually(
        'the partner to make the resource',
        async () => (made = (await live()).find((id) => !before.includes(id))) !== undefined,
        30_000,
      );
      await kill();
      assert.equal((await outcome).ok, false);

      // Recovery's delete is done by the partner, but its answer comes late: killed meanwhile.
      partner!.faults.delete = { delayMs: 4000, afterWork: true, times: 1 };
      const deletes = () => partner!.requests.filter((r) => r.method === 'DELETE' && r.url.endsWith(`/resources/${made}`));
      await start();
      await eventually(
        'recovery to delete the resource at the partner',
        async () => deletes().length > 0 && !(await live()).includes(made!),
        SETTLE_MS,
      );
      assert.equal(deletes()[0]!.status, undefined, 'the partner has not answered the delete yet');
      await kill();

      await start();
      await settles('the interrupted recovery');
      assert.ok(!(await stores()).some((store) => store.name === 'crash-d'), 'the store was rolled back');
      // The second recovery repeated the provision, heard that the key's resource is deleted, and removed the store.
      const key = provisionCalls()[calls]!.idempotencyKey;
      assert.ok(
        provisionCalls().some((r) => r.idempotencyKey === key && r.status === 409),
        'the repeat was answered 409 resource_deleted',
      );
      // Recorded as the rollback it is, not as a delete nobody asked for.
      const audit = (await (
        await fetch(`${url}/_storehouse/audit?limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json()) as {
        events: Array<{ action: string; details: { name?: string } | null }>;
      };
      const ended = audit.events.filter((e) => e.details?.name === 'crash-d' && ['store.rolled_back', 'store.deleted'].includes(e.action));
      assert.deepEqual(
        ended.map((e) => e.action),
        ['store.rolled_back'],
      );
    } catch (error) {
      explain(error);
    }
  });

  test(`killed at ${KILLS} random moments of a create: no orphan resource, no store stuck, nothing acknowledged lost`, async () => {
    try {
      // Kills are spread over as long as a create takes right after a start (as each one here
      // is): 400 ms at least. The first create is let finish to find out, then killed like B.
      let window = 400;
      for (let i = 0; i <= KILLS; i++) {
        const name = `crash-c${i}`;
        const timed = i === 0;
        const calls = provisionCalls().length;
        const began = Date.now();
        const outcome = create(name);
        let delay: number;
        if (timed) {
          const answered = await outcome;
          assert.equal(answered.ok, true, JSON.stringify(answered));
          delay = Date.now() - began;
          window = Math.max(400, Math.round(delay * 1.2));
        } else {
          delay = Math.floor(Math.random() * (window + 1));
          await sleep(delay);
        }
        await kill();
        const answered = await outcome;
        const provisioned = provisionCalls().length > calls;
        const restartedAt = Date.now();
        await start();
        const seen = (await stores()).find((store) => store.name === name);
        await settles(`after the kill ${delay} ms into create ${name}`);
        const kept = (await stores()).find((store) => store.name === name);
        if (answered.ok) {
          assert.ok(kept, `${name} was acknowledged (${answered.status}) and must survive`);
          assert.equal(kept.externalResourceId, answered.externalResourceId);
        }
        // Recovery had its chance; nothing turns up late either.
        await sleep(1_000);
        assert.equal(await violation(), undefined, `after the kill ${delay} ms into create ${name}`);
        notes.push(
          `${name}: killed at ${delay} ms${timed ? ' (after its answer)' : ` of ${window}`}, ${answered.ok ? 'acknowledged' : 'unanswered'}, ` +
            `partner ${provisioned ? 'called' : 'not called'}, after restart ${seen ? seen.status : 'absent'}, finally ${kept ? 'kept' : 'gone'}, ` +
            `settled ${Date.now() - restartedAt} ms after the restart began`,
        );
      }
    } catch (error) {
      explain(error);
    }
  });
});
