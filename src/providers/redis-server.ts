/**
 * Storehouse's own Redis, for the embedded default (issue 12): without STOREHOUSE_REDIS_ADMIN_URL,
 * when a `redis-server` (7.0 or later) is on PATH, Storehouse runs one as its child on loopback,
 * and the Redis provider serves stores from it through `adminUrl`, as it would from any Redis.
 *
 * Everything is in `<data dir>/redis/` (owner-only, like the rest of the data dir):
 * - `admin-password`: the admin user's password, generated at the first start (0600), kept.
 * - `users.acl`: the ACL file. The `default` and admin users' lines are written at each start;
 *   every other line is the provider's store users, as Redis saved them. Redis writes this file
 *   only on `ACL SAVE`: an `ACL SETUSER` or `ACL DELUSER` not followed by one is lost when Redis
 *   restarts, so the Redis provider sends one in each transaction that sets or deletes users
 *   (and `stop` sends one). Redis renames the file into place without an fsync: a crash of the
 *   machine may lose the last save, which the provider's reapply and sweep of users repair.
 * - `redis.conf`: written at each start (edits are lost): the port, loopback only, protected
 *   mode, no `requirepass`, the ACL file, the append-only file.
 * - `appendonlydir/`: the data, as an append-only file fsynced every second. Redis writes each
 *   command to it before it answers, so what a client was told is stored survives a kill -9 of
 *   Storehouse and of redis-server itself; only a crash of the machine can lose the last second
 *   (two, on a disk so slow that Redis postpones its writes). RDB snapshots alone would lose
 *   every write since the last snapshot at any kill; `appendfsync always` would fsync each write.
 * - `redis.pid` (Redis's own), and `port`: the port picked at the first start, kept so that
 *   stores' URLs keep working across restarts.
 *
 * No maxmemory: a store filling memory is refused nothing until the machine is, and nothing is
 * ever evicted (`noeviction`). A cap would not evict either, but Redis would then refuse the
 * SET that fences a deleted store's user (src/providers/redis.ts), so deleting stores, the way to
 * free memory, would fail too.
 *
 * One Storehouse holds a data dir (src/db/lock.ts), so the only other redis-server on this
 * directory can be one a Storehouse killed with kill -9 left behind: the next start stops it
 * (SIGTERM: Redis syncs its append-only file and exits) and starts its own. It does not adopt it:
 * a process that is not its child cannot be waited on or restarted when it exits, its log goes
 * to the dead Storehouse's pipe, and it runs the configuration of an earlier start.
 *
 * While Storehouse runs, a redis-server that exits is started again (with backoff). It runs in
 * a process group of its own, so a Ctrl-C in a terminal reaches Storehouse, which stops it after
 * draining, and not Redis directly.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import {
  canListen,
  findSetpriv,
  freePort,
  isAlive,
  lineSplitter,
  NO_LOG,
  type ServerLog,
  writeFileAtomically,
} from '../supervision/local-servers.ts';

const execFileAsync = promisify(execFile);

/** What it logs to: a pino logger, or anything with its four methods. */
export type RedisServerLog = ServerLog;

export interface RedisServerOptions {
  /** The data dir (locked by this process); the server's files go in `<dataDir>/redis/`. */
  dataDir: string;
  /** The port to listen on; without it, the one kept from an earlier start, else one picked now and kept. */
  port?: number;
  log?: RedisServerLog;
  /** The redis-server to run; `findRedisServer()` when absent. */
  binary?: string;
}

/** Why the server cannot be had: `not_found` (no usable redis-server), `port_taken`, or `failed` (it would not start). */
export class RedisServerError extends Error {
  constructor(
    readonly reason: 'not_found' | 'port_taken' | 'failed',
    message: string,
  ) {
    super(message);
    this.name = 'RedisServerError';
  }
}

export const HOST = '127.0.0.1';
export const ADMIN_USER = 'storehouse-admin';

/**
 * The admin user's rights: the commands the Redis provider sends (src/providers/redis.ts,
 * ADMIN_NEEDS) on every key, plus what ioredis sends on connecting (CLIENT SETNAME, INFO for its
 * ready check) and PING; nothing else (no FLUSHALL, CONFIG, DEBUG...). Its ACL rights would let
 * it grant itself more: this keeps a mistake from doing damage, it is no wall against an attacker.
 */
