/**
 * The data dir is made owner-only at start, whatever it was found as, and one that cannot be
 * made safe is refused (issue 17): a 0755 data dir with the embedded cluster's files loosened, what
 * Storehouse creates after the start, and refusals by real processes (run as root on a data dir
 * another user owns; run as another user on a data dir holding root's writable file). The one
 * branch a root test run cannot reach for real, a chmod the file system refuses (a read-only
 * mount) or ignores, runs on the real file system with chmod swapped out.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DataDirUnsafeError, secureDataDir, type DataDirFs } from '../src/data-dir.ts';
import { BACKENDS, freshDataDir, ROOT, startServer } from './helpers.ts';

/** Every file and directory under `dir` (not following links) that its group or others may use, with its mode. */
function looseEntries(dir: string): string[] {
  const loose: string[] = [];
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const entry = fs.lstatSync(path.join(dir, name));
    if (!entry.isSymbolicLink() && entry.mode & 0o077) loose.push(`${name} ${(entry.mode & 0o777).toString(8)}`);
  }
  return loose;
}

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

/**
 * `work` (a start and what follows it) begun under the shell's usual umask, so the modes of what
 * it creates show the umask Storehouse sets, not the test process's.
 */
async function underUmask022<T>(work: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o022);
  try {
    return await work();
  } finally {
    process.umask(previous);
  }
}

const NOBODY = 65534;
const asRootWithSetpriv = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');

