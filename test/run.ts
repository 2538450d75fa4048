/**
 * `npm test`'s runner (after the typecheck): every test file in one `node --test` run, several
 * files at a time, whose summary lines end the output. The exit code is 1 when a test failed.
 *
 * Files run concurrently because none shares state with another: each server has a data dir or
 * database of its own, provider resources get random names, the tests that count roles or ACL
 * users count their own, or ones on a server they started themselves, and ports come from the
 * kernel (or `freePort`, outside the kernel's own range).
 *
 * The slowest files start first, so the run is not left waiting on one long file at the end.
 * The server bundle `npm start` runs (dist/storehouse.js) is rebuilt from the sources first.
 * `npm test -- test/a.test.ts test/b.test.ts` runs only those files (concurrently).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.ts';

/**
 * Files at a time. The machine CI runs on has 2 cores; most files spend much of their time
 * waiting (on timeouts they test, on PostgreSQL, on child processes), so 4 keeps both busy
 * (measured: 3 and 5 were slower). STOREHOUSE_TEST_CONCURRENCY overrides it.
 */
const DEFAULT_CONCURRENCY = 4;

/** The slowest files (alone, on both backends), slowest first; the rest follow in name order. */
const SLOW_FIRST = [
  'chaos',
  'stores',
  'http-edges',
  'partner-crash',
  'store-updates',
  'process',
  'leases',
  'state',
  'marketplace-api',
  'fuzz',
  'partners',
  'partner-server',
  'postgres-provider',
];

function concurrency(): number {
  const given = process.env.STOREHOUSE_TEST_CONCURRENCY;
  if (given === undefined || given === '') return DEFAULT_CONCURRENCY;
  if (!/^[1-9][0-9]*$/.test(given)) {
    process.stderr.write(`STOREHOUSE_TEST_CONCURRENCY must be a whole number of files at a time, got ${JSON.stringify(given)}\n`);
    process.exit(2);
  }
  return Number(given);
}

const baseName = (file: string) => path.basename(file).replace(/\.test\.ts$/, '');

/** Every test file, slowest first. */
function allTestFiles(): string[] {
  const rank = (file: string) => {
    const index = SLOW_FIRST.indexOf(baseName(file));
    return index === -1 ? SLOW_FIRST.length : index;
  };
  return fs
    .readdirSync(path.join(ROOT, 'test'))
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => path.join('test', name))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** One `node --test` run of `files`, its output passed through; true when every test passed. */
function nodeTest(files: string[], filesAtATime: number): Promise<boolean> {
  if (files.length === 0) return Promise.resolve(true);
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${filesAtATime}`, ...files], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code === 0)));
}

// Ctrl-C reaches the runs' whole process group; let them finish their files' clean-ups.
process.on('SIGINT', () => {});
const filesAtATime = concurrency();
// The tests that start Storehouse as `npm start` does run the server bundle: made from the
// sources as they are now, once, before any file runs (about a second).
if (spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'bundle-server.mjs')], { stdio: 'inherit' }).status !== 0) process.exit(1);
const given = process.argv.slice(2);
if (given.length > 0) {
  process.exit((await nodeTest(given, filesAtATime)) ? 0 : 1);
}
process.exit((await nodeTest(allTestFiles(), filesAtATime)) ? 0 : 1);