const ADMIN_RIGHTS = [
  'resetkeys',
  '~*',
  'resetchannels',
  '-@all',
  '+acl',
  '+scan',
  '+unlink',
  '+set',
  '+incr',
  '+exists',
  '+watch',
  '+unwatch',
  '+multi',
  '+exec',
  '+ping',
  '+info',
  '+client|setname',
];

/**
 * Ports picked at a first start: a range below the kernel's ephemeral ports (32768 and up), so
 * the port is not handed to some program's outgoing connection while Storehouse is down, and
 * apart from the embedded PostgreSQL's range (src/db/postgres-server.ts).
 */
export const PORTS = { first: 16379, last: 17378 };

/** How long a start may take: loading a large append-only file takes a while. */
const READY_TIMEOUT_MS = 120_000;
/** How long a SIGTERMed redis-server may take to sync and exit before it is SIGKILLed. */
const STOP_TIMEOUT_MS = 30_000;
/** Backoff between restarts after unexpected exits: doubling from the first to the last. */
const BACKOFF_MS = { first: 100, last: 10_000 };
/** A server that ran this long before it exited starts the backoff over. */
const STABLE_MS = 30_000;
/** Lines of its output kept, for the message when it fails. */
const TAIL_LINES = 20;

/** The first executable `redis-server` on PATH, or undefined. */
export function findRedisServer(searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      if (fs.statSync(candidate).isFile()) {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      }
    } catch {
      /* not here */
    }
  }
  return undefined;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * Lines Redis logs as warnings (`#`) on every normal start and stop: information, not warnings.
 * Everything else it marks `#` is a warning.
 */
const ROUTINE_WARNINGS =
  /^(oO0OoO0OoO0Oo Redis is starting|Redis version=|Configuration loaded|Server initialized|User requested shutdown|Redis is now ready to exit|Saving the final RDB snapshot|DB saved on disk)/;

/**
 * A line of redis-server's log (`<pid>:<role> <date> <marker> <text>`) and the level it goes to
 * Storehouse's log at: its marker `.` (debug) and `-` (verbose) at debug, `*` (notice) at info,
 * `#` (warning) at warn, those it writes on every start and stop aside. Other lines (what its
 * signal handler writes) are info; on stderr (a configuration it refuses), error.
 */
