/**
 * The control socket: how the CLI reaches a running embedded server. The server holds the data
 * dir's lock, so no other process may open its database; instead the CLI sends its command over
 * a Unix socket in the data dir, and the server runs it with its own connection. The socket file
 * is mode 0600 inside a 0700 directory: only the user who runs the server can use it.
 *
 * One request per connection: a JSON line `{command, args}`, answered by a JSON line
 * `{ok: true, result}` or `{ok: false, error: {status, code, message}}`.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { AppError } from '../errors.ts';
import { isAdminCommand, runAdminCommand, type AdminContext } from './commands.ts';

export const controlSocketPath = (dataDir: string) => path.join(dataDir, 'control.sock');

const MAX_REQUEST_BYTES = 64 * 1024;

/** Serves the control socket. Only the holder of the data dir lock may call this. */
export async function serveControlSocket(dataDir: string, context: AdminContext, logger?: Logger): Promise<() => Promise<void>> {
  const file = controlSocketPath(dataDir);
  fs.rmSync(file, { force: true }); // left by a crashed holder; we hold the lock now
  const server = net.createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', async (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES) return socket.destroy();
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      socket.removeAllListeners('data');
      let reply: unknown;
      try {
        const { command, args } = JSON.parse(buffer.slice(0, newline));
        if (typeof command !== 'string' || !isAdminCommand(command)) throw new AppError(400, 'bad_request', `Unknown command ${command}`);
        logger?.info({ command }, 'admin command');
        reply = { ok: true, result: await runAdminCommand(context, command, args ?? {}) };
      } catch (error) {
        const known = error instanceof AppError;
        if (!known) logger?.error({ err: error }, 'admin command failed');
        reply = {
          ok: false,
          error: known
            ? { status: error.status, code: error.code, message: error.message }
            : { status: 500, code: 'internal_server_error', message: (error as Error).message },
        };
      }
      socket.end(`${JSON.stringify(reply)}\n`);
    });
  });
  // The socket file is created inside listen(); a tight umask makes it 0600 from its first moment.
  const previousMask = process.umask(0o177);
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, resolve);
  });
  process.umask(previousMask);
  await listening;
  fs.chmodSync(file, 0o600);
  server.unref();
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      fs.rmSync(file, { force: true });
    });
}

/** Sends one command to the running server; its AppErrors come back as AppErrors. */
export function callControlSocket(dataDir: string, command: string, args: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(controlSocketPath(dataDir));
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ command, args })}\n`));
    socket.on('data', (chunk: string) => (buffer += chunk));
    socket.on('error', (error) => reject(new Error(`Cannot reach the running server's control socket: ${error.message}`)));
    socket.on('end', () => {
      try {
        const reply = JSON.parse(buffer);
        if (reply.ok) resolve(reply.result);
        else reject(new AppError(reply.error.status, reply.error.code, reply.error.message));
      } catch {
        reject(new Error('The running server gave no answer on its control socket'));
      }
    });
  });
}
