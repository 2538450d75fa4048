/**
 * vercel-labs/emulate 0.8.0 (npm package `emulate`; 0.9 and later need Node 22), serving its own
 * `GET /v2/user`: installed with npm into a scratch directory at bench time (never into the
 * project), started as its CLI starts it (`emulate start --service vercel`), in the scratch
 * directory so that no config file of ours is picked up.
 *
 * Its tokens: a token it was not seeded with is taken as the first seeded user's (its vercel
 * plugin's `defaultFallback`, `admin` by default), and it counts requests per token string, 5,000
 * an hour (then 403 "API rate limit exceeded"). So the load sends a fresh token every
 * TOKEN_REQUESTS requests (`emulateTokens`); a 403 fails the load run as any non-2xx does.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { HOST, makeTempDir, runCommand, spawnTracked, stop, waitFor200, type Spawned } from './children.ts';
import { freePort } from './measure.ts';

export const EMULATE_VERSION = '0.8.0';
/** Requests sent with one token: below its 5,000 an hour, with room for the requests in flight. */
const TOKEN_REQUESTS = 4000;

export interface Emulate extends Spawned {
  port: number;
}

/** Installs and starts emulate; a reason instead when it cannot be installed or run. */
export async function startEmulate(log: (line: string) => void): Promise<Emulate | { skipped: string }> {
  const dir = await makeTempDir('storehouse-bench-emulate-');
  try {
    log(`  installing emulate@${EMULATE_VERSION} into ${dir} (npm)`);
    await runCommand(
      'npm',
      ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error', `emulate@${EMULATE_VERSION}`],
      process.env,
      dir,
    );
    const packageDir = path.join(dir, 'node_modules', 'emulate');
    const manifest = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
      version: string;
      bin: Record<string, string>;
    };
    if (manifest.version !== EMULATE_VERSION) return { skipped: `npm installed emulate ${manifest.version}, not ${EMULATE_VERSION}` };
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
    delete env.EMULATE_PORT;
    delete env.EMULATE_BASE_URL;
    const proc = spawnTracked(
      process.execPath,
      [path.join(packageDir, manifest.bin.emulate ?? 'dist/index.js'), 'start', '--service', 'vercel', '--port', String(port)],
      env,
      dir,
    );
    try {
      await waitFor200(proc, port, '/v2/user', { authorization: `Bearer ${emulateTokens()()}` });
    } catch (error) {
      await stop(proc).catch(() => undefined);
      throw error;
    }
    return { ...proc, port };
  } catch (error) {
    return {
      skipped: `emulate@${EMULATE_VERSION} could not be installed or run: ${(error as Error).message.split('\n').slice(0, 6).join(' | ')}`,
    };
  }
}

/** A source of tokens for one load run: a new one every TOKEN_REQUESTS calls, never one used before. */
export function emulateTokens(): () => string {
  const run = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  let calls = 0;
  return () => `bench-${run}-${Math.floor(calls++ / TOKEN_REQUESTS)}`;
}

export const emulateUrl = (emulate: Emulate) => `http://${HOST}:${emulate.port}/v2/user`;