export function parseRedisLogLine(line: string, stream: 'stdout' | 'stderr' = 'stdout'): { level: Level; text: string; pid?: number } {
  const match = /^(\d+):[A-Z] \d{1,2} \w{3} \d{4} [\d:.]+ ([.\-*#]) (.*)$/.exec(line);
  if (!match) return { level: stream === 'stderr' ? 'error' : 'info', text: line };
  const [, pid, marker, text] = match as unknown as [string, string, string, string];
  const level: Level = marker === '#' ? (ROUTINE_WARNINGS.test(text) ? 'info' : 'warn') : marker === '*' ? 'info' : 'debug';
  return { level, text, pid: Number(pid) };
}

interface Paths {
  dir: string;
  password: string;
  acl: string;
  conf: string;
  pid: string;
  port: string;
}

/** Its files, under the data dir's real path: the configuration file's path must be the same at every start (takeOver finds servers by it). */
function pathsOf(dataDir: string): Paths {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const dir = path.join(fs.realpathSync(dataDir), 'redis');
  return {
    dir,
    password: path.join(dir, 'admin-password'),
    acl: path.join(dir, 'users.acl'),
    conf: path.join(dir, 'redis.conf'),
    pid: path.join(dir, 'redis.pid'),
    port: path.join(dir, 'port'),
  };
}

/** A string as redis.conf quotes it. */
const quoted = (value: string) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

function readOrMakePassword(file: string): string {
  try {
    const kept = fs.readFileSync(file, 'utf8').trim();
    if (kept) return kept;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const password = randomBytes(32).toString('hex');
  writeFileAtomically(file, `${password}\n`);
  return password;
}

/** The port kept in the port file, or undefined. */
function readPort(file: string): number | undefined {
  try {
    const match = /^(\d+)\s*$/.exec(fs.readFileSync(file, 'utf8'));
    const port = Number(match?.[1]);
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
  } catch {
    return undefined;
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The ACL file for this start: the `default` user off (no connection can be it: one that has not
 * authenticated may do nothing, and AUTH as default fails), the admin user with the password's
 * hash (the file never holds the password), and every other user as Redis last saved it.
 *
 * `default` keeps every right all the same: Redis replays the append-only file as `default`, and
 * EXEC checks the rights of each command it runs, so a `default` without rights made Redis 7.0
 * drop every MULTI/EXEC of the file at a restart (a store's transactions lost, logged only as
 * CRITICAL lines). Being off, its rights serve nothing else.
 */
function writeAclFile(paths: Paths, password: string): void {
  let kept: string[] = [];
  try {
    kept = fs
      .readFileSync(paths.acl, 'utf8')
      .split('\n')
      .filter((line) => {
        const name = /^\s*user\s+(\S+)/.exec(line)?.[1];
        return name !== undefined && name !== 'default' && name !== ADMIN_USER;
      });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const hash = createHash('sha256').update(password).digest('hex');
  const lines = ['user default off resetpass ~* &* +@all', `user ${ADMIN_USER} on resetpass #${hash} ${ADMIN_RIGHTS.join(' ')}`];
  writeFileAtomically(paths.acl, `${[...lines, ...kept].join('\n')}\n`);
}

function writeConf(paths: Paths, port: number): void {
  const conf = [
    '# Written by Storehouse at each start (src/providers/redis-server.ts): edits here are lost.',
    `port ${port}`,
    'bind 127.0.0.1 -::1',
    'protected-mode yes',
    'daemonize no',
    'supervised no',
    // The command line keeps naming this file, so a server left running is known as this dir's.
    'set-proc-title no',
    `pidfile ${quoted(paths.pid)}`,
    `dir ${quoted(paths.dir)}`,
    `aclfile ${quoted(paths.acl)}`,
    'logfile ""',
    'loglevel notice',
    'always-show-logo no',
    'appendonly yes',
    'appenddirname "appendonlydir"',
    'appendfsync everysec',
    'save ""',
    'maxmemory 0',
    'maxmemory-policy noeviction',
  ];
  writeFileAtomically(paths.conf, `${conf.join('\n')}\n`);
}

/** The redis-server's version, refused unless 7.0 or later (ACL files, the append-only directory, the optional bind). */
async function checkVersion(binary: string): Promise<string> {
  let output: string;
  try {
    // Not execFileSync: the start of Storehouse's own state goes on meanwhile (src/runtime.ts).
    output = (await execFileAsync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 })).stdout;
  } catch (error) {
    throw new RedisServerError('not_found', `cannot run ${binary} --version (${(error as Error).message})`);
  }
  const match = /v=(\d+)\.(\d+)(?:\.(\d+))?/.exec(output);
  if (!match) throw new RedisServerError('not_found', `${binary} --version printed no version: ${output.trim().slice(0, 200)}`);
  if (Number(match[1]) < 7) {
    throw new RedisServerError(
      'not_found',
      `${binary} is version ${match[0].slice(2)}: Storehouse's own Redis needs redis-server 7.0 or later ` +
        '(or set STOREHOUSE_REDIS_ADMIN_URL to an admin user of a Redis server of your own)',
    );
  }
  return match[0].slice(2);
}

/** Whether a process runs (a zombie, which no parent reaped, does not: it holds no port and no file). */
function running(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    // `<pid> (<name>) <state> ...`; the name may hold spaces and parentheses.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync('/proc/self/stat');
  }
}

/**
 * The processes running a redis-server on this configuration file (its command line names it:
 * the configuration sets `set-proc-title no`), from /proc on Linux, else from ps(1).
 */
function serversOn(conf: string): number[] {
  const isServer = (program: string) => /(redis|valkey)-server$/.test(program);
  if (fs.existsSync('/proc/self/cmdline')) {
    const found: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      let argv: string[];
      try {
        argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      } catch {
        continue; // gone meanwhile, or not ours to read
      }
      if (isServer(argv[0] ?? '') && argv.includes(conf) && running(Number(name))) found.push(Number(name));
    }
    return found;
  }
  if (process.platform === 'win32') return [];
  const listing = execFileSync('ps', ['-A', '-o', 'pid=', '-o', 'command='], { encoding: 'utf8', timeout: 30_000 });
  return listing
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\S+)(.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => !!match && isServer(match[2]!) && ` ${match[3]} `.includes(` ${conf} `))
    .map((match) => Number(match[1]))
    .filter((pid) => pid !== process.pid && running(pid));
}

/** A short-lived connection as the admin user; undefined when nothing answers with this password. */
async function withAdmin<T>(port: number, password: string, work: (redis: Redis) => Promise<T>, timeoutMs = 3_000): Promise<T | undefined> {
  const redis = new Redis({
    host: HOST,
    port,
    username: ADMIN_USER,
    password,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await work(redis);
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

/** Waits until `pid` has exited: SIGTERM, then SIGKILL after `timeoutMs`. Not our child, so its state is all there is to watch. */
async function endProcess(pid: number, timeoutMs: number): Promise<void> {
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!running(pid)) return true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return !running(pid);
  };
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      /* gone already */
    }
  };
  signal('SIGTERM');
  if (await gone(timeoutMs)) return;
  signal('SIGKILL');
  if (await gone(10_000)) return;
  throw new RedisServerError('failed', `the redis-server left running on this data dir (pid ${pid}) did not exit, even on SIGKILL`);
}

