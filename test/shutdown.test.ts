/**
 * SIGTERM's shutdown (src/shutdown.ts) in a real process: the timeout bounds draining requests,
 * not releasing what the process holds, which has bounds of its own (a PostgreSQL writing its
 * shutdown checkpoint on a busy disk took longer than the drain may, and was cut off).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { test } from 'node:test';
import { runFromSource } from './spawned.ts';
import { eventually, freshDataDir } from './helpers.ts';

async function stopped(env: Record<string, string>) {
  const proc = runFromSource(['test/fixtures/stop-on-signals.ts'], env);
  await eventually('the process to install its handlers', async () => proc.stdout().includes('ready'), 30_000);
  proc.child.kill('SIGTERM');
  const [code] = (await once(proc.child, 'exit')) as [number | null];
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

test('a release slower than the drain timeout runs to its end, and the exit is 0', async () => {
  const { code, stdout, stderr } = await stopped({ TIMEOUT_MS: '100', CLOSE_MS: '0', RELEASE_MS: '600' });
  assert.equal(code, 0, stderr);
  assert.match(stdout, /released/);
});

test('a drain that outlives the timeout exits 1 there and then, releasing nothing', async () => {
  const { code, stdout, stderr } = await stopped({ TIMEOUT_MS: '200', CLOSE_MS: 'hang', RELEASE_MS: '0' });
  assert.equal(code, 1);
  assert.match(stderr, /did not finish in time/);
  assert.doesNotMatch(stdout, /released/);
});

test('a closed database leaves no timer holding the process: a stopping Storehouse exits at once', async () => {
  const dataDir = await freshDataDir();
  try {
    const proc = runFromSource(['test/fixtures/close-database.ts'], { DATA_DIR: dataDir });
    assert.equal(await proc.exit, 0, proc.output());
    const held = JSON.parse(proc.stdout().trim().split('\n').at(-1)!) as string[];
    // A bound on clients saying goodbye held the process for 2 s after everything had ended.
    assert.deepEqual(
      held.filter((resource) => resource === 'Timeout'),
      [],
      `still active after close: ${held.join(', ')}`,
    );
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
