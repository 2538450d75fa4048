/**
 * The real `vercel` CLI (the pinned devDependency, node_modules/.bin/vercel) run against a test
 * server, as a user would: a HOME of its own (its auth and config files), telemetry and the
 * update check off, no agent detection (the variables @vercel/detect-agent reads are removed, so
 * the CLI behaves the same wherever the suite runs), and the global flags after the subcommand
 * (placed before it, some subcommands read the wrong arguments). Output is what a user sees, with
 * colour off.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, type TestServer } from './helpers.ts';

export const VERCEL_BIN = path.join(ROOT, 'node_modules', '.bin', 'vercel');

/** What @vercel/detect-agent reads: set, the CLI switches to its non-interactive agent mode. */
const AGENT_VARIABLES = [
  'AI_AGENT',
  'ANTIGRAVITY_AGENT',
  'AUGMENT_AGENT',
  'CLAUDECODE',
  'CLAUDE_CODE',
  'CLAUDE_CODE_IS_COWORK',
  'CODEX_CI',
  'CODEX_SANDBOX',
  'CODEX_THREAD_ID',
  'COPILOT_ALLOW_ALL',
  'COPILOT_GITHUB_TOKEN',
  'COPILOT_MODEL',
  'CURSOR_AGENT',
  'CURSOR_EXTENSION_HOST_ROLE',
  'CURSOR_TRACE_ID',
  'GEMINI_CLI',
  'OPENCODE_CLIENT',
  'REPL_ID',
];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, in the order written (as a terminal shows them). */
  output: string;
}

export interface CliUser {
  /** The user's HOME (the CLI's config and auth files). */
  home: string;
  /** A working directory of its own (what `link` writes `.vercel/` into). */
  cwd: string;
  /** Runs `vercel <args> --api <server> --token <token>` in `cwd`. */
  run(args: string[], options?: { token?: string; cwd?: string; input?: string; timeoutMs?: number }): Promise<CliResult>;
  /** Removes the HOME and working directory. */
  remove(): void;
}

/** A user of the CLI against `server`, with the owner token unless another is given to `run`. */
export function cliUser(server: Pick<TestServer, 'url' | 'token'>, token = server.token): CliUser {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-cli-home-'));
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-cli-work-'));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of AGENT_VARIABLES) delete env[name];
  for (const name of Object.keys(env)) if (name.startsWith('VERCEL_')) delete env[name];
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    VERCEL_TELEMETRY_DISABLED: '1',
    NO_UPDATE_NOTIFIER: '1',
    FORCE_COLOR: '0',
    NO_COLOR: '1',
  });
  return {
    home,
    cwd,
    run: (args, options = {}) =>
      runCli([...args, '--api', server.url, '--token', options.token ?? token], {
        cwd: options.cwd ?? cwd,
        env,
        input: options.input,
        timeoutMs: options.timeoutMs ?? 120_000,
      }),
    remove: () => {
      fs.rmSync(home, { recursive: true, force: true });
      fs.rmSync(cwd, { recursive: true, force: true });
    },
  };
}

function runCli(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; input: string | undefined; timeoutMs: number }) {
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(VERCEL_BIN, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk;
      output += chunk;
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk;
      output += chunk;
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    // A deadline far above what a command takes (a few seconds), so a CLI waiting on a prompt fails the test instead of hanging it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vercel ${args.slice(0, -4).join(' ')} did not finish within ${options.timeoutMs} ms:\n${output}`));
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, output });
    });
  });
}

/** A dotenv file as `vercel env pull` writes it (`KEY="value"` lines). */
export function readDotenv(file: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)="(.*)"$/.exec(line);
    if (match) values[match[1]!] = match[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"');
  }
  return values;
}