/** A running child: its process, and the lines it wrote last. */
interface Child {
  process: ChildProcess;
  pid: number;
  startedAt: number;
  tail: string[];
  ready: boolean;
}

/** The output said the port is taken (redis-server exits on it). */
class AddressInUse extends Error {}

/**
 * A supervised redis-server on `<dataDir>/redis/`. `start` resolves once it answers the admin
 * user. Events: `ready` ({ pid, port }) each time it answers again after a restart, and `exit`
 * ({ pid, code, signal, expected }) each time it exits (`expected` when `stop` asked it to).
 */
export class RedisServer extends EventEmitter {
  /** `redis://storehouse-admin:<password>@127.0.0.1:<port>`: the Redis provider's admin URL. */
  readonly adminUrl: string;
  private child: Child | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;
  private readonly onProcessExit = () => {
    // Storehouse is exiting without having stopped it: SIGTERM lets Redis sync and exit by itself.
    if (this.child && this.child.process.exitCode === null) this.child.process.kill('SIGTERM');
  };

  private constructor(
    private readonly paths: Paths,
    private readonly binary: string,
    private readonly password: string,
    readonly port: number,
    private readonly log: RedisServerLog,
  ) {
    super();
    this.adminUrl = `redis://${ADMIN_USER}:${encodeURIComponent(password)}@${HOST}:${port}`;
  }

  /** The running redis-server's pid, or undefined while it is down. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The directory of its files, `<dataDir>/redis`. */
  get dir(): string {
    return this.paths.dir;
  }

  /**
   * Starts the data dir's redis-server, first stopping one a killed Storehouse left running on
   * it. Fails (RedisServerError) when no redis-server 7 can be run (`not_found`), when its port
   * is taken by another program (`port_taken`: the port is never moved once picked, since stores'
   * URLs name it), or when it does not start (`failed`, with its last lines).
   */
  static async start(options: RedisServerOptions): Promise<RedisServer> {
    const log = options.log ?? NO_LOG;
    const binary = options.binary ?? findRedisServer();
    if (!binary) {
      throw new RedisServerError(
        'not_found',
        'no redis-server on PATH: install Redis 7 or later (Debian and Ubuntu: apt install redis-server; macOS: brew install redis), ' +
          'or set STOREHOUSE_REDIS_ADMIN_URL to an admin user of a Redis server of your own',
      );
    }
    const version = await checkVersion(binary);
    const paths = pathsOf(options.dataDir);
    fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    const password = readOrMakePassword(paths.password);
    const kept = readPort(paths.port);
    await takeOver(paths, log);

    const wanted = options.port ?? kept;
    if (wanted !== undefined) {
      const server = new RedisServer(paths, binary, password, wanted, log);
      if (!(await canListen(wanted))) throw server.portTaken(options.port !== undefined);
      try {
        await server.begin();
      } catch (error) {
        throw error instanceof AddressInUse ? server.portTaken(options.port !== undefined) : error;
      }
      if (kept !== wanted) writeFileAtomically(paths.port, `${wanted}\n`);
      log.info({ port: wanted, pid: server.pid, version }, 'redis-server started');
      return server;
    }
    // The first start: any free port of the range, and another if a program took it meanwhile
    // (nobody has been told this one yet).
    const tried = new Set<number>();
    for (let attempt = 0; attempt < 10; attempt++) {
      const port = await freePort(PORTS, tried);
      if (port === undefined) throw new RedisServerError('port_taken', `every port from ${PORTS.first} to ${PORTS.last} is in use`);
      tried.add(port);
      const server = new RedisServer(paths, binary, password, port, log);
      try {
        await server.begin();
      } catch (error) {
        if (error instanceof AddressInUse) continue;
        throw error;
      }
      writeFileAtomically(paths.port, `${port}\n`);
      log.info({ port, pid: server.pid, version }, 'redis-server started on a port picked for this data dir (kept for its next starts)');
      return server;
    }
    throw new RedisServerError(
      'port_taken',
      `no port from ${PORTS.first} to ${PORTS.last} stayed free long enough for redis-server to listen on it`,
    );
  }

