/**
 * A private PostgreSQL server for one chaos run: its own cluster (initdb) in a temp dir, on a
 * free loopback port, started and stopped with pg_ctl. Private so that every role and database
 * on it is the run's own, and counts of orphans are exact; stoppable and pausable (SIGSTOP of all its
 * processes) so outages and hangs are real.
 *
 * PostgreSQL refuses to run as root, so as root every command runs as the `postgres` OS user.
 * The `postgres` role connects without a password (it is the admin Storehouse is given); every
 * other role must prove its password (scram-sha-256), so a store's credentials are really checked.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The newest installed PostgreSQL's bin directory (Debian layout), or undefined when there is none. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  return newest === undefined ? undefined : path.join(root, newest, 'bin');
}

const isRoot = () => process.getuid?.() === 0;

/** Runs a PostgreSQL binary, as the postgres OS user when we are root. */
function runAsPostgres(binary: string, args: string[], timeoutMs = 120_000): string {
  const [command, fullArgs] = isRoot() ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
  return execFileSync(command, fullArgs, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

const HBA = [
  '# chaos run: the admin connects freely; every other role proves its password',
  'local all postgres trust',
  'host all postgres 127.0.0.1/32 trust',
  'host all all 127.0.0.1/32 scram-sha-256',
  '',
].join('\n');

export class PrivatePostgres {
  readonly dir: string;
  readonly logFile: string;
  private running = false;

  private constructor(
    private readonly bin: string,
    readonly port: number,
    readonly label: string,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `storehouse-chaos-pg-${label}-`));
    this.logFile = path.join(this.dir, 'server.log');
  }

  /** initdb into a new temp dir, then start on `port`. */
  static async create(label: string, port: number): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql/*/bin');
    const server = new PrivatePostgres(bin, port, label);
    if (isRoot()) execFileSync('chown', ['postgres:postgres', server.dir]);
    const data = path.join(server.dir, 'data');
    runAsPostgres(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    // Written as the postgres user (it owns the data dir).
    runAsPostgres('sh', ['-c', `cat > '${data}/pg_hba.conf' <<'EOF'\n${HBA}EOF`]);
    fs.appendFileSync(
      path.join(data, 'postgresql.conf'),
      [
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${server.dir}'`,
        'shared_buffers = 16MB',
        'max_connections = 200',
        'fsync = off', // a throwaway cluster: kill -9 of PostgreSQL is not what is tested
        'log_min_messages = warning',
        // Statements are logged so a password sent in clear would show up in the secret scan.
        "log_statement = 'ddl'",
        '',
      ].join('\n'),
    );
    server.start();
    return server;
  }

  get adminUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  urlOf(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Starts the server and waits until it accepts connections. */
  start(): void {
    runAsPostgres(path.join(this.bin, 'pg_ctl'), ['-D', path.join(this.dir, 'data'), '-l', this.logFile, '-w', '-t', '120', 'start']);
    this.running = true;
  }

  /**
   * Stops the server. `immediate` is what a crash looks like to clients (connections cut, no
   * goodbye); the next start recovers from the WAL.
   */
  stop(mode: 'fast' | 'immediate' = 'immediate'): void {
    if (!this.running) return;
    runAsPostgres(path.join(this.bin, 'pg_ctl'), ['-D', path.join(this.dir, 'data'), '-m', mode, '-w', '-t', '120', 'stop']);
    this.running = false;
  }

  /**
   * SIGSTOP of the whole server: the postmaster (new connections are accepted by the kernel and
   * then hear nothing) and every process it started (a backend's statement hangs, its connection
   * open and silent). Stopping the postmaster alone would leave the backends answering.
   */
  pause(): void {
    const postmaster = this.postmasterPid();
    process.kill(postmaster, 'SIGSTOP');
    // Stopped, it forks nothing more: its children now are all there will be until the resume.
    for (const child of childrenOf(postmaster)) {
      try {
        process.kill(child, 'SIGSTOP');
      } catch {
        /* exited meanwhile */
      }
    }
    this.paused = [postmaster, ...childrenOf(postmaster)];
  }

  /** SIGCONT of everything `pause` stopped. */
  resume(): void {
    for (const pid of [...this.paused].reverse()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* exited meanwhile */
      }
    }
    this.paused = [];
  }

  private paused: number[] = [];

  private postmasterPid(): number {
    const pid = Number(fs.readFileSync(path.join(this.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${this.dir}/data/postmaster.pid`);
    return pid;
  }

  /** The server's own log (warnings and DDL statements). */
  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Stops the server if it runs and removes its files; safe to call twice, and from an exit handler. */
  destroy(): void {
    this.resume();
    try {
      this.stop('immediate');
    } catch {
      /* already down */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command may hold spaces and parentheses: the fields after its last ')' are the state, then the parent.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return children;
}