/** `npm start` (src/main.ts) as a real process, as `uid` when given; resolves with its exit code and output. */
function startProcess(dataDir: string, uid?: number): Promise<{ code: number | null; stderr: string }> {
  const node = [process.execPath, '--import', 'tsx', path.join(ROOT, 'src', 'main.ts')];
  const [command, ...args] = uid === undefined ? node : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...node];
  const child = spawn(command!, args, {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', STOREHOUSE_DATA_DIR: dataDir, PORT: '0', HOME: os.tmpdir() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

describe('the data dir at start', () => {
  for (const backend of BACKENDS) {
    test(`${backend}: an existing 0755 data dir and everything in it become owner-only`, async () => {
      const dataDir = await freshDataDir();
      try {
        // A first start makes what a data dir holds (on the embedded default, its PostgreSQL cluster).
        await (await startServer(backend, { dataDir })).close();
        // Then, as a restore or `mkdir -p` under umask 022 leaves it: the key and the cluster's files readable by all.
        fs.writeFileSync(path.join(dataDir, 'secret.key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o644 });
        fs.chmodSync(path.join(dataDir, 'secret.key'), 0o644);
        fs.chmodSync(dataDir, 0o755);
        if (backend === 'embedded') {
          fs.chmodSync(path.join(dataDir, 'postgres', 'PG_VERSION'), 0o666);
          fs.chmodSync(path.join(dataDir, 'postgres', 'base'), 0o755);
        }
        assert.ok(looseEntries(dataDir).length > 0);

        await underUmask022(async () => {
          const server = await startServer(backend, { dataDir });
          try {
            assert.equal((await server.request('/v2/user')).status, 200);
            // 0710 as root: the group of the embedded PostgreSQL's own user may reach its cluster (search only).
            assert.equal(modeOf(dataDir), backend === 'embedded' && process.getuid?.() === 0 ? 0o710 : 0o700);
            assert.equal(modeOf(path.join(dataDir, 'secret.key')), 0o600);
            if (backend === 'embedded') {
              assert.equal(modeOf(path.join(dataDir, 'postgres', 'PG_VERSION')), 0o600);
              assert.equal(modeOf(path.join(dataDir, 'postgres', 'base')), 0o700);
              assert.equal(modeOf(path.join(dataDir, 'storehouse.pid')), 0o600);
              assert.equal(modeOf(path.join(dataDir, 'postgres-password')), 0o600);
            }
            assert.equal(modeOf(path.join(dataDir, 'admin-token')), 0o600);
            // A store made after the start (on the embedded default, a database in its cluster) is owner-only too.
            const product = server.runtime.catalog.findProduct('oac_storehouse', 'postgres');
            const { resource } = await server.runtime.providers.for(product).provision({
              idempotencyKey: `data-dir-${randomBytes(6).toString('hex')}`,
              installationId: 'icfg_data_dir',
              product,
              name: 'owner-only',
              metadata: {},
              billingPlanId: 'postgres_hobby',
            });
            assert.deepEqual(looseEntries(dataDir), []);
            await server.runtime.providers.for(product).delete('icfg_data_dir', resource.id, `data-dir-delete-${resource.id}`);
          } finally {
            await server.close();
          }
        });
        assert.deepEqual(looseEntries(dataDir), [], 'nothing written on close is readable by others either');
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});

describe('a data dir that cannot be made safe is refused', { skip: !asRootWithSetpriv && 'needs root and setpriv(1)' }, () => {
  let dataDir: string;
  before(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-unsafe-'));
  });
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  test('owned by another user: the start exits 1 naming the path, its mode and its owner, and touches nothing', async () => {
    fs.chownSync(dataDir, NOBODY, NOBODY);
    fs.chmodSync(dataDir, 0o777);
    const { code, stderr } = await startProcess(dataDir);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `storehouse: cannot start: The data directory ${dataDir} is drwxrwxrwx (0777): it is owned by uid ${NOBODY}, not by uid 0 ` +
        'that Storehouse runs as, and its owner could read and change the state. ' +
        'Run Storehouse as its owner, or chown it to the user Storehouse runs as.\n',
    );
    assert.equal(modeOf(dataDir), 0o777, 'its mode is left as it was');
    assert.deepEqual(fs.readdirSync(dataDir), [], 'no lock or key was made in it');
  });

  test('run as its owner, a writable file in it another user owns: chmod really fails (EPERM), and the start exits 1 naming it', async () => {
    fs.chownSync(dataDir, NOBODY, NOBODY);
    fs.chmodSync(dataDir, 0o755);
    const planted = path.join(dataDir, 'planted');
    fs.writeFileSync(planted, 'root wrote this');
    fs.chmodSync(planted, 0o666);
    const { code, stderr } = await startProcess(dataDir, NOBODY);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `storehouse: cannot start: In the data directory, ${planted} is -rw-rw-rw- (0666): other users may write to it, and it ` +
        'cannot be made owner-only (EPERM). Make everything in the data directory owned by the user Storehouse runs as.\n',
    );
    assert.equal(modeOf(dataDir), 0o700, 'what it could fix, its own directory, it fixed');
    assert.deepEqual(fs.readdirSync(dataDir), ['planted'], 'it stopped before making anything');
  });
});

describe('a chmod the file system refuses or ignores', () => {
  let dataDir: string;
  before(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-chmod-'));
  });
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  /** The real file system, but chmod answers as on a read-only mount, or does nothing as on some network file systems. */
  const fsWhereChmod = (chmodSync: DataDirFs['chmodSync']): DataDirFs => ({
    statSync: (file) => fs.statSync(file),
    lstatSync: (file) => fs.lstatSync(file),
    readdirSync: (file) => fs.readdirSync(file),
    chmodSync,
  });
  const readOnlyMount = fsWhereChmod((file) => {
    throw Object.assign(new Error(`EROFS: read-only file system, chmod '${file}'`), { code: 'EROFS' });
  });

  test('a world-writable data dir whose chmod fails is refused, naming the path and the mode', () => {
    fs.chmodSync(dataDir, 0o777);
    assert.throws(
      () => secureDataDir(dataDir, { fs: readOnlyMount }),
      (error: unknown) =>
        error instanceof DataDirUnsafeError &&
        error.message ===
          `The data directory ${dataDir} is drwxrwxrwx (0777): other users may write to it, and it cannot be made 0700 (EROFS). ` +
            'Make it 0700 and owned by the user Storehouse runs as, or set STOREHOUSE_DATA_DIR to one that is.',
    );
    assert.equal(modeOf(dataDir), 0o777);
  });

  test('a group-writable data dir on a file system that ignores chmod is refused', () => {
    fs.chmodSync(dataDir, 0o770);
    assert.throws(
      () => secureDataDir(dataDir, { fs: fsWhereChmod(() => {}) }),
      /^DataDirUnsafeError: The data directory .* is drwxrwx--- \(0770\): other users may write to it, and it cannot be made 0700 \(the file system ignores chmod\)/,
    );
  });

  test('one only readable by others that cannot be fixed is started on, with a warning naming it', () => {
    fs.chmodSync(dataDir, 0o755);
    const warnings: string[] = [];
    secureDataDir(dataDir, { fs: readOnlyMount, warn: (message) => warnings.push(message) });
    assert.deepEqual(warnings, [`the data directory ${dataDir} is drwxr-xr-x (0755) and cannot be made 0700 (EROFS)`]);
  });

  test('with chmod working, the same directory becomes 0700', () => {
    fs.chmodSync(dataDir, 0o777);
    const nested = path.join(dataDir, 'nested');
    fs.mkdirSync(nested);
    fs.chmodSync(nested, 0o777);
    fs.symlinkSync('/etc/hostname', path.join(dataDir, 'link'));
    const target = modeOf('/etc/hostname');
    secureDataDir(dataDir);
    assert.equal(modeOf(dataDir), 0o700);
    assert.equal(modeOf(nested), 0o700);
    assert.equal(modeOf('/etc/hostname'), target, 'a link is not followed out of the data dir');
  });

  test('in an owner-only data dir, what others could reach is fixed and owner-only directories are not walked', () => {
    fs.chmodSync(dataDir, 0o700);
    const open = path.join(dataDir, 'open');
    const closed = path.join(dataDir, 'closed');
    for (const dir of [open, closed]) fs.mkdirSync(path.join(dir, 'inner'), { recursive: true });
    fs.chmodSync(open, 0o755);
    fs.chmodSync(closed, 0o700);
    fs.writeFileSync(path.join(open, 'inner', 'file'), 'x', { mode: 0o644 });
    fs.chmodSync(path.join(open, 'inner', 'file'), 0o644);
    fs.writeFileSync(path.join(closed, 'inner', 'file'), 'x');
    const listed: string[] = [];
    const readdirSync = (dir: string) => {
      listed.push(dir);
      return fs.readdirSync(dir);
    };
    secureDataDir(dataDir, { fs: { ...fsWhereChmod((file, mode) => fs.chmodSync(file, mode)), readdirSync } });
    // Below a directory others could open, everything is made owner-only, however deep.
    assert.equal(modeOf(open), 0o700);
    assert.equal(modeOf(path.join(open, 'inner', 'file')), 0o600);
    // Nobody else could enter the owner-only one: what it holds was not listed (the cluster's files, every start).
    assert.ok(listed.includes(path.join(open, 'inner')));
    assert.ok(!listed.includes(closed), `listed ${listed.join(', ')}`);
  });
});

describe("the data dir's parents", () => {
  test('one every user may write (not sticky) is refused, naming it; sticky as /tmp is, or group-writable, it is started on', () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-parent-'));
    const dataDir = path.join(parent, 'data');
    try {
      fs.mkdirSync(dataDir, { mode: 0o700 });
      fs.chmodSync(parent, 0o777);
      assert.throws(
        () => secureDataDir(dataDir),
        (error) =>
          error instanceof DataDirUnsafeError &&
          error.message.startsWith(`A parent of the data directory, ${parent} is drwxrwxrwx (0777): every user may write to it`),
      );
      fs.chmodSync(parent, 0o1777);
      secureDataDir(dataDir);
      const warnings: string[] = [];
      fs.chmodSync(parent, 0o770);
      secureDataDir(dataDir, { warn: (message) => warnings.push(message) });
      assert.deepEqual(warnings, [
        `${parent}, a parent of the data directory, is drwxrwx--- (0770): its group could replace the data directory`,
      ]);
      // Not there yet: the parents are checked all the same.
      fs.chmodSync(parent, 0o777);
      assert.throws(() => secureDataDir(path.join(parent, 'not-yet')), DataDirUnsafeError);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});