  private portTaken(configured: boolean): RedisServerError {
    const why = configured
      ? `the port ${this.port} it is configured to use`
      : `the port ${this.port}, kept in ${this.paths.port} since its first start because the URLs of its stores name it`;
    return new RedisServerError(
      'port_taken',
      `Storehouse's Redis cannot listen on ${why}: another program is listening on it, and Storehouse will not hand out URLs ` +
        `that reach that program. Stop the program on port ${this.port} (\`ss -ltnp 'sport = :${this.port}'\` names it) and start again` +
        (configured
          ? ', or configure another port.'
          : `, or configure another port, or delete ${this.paths.port} to have a free one picked (either way, the stores' URLs change: ` +
            'every project connected to a Redis store must pull its variables again).'),
    );
  }

  /** The first start: the files, the child, and supervision. */
  private async begin(): Promise<void> {
    writeAclFile(this.paths, this.password);
    writeConf(this.paths, this.port);
    this.child = await this.launch();
    process.on('exit', this.onProcessExit);
  }

  /**
   * Runs redis-server until it says it is ready to accept connections, then checks that it
   * answers the admin user. Rejects when it exits first (AddressInUse when its port was taken).
   */
  private async launch(): Promise<Child> {
    // Under PR_SET_PDEATHSIG (util-linux's setpriv, which then execs redis-server): a Storehouse
    // killed with kill -9 takes its Redis along (SIGTERM: it syncs its append-only file and exits)
    // instead of leaving it running for good. Its environment is no more than it needs.
    const setpriv = findSetpriv();
    const [command, ...args] = setpriv
      ? [setpriv, '--pdeathsig=SIGTERM', '--', this.binary, this.paths.conf]
      : [this.binary, this.paths.conf];
    const spawned = spawn(command!, args, {
      cwd: this.paths.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
      detached: true, // a process group of its own: a terminal's Ctrl-C is for Storehouse, which stops it
    });
    const child: Child = { process: spawned, pid: spawned.pid ?? 0, startedAt: Date.now(), tail: [], ready: false };
    let sawReady: () => void = () => {};
    const readyLine = new Promise<void>((resolve) => (sawReady = resolve));
    const lines = (stream: 'stdout' | 'stderr') =>
      lineSplitter((line) => {
        child.tail.push(line);
        if (child.tail.length > TAIL_LINES) child.tail.shift();
        const parsed = parseRedisLogLine(line, stream);
        this.log[parsed.level]({ redisPid: parsed.pid ?? child.pid }, `redis-server: ${parsed.text}`);
        if (/Ready to accept connections/.test(parsed.text)) sawReady();
      });
    spawned.stdout!.on('data', lines('stdout'));
    spawned.stderr!.on('data', lines('stderr'));
    const exited = new Promise<never>((_, reject) => {
      spawned.once('error', (error) => reject(new RedisServerError('failed', `cannot run ${this.binary}: ${error.message}`)));
      spawned.once('exit', (code, signal) => {
        if (child.ready) return this.exited(child, code, signal);
        // What it wrote last may still be on its way: its output is read to the end first.
        spawned.once('close', () => {
          const output = child.tail.join('\n');
          reject(
            /Address already in use/.test(output)
              ? new AddressInUse(output)
              : new RedisServerError('failed', `redis-server exited (${signal ?? `code ${code}`}) before it was ready:\n${output}`),
          );
        });
      });
    });
    exited.catch(() => {}); // rejected once it exits, even after it was ready
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedisServerError('failed', `redis-server was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${child.tail.join('\n')}`),
          ),
        READY_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([readyLine, exited, timeout]);
      const answer = await Promise.race([withAdmin(this.port, this.password, (redis) => redis.ping()), exited, timeout]);
      if (answer !== 'PONG') {
        throw new RedisServerError('failed', `redis-server on port ${this.port} does not answer the admin user:\n${child.tail.join('\n')}`);
      }
    } catch (error) {
      if (spawned.exitCode === null && spawned.signalCode === null) await terminate(spawned);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    child.ready = true;
    // Running, it keeps nothing alive: Storehouse's life is its HTTP server's, and stop() waits for it.
    spawned.unref();
    (spawned.stdout as unknown as { unref(): void }).unref();
    (spawned.stderr as unknown as { unref(): void }).unref();
    return child;
  }

  /** After any exit of a child: unless it was stopped, start it again after the backoff. */
  private exited(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = undefined;
    this.emit('exit', { pid: child.pid, code, signal, expected: this.stopping });
    if (this.stopping) return;
    if (Date.now() - child.startedAt >= STABLE_MS) this.failures = 0;
    const delay = Math.min(BACKOFF_MS.last, BACKOFF_MS.first * 2 ** this.failures++);
    this.log.warn(
      { redisPid: child.pid, code, signal, restartInMs: delay, lastLines: child.tail.slice(-5) },
      'redis-server exited unexpectedly; starting it again',
    );
    this.restartLater(delay);
  }

  private restartLater(delay: number): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restarting = this.restart().finally(() => (this.restarting = undefined));
    }, delay); // not unref'd: a restart under way is work to finish, and stop() cancels it
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    try {
      writeAclFile(this.paths, this.password); // its admin and default users as they must be, whatever was saved
      writeConf(this.paths, this.port);
      const child = await this.launch();
      if (this.stopping) {
        await terminate(child.process);
        return;
      }
      this.child = child;
      this.log.info({ redisPid: child.pid, port: this.port }, 'redis-server is running again');
      this.emit('ready', { pid: child.pid, port: this.port });
    } catch (error) {
      if (this.stopping) return;
      const delay = Math.min(BACKOFF_MS.last, BACKOFF_MS.first * 2 ** this.failures++);
      const message = error instanceof AddressInUse ? this.portTaken(false).message : (error as Error).message;
      this.log.error({ restartInMs: delay }, `redis-server did not start again: ${message}`);
      this.restartLater(delay);
    }
  }

  /**
   * Stops supervising, saves the ACL users Redis holds (a last chance for any whose save was
   * missed), and stops redis-server (SIGTERM: it syncs its append-only file and exits; SIGKILL
   * if it has not within 30 s). Resolves once it has exited; calling it again waits for the same.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      clearTimeout(this.restartTimer);
      await this.restarting;
      const child = this.child;
      if (child && child.process.exitCode === null && child.process.signalCode === null) {
        child.process.ref(); // waited for, even when nothing else keeps the process alive
        await withAdmin(this.port, this.password, (redis) => redis.call('ACL', 'SAVE'));
        await terminate(child.process);
      }
      this.child = undefined;
      process.off('exit', this.onProcessExit);
      this.log.info({ port: this.port }, 'redis-server stopped');
    })();
    return this.stopped;
  }
}

/** SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_MS; resolves once it has exited. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops any redis-server left running on this data dir (its Storehouse was killed with kill -9),
 * so that this start's is the only one: every process whose command line runs this dir's
 * configuration file, whatever port it listens on and whether or not it answers. Found by its
 * command line, never by asking whatever listens on the dir's port: the admin password is sent
 * to nothing but a redis-server known to be this dir's.
 */
async function takeOver(paths: Paths, log: RedisServerLog): Promise<void> {
  for (const pid of serversOn(paths.conf)) {
    log.warn(
      { redisPid: pid, pidFile: readPid(paths.pid) === pid },
      'a redis-server is still running on this data dir (its Storehouse was stopped without stopping it): stopping it to start this one',
    );
    await endProcess(pid, STOP_TIMEOUT_MS);
  }
}
