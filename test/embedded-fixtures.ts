/**
 * Storehouse on the embedded default as `npm start` runs it (the server bundle), with no PostgreSQL
 * configured: it starts a PostgreSQL server of its own in the data dir. For the suites that run it
 * as a real process and signal it or its server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { eventually } from './helpers.ts';
import { type Proc, runBundled, stop } from './spawned.ts';

/** Storehouse on `dataDir` and `port`, bootstrapped with `token`, with no database configured; `env` over that. */
export function startEmbedded(dataDir: string, port: number, token: string, env: Record<string, string> = {}): Proc {
  return runBundled({
    DATABASE_URL: '',
    STOREHOUSE_POSTGRES_ADMIN_URL: '',
    STOREHOUSE_REDIS_ADMIN_URL: '',
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_BOOTSTRAP_TOKEN: token,
    PORT: String(port),
    LOG_LEVEL: 'debug',
    ...env,
  });
}

/** The pid of the embedded PostgreSQL server (the first line of its postmaster.pid), while one runs. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** A suite's end: Storehouse killed, its PostgreSQL (which follows it) gone, the data dir removed. */
export async function removeEmbedded(server: Proc | undefined, dataDir: string): Promise<void> {
  await stop(server, 'SIGKILL');
  await eventually('the embedded PostgreSQL to stop', async () => postmasterPid(dataDir) === undefined, 60_000).catch(() => {});
  fs.rmSync(dataDir, { recursive: true, force: true });
}

/** Resolves once a PostgreSQL server other than `crashed` (a pid) runs on `dataDir`: the one Storehouse started again. */
export async function restartedPostgres(dataDir: string, crashed: number): Promise<void> {
  await eventually(
    'a new PostgreSQL server',
    async () => {
      const now = postmasterPid(dataDir);
      return now !== undefined && now !== crashed;
    },
    120_000,
  );
}
